"""``hygie mobility``: generate, run, validate, report and purge from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hygie.cli import main
from tests.conftest import shared_data


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("HYGIE_SHARED_DATA", str(shared_data()))
    return CliRunner()


def test_generate_run_validate_report_purge(runner: CliRunner, tmp_path: Path) -> None:
    root = str(tmp_path / "m")
    r = runner.invoke(main, ["mobility", "generate", "--devices", "2000", "--days", "2",
                             "--root", root])
    assert r.exit_code == 0, r.output
    assert "2 days" in r.output
    r = runner.invoke(main, ["mobility", "run", "--root", root, "--threads", "1",
                             "--epsilon", "4"])
    assert r.exit_code == 0, r.output
    assert r.output.count("epsilon 4") == 2
    manifest = json.loads((tmp_path / "m" / "releases" / "date=2020-03-09" /
                           "manifest.json").read_text())
    assert manifest["epsilon_total"] == pytest.approx(4.0)
    assert len(manifest["epsilon_by_table"]) == 8
    r = runner.invoke(main, ["mobility", "validate", "--root", root])
    assert r.exit_code in (0, 1) and '"presence"' in r.output  # 2,000 devices: too few
    out = tmp_path / "out"
    for fmt in ("png", "html"):
        r = runner.invoke(main, ["mobility", "report", "--root", root, "--format", fmt,
                                 "--out", str(out)])
        assert r.exit_code == 0, r.output
    png = (out / "mobility-2020-03-10.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    html = (out / "mobility-2020-03-10.html").read_text()
    assert html.count("<svg") == 4 and "epsilon 4" in html
    for bad, why in ((["--date", "2019-01-01"], "no release for 2019-01-01; released days: "
                      "2020-03-09 to 2020-03-10"),
                     (["--baseline", "2020-3-9"], "is not a day (YYYY-MM-DD)"),
                     (["--zone", "99"], "not a département code")):
        r = runner.invoke(main, ["mobility", "report", "--root", root, "--out", str(out), *bad])
        assert r.exit_code != 0 and why in r.output, r.output
    r = runner.invoke(main, ["mobility", "purge", "--root", root])
    assert r.exit_code == 0 and "0 day(s)" in r.output  # received just now


def test_run_without_events_is_a_clear_error(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(main, ["mobility", "run", "--root", str(tmp_path)])
    assert r.exit_code != 0 and "no raw events" in r.output


@pytest.mark.parametrize(("args", "why"), [
    (["generate", "--devices", "0"], "'--devices': 0 is not in the range x>=1"),
    (["generate", "--days", "0"], "'--days': 0 is not in the range 1<=x<=366"),
    (["generate", "--start", "2020-13-01"], "'2020-13-01' is not a day (YYYY-MM-DD)"),
    (["generate", "--market-share", "0"], "'--market-share': 0.0 is not in the range 0<x<=1"),
    (["run", "--date", "yesterday"], "'yesterday' is not a day (YYYY-MM-DD)"),
    (["run", "--min-count", "0"], "'--min-count': 0 is not in the range x>=1"),
    (["run", "--epsilon", "-1"], "'--epsilon': -1.0 is not in the range x>0"),
    (["run", "--threads", "0"], "'--threads': 0 is not in the range x>=1"),
])
def test_bad_options_are_refused_with_the_reason(
    runner: CliRunner, tmp_path: Path, args: list[str], why: str
) -> None:
    r = runner.invoke(main, ["mobility", *args, "--root", str(tmp_path)])
    assert r.exit_code == 2 and why in r.output, r.output
    assert not any(tmp_path.iterdir())  # nothing written
