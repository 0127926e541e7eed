"""make run pins every service's signing key once and keeps the pins across restarts."""

from __future__ import annotations

import json
from pathlib import Path

from shared import devstack_keys, signing
from shared.keys import KeyRing
from shared.settings import SERVICES


def test_pins_the_public_key_of_each_services_key_file_and_writes_them(tmp_path: Path) -> None:
    pins = devstack_keys.pin_signing_keys(tmp_path)

    for service in SERVICES:
        key = signing.Signer.from_file(devstack_keys.signing_key_file(tmp_path, service)).public_key
        assert pins[service] == [key]
    assert json.loads(devstack_keys.pins_file(tmp_path).read_text()) == pins
    assert KeyRing.pinned(pins).keys("pledges") == tuple(pins["pledges"])


def test_a_restart_keeps_the_pins_and_a_replaced_key_file_is_not_pinned_silently(
    tmp_path: Path,
) -> None:
    first = devstack_keys.pin_signing_keys(tmp_path)
    assert devstack_keys.pin_signing_keys(tmp_path) == first

    devstack_keys.signing_key_file(tmp_path, "registry").unlink()
    second = devstack_keys.pin_signing_keys(tmp_path)

    new = signing.Signer.from_file(devstack_keys.signing_key_file(tmp_path, "registry")).public_key
    assert new not in second["registry"]
    assert second == first
