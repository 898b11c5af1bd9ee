"""The cost model: vanilla figures within 2 % of the study, calibration reproducible,
every prior documented, predictions with intervals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from worldswitch.cli import main
from worldswitch.platform import load_platforms
from worldswitch.study import load_reference, measure_cells


def invoke(*args: str) -> dict:
    r = CliRunner().invoke(main, [*args, "--json", "-j", "2"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def test_vanilla_within_two_percent() -> None:
    reference = load_reference()
    cells = measure_cells(list(reference), ["A", "B", "C-v2", "C-v3"], short=True)
    for guest, row in reference.items():
        for platform, measured in row.items():
            model = cells[(guest, platform)].cycles
            assert abs(model - measured) / measured < 0.02, (guest, platform, model, measured)


def test_calibrate_reproduces_the_committed_profiles() -> None:
    """The built-in profiles are the joint fit to the vanilla table plus the shipped A/C-v3
    series measurements: rerunning it changes nothing."""
    fit = invoke("calibrate", "--short")
    pfs = load_platforms()
    assert {p["host"] for p in fit["parameters"]} == {"A", "B", "C"}
    for p in fit["parameters"]:
        for platform in (pf for pf in pfs.values() if pf.host == p["host"]):
            committed = platform.parameters[p["name"]].value
            assert committed == pytest.approx(p["value"], rel=1e-6, abs=1e-4), (platform.name, p["name"])
    origins = {r["origin"].split(",")[0].split(" [")[0] for r in fit["rows"]}
    assert origins == {"data/reference.toml", "measurement file data/measurements-board-A-C-v3.toml"}
    assert len(fit["rows"]) == 18
    for row in fit["rows"]:
        assert abs(row["residual_pct"]) < 2, row


def test_every_prior_has_a_range_and_a_source() -> None:
    for pf in load_platforms().values():
        if not pf.calibrated:
            continue
        assert not pf.parameters["gic_mmio_read"].fit  # the prior vanilla figures cannot identify
        for name, p in pf.parameters.items():
            assert p.why, (pf.name, name)
            if p.fit:
                assert p.range is None and p.prior is None
            else:
                assert p.range and p.source and p.range[0] <= p.central <= p.range[1], (pf.name, name)


def test_bad_measurement_file(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text("[cells.null_hvc]\nA = 'many'\n")
    r = CliRunner().invoke(main, ["calibrate", "--short", "--reference", str(bad)])
    assert r.exit_code == 8 and "measurement file" in r.stderr


def test_unidentifiable_parameter(tmp_path: Path) -> None:
    only_hvc = tmp_path / "m.toml"
    only_hvc.write_text("[cells.null_hvc]\nA = 8462\n")  # one equation, three fitted unknowns
    r = CliRunner().invoke(main, ["calibrate", "--short", "--reference", str(only_hvc), "--measurements", "none"])
    assert r.exit_code == 8 and "host A: parameter" in r.stderr and "is not identified" in r.stderr, r.stderr


def test_a_cell_measured_twice_is_an_error(tmp_path: Path) -> None:
    board = tmp_path / "b.toml"
    board.write_text('[[measurement]]\nguest = "null_hvc"\nplatform = "A"\nplugins = "vanilla"\n'
                     "cycles_per_iteration = 8400\n")
    r = CliRunner().invoke(main, ["calibrate", "--short", "--measurements", str(board)])
    assert r.exit_code == 8 and "null_hvc on A (vanilla) is already measured in data/reference.toml" in r.stderr
    assert "--reference none" in r.stderr


def test_table_json_short_has_intervals() -> None:
    data = invoke("table", "--short", "--patches", "series")
    rows = data["rows"]
    assert len(rows) == 12 and len(data["calibrated_on"]) == 18
    for row in rows:
        assert abs(row["error_pct"]) < 2 and row["patched"] < row["vanilla"]
        lo, hi = row["patched_90"]
        assert lo < row["patched"] < hi
        lo, hi = row["change_90"]
        assert lo < row["change_pct"] < hi < 0
        shares = row["interval_sources"]  # the priors' and the measurements' parts of the variance
        assert sum(shares.values()) <= 1.0 + 1e-9
        # nothing measured on B: its priors make its intervals; elsewhere the measurements weigh in
        assert max(shares, key=shares.get) == "B:gic_mmio_read" if row["platform"] == "B" else "measurements" in shares


def test_blind_intervals_cover_the_board_measurements() -> None:
    """Calibrated on vanilla alone, the 90 % intervals hold what the user measured on A and
    C-v3 with the series; with those measurements added, the intervals narrow where they
    inform (A, C-v3, and C-v2 through host C) and stay put where nothing does (B)."""
    from worldswitch.measurements import load_measurements

    blind = {(r["guest"], r["platform"]): r for r in invoke("table", "--short", "--patches", "series",
                                                             "--measurements", "none")["rows"]}
    joint = {(r["guest"], r["platform"]): r for r in invoke("table", "--short", "--patches", "series")["rows"]}
    for m in load_measurements():
        lo, hi = blind[(m.guest, m.platform)]["patched_90"]
        assert lo <= m.cycles <= hi, m
    for key, row in blind.items():
        before = row["change_90"][1] - row["change_90"][0]
        after = joint[key]["change_90"][1] - joint[key]["change_90"][0]
        if key[1] == "B":
            assert after == pytest.approx(before, abs=0.01)
        else:
            assert after < 0.6 * before, key


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
    """--prior holds a prior at a value, refits, and the vanilla figures stay calibrated
    while the predictions move."""
    def rows(*extra: str) -> dict:
        data = invoke("table", "--short", "--patches", "7", "--platforms", "B", *extra)
        return {x["guest"]: x for x in data["rows"]}

    base, cheap = rows(), rows("--prior", "gic_mmio_read=150")
    for g in base:
        assert abs(cheap[g]["error_pct"]) < 2  # still calibrated
    # patch 7 saves 8 GICH reads per null hypercall: cheaper reads, smaller saving
    assert cheap["null_hvc"]["change_pct"] > base["null_hvc"]["change_pct"]
    # a prior held fixed no longer widens the interval
    assert (cheap["null_hvc"]["change_90"][1] - cheap["null_hvc"]["change_90"][0]
            < base["null_hvc"]["change_90"][1] - base["null_hvc"]["change_90"][0])


@pytest.mark.parametrize(("prior", "message"), [("gic_mmio_read", "expected"), ("world_switch=1", "fitted"),
                                                ("nope=3", "no profile has")])
def test_bad_priors(prior: str, message: str) -> None:
    r = CliRunner().invoke(main, ["table", "--short", "--prior", prior, "-j", "1"])
    assert r.exit_code == 8 and message in r.stderr


def test_calibrate_on_a_board_file_alone(tmp_path: Path) -> None:
    """A user's own figures, without the study's vanilla table: the fit uses exactly them,
    reports every row with its leave-one-out figure, and writes profiles only when asked."""
    board = tmp_path / "board.toml"
    board.write_text("".join(
        f'[[measurement]]\nguest = "{g}"\nplatform = "A"\nplugins = "{sel}"\ncycles_per_iteration = {c}\n'
        f"spread = {c / 200}\n"
        for g, sel, c in [("null_hvc", "vanilla", 8462), ("self_sgi", "vanilla", 11961), ("sysreg", "vanilla", 8952),
                          ("null_hvc", "7", 6500)]))
    fit = invoke("calibrate", "--short", "--reference", "none", "--measurements", str(board))
    assert [r["platform"] for r in fit["rows"]] == ["A"] * 4 and fit["written"] == []
    assert {p["host"] for p in fit["parameters"]} == {"A"}
    assert all(r["origin"].startswith(f"measurement file {board}, measurement ") for r in fit["rows"])
    verdicts = {p["name"]: p["verdict"] for p in fit["parameters"]}
    assert verdicts["world_switch"] == "fitted" and verdicts["user_exit"] == "prior"
    # patch 7 takes 15 GICH accesses off the hypercall: that row informs the GIC costs
    read = next(p for p in fit["parameters"] if p["name"] == "gic_mmio_read")
    assert read["sd"] < 0.8 * (400 - 100) / 2 / 1.6449


def test_an_uncalibrated_platform_cannot_be_fitted(tmp_path: Path) -> None:
    board = tmp_path / "board.toml"
    board.write_text('[[measurement]]\nguest = "aarch32_pmselr"\nplatform = "A15-32"\nplugins = "vanilla"\n'
                     "cycles_per_iteration = 9000\n")
    r = CliRunner().invoke(main, ["calibrate", "--short", "--reference", "none", "--measurements", str(board)])
    assert r.exit_code == 8 and "measurement 1: platform A15-32 is not calibrated" in r.stderr, r.stderr


def test_writing_a_moved_prior_keeps_its_central_value(tmp_path: Path) -> None:
    """A user profile whose prior has no `prior` key (its `value` is the central value): the
    written copy keeps that central value, so a second fit does not count the data twice."""
    from worldswitch.calibrate import HostFit, write_profiles
    from worldswitch.platform import load_profile, profile_dir

    src = tmp_path / "in"
    src.mkdir()
    text = (profile_dir() / "B.toml").read_text().replace("prior = 250.0\n", "")
    (src / "B.toml").write_text(text)
    pf = load_profile(src / "B.toml")
    assert pf.parameters["gic_mmio_read"].prior is None and pf.parameters["gic_mmio_read"].central == 250.0
    out = tmp_path / "out"
    write_profiles([HostFit("B", {"gic_mmio_read": 180.0}, {})], {"B": pf}, out)
    written = load_profile(out / "B.toml").parameters["gic_mmio_read"]
    assert (written.value, written.central, written.range) == (180.0, 250.0, (100.0, 400.0))
