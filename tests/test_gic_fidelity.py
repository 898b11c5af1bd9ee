"""Where the virtual CPU interface keeps active priorities, per GIC and per guest interface.

A GICv2 guest on a GICv3 host (C-v2) reaches the ICH virtual interface through the
memory-mapped GICV page (legacy operation, ICC_SRE_EL1.SRE == 0). There every active
priority lives in ICH_AP1Rn_EL2 whatever the interrupt's group (GICv3 spec, GICV_APR<n>;
KVM's vgic-mmio-v2.c: "GICv3 only uses ICH_AP1Rn for memory mapped (GICv2) guests").
Patch 17 stops saving and restoring ICH_AP0Rn for such guests on the strength of it.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from worldswitch.api import run_guest
from worldswitch.events import new_counters
from worldswitch.hw.gic_v2 import GICC_APR0, GICC_EOIR, GICC_IAR, GICC_RPR, GicH, GicV
from worldswitch.hw.gic_v3 import IchInterface, IcvInterface
from worldswitch.hw.vcpu_if import LR_ACTIVE, LR_PENDING, SPURIOUS, V2_LR, V3_LR, LrCodec
from worldswitch.platform import get_platform
from worldswitch.plugin import hookimpl

PRIO = 0xA0
PRIO_BIT = 1 << (PRIO >> 3)  # 5 priority bits: one AP register bit per 8 priority steps
INTID = 5


def lr(codec: LrCodec, intid: int, prio: int, group: int, state: int = LR_PENDING) -> int:
    prio_field = (prio >> (8 - codec.prio_bits)) << codec.prio_shift
    return intid | prio_field | (state << codec.state_shift) | (group << codec.group_bit)


def lr_state(codec: LrCodec, value: int) -> int:
    return (value >> codec.state_shift) & 3


def ich_for(platform: str) -> IchInterface:
    """The ICH interface as Vcpu builds it for a GICv3 host, enabled for both groups."""
    pf = get_platform(platform)
    ich = IchInterface(new_counters(), pf.nr_lr, pf.nr_pri_bits)
    ich.write_hcr(1)  # En
    ich.lrf.grpen0 = ich.lrf.grpen1 = 1
    ich.lrf.pmr = 0xF0
    return ich


# ---- the hardware models alone --------------------------------------------------------------
def test_legacy_guest_activates_in_ap1r() -> None:
    ich = ich_for("C-v2")
    gicv = GicV(ich.c, ich.lrf)
    ich.write_sre_el1(0)  # what the hyp restore writes for a GICv2 guest (vgic_sre = 0)
    ich.write_lr(0, lr(V3_LR, INTID, PRIO, group=0))  # KVM's LRs for a GICv2 guest are Group 0
    assert gicv.read(GICC_IAR) == INTID
    assert ich.read_ap1r(0) == PRIO_BIT and ich.read_ap0r(0) == 0
    assert lr_state(V3_LR, ich.read_lr(0)) == LR_ACTIVE
    assert gicv.read(GICC_RPR) == PRIO and gicv.read(GICC_APR0) == PRIO_BIT  # GICV_APR0 is ICH_AP1R0
    assert gicv.write(GICC_EOIR, INTID)
    assert ich.read_ap1r(0) == ich.read_ap0r(0) == 0
    assert lr_state(V3_LR, ich.read_lr(0)) == 0 and gicv.read(GICC_RPR) == 0xFF


def test_legacy_guest_ignores_a_stale_ap0r() -> None:
    """With patch 17 nothing restores ICH_AP0Rn for a GICv2 guest: whatever it holds is
    not the guest's, so it must neither block an acknowledge nor absorb an EOI."""
    ich = ich_for("C-v2")
    gicv = GicV(ich.c, ich.lrf)
    ich.write_sre_el1(0)
    ich.write_ap0r(0, 1)  # a priority-0 bit left over from someone else
    ich.write_lr(0, lr(V3_LR, INTID, PRIO, group=0))
    assert gicv.read(GICC_IAR) == INTID and gicv.read(GICC_RPR) == PRIO
    gicv.write(GICC_EOIR, INTID)
    assert ich.read_ap1r(0) == 0 and ich.read_ap0r(0) == 1


