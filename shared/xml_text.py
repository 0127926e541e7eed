"""Text as XML 1.0 can hold it: every XML export is serialised through `to_bytes`, which
replaces in each element's text, tail and attribute values the characters XML 1.0 has no
place for (C0 controls but tab, LF and CR; lone surrogates; U+FFFE and U+FFFF) with U+FFFD.
Input is checked where it comes in, but the log and the read models may hold text an earlier
release accepted: an export of it stays well-formed."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

REPLACEMENT = "\ufffd"
# the complement of XML 1.0's Char production (section 2.2)
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def clean(text: str) -> str:
    """`text` with each character XML 1.0 cannot hold replaced by U+FFFD."""
    return NOT_XML.sub(REPLACEMENT, text)


def to_bytes(root: ET.Element) -> bytes:
    """The document under `root`, indented, as UTF-8 with an XML declaration; its text and
    attribute values cleaned first (in place)."""
    for element in root.iter():
        if element.text:
            element.text = clean(element.text)
        if element.tail:
            element.tail = clean(element.tail)
        for name, value in element.attrib.items():
            element.attrib[name] = clean(value)
    ET.indent(root)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out
