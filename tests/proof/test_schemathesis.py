"""Schemathesis against each service's OpenAPI: no 5xx, and every 4xx is problem+json.

Each service runs in a real uvicorn server (in a thread) on a fresh database and a real broker,
called with a key that holds every writing role so writes get past authentication. The case
count per service is `TWINAID_PROOF_CASES` (60 in CI, 1,000 for `make proof`), spread over the
service's operations. Figures go to `.data/proof/schemathesis-<service>.json`.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings

from shared.auth import Role
from shared.infra import free_port
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for

CASES = int(os.environ.get("TWINAID_PROOF_CASES", "60"))
OUT = Path(os.environ.get("TWINAID_PROOF_OUT", ".data/proof"))
SERVICES = ["registry", "pledges", "shipments"]
# a server-sent-event stream never ends: it is not a request/answer operation
SKIP = {("GET", "/v1/tracking/updates")}
# every role a person holds, so requests reach the handlers rather than stop at a 403
ROLES = [Role.MEMBER, Role.LOGISTICS, Role.REGISTRY_ADMIN, Role.AUDITOR]


@dataclass
class Server:
    url: str
    token: str
    openapi: dict[str, Any]


@dataclass
class Tally:
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _serve(service: str, pg_server: str, kafka: str) -> Generator[Server]:
    """A uvicorn server for `service` in its own thread and event loop, until the generator
    is closed."""
    from importlib import import_module

    create_app = import_module(f"services.{service}.app").create_app
    port = free_port()
    ready = threading.Event()
    found: dict[str, Any] = {}
    stop = threading.Event()

    async def run() -> None:
        async with fresh_database(pg_server) as url:
            app = create_app(settings_for(url, kafka, rate_limit_per_second=0))
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error")
            server = uvicorn.Server(config)
            task = asyncio.create_task(server.serve())
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
            found["token"] = await issue_key(url, organisation="lille", roles=ROLES)
            found["openapi"] = app.openapi()
            ready.set()
            while not stop.is_set():
                await asyncio.sleep(0.1)
            server.should_exit = True
            await task

    def thread() -> None:
        try:
            asyncio.run(run())
        except BaseException as exc:  # surfaced by the waiting test
            found["error"] = exc
            ready.set()

    worker = threading.Thread(target=thread, daemon=True)
    worker.start()
    ready.wait(60)
    if "error" in found:
        raise found["error"]
    try:
        yield Server(f"http://127.0.0.1:{port}", found["token"], found["openapi"])
    finally:
        stop.set()
        worker.join(30)


def _fuzz(server: Server, *, cases: int) -> Tally:
    schema = schemathesis.openapi.from_dict(server.openapi)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, schemathesis.core.result.Ok), result
        if (result.ok().method.upper(), result.ok().path) not in SKIP:
            operations.append(result.ok())
    per_operation = max(1, math.ceil(cases / len(operations)))
    tally = Tally()
    headers = {"Authorization": f"Bearer {server.token}"}
    # operations with few distinct inputs run out of new examples early: go round again
    # (fresh random seeds) until the service has had its share of cases
    for _ in range(5):
        if tally.cases >= cases:
            break
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(
                max_examples=per_operation,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case: Any) -> None:
                if case.headers:
                    case.headers.pop("authorization", None)
                response = case.call(base_url=server.url, headers=headers, timeout=30)
                tally.cases += 1
                tally.statuses[response.status_code] += 1
                where = f"{case.method} {case.formatted_path}"
                kind = (response.headers.get("content-type") or [""])[0]
                if response.status_code >= 500:
                    tally.failures.append(
                        f"{where} -> {response.status_code} {response.text[:300]}\n"
                        f"  {case.as_curl_command(headers=headers)}"
                    )
                elif 400 <= response.status_code < 500 and kind != "application/problem+json":
                    tally.failures.append(f"{where} -> {response.status_code} as {kind!r}")

            run()
    return tally


@pytest.mark.once
@pytest.mark.parametrize("service", SERVICES)
def test_generated_requests_never_get_a_5xx_and_every_4xx_is_problem_json(
    service: str, pg_server: str, kafka_bootstrap: str
) -> None:
    started = time.monotonic()
    servers = _serve(service, pg_server, kafka_bootstrap)
    server = next(servers)
    try:
        tally = _fuzz(server, cases=CASES)
    finally:
        servers.close()
    OUT.mkdir(parents=True, exist_ok=True)
    figures = {
        "service": service,
        "cases": tally.cases,
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "failures": tally.failures,
        "seconds": round(time.monotonic() - started, 1),
    }
    (OUT / f"schemathesis-{service}.json").write_text(json.dumps(figures, indent=2))
    print(f"\n{service}: {tally.cases} cases, statuses {dict(sorted(tally.statuses.items()))}")
    assert tally.cases >= CASES
    assert tally.failures == [], "\n".join(tally.failures[:20])


@pytest.mark.once
@pytest.mark.parametrize("after", [2**63, 32915382676051271352320])
def test_the_event_feed_answers_a_cursor_beyond_bigint_with_a_4xx_not_a_500(
    after: int, pg_server: str, kafka_bootstrap: str
) -> None:
    """Found by the fuzzing above: `after` is `int` with only `ge=0` (shared/routes.py, feed),
    so a value past int64 reaches asyncpg and fails there with a DataError: a 500."""
    import requests

    servers = _serve("registry", pg_server, kafka_bootstrap)
    server = next(servers)
    try:
        response = requests.get(
            f"{server.url}/v1/events",
            params={"after": str(after)},
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=10,
        )
    finally:
        servers.close()
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
