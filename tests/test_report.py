"""report.md and the figures from a study's summary: small synthetic studies shaped like the
real ones (cumulative, factorial with interactions and exact Shapley, one-at-a-time with a
cell whose whole set was not measured)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from worldswitch.report import REST, waterfall_steps, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("savings", "waterfall", "interactions")


def _row(plugin: str, alone: float | None = None, marginal: float | None = None,
         shapley: float | None = None) -> dict[str, Any]:
    return {"plugin": plugin, "alone": alone, "marginal": marginal, "shapley": shapley}


def _study(design: str, plugins: list[str], patches: dict[str, int | None], guests: list[str],
           platforms: list[str], cells: list[dict[str, Any]]) -> dict[str, Any]:
    return {"study": f"{design}:test", "design": design, "plugins": plugins, "patches": patches,
            "guests": guests, "platforms": platforms, "runs_made": 3, "runs_reused": 1,
            "skipped": [["+9", "p-nine requires p-eight"]], "invalid": ["+x: no such plugin"], "attribution": cells}


def _cell(guest: str, platform: str, vanilla: float, whole: float | None, rows: list[dict[str, Any]],
          sets: list[tuple[str, list[str], float]], interactions: list[tuple[str, str, float]] = (),
          exact: bool = False) -> dict[str, Any]:
    return {"guest": guest, "platform": platform, "vanilla": vanilla, "all": whole,
            "saved": None if whole is None else vanilla - whole, "plugins": rows,
            "interactions": [{"a": a, "b": b, "value": v} for a, b, v in interactions], "shapley_exact": exact,
            "sets": [{"label": label, "plugins": ps, "cycles": c} for label, ps, c in sets]}


def cumulative() -> dict[str, Any]:
    """Three plugins added one by one: 1, 2, then a third-party one; 2 saves nothing on A."""
    plugins = ["p-one", "p-two", "ext-plugin"]
    patches = {"p-one": 1, "p-two": 2, "ext-plugin": None}
    cells = []
    for guest, platform, levels in (("g1", "A", [1000, 900, 900, 700]), ("g1", "B", [800, 760, 700, 690]),
                                    ("g2", "A", [500, 450, 430, 420]), ("g2", "B", [600, 600, 550, 560])):
        sets = [("vanilla", [], levels[0])] + [(f"+{i}", plugins[:i], c) for i, c in enumerate(levels[1:], 1)]
        rows = [_row("p-one", alone=levels[0] - levels[1]), _row("p-two"),
                _row("ext-plugin", marginal=levels[2] - levels[3])]
        cells.append(_cell(guest, platform, levels[0], levels[-1], rows, sets))
    return _study("cumulative", plugins, patches, ["g1", "g2"], ["A", "B"], cells)


def factorial() -> dict[str, Any]:
    """Two plugins, every subset: on A they save 50 more together (synergy), on B 30 less (overlap)."""
    plugins = ["p-six", "ext-pair"]
    patches = {"p-six": 6, "ext-pair": None}
    cells = []
    for platform, both in (("A", 650.0), ("B", 730.0)):
        v, a, b = 1000.0, 900.0, 800.0
        sa, sb, sab = v - a, v - b, v - both
        rows = [_row("p-six", sa, sab - sb, (sa + sab - sb) / 2), _row("ext-pair", sb, sab - sa, (sb + sab - sa) / 2)]
        sets = [("vanilla", [], v), ("+6", ["p-six"], a), ("+ext-pair", ["ext-pair"], b),
                ("+6,ext-pair", plugins, both)]
        cells.append(_cell("g1", platform, v, both, rows, sets, [("p-six", "ext-pair", sab - sa - sb)], exact=True))
    return _study("factorial", plugins, patches, ["g1"], ["A", "B"], cells)


def one_at_a_time() -> dict[str, Any]:
    """8 requires 7 (so "alone" for 8 includes 7); g2's whole set was not measured."""
    plugins = ["p-seven", "p-eight", "ext-one"]
    patches = {"p-seven": 7, "p-eight": 8, "ext-one": None}
    sets = [("vanilla", [], 1000.0), ("all", plugins, 700.0), ("+7", ["p-seven"], 800.0),
            ("+8 (with 7)", ["p-seven", "p-eight"], 750.0), ("+ext-one", ["ext-one"], 950.0)]
    rows = [_row("p-seven", 200.0), _row("p-eight", 250.0), _row("ext-one", 50.0)]
    g1 = _cell("g1", "A", 1000.0, 700.0, rows, sets)
    g2 = _cell("g2", "A", 1000.0, None, rows, [s for s in sets if s[0] != "all"])
    return _study("one-at-a-time", plugins, patches, ["g1", "g2"], ["A"], [g1, g2])


