"""Patch 15: arm64: KVM: vgic-v3: Do not save an LR known to be empty.

A live LR whose ICH_ELRSR_EL2 bit is set is not read back; only its state bits are
cleared in memory.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v3-skip-empty-lrs",
    title="arm64: KVM: vgic-v3: Do not save an LR known to be empty",
    subsystem="vgic-v3",
    kind="optimization",
    patch=15,
    requires=("vgic-v3-live-lrs", "vgic-v3-maint-on-demand"),
    force_note="ELRSR is read before the LRs at every level in the model, so the skip works without 13 and 14; "
    "without 13 the idle LRs are skipped as well.",
)


@hookimpl
def vgic_v3_lrs_to_read(vgic_cpu, lrs):
    return lrs & ~vgic_cpu.vgic_elrsr
