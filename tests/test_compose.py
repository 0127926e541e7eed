"""docker-compose.yml and deploy/ agree with the code: modules, settings, databases, topics, files.

No Docker engine is needed: the compose file is parsed and interpolated here, the way
`docker compose config` would, and each reference is checked against the repository.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib
import importlib.util
import json
import re
import shlex
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from shared import signing
from shared.settings import SERVICES, Settings, database_for, topic_for

# no database at all: CI runs it once
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
# What a user's .env holds: the compose file refuses to start without it.
PINS = {svc: [signing.Signer.generate().public_key] for svc in SERVICES}
USER_ENV = {
    "POSTGRES_PASSWORD": "local-test-password",
    "KAFKA_ADMIN_PASSWORD": "admin-test-password",
    **{f"KAFKA_{svc.upper()}_PASSWORD": f"{svc}-test-password" for svc in SERVICES},
    "KAFKA_AUDITOR_PASSWORD": "auditor-test-password",
    "TRUSTED_KEYS": json.dumps(PINS),
}
# Variables a process reads that are not Settings fields, each with its reason.
NOT_SETTINGS: dict[str, str] = {}
ROLES = ("api", "worker")
JOB_CONDITION = "service_completed_successfully"
TOPIC_PATTERN = re.compile(r"\b[\w-]+\.events(?:\.dlq)?\b")
VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?:(:?)([-?])([^}]*))?\}|\$(\w+)")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$, applied to every value."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1) or match.group(5)
        colon, kind, word = match.group(2), match.group(3), match.group(4) or ""
        given = env.get(name)
        unset = given is None or (colon == ":" and given == "")
        if kind == "?" and unset:
            raise KeyError(f"required variable {name} is missing: {word}")
        if kind == "-" and unset:
            return word
        return given or ""

    return VARIABLE.sub(substitute, value)


@functools.cache
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


@functools.cache
def compose() -> dict[str, Any]:
    resolved: dict[str, Any] = interpolate(raw(), USER_ENV)
    return resolved


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def processes() -> list[tuple[str, str, str]]:
    """(compose service, twinaid service, role) for every API and worker."""
    return [(f"{svc}-{role}", svc, role) for svc in SERVICES for role in ROLES]


def command(name: str) -> list[str]:
    given = services()[name]["command"]
    return shlex.split(given) if isinstance(given, str) else list(given)


def environment(name: str) -> dict[str, str]:
    given = services()[name].get("environment") or {}
    if isinstance(given, list):
        given = dict(item.split("=", 1) for item in given)
    return {key: "" if value is None else str(value) for key, value in given.items()}


def depends_on(name: str) -> dict[str, str]:
    given = services()[name].get("depends_on") or {}
    if isinstance(given, list):
        return dict.fromkeys(given, "service_started")
    return {target: spec.get("condition", "service_started") for target, spec in given.items()}


def jobs() -> set[str]:
    """One-shot services: the ones others wait for to complete."""
    return {
        target
        for name in services()
        for target, condition in depends_on(name).items()
        if condition == JOB_CONDITION
    }


def api_port(name: str) -> int:
    args = command(name)
    return int(args[args.index("--port") + 1])


def upstreams(svc: str) -> set[str]:
    """The services whose events `svc` consumes, from its subscriptions table."""
    if importlib.util.find_spec(f"services.{svc}.subscriptions") is None:
        return set()
    return set(importlib.import_module(f"services.{svc}.subscriptions").HANDLERS)


def settings_of(name: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for field in Settings.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    for key, value in environment(name).items():
        monkeypatch.setenv(key, value)
    return Settings()


@functools.cache
def openapi_paths(module: str) -> frozenset[str]:
    app = importlib.import_module(module).create_app()
    return frozenset(app.openapi()["paths"])


def healthcheck_code(name: str) -> str:
    test = services()[name]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], f"{name}: healthcheck is not a python -c probe"
    code: str = test[3]
    return code


def dockerfile(build: dict[str, Any]) -> Path:
    return ROOT / build["context"] / build.get("dockerfile", "Dockerfile")


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#") and len(line.split(None, 1)) == 2
    ]


def dockerignore_patterns(context: Path) -> list[str]:
    ignore = context / ".dockerignore"
    if not ignore.exists():
        return []
    lines = [line.strip() for line in ignore.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a matched directory takes its content."""
    parts = path.split("/")
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").strip("/")
        if any(fnmatch.fnmatchcase("/".join(parts[:i]), glob) for i in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def built_service() -> str:
    builders = [name for name, spec in services().items() if "build" in spec]
    assert len(builders) == 1, f"the image should be built once, by one service: {builders}"
    return builders[0]


class ProbeServer(ThreadingHTTPServer):
    """Stands in for an API or a worker: answers every GET with `status`."""

    status = 200


class _Probe(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, ProbeServer)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[ProbeServer]:
    server = ProbeServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


# -- the tests ---------------------------------------------------------------------------


def test_each_service_has_an_api_and_a_worker_and_nothing_unexpected_runs_the_image() -> None:
    image = services()[built_service()]["image"]
    on_image = {name for name, spec in services().items() if spec.get("image") == image}
    assert on_image == {name for name, _, _ in processes()}


def test_every_long_running_service_has_a_healthcheck_and_jobs_never_restart() -> None:
    for name, spec in services().items():
        if name in jobs():
            assert str(spec.get("restart", "no")) == "no", f"{name} is a one-shot job"
            continue
        check = spec.get("healthcheck") or {}
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck form"


def test_every_long_running_service_and_worker_is_restarted_when_it_dies() -> None:
    # "on-failure" would leave a process killed by a signal it exits 0 on (SIGTERM) down
    restarting = {"always", "unless-stopped"}
    long_running = {name for name in services() if name not in jobs()}
    assert {name for name, _, _ in processes()} <= long_running
    assert {"postgres", "kafka"} <= long_running
    for name in sorted(long_running):
        policy = str(services()[name].get("restart", "no"))
        assert policy in restarting, f"{name} has restart: {policy}"
        deploy = services()[name].get("deploy", {}).get("restart_policy", {})
        assert deploy.get("condition", "any") == "any", f"{name}: deploy restart_policy"


def test_api_commands_run_their_services_app_factory_with_uvicorn() -> None:
    for name, svc, role in processes():
        if role != "api":
            continue
        args = command(name)
        assert args[0] == "uvicorn" and "--factory" in args, name
        target = next(arg for arg in args[1:] if ":" in arg and not arg.startswith("-"))
        module, _, attribute = target.partition(":")
        assert module == f"services.{svc}.app", name
        assert callable(getattr(importlib.import_module(module), attribute)), name
        assert args[args.index("--host") + 1] == "0.0.0.0", f"{name} must listen beyond loopback"
        assert 0 < api_port(name) < 65536


def test_worker_commands_run_their_services_worker_module() -> None:
    for name, svc, role in processes():
        if role != "worker":
            continue
        args = command(name)
        assert args[:2] == ["python", "-m"], name
        assert args[2] == f"services.{svc}.worker", name
        assert importlib.util.find_spec(args[2]) is not None, name
        assert callable(getattr(importlib.import_module(args[2]), "main", None)), name


def test_api_healthchecks_probe_a_route_of_their_app_and_fail_when_it_is_not_ready(
    probe_server: ProbeServer,
) -> None:
    for name, svc, role in processes():
        if role != "api":
            continue
        code = healthcheck_code(name)
        found = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\"]*)", code)
        assert found, f"{name}: the probe names no local URL"
        assert int(found.group(1)) == api_port(name), f"{name}: the probe misses the API port"
        assert found.group(2) in openapi_paths(f"services.{svc}.app"), name
        local = code.replace(f"127.0.0.1:{found.group(1)}", f"127.0.0.1:{probe_server.server_port}")
        for status, healthy in ((200, True), (503, False)):
            probe_server.status = status
            result = subprocess.run([sys.executable, "-c", local], capture_output=True, timeout=30)
            assert (result.returncode == 0) is healthy, f"{name} on HTTP {status}"


