"""Where `twinaid` finds the APIs and the key: a flag, else the environment, else the config
file, else the dev stack's ports; so a stack on other ports needs no flag at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services import cli_support
from tests.cli.conftest import Stack, twinaid

# the command's behaviour, not SQL that differs between PostgreSQL versions: one CI pass
pytestmark = pytest.mark.once

TRACE = ("audit", "trace", "lille-kharkiv", "--service", "registry", "--json")


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_config_file_alone_reaches_the_apis_with_its_key(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    path = config_file(
        tmp_path, f'audit_key = "{stack.auditor}"\n[urls]\nregistry = "{stack.urls["registry"]}"\n'
    )
    environment.setenv("TWINAID_CONFIG", str(path))
    ran = twinaid(capsys, *TRACE)
    assert ran.code == 0, ran.err
    assert "partnership-lille-kharkiv" in {s["stream_id"] for s in json.loads(ran.out)}

    # the same file at the XDG place, found without being named
    environment.delenv("TWINAID_CONFIG")
    environment.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg" / "twinaid").mkdir(parents=True)
    path.rename(tmp_path / "xdg" / "twinaid" / "config.toml")
    assert twinaid(capsys, *TRACE).code == 0


def test_a_port_base_in_the_environment_or_the_file_moves_every_api(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    environment.setenv("TWINAID_API_KEY", stack.auditor)
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    ran = twinaid(capsys, "config", "--json")
    shown = json.loads(ran.out)
    assert shown["urls"] == stack.urls
    assert shown["origin"]["pledges_url"] == "TWINAID_PORT_BASE"
    assert shown["api_key"].endswith("_…") and stack.auditor not in ran.out
    assert twinaid(capsys, *TRACE).code == 0

    environment.delenv("TWINAID_PORT_BASE")
    path = config_file(tmp_path, f"port_base = {stack.port_base}\n")
    ran = twinaid(capsys, "--config", str(path), *TRACE)
    assert ran.code == 0, ran.err


def test_a_flag_beats_the_environment_which_beats_the_file(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    nowhere = "http://127.0.0.1:9"
    path = config_file(
        tmp_path,
        f'api_key = "twa_0000000000000000_wrong"\naudit_key = "{stack.auditor}"\n'
        f'[urls]\nregistry = "{nowhere}"\npledges = "{stack.urls["pledges"]}"\n',
    )
    environment.setenv("TWINAID_CONFIG", str(path))
    environment.setenv("TWINAID_REGISTRY_URL", stack.urls["registry"])
    config = cli_support.load(dict(__import__("os").environ))
    assert config.urls["registry"] == stack.urls["registry"]  # environment over file
    assert config.urls["pledges"] == stack.urls["pledges"]  # file over default
    assert config.urls["shipments"] == "http://127.0.0.1:8103"  # the default
    assert config.origin["registry_url"] == "TWINAID_REGISTRY_URL"
    assert config.origin["pledges_url"] == f"config file {path} ([urls] pledges)"
    assert twinaid(capsys, *TRACE).code == 0  # the env's URL, the file's audit key

    ran = twinaid(capsys, *TRACE, "--url", f"registry={nowhere}")  # flag over environment
    assert ran.code == 1 and f"cannot reach {nowhere}" in ran.err
    environment.setenv("TWINAID_AUDIT_KEY", "twa_1111111111111111_wrong")  # env over file
    ran = twinaid(capsys, *TRACE)
    assert ran.code == 1 and "refused the API key" in ran.err
    ran = twinaid(capsys, *TRACE, "--key", stack.auditor)  # flag over environment
    assert ran.code == 0, ran.err

    text = twinaid(capsys, "config").out
    assert f"registry API  {stack.urls['registry']}  (TWINAID_REGISTRY_URL)" in text
    assert f"pledges API   {stack.urls['pledges']}  (config file {path} ([urls] pledges))" in text


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("port_base = ", "is not TOML"),
        ('colour = "blue"\n', "unknown settings colour"),
        ('[urls]\natlantis = "http://x"\n', "[urls] wants SERVICE"),
        ('port_base = "9100"\n', "port_base wants a number"),
        ("api_key = 7\n", "api_key wants a string"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    tmp_path: Path,
    text: str,
    said: str,
) -> None:
    path = config_file(tmp_path, text)
    ran = twinaid(capsys, "--config", str(path), "config")
    assert ran.code == 1 and ran.out == ""
    assert ran.err.startswith(f"twinaid: the config file {path}") and said in ran.err
    assert ran.err.count("\n") == 1


def test_a_named_config_file_must_exist_and_a_bad_port_base_is_named(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran = twinaid(capsys, "--config", str(tmp_path / "none.toml"), "config")
    assert (ran.code, ran.err) == (1, f"twinaid: no config file {tmp_path / 'none.toml'}\n")
    environment.setenv("TWINAID_PORT_BASE", "eighty")
    ran = twinaid(capsys, "config")
    assert ran.code == 1 and "TWINAID_PORT_BASE wants a number" in ran.err
