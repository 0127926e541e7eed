"""deploy/Dockerfile builds the same image tomorrow: its base pinned by digest, every Python
package at the version constraints.txt names; the image reports its health and runs as the
non-root user the Kubernetes manifests expect. Static: no Docker engine is needed."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from shared.settings import SERVICES
from tests.deploy.test_k8s import IMAGE_UID
from tests.test_compose import dockerfile_instructions, openapi_paths

# no database at all: CI runs it once
pytestmark = pytest.mark.once

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
CONSTRAINTS = ROOT / "constraints.txt"
BASE = ("python", "3.11-slim")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)


def stages() -> list[Stage]:
    """The build stages, each FROM's image resolved through the global ARGs."""
    args: dict[str, str] = {}
    found: list[Stage] = []
    for op, rest in dockerfile_instructions(DOCKERFILE):
        if op == "ARG" and not found:
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip()
        elif op == "FROM":
            words = rest.split()
            assert not words[0].startswith("--"), "FROM --platform: pin by digest instead"
            image = VARIABLE.sub(lambda m: args[m.group(1) or m.group(2)], words[0])
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(image, alias))
        elif found:
            found[-1].instructions.append((op, rest))
    assert found, "the Dockerfile has no FROM"
    return found


def external_bases() -> list[str]:
    aliases = {stage.name for stage in stages() if stage.name}
    return [stage.base for stage in stages() if stage.base not in aliases]


def exec_form(args: str) -> list[str]:
    parsed: list[str] = json.loads(args)
    return parsed


def test_every_stage_starts_from_python_3_11_slim_named_by_its_digest() -> None:
    bases = external_bases()
    assert bases
    for base in bases:
        reference, at, digest = base.partition("@")
        assert at, f"{base}: pin the base image by digest (image:tag@sha256:...)"
        assert tuple(reference.split(":")) == BASE, base
        assert digest.startswith("sha256:"), base
    # one base for every stage: the venv is built on the interpreter it runs on
    assert len(set(bases)) == 1, bases
    python = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert BASE[1].startswith(python["python_version"])


def test_the_base_digest_is_a_sha256_digest_not_a_placeholder() -> None:
    for base in external_bases():
        digest = base.partition("@")[2]
        assert DIGEST.fullmatch(digest), (
            f"deploy/Dockerfile pins {base}: put python:3.11-slim's manifest list digest there"
            " (`docker buildx imagetools inspect python:3.11-slim`, the Digest: line)"
        )


def constraints() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, equals, version = line.partition("==")
        assert equals and version and not re.search(r"[<>=!~;,\s]", version), line
        pins[canonicalize_name(name)] = version
    return pins


def test_every_pip_install_is_held_to_constraints_txt_which_the_stage_copied_first() -> None:
    installs = 0
    for stage in stages():
        copied: set[str] = set()
        for op, args in stage.instructions:
            if op == "COPY" and not args.startswith("--from"):
                copied |= {Path(source).name for source in args.split()[:-1]}
            if op == "RUN" and "pip install" in args:
                installs += 1
                words = shlex.split(args)
                flags = [i for i, word in enumerate(words) if word in ("-c", "--constraint")]
                assert flags, f"RUN {args}: pip install without -c constraints.txt"
                assert all(Path(words[i + 1]).name == CONSTRAINTS.name for i in flags), args
                assert CONSTRAINTS.name in copied, f"RUN {args}: constraints.txt not copied yet"
    assert installs, "the Dockerfile installs nothing"


def test_constraints_txt_pins_every_package_the_image_installs_as_pyproject_does() -> None:
    pins = constraints()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for requirement in map(Requirement, project["dependencies"]):
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{requirement}: pin it exactly"
        assert pins.get(canonicalize_name(requirement.name)) == specifier.version, requirement
    # the whole closure of the runtime dependencies (no extras), as installed here
    pending = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        assert name in pins, f"{name} is installed in the image but not in constraints.txt"
        for needed in map(Requirement, metadata.requires(name) or []):
            marker = needed.marker
            extras = ("", *requirement.extras)
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras):
                pending.append(needed)
    assert len(seen) > len(project["dependencies"]), "the closure holds transitive packages"


class _Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        assert isinstance(self.server, HealthServer)
        self.server.paths.append(self.path)
        self.send_response(self.server.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class HealthServer(ThreadingHTTPServer):
    status = 200

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Health)
        self.paths: list[str] = []


@pytest.fixture
def health_server() -> Iterator[HealthServer]:
    server = HealthServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def healthcheck() -> list[str]:
    final = stages()[-1].instructions
    checks = [args for op, args in final if op == "HEALTHCHECK"]
    assert len(checks) == 1, "the image's final stage declares one HEALTHCHECK"
    options, cmd, command = checks[0].partition("CMD ")
    assert cmd and "NONE" not in options.split(), checks[0]
    assert re.search(r"--timeout=\d+s", options), "a probe that hangs must fail"
    return exec_form(command)


def test_the_healthcheck_asks_the_processs_health_port_for_healthz_without_curl(
    health_server: HealthServer,
) -> None:
    probe = healthcheck()
    assert probe[:2] == ["python", "-c"], "slim images have no curl: probe with Python"
    for svc in SERVICES:
        assert "/healthz" in openapi_paths(f"services.{svc}.app"), svc
    exposed = [args for op, args in stages()[-1].instructions if op == "EXPOSE"]
    assert exposed == ["8000"] and "'8000'" in probe[2], "an API answers on 8000 by default"
    port = str(health_server.server_port)
    for env in ({"HEALTH_PORT": port}, {"WORKER_HEALTH_PORT": port}):
        for status, healthy in ((200, True), (503, False)):
            health_server.status = status
            health_server.paths.clear()
            result = subprocess.run(
                [sys.executable, "-c", probe[2]], env=env, capture_output=True, timeout=30
            )
            assert (result.returncode == 0) is healthy, f"{env} on HTTP {status}"
            assert health_server.paths == ["/healthz"], env
    # HEALTH_PORT decides over WORKER_HEALTH_PORT; nothing listening: unhealthy
    env = {"HEALTH_PORT": port, "WORKER_HEALTH_PORT": "1"}
    health_server.status = 200
    assert subprocess.run([sys.executable, "-c", probe[2]], env=env, timeout=30).returncode == 0
    env = {"HEALTH_PORT": "1"}
    result = subprocess.run(
        [sys.executable, "-c", probe[2]], env=env, capture_output=True, timeout=30
    )
    assert result.returncode != 0


def test_the_image_runs_as_the_non_root_user_it_creates_the_one_kubernetes_runs_as() -> None:
    final = stages()[-1].instructions
    users = [args for op, args in final if op == "USER"]
    assert users, "the final stage never leaves root"
    user, _, group = users[-1].partition(":")
    assert user.isdigit() and int(user) != 0, "a numeric uid: runAsNonRoot can check it"
    assert int(user) == IMAGE_UID and (not group or int(group) == IMAGE_UID)
    created = " ".join(args for op, args in final if op == "RUN")
    assert f"--uid {user}" in created and f"--gid {group or user}" in created
    # nothing runs as root after the switch
    after = final[[op for op, _ in final].index("USER") :]
    assert [op for op, _ in after if op == "RUN"] == []
