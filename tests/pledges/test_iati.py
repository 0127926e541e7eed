"""IATI 2.03 activity XML per organisation and per partnership: every export validates against
the standard's XSD (xmlschema, offline), and the codes it uses are the IATI codelists' codes
for what happened (transaction types, roles, sectors, statuses, country)."""

from __future__ import annotations

import argparse
import asyncio
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import httpx
import pytest
import xmlschema

from services import exports_command
from services.pledges import demo, domain, subscriptions
from services.pledges.formats import iati
from shared.auth import Role
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.metrics import Metrics
from tests.conftest import settings_for
from tests.pledges.conftest import (
    GENERATORS_NEED,
    PledgesApi,
    assert_problem,
    generators_pledge,
    incoming,
    loading,
)

STANDARD = Path(__file__).parent.parent / "fixtures" / "standards" / "iati"
SCHEMA = xmlschema.XMLSchema(STANDARD / "iati-activities-schema.xsd")

# The IATI codelists (version 2.03) this export may use, as the standard documents them
TRANSACTION_TYPES = {str(n) for n in range(1, 14)}  # 12, 13 (pledges) are new in 2.03
ORGANISATION_ROLES = {"1", "2", "3", "4"}  # funding, accountable, extending, implementing
ACTIVITY_STATUSES = {"1", "2", "3", "4", "5", "6"}
ACTIVITY_DATE_TYPES = {"1", "2", "3", "4"}
ORGANISATION_TYPES = {
    *("10", "11", "15", "21", "22", "23", "24", "30", "40"),
    *("60", "70", "71", "72", "73", "80", "90"),
}
FINANCE_TYPES = {"110"}  # Standard grant (the only one used)
# OECD DAC 5-digit purpose codes (Sector codelist, vocabulary 1) the mapping may use
DAC5 = {
    "72010": "Material relief assistance and services",
    "72011": "Basic Health Care Services in Emergencies",
    "72040": "Emergency food assistance",
    "72050": "Relief co-ordination and support services",
    "99810": "Sectors not specified",
}

MONEY_NEED = {
    "need_id": "kharkiv-medicines-fund",
    "kind": "money",
    "category": "medicines",
    "description": "Funds for medicines for the city hospitals",
    "amount": 20_000_000,
    "currency": "EUR",
    "priority": "high",
    "serves": ["hospitals"],
}


def money_line(line_id: str, amount: int, *, need: str | None = "kharkiv-medicines-fund") -> Any:
    return {
        "line_id": line_id,
        "kind": "money",
        "need_id": need,
        "item": "Medicines fund",
        "category": "medicines",
        "amount": amount,
        "currency": "EUR",
    }


@pytest.fixture
async def runner(api: PledgesApi) -> AsyncIterator[ConsumerRunner]:
    db = Database(api.url, max_size=2)
    await db.open()
    try:
        yield ConsumerRunner(
            service="pledges",
            settings=settings_for(api.url),
            db=db,
            metrics=Metrics("pledges-test"),
            handlers=subscriptions.HANDLERS,
        )
    finally:
        await db.close()


async def deliver(runner: ConsumerRunner, received: str) -> None:
    """Shipments confirms `received` generators arrived in good condition on convoy-1."""
    event = incoming(
        "shipments",
        "shipments.delivery-confirmed",
        {
            "convoy_id": "convoy-1",
            "recipient_id": "kharkiv",
            "origin_id": "lille",
            "carrier_id": "lille",
            "lines": [
                {
                    "manifest_line_id": "m1",
                    "pledge_id": "lille-generators",
                    "line_id": "generators",
                    "item": "Medium-sized generator",
                    "unit": "pieces",
                    "loaded": received,
                    "received": received,
                    "damaged": "0",
                    "short": "0",
                    "lost": "0",
                }
            ],
        },
        stream_id="convoy-convoy-1",
        event_id=uuid.uuid4(),
    )
    for e in loading(event):
        await runner.apply(e)
    assert await runner.apply(event)


