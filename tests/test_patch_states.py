"""States that exercise every decision of patches 7-17, on every host each one touches.

The study's loops never leave an LR asking for an EOI notification, never overflow the
LRs, and never keep an interrupt active across an exit, so a broken ``expect_mi`` or a
lost ``clear_state`` would pass them. Here the vCPU model is driven directly: the vgic
distributor queues interrupts, the "guest" acknowledges and EOIs through the virtual
CPU interface, and an HVC exit runs the whole round trip (hyp save, sync, handle_exit,
flush, hyp restore). After every step, each plugin set must leave exactly what vanilla
leaves where anything can see it: the maintenance state the sync consumes, the LRs the
vgic still uses, and the interrupts the guest can take.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from worldswitch.api import run_guest
from worldswitch.board import build_board
from worldswitch.events import Exit, new_counters
from worldswitch.hooks import Hooks
from worldswitch.hw.vcpu_if import SPURIOUS
from worldswitch.kvm.arm import Vcpu
from worldswitch.platform import get_platform
from worldswitch.plugin import discover, hookimpl, make_manager, parse_selection

HVC = (Exit.HVC64 << 26) | (1 << 25)
PSCI_VERSION = 0x84000000
PPI = 23  # a level-sensitive line nothing maps to a physical one: its LR asks for an EOI notification
VTIMER = 27  # the virtual timer's PPI, mapped to the physical one: its LR has HW set instead

# each host with the patch sets that touch it (cumulative, as the series applied them)
HOSTS = {
    "A": ["7", "7,8", "7-9", "7-10", "7-11", "series"],
    "C-v3": ["7,13", "7,13,14", "7,13-15", "7,13-16", "series"],
    "C-v2": ["7,13", "7,13-16", "7,13,17", "series"],
}


def vcpu_for(platform: str, patches: str) -> Vcpu:
    plugins = discover()
    hooks = Hooks(make_manager(parse_selection(patches, plugins), plugins))
    vcpu = Vcpu(build_board(get_platform(platform), new_counters()), hooks)
    vcpu.first_entry()
    dist = vcpu.dist
    # the guest enabled its CPU interface (both groups, lowest priority mask: the hardware
    # VMCR, which the exit saves) and the distributor
    vcpu.hyp_if.lrf.vmcr = (0xFF << 24 if vcpu.vgic_cpu.hyp_gic == 3 else 0x1F << 27) | 3
    dist.enabled, dist.irq_enabled = 1, (1 << 32) - 1
    return vcpu


def group(vcpu: Vcpu) -> int:
    return 1 if vcpu.platform.guest_gic == 3 else 0


def round_trip(vcpu: Vcpu) -> None:
    assert vcpu.world_switch(HVC, [PSCI_VERSION, 0])


def ack(vcpu: Vcpu) -> int:
    return vcpu.hyp_if.lrf.acknowledge(group(vcpu))


def eoi(vcpu: Vcpu, intid: int) -> None:
    vcpu.hyp_if.lrf.end_of_interrupt(intid, group(vcpu))


def take_all(vcpu: Vcpu, seen: list, exit_between: bool = False) -> None:
    """The guest takes and EOIs whatever it can (a bounded loop: a broken patch may
    leave an interrupt that comes back for ever)."""
    for _ in range(16):
        intid = ack(vcpu)
        if intid == SPURIOUS:
            return
        eoi(vcpu, intid)
        seen.append(intid)
        if exit_between:
            round_trip(vcpu)
            seen.append(visible(vcpu))
    seen.append("still taking interrupts after 16")


def visible(vcpu: Vcpu) -> dict[str, Any]:
    """Everything a later step can observe: what the save left for the sync, the LRs the
    vgic still uses, and the hardware LRs the guest can take (empty ones are invisible)."""
    cpu, lrf, dist = vcpu.vgic_cpu, vcpu.hyp_if.lrf, vcpu.dist
    sh, used = cpu.state_shift, dist.lr_used
    return {
        "misr": cpu.vgic_misr, "eisr": cpu.vgic_eisr & used, "elrsr": cpu.vgic_elrsr & used, "used": used,
        "memory": [(cpu.lr_irq(v), (v >> sh) & 3) for i, v in enumerate(cpu.vgic_lr) if (used >> i) & 1],
        "hardware": [v if (v >> lrf.codec.state_shift) & 3 else 0 for v in lrf.lr],
        "hcr_uie": cpu.vgic_hcr & 2, "pending": dist.irq_pending, "apr": (list(lrf.ap0r), list(lrf.ap1r)),
        "phys_timer_active": vcpu.host_gic.is_active(VTIMER),
    }


def trace(platform: str, patches: str, scenario: Callable[[Vcpu, list], None]) -> list:
    vcpu = vcpu_for(platform, patches)
    seen: list = []
    scenario(vcpu, seen)
    return seen


# ---- the scenarios: each appends visible() after every round trip -------------------------
def eoi_notification(vcpu: Vcpu, seen: list) -> None:
    """A level interrupt (EOI bit set, HW clear) is taken and EOId: MISR.EOI and EISR."""
    vcpu.dist.inject_level(PPI, True)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    intid = ack(vcpu)
    assert intid == PPI
    eoi(vcpu, intid)
    vcpu.dist.inject_level(PPI, False)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    assert vcpu.vgic_cpu.vgic_eisr and vcpu.vgic_cpu.vgic_misr & 1, "the state under test was not reached"
    round_trip(vcpu)
    seen.append(visible(vcpu))


def underflow(vcpu: Vcpu, seen: list) -> None:
    """More SGIs than LRs: HCR.UIE asks to be told when the LRs drain."""
    for sgi in range(vcpu.vgic_cpu.nr_lr + 2):
        vcpu.dist.dispatch_sgi(sgi, 0, 1)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    assert vcpu.vgic_cpu.vgic_hcr & 2, "the state under test was not reached"
    for _ in range(vcpu.vgic_cpu.nr_lr - 1):
        intid = ack(vcpu)
        eoi(vcpu, intid)
        seen.append(intid)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    assert vcpu.vgic_cpu.vgic_misr & 2
    take_all(vcpu, seen, exit_between=True)


def drained_not_refilled(vcpu: Vcpu, seen: list) -> None:
    """Several LRs live; the guest empties them; nothing refills them."""
    for sgi in (1, 2, 3):
        vcpu.dist.dispatch_sgi(sgi, 0, 1)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    intid = ack(vcpu)
    eoi(vcpu, intid)  # one of three live LRs empties: ELRSR says so
    seen.append(intid)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    take_all(vcpu, seen)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    round_trip(vcpu)
    seen.append(visible(vcpu))
    assert ack(vcpu) == SPURIOUS  # an emptied LR must not come back as a spurious interrupt


def active_across_exit(vcpu: Vcpu, seen: list) -> None:
    """An interrupt stays active over an exit (on C-v2 its priority lives in AP1Rn)."""
    vcpu.dist.dispatch_sgi(5, 0, 1)
    vcpu.dist.dispatch_sgi(6, 0, 1)
    round_trip(vcpu)
    intid = ack(vcpu)
    seen.append(intid)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    assert any(vcpu.hyp_if.lrf.ap0r + vcpu.hyp_if.lrf.ap1r), "the state under test was not reached"
    seen.append(ack(vcpu))  # same priority: no preemption while the first is active
    eoi(vcpu, intid)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    seen.append(ack(vcpu))


def timer_hw_mapped(vcpu: Vcpu, seen: list) -> None:
    """The virtual timer fires: its LR has HW set (pINTID 27) and no EOI notification.
    The guest's EOI deactivates the physical PPI as well; with the line still high the
    next sync samples it again and the flush requeues it; masked, it is gone."""
    timer, cpu = vcpu.timer, vcpu.vgic_cpu
    hw = 1 << cpu.lr.hw_bit
    timer.cntv_cval, timer.cntv_ctl = 0, 1  # enabled and already due
    round_trip(vcpu)
    seen.append(visible(vcpu))
    assert any(v & hw and cpu.lr.pintid(v) == VTIMER for v in vcpu.hyp_if.lrf.lr), "not queued with HW set"
    assert vcpu.host_gic.is_active(VTIMER)  # the flush keeps the physical PPI from firing meanwhile
    assert ack(vcpu) == VTIMER
    eoi(vcpu, VTIMER)  # the handler left the timer as it was: its line stays high
    assert not vcpu.host_gic.is_active(VTIMER) and not vcpu.hyp_if.lrf.maintenance
    round_trip(vcpu)  # the physical PPI's exit
    seen.append(visible(vcpu))
    assert ack(vcpu) == VTIMER, "a level that stayed high must come back"
    timer.cntv_ctl = 3  # the handler masks it this time
    eoi(vcpu, VTIMER)
    round_trip(vcpu)
    seen.append(visible(vcpu))
    assert ack(vcpu) == SPURIOUS
    assert not cpu.vgic_misr & 1 and not vcpu.dist.irq_queued  # no EOI maintenance, nothing left queued


SCENARIOS = [eoi_notification, underflow, drained_not_refilled, active_across_exit, timer_hw_mapped]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.parametrize(("platform", "patches"), [(p, s) for p, sets in HOSTS.items() for s in sets])
def test_patched_state_is_vanillas(platform: str, patches: str, scenario: Callable) -> None:
    assert trace(platform, patches, scenario) == trace(platform, "none", scenario)


@pytest.mark.parametrize("platform", list(HOSTS))
def test_the_patches_save_accesses_in_these_states(platform: str) -> None:
    """The states are not trivially equal: the series reads less of the hardware."""
    counts = {}
    for patches in ("none", "series"):
        vcpu = vcpu_for(platform, patches)
        drained_not_refilled(vcpu, [])
        counts[patches] = sum(vcpu.c)
    assert counts["series"] < counts["none"]


# ---- the steps' own decisions, access by access ------------------------------------------
def _hyp(hyp_gic: int, nr_lr: int) -> tuple[Any, Any, list[int], Any]:
    """(step module, hardware interface, its counters, the in-memory shadow)."""
    from worldswitch.hw.gic_v2 import GicH
    from worldswitch.hw.gic_v3 import IchInterface
    from worldswitch.kvm.hyp import vgic_v2_sr, vgic_v3_sr
    from worldswitch.kvm.vgic.vgic import VgicV2Cpu, VgicV3Cpu

    counters = new_counters()
    if hyp_gic == 2:
        return vgic_v2_sr, GicH(counters, nr_lr), counters, VgicV2Cpu(nr_lr)
    return vgic_v3_sr, IchInterface(counters, nr_lr, 5), counters, VgicV3Cpu(nr_lr, 5, 1)


@pytest.mark.parametrize(("hyp_gic", "nr_lr", "eisr_regs"),
                         [(2, 4, 1), (2, 32, 1), (2, 33, 2), (2, 64, 2), (3, 4, 1), (3, 16, 1)])
@pytest.mark.parametrize(("expect_mi", "eoi_pending", "reads"), [
    (None, False, "misr+eisr"),  # v4.5: both, always
    (None, True, "misr+eisr"),
    (True, False, "misr"),  # patches 8/14: EISR only when MISR reports an EOI
    (True, True, "misr+eisr"),
    (False, True, ""),  # nothing can be pending: neither is read
])
def test_save_maint_int_state_reads(hyp_gic: int, nr_lr: int, eisr_regs: int, expect_mi: bool | None,
                                    eoi_pending: bool, reads: str) -> None:
    step, hw, counters, cpu = _hyp(hyp_gic, nr_lr)
    if eoi_pending:  # an LR emptied by the guest that asked for an EOI notification
        hw.lrf.lr[nr_lr - 1] = 1 << hw.lrf.codec.eoi_bit
    step.save_maint_int_state(cpu, hw, expect_mi)
    expected = ("misr" in reads) + ("eisr" in reads) * eisr_regs
    assert sum(counters) == expected
    eoi = eoi_pending and bool(reads)
    assert cpu.vgic_misr == int(eoi) and cpu.vgic_eisr == (eoi << (nr_lr - 1))


@pytest.mark.parametrize(("nr_lr", "regs"), [(4, 1), (32, 1), (33, 2), (64, 2)])
def test_save_elrsr_reads_one_register_per_32_lrs(nr_lr: int, regs: int) -> None:
    step, hw, counters, cpu = _hyp(2, nr_lr)
    busy = {0, nr_lr - 1}  # one LR in use in each ELRSR word: the two words differ
    for i in busy:
        hw.lrf.lr[i] = 1 << hw.lrf.codec.state_shift  # pending
    step.save_elrsr(cpu, hw)
    empty = ((1 << (32 * regs)) - 1) & ~sum(1 << i for i in busy)  # unimplemented LRs read empty
    assert sum(counters) == regs and cpu.vgic_elrsr == empty


@pytest.mark.parametrize("nr_lr", [1, 2, 4, 16])
def test_v3_save_reads_every_implemented_lr(nr_lr: int) -> None:
    """max_lr_idx, from ICH_VTR_EL2.ListRegs, bounds the LRs the entry writes and the exit reads."""
    from worldswitch.events import ICH_READ, ICH_WRITE
    from worldswitch.kvm.hyp.vgic_v3_sr import build_vgic_v3_sr

    _, ich, counters, cpu = _hyp(3, nr_lr)
    save, restore = build_vgic_v3_sr(Hooks())
    restore(cpu, ich)
    # HCR, VMCR, AP1R0, AP0R0 (5 priority bits), then every LR
    assert counters[ICH_WRITE] == 4 + nr_lr
    counters[ICH_READ] = 0
    save(cpu, ich)
    # VMCR, MISR, EISR, ELRSR, VTR, every LR, AP0R0, AP1R0
    assert counters[ICH_READ] == 5 + nr_lr + 2


@pytest.mark.parametrize(("pri_bits", "apr_regs"), [(5, 1), (6, 2), (7, 4), (8, 4)])
def test_apr_group_size_follows_the_priority_bits(pri_bits: int, apr_regs: int) -> None:
    """The kernel's switch on ICH_VTR_EL2.PRIbits: 5 bits -> 1 AP0Rn/AP1Rn, 6 -> 2, 7 -> 4."""
    from worldswitch.events import ICH_READ, ICH_WRITE
    from worldswitch.hw.gic_v3 import IchInterface
    from worldswitch.kvm.hyp.vgic_v3_sr import build_vgic_v3_sr
    from worldswitch.kvm.vgic.vgic import VgicV3Cpu

    counters = new_counters()
    ich, cpu = IchInterface(counters, 4, pri_bits), VgicV3Cpu(4, pri_bits, 1)
    save, restore = build_vgic_v3_sr(Hooks())
    restore(cpu, ich)
    writes = counters[ICH_WRITE]
    save(cpu, ich)
    # W HCR, VMCR, 4 LRs plus both APR groups; R VMCR, MISR, EISR, ELRSR, VTR, 4 LRs plus both APR groups
    assert writes == 2 + 4 + 2 * apr_regs and counters[ICH_READ] - 1 == 5 + 4 + 2 * apr_regs


