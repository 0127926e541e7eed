"""Whether a published event is the upstream's own: chain links and the relay's signature.

The relay signs each event it publishes with its service's Ed25519 key: the signature covers
{"service", "position", "hash"} (RFC 8785), the hash being the event's chain hash, which covers
the event's canonical body and, through the previous hash, everything before it. A consumer (or
an auditor) recomputes the hash from the message itself (`Incoming.as_recorded`, the same
canonical body the upstream's chain hashes) and its previous hash, and checks the signature with
the keys pinned for the upstream (shared/keys.py) -- never with the key a message names.

Events of consecutive positions land in different partitions (by stream), so a consumer rarely
holds a contiguous run of positions. The relay therefore also keeps a lane per partition,
continued from one publish batch to the next while publishing succeeds (any failure, and every
new relay, starts again from LANE_START): lane = sha256(previous lane || chain hash), and signs
{"service", "position", "hash", "lane"}; each message carries the previous lane (ce_laneprev).
A consumer recomputes the lanes of the records of a partition in offset order; one signature per
run of records whose lanes follow each other is enough: the last record's signed lane commits,
by collision resistance, to every chain hash of the run, and each chain hash to its event. A
record outside such a run, or in a run whose last signature fails, is checked on its own. The
same functions serve the relay (`signature_headers`), the consumers and `audit replay`.

An event rewritten in place after it was sealed (shared/privacy_migration.py: personal data
written in clear, sealed since) no longer hashes to its chain hash; published again, it carries
its redaction (`ce_redaction`: the digests of its body as sealed and as it is now, signed by
its upstream), and links with the original digest (`redaction_problem`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence

import rfc8785

from shared import chain, keys, signing
from shared.incoming import Incoming

LANE_START = bytes(32)


def lane(previous: bytes, chain_hash: bytes) -> bytes:
    """The lane after an event: commits to every chain hash of the lane so far."""
    return hashlib.sha256(previous + chain_hash).digest()


def signed_body(service: str, position: int, chain_hash: bytes, lane: bytes) -> bytes:
    """The bytes a relay signs for the event at `position` of `service`'s chain."""
    return rfc8785.dumps(
        {"service": service, "position": position, "hash": chain_hash.hex(), "lane": lane.hex()}
    )


def signature_headers(
    signer: signing.Signer,
    service: str,
    position: int,
    chain_hash: bytes,
    previous: bytes,
    lane_before: bytes,
) -> tuple[list[tuple[str, bytes]], bytes]:
    """The headers that let a consumer check a published event -- its signature, the key that
    made it (a hint: the consumer trusts only the keys pinned for `service`), the previous
    position's chain hash and the lane before it in its partition -- and the lane after it."""
    after = lane(lane_before, chain_hash)
    signature = signer.key.sign(signed_body(service, position, chain_hash, after))
    headers = [
        ("ce_signature", base64.b64encode(signature)),
        ("ce_signingkey", signer.public_key.encode()),
        ("ce_prevhash", previous.hex().encode()),
        ("ce_laneprev", lane_before.hex().encode()),
    ]
    return headers, after


def link_problem(
    event: Incoming, *, previous: bytes | None = None, ring: keys.KeyRing | None = None
) -> str | None:
    """Why the event's chain hash is not the link of its previous hash and its own body, if
    it is not. `previous`: the hash the consumer knows for the position before (else the
    message's own `ce_prevhash`). An event rewritten in place after it was sealed links with
    its original body's digest if it carries a redaction its upstream signed (see
    `redaction_problem`; `ring`: the keys trusted for the upstream, else only the key the
    redaction names is checked, as `signing.signature_valid` does)."""
    if event.chain_hash is None:
        return "no chain hash"
    before = previous if previous is not None else event.previous_hash
    if before is None:
        return "no previous chain hash"
    if event.position < 1:
        return f"position {event.position} is not a position of a chain"
    if event.position == 1 and before != chain.GENESIS:
        return "position 1 does not follow the chain's genesis"
    try:
        if event.raw_data is not None and (
            chain.link_content(before, _canonical_as_published(event)) == event.chain_hash
        ):
            return None
        computed = chain.link(before, event.as_recorded(), position=event.position)
    except (ValueError, TypeError) as exc:
        return f"the event has no canonical form: {exc}"
    if computed != event.chain_hash:
        if event.redaction is not None:
            return redaction_problem(event, before, ring)
        return "the chain hash does not match the event and its previous hash"
    return None


def redaction_problem(event: Incoming, previous: bytes, ring: keys.KeyRing | None) -> str | None:
    """Why a redacted event (shared/privacy_migration.py: rewritten in place, its personal
    data sealed) is not its upstream's, if it is not: the digest of its body as sealed
    (`before_sha256`) must link `previous` to its chain hash, its body now must hash to
    `after_sha256`, and the upstream must have signed that redaction (chain.redaction_body)
    with a key `ring` trusts for it (without `ring`, the key the redaction names)."""
    carried = event.redaction or {}
    try:
        redaction = chain.Redaction.from_dict(
            {**carried, "position": event.position, "event_id": str(event.event_id)}
        )
        signature = base64.b64decode(str(carried["signature"]), validate=True)
        key = str(carried["public_key"])
        digest = chain.body_digest(event.as_recorded(), position=event.position)
        trusted = ring if ring is not None else keys.KeyRing.pinned({event.upstream: [key]})
    except (KeyError, ValueError, TypeError) as exc:
        return f"the event's redaction is malformed: {exc}"
    if chain.link_digest(previous, redaction.before) != event.chain_hash:
        return "the chain hash does not match the event's original digest and its previous hash"
    if digest != redaction.after:
        return "the event matches neither the body that was sealed nor its redacted form"
    try:
        trusted.verify(
            event.upstream, key, signature, chain.redaction_body(event.upstream, redaction)
        )
    except keys.UntrustedKey as exc:
        return f"the event's redaction: {exc.reason}"
    return None


