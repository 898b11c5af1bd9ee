"""Patch 7: arm64: KVM: vgic-v2: Avoid accessing GICH registers.

Track the LRs live at entry (``live_lrs``, computed from the in-memory LRs). With none
live, the exit reads only GICH_VMCR and the entry writes only GICH_VMCR; with some,
only the live LRs are read back on exit.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v2-live-lrs",
    title="arm64: KVM: vgic-v2: Avoid accessing GICH registers",
    subsystem="vgic-v2",
    kind="optimization",
    patch=7,
)


@hookimpl
def vgic_v2_lrs_to_save(vgic_cpu):
    return vgic_cpu.live_lrs


@hookimpl
def vgic_v2_lrs_to_restore(vgic_cpu, live_lrs):
    # with something live, every LR is written (a live value or zero), as in the patch
    return vgic_cpu.all_lrs if live_lrs else 0