def test_worker_healthchecks_probe_the_port_the_worker_is_told_to_open(
    probe_server: ProbeServer,
) -> None:
    for name, _, role in processes():
        if role != "worker":
            continue
        assert environment(name)["WORKER_HEALTH_PORT"].isdigit(), name
        env = {"WORKER_HEALTH_PORT": str(probe_server.server_port)}
        for status, healthy in ((200, True), (503, False)):
            probe_server.status = status
            result = subprocess.run(
                [sys.executable, "-c", healthcheck_code(name)],
                env=env,
                capture_output=True,
                timeout=30,
            )
            assert (result.returncode == 0) is healthy, f"{name} on HTTP {status}"


def test_api_and_worker_environments_hold_only_variables_the_code_reads() -> None:
    fields = {field.upper() for field in Settings.model_fields}
    code = "\n".join(
        path.read_text()
        for folder in ("shared", "services")
        for path in (ROOT / folder).rglob("*.py")
    )
    for variable in NOT_SETTINGS:
        assert variable not in fields and variable in code, f"stale allow-list entry {variable}"
    for name, _, role in processes():
        unknown = set(environment(name)) - fields - set(NOT_SETTINGS)
        assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
        if role == "api":
            assert not set(environment(name)) & set(NOT_SETTINGS), name


