"""Profiles, measurement files, priors and fits a user can get wrong: each is a one-line
ProfileError (exit 8) naming the file and the field, never a traceback, a corrupted
file or a silently wrong figure; and nothing is ever written into the package."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from worldswitch.calibrate import HostFit, set_priors, write_profiles
from worldswitch.cli import main
from worldswitch.errors import ProfileError
from worldswitch.measurements import load_reference
from worldswitch.platform import load_platforms, load_profile, profile_dir, use_profile_dir


def _wired(command: str | None, option: str, takes_value: bool) -> bool:
    """Whether the CLI has the option yet (another engineer wires cli.py)."""
    cmd = main if command is None else main.commands[command]
    return any(isinstance(p, click.Option) and option in p.opts and p.is_flag != takes_value for p in cmd.params)


PROFILES_WIRED = _wired(None, "--profiles", True) and _wired(None, "--replace", False)
WRITE_DIR_WIRED = _wired("calibrate", "--write", True)
needs_profiles = pytest.mark.skipif(not PROFILES_WIRED, reason="cli.py: --profiles/--replace not wired yet")
needs_write_dir = pytest.mark.skipif(not (WRITE_DIR_WIRED and PROFILES_WIRED),
                                     reason="cli.py: calibrate --write DIR not wired yet")


@pytest.fixture(autouse=True)
def _builtin_profiles_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts, and leaves, with only the built-in profiles."""
    monkeypatch.delenv("WORLDSWITCH_PROFILES", raising=False)
    use_profile_dir(None)
    yield
    use_profile_dir(None)


def variant(directory: Path, old: str, new: str, source: str = "A.toml", name: str = "bad.toml") -> Path:
    """A copy of a built-in profile with one line changed."""
    text = (profile_dir() / source).read_text()
    assert old in text, old
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text.replace(old, new, 1))
    return path


def fails(r: Result, message: str) -> None:
    assert r.exit_code == 8, (r.exit_code, r.output)
    assert "Traceback" not in r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    # one error line (a progress notice may precede it)
    errors = [line for line in r.stderr.splitlines() if line.startswith("worldswitch: error: ")]
    assert len(errors) == 1 and message in errors[0], r.stderr


# --- 3. every number a profile holds -------------------------------------------------

