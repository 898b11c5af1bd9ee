"""Every hook a worldswitch plugin can implement: the plugin API, version 1.

Hooks are grouped by when they run:

* **set-up hooks** run once per run, through pluggy: when the vCPU is built, before
  the first entry, and when it is put;
* **questions** are asked on the world-switch path, per trap, in the kernel's own
  terms ("which list registers must this exit save?", "can a maintenance interrupt
  be pending?"). With no implementation the vanilla v4.5 path runs unchanged; a
  question nobody answers costs nothing per trap. Where several plugins answer one
  question, the answers are combined as each hook says (a mask that each answer
  narrows, for example), so the result never depends on registration order;
* **events** tell a plugin what happened (guest entry and exit, each kind of trap);
  their return value is ignored.

Every per-trap hook is resolved once per run into a plain callable (see
:mod:`worldswitch.hooks`), so implementations must not rely on being called through
pluggy, and their results are checked against the return annotation: a wrong type is
a :class:`~worldswitch.errors.PluginFailure` that names the plugin and the hook.

A plugin is a module or a class. A class is instantiated once per vCPU of each run, so
its instance owns the plugin's state for that vCPU, as the fields a patch adds to
struct kvm_vcpu do (patch 6's timer cache is an example).

Round trips are memoised (:mod:`worldswitch.memo`): one that starts from a state met
before, with the same trap, is replayed instead of run. So a question's answer must
depend only on its arguments and on the attributes the plugin declares in
``PluginMeta(state=(...))`` (``()`` when it has none); a plugin that answers per-trap
hooks without declaring ``state`` runs with the cache off. Events are never lost: a round
trip during which an event hook fires is not replayed, and an implementation of
``ws_guest_exit`` or ``ws_guest_enter`` turns the cache off for the run.
Questions are asked of the hyp code of both GIC versions: ``vgic_cpu.hyp_gic`` (2 for
GICH, 3 for ICH_*_EL2) tells an implementation which one asks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:
    from .kvm.arch_timer import ArchTimerCpu
    from .kvm.arm import Vcpu
    from .kvm.coproc import CoprocParams, CoprocTable
    from .kvm.sys_regs import FindResult, SysRegParams, SysRegTable
    from .kvm.vgic.mmio import MmioRange
    from .kvm.vgic.vgic import VgicCpuIf, VgicV3Cpu

hookspec = pluggy.HookspecMarker("worldswitch")

#: how the answers of several implementations become one (see :mod:`worldswitch.hooks`)
Combine = Literal["first", "narrow", "widen", "any", "all", "each"]


def per_trap(combine: Combine) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark a spec as called on the world-switch path, with its combination rule."""
    def mark(spec: Callable[..., Any]) -> Callable[..., Any]:
        spec.ws_combine = combine  # type: ignore[attr-defined]
        return spec

    return mark


# ---- set-up: once per run -------------------------------------------------------------
@hookspec
def ws_vcpu_init(vcpu: Vcpu) -> None:
    """The vCPU and its hardware exist; called once before the first entry
    (``kvm_arch_vcpu_init`` and the first ``vcpu_load``). Every implementation is
    called, in pluggy's order (last registered first).

    Example::

        @hookimpl
        def ws_vcpu_init(self, vcpu):
            self.nr_lr = vcpu.platform.nr_lr  # size the plugin's own state to the host
    """


@hookspec
def ws_vgic_dist_ranges(ranges: list[MmioRange], guest_gic: int) -> None:
    """Edit, in place, the emulated distributor's register ranges before the run
    (``vgic_dist_ranges[]`` of ``vgic-v2-emul.c`` when ``guest_gic`` is 2,
    ``vgic_v3_dist_ranges[]`` when it is 3). The list is searched linearly in its order;
    ranges do not overlap, so reordering changes only the cost of a lookup. Patch 12
    moves GICD_SGIR (``SOFTINT``) to the front.

    Example::

        @hookimpl
        def ws_vgic_dist_ranges(ranges, guest_gic):
            if guest_gic == 2:  # put the range the guest hits most first
                i = next(i for i, r in enumerate(ranges) if r.name == "SOFTINT")
                ranges.insert(0, ranges.pop(i))
    """