async def scenario(api: PledgesApi, runner: ConsumerRunner) -> None:
    """Kharkiv needs generators and money for medicines. Lille commits 100 generators (valued
    EUR 60,000) and EUR 150,000 under its twinning; 25 generators arrive, EUR 100,000 is
    received. Leeds pledges EUR 30,000 without committing; CHU de Lille commits EUR 20,000,
    then withdraws it."""
    posted = "2023-01-15T00:00:00+00:00"
    await api.ok("/v1/needs", {**GENERATORS_NEED, "occurred_at": posted}, by="kharkiv")
    await api.ok("/v1/needs", {**MONEY_NEED, "occurred_at": posted}, by="kharkiv")
    body = generators_pledge(
        commit=True,
        internal_note="do not publish: board minutes 7",
        occurred_at="2023-02-01T00:00:00+00:00",
    )
    body["lines"][0]["estimated_value"] = {"amount": 6_000_000, "currency": "EUR"}
    body["lines"].append(money_line("funds", 15_000_000))
    await api.ok("/v1/pledges", body, by="lille")
    await api.ok(
        "/v1/pledges/lille-generators/lines/funds/receipts",
        {
            "amount": 10_000_000,
            "currency": "EUR",
            "received_on": "2023-02-22",
            "reference": "SEPA 42",
        },
        by="kharkiv",
    )
    await deliver(runner, "25")
    leeds = {"pledge_id": "leeds-funds", "recipient_id": "kharkiv"}
    await api.ok("/v1/pledges", {**leeds, "lines": [money_line("funds", 3_000_000)]}, by="leeds")
    chu = {"pledge_id": "chu-funds", "recipient_id": "kharkiv", "commit": True}
    await api.ok("/v1/pledges", {**chu, "lines": [money_line("funds", 2_000_000)]}, by="chu-lille")
    await api.ok("/v1/pledges/chu-funds/withdraw", {"reason": "budget cut"}, by="chu-lille")