BAD_PROFILES = [
    ('name = "A"', 'name = ""', "name = \"\": expected a non-empty string"),
    ('description = "GICv2 host A: memory-mapped GICH (GIC-400), GICv2 guest"', "description = 3",
     "description = 3: expected a non-empty string"),
    ('host = "A"\n', "", "lacks the key 'host'"),
    ("host_gic = 2", "host_gic = 4", "host_gic = 4: expected 2 or 3"),
    ("host_gic = 2", 'host_gic = "two"', 'host_gic = "two": expected 2 or 3'),
    ("host_gic = 2", "host_gic = true", "host_gic = true: expected 2 or 3"),
    ("guest_gic = 2", "guest_gic = 3", "guest_gic = 3 needs host_gic = 3"),
    ("nr_lr = 4 ", "nr_lr = 0 ", "nr_lr = 0: expected 1 to 64 list registers on a GICv2 host"),
    ("nr_lr = 4 ", "nr_lr = 99 ", "nr_lr = 99: expected 1 to 64"),
    ("nr_lr = 4 ", "nr_lr = -1 ", "nr_lr = -1: expected 1 to 64"),
    ("nr_lr = 4 ", "nr_lr = 4.5 ", "nr_lr = 4.5: expected 1 to 64"),
    ("nr_pri_bits = 5", "nr_pri_bits = 4", "nr_pri_bits = 4: expected 5 to 8"),
    ('arch = "aarch64"', 'arch = "x86"', 'arch = "x86": expected one of aarch64, aarch32'),
    ("calibrated = true", 'calibrated = "yes"', 'calibrated = "yes": expected true or false'),
    ("calibrated = true", "calibrate = false", "unknown key 'calibrate'"),
    ("value = 4350.8353", 'value = "lots"', '[parameters.world_switch] value = "lots": expected a number'),
    ("value = 4350.8353", "value = nan", "[parameters.world_switch] value = nan: expected a finite number >= 0"),
    ("value = 4350.8353", "value = inf", "value = inf: expected a finite number >= 0"),
    ("value = 4350.8353", "value = -1", "value = -1: expected a finite number >= 0"),
    ("value = 4350.8353", "value = true", "value = true: expected a number"),
    ("value = 4350.8353\nfit = true", "value = 4350.8\nfit = 1", "[parameters.world_switch]: fit = 1: expected true"),
    ("value = 4350.8353\nfit = true", "value = 4350.8\nfti = true", "unknown key 'fti'"),
    ("value = 4350.8353\nfit = true", "value = 4350.8\nfit = true\nrange = [1.0, 9000.0]",
     "[parameters.world_switch]: fit = true takes no prior or range"),
    ("range = [100.0, 400.0]", "range = [300.0, 400.0]", "[parameters.gic_mmio_read]: range = [300, 400] must be "
                                                         "wider than a point and hold the prior's central value 250"),
    ("range = [100.0, 400.0]", "range = [250.0, 250.0]", "must be wider than a point"),
    ("range = [100.0, 400.0]", 'range = "wide"', 'range = "wide": expected [LOW, HIGH] in cycles'),
    ("range = [100.0, 400.0]", "range = [-1.0, 400.0]", "range = -1.0: expected a finite number >= 0"),
    ("range = [100.0, 400.0]\n", "", "[parameters.gic_mmio_read]: a prior needs its range = [LOW, HIGH]"),
    ('WORLD_SWITCH = "world_switch"', "WORLD_SWITCH = -5", "[costs] WORLD_SWITCH = -5: expected a finite number"),
    ('WORLD_SWITCH = "world_switch"', "WORLD_SWITCH = true", "[costs] WORLD_SWITCH = true: a cost must be"),
    ('"4 * field_test"', '"-4 * field_test"', "a coefficient must be finite and >= 0"),
    ('"4 * field_test"', '"nan * field_test"', "a coefficient must be finite and >= 0"),
    ('"4 * field_test"', '"four * field_test"', "'four' is not a number"),
    ('"4 * field_test"', '"4 * warp_drive"', "unknown parameter 'warp_drive'"),
    ('WORLD_SWITCH = "world_switch"', 'WARP = "world_switch"', "unknown event class 'WARP'"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD_PROFILES)
def test_bad_profile(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = variant(tmp_path, old, new)
    with pytest.raises(ProfileError, match="^profile .*bad.toml") as e:
        load_profile(path)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(("nr_lr", "ok"), [(16, True), (17, False)])
def test_gicv3_host_has_at_most_16_list_registers(tmp_path: Path, nr_lr: int, ok: bool) -> None:
    path = variant(tmp_path, "nr_lr = 4 ", f"nr_lr = {nr_lr} ", source="C-v3.toml")
    if ok:
        assert load_profile(path).nr_lr == 16
    else:
        with pytest.raises(ProfileError, match="nr_lr = 17: expected 1 to 16 list registers on a GICv3 host"):
            load_profile(path)


def test_gicv2_host_may_have_64_list_registers(tmp_path: Path) -> None:
    assert load_profile(variant(tmp_path, "nr_lr = 4 ", "nr_lr = 64 ")).nr_lr == 64


def test_builtin_profiles_are_valid() -> None:
    assert list(load_platforms()) == ["A", "A15-32", "B", "C-v2", "C-v3"]


# --- 2. profile directories ------------------------------------------------------------

def test_user_profile_is_added(tmp_path: Path) -> None:
    variant(tmp_path, 'name = "A"', 'name = "A-fast"', name="fast.toml")
    use_profile_dir(tmp_path)
    assert list(load_platforms()) == ["A", "A15-32", "B", "C-v2", "C-v3", "A-fast"]


def test_env_var_names_the_user_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    variant(tmp_path, 'name = "A"', 'name = "A-fast"', name="fast.toml")
    monkeypatch.setenv("WORLDSWITCH_PROFILES", str(tmp_path))
    assert "A-fast" in load_platforms()
    monkeypatch.setenv("WORLDSWITCH_PROFILES", str(tmp_path / "nope"))
    with pytest.raises(ProfileError, match="profile directory .*nope does not exist"):
        load_platforms()


def test_builtin_name_needs_replace(tmp_path: Path) -> None:
    mine = variant(tmp_path, "value = 150.0", "value = 151.0", name="mine.toml")
    use_profile_dir(tmp_path)
    with pytest.raises(ProfileError, match=r"profile mine.toml in .* is named 'A', like the built-in profile "
                                           r"A.toml: pass --replace to use it instead"):
        load_platforms()
    use_profile_dir(tmp_path, replace=True)
    pfs = load_platforms()
    assert list(pfs) == ["A", "A15-32", "B", "C-v2", "C-v3"]  # replaced in place
    assert pfs["A"].path == mine and pfs["A"].parameters["exit_handler"].value == 151.0


def test_two_files_with_one_name(tmp_path: Path) -> None:
    for file in ("one.toml", "two.toml"):
        variant(tmp_path, 'name = "A"', 'name = "X"', name=file)
    use_profile_dir(tmp_path)
    with pytest.raises(ProfileError, match="profiles one.toml and two.toml in .* are both named 'X'"):
        load_platforms()


def test_missing_or_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="profile directory .*nope does not exist or is not a directory"):
        use_profile_dir(tmp_path / "nope")
    (tmp_path / "f").write_text("")
    with pytest.raises(ProfileError, match="profile directory .*f does not exist"):
        use_profile_dir(tmp_path / "f")


# --- 4. measurement files --------------------------------------------------------------

BAD_MEASUREMENTS = [
    ("[cells.null_hvc]\nA = nan\n", "[cells.null_hvc] A = nan: expected a finite number of cycles > 0"),
    ("[cells.null_hvc]\nA = inf\n", "[cells.null_hvc] A = inf: expected a finite"),
    ("[cells.null_hvc]\nA = -8462\n", "[cells.null_hvc] A = -8462: expected a finite number of cycles > 0"),
    ("[cells.null_hvc]\nA = true\n", "[cells.null_hvc] A = true: expected"),
    ("[cells.null_hvc]\nA = 0\n", "[cells.null_hvc] A = 0: expected"),
    ("[cells.null_hvc]\nA = 'many'\n", '[cells.null_hvc] A = "many": expected'),
    ("[cells.null_hvc]\n", "[cells.null_hvc] must be a non-empty table"),
    ("[cells]\nnull_hvc = 5\n", "[cells.null_hvc] must be a non-empty table"),
    ("source = 'nothing'\n", "no measurements"),
    ("[cells]\n", "no measurements"),
    ("", "no measurements"),
    ("[cells.null_hvc]\nC-v9 = 6505\n", "[cells.null_hvc] C-v9: no such platform; known: A, A15-32, B, C-v2, C-v3"),
    ("[cells.nul_hvc]\nA = 8462\n", "[cells.nul_hvc]: no such guest; known: null_hvc,"),
    ("[cells.null_hvc\nA = 1\n", "cannot read measurement file"),
]


@pytest.mark.parametrize(("text", "message"), BAD_MEASUREMENTS)
def test_bad_measurement_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text)
    with pytest.raises(ProfileError, match="measurement file .*m.toml") as e:
        load_reference(path)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(("value", "message"), [
    ("nan", "A = nan: expected"), ("-5", "A = -5: expected"), ("true", "A = true: expected"),
    ("0", "A = 0: expected"), (None, "[cells.null_hvc] must be a non-empty table"),
    ("C-v9", "C-v9: no such platform; known: A, A15-32"),
])
def test_calibrate_rejects_bad_measurements(tmp_path: Path, value: str | None, message: str) -> None:
    path = tmp_path / "m.toml"
    cell = "" if value is None else "C-v9 = 6505\n" if value == "C-v9" else f"A = {value}\n"
    path.write_text(f"[cells.null_hvc]\n{cell}")
    fails(CliRunner().invoke(main, ["calibrate", "--reference", str(path), "--short"]), message)


