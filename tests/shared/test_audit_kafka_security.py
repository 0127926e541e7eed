"""`twinaid audit replay|compare --source kafka` logs in to the broker as the environment says,
the way the workers do (shared/kafka.py `security`): on the compose deployment, as the read-only
principal `auditor` (deploy/kafka-acls.txt)."""

from __future__ import annotations

import argparse
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError

from services.audit import command, sources
from shared.infra import free_port

PASSWORD = "auditor-password-from-the-environment"
KAFKA_VARIABLES = (
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
)


@pytest.fixture
def auditor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """An auditor's shell on the host, facing the compose broker's SCRAM listener."""
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "auditor")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD)


def test_without_kafka_settings_the_audit_reads_plaintext_as_on_the_dev_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in KAFKA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert command.kafka_security() == {"security_protocol": "PLAINTEXT"}


@pytest.mark.usefixtures("auditor_env")
def test_the_audit_logs_in_as_the_principal_and_password_of_its_environment() -> None:
    assert command.kafka_security() == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "auditor",
        "sasl_plain_password": PASSWORD,
    }


@pytest.mark.usefixtures("auditor_env")
async def test_the_kafka_source_hands_the_login_to_the_consumer_it_reads_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[dict[str, Any]] = []

    class Recorded(AIOKafkaConsumer):
        """The real consumer (which refuses SASL settings it cannot use), its arguments kept."""

        def __init__(self, *topics: str, **kwargs: Any) -> None:
            built.append({"topics": topics, **kwargs})
            super().__init__(*topics, **kwargs)

    monkeypatch.setattr(sources, "AIOKafkaConsumer", Recorded)
    args = argparse.Namespace(
        source="kafka",
        kafka=f"127.0.0.1:{free_port()}",  # nothing listens: the start is refused
        topic_prefix="audit-test.",
        trusted_keys=None,
        key="unused",
    )
    async with httpx.AsyncClient() as client:
        events = command._source(args, client, "http://127.0.0.1:1", "pledges")
        with pytest.raises(KafkaConnectionError):
            await anext(events)
    [consumer] = built
    assert consumer["topics"] == ("audit-test.pledges.events",)
    assert consumer["group_id"] is None
    assert consumer["security_protocol"] == "SASL_PLAINTEXT"
    assert consumer["sasl_mechanism"] == "SCRAM-SHA-512"
    assert consumer["sasl_plain_username"] == "auditor"
    assert consumer["sasl_plain_password"] == PASSWORD


def test_a_sasl_login_without_a_password_stops_naming_the_variables_not_the_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "auditor-name-not-shown")
    monkeypatch.delenv("KAFKA_SASL_PASSWORD", raising=False)
    with pytest.raises(SystemExit) as stopped:
        command.kafka_security()
    assert "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in str(stopped.value)
    assert "auditor-name-not-shown" not in str(stopped.value)
