"""The unit-test guests in guests/unit/, run on the machine.

Each guest prints kvm-unit-tests' console format (PASS/FAIL lines, a SUMMARY
line, ``EXIT: STATUS=<(code << 1) | 1>``) and ends the VM with PSCI SYSTEM_OFF.
Besides the guest's own verdict, these tests check what only the host sees:
the exits by reason (the guests' console output is one MMIO exit per
character, so every count is exact), the interrupts the virtual CPU interface
delivered, and the fault a store pair to a device must raise.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import capstone
import pytest
from worldswitch.api import RunResult, run_guest
from worldswitch.errors import GuestFault
from worldswitch.machine import VmConfig

UNIT_DIR = Path(__file__).resolve().parent.parent / "guests" / "unit"
IMAGES = ("boot", "vectors", "irq", "timer", "exitcost", "plumbing", "plumbing_stp", "smp", "spinwait", "mmu")
LOAD_ADDR = 0x80080000
GUEST_GIC = {"A": 2, "B": 2, "C-v2": 2, "C-v3": 3}
BUDGET = {"timeout": 60, "max_instructions": 50_000_000}
SYSTEM_OFF = 1
CROSS_GCC = "aarch64-linux-gnu-gcc"
BUILT_WITH = "12.2.0"  # the gcc that made the committed images (README.md)


def image(name: str) -> str:
    return str(UNIT_DIR / f"{name}.flat")


def run(name: str, platform: str, **vm: object) -> RunResult:
    return run_guest(image(name), platform, vm=VmConfig(**vm), **BUDGET)


@functools.cache
def cached(name: str, platform: str, params: str = "", mem_mb: int = 64) -> RunResult:
    return run(name, platform, params=params, mem_mb=mem_mb)


def lines(r: RunResult) -> list[str]:
    return r.guest_visible["console"].splitlines()


def console_exits(r: RunResult) -> int:
    """MMIO exits the console made: one byte-sized store per character."""
    return len(r.guest_visible["console"].encode())


def assert_passes(r: RunResult, prefix: str, checks: tuple[str, ...]) -> list[str]:
    """The guest's verdict, and each named check among its PASS lines. Returns the console."""
    out = assert_all_passed(r)
    for check in checks:
        assert f"PASS: {prefix}: {check}" in out, check
    return out


def assert_all_passed(r: RunResult) -> list[str]:
    """The guest's verdict: PASS lines only, a matching SUMMARY, EXIT: STATUS=1, SYSTEM_OFF.
    Returns the console's lines."""
    out = lines(r)
    fails = [line for line in out if line.startswith("FAIL")]
    assert not fails, "\n".join(fails)
    passes = [line for line in out if line.startswith("PASS: ")]
    assert passes
    assert f"SUMMARY: {len(passes)} tests, 0 unexpected failures" in out
    assert out[-1] == "EXIT: STATUS=1"
    assert r.guest_visible["system_event"] == SYSTEM_OFF
    return out


def test_images_are_small_flat_binaries() -> None:
    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    for name in IMAGES:
        data = Path(image(name)).read_bytes()
        assert 0 < len(data) < 64 << 10, name
        assert len(data) % 4 == 0, name
        assert data[:4] != b"\x7fELF", name
        first = next(md.disasm(data[:4], LOAD_ADDR), None)
        assert first is not None, f"{name} does not start with an instruction"


