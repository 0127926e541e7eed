"""Text an earlier release stored with characters XML 1.0 cannot hold (C0 controls, U+FFFF):
the IATI export of an organisation and of a partnership stays well-formed and valid, each such
character replaced by U+FFFD and the rest of the text kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import asyncpg

from services.pledges import projections
from shared import projections as proj
from shared import xml_text
from shared.events import Metadata, NewEvent
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, generators_pledge
from tests.pledges.test_iati import SCHEMA

BAD = "d\x01\x02 \x1f\ufffe\uffff end"
CLEAN = "d\ufffd\ufffd \ufffd\ufffd\ufffd end"


async def store_as_an_old_release(api: PledgesApi) -> None:
    """A second pledge made as the first was, but with BAD in its description and its line's
    item: appended through the event store and projected, past today's input checks."""
    [made] = await api.fetch(
        "SELECT data, schema_version FROM events WHERE event_type = 'pledges.pledge-made'"
    )
    data = json.loads(made["data"])
    data["pledge_id"] = "lille-old"
    data["description"] = BAD
    data["lines"][0]["item"] = f"generator {BAD}"
    conn = await asyncpg.connect(api.url)
    try:
        async with conn.transaction():
            await proj.record(
                conn,
                projections.ALL,
                stream_type="pledge",
                stream_id="lille-old",
                expected_version=0,
                events=[NewEvent("pledges.pledge-made", data, None, made["schema_version"])],
                metadata=Metadata(actor="an-earlier-release"),
                now=datetime.now(UTC),
            )
    finally:
        await conn.close()
    [row] = await api.fetch("SELECT description FROM pledges WHERE pledge_id = 'lille-old'")
    assert row["description"] == BAD


async def test_an_export_of_stored_control_characters_is_well_formed(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    await api.ok("/v1/pledges", generators_pledge(), by="lille")
    await store_as_an_old_release(api)
    for params in ({"organisation": "kharkiv"}, {"partnership": "lille-kharkiv-twinning"}):
        answer = await api.client.get(
            "/v1/exports/iati", params=params, headers=await api.as_("bucha")
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/xml"
        root = ET.fromstring(answer.content)  # noqa: S314 (our own export); raises if not well-formed
        SCHEMA.validate(answer.text)
        titles = [a.findtext("title/narrative") for a in root.iter("iati-activity")]
        assert CLEAN in titles, titles
        texts = [n.text or "" for n in root.iter("narrative")]
        assert any(f"generator {CLEAN}" in t for t in texts), texts
        assert not any(xml_text.NOT_XML.search(t) for t in texts)


def test_only_what_xml_cannot_hold_is_replaced() -> None:
    kept = "tab\t nl\n cr\r é \u2028 \ud7ff \ue000 \ufffd \U0001f600 \U0010ffff <&>"
    assert xml_text.clean(kept) == kept
    assert xml_text.clean("\x00\x08\x0b\x0c\x0e\x1f\ud800\udfff\ufffe\uffff") == "\ufffd" * 10
    root = ET.Element("r", {"a": "x\x01"})
    ET.SubElement(root, "c").text = "y\x02"
    parsed = ET.fromstring(xml_text.to_bytes(root))  # noqa: S314 (made here)
    assert parsed.get("a") == "x\ufffd" and parsed.findtext("c") == "y\ufffd"
