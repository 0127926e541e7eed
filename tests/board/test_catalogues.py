"""Issue 23: the board's message catalogues (services/shipments/board/i18n-<lang>.json) say the
same things in English, Ukrainian and French, and every key the code asks for exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

BOARD = Path(__file__).resolve().parents[2] / "services" / "shipments" / "board"
LANGUAGES = ("en", "uk", "fr")
# CLDR plural categories of whole numbers, as Intl.PluralRules selects them
PLURALS = {
    "en": {"one", "other"},
    "uk": {"one", "few", "many", "other"},
    "fr": {"one", "many", "other"},
}
PLACEHOLDER = re.compile(r"\{(\w+)\}")
# t("a.key" ...) with a literal key, and the keys index.html names
USED = re.compile(
    r"""\bt\(\s*"([a-z_-]+\.[a-z_.-]+)"|data-i18n(?:-label)?="([a-z_.-]+)"|"((?:col|audit|convoy|milestone)\.[a-z_]+)\""""
)


def catalogue(lang: str) -> dict[str, str | dict[str, str]]:
    loaded: dict[str, str | dict[str, str]] = json.loads(
        (BOARD / f"i18n-{lang}.json").read_text(encoding="utf-8")
    )
    return loaded


def forms(message: str | dict[str, str]) -> list[str]:
    return list(message.values()) if isinstance(message, dict) else [message]


def placeholders(message: str | dict[str, str]) -> set[str]:
    return {name for text in forms(message) for name in PLACEHOLDER.findall(text)}


def test_the_catalogues_have_the_same_keys_and_placeholders() -> None:
    catalogues = {lang: catalogue(lang) for lang in LANGUAGES}
    english = catalogues["en"]
    assert len(english) > 300
    for lang, messages in catalogues.items():
        assert set(messages) == set(english), (lang, set(messages) ^ set(english))
        for key, message in messages.items():
            assert all(text.strip() for text in forms(message)), (lang, key)
            # a plural's "count" picks the form; every other placeholder is the same everywhere
            assert placeholders(message) == placeholders(english[key]), (lang, key)
            if isinstance(message, dict):
                assert set(message) == PLURALS[lang], (lang, key, set(message))
            else:
                assert not isinstance(english[key], dict), (lang, key)


def test_ukrainian_and_french_are_translations_not_copies() -> None:
    english, ukrainian, french = (catalogue(lang) for lang in LANGUAGES)
    cyrillic = re.compile(r"[\u0400-\u04ff]")
    latin_words = re.compile(r"[A-Za-z]{3,}")
    for key, message in ukrainian.items():
        for text in forms(message):
            bare = PLACEHOLDER.sub("", text)
            # every Ukrainian message with words in it is written in Ukrainian
            if latin_words.search(bare.replace("API", "").replace("CSV", "").replace("SHA", "")):
                assert cyrillic.search(bare), (key, text)
    same = [k for k in english if english[k] == french[k] and latin_words.search(str(english[k]))]
    # words that are the same in both (Audit, Incidents, Version, Service...) and no more
    assert len(same) < 40, same


def test_every_key_the_board_asks_for_is_in_the_catalogue() -> None:
    english = catalogue("en")
    used: set[str] = set()
    for source in [*BOARD.glob("*.js"), BOARD / "index.html"]:
        for match in USED.finditer(source.read_text(encoding="utf-8")):
            used.add(next(group for group in match.groups() if group))
    assert len(used) > 250
    assert used - set(english) == set()
