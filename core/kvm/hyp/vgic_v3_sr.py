"""arch/arm64/kvm/hyp/vgic-v3-sr.c: ICH_*_EL2 save on exit and restore on entry.

Vanilla v4.5 sequence (4 LRs, 5 priority bits): exit R VMCR, MISR, EISR, ELRSR,
W HCR, R VTR, R LR3..LR0, R AP0Rn, R AP1Rn, then R/W ICC_SRE_EL2 and W ICC_SRE_EL1;
entry W ICC_SRE_EL1, W HCR, W VMCR, R VTR, W AP1Rn, W AP0Rn, W LR3..LR0, and for a
GICv2 guest R/W ICC_SRE_EL2. Patches 13-17 answer the same questions as 7-11 (the
hooks are shared with vgic-v2-sr.c) and whether the AP0Rn group is needed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...hw.gic_v3 import ICC_SRE_ENABLE
from . import narrow

if TYPE_CHECKING:
    from ...hooks import Hooks
    from ...hw.gic_v3 import IchInterface
    from ..vgic.vgic import VgicV3Cpu

# How many ICH_AP0Rn/AP1Rn registers the priority bits need (the kernel's switch on
# ICH_VTR_EL2.PRIbits): 7 bits -> 4, 6 bits -> 2, 5 bits -> 1; indexed by PRIbits.
NR_APR_REGS = (1, 1, 1, 1, 1, 2, 4, 4)
ICH_MISR_EOI = 1


def save_maint_int_state(cpu: VgicV3Cpu, ich: IchInterface, expect_mi: bool | None) -> None:
    """As vgic-v2-sr.c's: v4.5 reads MISR and EISR; once asked, only when needed."""
    if expect_mi is None or expect_mi:
        cpu.vgic_misr = ich.read_misr()
        cpu.vgic_eisr = ich.read_eisr() if expect_mi is None or cpu.vgic_misr & ICH_MISR_EOI else 0
    else:
        cpu.vgic_misr = cpu.vgic_eisr = 0


def save_lrs(cpu: VgicV3Cpu, ich: IchInterface, lrs: int, read: int, wipe: int) -> None:
    ich.read_lrs(read, cpu.vgic_lr)
    if read != lrs:
        cpu.clear_state(lrs & ~read)
    if wipe:
        ich.zero_lrs(wipe)


def build_vgic_v3_sr(
    hooks: Hooks,
) -> tuple[Callable[[VgicV3Cpu, IchInterface], None], Callable[[VgicV3Cpu, IchInterface], None]]:
    """Return (__vgic_v3_save_state, __vgic_v3_restore_state) with the hooks bound."""
    lrs_to_save = hooks.ws_vgic_lrs_to_save
    expect_mi = hooks.ws_vgic_expect_mi
    lrs_to_read = hooks.ws_vgic_lrs_to_read
    lrs_to_wipe = hooks.ws_vgic_lrs_to_wipe
    lrs_to_restore = hooks.ws_vgic_lrs_to_restore
    save_ap0rn = hooks.ws_vgic_v3_save_ap0rn
    save_vmcr = hooks.ws_vgic_save_vmcr

    def ap0rn_in_use(cpu: VgicV3Cpu) -> bool:
        return save_ap0rn is None or save_ap0rn(cpu) is not False

    def vgic_v3_save_state(cpu: VgicV3Cpu, ich: IchInterface) -> None:
        if save_vmcr is None or save_vmcr(cpu) is not False:
            cpu.vgic_vmcr = ich.read_vmcr()
        lrs = cpu.all_lrs if lrs_to_save is None else narrow(cpu.all_lrs, lrs_to_save(cpu))
        if lrs:
            save_maint_int_state(cpu, ich, None if expect_mi is None else expect_mi(cpu, lrs))
            cpu.vgic_elrsr = ich.read_elrsr()
            ich.write_hcr(0)
            vtr = ich.read_vtr()
            lrs &= (2 << (vtr & 0xF)) - 1  # max_lr_idx bounds the kernel's switch
            read = lrs if lrs_to_read is None else narrow(lrs, lrs_to_read(cpu, lrs))
            save_lrs(cpu, ich, lrs, read, 0 if lrs_to_wipe is None else lrs & (lrs_to_wipe(cpu, lrs) or 0))
            n = NR_APR_REGS[(vtr >> 29) & 7]
            if ap0rn_in_use(cpu):
                ich.read_ap0rs(n, cpu.vgic_ap0r)
            ich.read_ap1rs(n, cpu.vgic_ap1r)
        else:
            cpu.vgic_misr = cpu.vgic_eisr = 0
            cpu.vgic_elrsr = 0xFFFF
            cpu.vgic_ap0r[:] = cpu.vgic_ap1r[:] = [0, 0, 0, 0]
        # leave the host's system-register interface enabled for EL1 (v4.5: unconditional)
        ich.write_sre_el2(ich.read_sre_el2() | ICC_SRE_ENABLE)
        ich.write_sre_el1(1)

    def vgic_v3_restore_state(cpu: VgicV3Cpu, ich: IchInterface) -> None:
        ich.write_sre_el1(cpu.vgic_sre)
        live = cpu.live_mask()
        lrs = cpu.all_lrs if lrs_to_restore is None else narrow(cpu.all_lrs, lrs_to_restore(cpu, live))
        if lrs:
            ich.write_hcr(cpu.vgic_hcr)
        if save_vmcr is None or save_vmcr(cpu) is not False:
            ich.write_vmcr(cpu.vgic_vmcr)
        vtr = ich.read_vtr()
        if lrs:
            n = NR_APR_REGS[(vtr >> 29) & 7]
            ich.write_ap1rs(n, cpu.vgic_ap1r)
            if ap0rn_in_use(cpu):
                ich.write_ap0rs(n, cpu.vgic_ap0r)
            ich.write_lrs(lrs & ((2 << (vtr & 0xF)) - 1), cpu.vgic_lr, live)
        if not cpu.vgic_sre:
            # a GICv2 guest must not reach the system-register interface
            ich.write_sre_el2(ich.read_sre_el2() & ~ICC_SRE_ENABLE)

    return vgic_v3_save_state, vgic_v3_restore_state
