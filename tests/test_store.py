"""The results store and designed studies: resume without loss or duplication, survive a
kill -9, list and export, compare, and give bit-identical results on a Dask cluster."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from worldswitch.cli import main
from worldswitch.store import Run, Store, StoreError


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def rows(db: Path) -> list[tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        return con.execute("SELECT hash, guest, platform, plugins, method, iterations, cycles, counts, visible "
                           "FROM runs ORDER BY hash").fetchall()


def test_a_study_resumes_without_running_anything_twice(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    args = ("study", "cumulative", "--plugins", "6-8", "--guests", "null_hvc,self_sgi", "--platforms", "A",
            "--db", str(db), "--json", "-j", "2")
    code, out, err = invoke(*args)
    assert code == 0, err
    first = json.loads(out)
    assert (first["runs_made"], first["runs_reused"]) == (8, 0)  # vanilla, +6, +6,7, +6,7,8 x 2 guests
    code, out, err = invoke(*args)
    again = json.loads(out)
    assert (again["runs_made"], again["runs_reused"]) == (0, 8)
    assert again["attribution"] == first["attribution"] and len(rows(db)) == 8
    # cumulative: what each patch added when applied, summing to the whole set's saving
    for cell in first["attribution"]:
        assert sum(r["step"] for r in cell["plugins"]) == pytest.approx(cell["saved"])


def test_another_study_reuses_the_stored_configurations(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    base = ("--plugins", "6,7", "--guests", "null_hvc", "--platforms", "A", "--db", str(db), "--json", "-j", "1")
    assert invoke("study", "one-at-a-time", *base)[0] == 0
    code, out, err = invoke("study", "factorial", *base)
    data = json.loads(out)
    assert code == 0 and (data["runs_made"], data["runs_reused"]) == (0, 4)  # {}, {6}, {7}, {6,7}: all stored
    studies = json.loads(invoke("results", "--db", str(db), "--studies", "--format", "json")[1])
    assert [s["design"] for s in studies.values()] == ["one-at-a-time", "factorial"]


def test_kill_9_loses_at_most_the_runs_in_flight(tmp_path: Path) -> None:
    """A real worldswitch process killed with SIGKILL mid-study: the file is whole, every
    stored row is complete, and the rerun finishes with no duplicate."""
    db = tmp_path / "r.sqlite"
    cmd = [sys.executable, "-c", "from worldswitch.cli import main; main()", "study", "factorial", "--plugins",
           "1,6,7,8,9", "--guests", "null_hvc,self_sgi,sysreg", "--platforms", "A", "--db", str(db), "-j", "2", "-q",
           "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if db.exists():
            try:
                stored = len(rows(db))
            except sqlite3.OperationalError:  # the writer is creating the schema
                continue
            if stored >= 6:
                break
    assert proc.poll() is None, f"the study finished before it could be killed: {proc.stderr.read()}"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    before = rows(db)
    assert 6 <= len(before) < 48  # 16 valid subsets of {1,6,7,8,9} x 3 guests
    for row in before:
        assert json.loads(row[7]) and json.loads(row[8])  # counts and what the guest saw: whole
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    after = rows(db)
    assert len(after) == 48 and len({r[0] for r in after}) == 48
    assert data["runs_reused"] >= len(before) and data["runs_made"] + data["runs_reused"] == 48
    assert set(before) <= set(after)  # nothing stored before was changed


def test_results_lists_filters_and_exports(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    assert invoke("study", "one-at-a-time", "--plugins", "6", "--guests", "null_hvc", "--platforms", "A,C-v3",
                  "--db", str(db), "-j", "1", "-q")[0] == 0
    code, out, _ = invoke("results", "--db", str(db), "--platform", "C-v3", "--format", "csv")
    table = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and len(table) == 2 and {r["platform"] for r in table} == {"C-v3"}
    assert {r["plugins"] for r in table} == {"none", "timer-active-cache"}
    assert "IRQCHIP_STATE_CALL" in table[0] and float(table[0]["cycles_per_iteration"]) > 0
    data = json.loads(invoke("results", "--db", str(db), "--format", "json")[1])
    assert len(data) == 4 and all(len(r["hash"]) == 64 for r in data)
    by = {(r["platform"], r["plugins"]): r for r in data}
    a, b = by[("A", "none")]["hash"], by[("A", "timer-active-cache")]["hash"]
    code, out, err = invoke("compare", a[:10], b[:10], "--db", str(db), "--json")
    assert code == 0, err
    diff = json.loads(out)
    changed = {r["counter"]: r["diff"] for r in diff["counters"]}
    # patch 6: the timer step leaves every entry but the first
    assert changed["IRQCHIP_STATE_CALL"] == pytest.approx(-1.0, abs=1e-4) == changed["GICD_WRITE"]
    assert diff["cycles_diff"] < 0


@pytest.mark.parametrize(("args", "message"), [
    (("compare", "zz", "00"), "'zz' is not a run's hash"),
    (("compare", "0123", "4567"), "no stored run's hash starts with '0123'"),
    (("results", "--study", "x"), "--study: no study named 'x'"),
])
def test_bad_store_arguments(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    db = tmp_path / "r.sqlite"
    code, _, err = invoke(*args, "--db", str(db))
    assert code == 2 and "no results database" in err  # nothing there yet
    Store(db).close()
    code, out, err = invoke(*args, "--db", str(db))
    assert code == (2 if message.startswith("--study") else 8) and message in err and "\n" not in err.strip()


def test_a_store_of_another_schema_or_a_study_name_reused_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite"
    with Store(db) as s:
        s.begin_study("x", {"design": "factorial"})
        with pytest.raises(StoreError, match="a different study is already named 'x'"):
            s.begin_study("x", {"design": "cumulative"})
        s.db.execute("UPDATE meta SET value='99' WHERE key='schema'")
    with pytest.raises(StoreError, match="schema 99"):
        Store(db)
    (tmp_path / "junk.sqlite").write_text("not a database at all, just text" * 100)
    with pytest.raises(StoreError, match="junk.sqlite"):
        Store(tmp_path / "junk.sqlite")


def test_the_same_hash_is_stored_once(tmp_path: Path) -> None:
    run = Run("ab" * 32, "null_hvc", "A", (), "short", 1.0, 2.0, {"WORLD_SWITCH": 1.0}, ({},), {}, 0.1)
    with Store(tmp_path / "r.sqlite") as s:
        s.add(run, "x", "vanilla")
        s.add(run, "x", "vanilla")
        assert s.count() == 1 and s.find("abab").cycles == 2.0


def test_dask_cluster_gives_bit_identical_results(tmp_path: Path) -> None:
    """The same study on a real distributed.LocalCluster and on local processes."""
    distributed = pytest.importorskip("distributed")
    args = ("study", "one-at-a-time", "--plugins", "6,7,13", "--guests", "self_sgi,sysreg", "--platforms",
            "A,C-v3", "--json", "-q")
    code, local_out, err = invoke(*args, "--db", str(tmp_path / "local.sqlite"), "-j", "2")
    assert code == 0, err
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl:
        code, dask_out, err = invoke(*args, "--db", str(tmp_path / "dask.sqlite"), "--dask", cl.scheduler_address)
    assert code == 0, err
    assert rows(tmp_path / "local.sqlite") == rows(tmp_path / "dask.sqlite")
    assert json.loads(local_out)["attribution"] == json.loads(dask_out)["attribution"]


def test_an_unreachable_dask_scheduler_is_a_usage_error(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    code, _, err = invoke("study", "one-at-a-time", "--plugins", "6", "--guests", "null_hvc", "--platforms", "A",
                          "--db", str(tmp_path / "r.sqlite"), "--dask", "tcp://127.0.0.1:9")
    assert code == 2 and "--dask tcp://127.0.0.1:9: cannot reach the scheduler" in err


@pytest.mark.slow
def test_short_runs_extrapolate_exactly_to_full_length() -> None:
    """What makes large designs cheap: a study's default short runs give the full-length
    figures, under vanilla and under the whole series (which changes every counter class)."""
    from worldswitch.platform import load_platforms
    from worldswitch.plugin import discover, parse_selection
    from worldswitch.runner import Job, measure

    pf = load_platforms()["A"]
    series = tuple(parse_selection("series", discover()))
    # vanilla at full length is test_calibration's slow test; sysreg adds the binary search's counters
    for guest, plugins in (("null_hvc", ()), ("null_hvc", series), ("sysreg", series)):
        short, full = measure(Job(guest, pf, plugins, "short")), measure(Job(guest, pf, plugins, "full"))
        assert short["iterations"] == full["iterations"]
        assert short["counts"].keys() == full["counts"].keys()
        for k, v in full["counts"].items():
            assert short["counts"][k] == pytest.approx(v, rel=1e-9, abs=1e-12), (guest, plugins, k)
        assert short["cycles"] == pytest.approx(full["cycles"], rel=1e-9)