# ---- boot ---------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["A", "C-v3"])
def test_boot(platform: str) -> None:
    r = cached("boot", platform, "first second=2  third")
    assert_all_passed(r)
    out = lines(r)
    assert out[:8] == [
        "dtb: 0x83e00000",
        "memory: base 0x80000000 size 0x4000000 (64 MiB)",
        'bootargs: "first second=2  third"',
        "argc: 4",
        "argv[0]: boot",
        "argv[1]: first",
        "argv[2]: second=2",
        "argv[3]: third",
    ]
    assert "uart: 0x1000000" in out
    assert "CurrentEL: EL1" in out
    redist_or_cpu = "0x3fbf0000" if GUEST_GIC[platform] == 3 else "0x3ffd0000"
    assert f"gic: v{GUEST_GIC[platform]} dist 0x3fff0000 cpu/redist {redist_or_cpu}" in out
    for check in (
        "DT magic 0xd00dfeed",
        "console at the DT's address 0x1000000",
        "PSCI version 0.2",
        "CPU_ON of this CPU: ALREADY_ON",
        "virtual timer INTID 27",
        "MMU off",
    ):
        assert f"PASS: boot: {check}" in out
    # PSCI calls: VERSION, FEATURES, AFFINITY_INFO, CPU_ON, SYSTEM_OFF. MMIO: the console, one read
    # of the UART's LSR, and on GICv3 the GICR_TYPER read that finds this CPU's redistributor
    assert r.exits == {"hvc64": 5, "dabt_low": console_exits(r) + 1 + (GUEST_GIC[platform] == 3)}


def test_boot_more_memory_and_no_bootargs() -> None:
    r = cached("boot", "A", "", 128)
    assert_all_passed(r)
    out = lines(r)
    # kvmtool puts the DTB 2 MiB aligned below the top of RAM (the first 256 MiB)
    assert out[:5] == [
        "dtb: 0x87e00000",
        "memory: base 0x80000000 size 0x8000000 (128 MiB)",
        'bootargs: ""',
        "argc: 1",
        "argv[0]: boot",
    ]


# ---- vectors ------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["A", "C-v3"])
def test_vectors(platform: str) -> None:
    r = cached("vectors", platform)
    assert_passes(r, "vectors", (
        "svc: ESR 0x56000042 (EC 0x15, imm 0x42, IL)",
        "udf: ESR 0x2000000 (EC 0, IL)",
        "impdef read: UNDEF (ESR 0x2000000)",
        "impdef read: x0 unchanged (0x5a5a)",
        "el0 svc: taken once, through VBAR+0x400",
        "el0 svc: ESR 0x56001ee7 (EC 0x15, imm 0x1ee7)",
        "el0 svc: SPSR 0x3c0 says EL0t",
        "el0 hvc: UNDEF (ESR 0x2000000)",
        "el0 hvc: no PSCI call made (x0 = 0x84000000)",
    ))
    # svc, udf and the EL0 hvc never exit; the impdef mrs and msr trap to KVM, which injects UNDEF;
    # the only hvc64 exit is the final SYSTEM_OFF
    assert r.exits == {"hvc64": 1, "sys64": 2, "dabt_low": console_exits(r)}
    assert any("S3_1_C15_C2_0" in w and "UNDEF" in w for w in r.warnings)


# ---- mmu: stage-1 aborts -------------------------------------------------------------


@pytest.mark.parametrize("platform", ["A", "C-v3"])
def test_stage1_aborts_reach_the_guest_vector(platform: str) -> None:
    """MMU on, faults placed on purpose: each abort enters the guest's own vector with the
    syndrome the hardware writes (DFSC kind and level, WnR, FAR, ELR), and none exits."""
    r = cached("mmu", platform)
    out = assert_passes(r, "mmu", (
        "MMU on",
        "unmapped GB, read: ESR 0x96000005 (EC 0x25, DFSC 0x5, WnR 0)",
        "unmapped GB, write: ESR 0x96000045 (EC 0x25, DFSC 0x5, WnR 1)",
        "access flag clear: ESR 0x9600000a (EC 0x25, DFSC 0xa, WnR 0)",
        "read-only block: a read sees the memory",
        "read-only block, write: ESR 0x9600004e (EC 0x25, DFSC 0xe, WnR 1)",
        "invalid level-2 entry: ESR 0x96000006 (EC 0x25, DFSC 0x6, WnR 0)",
        "invalid level-3 entry: ESR 0x96000047 (EC 0x25, DFSC 0x7, WnR 1)",
        "past the 39-bit VA space: ESR 0x96000004 (EC 0x25, DFSC 0x4, WnR 0)",
        "past the 39-bit VA space: FAR 0x8000000000",
        "bad branch: ESR 0x86000005 (EC 0x21, DFSC 0x05)",
        "bad branch: FAR and ELR 0xc0000000",
    ))
    assert "mmu: printing through the Device mapping works" in out
    # an abort the guest's own tables cause never leaves it: the UART and SYSTEM_OFF only
    assert r.exits == {"hvc64": 1, "dabt_low": console_exits(r)}


