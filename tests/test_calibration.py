"""The cost model: vanilla figures within 2 % of the study, calibration reproducible."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from worldswitch.cli import main
from worldswitch.platform import load_platforms
from worldswitch.study import load_reference, measure_cells


def test_vanilla_within_two_percent() -> None:
    reference = load_reference()
    cells = measure_cells(list(reference), ["A", "B", "C-v2", "C-v3"], short=True)
    for guest, row in reference.items():
        for platform, measured in row.items():
            model = cells[(guest, platform)].cycles
            assert abs(model - measured) / measured < 0.02, (guest, platform, model, measured)


def test_calibrate_reproduces_the_committed_profiles() -> None:
    r = CliRunner().invoke(main, ["calibrate", "--short", "--json", "-j", "1"])
    assert r.exit_code == 0, r.stderr
    pfs = load_platforms()
    fits = json.loads(r.stdout)
    assert {f["host"] for f in fits} == {"A", "B", "C"}
    for fit in fits:
        for platform in (p for p in pfs.values() if p.host == fit["host"]):
            for name, value in fit["params"].items():
                assert platform.parameters[name].fit
                committed = platform.parameters[name].value
                assert committed == pytest.approx(value, rel=1e-6, abs=1e-4), (platform.name, name)
        for cell in fit["cells"]:
            assert abs(cell["residual_pct"]) < 2


def test_priors_are_not_fitted() -> None:
    for p in load_platforms().values():
        assert not p.parameters["gic_mmio_read"].fit  # the prior the figures cannot identify
        assert all(v.why for v in p.parameters.values())


def test_bad_measurement_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text("[cells.null_hvc]\nA = 'many'\n")
    r = CliRunner().invoke(main, ["calibrate", "--short", "--measurements", str(bad)])
    assert r.exit_code == 8 and "measurement file" in r.stderr


def test_unidentifiable_parameter(tmp_path: Path) -> None:
    only_hvc = tmp_path / "m.toml"
    only_hvc.write_text("[cells.null_hvc]\nA = 8462\n")  # one equation, three unknowns
    r = CliRunner().invoke(main, ["calibrate", "--short", "--measurements", str(only_hvc)])
    assert r.exit_code == 8 and "3 parameters to fit from only 1" in r.stderr


def test_table_json_short() -> None:
    r = CliRunner().invoke(main, ["table", "--short", "--json", "--patches", "series", "-j", "1"])
    assert r.exit_code == 0, r.stderr
    rows = json.loads(r.stdout)["rows"]
    assert len(rows) == 12
    for row in rows:
        assert abs(row["error_pct"]) < 2 and row["patched"] < row["vanilla"]


@pytest.mark.slow
def test_full_length_table_within_two_percent() -> None:
    """The README's main job at full length (2^16 null hypercalls, 2^20 SGIs and traps),
    and the proof that the short-run extrapolation gives the same figures."""
    full = CliRunner().invoke(main, ["table", "--json"])
    assert full.exit_code == 0, full.stderr
    short = CliRunner().invoke(main, ["table", "--json", "--short"])
    rows = json.loads(full.stdout)["rows"]
    assert len(rows) == 12
    for row, quick in zip(rows, json.loads(short.stdout)["rows"]):
        assert abs(row["error_pct"]) < 2, row
        assert row["vanilla"] == pytest.approx(quick["vanilla"], abs=0.05), (row, quick)


def test_prior_sensitivity_refits_vanilla() -> None:
    """--prior changes an unidentifiable prior, refits, and only the predictions move."""
    def rows(*extra: str) -> dict:
        r = CliRunner().invoke(main, ["table", "--short", "--json", "--patches", "7", "--platforms", "A",
                                      "-j", "1", *extra])
        assert r.exit_code == 0, r.stderr
        return {x["guest"]: x for x in json.loads(r.stdout)["rows"]}

    base, cheap = rows(), rows("--prior", "gic_mmio_read=150")
    for g in base:
        assert abs(cheap[g]["error_pct"]) < 2  # still calibrated
    # patch 7 saves 8 GICH reads per null hypercall: cheaper reads, smaller saving
    assert cheap["null_hvc"]["change_pct"] > base["null_hvc"]["change_pct"]


@pytest.mark.parametrize(("prior", "message"), [("gic_mmio_read", "expected"), ("world_switch=1", "fitted"),
                                                ("nope=3", "no profile has")])
def test_bad_priors(prior: str, message: str) -> None:
    r = CliRunner().invoke(main, ["table", "--short", "--prior", prior, "-j", "1"])
    assert r.exit_code == 8 and message in r.stderr
