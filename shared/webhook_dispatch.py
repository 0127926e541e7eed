"""The webhook dispatcher in each worker: claims subscriptions with new events, delivers them
in log order with Standard Webhooks signatures, retries with backoff (the rules in
shared/webhooks.py; addresses in shared/webhook_addresses.py)."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from shared import db as dbmod
from shared.auth import Principal
from shared.event_store import PostgresEventStore
from shared.events import RecordedEvent
from shared.settings import Settings
from shared.webhook_addresses import Refused, Resolver, resolve_checked, system_resolver
from shared.webhooks import SUBSCRIPTION, Access, Filters, payload, reader_of, signed

log = logging.getLogger("twinaid.webhooks")


@dataclass(frozen=True, slots=True)
class Outcome:
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: int


# Every update of a claimed subscription names the lease it holds (`leased_until` as claimed or
# last extended): once the lease has lapsed and another dispatcher claimed the subscription,
# the late one's updates change nothing.
CLAIM = f"""
UPDATE webhook_subscriptions SET leased_until = now() + make_interval(secs => $1)
WHERE subscription_id IN (
    SELECT subscription_id FROM webhook_subscriptions
    WHERE deleted_at IS NULL AND status <> 'disabled' AND next_attempt_at <= now()
      AND (leased_until IS NULL OR leased_until < now())
      AND after_position < (SELECT coalesce(max(position), 0) FROM event_chain)
      AND NOT (subscription_id = ANY($3::text[]))
    ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
RETURNING {SUBSCRIPTION}, secret, leased_until
"""

LOG_ATTEMPT = """
INSERT INTO webhook_deliveries (subscription_id, position, event_id, event_type, attempt,
    attempted_at, outcome, status_code, error, duration_ms)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
"""

DELIVERED = """
UPDATE webhook_subscriptions SET after_position = $3, attempts = 0, status = 'active',
    failing_since = NULL, last_error = NULL, leased_until = now() + make_interval(secs => $4)
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL AND leased_until = $5
RETURNING leased_until
"""

FAILED = """
UPDATE webhook_subscriptions SET after_position = $3, attempts = attempts + 1,
    failing_since = coalesce(failing_since, now()), last_error = $4, leased_until = NULL,
    next_attempt_at = now() + make_interval(secs => $5),
    status = CASE WHEN now() - coalesce(failing_since, now()) >= make_interval(secs => $6)
                  THEN 'failing' ELSE status END
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL AND leased_until = $7
RETURNING status
"""

RELEASE = """
UPDATE webhook_subscriptions SET after_position = $3, leased_until = NULL
WHERE subscription_id = $1 AND revision = $2 AND deleted_at IS NULL AND leased_until = $4
"""

DISABLE = """
UPDATE webhook_subscriptions SET status = 'disabled', last_error = $3, leased_until = NULL
WHERE subscription_id = $1 AND revision = $2 AND leased_until = $4
"""


class Dispatcher:
    """Delivers each subscription's events in log order, one subscription per task (at most
    `webhook_concurrency` at once); runs in the service's worker beside the relay.

    Subscriptions are served independently: a slot freed is filled at once, whatever the
    others do. One attempt lasts at most `webhook_timeout` (resolving, connecting, sending,
    the answer's status), and one claim serves for at most `budget_s` (then the subscription
    goes back in the queue, behind those waiting): a slow receiver holds one slot, never the
    others' deliveries, and never outlives its lease (`lease_s`)."""

    def __init__(
        self,
        *,
        service: str,
        settings: Settings,
        db: dbmod.Database,
        access: Access | None = None,
        http: httpx.AsyncClient | None = None,
        resolve: Resolver = system_resolver,
        budget_s: float = 30.0,
    ) -> None:
        self.service = service
        self.settings = settings
        self.db = db
        self.access = access
        self.resolve = resolve
        self._own_http = http is None
        # no environment proxies (the request goes to the address checked); no connection kept
        # (one to an address serves one host name: its TLS was verified for that name)
        self.http = http or httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        self.budget_s = budget_s
        # how long a claimed subscription stays this dispatcher's without news from it: the
        # budget, one more attempt begun just before it ends, and time for the database
        self.lease_s = budget_s + settings.webhook_timeout + 30.0
        self._wake = asyncio.Event()
        self._serving: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Serve subscriptions until `stop`, each in its own task, claiming more as soon as a
        slot is free; a failing claim (the database away) is logged and retried."""
        try:
            while not stop.is_set():
                free = self.settings.webhook_concurrency - len(self._serving)
                claimed = 0
                if free > 0:
                    try:
                        claimed = len(self._start(await self._claim(free)))
                    except Exception:
                        log.exception("claiming webhook subscriptions failed; trying again")
                if claimed:
                    continue  # more may be waiting
                self._wake.clear()
                waits = [asyncio.ensure_future(e.wait()) for e in (stop, self._wake)]
                try:
                    await asyncio.wait(
                        waits,
                        timeout=self.settings.webhook_poll_interval,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    for w in waits:
                        w.cancel()
        finally:
            serving = list(self._serving.values())
            for task in serving:
                task.cancel()  # its lease lapses; an attempt cut short is sent again
            await asyncio.gather(*serving, return_exceptions=True)
            if self._own_http:
                await self.http.aclose()

    async def round(self) -> int:
        """Serve the subscriptions due now, waiting for them all; how many were served."""
        due = await self._claim(self.settings.webhook_concurrency)
        await asyncio.gather(*self._start(due), return_exceptions=True)
        return len(due)

    async def _claim(self, limit: int) -> list[asyncpg.Record]:
        async with self.db.connection() as conn:
            return list(await conn.fetch(CLAIM, self.lease_s, limit, list(self._serving)))

    def _start(self, due: Sequence[asyncpg.Record]) -> list[asyncio.Task[None]]:
        started = []
        for sub in due:
            sid = sub["subscription_id"]
            task = asyncio.create_task(self._serve_logged(sub), name=f"webhook {sid}")
            self._serving[sid] = task
            task.add_done_callback(functools.partial(self._done, sid))
            started.append(task)
        return started

    def _done(self, sid: str, _: asyncio.Task[None]) -> None:
        self._serving.pop(sid, None)
        self._wake.set()  # a free slot: claim again

    async def _serve_logged(self, sub: asyncpg.Record) -> None:
        try:
            await self._serve(sub)
        except Exception:
            # the database away mid-serving: the lease lapses and the subscription is served
            # again (an event delivered but not recorded is sent again, with its same id)
            log.exception("serving webhook %s failed", sub["subscription_id"])

    async def _serve(self, sub: asyncpg.Record) -> None:
        """Deliver the events after the cursor, a batch at most. Before each event the filters
        pass, the subscribing key is read again and the payload built (persons opened or
        `(erased)`) as the API would answer now: a key revoked or expired mid-batch disables
        the subscription before the next delivery, a person erased mid-batch is sent erased."""
        sid, revision, lease = sub["subscription_id"], sub["revision"], sub["leased_until"]
        claimed_at = time.monotonic()
        async with self.db.connection() as conn:
            if await self._reader(conn, sub, lease) is None:
                return
            events = await PostgresEventStore(conn).read_all(
                after=sub["after_position"], limit=self.settings.webhook_batch_size
            )
        filters = Filters.of(sub)
        position = sub["after_position"]
        attempts = sub["attempts"]
        for event in events:
            assert event.position is not None
            if filters.admit(event):
                if time.monotonic() - claimed_at >= self.budget_s:
                    break  # this claim's time is up: back in the queue, behind the others
                async with self.db.connection() as conn:
                    reader = await self._reader(conn, sub, lease)
                    if reader is None:
                        return
                    body = await payload(
                        conn,
                        service=self.service,
                        reader=reader,
                        filters=filters,
                        event=event,
                        access=self.access,
                    )
                if body is not None:
                    outcome = await self._attempt(sub["url"], sub["secret"], event, body)
                    lease = await self._record(sub, lease, event, attempts + 1, outcome, position)
                    if lease is None:
                        return
                    attempts = 0
            position = event.position
        async with self.db.connection() as conn:
            await conn.execute(RELEASE, sid, revision, position, lease)

    async def _reader(
        self, conn: asyncpg.Connection, sub: asyncpg.Record, lease: datetime
    ) -> Principal | None:
        """The subscribing key as it is now; None once it is revoked or expired, the
        subscription then disabled (its cursor kept: the last event delivered)."""
        reader = await reader_of(conn, sub["key_id"])
        if reader is None:
            sid = sub["subscription_id"]
            log.warning("webhook %s disabled: its API key was revoked or expired", sid)
            await conn.execute(
                DISABLE,
                sid,
                sub["revision"],
                "the API key that subscribed was revoked or expired",
                lease,
            )
        return reader

    async def _attempt(
        self, url: str, secret: str, event: RecordedEvent, body: dict[str, Any]
    ) -> Outcome:
        """One delivery, within `webhook_timeout` all told. Its error, if any, is generic (what
        the subscriber sees); the details (names, addresses, exceptions) go to the log."""
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        def failed(reason: str, detail: str, code: int | None = None) -> Outcome:
            log.info("webhook delivery of %s to %s failed: %s", event.event_id, url, detail)
            return Outcome(False, code, reason, took())

        try:
            async with asyncio.timeout(self.settings.webhook_timeout):
                code = await self._post(url, secret, event, body)
        except Refused as exc:
            return failed(exc.reason, str(exc))
        except TimeoutError:
            return failed("timed out", f"no answer within {self.settings.webhook_timeout} s")
        except httpx.TimeoutException as exc:
            return failed("timed out", f"{type(exc).__name__}: {exc}")
        except httpx.HTTPError as exc:
            return failed("connection failed", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a URL httpx will not send, a resolver's UnicodeError...
            return failed("delivery failed", f"{type(exc).__name__}: {exc}")
        if 200 <= code < 300:
            return Outcome(True, code, None, took())
        return failed(f"HTTP {code}", f"the receiver answered {code}", code)

    async def _post(self, url: str, secret: str, event: RecordedEvent, body: dict[str, Any]) -> int:
        """POST the event to the address its host resolves to and passed the check (never a
        second resolution, which could answer another address): the URL's host replaced by
        that address, the original `Host` header, and for https the original name for TLS
        (SNI and the certificate's check). The answer's status only: its body is never read."""
        address = await resolve_checked(
            url, allowed_hosts=self.settings.webhook_allowed_hosts, resolve=self.resolve
        )
        target = httpx.URL(url)
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        headers = signed(secret, msg_id=str(event.event_id), at=datetime.now(UTC), body=text)
        headers["user-agent"] = f"twinaid-{self.service}-webhooks"
        headers["host"] = target.netloc.decode("ascii")
        extensions = {"sni_hostname": target.raw_host.decode("ascii")}
        async with self.http.stream(
            "POST",
            target.copy_with(host=address),
            content=text.encode(),
            headers=headers,
            timeout=self.settings.webhook_timeout,
            extensions=extensions if target.scheme == "https" else None,
        ) as answer:
            return answer.status_code

    async def _record(
        self,
        sub: asyncpg.Record,
        lease: datetime,
        event: RecordedEvent,
        attempt: int,
        outcome: Outcome,
        position_before: int,
    ) -> datetime | None:
        """Log the attempt and move the subscription on (delivered: the lease, extended) or
        back off (failed); None when the serving stops here: a failure, or the subscription
        replayed, deleted or leased to another dispatcher meanwhile (their state wins)."""
        sid, revision = sub["subscription_id"], sub["revision"]
        async with self.db.transaction() as conn:
            await conn.execute(
                LOG_ATTEMPT,
                sid,
                event.position,
                event.event_id,
                event.event_type,
                attempt,
                datetime.now(UTC),
                "delivered" if outcome.delivered else "failed",
                outcome.status_code,
                outcome.error,
                outcome.duration_ms,
            )
            if outcome.delivered:
                extended: datetime | None = await conn.fetchval(
                    DELIVERED, sid, revision, event.position, self.lease_s, lease
                )
                return extended
            s = self.settings
            delay = min(s.webhook_retry_base * 2 ** min(attempt - 1, 60), s.webhook_retry_max)
            status = await conn.fetchval(
                FAILED,
                sid,
                revision,
                position_before,
                outcome.error,
                delay,
                s.webhook_failing_after,
                lease,
            )
        if status == "failing" and sub["status"] != "failing":
            log.warning("webhook %s is failing: %s", sid, outcome.error)
        return None
