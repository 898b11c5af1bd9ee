"""Patch 13: arm64: KVM: vgic-v3: Avoid accessing ICH registers.

As patch 7 for GICv3: with no LR live at entry, the exit reads only ICH_VMCR_EL2 and
the entry reads ICH_VTR_EL2 and writes ICH_VMCR_EL2. It reuses patch 7's ``live_lrs``
field of struct vgic_cpu.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v3-live-lrs",
    title="arm64: KVM: vgic-v3: Avoid accessing ICH registers",
    subsystem="vgic-v3",
    kind="optimization",
    patch=13,
    requires=("vgic-v2-live-lrs",),
    force_note="The model keeps live_lrs in the core vgic_cpu, so without patch 7 it works the same: "
    "the dependency is only on the struct field the kernel patch reuses.",
)


@hookimpl
def vgic_v3_lrs_to_save(vgic_cpu):
    return vgic_cpu.live_lrs


@hookimpl
def vgic_v3_lrs_to_restore(vgic_cpu, live_lrs):
    # inferred (patches.md): like patch 7, every LR is written while something is live
    return vgic_cpu.all_lrs if live_lrs else 0