# --- 5. fits that cannot be costs --------------------------------------------------------

def test_impossible_fit_is_an_error(tmp_path: Path) -> None:
    """Valid numbers that no machine could produce: the fit goes negative, and says so."""
    path = tmp_path / "m.toml"
    path.write_text("[cells.null_hvc]\nA = 100\n[cells.self_sgi]\nA = 100\n[cells.sysreg]\nA = 100\n")
    r = CliRunner().invoke(main, ["calibrate", "--reference", str(path), "--measurements", "none", "--short",
                                  "-j", "2"])
    fails(r, "host A: the measurements fit ")
    assert "cycles, which is impossible: check the measurement file" in r.stderr


# --- 6. --prior --------------------------------------------------------------------------

@pytest.mark.parametrize(("prior", "message"), [
    ("gic_mmio_read=nan", "gic_mmio_read = nan: expected a finite number >= 0"),
    ("gic_mmio_read=inf", "gic_mmio_read = inf: expected a finite number >= 0"),
    ("gic_mmio_read=-1e9", "gic_mmio_read = -1000000000.0: expected a finite number >= 0"),
    ("A:gic_mmio_read=true", "expected [PLATFORM:]NAME=VALUE"),
    ("Z:gic_mmio_read=150", "unknown platform 'Z'; known: A, A15-32, B, C-v2, C-v3"),
    ("A:ich_access=25", "A has no parameter 'ich_access'"),
])
def test_bad_prior(prior: str, message: str) -> None:
    with pytest.raises(ProfileError, match="^--prior ") as e:
        set_priors(load_platforms(), [prior])
    assert message in str(e.value)


@pytest.mark.parametrize(("value", "message"), [("nan", "= nan: expected"), ("-1e9", "expected a finite number")])
def test_table_rejects_bad_prior(value: str, message: str) -> None:
    r = CliRunner().invoke(main, ["table", "--short", "--platforms", "A", "--prior", f"gic_mmio_read={value}",
                                  "--json"])
    fails(r, message)
    assert r.stdout == ""


# --- 1. writing fitted profiles ------------------------------------------------------------

def _package_bytes() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(profile_dir().parent.rglob("*.toml"))}


