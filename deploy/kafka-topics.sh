#!/usr/bin/env bash
# Creates twinaid's topics before any worker starts, run by the one-shot `kafka-topics` service
# of docker-compose.yml inside the apache/kafka image. Idempotent.
# Explicit partition counts (auto-creation is off on the broker) and unlimited retention: the
# topics are the replayable history, which Kafka's default 7 days would silently drop.
set -euo pipefail
: "${BOOTSTRAP_SERVERS:?}" "${TOPICS:?}" "${TOPIC_PARTITIONS:?}"
for topic in ${TOPICS}; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "${BOOTSTRAP_SERVERS}" \
    --create --if-not-exists --topic "${topic}" \
    --partitions "${TOPIC_PARTITIONS}" --replication-factor "${TOPIC_REPLICATION_FACTOR:-1}" \
    --config retention.ms=-1
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "${BOOTSTRAP_SERVERS}" --list