@hookspec
def ws_coproc_tables(tables: dict[str, CoprocTable]) -> None:
    """Edit, in place, the 32-bit host's cp15 tables before their init-time checks.

    ``tables`` maps ``"cp15_regs"``, ``"invariant_cp15"`` and the target table
    (``"a15_regs"``) to tables whose ``entries`` list may be edited. Patch 2 sorts
    ``invariant_cp15``; patch 4 rebuilds the entries with the member renamed ``is_64bit``.

    Example::

        @hookimpl
        def ws_coproc_tables(tables):
            tables["invariant_cp15"].entries.sort(key=lambda r: (r.CRn, r.CRm, r.Op1, r.Op2))
    """


@hookspec
def ws_coproc_table_init(tables: dict[str, CoprocTable]) -> None:
    """Check the 32-bit host's cp15 tables at init, after every ``ws_coproc_tables`` edit
    and v4.5's own check of ``cp15_regs``; raise
    :class:`~worldswitch.errors.PluginError` to refuse them (the kernel BUG()s).
    Patch 3 enforces that every table is sorted.

    Example::

        @hookimpl
        def ws_coproc_table_init(tables):
            if not tables["cp15_regs"].entries:
                raise PluginError("BUG: empty cp15_regs")
    """


@hookspec
def ws_vcpu_put(vcpu: Vcpu) -> None:
    """``kvm_arch_vcpu_put``: the run ends. Drop any per-load cache here (patch 6 does).

    Example::

        @hookimpl
        def ws_vcpu_put(self, vcpu):
            self.cached = None
    """


# ---- questions: system-register emulation ---------------------------------------------
@per_trap("first")
@hookspec(firstresult=True)
def ws_find_sys_reg(params: SysRegParams, table: SysRegTable) -> FindResult | None:
    """``find_reg`` for a trapped arm64 system register: search ``table`` (the target
    table, then ``sys_reg_descs``) for ``params.key``.

    Return a :class:`~worldswitch.kvm.sys_regs.FindResult` (the entry or None, and the
    comparisons made as (event, count) pairs), or None for v4.5's linear search. The first
    non-None answer wins (pluggy's order: last registered first). Must be a pure function
    of (``params.key``, ``table``): it is memoised per run. Patch 1 answers with a binary
    search.

    Example::

        @hookimpl
        def ws_find_sys_reg(params, table):
            i, calls = my_bsearch(params.key, table.entries)
            return FindResult(table.entries[i] if i is not None else None, ((Ev.BSEARCH_CMP, calls),))
    """


@per_trap("first")
@hookspec(firstresult=True)
def ws_find_coproc_reg(params: CoprocParams, table: CoprocTable) -> FindResult | None:
    """As :func:`ws_find_sys_reg`, for the 32-bit host's cp15 tables (``params.key`` is
    (is_64bit, CRn, CRm, Op1, Op2)); also used for the VMM's invariant-register lookups
    at vCPU init. Patch 5 answers with a binary search.

    Example::

        @hookimpl
        def ws_find_coproc_reg(params, table):
            return None  # keep v4.5's linear search for this table
    """


# ---- questions: the arch timer ----------------------------------------------------------
@per_trap("any")
@hookspec
def ws_timer_skip_active_write(timer: ArchTimerCpu, phys_active: bool) -> bool | None:
    """``kvm_timer_flush_hwstate``, on every entry: the host GIC's active state for the
    timer PPI is about to be set to ``phys_active`` (an ``irq_set_irqchip_state`` call
    and a distributor write). Return True if the hardware is known to hold that state
    already, so the write can be skipped. Skipped if any implementation says True.
    Patch 6 remembers that it last wrote "inactive".

    Example::

        @hookimpl
        def ws_timer_skip_active_write(self, timer, phys_active):
            skip = self.last is phys_active is False
            self.last = phys_active
            return skip
    """


