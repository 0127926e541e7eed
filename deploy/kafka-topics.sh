#!/usr/bin/env bash
# Creates twinaid's topics before any worker starts, run by the one-shot `kafka-topics` service
# of docker-compose.yml inside the apache/kafka image. Idempotent.
# Explicit partition counts (auto-creation is off on the broker) and unlimited retention: the
# topics are the replayable history, which Kafka's default 7 days would silently drop.
# The broker authenticates every client: this job is the super user `admin` (PLAIN, BROKER
# listener), like deploy/kafka-access.sh.
set -euo pipefail
: "${BOOTSTRAP_SERVERS:?}" "${TOPICS:?}" "${TOPIC_PARTITIONS:?}" "${KAFKA_ADMIN_PASSWORD:?}"
source "$(dirname "${BASH_SOURCE[0]}")/kafka-admin-client.sh"
for topic in ${TOPICS}; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "${BOOTSTRAP_SERVERS}" \
    --command-config "${admin}" --create --if-not-exists --topic "${topic}" \
    --partitions "${TOPIC_PARTITIONS}" --replication-factor "${TOPIC_REPLICATION_FACTOR:-1}" \
    --config retention.ms=-1
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "${BOOTSTRAP_SERVERS}" --command-config "${admin}" \
  --list
