"""Patch 4: ARM: KVM: Rename struct coproc_reg::is_64 to is_64bit.

A pure rename, so that struct coproc_reg and struct coproc_params share the member
name and one macro (patch 5's reg_to_match_value) can read either. The table entries
are rebuilt with the renamed struct; the core's users read the member by whatever name
the struct declares, as the patch updates them. No behaviour or count changes.
"""

from worldswitch.kvm.coproc import coproc_reg_type, is64
from worldswitch.plugin import PluginMeta, hookimpl

WORLDSWITCH_PLUGIN = PluginMeta(
    name="cp15-rename-is64bit",
    title="ARM: KVM: Rename struct coproc_reg::is_64 to is_64bit",
    subsystem="cp15",
    kind="refactor",
    patch=4,
    state=(),
    countable=False,
)


@hookimpl
def ws_coproc_tables(tables):
    renamed = coproc_reg_type("is_64bit")
    for table in tables.values():
        table.entries[:] = [renamed(r.name, r.CRn, r.CRm, r.Op1, r.Op2, is64(r), r.access) for r in table.entries]
