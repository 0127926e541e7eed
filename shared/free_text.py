"""Free text in request bodies (descriptions, notes, reasons, items, names, labels): what the
three services accept alike, declared once.

Text is for people to read and for the exports (IATI XML, CSV, HXL) to carry: tabs and line
breaks are text; the other control characters are not. XML 1.0 cannot hold C0 controls at all,
and a C1 control (U+0080 to U+009F) or DEL shows as nothing or garbles a terminal. A lone
surrogate (JSON lets one through as "\\ud800") is no character, and U+FFFE and U+FFFF are
noncharacters: neither can be written to an XML or UTF-8 export. Such text is refused with a
422 naming the field, before anything is stored. Pure: pydantic only.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import AfterValidator

__all__ = ["PlainText", "not_text"]

# C0 controls but tab (U+0009), line feed (U+000A) and carriage return (U+000D); DEL and the C1
# controls; surrogates; the two noncharacters XML 1.0 excludes
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_NAMED = 5  # the characters a refusal names at most


def not_text(text: str) -> list[str]:
    """The code points in `text` that are not text, once each in order ('U+0001'): empty when
    every character is text (tabs and line breaks are)."""
    found = dict.fromkeys(_NOT_TEXT.findall(text))
    return [f"U+{ord(c):04X}" for c in found]


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        found = not_text(value)
        if found:
            more = len(found) - _NAMED
            named = ", ".join(found[:_NAMED]) + (f" and {more} more" if more > 0 else "")
            raise ValueError(
                f"holds characters that are not text ({named}): text may hold tabs and line"
                " breaks, but no other control character"
            )
    return value


# a free-text field of a request body: `Annotated[str, Field(...), PlainText]` (or str | None)
PlainText = AfterValidator(_plain)
