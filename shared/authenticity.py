"""Whether a published event is the upstream's own: chain links and the relay's signature.

The relay signs each event it publishes with its service's Ed25519 key: the signature covers
{"service", "position", "hash"} (RFC 8785), the hash being the event's chain hash, which covers
the event's canonical body and, through the previous hash, everything before it. A consumer (or
an auditor) recomputes the hash from the message itself (`Incoming.as_recorded`, the same
canonical body the upstream's chain hashes) and its previous hash, and checks the signature with
the keys pinned for the upstream (shared/keys.py) -- never with the key a message names.

Events of consecutive positions land in different partitions (by stream), so a consumer rarely
holds a contiguous run of positions of one partition. The relay therefore also keeps a lane per
partition, continued from one publish batch to the next while publishing succeeds (any failure,
and every new relay, starts again from LANE_START): lane = sha256(previous lane || chain hash),
and signs {"service", "position", "hash", "lane"}; each message carries the previous lane
(ce_laneprev). A verified signature thus shows authentic, by collision resistance, the event's
chain hash (and through its previous hash the event one position before, and so on down the
chain) and its lane (and through the lane before it the partition's previous record, and so
on). A consumer checks one signature per event of a fetch that no other event of it commits to
by chain or lane -- in a steady stream of consecutive positions, one a fetch; draining a
backlog, about one a fetch too, the partitions' runs joined by the positions between them --
and checks on its own any event left unshown. Every event must still link and carry its own
signature. The same functions serve the relay (`signature_headers`), the consumers and
`audit replay`.

An event rewritten in place after it was sealed (shared/privacy_migration.py: personal data
written in clear, sealed since) no longer hashes to its chain hash; published again, it carries
its redaction (`ce_redaction`: the digests of its body as sealed and as it is now, signed by
its upstream), and links with the original digest (`redaction_problem`).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from shared import canonical as jcs
from shared import chain, keys, signing
from shared.incoming import Incoming

LANE_START = bytes(32)


def lane(previous: bytes, chain_hash: bytes) -> bytes:
    """The lane after an event: commits to every chain hash of the lane so far."""
    return hashlib.sha256(previous + chain_hash).digest()


def signed_body(service: str, position: int, chain_hash: bytes, lane: bytes) -> bytes:
    """The bytes a relay signs for the event at `position` of `service`'s chain."""
    return jcs.dumps(
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
    integers and nulls, written here as RFC 8785 writes them, keys in order. A cheap path only:
    whatever does not hash to the chain hash this way is canonicalised again in full."""
    meta, recorded = event.metadata, event.recorded_at
    if meta is None or recorded is None:
        event.as_recorded()  # raises what the full path would
        raise ValueError("the message lacks its recorded time or metadata")
    tail = (
        f',"event_id":"{event.event_id}","event_type":{_text(event.event_type)}'
        f',"metadata":{{"actor":{_nullable(meta.actor)}'
        f',"causation_id":{_nullable(meta.causation_id)}'
        f',"correlation_id":{_nullable(meta.correlation_id)}'
        f',"idempotency_key":{_nullable(meta.idempotency_key)}'
        f',"organisation":{_nullable(meta.organisation)}}}'
        f',"occurred_at":"{_utc(event.occurred_at)}","position":{event.position:d}'
        f',"recorded_at":"{_utc(recorded)}","schema_version":{event.schema_version:d}'
        f',"stream_id":{_text(event.stream_id)},"stream_type":{_text(event.stream_type)}'
        f',"stream_version":{event.stream_version:d}}}'
    )
    return b'{"data":' + (event.raw_data or b"") + tail.encode()


# a JSON string as RFC 8785 writes one (json's C encoder, without ASCII escapes: the same for
# every text a header or a feed can carry; anything else fails the hash and takes the full path)
_text: Callable[[str], str] = json.encoder.encode_basestring


def _nullable(value: str | None) -> str:
    return "null" if value is None else _text(value)


def _utc(value: datetime) -> str:
    """chain._instant's text (isoformat is several times faster than strftime)."""
    if value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} is not an instant")
    return value.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


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
        body = jcs.dumps({k: head[k] for k in signing.SIGNED_FIELDS})
        signature = base64.b64decode(str(head["signature"]), validate=True)
        ring.verify(upstream, str(head["public_key"]), signature, body)
    except (KeyError, ValueError, TypeError, jcs.CanonicalizationError):
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
    """Check events of ONE upstream (a fetch's, a whole topic's, in any order); returns
    {index: reason} of those that fail. Each event must link (its chain hash recomputed from
    itself) and carry its relay's signature; signatures are checked only as far as needed:
    from the highest position down, each event not yet shown authentic has its signature
    checked, and one that verifies shows authentic every event it commits to (`_Commitments`).
    A steady stream of consecutive positions takes one signature a fetch, a backlog about one
    a partition a fetch. Key changes of authentic events are followed in position order, and a
    signature refused before a key was followed is checked again."""
    failed: dict[int, str] = {}
    usable: list[int] = []
    for i, event in enumerate(events):
        problem = link_problem(event, ring=ring)
        if problem is None and (event.signature is None or event.lane_previous is None):
            problem = "not signed"
        if problem is None:
            usable.append(i)
        else:
            failed[i] = problem
    graph = _Commitments(events, usable)
    refused: dict[int, str] = {}
    # from the top: an unshown event can be shown only by its own signature (or a refused one)
    order = sorted(usable, key=lambda i: events[i].position, reverse=True)
    pending = True
    while pending:
        pending = False
        for i in order:
            if i in graph.shown or i in refused:
                continue
            if (problem := signature_problem(ring, events[i])) is not None:
                refused[i] = problem
                continue
            if _follow(ring, events, graph.show(i), graph.shown):
                refused.clear()  # a key trusted now may sign what was refused
                pending = True
                break
    failed.update({i: refused[i] for i in usable if i not in graph.shown})
    return failed


