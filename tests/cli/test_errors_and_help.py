"""`twinaid` for people: a version, help on everything, and every error one line with a
non-zero exit code (a wrong URL, key, database, argument or file), never a traceback."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from services import cli, cli_errors, cli_support
from tests.cli.conftest import Stack, twinaid

# the command's behaviour, not SQL that differs between PostgreSQL versions: one CI pass
pytestmark = pytest.mark.once

TWINAID = str(Path(sys.executable).parent / "twinaid")


def one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err.strip()


def free_port() -> int:
    with socket.socket() as s:  # nothing listens on it once closed
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_the_version_is_the_installed_package_s() -> None:
    done = subprocess.run([TWINAID, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout == f"twinaid {cli.version()}\n"
    assert cli.version()[0].isdigit()


def test_every_command_and_option_has_help() -> None:
    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                for name, sub in action.choices.items():
                    if name not in helped:
                        missing.append(f"{path} {name}")
                    walk(sub, f"{path} {name}")
            elif not action.help or action.help == argparse.SUPPRESS:
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")

    walk(cli.parser(), "twinaid")
    assert missing == []
    leaves = list(cli_support.leaves(cli.parser()))
    assert len(leaves) >= 19  # keys x5, audit x5, export x2, contracts, config, backup, ...
    for leaf in leaves:  # and each of them answers --json
        assert "--json" in leaf._option_string_actions, leaf.prog


def test_bad_arguments_are_one_line_naming_the_help_with_exit_code_2(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    ran = twinaid(capsys, "rebuild", "nowhere")
    assert ran.code == 2 and ran.out == ""
    line = one_line(ran.err)
    assert "invalid choice: 'nowhere'" in line and "twinaid rebuild --help" in line
    ran = twinaid(capsys, "--database", "atlantis=postgresql://x/y", "keys", "list")
    assert ran.code == 2 and "--database wants SERVICE=URL" in one_line(ran.err)
    ran = twinaid(capsys, "audit", "trace", "x", "--key", "k", "--url", "pledges")
    assert ran.code == 2 and "--url wants SERVICE=URL" in one_line(ran.err)
    # a label the registry's key events could not carry (its rotation would fail later)
    long = "x" * 101
    ran = twinaid(capsys, "keys", "issue", "--organisation", "lille", "--label", long)
    assert ran.code == 2 and "--label: at most 100 characters" in one_line(ran.err)


def test_a_url_where_nothing_listens_is_one_line_from_the_installed_command(
    environment: pytest.MonkeyPatch,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [TWINAID, "audit", "trace", "lille", "--service", "registry", "--key", "twa_a_b"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**dict(__import__("os").environ), "TWINAID_REGISTRY_URL": url},
    )
    assert done.returncode == 1 and done.stdout == ""
    assert one_line(done.stderr) == (
        f"twinaid: cannot reach {url}: connection refused (nothing listens there: is the"
        " service running?)"
    )


def test_a_host_name_that_does_not_resolve_is_one_line(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    ran = twinaid(
        capsys, "audit", "trace", "lille", "--service", "registry", "--key", "twa_a_b",
        "--url", "registry=http://twinaid-nowhere.invalid",
    )  # fmt: skip
    assert ran.code == 1
    assert one_line(ran.err) == (
        "twinaid: cannot reach http://twinaid-nowhere.invalid: no such host (the name does"
        " not resolve)"
    )
    ran = twinaid(capsys, "export", "iati", "--organisation", "lille", "--key", "k", "--url", "x")
    assert ran.code == 1 and "not a usable URL" in one_line(ran.err)


def test_a_wrong_key_and_a_key_without_the_role_are_one_line_each(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, stack: Stack
) -> None:
    registry = f"registry={stack.urls['registry']}"
    trace = ("audit", "trace", "lille", "--service", "registry", "--url", registry)
    ran = twinaid(capsys, *trace, "--key", "twa_0000000000000000_wrong")
    assert ran.code == 1 and ran.out == ""
    line = one_line(ran.err)
    assert line.startswith(f"twinaid: {stack.urls['registry']} refused the API key: 401 ")
    assert "TWINAID_API_KEY" in line
    ran = twinaid(capsys, *trace, "--key", stack.member)  # a member may not read the feed
    assert ran.code == 1
    assert f"{stack.urls['registry']}: this API key may not do that: 403 " in one_line(ran.err)
    ran = twinaid(capsys, *trace)
    assert ran.code == 1 and "an auditor key is needed" in one_line(ran.err)


def test_a_database_server_that_is_down_is_named_without_its_password(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    port = free_port()
    environment.setenv("DATABASE_URL", f"postgresql://postgres:hunter2@127.0.0.1:{port}/x")
    commands: list[tuple[str, ...]] = [
        ("keys", "list"),
        ("rebuild", "registry"),
        ("migrate", "--list"),
    ]
    for argv in commands:
        ran = twinaid(capsys, *argv)
        assert ran.code == 1, argv
        line = one_line(ran.err)
        assert "127.0.0.1" in line and str(port) in line and "refused" in line.lower(), argv
        assert "hunter2" not in line
        if argv[0] != "migrate":  # (yoyo's own words there, in one line)
            assert f"cannot reach the database server 127.0.0.1:{port}: connection" in line


def test_files_that_are_missing_or_not_json_are_one_line(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran = twinaid(capsys, "audit", "verify-export", str(tmp_path / "missing.jsonl"))
    assert ran.code == 1
    assert one_line(ran.err) == f"twinaid: {tmp_path / 'missing.jsonl'}: No such file or directory"
    ran = twinaid(capsys, "keys", "signing-pin", "pledges", "--key-file", str(tmp_path))
    assert ran.code == 1 and "no usable signing key" in one_line(ran.err)


def test_debug_shows_the_traceback_instead(
    capsys: pytest.CaptureFixture[str], environment: pytest.MonkeyPatch
) -> None:
    url = f"registry=http://127.0.0.1:{free_port()}"
    argv = ["audit", "trace", "x", "--service", "registry", "--key", "k", "--url", url]
    with pytest.raises(httpx.ConnectError):
        cli.main(["--debug", *argv])
    with pytest.raises(httpx.ConnectError):
        cli.main([*argv, "--debug"])
    environment.setenv("TWINAID_DEBUG", "1")
    with pytest.raises(httpx.ConnectError):
        cli.main(argv)


def test_an_unexpected_error_is_named_a_bug_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken() -> int:
        raise ZeroDivisionError("division by zero")

    assert cli_errors.guarded(broken, debug=False) == 1
    line = one_line(capsys.readouterr().err)
    assert line.startswith("twinaid: unexpected ZeroDivisionError: division by zero; this is a bug")
    assert "--debug" in line
    assert json.dumps(cli_support.hide_passwords("postgresql://u:pw@h/db")) == (
        '"postgresql://u:***@h/db"'
    )
