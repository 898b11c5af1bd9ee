"""Patch 14: arm64: KVM: vgic-v3: Save maintenance interrupt state only if required.

ICH_MISR_EL2 is read only when underflow (ICH_HCR_UIE) or an EOI notification (a live
LR with EOI set and HW clear) was requested; ICH_EISR_EL2 only when MISR says EOI.
"""

from worldswitch.plugin import PluginMeta, hookimpl
from worldswitch.plugins.maint import expect_maint_int

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v3-maint-on-demand",
    title="arm64: KVM: vgic-v3: Save maintenance interrupt state only if required",
    subsystem="vgic-v3",
    kind="optimization",
    patch=14,
    requires=("vgic-v3-live-lrs",),
    force_note="Without patch 13 every LR counts as live: the check runs on every exit and MISR/EISR are "
    "skipped when no LR asks for an EOI. Guest-visible behaviour is unchanged.",
)

ICH_HCR_UIE = 1 << 1
ICH_LR_EOI = 1 << 41
ICH_LR_HW = 1 << 61
ICH_MISR_EOI = 1


@hookimpl
def vgic_v3_save_maint_int_state(vgic_cpu, ich, lrs):
    if expect_maint_int(vgic_cpu, lrs, ICH_HCR_UIE, ICH_LR_EOI, ICH_LR_HW):
        vgic_cpu.vgic_misr = ich.read_misr()
        vgic_cpu.vgic_eisr = ich.read_eisr() if vgic_cpu.vgic_misr & ICH_MISR_EOI else 0
    else:
        vgic_cpu.vgic_misr = vgic_cpu.vgic_eisr = 0
    return True