STUDIES = {"cumulative": cumulative, "factorial": factorial, "one-at-a-time": one_at_a_time}


def _labels(data: dict[str, Any]) -> list[str]:
    return [str(data["patches"][p]) if data["patches"][p] is not None else p for p in data["plugins"]]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict[str, Any], Path, list[Path]]]:
    """Each study rendered once (a render takes a second or two): design -> (data, out dir, paths)."""
    out = {}
    for design, make in STUDIES.items():
        data = make()
        where = tmp_path_factory.mktemp(design) / "out"  # a directory that does not exist yet
        out[design] = (data, where, write_report(data, where))
    return out


def _svg(where: Path) -> dict[str, str]:
    return {f: (where / f"{f}.svg").read_text(encoding="utf-8") for f in FIGURES}


@pytest.mark.parametrize("design", STUDIES)
def test_writes_report_and_every_figure(design: str, rendered: dict) -> None:
    data, where, written = rendered[design]
    expected = {"report.md"} | {f"{f}.{ext}" for f in FIGURES for ext in ("png", "svg")}
    assert {p.name for p in written} == expected
    assert all(p.parent == where and p.is_file() for p in written)
    for figure in FIGURES:
        png = (where / f"{figure}.png").read_bytes()
        assert len(png) > 1000 and png.startswith(PNG_SIGNATURE)
    svg = _svg(where)
    assert "Per-patch savings" in svg["savings"] and "cycles per iteration" in svg["savings"]
    assert "patch (number in the series, or plugin name)" in svg["savings"]
    assert "Waterfall from vanilla to every plugin" in svg["waterfall"]
    assert "Pair interactions" in svg["interactions"]
    for name in data["platforms"]:  # the savings legend names every platform
        assert f">{name}<" in svg["savings"]


def test_figures_say_what_they_show(rendered: dict) -> None:
    svg = {design: _svg(where) for design, (_, where, _) in rendered.items()}
    # which saving the bars are
    assert "Shapley share" in svg["factorial"]["savings"]
    assert "saved alone" in svg["one-at-a-time"]["savings"]
    assert "saved in series order" in svg["cumulative"]["savings"]
    # the waterfall's axes and legend, and the panel for a cell without the whole set
    for design in STUDIES:
        assert "cycles per iteration" in svg[design]["waterfall"]
        assert "vanilla / all plugins" in svg[design]["waterfall"]
    assert "whole set not measured" in svg["one-at-a-time"]["waterfall"]
    # the heatmap's colorbar, or the panel saying the design measures no pairs
    assert "interaction, cycles per iteration" in svg["factorial"]["interactions"]
    assert "factorial measures pairs; one-at-a-time does not" in svg["one-at-a-time"]["interactions"]
    assert "factorial measures pairs; cumulative does not" in svg["cumulative"]["interactions"]


@pytest.mark.parametrize("design", STUDIES)
def test_report_md(design: str, rendered: dict) -> None:
    data, where, _ = rendered[design]
    md = (where / "report.md").read_text(encoding="utf-8")
    assert md.startswith(f"# Study `{design}:test`")
    assert f"Design **{design}**" in md and "Runs: 3 made, 1 reused" in md
    assert "`+9`: p-nine requires p-eight" in md and "+x: no such plugin" in md
    assert "| guest | " + " | ".join(data["platforms"]) + " |" in md  # the reference-shaped table
    for label in _labels(data):
        assert label in md
    for name in data["plugins"]:
        assert f"| {name} |" in md  # a row of the attribution table
    for figure in FIGURES:
        assert f"]({figure}.png)" in md


def test_report_md_cells() -> None:
    from worldswitch.report import _markdown

    md = _markdown(one_at_a_time())
    assert "| g1 | 1000 → 700 (-30.0%) |" in md
    assert "| g2 | 1000 → - (whole set not measured) |" in md
    assert "| 8 | p-eight | 250 / - / - | 250 / - / - |" in md  # null marginal and Shapley are "-"
    assert "| - | ext-one |" in md  # a third-party plugin has no patch number
    assert "measures no pairs" in md
    md = _markdown(factorial())
    assert "g1 on A: 6 × ext-pair: +50.0 cycles per iteration" in md
    assert "g1 on B: 6 × ext-pair: -30.0 cycles per iteration" in md
    assert "| 6 | p-six | 100 / 150 / 125 |" in md


