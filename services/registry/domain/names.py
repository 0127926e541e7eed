"""How organisation names compare: folded (case, accents, spacing), and by look (UTS #39).

The confusable skeletons come from ICU's spoof checker (PyICU, from the pyicu-wheels wheel,
which carries ICU itself), built from Unicode's confusables.txt: no table of our own.
"""

from __future__ import annotations

import unicodedata
from functools import cache, lru_cache

import icu  # type: ignore[import-untyped]

__all__ = ["fold_name", "hidden_characters", "name_keys"]

# Characters that do not show, or show something other than what they are: controls, format
# characters (zero-width space and joiners, the bidirectional embeddings, overrides and
# isolates, the byte order mark), line and paragraph separators, surrogates, private use,
# unassigned code points, and whatever else Unicode calls default-ignorable (the Hangul
# fillers, variation selectors).
_HIDDEN = frozenset(
    (
        icu.UCharCategory.CONTROL_CHAR,
        icu.UCharCategory.FORMAT_CHAR,
        icu.UCharCategory.LINE_SEPARATOR,
        icu.UCharCategory.PARAGRAPH_SEPARATOR,
        icu.UCharCategory.SURROGATE,
        icu.UCharCategory.PRIVATE_USE_CHAR,
        icu.UCharCategory.UNASSIGNED,
    )
)


def fold_name(name: str) -> str:
    """Case- and accent-insensitive form: 'Düsseldorf' and 'DUSSELDORF' fold alike."""
    if name.isascii():  # NFKD leaves ASCII as it is, with nothing to strip
        return " ".join(name.casefold().split())
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def hidden_characters(text: str) -> list[str]:
    """Each character of `text` a reader cannot see as itself, as 'U+202E RIGHT-TO-LEFT
    OVERRIDE', in order of appearance (empty: every character shows)."""
    if text.isascii() and text.isprintable():
        return []
    return [
        f"U+{ord(c):04X} {icu.Char.charName(c) or 'unnamed'}"
        for c in text
        if icu.Char.charType(c) in _HIDDEN
        or icu.Char.hasBinaryProperty(c, icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT)
    ]


@cache
def _checker() -> icu.SpoofChecker:
    return icu.SpoofChecker()


def _skeleton(text: str) -> str:
    return str(_checker().getSkeleton(0, text))


def name_keys(name: str) -> list[str]:
    """What makes two names namesakes: they share a key when some case of one looks like some
    case of the other once folded. The UTS #39 skeleton of the folded name and of its upper
    case: Cyrillic a (U+0430) and Latin a look alike in lower case, Cyrillic Ka (U+041A) and
    Latin K only in upper case (U+043A looks like U+0138, kra). Names equal once folded always
    share their keys."""
    return list(_name_keys(name))


@lru_cache(maxsize=4096)  # a registration asks for its names' keys several times
def _name_keys(name: str) -> tuple[str, ...]:
    folded = fold_name(name)
    return tuple(sorted({_skeleton(folded), _skeleton(folded.upper())}))