# ---- questions: the vgic hyp save (exit) and restore (entry) ------------------------------
@per_trap("narrow")
@hookspec
def ws_vgic_lrs_to_save(vgic_cpu: VgicCpuIf) -> int | None:
    """``__vgic_v{2,3}_save_state``: the bitmask of list registers whose state this exit
    must save. Vanilla: all of them. 0 means nothing is in flight: only the VMCR is read
    and MISR, EISR, ELRSR and the APRs take their known idle values. Answers are ANDed
    (each narrows the mask). Patches 7 and 13 answer the LRs live at the last entry.

    Example::

        @hookimpl
        def ws_vgic_lrs_to_save(self, vgic_cpu):
            return self.live_lrs if vgic_cpu.hyp_gic == 2 else None
    """


@per_trap("any")
@hookspec
def ws_vgic_expect_mi(vgic_cpu: VgicCpuIf, lrs: int) -> bool | None:
    """``save_maint_int_state``: can a maintenance interrupt be pending, given the LRs
    being saved (``lrs``)? Vanilla asks nothing and reads MISR and EISR on every exit.
    Once anyone answers, the step reads MISR only if some answer is True (answers are
    ORed), and EISR only if MISR reports an EOI; otherwise both are known to be zero.
    Patches 8 and 14: only if underflow was requested (HCR.UIE) or a saved LR asks for
    an EOI notification (EOI set, HW clear).

    Example::

        @hookimpl
        def ws_vgic_expect_mi(vgic_cpu, lrs):
            return bool(vgic_cpu.vgic_hcr & 2)  # only underflow can raise one here
    """


@per_trap("narrow")
@hookspec
def ws_vgic_lrs_to_read(vgic_cpu: VgicCpuIf, lrs: int) -> int | None:
    """``save_lrs``: of the LRs being saved (``lrs``), the bitmask that must be read back
    from the hardware. Vanilla: all of them. The others are known to be empty: only the
    state bits of their in-memory copy are cleared. ``vgic_cpu.vgic_elrsr`` is already
    saved. Answers are ANDed. Patches 10 and 15: not the LRs ELRSR reports empty.

    Example::

        @hookimpl
        def ws_vgic_lrs_to_read(vgic_cpu, lrs):
            return lrs & ~vgic_cpu.vgic_elrsr
    """


@per_trap("widen")
@hookspec
def ws_vgic_lrs_to_wipe(vgic_cpu: VgicCpuIf, lrs: int) -> int | None:
    """``save_lrs``: of the LRs being saved, the bitmask to zero in the hardware on exit.
    Vanilla: none. Answers are ORed. Patches 11 and 16: all of them, so that the entry
    need not write the LRs that are not live.

    Example::

        @hookimpl
        def ws_vgic_lrs_to_wipe(vgic_cpu, lrs):
            return lrs
    """


@per_trap("narrow")
@hookspec
def ws_vgic_lrs_to_restore(vgic_cpu: VgicCpuIf, live_lrs: int) -> int | None:
    """``__vgic_v{2,3}_restore_state``: the bitmask of LRs the entry writes (their
    in-memory value, zero when not live); ``live_lrs`` are those holding a pending or
    active interrupt. Vanilla: all. 0 also skips the HCR and APR writes. Answers are
    ANDed. Patches 7 and 13: none when nothing is live; patches 11 and 16: the live ones.

    Example::

        @hookimpl
        def ws_vgic_lrs_to_restore(vgic_cpu, live_lrs):
            return live_lrs
    """


@per_trap("all")
@hookspec
def ws_vgic_save_vmcr(vgic_cpu: VgicCpuIf) -> bool | None:
    """``__vgic_v{2,3}_save_state`` / ``restore_state``: must this exit save the VMCR
    (GICH_VMCR or ICH_VMCR_EL2) and the next entry restore it? Vanilla v4.5: yes, on every
    world switch. An answer of False (answers combine with ``all``: any False wins) defers
    it to ``vcpu_load`` / ``vcpu_put``: the core then writes the VMCR once when the vCPU
    is loaded and reads it back once when it is put, as Linux did later (v4.12).
    None of the 17 patches answers it.

    Example::

        @hookimpl
        def ws_vgic_save_vmcr(vgic_cpu):
            return False  # the VMCR only changes while the vCPU runs: switch it at load/put
    """