@pytest.mark.parametrize(("hyp_gic", "lr_bits", "uie", "expected"), [
    (2, ("eoi",), False, True),  # a level interrupt asked to be told of its EOI
    (2, ("eoi", "hw"), False, False),  # a hardware interrupt deactivates the physical one: no notification
    (2, (), False, False),
    (2, (), True, True),  # underflow requested
    (3, ("eoi",), False, True),
    (3, ("eoi", "hw"), False, False),
    (3, (), True, True),
])
def test_expect_mi(hyp_gic: int, lr_bits: tuple[str, ...], uie: bool, expected: bool) -> None:
    from worldswitch.plugins.vgic.maint_on_demand import expect_mi

    _, _, _, cpu = _hyp(hyp_gic, 4)
    for bit in lr_bits:
        cpu.vgic_lr[2] |= 1 << getattr(cpu.lr, f"{bit}_bit")
    cpu.vgic_hcr |= 2 if uie else 0
    assert expect_mi(cpu, 0b0100) is expected
    assert expect_mi(cpu, 0b1011) is uie  # the LR is not among those saved


class DeferVmcr:
    @hookimpl
    def ws_vgic_save_vmcr(self, vgic_cpu):
        return False


@pytest.mark.parametrize(("platform", "read", "write"), [("A", "GICH_READ", "GICH_WRITE"),
                                                         ("C-v2", "ICH_READ", "ICH_WRITE"),
                                                         ("C-v3", "ICH_READ", "ICH_WRITE")])
