"""Patch 9: arm64: KVM: vgic-v2: Move GICH_ELRSR saving to its own function.

A refactor: ELRSR gets a step of its own (``save_elrsr``), which patch 10 needs to have
run before the LRs are saved. The model's save path is already written with that step
(``worldswitch.kvm.hyp.vgic_v2_sr.save_elrsr``) and the accesses are the same, so the
plugin implements no hook: it is in the series so that the dependency chain 7-11 is the
kernel's.
"""

from __future__ import annotations

from worldswitch.plugin import PluginMeta

WORLDSWITCH_PLUGIN = PluginMeta(
    name="vgic-v2-save-elrsr",
    title="arm64: KVM: vgic-v2: Move GICH_ELRSR saving to its own function",
    subsystem="vgic-v2",
    kind="refactor",
    patch=9,
    state=(),
    requires=("vgic-v2-live-lrs", "vgic-v2-maint-on-demand"),
    force_note="A refactor: it changes nothing countable, with or without 7 and 8.",
    countable=False,
)
