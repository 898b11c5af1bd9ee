"""Patch 12: arm64: KVM: vgic-v2: Make GICD_SGIR quicker to hit.

The linear vgic_find_range walk meets GICD_SGIR 12th; SGIs are the hot path, so the
SOFTINT range moves to the head of vgic_dist_ranges[]. Ranges do not overlap, so
every other lookup finds the same range.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v2-sgir-first",
    title="arm64: KVM: vgic-v2: Make GICD_SGIR quicker to hit",
    subsystem="vgic-v2",
    kind="optimization",
    patch=12,
    state=(),
)


@hookimpl
def ws_vgic_dist_ranges(ranges, guest_gic):
    if guest_gic != 2:  # a GICv3 guest raises SGIs through ICC_SGI1R_EL1, not the distributor
        return
    for i, r in enumerate(ranges):
        if r.name == "SOFTINT":
            ranges.insert(0, ranges.pop(i))
            return