def _follow(
    ring: keys.KeyRing, events: Sequence[Incoming], new: Sequence[int], shown: set[int]
) -> bool:
    """When events just shown authentic (`new`) change a key: follow every key change shown
    so far, in position order (one may be signed by a key another announces); whether the
    ring trusts a key it did not before."""
    if not any(events[i].event_type == keys.KEY_CHANGED for i in new):
        return False
    changes = sorted(
        (events[i] for i in shown if events[i].event_type == keys.KEY_CHANGED),
        key=lambda e: e.position,
    )
    before = {u: len(ring.keys(u)) for u in {e.upstream for e in changes}}
    follow_key_changes(ring, changes)
    return any(len(ring.keys(u)) > n for u, n in before.items())


class _Commitments:
    """What each linked event's signature would show authentic. A verified signature covers
    an event's position, chain hash and lane after it; the chain hash covers its previous hash,
    which is the chain hash of the event one position before (and so its body); the lane after
    it covers the lane before it, which is the lane after the event before it in its partition
    (lane = sha256(lane before || chain hash)). So an event whose lane is shown shows the events
    its previous hash and its lane name, and one whose chain hash only is shown (reached by a
    previous hash) shows the one its previous hash names: nothing is taken from a header that
    no verified signature covers."""

    def __init__(self, events: Sequence[Incoming], usable: Sequence[int]) -> None:
        self.events = events
        self.by_hash: dict[tuple[int, bytes], list[int]] = {}
        self.by_lane: dict[bytes, list[int]] = {}
        for i in usable:
            event = events[i]
            assert event.chain_hash is not None and event.lane_previous is not None
            self.by_hash.setdefault((event.position, event.chain_hash), []).append(i)
            self.by_lane.setdefault(lane(event.lane_previous, event.chain_hash), []).append(i)
        self.shown: set[int] = set()
        self._lane_shown: set[int] = set()

    def _before(self, i: int, *, with_lane: bool) -> list[int]:
        event = self.events[i]
        found = list(self.by_hash.get((event.position - 1, event.previous_hash or b""), ()))
        if with_lane:
            found += [j for j in self.by_lane.get(event.lane_previous or b"", ()) if j != i]
        return found

    def show(self, i: int) -> list[int]:
        """Mark event `i` (its signature verified) and what it commits to as authentic;
        returns the events newly shown."""
        new: list[int] = []
        stack = [(i, True)]
        while stack:
            j, with_lane = stack.pop()
            if j in (self._lane_shown if with_lane else self.shown):
                continue
            if j not in self.shown:
                self.shown.add(j)
                new.append(j)
            if with_lane:
                self._lane_shown.add(j)
            stack.extend((k, False) for k in self._before(j, with_lane=False))
            if with_lane:
                lanes = self.by_lane.get(self.events[j].lane_previous or b"", ())
                stack.extend((k, True) for k in lanes if k != j)
        return new
