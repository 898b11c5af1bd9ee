"""The command line: summaries, JSON, and one-line errors with documented exit codes."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from worldswitch.cli import main


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def image(tmp_path: Path, *words: int) -> str:
    p = tmp_path / "guest.bin"
    p.write_bytes(b"".join(struct.pack("<I", w) for w in words))
    return str(p)


MOVZ_X0_PSCI = 0xD2B08000  # movz x0, #0x8400, lsl #16
MOVK_X0_9 = 0xF2800120  # movk x0, #9
HVC0 = 0xD4000002
RESET = (MOVZ_X0_PSCI, MOVK_X0_9, HVC0)
B_SELF = 0x14000000
# add x0, x0, #1; b .-4: never traps, and never ends in a budget (a counter of 2^64 rounds),
# where a bare `b .` would be refused at once as a spin nothing can end
COUNT_FOREVER = (0x91000400, 0x17FFFFFF)
WFI = 0xD503207F


def test_run_summary_and_json() -> None:
    code, out, _ = invoke("run", "self_sgi-256", "-p", "C-v3", "--patches", "7,13-16")
    assert code == 0
    assert "cycles:kh" in out and "iterations (exits observed)" in out and "sys64" in out
    assert "vgic-v3-wipe-on-exit" in out and "ICH_READ" in out
    code, out, _ = invoke("run", "null_hvc-256", "--json")
    data = json.loads(out)
    assert data["iterations"] == 257 and data["exits"] == {"hvc64": 257}
    assert data["cycles_per_iteration"] == pytest.approx(data["cycles"] / 257)


def test_user_guest_psci_version(tmp_path: Path) -> None:
    # movz x0, #0x8400, lsl 16; hvc #0; mov x20, x0; then SYSTEM_RESET
    guest = image(tmp_path, MOVZ_X0_PSCI, HVC0, 0xAA0003F4, *RESET, B_SELF)
    code, out, _ = invoke("run", guest, "--json")
    assert code == 0
    assert json.loads(out)["guest_visible"]["registers"]["x20"] == 2  # PSCI v0.2


def test_unknown_psci_function_is_not_supported(tmp_path: Path) -> None:
    # x0 = 0x84000042 (movz; movk #0x42); hvc; mov x20, x0
    guest = image(tmp_path, MOVZ_X0_PSCI, 0xF2800840, HVC0, 0xAA0003F4, *RESET, B_SELF)
    out = invoke("run", guest, "--json")[1]
    assert json.loads(out)["guest_visible"]["registers"]["x20"] == (1 << 64) - 1


def test_system_off_ends_the_run(tmp_path: Path) -> None:
    guest = image(tmp_path, MOVZ_X0_PSCI, 0xF2800100, HVC0, B_SELF)  # 0x84000008
    code, out, _ = invoke("run", guest, "--json")
    assert code == 0 and json.loads(out)["guest_visible"]["system_event"] == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("run", "no_such_guest"), 3, "unknown guest"),
        (("run", "missing.bin"), 3, "does not exist"),
        (("run", "null_hvc-256", "--patches", "frobnicate"), 4, "unknown plugin 'frobnicate'"),
        (("run", "null_hvc-256", "--patches", "8"), 4, "requires 'vgic-v2-live-lrs'"),
        (("run", "null_hvc-256", "-p", "Z"), 8, "unknown platform"),
        (("run", "null_hvc-256", "--max-exits", "10"), 6, "exit budget of 10"),
    ],
)
def test_errors_are_one_line_with_exit_codes(args: tuple[str, ...], code: int, message: str) -> None:
    got, _, err = invoke(*args)
    assert got == code
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_bad_images(tmp_path: Path) -> None:
    empty = tmp_path / "empty.bin"
    empty.write_bytes(b"")
    elf = tmp_path / "k.bin"
    elf.write_bytes(b"\x7fELF" + bytes(60))
    odd = tmp_path / "odd.bin"
    odd.write_bytes(bytes(6))
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(64 << 20))
    for path, message in ((empty, "is empty"), (elf, "ELF"), (odd, "not a whole number"), (big, "larger than")):
        code, _, err = invoke("run", str(path))
        assert code == 3 and message in err, err


def test_guest_faults(tmp_path: Path) -> None:
    impdef = 0xD5300000 | (1 << 21) | (1 << 19) | (15 << 12)  # mrs x0, s3_0_c15_c0_0
    # KVM injects UNDEF; this guest has no vector table, so the run says it would loop for ever
    code, _, err = invoke("run", image(tmp_path, impdef, *RESET))
    assert code == 5 and "S3_0_C15_C0_0" in err and "vector table" in err and "loop for ever" in err
    # movz x1, #0x3fff, lsl 16; str w0, [x1, #0xe00]: nothing at GICD+0xe00 in the GICv2 model.
    # KVM's vgic does not claim it, so it goes to kvmtool, which ignores it with a warning.
    store = image(tmp_path, 0xD2A7FFE1, 0xB9000000 | (0x380 << 10) | (1 << 5), *RESET)
    code, _, err = invoke("run", store)
    assert code == 0 and "offset 0xe00" in err and "ignoring MMIO write of 4 bytes at 0x3fff0e00" in err
    code, _, err = invoke("run", store, "--strict-mmio")
    assert code == 5 and "0x3fff0e00" in err and "--strict-mmio" in err
    code, _, err = invoke("run", image(tmp_path, WFI, *RESET))
    assert code == 5 and "block forever" in err
    code, _, err = invoke("run", image(tmp_path, 0x00000000))  # udf #0: to the guest's vector, which is not there
    assert code == 5 and "ESR_EL1 0x2000000" in err and "vector table" in err


def test_time_budget(tmp_path: Path) -> None:
    code, _, err = invoke("run", image(tmp_path, *COUNT_FOREVER), "--timeout", "0.5")
    assert code == 6 and "time budget" in err


def test_plugin_failure_exit_code(monkeypatch) -> None:
    from worldswitch import api

    orig = api.run_guest

    class Boom:
        from worldswitch.plugin import hookimpl

        @hookimpl
        def ws_hvc(self, vcpu, func_id):
            raise RuntimeError("kaput")

    monkeypatch.setattr(api, "run_guest", lambda *a, **k: orig(*a, extra_plugins=(Boom(),), **k))
    code, _, err = invoke("run", "null_hvc-256")
    assert code == 7 and "raised in hook ws_hvc" in err


def test_listings() -> None:
    code, out, _ = invoke("plugins", "--json")
    rows = json.loads(out)
    assert code == 0 and sorted(r["patch"] for r in rows if r["patch"]) == list(range(1, 18))
    live = next(r for r in rows if r["name"] == "vgic-v2-live-lrs")
    assert live["hooks"] == ["ws_vgic_lrs_to_restore", "ws_vgic_lrs_to_save"] and live["kind"] == "optimization"
    # patches 4 (a rename) and 9 (a refactor) say that they change nothing countable
    assert {r["patch"] for r in rows if r["builtin"] and not r["countable"]} == {4, 9}
    assert "vgic-v2-live-lrs" in invoke("plugins")[1]
    code, out, _ = invoke("platforms", "--json")
    pfs = json.loads(out)
    assert {"A", "B", "C-v2", "C-v3"} <= set(pfs)
    assert pfs["C-v3"]["host_gic"] == 3 and pfs["C-v2"]["guest_gic"] == 2
    for p in pfs.values():
        for param in p["parameters"].values():
            assert param["why"], "every parameter documents where it comes from"


def test_help_teaches() -> None:
    out = invoke("--help")[1]
    assert "Exit codes" in out and "worldswitch table --patches series" in out
    assert "--patches" in invoke("run", "--help")[1]


def test_guest_architecture_must_match_platform() -> None:
    code, _, err = invoke("run", "aarch32_pmselr-256", "-p", "A")
    assert code == 3 and "aarch32 image" in err
    code, _, err = invoke("run", "null_hvc-256", "-p", "A15-32")
    assert code == 3 and "aarch64 image" in err


def _mrs(rt: int, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    return 0xD5300000 | ((op0 - 2) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5) | rt


def _msr(rt: int, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    return _mrs(rt, op0, op1, crn, crm, op2) & ~(1 << 21)


def timer_guest(tmp_path: Path) -> str:
    """Arm the virtual timer 1000 ticks ahead, wait for it, read the counter."""
    return image(
        tmp_path,
        _mrs(1, 3, 3, 14, 0, 2),  # mrs x1, cntvct_el0
        0x91000000 | (1000 << 10) | (1 << 5) | 1,  # add x1, x1, #1000
        _msr(1, 3, 3, 14, 3, 2),  # msr cntv_cval_el0, x1
        0xD2800022,  # movz x2, #1: enable, unmasked
        _msr(2, 3, 3, 14, 3, 1),  # msr cntv_ctl_el0, x2
        WFI,
        _mrs(3, 3, 3, 14, 0, 2),  # mrs x3, cntvct_el0
        _mrs(4, 3, 3, 14, 3, 1),  # mrs x4, cntv_ctl_el0 (ISTATUS)
        *RESET,
        B_SELF,
    )


@pytest.mark.parametrize("patches", ["none", "6", "series"])
def test_virtual_timer_wakes_wfi_in_simulated_time(tmp_path: Path, patches: str) -> None:
    code, out, err = invoke("run", timer_guest(tmp_path), "--json", "--patches", patches)
    assert code == 0, err
    data = json.loads(out)
    regs = data["guest_visible"]["registers"]
    # the counter jumped to the deadline (no host time); then the exit back took modelled cycles
    assert 0 < regs["x3"] - regs["x1"] < 1000 and regs["x1"] >= 1000
    assert regs["x4"] == 5  # ENABLE | ISTATUS
    assert data["exits"] == {"hvc64": 1, "wfx": 1}
    # the timer line is high after the wake-up: the host GIC's active state is set on entry
    assert data["counts"]["GICD_WRITE"] == 2


def test_ablate_attribution() -> None:
    code, out, err = invoke("ablate", "--patches", "7-11", "--platforms", "A", "--guests", "self_sgi", "--json",
                            "-j", "1")
    assert code == 0, err
    rows = {r["patch"]: r for r in json.loads(out)}
    total = rows[7]["all_save"]
    assert total > 0
    # 11 needs 7-10: alone it is the whole chain; everything depends on 7: without it nothing is left
    assert rows[11]["alone_saves"] == pytest.approx(total)
    assert rows[7]["marginal_saves"] == pytest.approx(total)
    # a refactor adds nothing to what its requirements save (9 alone = 7, 8, 9)
    assert rows[9]["alone_saves"] == pytest.approx(rows[8]["alone_saves"])
    for r in rows.values():
        assert r["alone_saves"] >= 0 and r["marginal_saves"] >= 0
        # every saving carries its 90 % interval from the calibrated costs
        for key in ("alone", "marginal", "all"):
            lo, hi = r[f"{key}_90"]
            value = r["all_save" if key == "all" else f"{key}_saves"]
            assert lo <= value <= hi and hi - lo < 0.5 * total
