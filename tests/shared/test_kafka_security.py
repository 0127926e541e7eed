"""Every Kafka client of ours authenticates the same way, as the settings say."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared import kafka
from shared.settings import Settings


def test_the_dev_broker_takes_plaintext_clients_without_credentials() -> None:
    assert kafka.security(Settings()) == {"security_protocol": "PLAINTEXT"}


async def test_a_sasl_broker_gets_the_services_principal_and_password() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="pledges",
        kafka_sasl_password="s3cret-from-the-environment",
    )
    assert kafka.security(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "pledges",
        "sasl_plain_password": "s3cret-from-the-environment",
    }
    assert "s3cret" not in repr(settings)
    # aiokafka takes them as they are (it refuses an unknown mechanism or a missing password)
    kafka.producer(settings)
    kafka.consumer(settings, group="pledges.consumers", topics=["registry.events"])


def test_sasl_without_a_password_is_refused_naming_the_variables_not_the_values() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_password="hunter2")
    assert "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in str(refused.value)
    assert "hunter2" not in str(refused.value)


def test_an_ssl_broker_gets_a_tls_context() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="p"
    )
    assert kafka.security(settings)["ssl_context"] is not None