def test_preemption_is_checked_against_ap1r_in_legacy_mode() -> None:
    ich = ich_for("C-v2")
    gicv = GicV(ich.c, ich.lrf)
    ich.write_sre_el1(0)
    ich.write_lr(0, lr(V3_LR, INTID, PRIO, group=0))
    ich.write_lr(1, lr(V3_LR, INTID + 1, PRIO + 0x10, group=0))
    assert gicv.read(GICC_IAR) == INTID
    assert gicv.read(GICC_IAR) == SPURIOUS  # a lower priority does not preempt
    gicv.write(GICC_EOIR, INTID)
    assert gicv.read(GICC_IAR) == INTID + 1 and ich.read_ap1r(0) == 1 << ((PRIO + 0x10) >> 3)


def test_system_register_guest_keeps_groups_apart() -> None:
    """SRE == 1 (a GICv3 guest, C-v3): group 1 in AP1Rn as before, group 0 in AP0Rn."""
    ich = ich_for("C-v3")
    icv = IcvInterface(ich.c, ich)
    ich.write_sre_el1(1)
    ich.write_lr(0, lr(V3_LR, INTID, PRIO, group=1))
    assert icv.read_iar1() == INTID
    assert ich.read_ap1r(0) == PRIO_BIT and ich.read_ap0r(0) == 0
    icv.write_eoir1(INTID)
    assert ich.read_ap1r(0) == 0
    ich.write_lr(1, lr(V3_LR, INTID + 1, PRIO, group=0))
    assert ich.lrf.acknowledge(0) == INTID + 1  # the model has no ICV_IAR0 accessor
    assert ich.read_ap0r(0) == PRIO_BIT and ich.read_ap1r(0) == 0
    ich.lrf.end_of_interrupt(INTID + 1, 0)
    assert ich.read_ap0r(0) == 0


def test_the_hyp_restore_switches_the_interface_each_entry() -> None:
    """The save path hands EL1 back with SRE = 1 and the restore sets the guest's again:
    the AP bank follows the last write, so a legacy acknowledge after a round trip still
    lands in AP1Rn."""
    ich = ich_for("C-v2")
    gicv = GicV(ich.c, ich.lrf)
    for sre in (0, 1, 0):
        ich.write_sre_el1(sre)
    ich.write_lr(0, lr(V3_LR, INTID, PRIO, group=0))
    assert gicv.read(GICC_IAR) == INTID and ich.read_ap1r(0) == PRIO_BIT and ich.read_ap0r(0) == 0


def test_gicv2_host_keeps_the_single_gich_apr() -> None:
    gich = GicH(new_counters(), get_platform("A").nr_lr)
    gicv = GicV(gich.c, gich.lrf)
    gich.write_hcr(1)
    gich.write_vmcr(1 | (0xF0 >> 3) << 27)  # Group 0 enabled, PMR 0xf0
    gich.write_lr(0, lr(V2_LR, INTID, PRIO, group=0))
    assert gicv.read(GICC_IAR) == INTID
    assert gich.read_apr() == PRIO_BIT and gicv.read(GICC_APR0) == PRIO_BIT
    assert gicv.read(GICC_RPR) == PRIO
    gicv.write(GICC_EOIR, INTID)
    assert gich.read_apr() == 0 and gicv.read(GICC_RPR) == 0xFF