# ---- irq ----------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["A", "B", "C-v2", "C-v3"])
def test_irq(platform: str) -> None:
    r = cached("irq", platform)
    out = assert_all_passed(r)
    version = GUEST_GIC[platform]
    assert out[0] == f"gic: v{version} (from the DT)"
    assert "PASS: irq: 16 SGIs sent, 16 taken" in out
    assert "PASS: irq: acknowledged ID 0x1 (SGI 1 from CPU 0)" in out
    # 16 SGIs taken as IRQs, one more polled with IRQs masked
    assert r.guest_visible["acked"] == {"1": 17}
    assert r.guest_visible["eois"] == 17
    if version == 2:
        # GICD_CTLR, IPRIORITYR0 read + write, ISENABLER0, 17 GICD_SGIR writes
        assert r.exits == {"hvc64": 1, "dabt_low": console_exits(r) + 4 + 17}
    else:
        # GICD_CTLR, GICR_WAKER read/write/read, GICR_TYPER, IPRIORITYR0 read + write, ISENABLER0;
        # the SGIs are ICC_SGI1R_EL1 writes
        assert r.exits == {"hvc64": 1, "sys64": 17, "dabt_low": console_exits(r) + 8}


# ---- timer --------------------------------------------------------------------------

TIMER_PLATFORMS = ["A", "C-v2", "C-v3"]


@pytest.mark.parametrize("platform", TIMER_PLATFORMS)
def test_timer_tval(platform: str) -> None:
    """The first timer interrupt: armed with TVAL 1 ms ahead, taken in WFI."""
    r = cached("timer", platform)
    out = lines(r)
    assert out[0] == "CNTFRQ_EL0: 100000000 Hz"
    for check in (
        "CNTFRQ_EL0 is 100 MHz",
        "virtual timer: INTID 27 from the DT",
        f"GICv{GUEST_GIC[platform]} from the DT",
        "tval: not expired right after arming",
        "tval: the interrupt came",
        "tval: IRQ 27 taken once",
        "tval: handler saw CNTV_CTL 0x5 (ENABLE|ISTATUS)",
    ):
        assert f"PASS: timer: {check}" in out
    waited = [re.fullmatch(r"tval: waited (\d+) ticks for (\d+)", line) for line in out]
    (match,) = [m for m in waited if m]
    ticks, wanted = int(match[1]), int(match[2])
    assert wanted == 100_000  # 1 ms at 100 MHz
    assert wanted <= ticks < 2 * wanted  # WFI skips to the deadline, not far past it
    assert any(line.startswith("PASS: timer: tval: fired after") for line in out)
    assert r.exits.get("wfx", 0) >= 1
    assert r.guest_visible["acked"].get("27", 0) >= 1


@pytest.mark.parametrize("platform", TIMER_PLATFORMS)
def test_timer(platform: str) -> None:
    """Everything: a second interrupt armed with CVAL, and a masked timer."""
    r = cached("timer", platform)
    out = assert_all_passed(r)
    assert "PASS: timer: cval: IRQ 27 taken once" in out
    assert r.guest_visible["acked"] == {"27": 2}
    # v4.5 maps the timer to the physical PPI (HW bit): the guest's EOI deactivates both,
    # so no EOI maintenance interrupt takes it out (both interrupts come while it waits in WFI)
    assert "irq" not in r.exits


# ---- exitcost -----------------------------------------------------------------------

EXITCOST_TESTS = ("hvc", "mmio_read_user", "mmio_read_vgic", "eoi", "ipi")


def exitcost_ticks(r: RunResult) -> dict[str, int]:
    found = [re.fullmatch(r"(\w+): (\d+) ticks/iteration", line) for line in lines(r)]
    return {m[1]: int(m[2]) for m in found if m}