async def export(api: PledgesApi, reader: str = "bucha", **params: str) -> ET.Element:
    response = await api.client.get(
        "/v1/exports/iati", params=params, headers=await api.as_(reader)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/xml"
    SCHEMA.validate(response.text)  # raises on the first error
    assert b"board minutes" not in response.content
    return parse(response.content)


def parse(document: bytes) -> ET.Element:
    return ET.fromstring(document)  # noqa: S314 (our own export)


def at(element: ET.Element | None, path: str, name: str) -> str | None:
    """The attribute `name` of the element at `path` under `element`."""
    assert element is not None
    found = element.find(path)
    assert found is not None, path
    return found.get(name)


def activities(root: ET.Element) -> dict[str, ET.Element]:
    return {a.findtext("iati-identifier", ""): a for a in root.findall("iati-activity")}


def transactions(activity: ET.Element) -> list[tuple[str, str, str, str]]:
    """(type, date, value, currency) of each transaction, in order; the value dated as the
    transaction."""
    out = []
    for t in activity.findall("transaction"):
        on = at(t, "transaction-date", "iso-date") or ""
        assert at(t, "value", "value-date") == on
        out.append(
            (
                at(t, "transaction-type", "code") or "",
                on,
                t.findtext("value", ""),
                at(t, "value", "currency") or "",
            )
        )
    return out


def roles(activity: ET.Element) -> set[tuple[str, str, str]]:
    return {
        (p.get("ref", ""), p.get("role", ""), p.findtext("narrative", ""))
        for p in activity.findall("participating-org")
    }


def sectors(activity: ET.Element) -> list[tuple[str, str, str]]:
    return [
        (s.get("vocabulary", ""), s.get("code", ""), s.get("percentage", ""))
        for s in activity.findall("sector")
    ]


def assert_codes_valid(root: ET.Element) -> None:
    """Every code in the document is one of its IATI codelist's."""
    assert root.get("version") == "2.03"
    for a in root.findall("iati-activity"):
        assert {t.get("code") for t in a.iter("transaction-type")} <= TRANSACTION_TYPES
        assert {p.get("role") for p in a.iter("participating-org")} <= ORGANISATION_ROLES
        orgs = [
            *a.iter("participating-org"),
            *a.iter("reporting-org"),
            *a.iter("provider-org"),
            *a.iter("receiver-org"),
        ]
        assert {p.get("type") for p in orgs} <= ORGANISATION_TYPES
        assert {s.get("code") for s in a.iter("activity-status")} <= ACTIVITY_STATUSES
        assert {d.get("type") for d in a.iter("activity-date")} <= ACTIVITY_DATE_TYPES
        assert {f.get("code") for f in a.iter("default-finance-type")} <= FINANCE_TYPES
        for s in a.findall("sector"):
            assert s.get("vocabulary") == "1" and s.get("code") in DAC5
            assert s.findtext("narrative") == DAC5[s.get("code", "")]
        assert all(r.get("ref", "").startswith("XI-TWINAID-") for r in a.iter("reporting-org"))


def test_the_schema_set_up_validates_the_standards_own_examples() -> None:
    for name in ("example-minimal.xml", "example-transaction.xml"):
        SCHEMA.validate(STANDARD / name)
    assert not SCHEMA.is_valid("<iati-activities version='2.03'/>")  # at least one activity


def test_every_category_has_a_dac_purpose_code() -> None:
    assert set(iati.SECTORS) == {c.value for c in domain.Category}
    for category, sector in iati.SECTORS.items():
        assert DAC5.get(sector.code) == sector.name, category


async def test_an_organisation_export_has_its_needs_and_the_pledges_it_made_or_received(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await scenario(api, runner)
    root = await export(api, organisation="kharkiv")
    assert_codes_valid(root)
    by_id = activities(root)
    assert list(by_id) == [
        "XI-TWINAID-kharkiv-need-kharkiv-generators",
        "XI-TWINAID-kharkiv-need-kharkiv-medicines-fund",
        "XI-TWINAID-lille-pledge-lille-generators",
        "XI-TWINAID-leeds-pledge-leeds-funds",
        "XI-TWINAID-chu-lille-pledge-chu-funds",
    ]
    generators = by_id["XI-TWINAID-kharkiv-need-kharkiv-generators"]
    assert at(generators, "reporting-org", "ref") == "XI-TWINAID-kharkiv"
    assert at(generators, "reporting-org", "type") == "11"
    assert sectors(generators) == [("1", "72010", "100")]
    assert [c.get("code") for c in generators.findall("recipient-country")] == ["UA"]
    assert roles(generators) == {
        ("XI-TWINAID-kharkiv", "2", "Kharkiv"),
        ("XI-TWINAID-kharkiv", "4", "Kharkiv"),
        ("XI-TWINAID-lille", "1", "Lille"),
    }
    assert at(generators, "activity-status", "code") == "2"
    assert transactions(generators) == []  # goods arrive in the donor's activity only

    fund = by_id["XI-TWINAID-kharkiv-need-kharkiv-medicines-fund"]
    assert fund.get("default-currency") == "EUR"
    assert sectors(fund) == [("1", "72011", "100")]
    assert {r[0] for r in roles(fund) if r[1] == "1"} == {
        "XI-TWINAID-lille",
        "XI-TWINAID-leeds",
        "XI-TWINAID-chu-lille",
    }
    fund_tx = transactions(fund)
    # Lille's commitment and what arrived, Leeds's pledge, CHU's commitment and its withdrawal
    assert [(t[0], t[2]) for t in fund_tx] == [
        ("11", "150000.00"),
        ("1", "100000.00"),
        ("13", "30000.00"),
        ("11", "20000.00"),
        ("11", "-20000.00"),
    ]
    assert ("1", "2023-02-22", "100000.00", "EUR") in fund_tx
    incoming_funds = next(
        t for t in fund.findall("transaction") if at(t, "transaction-type", "code") == "1"
    )
    assert at(incoming_funds, "provider-org", "provider-activity-id") == (
        "XI-TWINAID-lille-pledge-lille-generators"
    )

    lille = by_id["XI-TWINAID-lille-pledge-lille-generators"]
    assert at(lille, "reporting-org", "ref") == "XI-TWINAID-lille"
    assert roles(lille) == {
        ("XI-TWINAID-lille", "1", "Lille"),
        ("XI-TWINAID-lille", "3", "Lille"),
        ("XI-TWINAID-kharkiv", "4", "Kharkiv"),
    }
    assert sectors(lille) == [("1", "72010", "50.00"), ("1", "72011", "50.00")]
    assert [c.get("code") for c in lille.findall("recipient-country")] == ["UA"]
    assert at(lille, "activity-status", "code") == "2"
    # commitments of both lines; 25 of 100 generators valued EUR 60,000; EUR 100,000 received
    assert [(t[0], t[2]) for t in transactions(lille)] == [
        ("2", "60000.00"),
        ("3", "15000.00"),
        ("2", "150000.00"),
        ("3", "100000.00"),
    ]
    commitment = lille.find("transaction")
    assert at(commitment, "receiver-org", "receiver-activity-id") == (
        "XI-TWINAID-kharkiv-need-kharkiv-generators"
    )

    leeds = by_id["XI-TWINAID-leeds-pledge-leeds-funds"]
    assert at(leeds, "activity-status", "code") == "1"
    assert [t[0] for t in transactions(leeds)] == ["12"]
    chu = by_id["XI-TWINAID-chu-lille-pledge-chu-funds"]
    assert at(chu, "activity-status", "code") == "5"
    assert at(chu, "reporting-org", "type") == "15"
    assert [(t[0], t[2]) for t in transactions(chu)] == [("2", "20000.00"), ("2", "-20000.00")]
    assert {d.get("type") for d in chu.findall("activity-date")} == {"2", "4"}


async def test_a_donors_export_has_only_its_own_pledges(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await scenario(api, runner)
    root = await export(api, organisation="leeds")
    assert_codes_valid(root)
    assert list(activities(root)) == ["XI-TWINAID-leeds-pledge-leeds-funds"]


async def test_a_partnership_export_has_its_pledges_and_its_parties_needs(
    api: PledgesApi, runner: ConsumerRunner
) -> None:
    await scenario(api, runner)
    root = await export(api, partnership="lille-kharkiv-twinning", reader="audit")
    assert_codes_valid(root)
    assert list(activities(root)) == [
        "XI-TWINAID-kharkiv-need-kharkiv-generators",
        "XI-TWINAID-kharkiv-need-kharkiv-medicines-fund",
        "XI-TWINAID-lille-pledge-lille-generators",
    ]
    description = activities(root)["XI-TWINAID-lille-pledge-lille-generators"].findtext(
        "description/narrative", ""
    )
    assert "under partnership lille-kharkiv-twinning" in description
    assert "delivered in good condition 25" in description


async def test_every_category_exports_its_sector(api: PledgesApi) -> None:
    for category in domain.Category:
        need = {
            **GENERATORS_NEED,
            "need_id": f"kharkiv-{category.value.replace('_', '-')}",
            "category": category.value,
        }
        await api.ok("/v1/needs", need, by="kharkiv")
    root = await export(api, organisation="kharkiv")
    assert_codes_valid(root)
    codes = {a.findtext("iati-identifier", ""): sectors(a) for a in root.findall("iati-activity")}
    assert len(codes) == len(domain.Category)
    for category in domain.Category:
        key = f"XI-TWINAID-kharkiv-need-kharkiv-{category.value.replace('_', '-')}"
        assert codes[key] == [("1", iati.SECTORS[category.value].code, "100")]
    assert codes["XI-TWINAID-kharkiv-need-kharkiv-food"][0][1] == "72040"
    assert codes["XI-TWINAID-kharkiv-need-kharkiv-antibiotics"][0][1] == "72011"


async def test_bad_requests_are_problems(api: PledgesApi) -> None:
    headers = await api.as_("bucha")

    async def get(**params: str) -> Any:
        return await api.client.get("/v1/exports/iati", params=params, headers=headers)

    assert "either organisation or partnership" in assert_problem(await get(), 422)["detail"]
    both = await get(organisation="kharkiv", partnership="lille-kharkiv-twinning")
    assert_problem(both, 422)
    assert "nowhere" in assert_problem(await get(organisation="nowhere"), 404)["detail"]
    assert_problem(await get(partnership="no-such-partnership"), 404)
    nothing = assert_problem(await get(organisation="bucha"), 404)
    assert "no needs or pledges" in nothing["detail"]
    anonymous = await api.client.get("/v1/exports/iati", params={"organisation": "kharkiv"})
    assert_problem(anonymous, 401)


async def test_any_key_reads_the_export_as_it_reads_the_reports(api: PledgesApi) -> None:
    await api.ok("/v1/needs", GENERATORS_NEED, by="kharkiv")
    for reader, role in (("bucha", Role.MEMBER), ("lille", Role.LOGISTICS), ("a", Role.AUDITOR)):
        response = await api.client.get(
            "/v1/exports/iati",
            params={"organisation": "kharkiv"},
            headers=await api.as_(reader, role),
        )
        assert response.status_code == 200, (reader, response.text)
        SCHEMA.validate(response.text)


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="twinaid")
    exports_command.register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["export", *argv])


async def test_the_cli_writes_the_export_to_a_file(
    api: PledgesApi, runner: ConsumerRunner, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await scenario(api, runner)
    token = (await api.as_("bucha"))["Authorization"].removeprefix("Bearer ")
    transport = httpx.ASGITransport(app=api.app)
    out = tmp_path / "kharkiv.xml"
    args = cli("iati", "--organisation", "kharkiv", "--out", str(out), "--url", "http://t")
    assert await exports_command.export(args, env={"TWINAID_KEY": token}, transport=transport) == 0
    SCHEMA.validate(out.read_text())
    via_api = await api.client.get(
        "/v1/exports/iati", params={"organisation": "kharkiv"}, headers=await api.as_("bucha")
    )
    assert activities(parse(out.read_bytes())).keys() == activities(parse(via_api.content)).keys()
    partnership = tmp_path / "partnership.xml"
    env = {"TWINAID_KEY": token, "TWINAID_PLEDGES_URL": "http://t"}
    args = cli("iati", "--partnership", "lille-kharkiv-twinning", "--out", str(partnership))
    assert await exports_command.export(args, env=env, transport=transport) == 0
    SCHEMA.validate(partnership.read_text())
    capsys.readouterr()

    args = cli("iati", "--organisation", "nowhere", "--url", "http://t", "--key", token)
    assert await exports_command.export(args, env={}, transport=transport) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "404" in err and "organisation nowhere" in err
    args = cli("iati", "--organisation", "kharkiv", "--url", "http://t", "--key", "twa_bad")
    assert await exports_command.export(args, env={}, transport=transport) == 1
    assert " 401 " in capsys.readouterr().err


def test_the_cli_fails_in_one_line_without_a_key_or_a_service(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = cli("iati", "--organisation", "kharkiv")
    assert asyncio.run(exports_command.export(args, env={})) == 1
    assert (
        capsys.readouterr().err
        == "twinaid: export iati: no API key: pass --key, set TWINAID_KEY or TWINAID_API_KEY,"
        " or api_key in the config file\n"
    )
    assert exports_command.request(args, {}) == (
        "http://127.0.0.1:8102/v1/exports/iati",
        {"organisation": "kharkiv"},
    )
    epcis = cli("epcis", "--convoy", "a/b")
    assert exports_command.request(epcis, {"TWINAID_SHIPMENTS_URL": "http://s:1/"}) == (
        "http://s:1/v1/convoys/a%2Fb/epcis",
        {},
    )
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    unreachable = cli("epcis", "--convoy", "c1", "--url", f"http://127.0.0.1:{port}", "--key", "k")
    assert exports_command.run(unreachable) == 1
    err = capsys.readouterr().err
    assert err.startswith("twinaid: export epcis: cannot reach") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        cli("iati", "--organisation", "a", "--partnership", "b")


async def test_the_demo_data_exports_valid_iati_for_every_party(api: PledgesApi) -> None:
    api.client.headers.update(await api.as_("twinaid", Role.REGISTRY_ADMIN))
    await demo.load(api.client)
    for organisation in ("kharkiv", "lille", "chu-lille", "leeds-community-foundation"):
        root = await export(api, organisation=organisation)
        assert_codes_valid(root)
    root = await export(api, partnership="lille-kharkiv-twinning")
    assert_codes_valid(root)
    leeds = activities(await export(api, organisation="leeds-community-foundation"))
    [appeal] = leeds.values()
    # Leeds's GBP 140,000 appeal: committed, then received in full
    assert {(t[0], t[2], t[3]) for t in transactions(appeal)} == {
        ("2", "140000.00", "GBP"),
        ("3", "140000.00", "GBP"),
    }


def test_the_cli_takes_the_format_as_an_option_too() -> None:
    for argv in (
        ["export", "--format", "iati", "--organisation", "kharkiv"],
        ["export", "--format=iati", "--organisation", "kharkiv"],
        ["export", "iati", "--organisation", "kharkiv"],
    ):
        words = exports_command.spelled_as_subcommand(argv)
        args = cli(*words[1:])
        assert (args.format, args.organisation) == ("iati", "kharkiv"), argv
    audit = ["audit", "export", "--format", "csv", "--service", "registry"]
    assert exports_command.spelled_as_subcommand(audit) == audit