FIT_A = HostFit("A", {"world_switch": 4000.123456789012, "field_test": 2.0, "mmio_abort": 2800.5}, {})


def test_write_profiles_copies_with_comments(tmp_path: Path) -> None:
    before = _package_bytes()
    out = tmp_path / "new" / "dir"
    written = write_profiles([FIT_A], load_platforms(), out)
    assert written == [out / "A.toml"] and _package_bytes() == before
    old, new = (profile_dir() / "A.toml").read_text().splitlines(), written[0].read_text().splitlines()
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(old) == len(new) and changed == [("value = 4350.8353", "value = 4000.123457"),
                                                ("value = 1.244596039", "value = 2.0"),
                                                ("value = 2553.475571", "value = 2800.5")]
    assert load_profile(written[0]).parameters["world_switch"].value == pytest.approx(4000.123457)
    assert not list(out.glob(".*"))  # no temporary file left behind


@pytest.mark.parametrize("where", ["platforms", "platforms/sub", ".", "data"])
def test_write_profiles_refuses_the_package(where: str) -> None:
    before = _package_bytes()
    with pytest.raises(ProfileError, match="refusing to write into the installed package"):
        write_profiles([FIT_A], load_platforms(), profile_dir().parent / where)
    assert _package_bytes() == before and not (profile_dir() / "sub").exists()


def test_write_profiles_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(ProfileError, match="exists and is not a directory"):
        write_profiles([FIT_A], load_platforms(), tmp_path / "f")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0])
def test_write_profiles_refuses_impossible_values(tmp_path: Path, value: float) -> None:
    fit = HostFit("A", {**FIT_A.params, "field_test": value}, {})
    with pytest.raises(ProfileError, match="refusing to write field_test"):
        write_profiles([fit], load_platforms(), tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# --- CLI: profile directories, calibrate --write DIR ---------------------------------------

@needs_profiles
@pytest.mark.parametrize(("old", "new", "message"), [
    ("host_gic = 2", "host_gic = 4", "host_gic = 4: expected 2 or 3"),
    ("host_gic = 2", 'host_gic = "two"', 'host_gic = "two": expected 2 or 3'),
    ("nr_lr = 4 ", "nr_lr = 0 ", "nr_lr = 0: expected 1 to 64"),
    ("nr_lr = 4 ", "nr_lr = 99 ", "nr_lr = 99: expected 1 to 64"),
    ("nr_lr = 4 ", "nr_lr = -1 ", "nr_lr = -1: expected 1 to 64"),
    ("value = 4350.8353", 'value = "lots"', 'value = "lots": expected a number of cycles'),
    ('WORLD_SWITCH = "world_switch"', "WORLD_SWITCH = -5", "[costs] WORLD_SWITCH = -5: expected a finite number"),
])
def test_cli_bad_user_profile(tmp_path: Path, old: str, new: str, message: str) -> None:
    variant(tmp_path, old, new)
    fails(CliRunner().invoke(main, ["--profiles", str(tmp_path), "platforms"]), message)


@needs_profiles
def test_cli_builtin_name_needs_replace(tmp_path: Path) -> None:
    variant(tmp_path, "value = 150.0", "value = 151.0", name="mine.toml")
    fails(CliRunner().invoke(main, ["--profiles", str(tmp_path), "platforms"]),
          "is named 'A', like the built-in profile A.toml: pass --replace to use it instead")
    r = CliRunner().invoke(main, ["--profiles", str(tmp_path), "--replace", "platforms", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["A"]["parameters"]["exit_handler"]["value"] == 151.0


@needs_write_dir
def test_cli_calibrate_writes_elsewhere_and_reads_back(tmp_path: Path) -> None:
    before = _package_bytes()
    out = tmp_path / "fitted"
    r = CliRunner().invoke(main, ["calibrate", "--short", "--write", str(out), "-j", "2"])
    assert r.exit_code == 0, r.output
    assert _package_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["A.toml", "B.toml", "C-v2.toml", "C-v3.toml"]
    for p in out.iterdir():
        fitted, builtin = load_profile(p), load_profile(profile_dir() / p.name)
        for name, param in builtin.parameters.items():
            assert fitted.parameters[name].value == pytest.approx(param.value, rel=1e-6, abs=1e-4)
    r = CliRunner().invoke(main, ["--profiles", str(out), "--replace", "table", "--short", "--json",
                                  "--platforms", "A", "-j", "2"])
    assert r.exit_code == 0, r.output
    for row in json.loads(r.stdout)["rows"]:
        assert abs(row["error_pct"]) < 2


@needs_write_dir
def test_cli_calibrate_refuses_the_package() -> None:
    before = _package_bytes()
    fails(CliRunner().invoke(main, ["calibrate", "--short", "--write", str(profile_dir()), "-j", "2"]),
          "refusing to write into the installed package")
    assert _package_bytes() == before