@per_trap("all")
@hookspec
def ws_vgic_v3_save_ap0rn(vgic_cpu: VgicV3Cpu) -> bool | None:
    """``__vgic_v3_save_state`` / ``restore_state``: must the ICH_AP0Rn_EL2 group be
    saved and restored? Vanilla: yes. Skipped if any answer is False. Patch 17: not for
    a GICv2 guest (``vgic_cpu.vgic_sre == 0``), whose active priorities live in AP1Rn.

    Example::

        @hookimpl
        def ws_vgic_v3_save_ap0rn(vgic_cpu):
            return bool(vgic_cpu.vgic_sre)
    """


# ---- events -----------------------------------------------------------------------------
@per_trap("each")
@hookspec
def ws_guest_exit(vcpu: Vcpu, esr: int) -> None:
    """The guest exited and the hyp save path has run; ``handle_exit`` comes next.
    ``esr`` is the syndrome built from the trapping instruction as the hardware builds
    it (exception class in bits [31:26]).

    Example::

        @hookimpl
        def ws_guest_exit(self, vcpu, esr):
            self.by_class[esr >> 26] += 1
    """


@per_trap("each")
@hookspec
def ws_guest_enter(vcpu: Vcpu) -> None:
    """The entry path (timer and vgic flush, hyp restore) has run; the guest resumes.

    Example::

        @hookimpl
        def ws_guest_enter(self, vcpu):
            self.entries += 1
    """


@per_trap("each")
@hookspec
def ws_sysreg_trap(vcpu: Vcpu, params: SysRegParams | CoprocParams) -> None:
    """A trapped MRS/MSR (EC 0x18) or cp15 access (EC 0x3/0x4), before
    ``emulate_sys_reg`` / ``emulate_cp15``.

    Example::

        @hookimpl
        def ws_sysreg_trap(self, vcpu, params):
            self.seen.add(params.key)
    """


@per_trap("each")
@hookspec
def ws_mmio_trap(vcpu: Vcpu, addr: int, is_write: bool, size: int, value: int) -> None:
    """A stage-2 data abort on an emulated device (EC 0x24), before ``io_mem_abort``;
    ``value`` is the written value (0 for a read).

    Example::

        @hookimpl
        def ws_mmio_trap(self, vcpu, addr, is_write, size, value):
            self.log.append((hex(addr), "W" if is_write else "R", size))
    """


@per_trap("each")
@hookspec
def ws_hvc(vcpu: Vcpu, func_id: int) -> None:
    """An HVC exit (EC 0x16 or 0x12), before ``kvm_psci_call`` handles function
    ``func_id`` (x0 or r0).

    Example::

        @hookimpl
        def ws_hvc(self, vcpu, func_id):
            self.calls[func_id] = self.calls.get(func_id, 0) + 1
    """


@per_trap("each")
@hookspec
def ws_wfi(vcpu: Vcpu) -> None:
    """A trapped WFI (EC 0x01), before ``kvm_handle_wfx``.

    Example::

        @hookimpl
        def ws_wfi(self, vcpu):
            self.waits += 1
    """


@per_trap("each")
@hookspec
def ws_timer_update_irq(timer: ArchTimerCpu, level: bool) -> None:
    """``kvm_timer_update_irq``: the virtual timer's output line changed to ``level``.

    Example::

        @hookimpl
        def ws_timer_update_irq(self, timer, level):
            self.edges += 1
    """


def per_trap_hooks() -> Mapping[str, Combine]:
    """Every hook called on the world-switch path, with its combination rule: the one
    list, derived from the specs above (computed once: every run's set-up asks)."""
    return _PER_TRAP


def _per_trap() -> Mapping[str, Combine]:
    return MappingProxyType({name: fn.ws_combine for name, fn in globals().items()
                             if name.startswith("ws_") and hasattr(fn, "ws_combine")})


_PER_TRAP = _per_trap()