def test_environments_parse_as_settings_pointing_at_the_services_own_database_and_the_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, svc, _ in processes():
        with monkeypatch.context() as patch:
            settings = settings_of(name, patch)
        url = urlsplit(settings.database_url)
        assert url.path == f"/{database_for(svc)}", name
        assert depends_on(name).get(url.hostname or "") == "service_healthy", name
        broker = settings.kafka_bootstrap_servers.split(",")[0].rpartition(":")[0]
        assert depends_on(name).get(broker) == "service_healthy", name
        assert services()[broker]["image"].startswith("apache/kafka:")
        assert settings.kafka_idempotence, f"{name}: Apache Kafka supports idempotent producers"


def test_workers_feeds_are_exactly_the_apis_of_the_services_they_consume(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, svc, role in processes():
        with monkeypatch.context() as patch:
            feeds = settings_of(name, patch).upstream_feeds
        expected = upstreams(svc) if role == "worker" else set()
        assert set(feeds) == expected, name
        for upstream, base in feeds.items():
            url = urlsplit(base)
            assert url.hostname == f"{upstream}-api", f"{name}: feed of {upstream}"
            assert url.port == api_port(f"{upstream}-api"), f"{name}: feed of {upstream}"
        raw_key = raw()["services"][name].get("environment", {}).get("FEED_API_KEY")
        if expected:
            assert raw_key is not None and str(raw_key).startswith("${FEED_API_KEY"), name


def test_secrets_come_from_the_environment_never_from_the_file() -> None:
    secretive = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$")
    for name, spec in raw()["services"].items():
        env = spec.get("environment") or {}
        for key, value in env.items():
            if secretive.search(key):
                assert re.fullmatch(r"\$\{\w+(:?[-?][^}]*)?\}", str(value)), f"{name}: {key}"
                assert not re.search(r":-[^}]+\}", str(value)), f"{name}: {key} has a default"
        if "DATABASE_URL" in env:
            assert (urlsplit(env["DATABASE_URL"]).password or "").startswith("${"), name


def test_topics_named_anywhere_are_the_services_topics_and_their_dead_letters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with monkeypatch.context() as patch:
        prefixes = {
            getattr(settings_of(name, patch), "kafka_topic_prefix", "")
            for name, _, _ in processes()
        }
    assert len(prefixes) == 1, "every process must agree on the topic prefix"
    prefix = prefixes.pop()
    expected = {prefix + topic_for(svc) for svc in SERVICES} | {
        f"{prefix}{topic_for(upstream)}.dlq" for svc in SERVICES for upstream in upstreams(svc)
    }
    text = COMPOSE.read_text() + (ROOT / "deploy" / "kafka-topics.sh").read_text()
    assert set(TOPIC_PATTERN.findall(text)) <= expected
    creators = [name for name in jobs() if "TOPICS" in environment(name)]
    for name in creators:
        assert set(environment(name)["TOPICS"].split()) == expected, name
        partitions = {
            environment(worker)["KAFKA_PARTITIONS"]
            for worker, _, role in processes()
            if role == "worker"
        }
        assert partitions == {environment(name)["TOPIC_PARTITIONS"]}, name


def test_the_topic_script_is_valid_bash_and_gets_every_variable_it_requires() -> None:
    script = ROOT / "deploy" / "kafka-topics.sh"
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    # Upper-case names come from the environment; lower-case ones are the script's own.
    text = script.read_text()
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)(?::\?[^}]*)?\}", text)) - set(
        re.findall(r"\$\{([A-Z_][A-Z0-9_]*):-", text)
    )
    runners = [
        name
        for name, spec in services().items()
        if any("kafka-topics.sh" in part for part in spec.get("entrypoint") or [])
    ]
    assert runners, "no service runs deploy/kafka-topics.sh"
    for name in runners:
        assert required <= set(environment(name)), (
            f"{name} misses {required - set(environment(name))}"
        )


