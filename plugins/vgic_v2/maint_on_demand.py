"""Patch 8: arm64: KVM: vgic-v2: Save maintenance interrupt state only if required.

A maintenance interrupt can only be pending if underflow was requested (GICH_HCR.UIE)
or a live LR asked for an EOI notification (EOI set, HW clear). Otherwise MISR and
EISR are known to be zero and are not read; EISR is read only when MISR says EOI.
"""

from worldswitch.plugin import PluginMeta, hookimpl
from worldswitch.plugins.maint import expect_maint_int

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v2-maint-on-demand",
    title="arm64: KVM: vgic-v2: Save maintenance interrupt state only if required",
    subsystem="vgic-v2",
    kind="optimization",
    patch=8,
    requires=("vgic-v2-live-lrs",),
    force_note="Without patch 7 every LR counts as live, so the check runs on every exit; "
    "MISR/EISR are still skipped when no LR asks for an EOI. Guest-visible behaviour is unchanged.",
)

GICH_HCR_UIE = 1 << 1
GICH_LR_EOI = 1 << 19
GICH_LR_HW = 1 << 31
GICH_MISR_EOI = 1


@hookimpl
def vgic_v2_save_maint_int_state(vgic_cpu, gich, lrs):
    if expect_maint_int(vgic_cpu, lrs, GICH_HCR_UIE, GICH_LR_EOI, GICH_LR_HW):
        vgic_cpu.vgic_misr = gich.read_misr()
        if vgic_cpu.vgic_misr & GICH_MISR_EOI:
            eisr = gich.read_eisr(0)
            if vgic_cpu.nr_lr > 32:
                eisr |= gich.read_eisr(1) << 32
            vgic_cpu.vgic_eisr = eisr
        else:
            vgic_cpu.vgic_eisr = 0
    else:
        vgic_cpu.vgic_misr = vgic_cpu.vgic_eisr = 0
    return True
