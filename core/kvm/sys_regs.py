"""arch/arm64/kvm/sys_regs.c: trapped system-register emulation.

``emulate_sys_reg`` searches the target table (generic v8: ACTLR_EL1 only), then the
121-entry ``sys_reg_descs``, by ``find_reg``: a linear walk comparing Op0, Op1, CRn,
CRm, Op2 and moving to the next entry at the first mismatch. Patch 1 swaps the search
through the ``ws_find_sys_reg`` hook.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..errors import GuestFault
from ..events import SYSREG_ENTRY, SYSREG_FIELD_TEST
from .vgic.vgic_v3_emul import vgic_v3_dispatch_sgi

if TYPE_CHECKING:
    from .arm import Vcpu


@dataclass(frozen=True, slots=True)
class SysRegDesc:
    """struct sys_reg_desc: encoding plus the accessor the trap calls."""

    name: str
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    access: Callable[[Vcpu, SysRegParams, SysRegDesc], bool]


class SysRegParams:
    """struct sys_reg_params: the decoded trap."""

    __slots__ = ("op0", "op1", "crn", "crm", "op2", "is_write", "regval", "key")

    def __init__(self, op0: int, op1: int, crn: int, crm: int, op2: int, is_write: bool, regval: int) -> None:
        self.op0, self.op1, self.crn, self.crm, self.op2 = op0, op1, crn, crm, op2
        self.is_write = is_write
        self.regval = regval
        self.key = (op0, op1, crn, crm, op2)


@dataclass(frozen=True, slots=True)
class SysRegTable:
    """A table as the kernel keeps it: a name (for messages) and its entries in order."""

    name: str
    entries: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class FindResult:
    """What a search found (or None) and what it cost, as (event, count) pairs."""

    entry: Any
    costs: tuple[tuple[int, int], ...]


FIELDS = ("op0", "op1", "crn", "crm", "op2")


def find_reg(params: SysRegParams, table: SysRegTable) -> FindResult:
    """v4.5 find_reg: linear, field by field, first mismatch moves on."""
    key = params.key
    entries = 0
    tests = 0
    for r in table.entries:
        entries += 1
        for field, want in zip(FIELDS, key):
            tests += 1
            if getattr(r, field) != want:
                break
        else:
            return FindResult(r, ((SYSREG_ENTRY, entries), (SYSREG_FIELD_TEST, tests)))
    return FindResult(None, ((SYSREG_ENTRY, entries), (SYSREG_FIELD_TEST, tests)))


def check_sysreg_table(table: SysRegTable) -> None:
    """The init-time order check the kernel BUG()s on (pre-existing in v4.5 for arm64):
    strictly ascending by (Op0, Op1, CRn, CRm, Op2)."""
    def key(r: SysRegDesc) -> tuple[int, ...]:
        return (r.op0, r.op1, r.crn, r.crm, r.op2)

    for i in range(1, len(table.entries)):
        if key(table.entries[i - 1]) >= key(table.entries[i]):
            raise RuntimeError(f"BUG: {table.name} is not sorted at index {i} ({table.entries[i].name})")


# ---- accessors -------------------------------------------------------------------------
def trap_raz_wi(vcpu: Vcpu, p: SysRegParams, r: SysRegDesc) -> bool:
    if not p.is_write:
        p.regval = 0
    return True


def access_vm_reg(vcpu: Vcpu, p: SysRegParams, r: SysRegDesc) -> bool:
    """Registers KVM keeps in the vCPU context: write stores, read returns."""
    if p.is_write:
        vcpu.sys_regs[r.name] = p.regval
    else:
        p.regval = vcpu.sys_regs.get(r.name, 0)
    return True


def access_pmu_reg(vcpu: Vcpu, p: SysRegParams, r: SysRegDesc) -> bool:
    """v4.5 traps the PMU registers (MDCR_EL2.TPM) and answers RAZ/WI."""
    return trap_raz_wi(vcpu, p, r)


def access_gic_sgi(vcpu: Vcpu, p: SysRegParams, r: SysRegDesc) -> bool:
    if not p.is_write:
        raise GuestFault("guest read ICC_SGI1R_EL1, a write-only register (KVM would inject UNDEF)")
    vgic_v3_dispatch_sgi(vcpu.dist, p.regval)
    return True


def access_gic_sre(vcpu: Vcpu, p: SysRegParams, r: SysRegDesc) -> bool:
    if not p.is_write:
        p.regval = getattr(vcpu.vgic_cpu, "vgic_sre", 0)
    return True


def _accessor(name: str) -> Callable[[Vcpu, SysRegParams, SysRegDesc], bool]:
    if name == "ICC_SGI1R_EL1":
        return access_gic_sgi
    if name == "ICC_SRE_EL1":
        return access_gic_sre
    if name.startswith("PM"):
        return access_pmu_reg
    return access_vm_reg


@functools.cache
def load_sys_reg_descs() -> SysRegTable:
    """sys_reg_descs[] of v4.5-rc4 (121 entries), from the packaged table."""
    text = resources.files("worldswitch").joinpath("data/sysreg-table-v4.5.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    entries = tuple(
        SysRegDesc(
            row["name"], int(row["op0"]), int(row["op1"]), int(row["crn"]), int(row["crm"]), int(row["op2"]),
            _accessor(row["name"]),
        )
        for row in rows
    )
    table = SysRegTable("sys_reg_descs", entries)
    check_sysreg_table(table)  # kvm_sys_reg_table_init BUG()s on an unsorted table
    return table


@functools.cache
def generic_v8_target_table() -> SysRegTable:
    """genericv8_sys_regs[]: the one target-specific entry every v8 target shares."""
    return SysRegTable("genericv8_sys_regs", (SysRegDesc("ACTLR_EL1", 3, 0, 1, 0, 1, access_vm_reg),))


def sysreg_name(op0: int, op1: int, crn: int, crm: int, op2: int) -> str:
    return f"S{op0}_{op1}_C{crn}_C{crm}_{op2}"
