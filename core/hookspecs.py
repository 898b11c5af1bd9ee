"""Every hook a worldswitch plugin can implement.

Three kinds:

* **setup hooks** run once per run, when the machine is built (table edits, checks,
  extra per-vCPU state);
* **policy hooks** answer one question of the vanilla v4.5 path ("which LRs must be
  saved?"). They are ``firstresult``: the first implementation that returns something
  other than None decides; with none, the vanilla answer is used;
* **event hooks** observe the run loop (guest entry and exit, each kind of trap).

Per-trap hooks are resolved once per run into plain callables (see
:mod:`worldswitch.hooks`): a hook nobody implements costs nothing per trap. Policy
hooks must therefore not rely on being called through pluggy, and the search hooks
(``kvm_find_sys_reg``, ``kvm_find_coproc_reg``) must be pure: the core memoises them per
(table, key) for the run.
"""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("worldswitch")


# ---- setup hooks -------------------------------------------------------------------
@hookspec
def ws_vcpu_init(vcpu: Any) -> None:
    """The vCPU and its hardware exist; called once before the first entry.

    Add the per-vCPU fields your patch introduces here (patch 6 adds
    ``vcpu.timer.active_cleared_last``)."""


@hookspec
def vgic_v2_dist_ranges(ranges: list) -> None:
    """Edit, in place, the GICv2 distributor's ``vgic_dist_ranges[]`` before the run.

    The list holds :class:`~worldswitch.kvm.vgic.mmio.MmioRange` in search order; the
    vanilla order puts GICD_SGIR 12th. Patch 12 moves it to the front."""


@hookspec
def kvm_coproc_tables(tables: dict) -> None:
    """Edit, in place, the 32-bit host's cp15 tables before their init-time checks.

    ``tables`` maps ``"cp15_regs"``, ``"invariant_cp15"`` and the target table
    (``"a15_regs"``) to :class:`~worldswitch.kvm.coproc.CoprocTable`; edit
    ``table.entries`` (a list) in place. Patch 2 sorts ``invariant_cp15``; patch 4
    rebuilds the entries with the member renamed ``is_64bit``."""


@hookspec
def kvm_coproc_table_init(tables: dict) -> None:
    """Check the 32-bit host's cp15 tables at init, after every ``kvm_coproc_tables``
    edit and v4.5's own check of ``cp15_regs``; raise to refuse them (the kernel BUG()s).
    Patch 3 enforces that every table is sorted."""


# ---- policy hooks: system-register search ---------------------------------------------
@hookspec(firstresult=True)
def kvm_find_sys_reg(params: Any, table: Any) -> Any:
    """Search ``table`` for the trapped arm64 register in ``params``.

    Return a :class:`~worldswitch.kvm.sys_regs.FindResult` (found entry or None, plus
    the comparisons made as (event, count) pairs) or None for the vanilla linear search.
    Must be a pure function of (params.key, table): it is memoised per run."""


@hookspec(firstresult=True)
def kvm_find_coproc_reg(params: Any, table: Any) -> Any:
    """Like ``kvm_find_sys_reg``, for the 32-bit host's cp15 tables: ``params`` is a
    :class:`~worldswitch.kvm.coproc.CoprocParams` (``key`` = (is_64bit, CRn, CRm, Op1,
    Op2)). Used for emulate_cp15 (target table, then ``cp15_regs``) and for the VMM's
    invariant-register lookups by id at vCPU init."""


# ---- policy hooks: timer -----------------------------------------------------------
@hookspec(firstresult=True)
def kvm_timer_skip_active_write(timer: Any, phys_active: bool) -> bool | None:
    """On every entry, before programming the timer PPI's active state in the host GIC:
    return True to skip the irq_set_irqchip_state call (patch 6's cache)."""


@hookspec
def kvm_timer_update_irq(timer: Any, level: bool) -> None:
    """The virtual timer's output line changed level."""


@hookspec
def kvm_timer_vcpu_put(timer: Any) -> None:
    """The vCPU is being put (end of the run, or a return to userspace)."""


# ---- policy hooks: vgic-v2 hyp save/restore (GICH) ------------------------------------
@hookspec(firstresult=True)
def vgic_v2_lrs_to_save(vgic_cpu: Any) -> int | None:
    """Bitmask of LRs the exit must save. Vanilla: all. 0 means nothing is in flight and
    only GICH_VMCR is read (patch 7: the LRs live at the last entry)."""


@hookspec(firstresult=True)
def vgic_v2_save_maint_int_state(vgic_cpu: Any, gich: Any, lrs: int) -> bool | None:
    """Save MISR/EISR into ``vgic_cpu`` yourself and return True, or None for the vanilla
    unconditional reads (patch 8 reads them only when a maintenance interrupt is expected)."""


@hookspec(firstresult=True)
def vgic_v2_save_elrsr(vgic_cpu: Any, gich: Any) -> bool | None:
    """Save ELRSR into ``vgic_cpu.vgic_elrsr`` yourself and return True (patch 9's own step)."""


