"""arch/arm/kvm/coproc.c (+ coproc.h, coproc_a15.c): trapped cp15 emulation on a 32-bit host.

``emulate_cp15`` searches the target table (Cortex-A15: ``a15_regs``), then the generic
``cp15_regs``, with ``find_reg``: a linear walk comparing is_64, CRn, CRm, Op1, Op2 and
moving to the next entry at the first mismatch. Patches 2-5 edit and check the tables
through the ``ws_coproc_tables`` / ``ws_coproc_table_init`` setup hooks and swap the
search through ``ws_find_coproc_reg``.

Provenance of the tables (nothing below is copied; the facts are re-typed):

* [read in source] ``invariant_cp15[]`` in its pre-series order (MIDR, CTR, TCMTR, TLBTR,
  REVIDR, ID_PFR0..ID_MMFR3, ID_ISAR0..5, then CLIDR, AIDR) from two pre-v4.6 copies of
  coproc.c, and its post-patch-2 order from a post-series mainline copy.
* [read in source] the ``cp15_regs[]`` entries, their encodings and accessors, from a
  post-series mainline copy (it has ``check_reg_table`` and ``reg_to_match_value``), and
  an older (v3.1x) copy with ``pm_fake``, CRm64 entries and PAR.
* [inferred] the v4.5 ``cp15_regs[]`` = that mainline table minus the entries added after
  v4.5: ICC_SGI1R / ICC_ASGI1R / ICC_SGI0R / ICC_SRE (32-bit GICv3 support, v4.11+) and
  the CNTP_* entries (32-bit physical timer, later still). 46 entries; PMSELR is index 26.
* [inferred] v4.5 names the PMU accessor ``pm_fake`` (RAZ/WI); later kernels call the
  same function ``trap_raz_wi``. Behaviour is identical.
* [read in source] ``a15_regs[]`` holds only SCTLR (``access_vm_reg``) in later mainline;
  MPIDR, ACTLR, CPACR, L2CTLR, L2ECTLR and CBAR moved to the generic table (v3.13-era,
  [inferred]) and are there in this model too.
* [read in source] v4.5's ``kvm_coproc_table_init`` checks only ``cp15_regs`` (open-coded
  ``cmp_reg`` loop); the post-series code checks ``cp15_regs`` and ``invariant_cp15`` with
  ``check_reg_table`` and every target table in ``kvm_register_target_coproc_table``.
* [read in source] ``cmp_reg``: CRn, CRm, Op1, Op2, then 64-bit before 32-bit.
  64-bit (MCRR/MRRC) registers keep their primary number in CRn (``CRm64(x)`` sets
  CRn = x, CRm = 0), and ``kvm_handle_cp15_64`` decodes the HSR's CRm field into CRn.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import TYPE_CHECKING, Any

from ..errors import GuestFault
from ..events import Ev
from .sys_regs import FindResult

if TYPE_CHECKING:
    from .arm import Vcpu

_ENTRY, _FIELD = int(Ev.SYSREG_ENTRY), int(Ev.SYSREG_FIELD_TEST)


class CoprocParams:
    """struct coproc_params: the decoded trap (v4.5 already names its flag ``is_64bit``)."""

    __slots__ = ("CRn", "CRm", "Op1", "Op2", "Rt1", "Rt2", "is_64bit", "is_write", "val", "val2", "key")

    def __init__(
        self, crn: int, crm: int, op1: int, op2: int, is_64bit: bool, is_write: bool,
        rt1: int = 0, rt2: int = 0, val: int = 0, val2: int = 0,
    ) -> None:
        self.CRn, self.CRm, self.Op1, self.Op2 = crn, crm, op1, op2
        self.is_64bit, self.is_write = is_64bit, is_write
        self.Rt1, self.Rt2 = rt1, rt2
        self.val, self.val2 = val, val2  # *vcpu_reg(Rt1), *vcpu_reg(Rt2)
        self.key = (is_64bit, crn, crm, op1, op2)


@functools.cache
def coproc_reg_type(member: str) -> Any:
    """struct coproc_reg with its 64-bit flag named ``member``.

    v4.5 calls it ``is_64``; patch 4 renames it ``is_64bit``. The class records the name
    in ``WIDTH`` so that code updated by the rename (the core's find_reg and cmp_reg) reads
    whichever member the build has, while code written after the rename (patch 5) names
    ``is_64bit`` and fails on a v4.5 struct, as it would fail to compile."""
    cls = make_dataclass(
        "coproc_reg",
        [("name", str), ("CRn", int), ("CRm", int), ("Op1", int), ("Op2", int), (member, bool),
         ("access", Any, field(default=None))],
        frozen=True, slots=True,
    )
    cls.WIDTH = member
    return cls


def is64(r: Any) -> bool:
    return bool(getattr(r, r.WIDTH))


@dataclass(slots=True)
class CoprocTable:
    """A table as the kernel keeps it: a name and its entries, in order (edited in place)."""

    name: str
    entries: list[Any]


def cmp_reg(a: Any, b: Any) -> int:
    """coproc.h cmp_reg: CRn, CRm, Op1, Op2, then 64-bit entries first."""
    for x, y in ((a.CRn, b.CRn), (a.CRm, b.CRm), (a.Op1, b.Op1), (a.Op2, b.Op2)):
        if x != y:
            return x - y
    return int(is64(b)) - int(is64(a))


def find_reg(p: CoprocParams, table: CoprocTable) -> FindResult:
    """v4.5 find_reg: linear; is_64, CRn, CRm, Op1, Op2 compared in turn, first mismatch moves on."""
    want = p.key
    entries = tests = 0
    for r in table.entries:
        entries += 1
        for got, w in zip((is64(r), r.CRn, r.CRm, r.Op1, r.Op2), want):
            tests += 1
            if got != w:
                break
        else:
            return FindResult(r, ((_ENTRY, entries), (_FIELD, tests)))
    return FindResult(None, ((_ENTRY, entries), (_FIELD, tests)))


# ---- accessors (bool: emulated; the kernel injects UNDEF where we raise) ---------------
Accessor = Callable[["Vcpu", CoprocParams, Any], bool]


def pm_fake(vcpu: Vcpu, p: CoprocParams, r: Any) -> bool:
    """v4.5 answers every PMU register RAZ/WI: the guest sees a PMU with no counters."""
    if not p.is_write:
        p.val = 0
    return True


def access_vm_reg(vcpu: Vcpu, p: CoprocParams, r: Any) -> bool:
    """HCR.TVM traps writes only (until the guest turns its caches on): store them."""
    if not p.is_write:
        raise GuestFault(f"read of {r.name} trapped as a VM register: only writes trap (HCR.TVM)")
    vcpu.sys_regs[r.name] = p.val | (p.val2 << 32 if p.is_64bit else 0)
    return True


def access_actlr(vcpu: Vcpu, p: CoprocParams, r: Any) -> bool:
    """HCR.TAC: read the per-vCPU copy, ignore writes."""
    if not p.is_write:
        p.val = vcpu.sys_regs.get(r.name, 0)
    return True


def access_dcsw(vcpu: Vcpu, p: CoprocParams, r: Any) -> bool:
    """HCR.TSW: set/way maintenance becomes a flush (kvm_set_way_flush); reads are UNDEF."""
    if not p.is_write:
        raise GuestFault(f"guest read of the write-only {r.name} (KVM would inject UNDEF)")
    return True


def read_zero_ignore_write(vcpu: Vcpu, p: CoprocParams, r: Any) -> bool:
    """access_l2ctlr / access_l2ectlr: R/O WI; a one-vCPU guest has 0 in L2CTLR[25:24]."""
    if not p.is_write:
        p.val = 0
    return True


def access_cbar(vcpu: Vcpu, p: CoprocParams, r: Any) -> bool:
    if p.is_write:
        raise GuestFault("guest write to the read-only CBAR (KVM would inject UNDEF)")
    p.val = 0
    return True


# (name, CRn, CRm, Op1, Op2, 64-bit, accessor); None = "swapped by interrupt.S", never trapped
_CP15_REGS: tuple[tuple[str, int, int, int, int, bool, Accessor | None], ...] = (
    ("MPIDR", 0, 0, 0, 5, False, None),
    ("CSSELR", 0, 0, 2, 0, False, None),
    ("ACTLR", 1, 0, 0, 1, False, access_actlr),
    ("CPACR", 1, 0, 0, 2, False, None),
    ("TTBR0", 2, 0, 0, 0, True, access_vm_reg),
    ("TTBR0", 2, 0, 0, 0, False, access_vm_reg),
    ("TTBR1", 2, 0, 0, 1, False, access_vm_reg),
    ("TTBCR", 2, 0, 0, 2, False, access_vm_reg),
    ("TTBR1", 2, 0, 1, 0, True, access_vm_reg),
    ("DACR", 3, 0, 0, 0, False, access_vm_reg),
    ("DFSR", 5, 0, 0, 0, False, access_vm_reg),
    ("IFSR", 5, 0, 0, 1, False, access_vm_reg),
    ("ADFSR", 5, 1, 0, 0, False, access_vm_reg),
    ("AIFSR", 5, 1, 0, 1, False, access_vm_reg),
    ("DFAR", 6, 0, 0, 0, False, access_vm_reg),
    ("IFAR", 6, 0, 0, 2, False, access_vm_reg),
    ("PAR", 7, 0, 0, 0, True, None),
    ("DCISW", 7, 6, 0, 2, False, access_dcsw),
    ("DCCSW", 7, 10, 0, 2, False, access_dcsw),
    ("DCCISW", 7, 14, 0, 2, False, access_dcsw),
    ("L2CTLR", 9, 0, 1, 2, False, read_zero_ignore_write),
    ("L2ECTLR", 9, 0, 1, 3, False, read_zero_ignore_write),
    ("PMCR", 9, 12, 0, 0, False, pm_fake),
    ("PMCNTENSET", 9, 12, 0, 1, False, pm_fake),
    ("PMCNTENCLR", 9, 12, 0, 2, False, pm_fake),
    ("PMOVSR", 9, 12, 0, 3, False, pm_fake),
    ("PMSELR", 9, 12, 0, 5, False, pm_fake),
    ("PMCEID0", 9, 12, 0, 6, False, pm_fake),
    ("PMCEID1", 9, 12, 0, 7, False, pm_fake),
    ("PMCCNTR", 9, 13, 0, 0, False, pm_fake),
    ("PMXEVTYPER", 9, 13, 0, 1, False, pm_fake),
    ("PMXEVCNTR", 9, 13, 0, 2, False, pm_fake),
    ("PMUSERENR", 9, 14, 0, 0, False, pm_fake),
    ("PMINTENSET", 9, 14, 0, 1, False, pm_fake),
    ("PMINTENCLR", 9, 14, 0, 2, False, pm_fake),
    ("PRRR", 10, 2, 0, 0, False, access_vm_reg),
    ("NMRR", 10, 2, 0, 1, False, access_vm_reg),
    ("AMAIR0", 10, 3, 0, 0, False, access_vm_reg),
    ("AMAIR1", 10, 3, 0, 1, False, access_vm_reg),
    ("VBAR", 12, 0, 0, 0, False, None),
    ("CONTEXTIDR", 13, 0, 0, 1, False, access_vm_reg),
    ("TPIDRURW", 13, 0, 0, 2, False, None),
    ("TPIDRURO", 13, 0, 0, 3, False, None),
    ("TPIDRPRW", 13, 0, 0, 4, False, None),
    ("CNTKCTL", 14, 1, 0, 0, False, None),
    ("CBAR", 15, 0, 4, 0, False, access_cbar),
)

_A15_REGS: tuple[tuple[str, int, int, int, int, bool, Accessor | None], ...] = (
    ("SCTLR", 1, 0, 0, 0, False, access_vm_reg),
)

# v4.5 order, unsorted: CLIDR and AIDR (Op1 1) come last, after the CRm 1 and 2 groups
_INVARIANT_CP15: tuple[tuple[str, int, int, int, int], ...] = (
    ("MIDR", 0, 0, 0, 0), ("CTR", 0, 0, 0, 1), ("TCMTR", 0, 0, 0, 2), ("TLBTR", 0, 0, 0, 3),
    ("REVIDR", 0, 0, 0, 6),
    ("ID_PFR0", 0, 1, 0, 0), ("ID_PFR1", 0, 1, 0, 1), ("ID_DFR0", 0, 1, 0, 2), ("ID_AFR0", 0, 1, 0, 3),
    ("ID_MMFR0", 0, 1, 0, 4), ("ID_MMFR1", 0, 1, 0, 5), ("ID_MMFR2", 0, 1, 0, 6), ("ID_MMFR3", 0, 1, 0, 7),
    ("ID_ISAR0", 0, 2, 0, 0), ("ID_ISAR1", 0, 2, 0, 1), ("ID_ISAR2", 0, 2, 0, 2), ("ID_ISAR3", 0, 2, 0, 3),
    ("ID_ISAR4", 0, 2, 0, 4), ("ID_ISAR5", 0, 2, 0, 5),
    ("CLIDR", 0, 0, 1, 1), ("AIDR", 0, 0, 1, 7),
)


def v45_tables() -> dict[str, CoprocTable]:
    """Fresh copies of the v4.5 tables (plugins edit them in place): generic, invariant, target."""
    reg = coproc_reg_type("is_64")
    return {
        "cp15_regs": CoprocTable("cp15_regs", [reg(*e) for e in _CP15_REGS]),
        "invariant_cp15": CoprocTable("invariant_cp15", [reg(*e, False) for e in _INVARIANT_CP15]),
        "a15_regs": CoprocTable("a15_regs", [reg(*e) for e in _A15_REGS]),
    }


def trapped_encodings() -> dict[tuple[bool, int, int, int, int], bool]:
    """Which accesses reach Hyp, by (64-bit, CRn, CRm, Op1, Op2) -> writes only?

    Derived from the vanilla tables: an entry with an accessor is there because v4.5
    traps it (HCR.TAC/TSW/TIDCP/TVM, HDCR.TPM, HSTR.T15); VM registers trap on writes
    only. Every other cp15 access runs natively."""
    out: dict[tuple[bool, int, int, int, int], bool] = {}
    for _name, crn, crm, op1, op2, wide, access in _A15_REGS + _CP15_REGS:
        if access is not None:
            out.setdefault((wide, crn, crm, op1, op2), access is access_vm_reg)
    return out


# ---- userspace API: register ids (KVM_GET_REG_LIST / KVM_GET_ONE_REG) -------------------
KVM_REG_ARM = 0x4000 << 48
KVM_REG_SIZE_U32 = 0x0020 << 48
KVM_REG_ARM_COPROC_SHIFT = 16


def cp15_to_index(r: Any) -> int:
    """A 32-bit cp15 register's id: <crn:4> <crm:4> <opc1:4> <opc2:3> (arm uapi kvm.h)."""
    return KVM_REG_ARM | KVM_REG_SIZE_U32 | (15 << KVM_REG_ARM_COPROC_SHIFT) | (
        r.CRn << 11 | r.CRm << 7 | r.Op1 << 3 | r.Op2
    )


def index_to_params(reg_id: int) -> CoprocParams:
    """index_to_params for a 32-bit id (the only kind the invariant table holds)."""
    return CoprocParams((reg_id >> 11) & 0xF, (reg_id >> 7) & 0xF, (reg_id >> 3) & 0xF, reg_id & 7, False, False)
