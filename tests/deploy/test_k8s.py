"""deploy/k8s agrees with Kubernetes, with docker-compose.yml and with the code.

Each overlay is rendered by `kubectl kustomize` (offline) and every manifest is validated against
the Kubernetes 1.32 schemas that kubernetes-validate ships (strict: an unknown field is an
error), with the network cut off. Then the rendered objects are read as the cluster would: which
process runs with which variables, probes, resources and privileges, and who may talk to whom
under the NetworkPolicies. The operators' resources (CloudNativePG, Strimzi) are checked against
deploy/kafka-acls.txt, the topics of docker-compose.yml and the names the overlays use.
"""

from __future__ import annotations

import base64
import collections
import copy
import functools
import json
import math
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from shared.settings import SERVICES, Settings, database_for, topic_for
from tests.test_compose import PINS, acls, command, environment, processes, upstreams

# no database at all: CI runs it once
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
KUBERNETES_VERSION = "1.32"
ROLES = ("api", "worker")
API_PORT = 8000
# What every pod runs as: the image's USER (tests/deploy/test_image.py reads it there).
IMAGE_UID = 10001
# A Secret or ConfigMap the overlay does not render (the operator creates it): the test reads
# the reference and puts this stand-in where the value would be.
EXTERNAL = "<created by the operator>"
Manifest = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.fail(
            "kubectl is not on PATH: tests/deploy renders deploy/k8s/overlays/* with"
            " `kubectl kustomize` (kubectl 1.32, kustomize 5.5); install it, do not skip this"
        )
    return found


