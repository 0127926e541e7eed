"""How organisation names compare: folded (case, accents, spacing), and by look (UTS #39).

The confusable skeletons come from ICU's spoof checker (PyICU, from the pyicu-wheels wheel,
which carries ICU itself), built from Unicode's confusables.txt: no table of our own.
"""

from __future__ import annotations

import unicodedata
from functools import cache, lru_cache

import icu  # type: ignore[import-untyped]

__all__ = ["MAX_MARKS", "fold_name", "hidden_characters", "name_keys"]

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


# Characters that show as nothing though Unicode does not call them ignorable: the Braille
# blank (U+2800) draws an empty cell.
_BLANK = frozenset("\u2800")
# A combining mark draws on the character before it; nonspacing and enclosing marks stack on it.
_MARKS = frozenset(
    (
        icu.UCharCategory.NON_SPACING_MARK,
        icu.UCharCategory.ENCLOSING_MARK,
        icu.UCharCategory.COMBINING_SPACING_MARK,
    )
)
_STACKING = frozenset((icu.UCharCategory.NON_SPACING_MARK, icu.UCharCategory.ENCLOSING_MARK))
# What draws a character of its own: letters, numbers, punctuation and symbols.
_BASES = frozenset(
    (
        icu.UCharCategory.UPPERCASE_LETTER,
        icu.UCharCategory.LOWERCASE_LETTER,
        icu.UCharCategory.TITLECASE_LETTER,
        icu.UCharCategory.MODIFIER_LETTER,
        icu.UCharCategory.OTHER_LETTER,
        icu.UCharCategory.DECIMAL_DIGIT_NUMBER,
        icu.UCharCategory.LETTER_NUMBER,
        icu.UCharCategory.OTHER_NUMBER,
        icu.UCharCategory.CONNECTOR_PUNCTUATION,
        icu.UCharCategory.DASH_PUNCTUATION,
        icu.UCharCategory.START_PUNCTUATION,
        icu.UCharCategory.END_PUNCTUATION,
        icu.UCharCategory.INITIAL_PUNCTUATION,
        icu.UCharCategory.FINAL_PUNCTUATION,
        icu.UCharCategory.OTHER_PUNCTUATION,
        icu.UCharCategory.MATH_SYMBOL,
        icu.UCharCategory.CURRENCY_SYMBOL,
        icu.UCharCategory.MODIFIER_SYMBOL,
        icu.UCharCategory.OTHER_SYMBOL,
    )
)
# UTS #39 (5.4): no more than 4 nonspacing marks in a row, and not the same one twice, on one
# character (decomposed): Vietnamese needs 2; 200 stacked marks draw a smear over the line.
MAX_MARKS = 4


def _named(c: str) -> str:
    return f"U+{ord(c):04X} {icu.Char.charName(c) or 'unnamed'}"


def _hidden(c: str) -> bool:
    return (
        icu.Char.charType(c) in _HIDDEN
        or c in _BLANK
        or icu.Char.hasBinaryProperty(c, icu.UProperty.DEFAULT_IGNORABLE_CODE_POINT)
    )


def _stacked(decomposed: str) -> list[str]:
    """The marks of `decomposed` beyond MAX_MARKS on one character, or repeating one it has."""
    excess: list[str] = []
    run: list[str] = []
    for c in decomposed:
        kind = icu.Char.charType(c)
        if kind in _STACKING:
            if len(run) >= MAX_MARKS or c in run:
                excess.append(c)
            run.append(c)
        elif kind not in _MARKS:
            run = []
    return excess


def hidden_characters(text: str) -> list[str]:
    """Each character of `text` a reader cannot see as itself, as 'U+202E RIGHT-TO-LEFT
    OVERRIDE', once each in order of appearance (empty: every character shows): a character
    that does not show (or shows blank, as the Braille blank), a combining mark with no
    character before it to draw on, marks stacked beyond MAX_MARKS (or one mark repeated) on
    one character, and, when not a single character draws something of its own (a letter,
    number, punctuation or symbol), every character."""
    if text.isascii() and text.isprintable() and not text.isspace():
        return []  # printable ASCII, and not only spaces: something shows, nothing hides
    found: dict[str, str] = {}  # each character once, as first named, in order
    for c in text:
        if _hidden(c):
            found.setdefault(c, _named(c))
    decomposed = unicodedata.normalize("NFD", text)
    if decomposed and icu.Char.charType(decomposed[0]) in _MARKS:
        found.setdefault(decomposed[0], f"{_named(decomposed[0])} (a mark on no character)")
    for c in _stacked(decomposed):
        found.setdefault(c, f"{_named(c)} (stacked on one character)")
    if not any(icu.Char.charType(c) in _BASES and not _hidden(c) for c in text):
        for c in text:
            found.setdefault(c, f"{_named(c)} (nothing visible)")
    return list(found.values())


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