@pytest.mark.parametrize("platform", ["A", "C-v2", "C-v3"])
def test_exitcost(platform: str) -> None:
    r = cached("exitcost", platform)
    out = assert_all_passed(r)
    ticks = exitcost_ticks(r)
    assert tuple(ticks) == EXITCOST_TESTS
    assert all(t > 0 for t in ticks.values()), ticks
    for name in EXITCOST_TESTS:
        assert f"PASS: exitcost: {name}" in out
    # an exit to the VMM costs more than one the kernel handles; an EOI does not exit at all
    assert ticks["mmio_read_user"] > ticks["mmio_read_vgic"]
    assert ticks["eoi"] * 10 < ticks["hvc"]
    if GUEST_GIC[platform] == 2:
        # the GICD_SGIR store is itself a vgic MMIO exit, and the interrupt comes on top of it
        assert ticks["ipi"] > ticks["mmio_read_vgic"]
    # 64 timed hvcs, one PSCI_VERSION check, SYSTEM_OFF; 64 SGIs for the EOI test and 64 for the IPIs
    sgis = 128
    assert r.guest_visible["acked"] == {"0": sgis}
    if GUEST_GIC[platform] == 2:
        setup = 4  # GICD_CTLR, IPRIORITYR0 read + write, ISENABLER0
        assert r.exits == {"hvc64": 66, "dabt_low": console_exits(r) + setup + 64 + 64 + sgis}
    else:
        setup = 8  # GICD_CTLR, GICR_WAKER x3, GICR_TYPER, IPRIORITYR0 x2, ISENABLER0
        assert r.exits == {"hvc64": 66, "sys64": sgis, "dabt_low": console_exits(r) + setup + 64 + 64}
    assert any("0xa000008" in w for w in r.warnings)


def test_exitcost_is_deterministic() -> None:
    first, second = run("exitcost", "C-v3"), run("exitcost", "C-v3")
    assert first.guest_visible["console"] == second.guest_visible["console"]
    assert first.counts == second.counts
    assert first.exits == second.exits
    assert first.cycles == second.cycles


# ---- spinning on a flag (core/spin.py) --------------------------------------------


def spin_lines(r: RunResult) -> list[str]:
    return [line for line in lines(r) if line.startswith(("irq:", "tries:"))]


@pytest.mark.parametrize("platform, cpus", [("A", 1), ("C-v3", 1), ("A", 2)])
def test_spinwait_skips_a_10ms_spin(platform: str, cpus: int) -> None:
    """micro-bench's timer_10ms wait: 2*10^7 rounds' worth of instructions are skipped,
    not emulated (with two vCPUs both spin), and the guest sees its interrupt end the
    spin; a spin whose own counter runs out first is not skipped past its end."""
    # the instruction budget counts skipped rounds too: two vCPUs spin 2 * 2*10^7 of them
    r = run_guest(image("spinwait"), platform, vm=VmConfig(params="smp" if cpus > 1 else "", cpus=cpus),
                  timeout=60, max_instructions=200_000_000)
    assert_all_passed(r)
    first, second = spin_lines(r)
    left = int(re.search(r"tries left (\d+)", first).group(1))
    # 10 ms at 2 GHz and one instruction a cycle, in rounds of 6 instructions (gcc's loop)
    assert 3_320_000 < (1 << 28) - left < 3_340_000
    assert "tries left 4294967295, fired 0" in second
    assert r.spin_skipped > 19_000_000 * cpus


@pytest.mark.parametrize("params, cpus", [("us=1000", 1), ("us=300", 1)])
def test_skipping_a_spin_is_running_it(monkeypatch: pytest.MonkeyPatch, params: str, cpus: int) -> None:
    """With one vCPU the skip is exact: the guest sees the same rounds run, the same
    counter values, the same everything, as when every round is emulated."""
    from worldswitch import machine

    skipped = run("spinwait", "A", params=params, cpus=cpus)
    assert skipped.spin_skipped > 0
    monkeypatch.setattr(machine.Cpu, "watch_loop", lambda self: None)
    emulated = run("spinwait", "A", params=params, cpus=cpus)
    assert emulated.spin_skipped == 0
    assert skipped.guest_visible == emulated.guest_visible
    assert skipped.counts == emulated.counts


