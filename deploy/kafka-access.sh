#!/usr/bin/env bash
# Gives each service, and the read-only `auditor`, its Kafka principal and exactly the rights of
# deploy/kafka-acls.txt, run by the one-shot `kafka-access` service of docker-compose.yml inside
# the apache/kafka image, as the super user `admin` over the broker's PLAIN listener. Idempotent:
# passwords are set again (rotate one by changing its variable and running the job), ACLs
# already present stay.
set -euo pipefail
: "${BOOTSTRAP_SERVERS:?}" "${KAFKA_ADMIN_PASSWORD:?}" "${ACL_FILE:?}"
: "${KAFKA_REGISTRY_PASSWORD:?}" "${KAFKA_PLEDGES_PASSWORD:?}" "${KAFKA_SHIPMENTS_PASSWORD:?}"
: "${KAFKA_AUDITOR_PASSWORD:?}"
bin=${KAFKA_BIN:-/opt/kafka/bin}  # tests run the script against stand-ins
source "$(dirname "${BASH_SOURCE[0]}")/kafka-admin-client.sh"

declare -A passwords=(
  [registry]="${KAFKA_REGISTRY_PASSWORD}"
  [pledges]="${KAFKA_PLEDGES_PASSWORD}"
  [shipments]="${KAFKA_SHIPMENTS_PASSWORD}"
  [auditor]="${KAFKA_AUDITOR_PASSWORD}"
)
for principal in "${!passwords[@]}"; do
  "${bin}/kafka-configs.sh" --bootstrap-server "${BOOTSTRAP_SERVERS}" --command-config "${admin}" \
    --alter --entity-type users --entity-name "${principal}" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=${passwords[${principal}]}]"
done

while read -r principal resource name operations; do
  [[ -z "${principal}" || "${principal}" == \#* ]] && continue
  ops=()
  for operation in ${operations//,/ }; do
    ops+=(--operation "${operation}")
  done
  "${bin}/kafka-acls.sh" --bootstrap-server "${BOOTSTRAP_SERVERS}" --command-config "${admin}" \
    --add --allow-principal "User:${principal}" "${ops[@]}" "--${resource}" "${name}" \
    --resource-pattern-type literal
done < "${ACL_FILE}"
"${bin}/kafka-acls.sh" --bootstrap-server "${BOOTSTRAP_SERVERS}" --command-config "${admin}" --list
