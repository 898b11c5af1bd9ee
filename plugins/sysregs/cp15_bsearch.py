"""Patch 5: ARM: KVM: Switch the CP reg search to be a binary search.

Key = CRn<<11 | CRm<<7 | Op1<<4 | Op2<<1 | !is_64bit (reg_to_match_value, read from the
params and from the entries alike, hence patch 4), lib bsearch with a comparator
returning key - entry key. emulate_cp15 still searches the target table, then
cp15_regs; the userspace lookups (get_invariant_cp15 among them) use it too, which is
why the invariant table must be sorted (patch 2, enforced by patch 3).
"""

from worldswitch.errors import PluginError
from worldswitch.events import Ev
from worldswitch.kvm.sys_regs import FindResult
from worldswitch.plugin import PluginMeta, hookimpl
from worldswitch.plugins.sysregs.bsearch import bsearch

WORLDSWITCH_PLUGIN = PluginMeta(
    name="cp15-bsearch",
    title="ARM: KVM: Switch the CP reg search to be a binary search",
    subsystem="cp15",
    kind="optimization",
    patch=5,
    state=(),
    requires=("cp15-sort-invariant", "cp15-check-sorted", "cp15-rename-is64bit"),
    force_note=(
        "without cp15-rename-is64bit it does not build (struct coproc_reg has no is_64bit); "
        "without cp15-sort-invariant (and cp15-check-sorted) KVM_GET_ONE_REG(CLIDR) fails with ENOENT"
    ),
)

BSEARCH_CMP = int(Ev.BSEARCH_CMP)


def reg_to_match_value(x):
    return (x.CRn << 11) | (x.CRm << 7) | (x.Op1 << 4) | (x.Op2 << 1) | (not x.is_64bit)


@hookimpl
def ws_coproc_table_init(tables):
    # the C macro reads ->is_64bit from struct coproc_reg: a compile error on a v4.5 struct
    for table in tables.values():
        if table.entries and not hasattr(table.entries[0], "is_64bit"):
            raise PluginError("cp15-bsearch: struct coproc_reg has no member is_64bit (needs cp15-rename-is64bit)")


@hookimpl
def ws_find_coproc_reg(params, table):
    idx, calls = bsearch(reg_to_match_value(params), table.entries, reg_to_match_value)
    return FindResult(None if idx is None else table.entries[idx], ((BSEARCH_CMP, calls),))
