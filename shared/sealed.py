"""What the log holds of a person, as a pure vocabulary (no key, no database): the pattern of
a subject id, the test for a sealed person, the mark shown for an erased field.

A sealed person is `{"subject_id": "<service>-<32 hex>", "sealed": "<base64>", "personal":
[...the sealed fields], ...fields kept in clear}`. Events name SUBJECT_ID in their models;
sealing, revealing and erasing need the keys and live in shared/privacy.py (which re-exports
these names).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ERASED = "(erased)"  # what a view shows in place of an erased personal field
SUBJECT_ID = r"^[a-z]+-[0-9a-f]{32}$"


def is_sealed(value: Any) -> bool:
    return isinstance(value, Mapping) and "subject_id" in value and "sealed" in value