def _canonical_as_published(event: Incoming) -> bytes:
    """The event's canonical body (chain.canonical) built around the message's value as its
    data: the relay publishes the data as its RFC 8785 text, and the other fields are texts,
    integers and nulls, which json writes as RFC 8785 does with sorted keys. A cheap path only:
    whatever does not hash to the chain hash this way is canonicalised again in full."""
    recorded = event.as_recorded()
    rest = {
        "event_id": str(recorded.event_id),
        "event_type": recorded.event_type,
        "metadata": recorded.metadata.as_dict(),
        "occurred_at": chain._instant(recorded.occurred_at),
        "position": event.position,
        "recorded_at": chain._instant(recorded.recorded_at),
        "schema_version": recorded.schema_version,
        "stream_id": recorded.stream_id,
        "stream_type": recorded.stream_type,
        "stream_version": recorded.stream_version,
    }
    tail = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return b'{"data":' + (event.raw_data or b"") + b"," + tail[1:].encode()


def signature_problem(ring: keys.KeyRing, event: Incoming) -> str | None:
    """Why the event's signature is not one of its upstream's trusted keys, if it is not."""
    if event.signature is None or event.chain_hash is None or event.lane_previous is None:
        return "not signed"
    key = event.signing_key or ""
    after = lane(event.lane_previous, event.chain_hash)
    try:
        ring.verify(
            event.upstream,
            key,
            event.signature,
            signed_body(event.upstream, event.position, event.chain_hash, after),
        )
    except keys.UntrustedKey as exc:
        return exc.reason
    return None


def head_problem(
    ring: keys.KeyRing, upstream: str, head: object, *, position: int, chain_hash: bytes | None
) -> str | None:
    """Why a feed page's `signed_head` does not show its last event (at `position`, with
    `chain_hash`) to be `upstream`'s own, if it does not: it must name that event and be
    signed by a key pinned or announced for `upstream` (the feed's own key is never taken)."""
    if not isinstance(head, Mapping):
        return "the page carries no signed head"
    try:
        if head["service"] != upstream:
            return f"the page's signed head is of {str(head['service'])[:100]!r}"
        if head["position"] != position or head["hash"] != (chain_hash or b"").hex():
            return f"the page's signed head does not name its last event (position {position})"
        body = rfc8785.dumps({k: head[k] for k in signing.SIGNED_FIELDS})
        signature = base64.b64decode(str(head["signature"]), validate=True)
        ring.verify(upstream, str(head["public_key"]), signature, body)
    except (KeyError, ValueError, TypeError, rfc8785.CanonicalizationError):
        return "the page's signed head is malformed"
    except keys.UntrustedKey as exc:
        return f"the page's signed head: {exc.reason}"
    return None


def follow_key_changes(ring: keys.KeyRing, events: Sequence[Incoming]) -> None:
    """Trust the keys that `events` announce, each announcement checked against the keys
    already trusted (so a forged one extends no trust)."""
    for event in events:
        if event.event_type == keys.KEY_CHANGED:
            try:
                ring.announce(event.upstream, event.data)
            except keys.UntrustedKey:
                pass  # an authentic but unusable announcement extends no trust


def verify(ring: keys.KeyRing, events: Sequence[Incoming]) -> dict[int, str]:
    """Check events of ONE upstream, each partition's in offset order (as fetched); returns
    {index: reason} of those that fail. The chain link is checked for each event; signatures
    once per run of a partition's records whose lanes follow each other, each event of a run
    whose last signature fails on its own. Key changes of authentic events are followed (runs
    in the order of their last positions), so later events may be signed by an announced key."""
    failed: dict[int, str] = {}
    runs: list[list[int]] = []
    open_runs: dict[int | None, tuple[list[int], bytes]] = {}  # partition -> run, its lane
    for i, event in enumerate(events):
        if (problem := link_problem(event, ring=ring)) is not None:
            failed[i] = problem
            continue
        assert event.chain_hash is not None  # link_problem says so
        current = open_runs.get(event.partition)
        if event.lane_previous is None:
            runs.append([i])
            continue
        after = lane(event.lane_previous, event.chain_hash)
        if current is not None and current[1] == event.lane_previous:
            current[0].append(i)
            open_runs[event.partition] = (current[0], after)
        else:
            runs.append([i])
            open_runs[event.partition] = (runs[-1], after)
    for run in sorted(runs, key=lambda r: events[r[-1]].position):
        members = [events[i] for i in run]
        if signature_problem(ring, members[-1]) is None:
            follow_key_changes(ring, members)
            continue
        for i, event in zip(run, members, strict=True):
            if (problem := signature_problem(ring, event)) is not None:
                failed[i] = problem
            else:
                follow_key_changes(ring, [event])
    return failed
