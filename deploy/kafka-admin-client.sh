# Sourced by the one-shot setup jobs of docker-compose.yml (deploy/kafka-topics.sh,
# deploy/kafka-access.sh): `admin`, a client properties file for the super user `admin` over the
# broker's PLAIN listener, readable only by the job and removed when it ends.
: "${KAFKA_ADMIN_PASSWORD:?}"
umask 077
admin=$(mktemp)
trap 'rm -f "${admin}"' EXIT
cat > "${admin}" <<PROPERTIES
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPERTIES
