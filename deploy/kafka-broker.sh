#!/usr/bin/env bash
# Starts the Apache Kafka broker of docker-compose.yml with SASL on every listener: writes the
# broker's JAAS file from KAFKA_ADMIN_PASSWORD (never stored in the repository), then runs the
# image's own start script. The apache/kafka image turns KAFKA_* variables into server
# properties but drops values holding "=", so the login modules cannot be given that way.
# PLAIN authenticates only the broker's own listeners (BROKER, CONTROLLER) as the super user
# `admin`; the services authenticate on CLIENTS (and tools on HOST) with SCRAM-SHA-512, their
# credentials stored in the cluster's metadata by deploy/kafka-access.sh.
set -euo pipefail
: "${KAFKA_ADMIN_PASSWORD:?}"
jaas=/tmp/kafka_server_jaas.conf
umask 077
cat > "${jaas}" <<JAAS
KafkaServer {
  org.apache.kafka.common.security.plain.PlainLoginModule required
    username="admin" password="${KAFKA_ADMIN_PASSWORD}" user_admin="${KAFKA_ADMIN_PASSWORD}";
  org.apache.kafka.common.security.scram.ScramLoginModule required;
};
JAAS
# the healthcheck's client (docker-compose.yml), as admin on the BROKER listener
cat > /tmp/admin.properties <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPERTIES
unset KAFKA_ADMIN_PASSWORD
export KAFKA_OPTS="-Djava.security.auth.login.config=${jaas}"
exec /etc/kafka/docker/run
