"""A64 decoding for the syndromes the hardware would build (ESR_EL2 ISS fields).

On a trap the hardware reports the faulting instruction's operands in the syndrome; Unicorn
never takes the exception, so the machine decodes the instruction itself. One decoder serves
the image scan and the run-time path, so a site found by either gets the same syndrome.

Data aborts: the ISS is valid (ISV=1) only for a load or store of a single general-purpose
register without writeback, including the acquire/release forms and excluding exclusives
(ARM ARM D13.2.39, "ISV"). For anything else KVM cannot emulate the access: v4.5's
io_mem_abort fails with "load/store instruction decoding not implemented".
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .events import Exit

ESR_IL = 1 << 25  # a 32-bit instruction
MASK64 = (1 << 64) - 1
DFSC_TRANSLATION_L2 = 0x06  # what a stage-2 fault on an unmapped IPA reports, as KVM sees it


@dataclass(frozen=True, slots=True)
class LdstSite:
    """One load/store instruction as the data-abort syndrome describes it."""

    size: int  # bytes per register transferred
    rt: int
    is_write: bool
    sign_extend: bool
    sf: bool  # the register is 64 bits wide
    valid: bool  # ISV: a single register, no writeback, not exclusive, not SIMD&FP
    what: str  # how the instruction accesses memory, for error messages

    def esr(self) -> int:
        """ESR_EL2 for a stage-2 data abort by this instruction."""
        if not self.valid:
            return (Exit.DABT_LOW << 26) | ESR_IL | (int(self.is_write) << 6) | DFSC_TRANSLATION_L2
        sas = {1: 0, 2: 1, 4: 2, 8: 3}[self.size]
        iss = (1 << 24) | (sas << 22) | (int(self.sign_extend) << 21) | (self.rt << 16)
        iss |= (int(self.sf) << 15) | (int(self.is_write) << 6) | DFSC_TRANSLATION_L2
        return (Exit.DABT_LOW << 26) | ESR_IL | iss


def _single(w: int, what: str, valid: bool) -> LdstSite | None:
    """Load/store of one register: size[31:30], V[26], opc[23:22], Rt[4:0]."""
    size, opc = 1 << (w >> 30), (w >> 22) & 3
    if (w >> 26) & 1:  # SIMD&FP register: no syndrome
        return LdstSite(size, w & 31, opc & 1 == 0, False, False, False, "a SIMD&FP " + what)
    if size == 8 and opc >= 2 or size == 4 and opc == 3:
        return None  # PRFM, or unallocated: no data access to report
    is_write = opc == 0
    sign = opc >= 2
    sf = size == 8 or opc == 2
    return LdstSite(size, w & 31, is_write, sign, sf, valid, what)


def decode_ldst(w: int) -> LdstSite | None:
    """The load/store instruction ``w`` (None if it is not one that accesses data memory)."""
    op = (w >> 24) & 0x3F
    if op & 0b111011 == 0b111001:  # unsigned immediate offset
        return _single(w, "load/store", True)
    if op & 0b111011 == 0b111000:
        kind = (w >> 10) & 3
        if (w >> 21) & 1:
            if kind == 2:  # register offset
                return _single(w, "load/store", True)
            site = _single(w, "atomic memory operation", False)  # LSE atomics (ARMv8.1)
            return site
        if kind == 0:  # unscaled immediate (LDUR/STUR)
            return _single(w, "load/store", True)
        if kind == 2:  # unprivileged (LDTR/STTR)
            return _single(w, "unprivileged load/store", True)
        return _single(w, "load/store with writeback", False)
    if op & 0b111010 == 0b101000:  # load/store pair (all index forms, and no-allocate)
        size = 4 << (w >> 31) if not (w >> 26) & 1 else 4 << ((w >> 30) & 3)
        return LdstSite(size, w & 31, not (w >> 22) & 1, False, bool(w >> 31), False, "load/store pair")
    if op == 0b001000:  # exclusive, and load-acquire/store-release
        size = 1 << (w >> 30)
        is_write = not (w >> 22) & 1
        if (w >> 23) & 1 and not (w >> 21) & 1:  # LDAR/STLR (o2 set, o1 clear): a single register
            return LdstSite(size, w & 31, is_write, False, size == 8, True, "load-acquire/store-release")
        return LdstSite(size, w & 31, is_write, False, size == 8, False, "exclusive load/store")
    return None


def sysreg_esr(op0: int, op1: int, crn: int, crm: int, op2: int, rt: int, is_read: bool) -> int:
    """ESR_EL2 for EC 0x18: Op0, Op2, Op1, CRn, Rt, CRm, Direction."""
    iss = (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (crm << 1) | int(is_read)
    return (Exit.SYS64 << 26) | ESR_IL | iss


def decode_sysreg(w: int) -> tuple[int, int, int, int, int, int, bool] | None:
    """MRS/MSR (register): (op0, op1, CRn, CRm, op2, Rt, is_read), or None."""
    if (w & 0xFFD00000) != 0xD5100000:
        return None
    return (2 + ((w >> 19) & 1), (w >> 16) & 7, (w >> 12) & 15, (w >> 8) & 15, (w >> 5) & 7, w & 31,
            bool((w >> 21) & 1))


HVC_MASK, HVC_BITS = 0xFFE0001F, 0xD4000002
SVC_MASK, SVC_BITS = 0xFFE0001F, 0xD4000001
WFI, WFE = 0xD503207F, 0xD503205F


_RMW = ("ldadd", "ldclr", "ldeor", "ldset", "ldsmax", "ldsmin", "ldumax", "ldumin", "swp", "cas")
# capstone's extend codes: UXTB..UXTX are 1-4, SXTB..SXTX 5-8
_EXTEND_BITS = {1: 8, 2: 16, 3: 32, 4: 64, 5: 8, 6: 16, 7: 32, 8: 64}


@functools.cache
def _capstone() -> Any:
    import capstone

    md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
    md.detail = True
    return md


def decode_data_access(word: int, pc: int, read_reg: Callable[[int], int]) -> tuple[int, bool] | None:
    """The virtual address a load or store at ``pc`` accesses and whether it writes, from the
    instruction and its registers as they are before it runs (the state an abort leaves).
    For a stage-1 abort, which is rare: capstone decodes every addressing mode. None for an
    instruction that makes no data access (a prefetch) or one this does not model (cache
    maintenance)."""
    from capstone import arm64
    from unicorn import arm64_const as a64

    insns = list(_capstone().disasm(word.to_bytes(4, "little"), pc))
    if not insns:
        return None
    insn = insns[0]
    name = insn.mnemonic
    if name.startswith("prfm") or name.startswith("prfum") or name in ("dc", "ic", "at"):
        return None

    def value(reg: int) -> int:
        reg_name = insn.reg_name(reg)
        if reg_name in ("xzr", "wzr"):
            return 0
        return read_reg(getattr(a64, f"UC_ARM64_REG_{reg_name.upper()}"))

    is_write = name.startswith("st") or name.startswith(_RMW)
    for op in insn.operands:
        if op.type == arm64.ARM64_OP_MEM:
            va = value(op.mem.base)
            if insn.post_index:  # [base], #imm: the access is at the base; the imm comes after
                return va & MASK64, is_write
            if op.mem.index:
                idx = value(op.mem.index)
                bits = _EXTEND_BITS.get(op.ext)
                if bits is not None:
                    idx &= (1 << bits) - 1
                    if op.ext >= 5 and idx >> (bits - 1):
                        idx -= 1 << bits
                if op.shift.type == arm64.ARM64_SFT_LSL:
                    idx <<= op.shift.value
                va += idx
            return (va + op.mem.disp) & MASK64, is_write
    if name.startswith("ldr") or name.startswith("ldrsw"):  # literal: the address is the operand
        imm = [op.imm for op in insn.operands if op.type == arm64.ARM64_OP_IMM]
        return (imm[-1] & MASK64, False) if imm else None
    return None