@hookspec(firstresult=True)
def vgic_v2_lrs_to_read(vgic_cpu: Any, lrs: int) -> int | None:
    """Of the LRs being saved (``lrs``), the bitmask that must be read back from GICH.
    Vanilla: all of them. The others only get their state cleared in memory (patch 10:
    not those ELRSR reports empty)."""


@hookspec(firstresult=True)
def vgic_v2_lrs_to_wipe(vgic_cpu: Any, lrs: int) -> int | None:
    """Of the LRs being saved, the bitmask to zero in GICH on exit. Vanilla: none
    (patch 11: all of them, so the entry need not write the unused ones)."""


@hookspec(firstresult=True)
def vgic_v2_lrs_to_restore(vgic_cpu: Any, live_lrs: int) -> int | None:
    """Bitmask of LRs the entry writes. Vanilla: all (live value or 0). 0 skips the HCR,
    APR and LR writes (patch 7 when nothing is live); patch 11: only the live ones."""


# ---- policy hooks: vgic-v3 hyp save/restore (ICH_*_EL2) --------------------------------
@hookspec(firstresult=True)
def vgic_v3_lrs_to_save(vgic_cpu: Any) -> int | None:
    """As ``vgic_v2_lrs_to_save``, for ICH_LRn_EL2 (patch 13)."""


@hookspec(firstresult=True)
def vgic_v3_save_maint_int_state(vgic_cpu: Any, ich: Any, lrs: int) -> bool | None:
    """As ``vgic_v2_save_maint_int_state``, for ICH_MISR_EL2/ICH_EISR_EL2 (patch 14)."""


@hookspec(firstresult=True)
def vgic_v3_lrs_to_read(vgic_cpu: Any, lrs: int) -> int | None:
    """As ``vgic_v2_lrs_to_read``, with ICH_ELRSR_EL2 (patch 15)."""


@hookspec(firstresult=True)
def vgic_v3_lrs_to_wipe(vgic_cpu: Any, lrs: int) -> int | None:
    """As ``vgic_v2_lrs_to_wipe`` (patch 16)."""


@hookspec(firstresult=True)
def vgic_v3_lrs_to_restore(vgic_cpu: Any, live_lrs: int) -> int | None:
    """As ``vgic_v2_lrs_to_restore`` (patches 13 and 16)."""


@hookspec(firstresult=True)
def vgic_v3_save_ap0rn(vgic_cpu: Any) -> bool | None:
    """Save and restore the ICH_AP0Rn_EL2 group? Vanilla: yes. Patch 17: not for a GICv2
    guest (``vgic_cpu.vgic_sre == 0``), whose active priorities all live in AP1Rn."""


# ---- event hooks: the run loop -----------------------------------------------------------
@hookspec
def ws_guest_exit(vcpu: Any, esr: int) -> None:
    """The guest exited; the hyp save path has run. ``esr`` is the syndrome (EC in bits
    [31:26]) built from the decoded instruction."""


@hookspec
def ws_guest_enter(vcpu: Any) -> None:
    """The entry path has run; the guest resumes next."""


@hookspec
def ws_hvc(vcpu: Any, func_id: int) -> None:
    """An HVC exit, before ``kvm_psci_call`` handles function ``func_id`` (x0)."""


@hookspec
def ws_sysreg_trap(vcpu: Any, params: Any) -> None:
    """A trapped MRS/MSR (EC 0x18) or cp15 access, before ``emulate_sys_reg``."""


@hookspec
def ws_mmio_trap(vcpu: Any, addr: int, is_write: bool, size: int, value: int) -> None:
    """A stage-2 data abort on an emulated device, before ``io_mem_abort``."""


@hookspec
def ws_wfi(vcpu: Any) -> None:
    """A trapped WFI, before ``kvm_handle_wfx``."""


#: hooks resolved into plain callables for the hot path, with their vanilla meaning
PER_TRAP_HOOKS = (
    "kvm_find_sys_reg",
    "kvm_find_coproc_reg",
    "kvm_timer_skip_active_write",
    "kvm_timer_update_irq",
    "vgic_v2_lrs_to_save",
    "vgic_v2_save_maint_int_state",
    "vgic_v2_save_elrsr",
    "vgic_v2_lrs_to_read",
    "vgic_v2_lrs_to_wipe",
    "vgic_v2_lrs_to_restore",
    "vgic_v3_lrs_to_save",
    "vgic_v3_save_maint_int_state",
    "vgic_v3_lrs_to_read",
    "vgic_v3_lrs_to_wipe",
    "vgic_v3_lrs_to_restore",
    "vgic_v3_save_ap0rn",
    "ws_guest_exit",
    "ws_guest_enter",
    "ws_hvc",
    "ws_sysreg_trap",
    "ws_mmio_trap",
    "ws_wfi",
)
