"""`twinaid audit compare` is exact, on the three services loaded with the demo data.

The whole stack runs as processes (three APIs, three workers, the test broker), each service on
a fresh database, loaded by the demo loaders as `make run` loads it. Once every event is sealed,
published and applied by every consumer, compare (the `twinaid` command, replaying each
service's feed into a scratch database) finds no difference. Then read-model rows are changed
behind the services' backs, in every way a row can differ, and compare names each: the table,
the row's primary key, the column and both values; numbers written another way in JSON are not
a difference. `twinaid rebuild` then puts every row back (so the tests run in any order).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared import auth, directory
from shared import db as dbmod
from shared.auth import Role
from shared.testing import fresh_database
from tests.e2e.processes import Stack

SERVICES = ("registry", "pledges", "shipments")
SCHEMAS = {
    "registry": (dbmod.schema_text("services.registry"),),
    "pledges": (directory.SCHEMA, dbmod.schema_text("services.pledges")),
    "shipments": (directory.SCHEMA, dbmod.schema_text("services.shipments")),
}
UPSTREAMS = {
    "registry": (),
    "pledges": ("registry", "shipments"),
    "shipments": ("registry", "pledges"),
}
KEYS = {
    "admin": ("twinaid", [Role.REGISTRY_ADMIN]),
    "service": ("twinaid", [Role.SERVICE]),
    "auditor": ("cour-des-comptes", [Role.AUDITOR]),
}


@dataclass
class Loaded:
    server: str
    dbs: dict[str, str]
    apis: dict[str, str]
    auditor: str

    def twinaid(self, *args: str, expect: int = 0) -> str:
        command = [sys.executable, "-m", "services.cli"]
        for service in SERVICES:
            command += ["--database", f"{service}={self.dbs[service]}"]
        env = {**os.environ, "DATABASE_URL": self.server, "TWINAID_AUDIT_KEY": self.auditor}
        done = subprocess.run(
            [*command, *args], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == expect, done.stdout + done.stderr
        return done.stdout

    def compare(self, *options: str, expect: int) -> str:
        urls = [f"--url={service}={self.apis[service]}" for service in SERVICES]
        return self.twinaid("audit", "compare", *options, *urls, expect=expect)

    def differences(self, *, expect: int) -> list[dict[str, Any]]:
        reports = json.loads(self.compare("--json", expect=expect))
        assert [r["service"] for r in reports] == list(SERVICES)
        for report in reports:
            assert report["chain"]["intact"], report
        return [d for r in reports for d in r["differences"]]

    async def execute(self, service: str, sql: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.dbs[service])
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()


async def _keys(dbs: dict[str, str]) -> dict[str, str]:
    tokens = {who: auth.new_key()[1] for who in KEYS}
    for url in dbs.values():
        conn = await asyncpg.connect(url)
        try:
            for who, (organisation, roles) in KEYS.items():
                await auth.issue(conn, organisation=organisation, roles=roles, token=tokens[who])
        finally:
            await conn.close()
    return tokens


async def _demo(service: str, url: str, key: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        f"services.{service}.demo",
        "--url",
        url,
        "--key",
        key,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, f"{service} demo failed:\n{out.decode()}"


async def _settled(dbs: dict[str, str]) -> bool:
    """Every event sealed and published, and every consumer at the head of each upstream."""
    heads: dict[str, int] = {}
    applied: dict[str, dict[str, int]] = {}
    for service, url in dbs.items():
        conn = await asyncpg.connect(url)
        try:
            unsealed = await conn.fetchval(
                "SELECT count(*) FROM events e"
                " WHERE NOT EXISTS (SELECT 1 FROM event_chain c WHERE c.event_id = e.event_id)"
            )
            head = await conn.fetchval("SELECT coalesce(max(position), 0) FROM event_chain")
            relayed = await conn.fetchval("SELECT coalesce(max(position), 0) FROM relay_checkpoint")
            progress = await conn.fetch("SELECT upstream, position FROM consumer_progress")
        finally:
            await conn.close()
        if unsealed or relayed != head:
            return False
        heads[service] = head
        applied[service] = {r["upstream"]: r["position"] for r in progress}
    return all(
        applied[service].get(upstream) == heads[upstream]
        for service in SERVICES
        for upstream in UPSTREAMS[service]
    )


@pytest.fixture(scope="module")
async def loaded(
    pg_server: str, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Loaded]:
    logs: Path = tmp_path_factory.mktemp("compare-stack")
    async with AsyncExitStack() as exits:
        dbs = {
            s: await exits.enter_async_context(fresh_database(pg_server, *SCHEMAS[s]))
            for s in SERVICES
        }
        keys = await _keys(dbs)
        stack = Stack(kafka=kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:8]}.", logs=logs)
        exits.callback(stack.stop_all)
        procs = {s: stack.api(s, dbs[s]) for s in SERVICES}
        apis = {s: f"http://127.0.0.1:{p.port}" for s, p in procs.items()}
        for service in SERVICES:
            feeds = {s: url for s, url in apis.items() if s != service}
            stack.worker(service, dbs[service], feeds=feeds, feed_key=keys["service"])
        for proc in procs.values():
            await asyncio.to_thread(stack.wait_ready, proc, 60)
        for service in SERVICES:
            await _demo(service, apis[service], keys["admin"])
        for _ in range(600):
            if await _settled(dbs):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the services did not settle after the demo data")
        yield Loaded(pg_server, dbs, apis, keys["auditor"])


async def test_compare_finds_no_difference_on_freshly_loaded_demo_data(loaded: Loaded) -> None:
    rows = await loaded.execute(
        "shipments",
        "SELECT convoy_id FROM manifest_lines GROUP BY convoy_id HAVING count(*) > 1",
    )
    assert rows, "no demo convoy carries several manifest lines: the key would not be tested"
    assert loaded.differences(expect=0) == []
    assert "no differences with the live read models" in loaded.compare(expect=0)


async def test_compare_names_the_key_column_and_both_values_of_each_change(
    loaded: Loaded,
) -> None:
    # a convoy's second manifest line (keyed by convoy and line, not by the convoy alone)
    [line] = await loaded.execute(
        "shipments",
        "SELECT convoy_id, manifest_line_id, quantity FROM manifest_lines m"
        " WHERE (SELECT count(*) FROM manifest_lines o WHERE o.convoy_id = m.convoy_id) > 1"
        " ORDER BY convoy_id, manifest_line_id DESC LIMIT 1",
    )
    await loaded.execute(
        "shipments",
        "UPDATE manifest_lines SET quantity = quantity + 1"
        " WHERE convoy_id = $1 AND manifest_line_id = $2",
        line["convoy_id"],
        line["manifest_line_id"],
    )
    # a number inside JSON changed, and others only written another way (23.0928 as
    # 23.0928000): the road's checkpoints on the convoys' timelines
    placed = await loaded.execute(
        "shipments",
        "SELECT event_id, data FROM convoy_timeline"
        " WHERE jsonb_typeof(data->'coordinates') = 'object' ORDER BY event_id",
    )
    assert len(placed) > 1, "the demo convoys passed fewer than two checkpoints"
    changed = placed[0]["event_id"]
    data = json.loads(placed[0]["data"])
    await loaded.execute(
        "shipments",
        "UPDATE convoy_timeline SET data = jsonb_set(data, '{coordinates,lon}', '23.5')"
        " WHERE event_id = $1",
        changed,
    )
    respelled = await loaded.execute(
        "shipments",
        "UPDATE convoy_timeline SET data = jsonb_set(jsonb_set(data,"
        " '{coordinates,lat}', to_jsonb((data#>>'{coordinates,lat}')::numeric * 1.000)),"
        " '{coordinates,lon}', to_jsonb((data#>>'{coordinates,lon}')::numeric * 1.000))"
        " WHERE jsonb_typeof(data->'coordinates') = 'object' AND event_id <> $1"
        " RETURNING data",
        changed,
    )
    assert all("000," in r["data"] or "000}" in r["data"] for r in respelled), respelled
    # two rows' values swapped
    first, second = await loaded.execute(
        "shipments",
        "SELECT DISTINCT ON (status) convoy_id, status FROM convoys ORDER BY status, convoy_id"
        " LIMIT 2",
    )
    await loaded.execute(
        "shipments",
        "UPDATE convoys SET status = CASE convoy_id WHEN $1 THEN $4 ELSE $3 END"
        " WHERE convoy_id IN ($1, $2)",
        first["convoy_id"],
        second["convoy_id"],
        first["status"],
        second["status"],
    )
    # a row gone from the live read model, and one the log never made
    [gone] = await loaded.execute(
        "pledges",
        "DELETE FROM pledge_lines WHERE line_key = (SELECT min(line_key) FROM pledge_lines)"
        " RETURNING line_key, quantity",
    )
    [need] = await loaded.execute("pledges", "SELECT * FROM needs ORDER BY need_id LIMIT 1")
    columns = list(need.keys())
    await loaded.execute(
        "pledges",
        f"INSERT INTO needs ({', '.join(columns)})"
        f" SELECT {', '.join('$1' if c == 'need_id' else c for c in columns)}"
        " FROM needs WHERE need_id = $2",
        "forged-need",
        need["need_id"],
    )

    differences = loaded.differences(expect=1)

    found = {
        (d["service"], d["table"], json.dumps(d["key"]), d["kind"], d["column"]): d
        for d in differences
    }
    changed_line = found[
        (
            "shipments",
            "manifest_lines",
            json.dumps(
                {"convoy_id": line["convoy_id"], "manifest_line_id": line["manifest_line_id"]}
            ),
            "differs",
            "quantity",
        )
    ]
    assert Decimal(str(changed_line["live"])) == line["quantity"] + 1
    assert Decimal(str(changed_line["rebuilt"])) == line["quantity"]
    moved = found[
        ("shipments", "convoy_timeline", json.dumps({"event_id": str(changed)}), "differs", "data")
    ]
    assert moved["live"] == {**data, "coordinates": {**data["coordinates"], "lon": 23.5}}
    assert moved["rebuilt"] == data
    for mine, theirs in ((first, second), (second, first)):
        swapped = found[
            (
                "shipments",
                "convoys",
                json.dumps({"convoy_id": mine["convoy_id"]}),
                "differs",
                "status",
            )
        ]
        assert (swapped["live"], swapped["rebuilt"]) == (theirs["status"], mine["status"])
    missing = found[
        (
            "pledges",
            "pledge_lines",
            json.dumps({"line_key": gone["line_key"]}),
            "missing from live",
            None,
        )
    ]
    assert missing["live"] is None and missing["rebuilt"]["line_key"] == gone["line_key"]
    forged = found[
        ("pledges", "needs", json.dumps({"need_id": "forged-need"}), "not in the log", None)
    ]
    assert forged["rebuilt"] is None and forged["live"]["need_id"] == "forged-need"
    assert len(differences) == 6, differences

    out = loaded.compare(expect=1)
    key = f"convoy_id={line['convoy_id']}, manifest_line_id={line['manifest_line_id']}"
    assert f"manifest_lines [{key}] quantity: live " in out, out
    assert f"convoy_timeline [event_id={changed}] data: live " in out, out
    assert f"pledge_lines [line_key={gone['line_key']}]: missing from live: " in out, out
    assert "needs [need_id=forged-need]: not in the log: " in out, out

    # rebuilding the read models from the log puts every row back
    for service in ("pledges", "shipments"):
        loaded.twinaid("rebuild", service)
    assert loaded.differences(expect=0) == []


async def test_compare_rebuilds_each_services_copies_of_upstream_facts_from_their_logs(
    loaded: Loaded,
) -> None:
    reports = {r["service"]: r for r in json.loads(loaded.compare("--json", expect=0))}
    for service, tables in (
        ("pledges", ("directory", "partnership_directory", "deliveries", "convoy_lines")),
        ("shipments", ("directory", "pledge_lines")),
    ):
        copies = reports[service]["copies"]
        assert set(copies) == {*tables, "api_keys"}, copies
        # keys issued over HTTP, by the registry's log: none in the demo (make run's keys are an
        # operator's, issued straight into the databases, in no log, and not compared)
        assert copies["api_keys"] == 0
        for table in tables:
            [live] = await loaded.execute(service, f"SELECT count(*) AS n FROM {table}")
            assert copies[table] == live["n"] > 0, (service, table)
        assert reports[service]["differences"] == []
    assert reports["registry"]["copies"] == {}
    assert "no differences with the live read models and copies" in loaded.compare(expect=0)


async def test_compare_names_a_copy_changed_or_forged_behind_the_consumer(
    loaded: Loaded,
) -> None:
    [bucha] = await loaded.execute(
        "pledges", "SELECT name FROM directory WHERE organisation_id = 'bucha'"
    )
    [line] = await loaded.execute(
        "shipments",
        "SELECT pledge_id, line_id, quantity FROM pledge_lines ORDER BY pledge_id, line_id LIMIT 1",
    )
    [delivery] = await loaded.execute(
        "pledges", "SELECT * FROM deliveries ORDER BY convoy_id, manifest_line_id LIMIT 1"
    )
    await loaded.execute(
        "pledges", "UPDATE directory SET name = 'Butcha' WHERE organisation_id = 'bucha'"
    )
    await loaded.execute(
        "shipments",
        "UPDATE pledge_lines SET quantity = quantity + 950 WHERE pledge_id = $1 AND line_id = $2",
        line["pledge_id"],
        line["line_id"],
    )
    # the issue's forgery as it lands: a delivery of 1,000 that shipments never confirmed
    forged_key = {
        "pledge_id": delivery["pledge_id"],
        "line_id": delivery["line_id"],
        "convoy_id": "convoy-forged",
        "manifest_line_id": "ml-forged",
    }
    await loaded.execute(
        "pledges",
        "INSERT INTO deliveries (event_id, pledge_id, line_id, convoy_id, manifest_line_id,"
        " unit, loaded, received, damaged, short, lost, occurred_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, 1000, 1000, 0, 0, 0, now())",
        uuid.uuid4(),
        *forged_key.values(),
        delivery["unit"],
    )
    try:
        differences = loaded.differences(expect=1)
        crossed = {
            (
                d["service"],
                d["copy_of"],
                d["table"],
                json.dumps(d["key"]),
                d["kind"],
                d["column"],
            ): d
            for d in differences
            if "copy_of" in d
        }
        renamed = crossed[
            (
                "pledges",
                "registry",
                "directory",
                json.dumps({"organisation_id": "bucha"}),
                "differs",
                "name",
            )
        ]
        assert (renamed["live"], renamed["rebuilt"]) == ("Butcha", bucha["name"])
        key = json.dumps({"pledge_id": line["pledge_id"], "line_id": line["line_id"]})
        grown = crossed[("shipments", "pledges", "pledge_lines", key, "differs", "quantity")]
        assert Decimal(str(grown["live"])) == line["quantity"] + 950
        assert Decimal(str(grown["rebuilt"])) == line["quantity"]
        forged = crossed[
            ("pledges", "shipments", "deliveries", json.dumps(forged_key), "not in the log", None)
        ]
        assert forged["rebuilt"] is None and forged["live"]["loaded"] == 1000
        assert len(crossed) == 3, crossed

        out = loaded.compare(expect=1)
        assert (
            "directory (copy of registry facts) [organisation_id=bucha] name:"
            f' live "Butcha", rebuilt "{bucha["name"]}"'
        ) in out, out
        assert "deliveries (copy of shipments facts) [pledge_id=" in out, out
    finally:
        await loaded.execute(
            "pledges",
            "UPDATE directory SET name = $1 WHERE organisation_id = 'bucha'",
            bucha["name"],
        )
        await loaded.execute(
            "shipments",
            "UPDATE pledge_lines SET quantity = $3 WHERE pledge_id = $1 AND line_id = $2",
            line["pledge_id"],
            line["line_id"],
            line["quantity"],
        )
        await loaded.execute("pledges", "DELETE FROM deliveries WHERE convoy_id = 'convoy-forged'")
    assert loaded.differences(expect=0) == []
