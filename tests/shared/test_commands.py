"""Commands with named handlers (shared/commands.py): one handler per command type, run by
type inside a unit of work."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict

from shared.codec import Event, EventCodec
from shared.commands import Command, Handlers
from shared.events import Metadata
from shared.repository import InMemoryUnitOfWork, Repository, UnitOfWork

pytestmark = pytest.mark.once  # pure Python, the in-memory store

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


class Opened(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.opened"

    name: str


@dataclass(frozen=True)
class Account:
    record_id: str
    version: int = 0
    name: str | None = None


def evolve(state: Account, event: Event[Any]) -> Account:
    match event.payload:
        case Opened(name=name):
            return Account(state.record_id, event.stream_version, name)
    return state


ACCOUNTS = Repository(
    stream_type="account", codec=EventCodec([Opened]), initial=Account, evolve=evolve
)


@dataclass(frozen=True)
class Open(Command):
    account_id: str
    name: str


@dataclass(frozen=True)
class Rename(Command):
    account_id: str
    name: str


@dataclass(frozen=True)
class OpenTwice(Open):
    """A subclass of a registered command is a command of its own."""


def handlers() -> Handlers:
    found = Handlers("tests")

    @found.register(Open)
    async def open_account(command: Open, uow: UnitOfWork) -> dict[str, Any]:
        account = await ACCOUNTS.load(uow, command.account_id)
        recorded = await ACCOUNTS.append(
            uow,
            command.account_id,
            expected_version=account.version,
            events=[Opened(name=command.name)],
        )
        return {"id": command.account_id, "version": recorded[-1].stream_version}

    return found


async def test_a_command_runs_its_registered_handler_in_the_unit_of_work() -> None:
    found = handlers()
    uow = InMemoryUnitOfWork(metadata=Metadata(actor="k1"), now=NOW)
    assert await found.handle(Open("a", "Lille"), uow) == {"id": "a", "version": 1}
    assert await ACCOUNTS.load(uow, "a") == Account("a", 1, "Lille")
    assert [(e.stream_id, e.metadata.actor, e.recorded_at) for e in uow.projected] == [
        ("account-a", "k1", NOW)
    ]
    assert found.commands() == [Open] and found.service == "tests"


async def test_one_handler_per_command_type() -> None:
    found = handlers()

    async def another(command: Open, uow: UnitOfWork) -> None:
        return None

    with pytest.raises(TypeError, match=r"Open is already handled by .*open_account"):
        found.register(Open)(another)
    with pytest.raises(TypeError, match="not a Command"):
        found.register(str)  # type: ignore[type-var]
    assert found.commands() == [Open]


async def test_a_command_without_a_handler_is_a_lookup_error() -> None:
    found, uow = handlers(), InMemoryUnitOfWork()
    with pytest.raises(LookupError, match="tests: no handler for Rename"):
        await found.handle(Rename("a", "Kharkiv"), uow)
    # handled by exact type: a subclass of a registered command has no handler of its own
    with pytest.raises(LookupError, match="no handler for OpenTwice"):
        await found.handle(OpenTwice("a", "Lille"), uow)
    assert uow.projected == [] and await uow.store.read_stream("account-a") == []


def test_commands_and_the_codec_import_no_driver_or_framework() -> None:
    """A service's commands, events and domain import them: they stay pure at run time."""
    probe = (
        "import sys, shared.codec, shared.commands; "
        "print(sorted(m for m in ('asyncpg', 'fastapi', 'starlette', 'aiokafka', 'httpx')"
        " if m in sys.modules))"
    )
    found = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert found.stdout.strip() == "[]"
