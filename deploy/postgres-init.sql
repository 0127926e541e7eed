-- Run once by the postgres image, on an empty data volume (docker-compose.yml mounts it in
-- /docker-entrypoint-initdb.d). One database per service, named by shared.settings.database_for.
-- The services would also create their database when missing; creating them here keeps the
-- databases owned by the administrator role and visible from the first start.
CREATE DATABASE twinaid_registry;
CREATE DATABASE twinaid_pledges;
CREATE DATABASE twinaid_shipments;
