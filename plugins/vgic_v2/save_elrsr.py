"""Patch 9: arm64: KVM: vgic-v2: Move GICH_ELRSR saving to its own function.

A refactor: ELRSR is saved by a step of its own (``save_elrsr``), which patch 10 needs
to have run before the LRs are saved. The accesses are the same: one ELRSR0 read (and
ELRSR1 past 32 LRs) per exit with live LRs.
"""

from worldswitch.kvm.hyp.vgic_v2_sr import save_elrsr
from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v2-save-elrsr",
    title="arm64: KVM: vgic-v2: Move GICH_ELRSR saving to its own function",
    subsystem="vgic-v2",
    kind="refactor",
    patch=9,
    requires=("vgic-v2-live-lrs", "vgic-v2-maint-on-demand"),
    force_note="A refactor: without 7 and 8 it still saves ELRSR exactly as vanilla does; every counter is unchanged.",
)


@hookimpl
def vgic_v2_save_elrsr(vgic_cpu, gich):
    # the step the patch creates is the core's save_elrsr; the refactor only calls it on its own
    save_elrsr(vgic_cpu, gich)
    return True
