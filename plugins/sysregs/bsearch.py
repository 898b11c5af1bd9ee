"""Patch 1: arm64: KVM: Switch the sys_reg search to be a binary search.

Key = Op0<<14 | Op1<<11 | CRn<<7 | CRm<<3 | Op2 (reg_to_match_value); the kernel's lib
bsearch with a comparator returning key - entry key. Same two tables in the same order
(target table, then sys_reg_descs), which the init-time sort check keeps sorted.
"""

from worldswitch.events import BSEARCH_CMP
from worldswitch.kvm.sys_regs import FindResult
from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="sysreg-bsearch",
    title="arm64: KVM: Switch the sys_reg search to be a binary search",
    subsystem="sysregs",
    kind="optimization",
    patch=1,
    state=(),
)


def reg_to_match_value(op0, op1, crn, crm, op2):
    return (op0 << 14) | (op1 << 11) | (crn << 7) | (crm << 3) | op2


def bsearch(key, entries, entry_key):
    """lib/bsearch.c: returns (index or None, comparator calls)."""
    start, end, calls = 0, len(entries), 0
    while start < end:
        mid = start + (end - start) // 2
        calls += 1
        result = key - entry_key(entries[mid])
        if result < 0:
            end = mid
        elif result > 0:
            start = mid + 1
        else:
            return mid, calls
    return None, calls


@hookimpl
def ws_find_sys_reg(params, table):
    key = reg_to_match_value(*params.key)
    idx, calls = bsearch(key, table.entries, lambda r: reg_to_match_value(r.op0, r.op1, r.crn, r.crm, r.op2))
    return FindResult(None if idx is None else table.entries[idx], ((BSEARCH_CMP, calls),))
