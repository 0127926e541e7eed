"""Whether a published event is the upstream's own: chain links and the relay's signature.

The relay signs each event it publishes with its service's Ed25519 key: the signature covers
{"service", "position", "hash"} (RFC 8785), the hash being the event's chain hash, which covers
the event's canonical body and, through the previous hash, everything before it. A consumer (or
an auditor) recomputes the hash from the message itself (`Incoming.as_recorded`, the same
canonical body the upstream's chain hashes) and its previous hash, and checks the signature with
the keys pinned for the upstream (shared/keys.py) -- never with the key a message names.

One signature per contiguous linked run is enough: the last event's signed hash commits, through
the links, to every event of the run. An event outside a linked run is checked on its own. The
same functions serve the relay (`signature_headers`), the consumers and `audit replay`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

import rfc8785

from shared import chain, keys, signing
from shared.incoming import Incoming


def signed_body(service: str, position: int, chain_hash: bytes) -> bytes:
    """The bytes a relay signs for the event at `position` of `service`'s chain."""
    return rfc8785.dumps({"service": service, "position": position, "hash": chain_hash.hex()})


def signature_headers(
    signer: signing.Signer, service: str, position: int, chain_hash: bytes, previous: bytes
) -> list[tuple[str, bytes]]:
    """The headers that let a consumer check a published event: its signature, the key that
    made it (a hint: the consumer trusts only the keys pinned for `service`) and the previous
    position's chain hash."""
    signature = signer.key.sign(signed_body(service, position, chain_hash))
    return [
        ("ce_signature", base64.b64encode(signature)),
        ("ce_signingkey", signer.public_key.encode()),
        ("ce_prevhash", previous.hex().encode()),
    ]


def link_problem(event: Incoming, *, previous: bytes | None = None) -> str | None:
    """Why the event's chain hash is not the link of its previous hash and its own body, if
    it is not. `previous`: the hash the consumer knows for the position before (else the
    message's own `ce_prevhash`)."""
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
        computed = chain.link(before, event.as_recorded(), position=event.position)
    except (ValueError, TypeError) as exc:
        return f"the event has no canonical form: {exc}"
    if computed != event.chain_hash:
        return "the chain hash does not match the event and its previous hash"
    return None


def signature_problem(ring: keys.KeyRing, event: Incoming) -> str | None:
    """Why the event's signature is not one of its upstream's trusted keys, if it is not."""
    if event.signature is None or event.chain_hash is None:
        return "not signed"
    key = event.signing_key or ""
    try:
        ring.verify(
            event.upstream,
            key,
            event.signature,
            signed_body(event.upstream, event.position, event.chain_hash),
        )
    except keys.UntrustedKey as exc:
        return exc.reason
    return None


def _follow_key_changes(ring: keys.KeyRing, events: Sequence[Incoming]) -> None:
    for event in events:
        if event.event_type == keys.KEY_CHANGED:
            try:
                ring.announce(event.upstream, event.data)
            except keys.UntrustedKey:
                pass  # an authentic but unusable announcement extends no trust


def verify(ring: keys.KeyRing, events: Sequence[Incoming]) -> dict[int, str]:
    """Check events of ONE upstream (any order); returns {index: reason} of those that fail.
    Links are checked for each event; signatures once per contiguous linked run, each event of
    a run whose last signature fails on its own. Key changes of authentic events are followed
    (in position order), so later events may be signed by the announced key."""
    failed: dict[int, str] = {}
    runs: list[list[int]] = []
    for i in sorted(range(len(events)), key=lambda i: events[i].position):
        event = events[i]
        if (problem := link_problem(event)) is not None:
            failed[i] = problem
            continue
        if runs:
            last = events[runs[-1][-1]]
            if last.position + 1 == event.position and event.previous_hash == last.chain_hash:
                runs[-1].append(i)
                continue
        runs.append([i])
    for run in runs:
        members = [events[i] for i in run]
        if signature_problem(ring, members[-1]) is None:
            _follow_key_changes(ring, members)
            continue
        for i, event in zip(run, members, strict=True):
            if (problem := signature_problem(ring, event)) is not None:
                failed[i] = problem
            else:
                _follow_key_changes(ring, [event])
    return failed