@functools.cache
def rendered(overlay: str) -> tuple[Manifest, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {overlay}: {result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def of_kind(overlay: str, kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in rendered(overlay) if m["kind"] == kind}


def deployment(overlay: str, svc: str, role: str) -> Manifest:
    return of_kind(overlay, "Deployment")[f"{svc}-{role}"]


def container(overlay: str, svc: str, role: str) -> Manifest:
    containers = deployment(overlay, svc, role)["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{svc}-{role}: one process per pod"
    found: Manifest = containers[0]
    return found


def pod_labels(overlay: str, name: str) -> dict[str, str]:
    labels: dict[str, str] = of_kind(overlay, "Deployment")[name]["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


def generated(overlay: str, kind: str, name: str) -> Manifest | None:
    """The ConfigMap or Secret a reference names, once kustomize renamed it (hash suffix)."""
    return of_kind(overlay, kind).get(name)


def data_of(manifest: Manifest) -> dict[str, str]:
    if manifest["kind"] == "Secret":
        return {k: base64.b64decode(v).decode() for k, v in (manifest.get("data") or {}).items()}
    return dict(manifest.get("data") or {})


def env_of(overlay: str, svc: str, role: str) -> dict[str, str]:
    """The variables the container gets, resolved as the kubelet would; EXTERNAL where the value
    is in a Secret or ConfigMap the operator creates."""
    spec = container(overlay, svc, role)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        ref = source.get("configMapRef") or source["secretRef"]
        kind = "ConfigMap" if "configMapRef" in source else "Secret"
        found = generated(overlay, kind, ref["name"])
        assert found is not None, f"{svc}-{role}: envFrom {kind} {ref['name']} is not rendered"
        env.update(data_of(found))
    for var in spec.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var["valueFrom"]
        ref = source.get("secretKeyRef") or source["configMapKeyRef"]
        kind = "Secret" if "secretKeyRef" in source else "ConfigMap"
        found = generated(overlay, kind, ref["name"])
        if found is None:
            env[var["name"]] = EXTERNAL
        else:
            assert ref["key"] in data_of(found), f"{svc}-{role}: {ref['name']} has no {ref['key']}"
            env[var["name"]] = data_of(found)[ref["key"]]
    return env


def env_refs(overlay: str, svc: str, role: str) -> dict[str, tuple[str, str, str]]:
    """{variable: (kind, object name, key)} of every variable taken from a Secret or ConfigMap."""
    refs = {}
    for var in container(overlay, svc, role).get("env", []):
        source = var.get("valueFrom") or {}
        if "secretKeyRef" in source:
            refs[var["name"]] = (
                "Secret",
                source["secretKeyRef"]["name"],
                source["secretKeyRef"]["key"],
            )
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            refs[var["name"]] = ("ConfigMap", ref["name"], ref["key"])
    return refs


def original_name(overlay: str, kind: str, name: str) -> str:
    """The name before kustomize's hash suffix (the name the operator or README uses)."""
    if generated(overlay, kind, name) is None:
        return name
    return re.sub(r"-[a-z0-9]{10}$", "", name)


def port_number(spec: Manifest, port: int | str) -> int:
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in spec.get("ports", [])}
    assert port in named, f"{spec['name']}: no port named {port}"
    number: int = named[port]
    return number


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection or name lookup fails: the validation must work offline."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise OSError("the network is cut off in this test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


# -- Kubernetes accepts every manifest ---------------------------------------------------------


def test_every_rendered_manifest_is_valid_kubernetes_1_32_offline_and_strict(
    overlay: str, no_network: None
) -> None:
    errors = []
    for manifest in rendered(overlay):
        try:
            version = kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except (kubernetes_validate.ValidationError, kubernetes_validate.SchemaNotFoundError) as e:
            errors.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {e.message}")
        else:
            assert version == KUBERNETES_VERSION
    assert not errors, "\n".join(errors)
    kinds = {m["kind"] for m in rendered(overlay)}
    expected = {"Namespace", "Deployment", "Service", "HorizontalPodAutoscaler"}
    assert expected | {"PodDisruptionBudget", "NetworkPolicy", "ConfigMap"} <= kinds


def test_the_validator_refuses_an_unknown_field_and_a_wrong_type_offline(
    no_network: None,
) -> None:
    good = copy.deepcopy(of_kind("production", "Deployment")["registry-api"])
    kubernetes_validate.validate(good, KUBERNETES_VERSION, strict=True)
    typo = copy.deepcopy(good)
    typo["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    wrong = copy.deepcopy(good)
    wrong["spec"]["replicas"] = "three"
    for broken in (typo, wrong):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


# -- the processes: commands, probes, resources, privileges ------------------------------------


def test_each_process_runs_the_command_docker_compose_runs(overlay: str) -> None:
    deployments = of_kind(overlay, "Deployment")
    assert set(deployments) == {name for name, _, _ in processes()}
    for name, svc, role in processes():
        assert container(overlay, svc, role)["command"] == command(name), f"{overlay} {name}"
        assert (
            container(overlay, svc, role)["image"] == container(overlay, "registry", "api")["image"]
        ), f"{name}: one image for every process"


def test_every_container_has_probes_on_its_health_routes_and_resources(overlay: str) -> None:
    for name, svc, role in processes():
        spec = container(overlay, svc, role)
        env = env_of(overlay, svc, role)
        port = API_PORT if role == "api" else int(env["WORKER_HEALTH_PORT"])
        for probe, path in (
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
            ("startupProbe", "/healthz"),
        ):
            get = spec[probe]["httpGet"]
            assert get["path"] == path, f"{overlay} {name} {probe}"
            assert port_number(spec, get["port"]) == port, f"{overlay} {name} {probe} port"
        resources = spec["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), f"{overlay} {name}"
        assert "memory" in resources["limits"], f"{overlay} {name}: no memory limit"


def test_every_pod_runs_as_the_images_non_root_user_read_only_without_privileges(
    overlay: str,
) -> None:
    for name, svc, role in processes():
        pod = deployment(overlay, svc, role)["spec"]["template"]["spec"]
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == IMAGE_UID and security["runAsGroup"] == IMAGE_UID, name
        assert security["seccompProfile"]["type"] == "RuntimeDefault", name
        assert pod["automountServiceAccountToken"] is False, f"{name} never calls the API server"
        locked = container(overlay, svc, role)["securityContext"]
        assert locked["readOnlyRootFilesystem"] is True, name
        assert locked["allowPrivilegeEscalation"] is False, name
        assert locked["capabilities"]["drop"] == ["ALL"], name
        assert not locked["capabilities"].get("add"), name
    namespace = next(iter(of_kind(overlay, "Namespace").values()))
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_each_api_has_a_service_an_autoscaler_and_a_disruption_budget(overlay: str) -> None:
    for svc in SERVICES:
        name = f"{svc}-api"
        labels = pod_labels(overlay, name)
        service = of_kind(overlay, "Service")[name]["spec"]
        assert service["selector"].items() <= labels.items(), name
        (port,) = service["ports"]
        assert port["port"] == API_PORT
        assert port_number(container(overlay, svc, "api"), port["targetPort"]) == API_PORT
        hpa = of_kind(overlay, "HorizontalPodAutoscaler")[name]["spec"]
        target = hpa["scaleTargetRef"]
        assert (target["kind"], target["name"]) == ("Deployment", name)
        assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"], name
        assert any(m["resource"]["name"] == "cpu" for m in hpa["metrics"]), name
        pdb = of_kind(overlay, "PodDisruptionBudget")[name]["spec"]
        assert pdb["selector"]["matchLabels"].items() <= labels.items(), name
        # a budget that allows no eviction at all would block every node drain
        if "maxUnavailable" in pdb:
            assert pdb["maxUnavailable"] >= 1, name
        else:
            assert pdb["minAvailable"] < hpa["minReplicas"], name


def test_production_runs_a_standby_for_every_worker_and_several_pods_per_api() -> None:
    for svc in SERVICES:
        assert deployment("production", svc, "worker")["spec"]["replicas"] == 2, svc
        assert (
            of_kind("production", "HorizontalPodAutoscaler")[f"{svc}-api"]["spec"]["minReplicas"]
            >= 2
        ), svc
        # a rollout starts the new pod before the old one leaves: the lock passes, never lapses
        strategy = deployment("production", svc, "worker")["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, svc


# -- configuration and secrets ------------------------------------------------------------------


def test_every_variable_docker_compose_gives_a_process_is_set(overlay: str) -> None:
    for name, svc, role in processes():
        missing = set(environment(name)) - set(env_of(overlay, svc, role))
        assert not missing, f"{overlay} {name} misses {sorted(missing)}"


def test_the_environments_parse_as_settings_for_their_own_service(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = of_kind(overlay, "Service")
    for name, svc, role in processes():
        env = env_of(overlay, svc, role)
        refs = env_refs(overlay, svc, role)
        # secrets and pins come from objects named per service, never from a literal
        assert refs["DATABASE_URL"][0] == "Secret", name
        assert original_name(overlay, "Secret", refs["DATABASE_URL"][1]) == (
            f"twinaid-{svc}-database"
        ), name
        assert refs["TRUSTED_KEYS"][:2] == ("ConfigMap", "twinaid-trusted-keys"), name
        if env["DATABASE_URL"] == EXTERNAL:
            env["DATABASE_URL"] = f"postgresql://{svc}:stand-in@postgres:5432/{database_for(svc)}"
        env["TRUSTED_KEYS"] = json.dumps(PINS)
        if role == "worker":
            assert refs["KAFKA_SASL_PASSWORD"][0] == "Secret", name
            secret = original_name(overlay, "Secret", refs["KAFKA_SASL_PASSWORD"][1])
            assert secret == f"twinaid-{svc}-kafka", name
            assert "FEED_API_KEY" not in env or refs["FEED_API_KEY"][0] == "Secret", name
        assert "METRICS_TOKEN" not in env or refs["METRICS_TOKEN"][0] == "Secret", name
        with monkeypatch.context() as patch:
            for field in Settings.model_fields:
                patch.delenv(field.upper(), raising=False)
            for key, value in env.items():
                patch.setenv(key, value)
            settings = Settings()
        url = urlsplit(settings.database_url)
        assert url.path == f"/{database_for(svc)}", name
        assert services[url.hostname or ""]["spec"]["type"] == "ExternalName", name
        kafka_host = settings.kafka_bootstrap_servers.split(":")[0]
        assert services[kafka_host]["spec"]["type"] == "ExternalName", name
        assert settings.signing_key_file == f"/var/lib/twinaid/keys/{svc}.ed25519", name
        if role == "api":
            assert settings.kafka_sasl_username is None and settings.kafka_sasl_password is None
            assert not {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_PASSWORD"} & set(env), name
            continue
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512", name
        assert settings.kafka_security_protocol.startswith("SASL"), name
        assert settings.kafka_sasl_username == svc, name
        feeds = settings.upstream_feeds
        assert set(feeds) == upstreams(svc), name
        for upstream, feed in feeds.items():
            parsed = urlsplit(feed)
            target = services[parsed.hostname or ""]["spec"]
            assert target["selector"].items() <= pod_labels(overlay, f"{upstream}-api").items()
            assert parsed.port in {p["port"] for p in target["ports"]}, name
        if settings.kafka_security_protocol == "SASL_SSL":
            assert settings.kafka_ssl_cafile, name
            mounted = {m["mountPath"] for m in container(overlay, svc, role)["volumeMounts"]}
            assert str(Path(settings.kafka_ssl_cafile).parent) in mounted, name


def test_each_process_reads_its_own_services_signing_key_from_a_read_only_secret(
    overlay: str,
) -> None:
    for name, svc, role in processes():
        spec = container(overlay, svc, role)
        path = Path(env_of(overlay, svc, role)["SIGNING_KEY_FILE"])
        mount = next(m for m in spec["volumeMounts"] if m["mountPath"] == str(path.parent))
        assert mount["readOnly"] is True, name
        volumes = deployment(overlay, svc, role)["spec"]["template"]["spec"]["volumes"]
        volume = next(v for v in volumes if v["name"] == mount["name"])
        secret = volume["secret"]
        assert secret["secretName"] == f"twinaid-{svc}-signing-key", name
        assert [item["path"] for item in secret["items"]] == [path.name], name
        # owned by root, group the pod's fsGroup: the group must read it, nobody else
        assert secret["defaultMode"] & 0o040 and not secret["defaultMode"] & 0o007, name


PEM_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{24,}")


def entropy(token: str) -> float:
    """Shannon entropy, bits a character: random base64 is near 5, paths and names below 4."""
    counts = collections.Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def secret_looking(text: str) -> str | None:
    """A private key; a long hex string (`openssl rand -hex`); a long random-looking token
    mixing digits, lower and upper case (a base64 key or password)."""
    if found := PEM_KEY.search(text):
        return found.group(0)
    for token in TOKEN.findall(text):
        kinds = [re.search(chars, token) is not None for chars in ("[0-9]", "[a-z]", "[A-Z]")]
        hexadecimal = len(token) >= 32 and re.fullmatch(r"[0-9a-fA-F]+", token) is not None
        if (hexadecimal and kinds[0] and (kinds[1] or kinds[2])) or (
            all(kinds) and entropy(token) >= 4.2
        ):
            return token
    return None


PLACEHOLDER = "not-a-secret"


def test_no_secret_in_the_repository_holds_a_real_looking_value() -> None:
    assert not of_kind("production", "Secret"), "production references Secrets created outside"
    secrets = of_kind("dev", "Secret")
    assert secrets, "the dev overlay generates its throwaway Secrets"
    for name, secret in secrets.items():
        for key, value in data_of(secret).items():
            given = urlsplit(value).password if "://" in value else value
            assert given and PLACEHOLDER in given, f"{name}/{key} is not an obvious placeholder"
    for path in sorted(K8S.rglob("*")):
        if path.is_file():
            found = secret_looking(path.read_text())
            assert found is None, f"{path.relative_to(ROOT)} holds {found!r}"


# -- who talks to whom ---------------------------------------------------------------------------


def selects(selector: Manifest, labels: dict[str, str]) -> bool:
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions") or []:
        present = labels.get(expression["key"])
        operator, values = expression["operator"], expression.get("values", [])
        if operator == "In" and present not in values:
            return False
        if operator == "NotIn" and present in values:
            return False
        if operator == "Exists" and present is None:
            return False
        if operator == "DoesNotExist" and present is not None:
            return False
    return True


def rules(overlay: str, pod: str, direction: str) -> list[Manifest]:
    """Every ingress or egress rule of every NetworkPolicy that applies to `pod`."""
    labels = pod_labels(overlay, pod)
    found = []
    for policy in of_kind(overlay, "NetworkPolicy").values():
        spec = policy["spec"]
        if direction.capitalize() in spec["policyTypes"] and selects(spec["podSelector"], labels):
            found += spec.get(direction, [])
    return found


def peers(rule: Manifest, direction: str) -> list[Manifest]:
    return list(rule.get("to" if direction == "egress" else "from", []))


def reachable_pods(overlay: str, pod: str, direction: str, port: int) -> set[str]:
    """The twinaid pods (of this namespace) `pod` may reach (egress) or be reached by
    (ingress) on `port` (the port of the pod that takes the connection)."""
    found = set()
    for rule in rules(overlay, pod, direction):
        for peer in peers(rule, direction):
            if "namespaceSelector" in peer or "ipBlock" in peer or "podSelector" not in peer:
                continue
            for other in of_kind(overlay, "Deployment"):
                listener = other if direction == "egress" else pod
                svc, role = listener.rsplit("-", 1)
                ports = {
                    port_number(container(overlay, svc, role), p["port"])
                    for p in rule.get("ports", [])
                }
                if selects(peer["podSelector"], pod_labels(overlay, other)) and port in ports:
                    found.add(other)
    return found


def external_ports(overlay: str, pod: str) -> dict[str, set[int]]:
    """{namespace: ports} that `pod` may reach outside its own namespace."""
    found: dict[str, set[int]] = {}
    for rule in rules(overlay, pod, "egress"):
        for peer in peers(rule, "egress"):
            assert "ipBlock" not in peer, f"{pod}: egress by address, not by pod"
            if "namespaceSelector" not in peer:
                continue
            namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            found.setdefault(namespace, set()).update(p["port"] for p in rule["ports"])
    return found


def postgres_port(svc: str) -> int:
    """PostgreSQL's port, from the DATABASE_URL the dev overlay renders (production's is
    created outside, with the same host and port: README)."""
    port = urlsplit(env_of("dev", svc, "api")["DATABASE_URL"]).port
    assert port is not None
    return port


def test_everything_is_denied_unless_a_policy_lets_it(overlay: str) -> None:
    policies = of_kind(overlay, "NetworkPolicy")
    deny = [
        p
        for p in policies.values()
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, f"{overlay}: no default-deny NetworkPolicy"
    for policy in policies.values():
        for rule in policy["spec"].get("ingress", []) + policy["spec"].get("egress", []):
            assert rule.get("ports"), f"{policy['metadata']['name']}: a rule open on every port"
            assert peers(rule, "egress") or peers(rule, "ingress"), (
                f"{policy['metadata']['name']}: a rule open to everyone"
            )


def test_apis_reach_postgresql_not_the_broker_take_8000_from_readers_metrics_from_monitoring(
    overlay: str,
) -> None:
    for svc in SERVICES:
        api = f"{svc}-api"
        outside = external_ports(overlay, api)
        # never the broker: an API's worker relays what it writes, its /readyz checks its
        # database only (shared/routes.py)
        assert outside == {
            "kube-system": {53},
            "twinaid-postgres": {postgres_port(svc)},
        }, api
        egress = [peer for rule in rules(overlay, api, "egress") for peer in peers(rule, "egress")]
        assert all("namespaceSelector" in peer for peer in egress), f"{api} reaches its namespace"
        readers = {f"{other}-worker" for other in SERVICES if svc in upstreams(other)}
        assert reachable_pods(overlay, api, "ingress", API_PORT) == readers, api
        # /metrics on a port of its own, which only the monitoring namespace reaches
        spec = container(overlay, svc, "api")
        metrics = int(env_of(overlay, svc, "api")["METRICS_PORT"])
        assert port_number(spec, "metrics") == metrics != API_PORT, api
        assert not reachable_pods(overlay, api, "ingress", metrics), api
        for rule in rules(overlay, api, "ingress"):
            ports = {port_number(spec, p["port"]) for p in rule["ports"]}
            assert ports in ({API_PORT}, {metrics}), api
            if ports == {metrics}:
                assert [peer["namespaceSelector"]["matchLabels"] for peer in rule["from"]] == [
                    {"twinaid.io/monitoring": "true"}
                ], api


def test_workers_reach_postgresql_kafka_dns_and_exactly_their_upstreams_feeds(
    overlay: str,
) -> None:
    for svc in SERVICES:
        worker = f"{svc}-worker"
        env = env_of(overlay, svc, "worker")
        kafka_port = int(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])
        outside = external_ports(overlay, worker)
        expected = {
            "kube-system": {53},
            "twinaid-postgres": {postgres_port(svc)},
            "twinaid-kafka": {kafka_port},
        }
        assert outside == expected, worker
        feeds = reachable_pods(overlay, worker, "egress", API_PORT)
        assert feeds == {f"{upstream}-api" for upstream in upstreams(svc)}, worker
        health = int(env["WORKER_HEALTH_PORT"])
        for rule in rules(overlay, worker, "ingress"):
            spec = container(overlay, svc, "worker")
            assert {port_number(spec, p["port"]) for p in rule["ports"]} == {health}, worker
            assert all("namespaceSelector" in peer for peer in peers(rule, "ingress")), worker
        assert not reachable_pods(overlay, worker, "ingress", health), worker


# -- the operators' resources ------------------------------------------------------------------


@functools.cache
def operator_resources() -> tuple[Manifest, ...]:
    found = []
    for path in sorted((K8S / "operators").glob("*.yaml")):
        found += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return tuple(found)


def operator_kind(kind: str) -> list[Manifest]:
    return [doc for doc in operator_resources() if doc["kind"] == kind]


def test_strimzi_users_have_exactly_the_acls_of_deploy_kafka_acls_txt() -> None:
    users = operator_kind("KafkaUser")
    granted = set()
    for user in users:
        spec = user["spec"]
        assert spec["authentication"]["type"] == "scram-sha-512", user["metadata"]["name"]
        assert spec["authorization"]["type"] == "simple", user["metadata"]["name"]
        for acl in spec["authorization"]["acls"]:
            resource = acl["resource"]
            assert resource["patternType"] == "literal", resource
            granted |= {
                (user["metadata"]["name"], resource["type"], resource["name"], op)
                for op in acl["operations"]
            }
    assert granted == acls(), f"missing {acls() - granted}, extra {granted - acls()}"
    assert {u["metadata"]["name"] for u in users} == {*SERVICES, "auditor"}


def test_strimzi_topics_are_the_composes_topics_with_its_partitions_kept_forever() -> None:
    topics = {t["spec"]["topicName"]: t["spec"] for t in operator_kind("KafkaTopic")}
    assert set(topics) == set(environment("kafka-topics")["TOPICS"].split())
    assert {topic_for(svc) for svc in SERVICES} <= set(topics)
    for overlay in OVERLAYS:
        partitions = int(env_of(overlay, "registry", "worker")["KAFKA_PARTITIONS"])
        replicas = int(env_of(overlay, "registry", "worker")["KAFKA_REPLICATION_FACTOR"])
        assert all(t["partitions"] == partitions for t in topics.values()), overlay
        if overlay == "production":
            assert all(t["replicas"] == replicas for t in topics.values())
    assert all(str(t["config"]["retention.ms"]) == "-1" for t in topics.values())


def test_the_overlays_reach_the_strimzi_cluster_on_a_listener_that_fits_their_protocol() -> None:
    (kafka,) = operator_kind("Kafka")
    cluster, namespace = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
    spec = kafka["spec"]["kafka"]
    assert spec["authorization"]["type"] == "simple"
    assert str(spec["config"]["auto.create.topics.enable"]).lower() == "false"
    listeners = {item["port"]: item for item in spec["listeners"]}
    assert all(i["authentication"]["type"] == "scram-sha-512" for i in listeners.values())
    for pool in operator_kind("KafkaTopic") + operator_kind("KafkaUser"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster
        assert pool["metadata"]["namespace"] == namespace
    for overlay in OVERLAYS:
        bootstrap = of_kind(overlay, "Service")["kafka"]["spec"]["externalName"]
        assert bootstrap == f"{cluster}-kafka-bootstrap.{namespace}.svc.cluster.local", overlay
        env = env_of(overlay, "pledges", "worker")
        listener = listeners[int(env["KAFKA_BOOTSTRAP_SERVERS"].rsplit(":", 1)[1])]
        assert listener["tls"] is (env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"), overlay
        policy = of_kind(overlay, "NetworkPolicy")["twinaid-kafka"]["spec"]["egress"][0]["to"][0]
        assert policy["namespaceSelector"]["matchLabels"] == {
            "kubernetes.io/metadata.name": namespace
        }
        assert policy["podSelector"]["matchLabels"]["strimzi.io/cluster"] == cluster


def test_cloudnativepg_holds_each_services_database_owned_by_the_role_it_logs_in_as() -> None:
    (cluster,) = operator_kind("Cluster")
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    roles = {role["name"] for role in cluster["spec"]["managed"]["roles"]}
    databases = {d["spec"]["name"]: d["spec"] for d in operator_kind("Database")}
    assert set(databases) == {database_for(svc) for svc in SERVICES}
    for svc in SERVICES:
        url = urlsplit(env_of("dev", svc, "api")["DATABASE_URL"])
        database = databases[url.path.lstrip("/")]
        assert database["owner"] == url.username and url.username in roles, svc
        assert database["cluster"]["name"] == name, svc
    for overlay in OVERLAYS:
        target = of_kind(overlay, "Service")["postgres"]["spec"]["externalName"]
        # the read-write Service: the primary, where the leader's lock and the sealer live
        assert target == f"{name}-rw.{namespace}.svc.cluster.local", overlay
        policy = of_kind(overlay, "NetworkPolicy")["twinaid-data"]["spec"]["egress"][0]["to"][0]
        assert policy["podSelector"]["matchLabels"] == {"cnpg.io/cluster": name}, overlay