def test_postgres_init_creates_each_services_database_as_the_user_the_services_log_in_as(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    init = ROOT / "deploy" / "postgres-init.sql"
    created = set(re.findall(r"CREATE DATABASE\s+\"?(\w+)\"?", init.read_text(), re.IGNORECASE))
    assert created == {database_for(svc) for svc in SERVICES}
    for name, _, _ in processes():
        with monkeypatch.context() as patch:
            url = urlsplit(settings_of(name, patch).database_url)
        server = services()[url.hostname or ""]
        mounts = [str(volume) for volume in server.get("volumes", [])]
        assert any(
            m.startswith("./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts
        ), f"{url.hostname} does not run the init script"
        assert environment(url.hostname or "")["POSTGRES_USER"] == url.username, name
        assert url.password == USER_ENV["POSTGRES_PASSWORD"], name


def test_build_and_image_references_resolve_to_files_in_the_repository() -> None:
    builder = built_service()
    build = services()[builder]["build"]
    path = dockerfile(build)
    assert path.is_file(), path
    context = ROOT / build["context"]
    patterns = dockerignore_patterns(context)
    copies = [args.split() for op, args in dockerfile_instructions(path) if op == "COPY"]
    sources = [
        part
        for args in copies
        if not any(a.startswith("--from") for a in args)
        for part in args[:-1]
        if not part.startswith("--")
    ]
    assert sources, "the Dockerfile copies nothing from the context"
    for source in sources:
        assert (context / source).exists(), f"COPY {source}: not in the repository"
        files = (
            [context / source]
            if (context / source).is_file()
            else [f for pattern in ("*.py", "*.sql") for f in (context / source).rglob(pattern)]
        )
        for file in files:
            relative = file.relative_to(context).as_posix()
            assert not dockerignored(relative, patterns), f"{relative} is left out of the build"
    image = services()[builder]["image"]
    for name, spec in services().items():
        if "build" in spec or spec["image"] == image:
            continue
        repository, _, tag = spec["image"].rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: pin the image {spec['image']}"


def test_the_image_installs_without_dev_extras_runs_as_non_root_and_defaults_to_an_api() -> None:
    instructions = dockerfile_instructions(dockerfile(services()[built_service()]["build"]))
    installs = [args for op, args in instructions if op == "RUN" and "pip install" in args]
    assert installs and not any("[dev" in args or " -e " in args for args in installs)
    users = [args for op, args in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    cmd = json.loads(next(args for op, args in reversed(instructions) if op == "CMD"))
    module, _, attribute = next(a for a in cmd if a.startswith("services.")).partition(":")
    assert callable(getattr(importlib.import_module(module), attribute))


def test_dependencies_exist_use_known_conditions_and_form_no_cycle() -> None:
    conditions = {"service_started", "service_healthy", JOB_CONDITION}
    for name in services():
        for target, condition in depends_on(name).items():
            assert target in services(), f"{name} waits for a missing {target}"
            assert condition in conditions, f"{name}: {condition}"
            if condition == "service_healthy":
                assert services()[target].get("healthcheck"), f"{target} can never be healthy"
    for name, _, role in processes():
        if role == "worker":
            assert any(c == JOB_CONDITION for c in depends_on(name).values()) or not jobs(), name

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        for target in depends_on(name):
            visit(target, (*path, name))

    for name in services():
        visit(name, ())


def test_named_volumes_are_declared_and_used_and_bind_mounts_exist() -> None:
    declared = set(compose().get("volumes") or {})
    used: set[str] = set()
    for name, spec in services().items():
        for volume in spec.get("volumes", []):
            source = volume["source"] if isinstance(volume, dict) else str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name}: bind mount {source} is missing"
            else:
                used.add(source)
    assert used == declared


# -- Kafka: authentication, one principal per service, ACLs (issue 17) --------------------

ACL_FILE = ROOT / "deploy" / "kafka-acls.txt"
# `twinaid audit replay|compare --source kafka` logs in as this principal (services/audit/)
AUDITOR = "auditor"


def broker_properties() -> dict[str, str]:
    """The broker's server properties as the apache/kafka image derives them from KAFKA_*."""
    props = {}
    for key, value in environment("kafka").items():
        if key.startswith("KAFKA_") and "=" not in value:
            name = key.removeprefix("KAFKA_")
            name = re.sub(r"(?<!_)_(?!_)", ".", name).replace("___", "-").replace("__", "_")
            props[name.lower()] = value
    return props


def listeners(value: str) -> dict[str, str]:
    """{listener name: host:port} of a listeners property."""
    return dict(item.split("://", 1) for item in value.split(","))


def acls() -> set[tuple[str, str, str, str]]:
    """(principal, resource, name, operation) of every line of deploy/kafka-acls.txt."""
    found = set()
    for line in ACL_FILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        principal, resource, name, operations = line.split()
        found |= {(principal, resource, name, op) for op in operations.split(",")}
    return found


def expected_acls(svc: str) -> set[tuple[str, str, str, str]]:
    """What `svc`'s worker does on the broker, by the code: publish its topic (shared/outbox.py,
    whose marker is `<topic>.epoch`), consume its upstreams in the group `<svc>.consumers`
    (shared/consumer.py, marker `<group>.epoch`), write their dead letters; the worker creates
    its topics when missing (shared/worker.py) and the markers (shared/kafka.py)."""
    own = topic_for(svc)
    rights = {
        ("topic", own, "Write"),
        ("topic", own, "Describe"),
        ("topic", own, "Create"),
        ("topic", f"{own}.epoch", "Create"),
        ("topic", f"{own}.epoch", "Describe"),
    }
    if upstreams(svc):
        group = f"{svc}.consumers"
        rights |= {
            ("group", group, "Read"),
            ("topic", f"{group}.epoch", "Create"),
            ("topic", f"{group}.epoch", "Describe"),
        }
    for upstream in upstreams(svc):
        theirs = topic_for(upstream)
        rights |= {("topic", theirs, "Read"), ("topic", theirs, "Describe")}
        rights |= {("topic", f"{theirs}.dlq", op) for op in ("Write", "Describe", "Create")}
    return {(svc, *right) for right in rights}


def test_the_acl_names_are_the_ones_the_code_uses() -> None:
    consumer = (ROOT / "shared" / "consumer.py").read_text()
    outbox = (ROOT / "shared" / "outbox.py").read_text()
    parking = (ROOT / "shared" / "consumer_parking.py").read_text()  # dead letters
    assert 'f"{settings.kafka_topic_prefix}{service}.consumers"' in consumer
    assert 'marker=f"{group}.epoch"' in consumer
    assert 'marker=f"{self.topic}.epoch"' in outbox
    assert 'f"{record.topic}.dlq"' in parking


def test_each_services_principal_may_do_exactly_what_its_worker_does_and_nothing_else() -> None:
    granted = acls()
    assert {principal for principal, *_ in granted} == {*SERVICES, AUDITOR}
    for svc in SERVICES:
        mine = {acl for acl in granted if acl[0] == svc}
        expected = expected_acls(svc)
        assert mine == expected, f"{svc}: missing {expected - mine}, extra {mine - expected}"
    # nobody may delete history, alter configs or the cluster
    assert {acl[3] for acl in granted} <= {"Read", "Write", "Describe", "Create"}
    # whoever writes a service's topic is that service; only its consumers read it
    for svc in SERVICES:
        writers = {p for p, r, n, op in granted if (r, n, op) == ("topic", topic_for(svc), "Write")}
        assert writers == {svc}
        readers = {p for p, r, n, op in granted if (r, n, op) == ("topic", topic_for(svc), "Read")}
        assert readers == {other for other in SERVICES if svc in upstreams(other)} | {AUDITOR}


def test_the_auditor_may_only_read_and_describe_the_three_event_topics() -> None:
    mine = {acl for acl in acls() if acl[0] == AUDITOR}
    expected = {
        (AUDITOR, "topic", topic_for(svc), op) for svc in SERVICES for op in ("Read", "Describe")
    }
    assert mine == expected, f"missing {expected - mine}, extra {mine - expected}"
    # no group right is needed: the audit reads every partition without joining a group
    sources = (ROOT / "services" / "audit" / "sources.py").read_text()
    assert "group_id=None" in sources
    assert "enable_auto_commit=False" in sources


def test_the_broker_refuses_unauthenticated_clients_and_authorizes_by_acl_only() -> None:
    props = broker_properties()
    protocols = dict(item.split(":") for item in props["listener.security.protocol.map"].split(","))
    bound = listeners(props["listeners"])
    assert set(bound) == set(protocols), "every listener has its protocol"
    assert set(listeners(props["advertised.listeners"])) <= set(bound)
    for name, protocol in protocols.items():
        assert protocol in {"SASL_PLAINTEXT", "SASL_SSL"}, f"listener {name} takes {protocol}"
    # the services' listeners take SCRAM; PLAIN (whose users live in the JAAS file) is only for
    # the broker's own listeners, where the one user is admin
    internal = {props["inter.broker.listener.name"], props["controller.listener.names"]}
    for name in bound:
        mechanisms = props.get(f"listener.name.{name.lower()}.sasl.enabled.mechanisms")
        mechanisms = mechanisms or props["sasl.enabled.mechanisms"]
        assert mechanisms == ("PLAIN" if name in internal else "SCRAM-SHA-512"), name
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:admin"
    jaas = (ROOT / "deploy" / "kafka-broker.sh").read_text()
    assert re.findall(r"\buser_(\w+)=", jaas) == ["admin"]
    assert '"${KAFKA_ADMIN_PASSWORD}"' in jaas and "unset KAFKA_ADMIN_PASSWORD" in jaas
    kafka = services()["kafka"]
    assert kafka["entrypoint"] == ["bash", "/deploy/kafka-broker.sh"]
    assert "./deploy/kafka-broker.sh:/deploy/kafka-broker.sh:ro" in kafka["volumes"]
    client = "/tmp/admin.properties"  # noqa: S108 (inside the broker's container)
    assert f"--command-config {client}" in kafka["healthcheck"]["test"][1]
    assert f"cat > {client}" in jaas
    subprocess.run(["bash", "-n", str(ROOT / "deploy" / "kafka-broker.sh")], check=True)


def test_workers_log_in_as_their_own_principal_and_apis_get_no_kafka_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    props = broker_properties()
    clients = {
        host_port: name for name, host_port in listeners(props["advertised.listeners"]).items()
    }
    for name, svc, role in processes():
        with monkeypatch.context() as patch:
            settings = settings_of(name, patch)
        assert settings.trusted_keys == PINS, f"{name}: every service's pinned key"
        if role == "api":
            assert settings.kafka_sasl_password is None and settings.kafka_sasl_username is None
            continue
        assert settings.kafka_security_protocol == "SASL_PLAINTEXT", name
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512", name
        assert settings.kafka_sasl_username == svc, name
        password = settings.kafka_sasl_password
        assert password and password.get_secret_value() == USER_ENV[f"KAFKA_{svc.upper()}_PASSWORD"]
        listener = clients[settings.kafka_bootstrap_servers]
        assert listener not in {props["inter.broker.listener.name"]}, name


def test_the_access_job_gives_each_principal_its_password_and_exactly_the_listed_acls(
    tmp_path: Path,
) -> None:
    job = services()["kafka-access"]
    assert job["entrypoint"] == ["bash", "/deploy/kafka-access.sh"]
    mounts = {str(v).split(":")[1]: str(v).split(":")[0] for v in job["volumes"]}
    env = environment("kafka-access")
    assert (ROOT / mounts[env["ACL_FILE"]]).resolve() == ACL_FILE
    for name, _, role in processes():
        if role == "worker":
            assert depends_on(name).get("kafka-access") == JOB_CONDITION, name
    # run it against stand-ins of the Kafka tools that record their arguments
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("kafka-configs.sh", "kafka-acls.sh"):
        stand_in = bin_dir / tool
        stand_in.write_text(f'#!/usr/bin/env bash\necho "{tool} $*" >> "{calls}"\n')
        stand_in.chmod(0o755)
    script = ROOT / mounts["/deploy/kafka-access.sh"]
    run_env = {**env, "ACL_FILE": str(ACL_FILE), "KAFKA_BIN": str(bin_dir), "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", str(script)], env=run_env, check=True, timeout=30)
    lines = calls.read_text().splitlines()
    for principal in (*SERVICES, AUDITOR):
        password = USER_ENV[f"KAFKA_{principal.upper()}_PASSWORD"]
        assert env[f"KAFKA_{principal.upper()}_PASSWORD"] == password, principal
        assert any(
            f"--entity-name {principal}" in line
            and "SCRAM-SHA-512=" in line
            and f"password={password}]" in line
            for line in lines
            if line.startswith("kafka-configs.sh")
        ), principal
    added = set()
    for line in lines:
        if line.startswith("kafka-acls.sh") and " --add " in line:
            args = line.split()
            principal = args[args.index("--allow-principal") + 1].removeprefix("User:")
            resource = next(a for a in args if a in ("--topic", "--group"))
            name = args[args.index(resource) + 1]
            ops = [args[i + 1] for i, a in enumerate(args) if a == "--operation"]
            added |= {(principal, resource.removeprefix("--"), name, op) for op in ops}
            assert "--command-config" in args
    assert added == acls()
    subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
