"""What a user can do to the tool: signals, budgets, hostile plugins, odd input.

Each test names the row of the robustness issue it covers. Signal tests run the real
command in a subprocess (its own session, so a signal reaches only it) and check that it
ends promptly, says why in one line, and leaves no worker process behind.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes import FakeDist, plugin_source
from worldswitch import study
from worldswitch.cli import _pct, main

# add x0, x0, #1; b .-4: never traps, and never ends in a budget (a counter of 2^64 rounds),
# where a bare `b .` would be refused at once as a spin nothing can end
COUNT_FOREVER = (0x91000400, 0x17FFFFFF)
RESET = (0xD2B08000, 0xF2800120, 0xD4000002)  # x0 = PSCI SYSTEM_RESET; hvc #0


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def one_line(err: str, text: str) -> None:
    lines = err.strip().splitlines()
    assert "Traceback" not in err and len(lines) == 1 and text in lines[0], err


def image(tmp_path: Path, *words: int, name: str = "guest.bin", pad: int = 0) -> str:
    p = tmp_path / name
    p.write_bytes(b"".join(struct.pack("<I", w) for w in words) + bytes(pad))
    return str(p)


# ---- rows 1-4: Ctrl-C and SIGTERM ------------------------------------------------------
def children(pid: int) -> set[int]:
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.add(int(entry.name))
    return out


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie is dead (its new parent may be slow to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "worldswitch.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(cond, seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, "timed out waiting"
        time.sleep(0.05)


def stop(proc: subprocess.Popen, *signals: int) -> tuple[int, str, float]:
    t0 = time.monotonic()
    for sig in signals:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("the command did not stop within 10 s") from None
    return proc.returncode, err, time.monotonic() - t0


needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@needs_proc
@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGINT, 130, "interrupted"),
                                                   (signal.SIGTERM, 143, "terminated")])
def test_a_guest_that_never_traps_stops_on_a_signal(tmp_path: Path, sig: int, code: int, word: str) -> None:
    proc = start("run", image(tmp_path, *COUNT_FOREVER))  # row 4: a guest that never traps
    time.sleep(1.5)
    rc, err, took = stop(proc, sig)
    assert rc == code and took < 2
    one_line(err, f"worldswitch: {word}")


@needs_proc
def test_ctrl_c_inside_trap_callbacks_is_one_line() -> None:
    proc = start("run", "self_sgi")  # row 2: a million traps, Ctrl-C lands inside a ctypes callback
    time.sleep(2)
    rc, err, took = stop(proc, signal.SIGINT)
    assert rc == 130 and took < 2
    assert "Exception ignored" not in err
    one_line(err, "worldswitch: interrupted")


@needs_proc
@pytest.mark.parametrize(("signals", "code"), [((signal.SIGINT,), 130), ((signal.SIGINT, signal.SIGINT), 130),
                                               ((signal.SIGTERM,), 143)])
def test_table_stops_and_leaves_no_worker(signals: tuple[int, ...], code: int) -> None:
    proc = start("table", "--platforms", "A,B", "-j", "2")  # rows 1 and 3
    wait_for(lambda: len(children(proc.pid)) >= 2)
    time.sleep(0.5)
    workers = children(proc.pid)
    rc, err, took = stop(proc, *signals)
    assert rc == code and took < 5, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("worldswitch: "), err
    wait_for(lambda: not any(alive(w) for w in workers), 5)


@needs_proc
def test_workers_die_with_a_killed_parent() -> None:
    proc = start("table", "--platforms", "A,B", "-j", "2")
    wait_for(lambda: len(children(proc.pid)) >= 2)
    workers = children(proc.pid)
    proc.kill()  # SIGKILL: no handler runs; the workers' parent-death signal must end them
    proc.communicate()
    wait_for(lambda: not any(alive(w) for w in workers), 5)


# ---- row 4 and item 2: budgets -----------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "lots"])
def test_timeout_must_be_positive_and_finite(tmp_path: Path, value: str) -> None:
    code, _, err = invoke("run", image(tmp_path, *COUNT_FOREVER), "--timeout", value)
    assert code == 2
    one_line(err, "--timeout")


def test_budgets_bound_a_guest_that_never_traps(tmp_path: Path) -> None:
    guest = image(tmp_path, *COUNT_FOREVER)
    t0 = time.monotonic()
    code, _, err = invoke("run", guest, "--timeout", "0.5")
    assert code == 6 and time.monotonic() - t0 < 3
    one_line(err, "time budget ran out")
    code, _, err = invoke("run", guest, "--timeout", "0.0000001")  # never rounded down to "no budget"
    assert code == 6
    one_line(err, "time budget ran out")
    code, _, err = invoke("run", guest, "--max-instructions", "5000")
    assert code == 6
    one_line(err, "budget of 5,000 instructions")


def test_image_preparation_is_proportional_to_the_code(tmp_path: Path) -> None:
    # row 5: 63.5 MiB, three instructions and zeros
    guest = image(tmp_path, *RESET, pad=(63 << 20) + (1 << 19) - 12)
    t0 = time.monotonic()
    code, out, err = invoke("run", guest, "--timeout", "5", "--json", "--mem", "128")  # room for the DTB above it
    assert code == 0, err
    assert time.monotonic() - t0 < 5 and json.loads(out)["exits"] == {"hvc64": 1}


def test_workers_are_capped_at_the_number_of_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    class Recorder(study.ProcessPoolExecutor):
        def __init__(self, max_workers: int, **kw: object) -> None:
            seen.append(max_workers)
            super().__init__(max_workers=max_workers, **kw)

    monkeypatch.setattr(study, "ProcessPoolExecutor", Recorder)
    code, _, err = invoke("table", "-j", "10000", "--short", "--platforms", "A", "--json")  # row 6
    assert code == 0, err
    assert seen == [6]  # 3 guests x 2 short runs


def test_a_branch_out_of_memory_is_a_fault_not_a_budget(tmp_path: Path) -> None:
    # row 16: movz x0, #0x8000, lsl #48; br x0
    code, _, err = invoke("run", image(tmp_path, 0xD2F00000, 0xD61F0000), "--timeout", "20")
    assert code == 5
    one_line(err, "branched to 0x8000000000000000")


# ---- row 7: a plugin that exits or interrupts -------------------------------------------
@pytest.mark.parametrize("raise_", ["sys.exit(0)", "raise KeyboardInterrupt", "raise SystemExit(3)"])
@pytest.mark.parametrize("command", [("run", "null_hvc-256"), ("run", "null_hvc-256", "--json"),
                                     ("table", "--short", "--platforms", "A", "-j", "1")])
def test_a_plugin_cannot_end_the_program(fake: FakeDist, raise_: str, command: tuple[str, ...]) -> None:
    fake.add("quitter", plugin_source("quitter", f"import sys\n@hookimpl\ndef ws_hvc(vcpu, func_id):\n    {raise_}\n"))
    code, out, err = invoke(*command, "--patches", "quitter")
    assert code == 7 and out.strip() == ""
    assert "worldswitch: error: plugin 'quitter' raised in hook ws_hvc" in err and "Traceback" not in err


# ---- row 11 and item 5: transparency is checked ------------------------------------------
INJECT = """
@hookimpl
def ws_guest_enter(vcpu):
    # make INTID 5 pending in LR0 behind the vgic's back: the guest will acknowledge it
    lrf = vcpu.hyp_if.lrf
    if not lrf.acked.get(5):
        lrf.lr[0] = vcpu.vgic_cpu.build_lr(5, 0, 1, False)
