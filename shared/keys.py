"""The public keys a process trusts: pinned by deployment, extended only by signed key changes.

Each service signs with its own Ed25519 key (`shared/signing.py`). Who may sign for a service is
never learned from a message or a checkpoint: it is pinned in the deployment's configuration
(`TRUSTED_KEYS`, `{"registry": ["<base64 raw public key>", ...], ...}`), and a service that
changes its key announces the new one in its own log (`audit.signing-key-changed`), signed by a
key already trusted. A key neither pinned nor announced that way is not trusted.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

KEY_CHANGED = "audit.signing-key-changed"
_ANNOUNCED = ("service", "previous_public_key", "public_key", "announced_at")


class UntrustedKey(Exception):
    """A signature by, or an announcement of, a key this process has no reason to trust."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def public_key(raw: str) -> Ed25519PublicKey:
    """The key in its base64 raw form; ValueError if it is not one."""
    decoded = base64.b64decode(raw, validate=True)
    if len(decoded) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(decoded)


def announcement_body(announcement: Mapping[str, Any]) -> bytes:
    """The bytes the previous key signs when a service changes its key."""
    return rfc8785.dumps({k: announcement[k] for k in _ANNOUNCED})


@dataclass
class KeyRing:
    """Pinned keys per service, plus the changes announced since; not thread-safe, one per task."""

    _keys: dict[str, list[str]] = field(default_factory=dict)
    _verifiers: dict[str, Ed25519PublicKey] = field(default_factory=dict)

    @classmethod
    def pinned(cls, keys: Mapping[str, Iterable[str]]) -> KeyRing:
        """ValueError if a pinned key is not an Ed25519 public key."""
        ring = cls()
        for service, raws in keys.items():
            for raw in raws:
                ring._trust(service, raw)
        return ring

    def _trust(self, service: str, raw: str) -> None:
        self._verifiers[raw] = public_key(raw)
        known = self._keys.setdefault(service, [])
        if raw not in known:
            known.append(raw)

    def keys(self, service: str) -> tuple[str, ...]:
        return tuple(self._keys.get(service, ()))

    def trusts(self, service: str, raw: str) -> bool:
        return raw in self._keys.get(service, ())

    def verify(self, service: str, raw: str, signature: bytes, body: bytes) -> None:
        """Raises UntrustedKey unless `raw` is trusted for `service` and signed `body`."""
        if not self.trusts(service, raw):
            raise UntrustedKey(f"key {raw} is neither pinned nor announced for {service}")
        try:
            self._verifiers[raw].verify(signature, body)
        except InvalidSignature:
            reason = f"the signature does not verify with {service}'s key {raw}"
            raise UntrustedKey(reason) from None

    def announce(self, service: str, announcement: Mapping[str, Any]) -> None:
        """Trust the new key of an `audit.signing-key-changed` event of `service`'s log.

        Raises UntrustedKey unless the announcement names `service`, is signed by a key already
        trusted for it, and the new key is a valid Ed25519 public key."""
        try:
            if announcement["service"] != service:
                raise UntrustedKey(f"a key change of {announcement['service']} in {service}'s log")
            signature = base64.b64decode(announcement["signature"], validate=True)
            previous = str(announcement["previous_public_key"])
            new = str(announcement["public_key"])
            public_key(new)
            body = announcement_body(announcement)
        except (KeyError, ValueError, TypeError) as exc:
            raise UntrustedKey(f"a malformed key change: {exc}") from None
        self.verify(service, previous, signature, body)
        self._trust(service, new)
