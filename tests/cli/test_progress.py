"""Progress bars on rebuild, replay and export: on standard error, only on a terminal (or when
TWINAID_PROGRESS=1 asks), with the count, the total and the time left; never in --json."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from services import cli_support
from shared.testing import seal_everything
from tests.cli.conftest import Stack, twinaid

# the command's behaviour, not SQL that differs between PostgreSQL versions: one CI pass
pytestmark = pytest.mark.once

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(text: str) -> str:
    return ANSI.sub("", text)


def test_bars_show_count_total_and_time_left_when_asked_and_leave_json_alone(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    environment.setenv("TWINAID_API_KEY", stack.auditor)
    environment.setenv("DATABASE_URL", stack.server)
    environment.setenv("TWINAID_PROGRESS", "1")
    db = stack.database_flags()

    async def sealed() -> None:
        # the export reads the feed (sealed events only); this stack runs no sealer, and the
        # package's other tests (tests/cli/test_commands.py) append to the registry's log
        conn = await asyncpg.connect(stack.databases["registry"])
        try:
            await seal_everything(conn)
        finally:
            await conn.close()

    asyncio.run(sealed())
    ran = twinaid(capsys, *db, "rebuild", "registry", "--json")
    events = json.loads(ran.out)["events_replayed"]
    shown = plain(ran.err)
    assert "rebuilding registry" in shown and f"{events}/{events} events" in shown
    assert re.search(r"left \d:\d\d:\d\d", shown), shown

    out = tmp_path / "registry.jsonl"
    ran = twinaid(capsys, "audit", "export", "registry", str(out), "--json")
    assert json.loads(ran.out)["exported"] == events
    shown = plain(ran.err)
    # the total came from the feed's head, probed before reading
    assert "exporting registry" in shown and f"{events}/{events} events" in shown

    ran = twinaid(capsys, *db, "audit", "replay", "--service", "registry", "--json")
    [report] = json.loads(ran.out)
    assert report["chain"]["intact"] is True
    assert f"{events}/{events} events" in plain(ran.err) and "replaying registry" in ran.err


def test_no_bar_into_a_pipe_or_a_file(
    capsys: pytest.CaptureFixture[str],
    environment: pytest.MonkeyPatch,
    stack: Stack,
    tmp_path: Path,
) -> None:
    environment.setenv("TWINAID_PORT_BASE", str(stack.port_base))
    environment.setenv("TWINAID_API_KEY", stack.auditor)
    ran = twinaid(capsys, "audit", "export", "registry", str(tmp_path / "r.jsonl"), "--json")
    assert ran.code == 0 and ran.err == ""
    ran = twinaid(capsys, *stack.database_flags(), "rebuild", "registry")
    assert ran.code == 0 and ran.err == ""
    environment.setenv("TWINAID_PROGRESS", "0")
    assert not cli_support.progress_enabled()


def test_a_terminal_gets_the_bar_and_the_piped_json_stays_clean(stack: Stack) -> None:
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINAID_")}
    try:
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "twinaid"),
                *stack.database_flags(),
                "rebuild",
                "registry",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=terminal,
            env=env,
            timeout=60,
        )
        os.close(terminal)
        terminal = -1
        seen = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the terminal closed: everything is read
                break
            if not chunk:
                break
            seen += chunk
    finally:
        if terminal >= 0:
            os.close(terminal)
        os.close(controller)
    assert done.returncode == 0
    events = json.loads(done.stdout)["events_replayed"]
    assert f"{events}/{events} events" in plain(seen.decode())