"""


@pytest.fixture
def injector(fake: FakeDist) -> FakeDist:
    fake.add("injector", plugin_source("lr-injector", INJECT))
    return fake


def test_run_check_transparency(injector: FakeDist) -> None:
    code, out, err = invoke("run", "self_sgi-256", "--patches", "lr-injector", "--check-transparency", "--json")
    assert code == 9
    assert json.loads(out)["transparency"]["difference"].startswith("acked")
    one_line(err, "--patches lr-injector changed what the guest sees: acked.")
    code, out, err = invoke("run", "self_sgi-256", "--patches", "7", "--check-transparency", "--json")
    assert code == 0 and json.loads(out)["transparency"] == {"checked": True, "difference": None}


def test_table_refuses_a_saving_that_changes_the_guest(injector: FakeDist) -> None:
    code, out, err = invoke("table", "--short", "--platforms", "A", "--patches", "lr-injector", "-j", "1", "--json")
    assert code == 9
    rows = {r["guest"]: r for r in json.loads(out)["rows"]}
    assert rows["self_sgi"]["change_pct"] is None and "acked" in rows["self_sgi"]["invalid"]
    assert rows["null_hvc"]["change_pct"] is not None  # no interrupt is ever acknowledged there
    assert "worldswitch: error: --patches lr-injector is not transparent on A self_sgi" in err
    code, out, _ = invoke("table", "--short", "--platforms", "A", "--patches", "lr-injector", "-j", "1")
    assert code == 9 and "INVALID" in out


def test_ablate_marks_invalid_sets(injector: FakeDist) -> None:
    code, out, err = invoke("ablate", "--patches", "7,lr-injector", "--guests", "self_sgi", "--platforms", "A",
                            "-j", "1", "--json")
    assert code == 9 and "lr-injector is not transparent on A self_sgi" in err
    rows = {r["plugin"]: r for r in json.loads(out)}
    assert rows["lr-injector"]["invalid"] and rows["lr-injector"]["alone_saves"] is None
    assert rows["vgic-v2-live-lrs"]["invalid"]  # its marginal saving is measured against the invalid whole


# ---- row 17 and friction -------------------------------------------------------------------
@pytest.mark.parametrize(("base", "text"), [("0x80000000", "overlap RAM"), ("0x3fff0000", "overlap the distributor"),
                                            ("0x3ffd0000", "overlap the GICv2 CPU interface"),
                                            ("0x3fbf1000", "not 64 KiB aligned"), ("-0x10000", "not a 64-bit"),
                                            (hex(1 << 64), "not a 64-bit"), ("x", "not an address")])
def test_redistributor_base_is_checked(base: str, text: str) -> None:
    code, _, err = invoke("run", "self_sgi-256", "-p", "C-v3", f"--redist-base={base}")
    assert code == 2
    one_line(err, text)


def test_guest_paths_that_are_not_files(tmp_path: Path) -> None:
    code, _, err = invoke("run", str(tmp_path))
    assert code == 3
    one_line(err, "is a directory")
    fifo = tmp_path / "pipe.bin"
    os.mkfifo(fifo)
    code, _, err = invoke("run", str(fifo))
    assert code == 3
    one_line(err, "not a regular file")


def test_verbosity_flags_work_after_the_subcommand() -> None:
    for args in (("-v", "run", "null_hvc-256"), ("run", "null_hvc-256", "-v")):
        code, _, err = invoke(*args)
        assert code == 0 and "run.start" in err
    code, _, err = invoke("table", "--short", "--platforms", "A", "-q")
    assert code == 0 and err == ""


def test_redirected_long_work_says_what_it_does() -> None:
    code, _, err = invoke("table", "--short", "--platforms", "A", "-j", "1")
    assert code == 0 and err.strip() == "worldswitch: table: 6 guest runs..."


def test_usage_errors_are_one_line() -> None:
    code, _, err = invoke("table", "--frobnicate")
    assert code == 2
    one_line(err, "No such option")


def test_internal_errors_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from worldswitch import api

    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("model bug")

    monkeypatch.setattr(api, "run_guest", broken)
    code, _, err = invoke("run", "null_hvc-256")
    assert code == 1
    one_line(err, "internal error: RuntimeError: model bug")


def test_no_negative_zero_in_changes() -> None:
    assert _pct(-0.001) == "+0.00 %" and _pct(-0.0) == "+0.00 %" and _pct(-1.234) == "-1.23 %"


def test_the_title_is_never_cut() -> None:
    code, out, _ = invoke("table", "--short", "--platforms", "A", "--patches", "series", "-j", "1")
    assert code == 0 and "Cycles per iteration: vanilla vs --patches series (predicted)" in out


def test_calibrate_refuses_a_measurement_of_a_set_that_changes_the_guest(injector: FakeDist,
                                                                         tmp_path: Path) -> None:
    """A board figure for a plugin set whose model runs are not transparent cannot be fitted:
    the model's counts would not be of the kernel the user measured."""
    board = tmp_path / "board.toml"
    board.write_text('[[measurement]]\nguest = "self_sgi"\nplatform = "A"\nplugins = "lr-injector"\n'
                     "cycles_per_iteration = 11000\n")
    code, out, err = invoke("calibrate", "--short", "--measurements", str(board), "-j", "1", "-q")
    assert code == 9 and out == ""
    one_line(err, f"measurement file {board}, measurement 1: the plugin set lr-injector changes what the guest "
                  "sees (acked.")
