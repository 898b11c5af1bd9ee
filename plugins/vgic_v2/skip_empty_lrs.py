"""Patch 10: arm64: KVM: vgic-v2: Do not save an LR known to be empty.

ELRSR (saved first, patch 9) says which LRs the guest has emptied: their content is
known (state invalid), so only the state bits of the in-memory copy are cleared.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v2-skip-empty-lrs",
    title="arm64: KVM: vgic-v2: Do not save an LR known to be empty",
    subsystem="vgic-v2",
    kind="optimization",
    patch=10,
    requires=("vgic-v2-save-elrsr",),
    force_note="The model's save path always reads ELRSR before the LRs, so the skip works without patch 9; "
    "without patch 7 all four LRs are candidates and the three idle ones are skipped too.",
)


@hookimpl
def vgic_v2_lrs_to_read(vgic_cpu, lrs):
    return lrs & ~vgic_cpu.vgic_elrsr
