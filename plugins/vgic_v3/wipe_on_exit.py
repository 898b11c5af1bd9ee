"""Patch 16: arm64: KVM: vgic-v3: Only wipe LRs on vcpu exit.

Zero each used ICH_LRn_EL2 on exit and write only the live ones on entry.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v3-wipe-on-exit",
    title="arm64: KVM: vgic-v3: Only wipe LRs on vcpu exit",
    subsystem="vgic-v3",
    kind="optimization",
    patch=16,
    requires=("vgic-v3-skip-empty-lrs",),
    force_note="Without patch 15 each saved LR is read and then wiped; without 13 all LRs are. "
    "Guest-visible behaviour is unchanged.",
)


@hookimpl
def vgic_v3_lrs_to_wipe(vgic_cpu, lrs):
    return lrs


@hookimpl
def vgic_v3_lrs_to_restore(vgic_cpu, live_lrs):
    return live_lrs