def _ends_at_all(data: dict[str, Any]) -> None:
    for cell in data["attribution"]:
        steps = waterfall_steps(cell, data["design"], data["plugins"], data["patches"])
        if cell["all"] is None:
            assert steps == []
            continue
        assert sum(v for _, v in steps) == pytest.approx(cell["saved"], abs=1e-9)
        assert cell["vanilla"] - sum(v for _, v in steps) == pytest.approx(cell["all"], abs=1e-9)
        assert all(v != 0 for _, v in steps)


@pytest.mark.parametrize("design", STUDIES)
def test_waterfall_ends_at_all(design: str) -> None:
    _ends_at_all(STUDIES[design]())


def test_waterfall_steps_cumulative_are_the_series_steps() -> None:
    data = cumulative()
    by_cell = {(c["guest"], c["platform"]): c for c in data["attribution"]}
    steps = waterfall_steps(by_cell[("g1", "A")], "cumulative", data["plugins"], data["patches"])
    assert steps == [("1", 100.0), ("ext-plugin", 200.0)]  # 2 saves nothing there: no step
    steps = waterfall_steps(by_cell[("g2", "B")], "cumulative", data["plugins"], data["patches"])
    assert steps == [("2", 50.0), ("ext-plugin", -10.0)]  # a cost is a negative saving


def test_waterfall_steps_shapley() -> None:
    data = factorial()
    a, b = data["attribution"]
    assert waterfall_steps(a, "factorial", data["plugins"], data["patches"]) == [("6", 125.0), ("ext-pair", 225.0)]
    assert waterfall_steps(b, "factorial", data["plugins"], data["patches"]) == [("6", 85.0), ("ext-pair", 185.0)]


def test_waterfall_steps_alone_then_rest() -> None:
    data = one_at_a_time()
    cell = data["attribution"][0]
    # 8 alone (250) includes 7 (200): its own step is what it adds to 7, 50
    assert waterfall_steps(cell, "one-at-a-time", data["plugins"], data["patches"]) == [
        ("7", 200.0), ("8", 50.0), ("ext-one", 50.0)]
    # the plugins overlap by 60 cycles together: the rest step brings the bars to `all`
    cell = dict(cell, all=760.0, saved=240.0)
    steps = waterfall_steps(cell, "one-at-a-time", data["plugins"], data["patches"])
    assert steps[-1] == (REST, pytest.approx(-60.0))
    assert sum(v for _, v in steps) == pytest.approx(240.0)
    # where nothing alone was measured (leave-one-out), what the set loses without each, then the rest
    bare = dict(cell, plugins=[_row(p, marginal=1.0) for p in data["plugins"]])
    assert waterfall_steps(bare, "leave-one-out", data["plugins"], data["patches"]) == [
        ("7", 1.0), ("8", 1.0), ("ext-one", 1.0), (REST, 237.0)]


def test_same_data_same_bytes(rendered: dict, tmp_path: Path) -> None:
    import matplotlib

    settings = ("svg.hashsalt", "svg.fonttype")
    before = [matplotlib.rcParams[k] for k in settings], matplotlib.get_backend()
    for design, (_, where, _) in rendered.items():
        again = tmp_path / design
        write_report(STUDIES[design](), again)
        for name in [f"{f}.svg" for f in FIGURES] + ["report.md"]:
            assert (where / name).read_bytes() == (again / name).read_bytes(), (design, name)
    # the fixed salt and text-as-text were for the report only: the caller's settings are as they were
    assert ([matplotlib.rcParams[k] for k in settings], matplotlib.get_backend()) == before


def test_import_does_not_load_matplotlib() -> None:
    code = "import sys, worldswitch.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_savings_mixes_shapley_and_alone(tmp_path: Path) -> None:
    # one cell without exact Shapley (say a sampled study): its bars are "alone", hatched
    data = factorial()
    data["attribution"][1]["shapley_exact"] = False
    for row in data["attribution"][1]["plugins"]:
        row["shapley"] = None
    write_report(data, tmp_path)
    svg = (tmp_path / "savings.svg").read_text(encoding="utf-8")
    assert "(hatched)" in svg and ">saved alone<" in svg  # in the title, and the legend's entry
    _ends_at_all(data)