def test_skipping_two_spinning_vcpus_is_deterministic() -> None:
    """Two vCPUs spinning, their rounds skipped: the same run gives the same everything."""
    runs = [run_guest(image("spinwait"), "C-v3", vm=VmConfig(params="us=2000 smp", cpus=2), **BUDGET)
            for _ in range(2)]
    assert runs[0].spin_skipped > 0
    assert runs[0].guest_visible == runs[1].guest_visible
    assert (runs[0].counts, runs[0].cycles, runs[0].spin_skipped) == (runs[1].counts, runs[1].cycles,
                                                                      runs[1].spin_skipped)


# ---- plumbing -----------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["A", "C-v2"])
def test_plumbing_gicv2(platform: str) -> None:
    r = cached("plumbing", platform)
    out = assert_all_passed(r)
    assert out[:5] == [
        "PASS: plumbing: (a) literal 0xffffffffd53b9ca0, then 8 trapped mrs",
        "PASS: plumbing: (b) copied routine at 0x80200000: PSCI version 2",
        "PASS: plumbing: (b) again: PSCI version 2",
        "PASS: plumbing: (c) SGI sent after a stp in the same block",
        "PASS: plumbing: (c) SGI sent after a pre-indexed str in the same block",
    ]
    # sys64: 8 in the loop after the literal pool, 1 in each run of the copied routine;
    # hvc64: 1 in each run of the copied routine, SYSTEM_OFF;
    # dabt_low: the console, 4 for the GICv2 set-up, the 2 GICD_SGIR stores
    assert r.exits == {"hvc64": 3, "sys64": 10, "dabt_low": console_exits(r) + 4 + 2}
    assert r.guest_visible["acked"] == {"2": 2}


def test_plumbing_gicv3() -> None:
    r = cached("plumbing", "C-v3")
    out = assert_all_passed(r)
    assert "INFO: plumbing: (c) skipped: not a GICv2 guest" in out
    assert len([line for line in out if line.startswith("PASS")]) == 3
    # the GICv3 set-up reads GICR_TYPER once to find this CPU's redistributor
    assert r.exits == {"hvc64": 3, "sys64": 10, "dabt_low": console_exits(r) + 1}


def test_plumbing_stp_to_mmio_is_an_error() -> None:
    printed = bytearray()
    with pytest.raises(GuestFault, match="syndrome") as info:
        run_guest(image("plumbing_stp"), "A", vm=VmConfig(console=printed.extend), **BUDGET)
    assert "0x3fff0f00" in str(info.value)
    assert "pair" in str(info.value)
    assert printed.decode() == "plumbing_stp: stp x0, x1 to GICD_SGIR\n"


# ---- the committed binaries ---------------------------------------------------------


def cross_gcc_version() -> str | None:
    if shutil.which(CROSS_GCC) is None or shutil.which("make") is None:
        return None
    done = subprocess.run([CROSS_GCC, "-dumpfullversion"], capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def test_committed_images_match_a_rebuild(tmp_path: Path) -> None:
    version = cross_gcc_version()
    if version is None:
        pytest.skip(f"{CROSS_GCC} (Debian's gcc-aarch64-linux-gnu) or make is not installed")
    if version != BUILT_WITH:
        pytest.skip(f"{CROSS_GCC} is {version}; the committed images were built with {BUILT_WITH}")
    subprocess.run(
        ["make", "-s", "-C", str(UNIT_DIR), f"OUT={tmp_path}", "all"], check=True, capture_output=True, timeout=300
    )
    for name in IMAGES:
        rebuilt = (tmp_path / f"{name}.flat").read_bytes()
        assert rebuilt == Path(image(name)).read_bytes(), f"{name}.flat differs from a rebuild"