# ---- end to end: an interrupt active across an exit on C-v2 ---------------------------------
def movz_w(rd: int, imm: int, shift: int = 0) -> int:
    return 0x52800000 | ((shift // 16) << 21) | (imm << 5) | rd


def movk_w(rd: int, imm: int, shift: int = 0) -> int:
    return 0x72800000 | ((shift // 16) << 21) | (imm << 5) | rd


def movz_x(rd: int, imm: int, shift: int = 0) -> int:
    return 0xD2800000 | ((shift // 16) << 21) | (imm << 5) | rd


def movk_x(rd: int, imm: int, shift: int = 0) -> int:
    return 0xF2800000 | ((shift // 16) << 21) | (imm << 5) | rd


def str_w(rt: int, rn: int, offset: int) -> int:
    return 0xB9000000 | ((offset // 4) << 10) | (rn << 5) | rt


def ldr_w(rt: int, rn: int, offset: int) -> int:
    return 0xB9400000 | ((offset // 4) << 10) | (rn << 5) | rt


def mov_x(rd: int, rm: int) -> int:
    return 0xAA0003E0 | (rm << 16) | rd


def cmp_w(rn: int, imm: int) -> int:
    return 0x7100001F | (imm << 10) | (rn << 5)


def b_cond(cond: int, words: int) -> int:
    return 0x54000000 | ((words & 0x7FFFF) << 5) | cond


def b(words: int) -> int:
    return 0x14000000 | (words & 0x3FFFFFF)


HVC0, WFI, NE = 0xD4000002, 0xD503207F, 1
GICD, GICC = 0x3FFF0000, 0x3FFD0000  # kvmtool's layout, as guests/self_sgi.S
GICD_CTLR, GICD_ISENABLER0, GICD_IPRIORITYR0, GICD_SGIR = 0x000, 0x100, 0x400, 0xF00
GICC_CTLR, GICC_PMR = 0x00, 0x04

# x1 = GICD, x2 = GICC; enable; SGI0 to ourselves; poll IAR into x0 (wfi when spurious);
# x5 = RPR and x6 = APR0 while active; PSCI_VERSION by HVC (an exit with SGI0 active);
# x8 = RPR after the round trip; EOI; x9 = RPR after it; then SYSTEM_RESET.
ACK_ACROSS_HVC = [
    movz_x(1, GICD >> 16, 16), movz_x(2, GICC >> 16, 16),
    movz_w(3, 1), str_w(3, 1, GICD_CTLR),
    movz_w(3, 0xA0A0), movk_w(3, 0xA0A0, 16), str_w(3, 1, GICD_IPRIORITYR0),
    movz_w(3, 0xF), str_w(3, 1, GICD_ISENABLER0),
    movz_w(3, 0xF0), str_w(3, 2, GICC_PMR),
    movz_w(3, 1), str_w(3, 2, GICC_CTLR),
    movz_w(4, 0x200, 16), str_w(4, 1, GICD_SGIR),  # 2 << 24: to this CPU only
    ldr_w(0, 2, GICC_IAR), cmp_w(0, SPURIOUS), b_cond(NE, 3), WFI, b(-4),  # poll
    mov_x(7, 0), ldr_w(5, 2, GICC_RPR), ldr_w(6, 2, GICC_APR0),
    movz_x(0, 0x8400, 16), HVC0,  # PSCI_VERSION
    ldr_w(8, 2, GICC_RPR), str_w(7, 2, GICC_EOIR), ldr_w(9, 2, GICC_RPR),
    movz_x(0, 0x8400, 16), movk_x(0, 9), HVC0,  # SYSTEM_RESET
    b(0),
]


class ApAtHvc:
    """Records the APRs the hyp save path stored, at every HVC exit."""

    def __init__(self) -> None:
        self.seen: list[tuple[list[int], list[int]]] = []

    @hookimpl
    def ws_guest_exit(self, vcpu: Any, esr: int) -> None:
        if esr >> 26 == 0x16:  # HVC64
            cpu = vcpu.vgic_cpu
            self.seen.append((list(cpu.vgic_ap0r), list(cpu.vgic_ap1r)))


@pytest.fixture
def ack_across_hvc(tmp_path: Path) -> str:
    p = tmp_path / "ack_across_hvc.bin"
    p.write_bytes(b"".join(struct.pack("<I", w) for w in ACK_ACROSS_HVC))
    return str(p)


@pytest.mark.parametrize("patches", ["none", "7,13,17", "7,13-17"])
def test_active_priority_survives_an_exit_on_c_v2(ack_across_hvc: str, patches: str) -> None:
    vanilla = run_guest(ack_across_hvc, "C-v2")
    rec = ApAtHvc()
    res = run_guest(ack_across_hvc, "C-v2", patches=patches, extra_plugins=(rec,))
    assert res.guest_visible == vanilla.guest_visible
    regs = res.guest_visible["registers"]
    # KVM v4.5 leaves the LR priority at 0: SGI0 is active at priority 0, bit 0
    assert regs["x7"] == 0 and regs["x5"] == regs["x8"] == 0 and regs["x6"] == 1 and regs["x9"] == 0xFF
    assert res.guest_visible["acked"] == {"0": 1} and res.guest_visible["eois"] == 1
    (ap0r, ap1r), (_, after_eoi) = rec.seen  # PSCI_VERSION with SGI0 active, then SYSTEM_RESET
    assert ap1r[0] == 1, "the active priority must be saved in vgic_ap1r"
    if patches == "none":
        assert ap0r == [0, 0, 0, 0]  # saved, and empty: a GICv2 guest never uses AP0Rn
    assert after_eoi == [0, 0, 0, 0]
