"""TWINAID_PORT_BASE is read as ASCII digits only: "²" (str.isdigit() holds, int() fails) and
"٣" (int() reads 3) are refused with the one line naming the variable, as "eighty" is."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import cli_support


def _env(tmp_path: Path, port_base: str) -> dict[str, str]:
    return {"HOME": str(tmp_path), "TWINAID_PORT_BASE": port_base}


@pytest.mark.parametrize(
    "given", ["²", "٣", "8²", "٣٠٠٠", " 8000", "8000 ", "+8000", "8_000", "-1"]
)
def test_a_port_base_that_is_not_ascii_digits_is_refused_naming_the_variable(
    tmp_path: Path, given: str
) -> None:
    with pytest.raises(cli_support.Failed) as failed:
        cli_support.load(_env(tmp_path, given))
    assert str(failed.value) == (f"TWINAID_PORT_BASE wants a number from 1 to 65000, not {given!r}")


@pytest.mark.parametrize("given", ["0", "65001", "9" * 5000])
def test_a_port_base_out_of_range_is_refused_too(tmp_path: Path, given: str) -> None:
    with pytest.raises(cli_support.Failed, match="TWINAID_PORT_BASE wants a number"):
        cli_support.load(_env(tmp_path, given))


def test_a_port_base_in_ascii_digits_moves_every_api(tmp_path: Path) -> None:
    config = cli_support.load(_env(tmp_path, "18000"))
    assert config.urls["registry"] == "http://127.0.0.1:18001"
