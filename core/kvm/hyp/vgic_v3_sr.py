"""arch/arm64/kvm/hyp/vgic-v3-sr.c: ICH_*_EL2 save on exit and restore on entry.

Vanilla v4.5 sequence (4 LRs, 5 priority bits): exit R VMCR, MISR, EISR, ELRSR,
W HCR, R VTR, R LR3..LR0, R AP0Rn, R AP1Rn, then R/W ICC_SRE_EL2 and W ICC_SRE_EL1;
entry W ICC_SRE_EL1, W HCR, W VMCR, R VTR, W AP1Rn, W AP0Rn, W LR3..LR0, and for a
GICv2 guest R/W ICC_SRE_EL2. Patches 13-17 answer the policy questions through hooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...hw.gic_v3 import ICC_SRE_ENABLE

if TYPE_CHECKING:
    from ...hw.gic_v3 import IchInterface
    from ..vgic.vgic import VgicV3Cpu
    from ..arm import Hooks

ICH_LR_STATE = 3 << 62


def nr_apr_regs(nr_pri_bits: int) -> int:
    """How many ICH_AP0Rn/AP1Rn registers the priority bits need (the kernel's switch)."""
    return {7: 4, 6: 2}.get(nr_pri_bits, 1)


def save_maint_int_state(cpu: VgicV3Cpu, ich: IchInterface, lrs: int) -> None:
    """Vanilla: read MISR and EISR unconditionally."""
    cpu.vgic_misr = ich.read_misr()
    cpu.vgic_eisr = ich.read_eisr()


def vgic_v3_save_state(cpu: VgicV3Cpu, ich: IchInterface, hooks: Hooks) -> None:
    """__vgic_v3_save_state."""
    cpu.vgic_vmcr = ich.read_vmcr()
    lrs = hooks.vgic_v3_lrs_to_save(cpu) if hooks.vgic_v3_lrs_to_save else cpu.all_lrs
    if lrs:
        if not (hooks.vgic_v3_save_maint_int_state and hooks.vgic_v3_save_maint_int_state(cpu, ich, lrs)):
            save_maint_int_state(cpu, ich, lrs)
        cpu.vgic_elrsr = ich.read_elrsr()
        ich.write_hcr(0)
        vtr = ich.read_vtr()
        max_lr_idx = vtr & 0xF
        nr_pri_bits = ((vtr >> 29) & 7) + 1
        needs_read = hooks.vgic_v3_lr_needs_read
        wipe = hooks.vgic_v3_wipe_lr_on_exit
        vgic_lr = cpu.vgic_lr
        for i in range(max_lr_idx, -1, -1):  # the kernel's fall-through switch runs downwards
            if not (lrs >> i) & 1:
                continue
            if needs_read is None or needs_read(cpu, i):
                vgic_lr[i] = ich.read_lr(i)
            else:
                vgic_lr[i] &= ~ICH_LR_STATE
            if wipe is not None and wipe(cpu, i):
                ich.write_lr(i, 0)
        n = nr_apr_regs(nr_pri_bits)
        if hooks.vgic_v3_save_ap0rn is None or hooks.vgic_v3_save_ap0rn(cpu):
            for k in range(n - 1, -1, -1):
                cpu.vgic_ap0r[k] = ich.read_ap0r(k)
        for k in range(n - 1, -1, -1):
            cpu.vgic_ap1r[k] = ich.read_ap1r(k)
        cpu.live_lrs = 0
    else:
        cpu.vgic_misr = cpu.vgic_eisr = 0
        cpu.vgic_elrsr = 0xFFFF
        cpu.vgic_ap0r[:] = cpu.vgic_ap1r[:] = [0, 0, 0, 0]
    # leave the host's system-register interface enabled for EL1 (v4.5: unconditional)
    ich.write_sre_el2(ich.read_sre_el2() | ICC_SRE_ENABLE)
    ich.write_sre_el1(1)


def vgic_v3_restore_state(cpu: VgicV3Cpu, ich: IchInterface, hooks: Hooks) -> None:
    """__vgic_v3_restore_state."""
    ich.write_sre_el1(cpu.vgic_sre)
    vgic_lr = cpu.vgic_lr
    live = 0
    for i in range(cpu.nr_lr):
        if vgic_lr[i] & ICH_LR_STATE:
            live |= 1 << i
    cpu.live_lrs = live
    lrs = hooks.vgic_v3_lrs_to_restore(cpu, live) if hooks.vgic_v3_lrs_to_restore else cpu.all_lrs
    if lrs:
        ich.write_hcr(cpu.vgic_hcr)
    ich.write_vmcr(cpu.vgic_vmcr)
    vtr = ich.read_vtr()
    if lrs:
        n = nr_apr_regs(((vtr >> 29) & 7) + 1)
        for k in range(n - 1, -1, -1):
            ich.write_ap1r(k, cpu.vgic_ap1r[k])
        if hooks.vgic_v3_save_ap0rn is None or hooks.vgic_v3_save_ap0rn(cpu):
            for k in range(n - 1, -1, -1):
                ich.write_ap0r(k, cpu.vgic_ap0r[k])
        for i in range(vtr & 0xF, -1, -1):
            if (lrs >> i) & 1:
                ich.write_lr(i, vgic_lr[i] if (live >> i) & 1 else 0)
    if not cpu.vgic_sre:
        # a GICv2 guest must not reach the system-register interface
        ich.write_sre_el2(ich.read_sre_el2() & ~ICC_SRE_ENABLE)
