"""Patch 2: ARM: KVM: Properly sort the invariant table.

v4.5 lists CLIDR and AIDR (CRn 0, CRm 0, Op1 1) after the CRm 1 and CRm 2 ID groups,
out of (CRn, CRm, Op1, Op2) order. Only a linear lookup by id ever used the table, so
nothing broke; the patch moves both right after REVIDR, so that patches 3 and 5 can
rely on the order. No runtime change on its own.
"""

from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="cp15-sort-invariant",
    title="ARM: KVM: Properly sort the invariant table",
    subsystem="cp15",
    kind="correctness",
    patch=2,
    state=(),
)


@hookimpl
def ws_coproc_tables(tables):
    entries = tables["invariant_cp15"].entries
    moved = [r for r in entries if r.name in ("CLIDR", "AIDR")]
    rest = [r for r in entries if r.name not in ("CLIDR", "AIDR")]
    at = next(i for i, r in enumerate(rest) if r.name == "REVIDR") + 1
    entries[:] = rest[:at] + moved + rest[at:]
