"""Signed checkpoints of the hash chain, with Ed25519 (library `cryptography`).

At intervals the relay leader appends an `audit.chain-checkpoint` event: the chain head
(position, hash, time) signed with the service's key. The event is sealed and published like
any other, so copies reach every consumer and auditor; a later rewrite of the database no longer
matches the checkpoints they already hold.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

CHECKPOINT = "audit.chain-checkpoint"
STREAM_TYPE = "audit"
# what a checkpoint's signature covers
SIGNED_FIELDS = ("service", "position", "hash", "signed_at")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Signer:
    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> Signer:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_file(cls, path: Path) -> Signer:
        """Load the key kept in `path`, creating it (mode 600) the first time."""
        if path.exists():
            return cls(Ed25519PrivateKey.from_private_bytes(base64.b64decode(path.read_text())))
        signer = cls.generate()
        signer.save(path)
        return signer

    def save(self, path: Path) -> None:
        """Write the private key to `path` (mode 600), replacing what it held."""
        path.parent.mkdir(parents=True, exist_ok=True)
        raw = self.key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(_b64(raw))

    @property
    def public_key(self) -> str:
        return _b64(self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))

    def checkpoint(
        self, *, service: str, position: int, head: bytes, at: datetime
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "service": service,
            "position": position,
            "hash": head.hex(),
            "signed_at": at.isoformat(),
        }
        signature = self.key.sign(rfc8785.dumps(body))
        return {**body, "public_key": self.public_key, "signature": _b64(signature)}

    def announce_change(self, new: Signer, *, service: str, at: datetime) -> dict[str, Any]:
        """The data of an `audit.signing-key-changed` event: `new` replaces this key, signed by
        this (the previous) key, so whoever trusts this key can trust the new one."""
        body: dict[str, Any] = {
            "service": service,
            "previous_public_key": self.public_key,
            "public_key": new.public_key,
            "announced_at": at.isoformat(),
        }
        return {**body, "signature": _b64(self.key.sign(rfc8785.dumps(body)))}


class KeyFile:
    """A signing key another process keeps (the worker's SIGNING_KEY_FILE), read again when the
    file changes (a key rotation installs a new one); None while there is no file. Never
    creates one: the worker owns the key."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int] | None = None
        self._signer: Signer | None = None

    def current(self) -> Signer | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen != self._seen:
                self._signer = Signer.from_file(self.path) if stat.st_size else None
                self._seen = seen
        except (OSError, ValueError):
            return None
        return self._signer


def signature_valid(checkpoint: Mapping[str, Any]) -> bool:
    """Whether the key the checkpoint carries signed it: says nothing of who holds that key
    (a rewrite re-signs with a key of its own); chain_verifier.Verifier checks pinned keys
    instead."""
    body: dict[str, Any] = {k: checkpoint[k] for k in SIGNED_FIELDS}
    try:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(checkpoint["public_key"]))
        key.verify(base64.b64decode(checkpoint["signature"]), rfc8785.dumps(body))
    except (InvalidSignature, ValueError, KeyError):
        return False
    return True
