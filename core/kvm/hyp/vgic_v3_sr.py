"""arch/arm64/kvm/hyp/vgic-v3-sr.c: ICH_*_EL2 save on exit and restore on entry.

Vanilla v4.5 sequence (4 LRs, 5 priority bits): exit R VMCR, MISR, EISR, ELRSR,
W HCR, R VTR, R LR3..LR0, R AP0Rn, R AP1Rn, then R/W ICC_SRE_EL2 and W ICC_SRE_EL1;
entry W ICC_SRE_EL1, W HCR, W VMCR, R VTR, W AP1Rn, W AP0Rn, W LR3..LR0, and for a
GICv2 guest R/W ICC_SRE_EL2. Patches 13-17 answer the policy questions through hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ...hw.gic_v3 import ICC_SRE_ENABLE

if TYPE_CHECKING:
    from ...hooks import Hooks
    from ...hw.gic_v3 import IchInterface
    from ..vgic.vgic import VgicV3Cpu



# How many ICH_AP0Rn/AP1Rn registers the priority bits need (the kernel's switch on
# ICH_VTR_EL2.PRIbits): 7 bits -> 4, 6 bits -> 2, 5 bits -> 1; indexed by PRIbits.
NR_APR_REGS = (1, 1, 1, 1, 1, 2, 4, 4)


def save_maint_int_state(cpu: VgicV3Cpu, ich: IchInterface, lrs: int) -> None:
    """Vanilla: read MISR and EISR unconditionally."""
    cpu.vgic_misr = ich.read_misr()
    cpu.vgic_eisr = ich.read_eisr()


def build_vgic_v3_sr(
    hooks: Hooks,
) -> tuple[Callable[[VgicV3Cpu, IchInterface], None], Callable[[VgicV3Cpu, IchInterface], None]]:
    """Return (__vgic_v3_save_state, __vgic_v3_restore_state) with the hooks bound."""
    lrs_to_save = hooks.vgic_v3_lrs_to_save
    maint = hooks.vgic_v3_save_maint_int_state
    lrs_to_read = hooks.vgic_v3_lrs_to_read
    lrs_to_wipe = hooks.vgic_v3_lrs_to_wipe
    lrs_to_restore = hooks.vgic_v3_lrs_to_restore
    ap0rn = hooks.vgic_v3_save_ap0rn

    def vgic_v3_save_state(cpu: VgicV3Cpu, ich: IchInterface) -> None:
        cpu.vgic_vmcr = ich.read_vmcr()
        lrs = cpu.all_lrs if lrs_to_save is None else lrs_to_save(cpu)
        if lrs:
            if maint is None or not maint(cpu, ich, lrs):
                save_maint_int_state(cpu, ich, lrs)
            cpu.vgic_elrsr = ich.read_elrsr()
            ich.write_hcr(0)
            vtr = ich.read_vtr()
            lrs &= (2 << (vtr & 0xF)) - 1  # max_lr_idx bounds the kernel's switch
            read = lrs if lrs_to_read is None else lrs_to_read(cpu, lrs)
            ich.read_lrs(read, cpu.vgic_lr)
            if read != lrs:
                cpu.clear_state(lrs & ~read)
            if lrs_to_wipe is not None:
                ich.zero_lrs(lrs_to_wipe(cpu, lrs))
            n = NR_APR_REGS[(vtr >> 29) & 7]
            if ap0rn is None or ap0rn(cpu):
                ich.read_ap0rs(n, cpu.vgic_ap0r)
            ich.read_ap1rs(n, cpu.vgic_ap1r)
            cpu.live_lrs = 0
        else:
            cpu.vgic_misr = cpu.vgic_eisr = 0
            cpu.vgic_elrsr = 0xFFFF
            cpu.vgic_ap0r[:] = cpu.vgic_ap1r[:] = [0, 0, 0, 0]
        # leave the host's system-register interface enabled for EL1 (v4.5: unconditional)
        ich.write_sre_el2(ich.read_sre_el2() | ICC_SRE_ENABLE)
        ich.write_sre_el1(1)

    def vgic_v3_restore_state(cpu: VgicV3Cpu, ich: IchInterface) -> None:
        ich.write_sre_el1(cpu.vgic_sre)
        vgic_lr = cpu.vgic_lr
        live = cpu.live_lrs = cpu.live_mask()
        lrs = cpu.all_lrs if lrs_to_restore is None else lrs_to_restore(cpu, live)
        if lrs:
            ich.write_hcr(cpu.vgic_hcr)
        ich.write_vmcr(cpu.vgic_vmcr)
        vtr = ich.read_vtr()
        if lrs:
            n = NR_APR_REGS[(vtr >> 29) & 7]
            ich.write_ap1rs(n, cpu.vgic_ap1r)
            if ap0rn is None or ap0rn(cpu):
                ich.write_ap0rs(n, cpu.vgic_ap0r)
            ich.write_lrs(lrs & ((2 << (vtr & 0xF)) - 1), vgic_lr, live)
        if not cpu.vgic_sre:
            # a GICv2 guest must not reach the system-register interface
            ich.write_sre_el2(ich.read_sre_el2() & ~ICC_SRE_ENABLE)

    return vgic_v3_save_state, vgic_v3_restore_state
