"""`twinaid keys signing-pin`: the pin an operator writes into TRUSTED_KEYS (docker-compose)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared import signing
from shared.keys import KeyRing


def pin(key_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "services.cli", "keys", "signing-pin", "pledges"),
            "--key-file",
            str(key_file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prints_the_public_key_of_the_key_file_creating_it_once(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "pledges.ed25519"
    first, again = pin(key_file), pin(key_file)
    assert first.returncode == again.returncode == 0, first.stderr
    printed = first.stdout.strip()
    assert printed == again.stdout.strip() == signing.Signer.from_file(key_file).public_key
    assert KeyRing.pinned({"pledges": [printed]}).trusts("pledges", printed)


def test_a_file_that_holds_no_key_is_named_without_a_traceback(tmp_path: Path) -> None:
    key_file = tmp_path / "pledges.ed25519"
    key_file.write_text("not a key")
    done = pin(key_file)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"twinaid: no usable signing key in {key_file}" in done.stderr
