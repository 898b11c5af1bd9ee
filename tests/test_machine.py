"""The machine's plumbing, probed with guests written word by word: where an exception goes
when a trapped register is unknown, what x0 holds at boot, what lkvm's options change."""

from __future__ import annotations

import struct
from pathlib import Path

import fdt
import pytest
from worldswitch.api import run_guest
from worldswitch.errors import GuestFault
from worldswitch.machine import LOAD_ADDR, RAM_BASE, VmConfig


def _sys(rt: int, op0: int, op1: int, crn: int, crm: int, op2: int, read: bool) -> int:
    w = 0xD5100000 | ((op0 - 2) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5) | rt
    return w | (1 << 21) if read else w


HVC0 = 0xD4000002
SYSTEM_OFF = (0xD2800100, 0xF2B08000, HVC0)  # movz x0, #8; movk x0, #0x8400, lsl #16; hvc #0
SYSTEM_RESET = (0xD2800120, 0xF2B08000, HVC0)
VECTORS = 0x800  # offset of the vector table in the image (VBAR needs 2 KiB alignment)


def guest(tmp_path: Path, body: list[int], sync_handler: list[int] | None = None) -> str:
    """``body`` at the load address after VBAR_EL1 is set; ``sync_handler`` at the
    current-EL SP_ELx synchronous vector."""
    vbar = LOAD_ADDR + VECTORS
    words = [0xD2800001 | ((vbar & 0xFFFF) << 5), 0xF2A00001 | ((vbar >> 16) << 5),  # x1 = vbar
             _sys(1, 3, 0, 12, 0, 0, False), *body]
    words += [0] * (VECTORS // 4 + 0x200 // 4 - len(words))
    words += sync_handler or [0x14000000]
    p = tmp_path / "guest.bin"
    p.write_bytes(struct.pack(f"<{len(words)}I", *words))
    return str(p)


@pytest.mark.parametrize("platform", ["A", "C-v3"])
def test_an_unknown_trapped_register_is_undef_at_the_guests_vector(tmp_path: Path, platform: str) -> None:
    # mrs x0, cntp_ctl_el0: v4.5 traps the physical timer (CNTHCTL_EL2.EL1PCEN clear) and has
    # no handler for it, so KVM injects UNDEF; Unicorn itself knows the register
    mrs = _sys(0, 3, 3, 14, 2, 1, True)
    handler = [_sys(20, 3, 0, 5, 2, 0, True), _sys(21, 3, 0, 4, 0, 1, True),  # mrs x20, esr; x21, elr
               _sys(22, 3, 0, 4, 0, 0, True), *SYSTEM_OFF]  # mrs x22, spsr_el1
    r = run_guest(guest(tmp_path, [mrs, *SYSTEM_RESET], handler), platform, timeout=30)
    regs = r.guest_visible["registers"]
    assert r.guest_visible["system_event"] == 1  # the handler's SYSTEM_OFF, not the body's reset
    assert regs["x20"] == 1 << 25  # EC 0 (unknown), IL
    assert regs["x21"] == LOAD_ADDR + 12  # the mrs itself
    assert regs["x22"] == 0x3C5  # EL1h, DAIF masked: the boot state it came from
    assert r.exits == {"sys64": 1, "hvc64": 1}
    assert any("S3_3_C14_C2_1" in w for w in r.warnings)


def test_boot_protocol_x0_is_a_device_tree_for_the_vm(tmp_path: Path) -> None:
    # mov x19, x0; ldr w20, [x0] (the FDT magic, big-endian); then SYSTEM_OFF
    body = [0xAA0003F3, 0xB9400014, *SYSTEM_OFF]
    r = run_guest(guest(tmp_path, body), "A", vm=VmConfig(mem_mb=128, params="a b=c"), timeout=30)
    regs = r.guest_visible["registers"]
    assert regs["x20"] == 0xEDFE0DD0  # d00dfeed read little-endian
    dtb_addr = regs["x19"]
    assert RAM_BASE < dtb_addr < RAM_BASE + (128 << 20) and dtb_addr % (2 << 20) == 0


def test_the_device_tree_describes_what_the_run_was_given() -> None:
    from worldswitch.devicetree import MachineLayout, build_dtb

    tree = fdt.parse_dtb(build_dtb(MachineLayout(ram_size=256 << 20, bootargs="setup mem=256")))
    assert tree.get_property("bootargs", "/chosen").value == "setup mem=256"
    assert list(tree.get_property("reg", "/memory").data) == [0, RAM_BASE, 0, 256 << 20]


def test_unhandled_mmio_reads_zero_once_warned_and_strict_mmio_refuses(tmp_path: Path) -> None:
    # movz x1, #0x0a00, lsl #16; movk x1, #8; ldr w2, [x1]; ldr w3, [x1]; str w2, [x1]
    body = [0xD2A14001, 0xF2800101, 0xB9400022, 0xB9400023, 0xB9000022, *SYSTEM_OFF]
    path = guest(tmp_path, body)
    r = run_guest(path, "A", timeout=30)
    assert r.guest_visible["registers"]["x2"] == 0 and r.guest_visible["registers"]["x3"] == 0
    assert r.exits == {"dabt_low": 3, "hvc64": 1} and r.counts["USER_EXIT"] == 3
    assert [w for w in r.warnings if "0xa000008" in w] == [
        "ignoring MMIO read of 4 bytes at 0xa000008: no device there; it reads 0, as in lkvm",
        "ignoring MMIO write of 4 bytes at 0xa000008: no device there, as in lkvm"]
    with pytest.raises(GuestFault, match="0xa000008: no device there .--strict-mmio."):
        run_guest(path, "A", vm=VmConfig(strict_mmio=True), timeout=30)


def test_a_store_pair_to_mmio_has_no_syndrome(tmp_path: Path) -> None:
    # movz x1, #0x0a00, lsl #16; stp x2, x3, [x1]
    with pytest.raises(GuestFault, match="load/store pair at pc 0x80080010.*no valid syndrome"):
        run_guest(guest(tmp_path, [0xD2A14001, 0xA9000C22, *SYSTEM_OFF]), "A", timeout=30)


def test_uart_output_is_the_console(tmp_path: Path) -> None:
    # movz x1, #0x100, lsl #16 (the UART); mov w2, #'h'; strb w2, [x1]; mov w2, #'i'; strb w2, [x1];
    # ldrb w3, [x1, #5] (LSR)
    body = [0xD2A02001, 0x52800D02, 0x39000022, 0x52800D22, 0x39000022, 0x39401423, *SYSTEM_OFF]
    seen: list[bytes] = []
    r = run_guest(guest(tmp_path, body), "A", vm=VmConfig(console=seen.append), timeout=30)
    assert r.guest_visible["console"] == "hi" and seen == [b"h", b"i"]
    assert r.guest_visible["registers"]["x3"] == 0x60  # THRE | TEMT: always ready to send


SMP_GUEST = str(Path(__file__).resolve().parent.parent / "guests" / "unit" / "smp.flat")


@pytest.mark.parametrize("platform", ["A", "C-v2"])
def test_two_vcpus_cpu_on_ipi_and_cpu_off(platform: str) -> None:
    """guests/unit/smp.S: CPU_ON with a context id, an SGI from vCPU 0 wakes vCPU 1 from
    WFI, vCPU 1 powers off, AFFINITY_INFO then says OFF."""
    r = run_guest(SMP_GUEST, platform, vm=VmConfig(cpus=2), timeout=30)
    regs = r.guest_visible["registers"]
    assert regs["x22"] == 0  # CPU_ON: SUCCESS
    assert regs["x19"] == 0x5A  # the context id arrived in the secondary's x0
    assert regs["x20"] == 0x80000001  # its own MPIDR, not the boot vCPU's
    assert regs["x21"] == 3  # GICC_IAR: SGI 3, source CPU 0
    assert regs["x23"] == 1 and regs["x24"] == 1  # AFFINITY_INFO: OFF; the end was reached
    assert r.exits == {"wfx": 3, "hvc64": 4, "dabt_low": 2}
    assert r.guest_visible["system_event"] == 1
    again = run_guest(SMP_GUEST, platform, vm=VmConfig(cpus=2), timeout=30)
    assert again.to_json() | {"wall_seconds": 0} == r.to_json() | {"wall_seconds": 0}  # deterministic


def test_cpu_on_of_a_vcpu_that_does_not_exist(tmp_path: Path) -> None:
    # x0 = CPU_ON (0xc4000003), x1 = MPIDR 5 (no such vCPU): INVALID_PARAMS (-2)
    body = [0xD2800060, 0xF2B88000, 0xD28000A1, HVC0, 0xAA0003F3, *SYSTEM_OFF]
    r = run_guest(guest(tmp_path, body), "A", vm=VmConfig(cpus=2), timeout=30)
    assert r.guest_visible["registers"]["x19"] == (1 << 64) - 2


def test_a_gicv2_guest_has_at_most_eight_vcpus(tmp_path: Path) -> None:
    from worldswitch.errors import UsageError

    with pytest.raises(UsageError, match="--cpus 9: a GICv2 guest has at most 8 vCPUs"):
        run_guest(guest(tmp_path, list(SYSTEM_OFF)), "A", vm=VmConfig(cpus=9), timeout=30)


def test_the_clock_counts_priced_exits_guest_quanta_and_idle_time() -> None:
    from worldswitch.events import WORLD_SWITCH, new_counters
    from worldswitch.hw.sys_counter import SystemCounter
    from worldswitch.kvm.arm import fixed_steps
    from worldswitch.platform import get_platform

    pf = get_platform("A")
    counters = new_counters()
    clock = SystemCounter(counters, pf)
    assert clock.ticks() == 0
    counters[WORLD_SWITCH] += 1  # one exit: its fitted fixed cost and its context moves, in ticks of CNTFRQ
    units = pf.unit_costs()
    world_switch = units[WORLD_SWITCH] + sum(units[ev] * n for ev, n in fixed_steps(1, 1))
    assert clock.ticks() == int(world_switch * pf.cntfrq_hz // pf.cpu_hz)
    clock.guest_insns += 2000
    assert clock.cycles() == world_switch + 2000 * pf.guest_cpi
    clock.wait_until(10_000)
    assert clock.ticks() == 10_000  # idle: exactly to the deadline, not past it
    on_guest_clock = SystemCounter(counters, pf, mode="guest")
    on_guest_clock.guest_insns = 2000
    assert on_guest_clock.cycles() == 2000 * pf.guest_cpi  # no plugin can move this one


def test_irqchip_picks_the_profile_of_the_same_host() -> None:
    from worldswitch.errors import UsageError
    from worldswitch.platform import get_platform, platform_for_irqchip

    assert platform_for_irqchip(get_platform("C-v2"), 3).name == "C-v3"
    assert platform_for_irqchip(get_platform("C-v3"), 2).name == "C-v2"
    assert platform_for_irqchip(get_platform("A"), 2).name == "A"
    with pytest.raises(UsageError, match="a GICv2 host cannot run a GICv3 guest"):
        platform_for_irqchip(get_platform("A"), 3)


def test_a_guest_that_reads_the_clock_is_checked_for_transparency_on_the_guest_clock() -> None:
    """exitcost prints costs read from CNTVCT: they differ under the series by design, and
    everything else it sees must not."""
    from click.testing import CliRunner
    from worldswitch.cli import main

    exitcost = str(Path(__file__).resolve().parent.parent / "guests" / "unit" / "exitcost.flat")
    res = CliRunner().invoke(main, ["run", exitcost, "-p", "C-v3", "--patches", "series", "--json",
                                    "--check-transparency"])
    assert res.exit_code == 0, res.output
    import json

    out = json.loads(res.stdout)
    assert out["transparency"] == {"checked": True, "difference": None}
    assert out["guest_visible"]["clock_used"] is True
    vanilla = run_guest(exitcost, "C-v3", timeout=60)
    assert vanilla.guest_visible["console"] != out["guest_visible"]["console"]  # the costs it printed


def test_a_delay_loop_on_the_clock_is_fast_forwarded(tmp_path: Path) -> None:
    # x1 = CNTVCT + 10_000_000 (100 ms at 100 MHz); loop: mrs x2, cntvct; cmp x2, x1; b.lo loop
    mrs_cntvct = _sys(2, 3, 3, 14, 0, 2, True)
    body = [_sys(10, 3, 3, 14, 0, 2, True), 0xD2A01301, 0xF292D001,  # mrs x10, cntvct; x1 = 0x989680
            0x8B0A0021,  # add x1, x1, x10
            mrs_cntvct, 0xEB01005F, 0x54FFFFC3, *SYSTEM_OFF]  # loop: mrs x2; cmp x2, x1; b.lo loop
    r = run_guest(guest(tmp_path, body), "A", timeout=30, max_instructions=5_000_000)
    regs = r.guest_visible["registers"]
    assert regs["x2"] >= regs["x1"] and regs["x2"] - regs["x1"] < 2_000  # ended at its deadline, in time
    assert r.exits == {"hvc64": 1}  # the wait itself never exits


@pytest.mark.parametrize("rounds", [30_000, 300_000])  # within one turn; across three
def test_a_clock_read_sees_every_instruction_before_it(tmp_path: Path, rounds: int) -> None:
    """mrs x10, cntvct; a counted loop; mrs x11, cntvct: the difference is the
    instructions between the two reads at the profile's CPI, in ticks of CNTFRQ, whether
    the turn boundaries fall between them or not (the clock once moved a turn at a time,
    and a loop inside one turn read 0 ticks)."""
    from worldswitch.platform import get_platform

    mrs_x10, mrs_x11 = _sys(10, 3, 3, 14, 0, 2, True), _sys(11, 3, 3, 14, 0, 2, True)
    # w0 = rounds: movz w0, #lo; movk w0, #hi, lsl #16
    set_w0 = [0x52800000 | (rounds & 0xFFFF) << 5, 0x72A00000 | (rounds >> 16) << 5]
    body = [mrs_x10, *set_w0, 0x71000400, 0x54FFFFE1, mrs_x11, *SYSTEM_OFF]  # loop: subs w0, #1; b.ne loop
    r = run_guest(guest(tmp_path, body), "A", timeout=60, max_instructions=2_000_000, cache=False)
    regs = r.guest_visible["registers"]
    pf = get_platform("A")
    between = 1 + len(set_w0) + 2 * rounds  # the first mrs, the set-up, the loop
    expected = between * pf.guest_cpi * pf.cntfrq_hz / pf.cpu_hz
    assert abs((regs["x11"] - regs["x10"]) - expected) <= 1  # whole ticks: floor of each read


@pytest.mark.parametrize("platform", ["A", "C-v3"])
def test_a_guest_timing_its_hypercalls_reads_the_models_price(tmp_path: Path, platform: str) -> None:
    """Between two CNTVCT reads, k PSCI_VERSION calls: going from 1 to 5 calls adds four
    round trips, which the clock prices as the run's result does (the fixed-size
    context moves of every round trip included), plus the 12 instructions that make them."""
    from worldswitch.platform import get_platform

    psci_version = (0xD2800000, 0xF2B08000, HVC0)  # movz x0, #0; movk x0, #0x8400, lsl #16; hvc #0
    seen = {}
    for k in (1, 5):
        body = [_sys(10, 3, 3, 14, 0, 2, True), *psci_version * k, _sys(11, 3, 3, 14, 0, 2, True), *SYSTEM_OFF]
        r = run_guest(guest(tmp_path, body), platform, timeout=30, max_instructions=100_000)
        regs = r.guest_visible["registers"]
        seen[k] = (regs["x11"] - regs["x10"], r.cycles)
    pf = get_platform(platform)
    (t1, c1), (t5, c5) = seen[1], seen[5]
    expected = (c5 - c1 + 12 * pf.guest_cpi) * pf.cntfrq_hz / pf.cpu_hz
    assert abs((t5 - t1) - expected) <= 2  # each difference of reads is whole ticks


@pytest.mark.parametrize("loop, length", [([0x14000000], 1),  # b .
                                          ([0xD503203F, 0xD503203F, 0x17FFFFFE], 3)])  # yield; yield; b
def test_the_spin_probe_takes_a_loop_of_one_branch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   loop: list[int], length: int) -> None:
    """``while (1);`` compiles to ``b .``, whose step leaves the PC where it was: the probe
    must take it for the one-instruction loop it is, not for a step that did not run."""
    from worldswitch import machine

    seen = []
    probe = machine.Cpu.probe_loop

    def recording(self: machine.Cpu) -> object:
        seen.append(probe(self))
        return seen[-1]

    monkeypatch.setattr(machine.Cpu, "probe_loop", recording)
    # no timer is armed and nothing else runs: the machine says the loop never ends
    with pytest.raises(GuestFault, match=r"guest spins for ever: vCPU 0 at pc 0x800800(0c|10|14) in a loop"):
        run_guest(guest(tmp_path, loop), "A", timeout=30, max_instructions=1_000_000)
    loops = [lp for lp in seen if lp is not None]
    assert loops and all(lp.length == length and lp.delta == {} for lp in loops)


def test_a_counted_spin_with_no_timer_is_run_not_refused(tmp_path: Path) -> None:
    """A loop with a counter ends by itself: it is run to its end, never called endless.
    movz w0, #3, lsl #16; loop: subs w0, w0, #1; b.ne loop (393,216 instructions, more
    than a turn, so the loop is probed); then SYSTEM_OFF."""
    body = [0x52A00060, 0x71000400, 0x54FFFFE1, *SYSTEM_OFF]
    r = run_guest(guest(tmp_path, body), "A", timeout=30, max_instructions=1_000_000)
    assert r.guest_visible["system_event"] == 1 and r.guest_visible["registers"]["x0"] == 0x84000008


def test_each_vcpu_has_its_own_plugin_state() -> None:
    """Patch 6 caches "the timer PPI was left inactive" in struct arch_timer_cpu, one per
    vCPU: with two vCPUs each one's first entry makes the irqchip call, then neither does
    again (smp.flat never changes the timer's level). A cache shared between the vCPUs
    made the second one skip its first call."""
    image = str(Path(__file__).resolve().parent.parent / "guests" / "unit" / "smp.flat")
    vanilla = run_guest(image, "A", vm=VmConfig(cpus=2), timeout=60)
    cached = run_guest(image, "A", patches="6", vm=VmConfig(cpus=2), timeout=60)
    assert vanilla.counts["IRQCHIP_STATE_CALL"] > 2  # without the cache: a call every entry
    assert cached.counts["IRQCHIP_STATE_CALL"] == 2
    assert cached.guest_visible == vanilla.guest_visible


def _two_vcpu_dists() -> list:
    """Two vCPUs' distributor copies, as the machine wires them (GICv2 guest on A)."""
    from worldswitch.events import new_counters
    from worldswitch.kvm.vgic.vgic import VgicDist, VgicV2Cpu

    dists = [VgicDist(new_counters(), VgicV2Cpu(4), 2) for _ in range(2)]
    for i, d in enumerate(dists):
        d.vcpu_id, d.peers = i, dists
        d.retarget()
        d.enabled, d.irq_enabled = 1, (1 << 64) - 1
    return dists


def _shared_write(dists: list, name: str, offset: int, value: int) -> None:
    """A guest's write to a shared distributor register: every vCPU's copy sees it (handle_exit)."""
    from worldswitch.kvm.vgic.vgic_v2_emul import vgic_dist_ranges

    (rng,) = [r for r in vgic_dist_ranges() if r.name == name]
    for d in dists:
        rng.handle(d, offset - rng.base, True, value, 4)


@pytest.mark.parametrize("itargetsr, taker", [(None, 0), (0x02, 1), (0x03, 0), (0x00, 0)])
def test_an_spi_goes_to_the_one_vcpu_its_target_names(itargetsr: int | None, taker: int) -> None:
    """v4.5's irq_spi_target: an SPI made pending is taken by one vCPU only, the lowest one
    GICD_ITARGETSR names (vCPU 0 when it names none, and before any write), and the
    register reads back that one vCPU."""
    from worldswitch.kvm.vgic.vgic_v2_emul import vgic_dist_ranges

    dists = _two_vcpu_dists()
    if itargetsr is not None:
        _shared_write(dists, "TARGET", 0x800 + 32, itargetsr)  # SPI 32's byte
    _shared_write(dists, "PENDING_SET", 0x200 + 4, 1)  # GICD_ISPENDR1 bit 0: SPI 32
    assert [d.pending_on_cpu for d in dists] == [i == taker for i in range(2)]
    for d in dists:
        d.flush_hwstate()
    assert [32 in d.irq_lr_map for d in dists] == [i == taker for i in range(2)]
    (rng,) = [r for r in vgic_dist_ranges() if r.name == "TARGET"]
    assert rng.handle(dists[0], 32, False, 0, 1) == 1 << taker
