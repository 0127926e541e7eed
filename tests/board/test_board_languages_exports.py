"""Issue 23: the board in Ukrainian, French and English, in one explicit time zone; CSV of what
it shows; a convoy printed on A4 as a delivery record; the route sketch's origin and
destination. In Debian's chromium on the real stack with the demo data."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.board.conftest import Running, Tab, opened_tab

pytestmark = pytest.mark.once

GENERATORS = "lille-kharkiv-generators-2023-03"  # on the road
MEDICINES_2022 = "lille-kharkiv-medicines-2022-06"  # delivered in June 2022, closed
VANS = "leeds-kharkiv-vans-2022-03"
LOCALES = {"en": "en-GB", "uk": "uk-UA", "fr": "fr-FR"}
# June 2022, as each language writes the month of the medicines' convoy
JUNE = {"en": re.compile(r"\bJun"), "uk": re.compile(r"черв"), "fr": re.compile(r"\bjuin")}
# 6.988 tonnes received, with each language's decimal separator
RECEIVED = {"en": "6.988", "uk": "6,988", "fr": "6,988"}
# "Not found" (Ukrainian in escapes: ruff flags Cyrillic letters that look Latin)
NOT_FOUND = {
    "en": "Not found",
    "uk": "\u041d\u0435 \u0437\u043d\u0430\u0439\u0434\u0435\u043d\u043e",
    "fr": "Page introuvable",
}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
# A4 (210 mm) less the print stylesheet's 12 mm margins, at 96 px per inch
A4_CONTENT_PX = round((210 - 2 * 12) / 25.4 * 96)
# how each catalogue says "year-month-day": the day inputs' placeholder, in ISO order
BOARD = Path(__file__).resolve().parents[2] / "services" / "shipments" / "board"
DAY_FORMAT = {
    lang: json.loads((BOARD / f"i18n-{lang}.json").read_text())["board.date_format"]
    for lang in LOCALES
}


async def sign_in(tab: Tab, who: str, at: str = "") -> None:
    """Signs in whatever the page's language (the tests' own helper reads English labels)."""
    page = tab.page
    await page.goto(tab.running.board + at)
    key = page.locator("#main input[type=password]")
    await key.fill(tab.running.keys[who])
    await key.press("Enter")
    await page.locator("#nav").wait_for(state="visible")


async def settled(page: Page) -> None:
    """Until nothing on the page is loading any more."""
    await expect(page.locator("main .loading")).to_have_count(0, timeout=15000)


async def untranslated(page: Page) -> list[str]:
    """Missing keys (⟦key⟧) anywhere in the text, the title or an attribute people are read."""
    found: list[str] = await page.evaluate(
        r"""() => {
            const texts = [document.title, document.body.innerText];
            for (const el of document.querySelectorAll("*")) {
                for (const name of ["aria-label", "title", "label", "data-label", "placeholder"]) {
                    const value = el.getAttribute(name);
                    if (value) texts.push(value);
                }
            }
            for (const el of document.querySelectorAll("svg title, svg desc")) {
                texts.push(el.textContent);
            }
            return texts.flatMap((t) => t.match(/⟦[^⟧]*⟧/g) || []);
        }"""
    )
    return found


async def api_get(running: Running, service: str, path: str, who: str) -> Any:
    async with httpx.AsyncClient(base_url=running.apis[service], timeout=10) as client:
        response = await client.get(path, headers=running.headers(who))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("lang", ["uk", "fr", "en"])
async def test_every_page_speaks_the_browser_language_with_no_untranslated_key(
    browser: Browser, running: Running, lang: str, tmp_path: Path
) -> None:
    async with opened_tab(browser, running, locale=LOCALES[lang], timezone_id="Europe/Kyiv") as tab:
        page = tab.page
        await page.goto(running.board)
        # the sign-in page first: the language is the browser's, said to assistive technology
        await expect(page.locator("html")).to_have_attribute("lang", lang)
        await expect(page.locator("#main input[type=password]")).to_be_visible()
        assert await untranslated(page) == []
        sign_in_text = await page.locator("#main").inner_text()

        await sign_in(tab, "auditor", at="#/board?status=all")
        await expect(page.locator("tbody tr")).to_have_count(4)
        await settled(page)
        assert await untranslated(page) == []
        # the time zone is named on the page, and is the browser's
        await expect(page.locator("#pref-zone")).to_have_value("Europe/Kyiv")
        await expect(page.locator(".zone-hint")).to_contain_text("Europe/Kyiv")
        # days are typed and shown in ISO order, said in the page's language: never the
        # browser's own date picker order (mm/dd/yyyy beside a Ukrainian page)
        for day in (page.locator("#filter-from"), page.locator("#filter-to")):
            await expect(day).to_have_attribute("type", "text")
            await expect(day).to_have_attribute("placeholder", DAY_FORMAT[lang])
        if lang == "uk":
            await tab.screenshot(tmp_path, "board-uk.png")

        pages = [
            f"#/convoys/{MEDICINES_2022}",
            "#/municipalities/kharkiv",
            f"#/audit?trace={VANS}",
            "#/nowhere",
        ]
        for at in pages:
            await page.goto(running.board + at)
            await expect(page.locator("main h1")).to_be_visible()
            await settled(page)
            if at.startswith("#/audit"):
                await expect(page.locator("table.trace tbody tr").first).to_be_visible()
                await expect(page.locator("tr[data-service] .verdict .badge")).to_have_count(3)
            assert await untranslated(page) == [], at
            if at.startswith("#/convoys"):
                # dates and numbers as the language writes them, in the page's one zone
                first = page.locator("ol.timeline li .when time").first
                assert JUNE[lang].search(await first.inner_text())
                delivered = page.locator("table.manifest td:nth-child(11)").first
                await expect(delivered).to_contain_text(RECEIVED[lang])
            if at.startswith("#/municipalities"):
                # names as the registry holds them: never translated, never transliterated
                await expect(page.locator("main h1")).to_have_text("Kharkiv")
                await expect(main_text := page.locator("main")).to_contain_text("Харків")
                await expect(main_text).to_contain_text("Харьков")
                # money in the currency of the data, formatted per language
                received = page.locator("table.money td").nth(3)
                text = (await received.inner_text()).replace("\u202f", " ").replace("\xa0", " ")
                expected = {"en": "£140,000.00", "uk": "140 000,00 GBP", "fr": "140 000,00 £GB"}
                assert text == expected[lang]
            if at == "#/nowhere":
                heading = await page.locator("main h1").inner_text()
                assert heading == NOT_FOUND[lang]
        english_sign_in = "Paste your twinaid API key"
        assert (english_sign_in in sign_in_text) == (lang == "en")


async def test_the_language_and_the_zone_are_switched_and_remembered(
    browser: Browser, running: Running
) -> None:
    async with opened_tab(browser, running, locale="en-US", timezone_id="UTC") as tab:
        page = tab.page
        await sign_in(tab, "kharkiv", at=f"#/convoys/{MEDICINES_2022}")
        await expect(page.get_by_role("heading", name="Manifest")).to_be_visible()
        assert await page.evaluate("localStorage.length") == 0
        await page.locator("#pref-language").select_option("uk")
        await expect(page.get_by_role("heading", name="Маніфест")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "uk")
        await expect(page.locator("#nav a[data-tab=board]")).to_have_text("Дошка")
        first = page.locator("ol.timeline li .when time").first
        iso = await first.get_attribute("datetime")
        assert iso
        before = await first.inner_text()
        await page.locator("#pref-zone").select_option("Europe/Kyiv")
        await expect(page.locator("#zone-offset")).to_have_text(re.compile(r"^UTC\+0[23]:00$"))
        # the same instant, shown three hours later (Kyiv's summer time in June 2022)
        await expect(first).not_to_have_text(before)
        instant = datetime.fromisoformat(iso).astimezone(ZoneInfo("Europe/Kyiv"))
        assert f"{instant:%H:%M}" in await first.inner_text()
        await page.reload()
        await expect(page.get_by_role("heading", name="Маніфест")).to_be_visible()
        await expect(page.locator("#pref-zone")).to_have_value("Europe/Kyiv")


async def test_the_checkpoint_time_is_read_in_the_zone_shown_and_sent_in_utc(
    browser: Browser, running: Running
) -> None:
    # the browser is in New York; the page is told Kyiv: Kyiv's wall time is what is typed
    async with opened_tab(browser, running, locale="en-GB", timezone_id="America/New_York") as tab:
        page = tab.page
        await sign_in(tab, "kharkiv", at=f"#/convoys/{GENERATORS}")
        await page.locator("#pref-zone").select_option("Europe/Kyiv")
        form = page.locator("#checkpoint-form")
        when = form.get_by_label("When")
        await expect(form).to_contain_text("Time in Europe/Kyiv (UTC+0")
        kyiv = (datetime.now(ZoneInfo("Europe/Kyiv")) - timedelta(minutes=7)).replace(
            second=0, microsecond=0
        )
        await when.fill(f"{kyiv:%Y-%m-%dT%H:%M}")
        sent_utc = kyiv.astimezone(UTC)
        await expect(form.locator(".utc-preview")).to_have_text(
            f"Sent as {sent_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
        await form.get_by_label("Place").fill("Vilkhuvatka")
        async with page.expect_request(
            lambda r: r.method == "POST" and r.url.endswith("/entries")
        ) as posted:
            await form.get_by_role("button", name="Record checkpoint").click()
        body = (await posted.value).post_data_json
        assert body["entries"][0]["occurred_at"] == sent_utc.isoformat().replace("+00:00", ".000Z")
        await expect(form.locator(".form-done")).to_have_text("Checkpoint at Vilkhuvatka recorded.")
        timeline = await api_get(
            running, "shipments", f"/v1/convoys/{GENERATORS}/timeline", "kharkiv"
        )
        recorded = next(e for e in timeline["entries"] if e["data"].get("place") == "Vilkhuvatka")
        assert datetime.fromisoformat(recorded["occurred_at"]) == sent_utc


def read_csv(path: str) -> list[list[str]]:
    raw = Path(path).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), raw[:10]  # UTF-8 with BOM, for spreadsheet apps
    assert b"\r\n" in raw
    return list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


async def download(page: Page, button: str) -> tuple[str, list[list[str]]]:
    async with page.expect_download() as started:
        await page.locator(button).click()
    done = await started.value
    path = await done.path()
    return done.suggested_filename, read_csv(str(path))


async def test_the_board_a_convoy_and_a_trace_download_as_csv(tab: Tab, running: Running) -> None:
    page = tab.page
    await sign_in(tab, "auditor", at="#/board?status=all")
    rows = page.locator("tbody tr")
    await expect(rows).to_have_count(4)
    name, table = await download(page, "#board-csv")
    assert name.endswith(".csv")
    header, *lines = table
    assert header[:5] == ["Convoy", "Reference", "From", "To", "Status"]
    shown = await rows.evaluate_all("rows => rows.map(r => r.dataset.convoyId)")
    assert [line[0] for line in lines] == shown
    listed = {
        c["convoy_id"]: c
        for c in (await api_get(running, "shipments", "/v1/convoys?limit=50", "auditor"))["items"]
    }
    for line in lines:
        assert line[4] == listed[line[0]]["status"]
        assert line[1] == listed[line[0]]["reference"]

    await page.goto(f"{running.board}#/convoys/{MEDICINES_2022}")
    convoy = await api_get(running, "shipments", f"/v1/convoys/{MEDICINES_2022}", "auditor")
    _, manifest = await download(page, "#csv-manifest")
    assert manifest[0][:7] == ["Line", "Item", "Donor", "Pledge line", "Quantity", "Unit", "Weight"]
    assert [(r[0], r[4], r[5]) for r in manifest[1:]] == [
        (line["manifest_line_id"], str(line["quantity"]), line["unit"])
        for line in convoy["manifest"]
    ]
    _, timeline = await download(page, "#csv-timeline")
    history = await api_get(
        running, "shipments", f"/v1/audit/streams/convoy-{MEDICINES_2022}", "auditor"
    )
    hashes = {e["event_id"]: e["hash"] for e in history["events"]}
    entries = (
        await api_get(running, "shipments", f"/v1/convoys/{MEDICINES_2022}/timeline", "auditor")
    )["entries"]
    assert timeline[0] == [
        "Occurred (UTC)",
        "Event",
        "What",
        "Recorded (UTC)",
        "Chain position",
        "Hash",
    ]
    assert len(timeline) == 1 + len(entries) == 18
    for row, entry in zip(timeline[1:], entries, strict=True):
        assert datetime.fromisoformat(row[0].replace("Z", "+00:00")) == datetime.fromisoformat(
            entry["occurred_at"]
        )
        assert row[5] == hashes[entry["event_id"]] and HEX64.match(row[5])
    # a summary with commas and parentheses comes back whole through the quoting
    loaded = next(r for r in timeline[1:] if r[1] == "Line loaded")
    assert loaded[2].count(",") >= 1 and "(pledge " in loaded[2]
    _, delivery = await download(page, "#csv-delivery")
    assert delivery[0][:3] == ["Line", "Item", "Donor"]
    received = {r[0]: r[5] for r in delivery[1:]}
    assert received == {
        line["manifest_line_id"]: str(line["delivered"]["received"]) for line in convoy["manifest"]
    }
    assert {r[9] for r in delivery[1:]} == {"partial"}

    await page.goto(f"{running.board}#/audit?trace={VANS}")
    steps = page.locator("table.trace tbody tr")
    await expect(steps.first).to_be_visible()
    _, trace = await download(page, "#csv-trace")
    assert trace[0][:4] == ["Occurred (UTC)", "Service", "Event", "Event type"]
    types = await steps.evaluate_all("rows => rows.map(r => r.dataset.eventType)")
    assert [r[3] for r in trace[1:]] == types
    assert all(HEX64.match(r[7]) for r in trace[1:])


async def test_a_convoy_prints_on_a4_as_a_delivery_record(
    browser: Browser, running: Running, tmp_path: Path
) -> None:
    viewport = {"width": A4_CONTENT_PX, "height": 1100}
    async with opened_tab(browser, running, viewport=viewport, locale="en-GB") as tab:
        page = tab.page
        await sign_in(tab, "auditor", at=f"#/convoys/{MEDICINES_2022}")
        await expect(page.locator("ol.timeline .chain")).to_have_count(17)
        await page.emulate_media(media="print")
        # no header, navigation, buttons or forms on paper
        for hidden in (".top", "#nav", "button", "form", ".exports"):
            assert await page.locator(hidden).evaluate_all(
                "els => els.every(e => getComputedStyle(e).display === 'none' || !e.offsetParent)"
            ), hidden
        title = page.locator(".print-title")
        await expect(title).to_be_visible()
        await expect(title).to_contain_text(f"Delivery record · convoy {MEDICINES_2022}")
        await expect(title).to_contain_text("Lille → Kharkiv")
        await expect(title).to_contain_text("Printed ")
        # every table fits the page: no column cut off, nothing wider than the paper
        tables = await page.locator("main table").evaluate_all(
            "ts => ts.map(t => [t.className, t.scrollWidth, t.clientWidth,"
            " t.getBoundingClientRect().right])"
        )
        assert len(tables) >= 2
        for name, scroll_width, client_width, right in tables:
            assert scroll_width <= client_width, name
            assert right <= A4_CONTENT_PX + 1, name
        assert await page.evaluate("document.documentElement.scrollWidth") <= A4_CONTENT_PX
        # each step's chain position and FULL hash, as the audit history has them
        history = await api_get(
            running, "shipments", f"/v1/audit/streams/convoy-{MEDICINES_2022}", "auditor"
        )
        expected = {str(e["position"]): e["hash"] for e in history["events"] if e["hash"]}
        chain = await page.locator("ol.timeline .chain").evaluate_all(
            "cs => cs.map(c => [c.dataset.position, c.querySelector('.hash-value')?.textContent])"
        )
        assert len(chain) == 17
        for position, value in chain:
            assert value == expected[position] and HEX64.match(value)
        # long hashes wrap within the page instead of being cut
        widest = await page.locator(".hash-value").evaluate_all(
            "hs => Math.max(...hs.map(h => h.getBoundingClientRect().right))"
        )
        assert widest <= A4_CONTENT_PX
        await tab.screenshot(tmp_path, "convoy-print.png")
        pdf = await page.pdf(format="A4", print_background=True)
        assert pdf.startswith(b"%PDF-") and len(pdf) > 30_000
        pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))
        assert 1 <= pages <= 12, pages


async def test_a_full_hash_is_shown_whole_and_copied(browser: Browser, running: Running) -> None:
    async with opened_tab(browser, running, locale="en-GB") as tab:
        await tab.page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page = tab.page
        await sign_in(tab, "auditor", at="#/audit")
        head = page.locator('tr[data-service="shipments"] .hash-value')
        await expect(head).to_have_text(HEX64)
        verdict = await api_get(running, "shipments", "/v1/audit/verify", "auditor")
        value = await head.inner_text()
        # the head may have moved on between the two reads; the value is whole either way
        assert len(value) == 64 and (value == verdict["head_hash"] or HEX64.match(value))
        await page.locator('tr[data-service="shipments"] button.copy').click()
        assert await page.evaluate("navigator.clipboard.readText()") == value
        await expect(page.locator('tr[data-service="shipments"] button.copy')).to_have_text(
            "Copied"
        )


async def test_the_route_sketch_draws_origin_and_destination_when_the_view_has_them(
    tab: Tab, running: Running
) -> None:
    page = tab.page
    await sign_in(tab, "kharkiv", at=f"#/convoys/{GENERATORS}")
    sketch = page.locator("#route")
    await expect(sketch).to_be_visible()
    view = await api_get(running, "shipments", f"/v1/convoys/{GENERATORS}", "kharkiv")
    # the convoy page: the ends drawn exactly when the view places them
    has_ends = bool(view.get("origin_location") and view.get("destination_location"))
    await expect(sketch.locator(".end-mark.origin")).to_have_count(1 if has_ends else 0)
    await expect(sketch.locator(".end-mark.destination")).to_have_count(1 if has_ends else 0)

    # the drawing itself, from a view with both ends (Lille and Kharkiv) and without
    drawn = await page.evaluate(
        """async ([view]) => {
            const { routeSketch } = await import("./route.js");
            const at = (lat, lon, place, minutes) => ({
                event_type: "shipments.checkpoint-recorded",
                occurred_at: new Date(Date.now() - minutes * 60000).toISOString(),
                data: { place, coordinates: { lat, lon } },
            });
            const road = [at(50.45, 30.52, "Kyiv", 300), at(49.59, 34.55, "Poltava", 60)];
            const draw = (convoy) => {
                const figure = routeSketch(road, { id: `sketch-${convoy.status}`, convoy });
                document.body.append(figure);
                const svg = figure.querySelector("svg");
                const mark = (kind) => {
                    const g = svg.querySelector(`.end-mark.${kind}`);
                    if (!g) return null;
                    return { place: g.dataset.place, label: g.querySelector("text").textContent };
                };
                return {
                    origin: mark("origin"),
                    destination: mark("destination"),
                    stops: svg.querySelectorAll(".stop").length,
                    toGo: svg.querySelectorAll("polyline.to-go").length,
                    track: (svg.querySelector("polyline.track")?.getAttribute("points") ?? "")
                        .split(" ").filter(Boolean).length,
                    ends: figure.querySelector("p.ends")?.textContent ?? null,
                };
            };
            const base = { ...view, origin_id: "lille", destination_id: "kharkiv" };
            return {
                onTheRoad: draw({ ...base, status: "in_transit",
                    origin_location: { lat: 50.6292, lon: 3.0573 },
                    destination_location: { lat: 49.9935, lon: 36.2304 } }),
                arrived: draw({ ...base, status: "delivered",
                    origin_location: { lat: 50.6292, lon: 3.0573 },
                    destination_location: { lat: 49.9935, lon: 36.2304 } }),
                without: draw({ ...base, status: "in_transit",
                    origin_location: null, destination_location: null }),
            };
        }""",
        [view],
    )
    on_the_road = drawn["onTheRoad"]
    assert on_the_road["origin"] == {"place": "Lille", "label": "Lille"}
    assert on_the_road["destination"] == {"place": "Kharkiv", "label": "Kharkiv"}
    assert on_the_road["stops"] == 2
    # the track from Lille through Kyiv to Poltava; the rest to Kharkiv is still to go
    assert on_the_road["track"] == 3 and on_the_road["toGo"] == 1
    assert "Lille" in on_the_road["ends"] and "Kharkiv" in on_the_road["ends"]
    arrived = drawn["arrived"]
    assert arrived["track"] == 4 and arrived["toGo"] == 0
    # no coordinates for the ends: today's sketch, from the first checkpoint
    without = drawn["without"]
    assert without["origin"] is None and without["destination"] is None
    assert without["track"] == 2 and without["toGo"] == 0 and without["ends"] is None