def test_vmcr_deferred_to_load_and_put(platform: str, read: str, write: str) -> None:
    base = run_guest("self_sgi-256", platform)
    mine = run_guest("self_sgi-256", platform, extra_plugins=(DeferVmcr(),))
    assert mine.guest_visible == base.guest_visible
    exits = sum(base.exits.values())  # as many entries: the first one and a re-entry per exit but the last
    assert base.counts[read] - mine.counts[read] == exits - 1  # one read at put instead of one per exit
    assert base.counts[write] - mine.counts[write] == exits - 1  # one write at load instead of one per entry


@pytest.mark.parametrize(("platform", "patches"), [("C-v3", str(n)) for n in range(7, 12)]
                         + [("A", str(n)) for n in range(13, 18)] + [("C-v3", "17")])
def test_a_patch_of_another_hosts_code_changes_nothing(platform: str, patches: str) -> None:
    assert run_guest("self_sgi-256", platform, patches=patches, force=True).counts == \
        run_guest("self_sgi-256", platform).counts


def test_an_idle_exit_leaves_no_active_priority_behind() -> None:
    """Nothing in flight: every APR the restore may write later reads as idle (7 priority
    bits: four AP0Rn and four AP1Rn)."""
    from worldswitch.hw.gic_v3 import IchInterface
    from worldswitch.kvm.hyp.vgic_v3_sr import build_vgic_v3_sr
    from worldswitch.kvm.vgic.vgic import VgicV3Cpu

    hooks = Hooks()
    hooks.ws_vgic_lrs_to_save = lambda cpu: 0  # a plugin says no LR is in flight
    save, _ = build_vgic_v3_sr(hooks)
    cpu = VgicV3Cpu(4, 7, 1)
    cpu.vgic_ap0r[:], cpu.vgic_ap1r[:] = [1, 2, 3, 4], [5, 6, 7, 8]
    save(cpu, IchInterface(new_counters(), 4, 7))
    assert cpu.vgic_ap0r == cpu.vgic_ap1r == [0, 0, 0, 0]
    assert cpu.vgic_misr == cpu.vgic_eisr == 0 and cpu.vgic_elrsr == 0xFFFF


def test_sys_reg_bsearch_finds_every_entry() -> None:
    """Patch 1's key must be one-to-one: each entry of both tables is found by its own encoding."""
    from worldswitch.kvm.sys_regs import SysRegParams, generic_v8_target_table, load_sys_reg_descs
    from worldswitch.plugins.sysregs import bsearch

    for table in (load_sys_reg_descs(), generic_v8_target_table()):
        for entry in table.entries:
            params = SysRegParams(entry.op0, entry.op1, entry.crn, entry.crm, entry.op2, False, 0)
            assert bsearch.ws_find_sys_reg(params, table).entry is entry, (table.name, entry.name)
