"""Patch 3: ARM: KVM: Enforce sorting of all CP tables.

v4.5 checked only cp15_regs at init. The patch adds check_reg_table (every neighbouring
pair strictly ascending per cmp_reg: CRn, CRm, Op1, Op2, 64-bit first) and BUG_ONs on
cp15_regs, invariant_cp15 and, at registration, every target table. Init-time only.
Without patch 2 the v4.5 invariant table fails the check: the kernel would not boot.
"""

from worldswitch.errors import PluginError
from worldswitch.kvm.coproc import cmp_reg
from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="cp15-check-sorted",
    title="ARM: KVM: Enforce sorting of all CP tables",
    subsystem="cp15",
    kind="correctness",
    patch=3,
    state=(),
    requires=("cp15-sort-invariant",),
    force_note="without cp15-sort-invariant the v4.5 invariant_cp15 is unsorted: BUG at init",
)


def check_reg_table(entries):
    """Index of the first entry not strictly above its predecessor, or None."""
    for i in range(1, len(entries)):
        if cmp_reg(entries[i - 1], entries[i]) >= 0:
            return i
    return None


@hookimpl
def ws_coproc_table_init(tables):
    for table in tables.values():
        i = check_reg_table(table.entries)
        if i is not None:
            prev, cur = table.entries[i - 1], table.entries[i]
            raise PluginError(
                f"BUG at kvm_coproc_table_init: reg table {table.name} out of order at index {i} "
                f"({cur.name} after {prev.name})"
            )
