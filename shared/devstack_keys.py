"""The dev stack's keys: the demo API keys issued at every start, and each service's checkpoint
signing key with the pins of their public keys (TRUSTED_KEYS), kept across restarts.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared import signing
from shared.auth import Role
from shared.settings import SERVICES

DEMO_LABEL = "demo"


@dataclass(frozen=True, slots=True)
class DemoKey:
    who: str
    organisation: str
    roles: tuple[Role, ...]


# Organisation ids are the slugs of services/registry/demo.py.
DEMO_KEYS = (
    DemoKey("registry administrator", "twinaid", (Role.REGISTRY_ADMIN,)),
    DemoKey("member: Lille", "lille", (Role.MEMBER,)),
    DemoKey("member: Kharkiv", "kharkiv", (Role.MEMBER,)),
    DemoKey("member: Leeds", "leeds", (Role.MEMBER,)),
    DemoKey("member: Bucha", "bucha", (Role.MEMBER,)),
    DemoKey("logistics: Lille convoys", "lille", (Role.LOGISTICS,)),
    DemoKey("key administrator: Lille (org_admin)", "lille", (Role.ORG_ADMIN,)),
    DemoKey("logistics: Kharkiv", "kharkiv", (Role.LOGISTICS,)),
    DemoKey("auditor", "twinaid-audit", (Role.AUDITOR,)),
    DemoKey("service (the workers' FEED_API_KEY)", "twinaid", (Role.SERVICE,)),
)


def default_keys_dir(env: Mapping[str, str]) -> Path:
    """Where the dev stack keeps its keys: $TWINAID_DATA_DIR/keys (.data/keys by default)."""
    return Path(env.get("TWINAID_DATA_DIR", ".data")) / "keys"


def signing_key_file(keys_dir: Path, service: str) -> Path:
    return keys_dir / f"{service}.ed25519"


def worker_key_file(service: str, env: Mapping[str, str]) -> Path:
    """Where a command on this machine finds `service`'s checkpoint signing key when none is
    given: the worker's $SIGNING_KEY_FILE, else the dev stack's."""
    if env.get("SIGNING_KEY_FILE"):
        return Path(env["SIGNING_KEY_FILE"])
    return signing_key_file(default_keys_dir(env), service)


def pins_file(keys_dir: Path) -> Path:
    return keys_dir / "trusted_keys.json"


def pin_signing_keys(keys_dir: Path) -> dict[str, list[str]]:
    """Each service's signing key (kept in `keys_dir` across restarts, created the first time)
    and the pins of their public keys, kept in `keys_dir`/trusted_keys.json in TRUSTED_KEYS'
    form. A service is pinned once, to the key it first had: a later key is trusted only
    through a change its log announces, signed by the pinned key (twinaid keys rotate-signing),
    exactly as on a real deployment, whose pins an operator writes."""
    path = pins_file(keys_dir)
    pins: dict[str, list[str]] = {}
    with contextlib.suppress(OSError, ValueError):
        previous = json.loads(path.read_text())
        if isinstance(previous, dict):
            pins = {
                str(s): [str(k) for k in keys]
                for s, keys in previous.items()
                if isinstance(keys, list) and keys
            }
    for service in SERVICES:
        key = signing.Signer.from_file(signing_key_file(keys_dir, service)).public_key
        pins.setdefault(service, [key])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(pins, indent=2) + "\n")
    return pins
