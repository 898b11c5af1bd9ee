"""A kvmtool-like arm64 machine on Unicorn, with the trap plumbing.

Memory map (kvmtool arm64): RAM at 0x80000000, the image loaded at 0x80080000, the GIC
distributor at 0x3fff0000, the GICv2 CPU interface at 0x3ffd0000, GICv3
redistributors at a configurable base (default 0x3fbf0000, kvmtool's value for 32
vCPUs, which the reference guest uses).

Traps are caught with one raw ctypes callback per trap kind (unicorn.md): HVC through
UC_HOOK_INTR with SCR_EL3.HCE set; MRS/MSR through UC_HOOK_INSN hooks bounded to each
site a capstone scan finds (the site index rides in user_data, so no PC read is
needed); WFI through a UC_HOOK_CODE hook bounded to each wfi; MMIO through mmio_map.
Each callback runs the whole round trip (:meth:`Vcpu.world_switch`) and returns to
the guest without stopping the emulator.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from typing import Any

import capstone
from unicorn import UC_ARCH_ARM64, UC_HOOK_CODE, UC_HOOK_INSN, UC_HOOK_INTR, UC_MODE_ARM, Uc, UcError
from unicorn import arm64_const as a64
from unicorn.unicorn_py3.arch.arm64 import HOOK_INSN_SYS_CFUNC
from unicorn.unicorn_py3.unicorn import (
    HOOK_CODE_CFUNC,
    HOOK_INTR_CFUNC,
    MMIO_READ_CFUNC,
    MMIO_WRITE_CFUNC,
    uc_hook_h,
    uclib,
)

from .board import REDIST_DEFAULT
from .budget import check_deadline, run_guarded
from .errors import GuestFault, GuestImageError
from .events import Exit
from .hw.gic_v2 import GicV
from .kvm.arm import GICD_BASE, GICD_SIZE, Vcpu
from .kvm.sys_regs import SysRegParams, sysreg_name

RAM_BASE = 0x80000000
RAM_SIZE = 0x4000000  # 64 MiB
LOAD_ADDR = 0x80080000
MAX_IMAGE = RAM_BASE + RAM_SIZE - LOAD_ADDR
# emu_start needs an end address; reaching this one (a VA no guest maps) is reported as a fault
RUN_UNTIL = 1 << 63
GICC_BASE, GICC_SIZE = 0x3FFD0000, 0x20000
REDIST_SIZE = 0x20000  # one vCPU: RD_base and SGI_base frames

EXCP_UDEF, EXCP_HVC, EXCP_SMC = 1, 11, 13
ESR_IL = 1 << 25
PSCI_NEEDS_X1 = {0x84000003, 0x84000004, 0xC4000003, 0xC4000004}
PMU_TRAPPED_CRM = (12, 13, 14)

XREG = [getattr(a64, f"UC_ARM64_REG_X{n}") for n in range(31)] + [a64.UC_ARM64_REG_XZR]


@dataclass(frozen=True, slots=True)
class SysregSite:
    addr: int
    op0: int
    op1: int
    crn: int
    crm: int
    op2: int
    rt: int
    is_read: bool

    @property
    def key(self) -> tuple[int, int, int, int, int]:
        return (self.op0, self.op1, self.crn, self.crm, self.op2)

    def esr(self) -> int:
        """ESR_EL2 for EC 0x18: Op0, Op2, Op1, CRn, Rt, CRm, Direction."""
        iss = (
            (self.op0 << 20) | (self.op2 << 17) | (self.op1 << 14) | (self.crn << 10)
            | (self.rt << 5) | (self.crm << 1) | int(self.is_read)
        )
        return (Exit.SYS64 << 26) | ESR_IL | iss


@dataclass(frozen=True, slots=True)
class LdstSite:
    size: int
    rt: int
    is_write: bool
    sign_extend: bool
    sf: bool
    pair: bool

    def esr(self) -> int:
        """ESR_EL2 for a stage-2 data abort with a valid syndrome (ISV)."""
        if self.pair:
            return (Exit.DABT_LOW << 26) | ESR_IL | 0x06  # ISV clear: KVM cannot emulate it
        sas = {1: 0, 2: 1, 4: 2, 8: 3}[self.size]
        iss = (1 << 24) | (sas << 22) | (int(self.sign_extend) << 21) | (self.rt << 16)
        iss |= (int(self.sf) << 15) | (int(self.is_write) << 6) | 0x06  # DFSC: translation fault, level 2
        return (Exit.DABT_LOW << 26) | ESR_IL | iss


@dataclass
class Scan:
    sysregs: list[SysregSite]
    hvc_imms: dict[int, int]
    wfis: list[int]
    ldst: dict[int, LdstSite]


def load_image(path: str) -> bytes:
    """Read and check a flat binary guest image (AArch64 or AArch32)."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_IMAGE + 1)
    except OSError as e:
        raise GuestImageError(f"cannot read guest image {path}: {e.strerror}") from None
    if not data:
        raise GuestImageError(f"guest image {path} is empty")
    if len(data) > MAX_IMAGE:
        raise GuestImageError(f"guest image {path} is larger than the {MAX_IMAGE >> 20} MiB the machine can load")
    if data[:4] == b"\x7fELF":
        raise GuestImageError(f"{path} is an ELF file; worldswitch loads flat binaries (objcopy -O binary)")
    if len(data) % 4:
        raise GuestImageError(f"guest image {path} is {len(data)} bytes, not a whole number of A64 instructions")
    return data


def code_extent(code: bytes) -> int:
    """Bytes up to the last non-zero word: zero padding holds no instruction to hook
    (0 is UDF), so preparation costs time in proportion to the code, not the image."""
    return (len(code.rstrip(b"\0")) + 3) & ~3


def scan_image(code: bytes, base: int = LOAD_ADDR, deadline: float | None = None) -> Scan:
    """Find the trap sites: every MRS/MSR, HVC, WFI, and load/store (for syndromes).

    Every word up to the end of the code is decoded, data included: a site found in data
    is hooked but never executed, while stopping at the first data word would miss the
    code after it."""
    if next(capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM).disasm_lite(code[:4], base), None) is None:
        raise GuestImageError("the image does not start with a valid instruction for its architecture")
    sysregs: list[SysregSite] = []
    hvcs: dict[int, int] = {}
    wfis: list[int] = []
    ldst: dict[int, LdstSite] = {}
    words = memoryview(code)[: code_extent(code)].cast("I")
    for i, w in enumerate(words):
        if not i & 0xFFFF:
            check_deadline(deadline, "scanning the guest image")
        addr = base + 4 * i
        if (w & 0xFFD00000) == 0xD5100000:  # MSR/MRS (register): 1101010100 L 1 o0 ...
            sysregs.append(SysregSite(
                addr, 2 + ((w >> 19) & 1), (w >> 16) & 7, (w >> 12) & 15, (w >> 8) & 15, (w >> 5) & 7,
                w & 31, bool((w >> 21) & 1),
            ))
        elif (w & 0xFFE0001F) == 0xD4000002:  # HVC #imm16
            hvcs[addr + 4] = (w >> 5) & 0xFFFF  # unicorn reports the HVC with PC past it
        elif w == 0xD503207F:
            wfis.append(addr)
        elif (w >> 27) & 7 == 0b111 and not (w >> 26) & 1 and (w >> 24) & 3 in (0, 1):
            size, opc = 1 << (w >> 30), (w >> 22) & 3
            ldst[addr] = LdstSite(size, w & 31, opc == 0, opc >= 2, size == 8 or opc == 2, False)
        elif (w >> 27) & 7 == 0b101 and not (w >> 26) & 1:  # load/store pair
            ldst[addr] = LdstSite(4 << (w >> 31), w & 31, not (w >> 22) & 1, False, bool(w >> 31), True)
    return Scan(sysregs, hvcs, wfis, ldst)


@functools.cache
def unicorn_knows(op0: int, op1: int, crn: int, crm: int, op2: int, is_read: bool) -> bool:
    """Does Unicorn 2.1.4 implement this system register? (It UNDEFs the ones it lacks.)"""
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.mem_map(0x1000, 0x1000)
    insn = 0xD5100000 | ((op0 - 2) << 19) | (op1 << 16) | (crn << 12) | (crm << 8) | (op2 << 5)
    if is_read:
        insn |= 1 << 21
    uc.mem_write(0x1000, insn.to_bytes(4, "little") + (0xD503201F).to_bytes(4, "little"))
    try:
        uc.emu_start(0x1000, 0x1008)
    except UcError:
        return False
    return True


class Regs:
    """Raw register access: about 0.3 µs a call instead of the binding's 2.5 µs."""

    def __init__(self, uc: Uc) -> None:
        self.h = uc._uch
        self.val = ctypes.c_uint64()
        self.ref = ctypes.byref(self.val)

    def read(self, reg: int) -> int:
        uclib.uc_reg_read(self.h, reg, self.ref)
        return self.val.value

    def write(self, reg: int, value: int) -> None:
        self.val.value = value
        uclib.uc_reg_write(self.h, reg, self.ref)


class Machine:
    """One VM: a vCPU model, its Unicorn core, the trap hooks. Use a fresh one per run."""

    def __init__(self, code: bytes, vcpu: Vcpu, redist_base: int = REDIST_DEFAULT,
                 deadline: float | None = None) -> None:
        self.code = code
        self.deadline = deadline
        self.vcpu = vcpu
        self.platform = vcpu.platform
        self.redist_base = redist_base
        self.error: BaseException | None = None
        self.finished = False
        self.scan = scan_image(code, deadline=deadline)
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        self.regs = Regs(self.uc)
        # for observers (tracing) only: nothing on the trap path calls these
        vcpu.read_guest_pc = lambda: self.regs.read(a64.UC_ARM64_REG_PC)
        vcpu.read_guest_insn = self.read_insn
        self._keep: list[Any] = []  # ctypes callbacks must outlive the run
        self._split: tuple[int, int] | None = None  # a 64-bit MMIO access arrives in two halves
        self._build()

    # ---- set-up ------------------------------------------------------------------------
    def _hook(self, kind: int, cb: Any, begin: int = 1, end: int = 0, ud: int = 0, *extra: Any) -> None:
        h = uc_hook_h()
        err = uclib.uc_hook_add(
            self.uc._uch, ctypes.byref(h), kind, cb, ctypes.c_void_p(ud), ctypes.c_uint64(begin),
            ctypes.c_uint64(end), *extra,
        )
        if err:
            raise UcError(err)
        self._keep.append(cb)

    def _mmio(self, base: int, size: int, read: Any, write: Any) -> None:
        rcb, wcb = MMIO_READ_CFUNC(read), MMIO_WRITE_CFUNC(write)
        err = uclib.uc_mmio_map(self.uc._uch, base, size, rcb, None, wcb, None)
        if err:
            raise UcError(err)
        self._keep += [rcb, wcb]

    def _build(self) -> None:
        uc = self.uc
        uc.mem_map(RAM_BASE, RAM_SIZE)
        uc.mem_write(LOAD_ADDR, self.code)
        # SCR_EL3.HCE: hvc then reaches UC_HOOK_INTR as EXCP_HVC with PC already past it
        scr = uc.cpr_read(3, 6, 1, 1, 0)
        uc.reg_write(a64.UC_ARM64_REG_CP_REG, (1, 1, 3, 6, 0, scr | (1 << 8)))
        self.native_pfr0 = uc.cpr_read(3, 0, 0, 4, 0)
        self.ldst_esr = {(addr, site.is_write): site.esr() for addr, site in self.scan.ldst.items()}
        # The syndrome's Rt and sign bits matter only to a ws_guest_exit hook; its size
        # matters when a 64-bit or pair access could reach MMIO. Otherwise the callback's
        # own size and direction build the same EC/ISV/SAS/WnR without a PC read.
        wide = any(s.size == 8 or s.pair for s in self.scan.ldst.values())
        self.mmio_needs_pc = wide or self.vcpu.on_guest_exit is not None
        self.plain_esr = {
            (w, n): LdstSite(n, 0, w, False, False, False).esr() for w in (False, True) for n in (1, 2, 4)
        }
        self._hook(UC_HOOK_INTR, HOOK_INTR_CFUNC(self._on_intr))
        hvc_imms = set(self.scan.hvc_imms.values())
        self.hvc_esr = (Exit.HVC64 << 26) | ESR_IL | (hvc_imms.pop() if len(hvc_imms) == 1 else 0)
        self.hvc_esr_varies = len(hvc_imms) > 0
        self.sysreg_esr = {site.addr: site.esr() for site in self.scan.sysregs}
        # per site: (site, handler, handler takes (site, value), PC must be advanced by hand)
        self.sysreg_sites: list[tuple[SysregSite, Any, bool, bool]] = []
        sys_cb = HOOK_INSN_SYS_CFUNC(self._make_on_sysreg())
        for site in self.scan.sysregs:
            handler = self._classify(site)
            if handler is None:
                continue
            kvm = handler in (self._trap_sysreg, self._unknown_sysreg)
            self.sysreg_sites.append((site, handler, kvm, not unicorn_knows(*site.key, site.is_read)))
            ins = a64.UC_ARM64_INS_MRS if site.is_read else a64.UC_ARM64_INS_MSR
            self._hook(UC_HOOK_INSN, sys_cb, site.addr, site.addr, len(self.sysreg_sites) - 1, ctypes.c_int(ins))
        wfi_cb = HOOK_CODE_CFUNC(self._on_wfi)
        for addr in self.scan.wfis:
            self._hook(UC_HOOK_CODE, wfi_cb, addr, addr)
        self._mmio(GICD_BASE, GICD_SIZE, self._dabt_read(GICD_BASE), self._dabt_write(GICD_BASE))
        if self.platform.guest_gic == 2:
            gicv = self.vcpu.gicv
            assert gicv is not None
            self._mmio(GICC_BASE, GICC_SIZE, self._gicv_read(gicv), self._gicv_write(gicv))
        else:
            base = self.redist_base
            self._mmio(base, REDIST_SIZE, self._dabt_read(base), self._dabt_write(base))

    def _classify(self, site: SysregSite) -> Any:
        """What serves this MRS/MSR: a KVM trap, the virtual CPU interface, an ID
        register override, or (None) Unicorn itself."""
        key = site.key
        op0, op1, crn, crm, op2 = key
        pf = self.platform
        is_icc = (op0, op1, crn) == (3, 0, 12) and 8 <= crm <= 12 or key == (3, 0, 4, 6, 0)
        if is_icc:
            if pf.host_gic == 3 and pf.guest_gic == 3:
                if key[:4] == (3, 0, 12, 11) and op2 in (5, 6, 7):
                    return self._trap_sysreg
                icv = self.vcpu.icv
                assert icv is not None
                serve = {
                    ((3, 0, 12, 12, 0), True): icv.read_iar1,
                    ((3, 0, 12, 12, 1), False): icv.write_eoir1,
                    ((3, 0, 4, 6, 0), True): icv.read_pmr,
                    ((3, 0, 4, 6, 0), False): icv.write_pmr,
                    ((3, 0, 12, 12, 7), True): icv.read_igrpen1,
                    ((3, 0, 12, 12, 7), False): icv.write_igrpen1,
                    ((3, 0, 12, 12, 5), True): icv.read_sre,
                    ((3, 0, 12, 12, 5), False): lambda v: None,
                }.get((key, site.is_read))
                if serve is not None:
                    return serve
            elif pf.host_gic == 3 and key == (3, 0, 12, 12, 5) and site.is_read:
                ich = self.vcpu.hyp_if
                return lambda: ich.sre_el1  # a GICv2 guest sees SRE clear: no sysreg interface
            return self._unknown_sysreg
        if key == (3, 0, 0, 4, 0) and site.is_read:
            gic = 1 if pf.host_gic == 3 else 0  # ID_AA64PFR0_EL1.GIC: is there a sysreg interface?
            value = (self.native_pfr0 & ~(0xF << 24)) | (gic << 24)
            return lambda: value
        if key[:3] == (3, 3, 14) and key[3] in (0, 3):
            return self._timer_reg(key, site.is_read)
        if op0 == 2 or (op0 == 3 and crn == 9 and crm in PMU_TRAPPED_CRM and op1 in (0, 3)):
            return self._trap_sysreg  # MDCR_EL2.TDA/TPM: debug and PMU registers trap
        if unicorn_knows(*key, site.is_read):
            return None
        return self._unknown_sysreg

    def _timer_reg(self, key: tuple[int, ...], is_read: bool) -> Any:
        """CNTV_* and CNTVCT_EL0: the guest's virtual timer, in simulated time."""
        vcpu = self.vcpu
        timer = vcpu.timer
        crm, op2 = key[3], key[4]
        if crm == 0:
            if op2 == 2 and is_read:
                return lambda: vcpu.counter
            if op2 == 0 and is_read:
                return lambda: 100_000_000  # CNTFRQ_EL0: kvmtool's DT says 100 MHz
            return self._unknown_sysreg
        if op2 == 1:
            if is_read:
                return lambda: timer.cntv_ctl | (4 if timer.should_fire(vcpu.counter) else 0)
            return lambda v: setattr(timer, "cntv_ctl", v & 3)
        if op2 == 2:
            return (lambda: timer.cntv_cval) if is_read else (lambda v: setattr(timer, "cntv_cval", v))
        if is_read:  # TVAL
            return lambda: (timer.cntv_cval - vcpu.counter) & 0xFFFFFFFF
        return lambda v: setattr(timer, "cntv_cval", vcpu.counter + ((v ^ 0x80000000) - 0x80000000))

    # ---- the trap callbacks (the hot path) -------------------------------------------
    def _fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        uclib.uc_emu_stop(self.uc._uch)

    def _on_intr(self, uch: Any, intno: int, ud: Any) -> None:
        try:
            regs = self.regs
            if intno != EXCP_HVC:  # pragma: no cover - exercised by the error tests
                pc = regs.read(a64.UC_ARM64_REG_PC)
                what = {EXCP_UDEF: "an undefined instruction", EXCP_SMC: "an SMC"}.get(intno, f"exception {intno}")
                raise GuestFault(f"guest executed {what} at pc 0x{pc:x}; worldswitch does not model that")
            x0 = regs.read(a64.UC_ARM64_REG_X0)
            args = [x0, regs.read(a64.UC_ARM64_REG_X1) if x0 in PSCI_NEEDS_X1 else 0]
            esr = self.hvc_esr
            if self.hvc_esr_varies:
                pc = regs.read(a64.UC_ARM64_REG_PC)
                esr = (Exit.HVC64 << 26) | ESR_IL | self.scan.hvc_imms.get(pc, 0)
            resume = self.vcpu.world_switch(esr, args)
            if args[0] != x0:
                regs.write(a64.UC_ARM64_REG_X0, args[0])
            if not resume:
                self.finished = True
                uclib.uc_emu_stop(self.uc._uch)
        except BaseException as e:  # noqa: BLE001 - raw callbacks swallow exceptions
            self._fail(e)

    def _make_on_sysreg(self) -> Any:
        """The MRS/MSR callback. Locals bound once: this runs once per trapped access."""
        sites = self.sysreg_sites
        h, val, ref = self.uc._uch, self.regs.val, self.regs.ref
        reg_write = uclib.uc_reg_write
        pc_reg = a64.UC_ARM64_REG_PC
        from_address = ctypes.c_uint64.from_address

        def on_sysreg(uch: Any, reg: int, pcp: int, ud: Any) -> int:
            try:
                site, handler, kvm, needs_pc = sites[ud or 0]
                if site.is_read:
                    value = handler(site, 0) if kvm else handler()
                    if site.rt != 31:
                        val.value = value
                        reg_write(h, reg, ref)
                elif kvm:
                    handler(site, from_address(pcp + 24).value)
                else:
                    handler(from_address(pcp + 24).value)
                if needs_pc:
                    val.value = site.addr + 4  # Unicorn lacks the register: it would run it again
                    reg_write(h, pc_reg, ref)
            except BaseException as e:  # noqa: BLE001 - raw callbacks swallow exceptions
                self._fail(e)
            return 1

        return on_sysreg

    def _trap_sysreg(self, site: SysregSite, value: int = 0) -> int:
        p = SysRegParams(*site.key, not site.is_read, value)
        resume = self.vcpu.world_switch(self.sysreg_esr[site.addr], p)
        if not resume:
            self.finished = True
            uclib.uc_emu_stop(self.uc._uch)
        return p.regval

    def _unknown_sysreg(self, site: SysregSite, value: int = 0) -> int:
        raise GuestFault(
            f"guest {'read' if site.is_read else 'write'} of system register {sysreg_name(*site.key)} "
            f"at pc 0x{site.addr:x}: not implemented on platform {self.platform.name}"
        )

    def _on_wfi(self, uch: Any, addr: int, size: int, ud: Any) -> None:
        try:
            esr = (Exit.WFX << 26) | ESR_IL
            resume = self.vcpu.world_switch(esr)
            self.regs.write(a64.UC_ARM64_REG_PC, addr + 4)
            if not resume:
                self.finished = True
                uclib.uc_emu_stop(self.uc._uch)
        except BaseException as e:  # noqa: BLE001
            self._fail(e)

    def _syndrome(self, is_write: bool, size: int) -> int:
        """ESR of the load/store at PC (Unicorn keeps PC exact for MMIO callbacks)."""
        if not self.mmio_needs_pc:
            return self.plain_esr[is_write, size]
        pc = self.regs.read(a64.UC_ARM64_REG_PC)
        esr = self.ldst_esr.get((pc, is_write))
        if esr is None:
            esr = LdstSite(size, 0, is_write, False, size == 8, False).esr()
        return esr

    def _dabt_read(self, base: int) -> Any:
        vcpu = self.vcpu

        def read(uch: Any, offset: int, size: int, ud: Any) -> int:
            try:
                if self._split is not None and self._split[0] == offset:
                    high = self._split[1]
                    self._split = None
                    return high
                esr = self._syndrome(False, size)
                if (esr >> 24) & 1 == 0:
                    raise GuestFault(f"MMIO read at 0x{base + offset:x} by a load pair: no valid syndrome to emulate")
                full = 8 if (esr >> 22) & 3 == 3 else size
                out = [0]
                if not vcpu.world_switch(esr, base + offset, False, full, 0, out):
                    self.finished = True
                    uclib.uc_emu_stop(self.uc._uch)
                if full == 8:
                    self._split = (offset + 4, out[0] >> 32)
                return out[0] & 0xFFFFFFFF if full == 8 else out[0]
            except BaseException as e:  # noqa: BLE001
                self._fail(e)
                return 0

        return read

    def _dabt_write(self, base: int) -> Any:
        vcpu = self.vcpu

        def write(uch: Any, offset: int, size: int, value: int, ud: Any) -> None:
            try:
                if self._split is not None and self._split[0] == offset:
                    value = (value << 32) | self._split[1]
                    offset -= 4
                    size = 8
                    self._split = None
                    esr = self._syndrome(True, 8)
                else:
                    esr = self._syndrome(True, size)
                    if (esr >> 24) & 1 == 0:
                        raise GuestFault(f"MMIO write at 0x{base + offset:x} by a store pair: no valid syndrome")
                    if (esr >> 22) & 3 == 3 and size == 4:
                        self._split = (offset + 4, value)  # wait for the high half
                        return
                if not vcpu.world_switch(esr, base + offset, True, size, value, [0]):
                    self.finished = True
                    uclib.uc_emu_stop(self.uc._uch)
            except BaseException as e:  # noqa: BLE001
                self._fail(e)

        return write

    def _gicv_read(self, gicv: GicV) -> Any:
        def read(uch: Any, offset: int, size: int, ud: Any) -> int:
            try:
                value = gicv.read(offset) if size == 4 else None
                if value is None:
                    raise GuestFault(f"guest read of GICC offset 0x{offset:x} (size {size}): not modelled")
                return value
            except BaseException as e:  # noqa: BLE001
                self._fail(e)
                return 0

        return read

    def _gicv_write(self, gicv: GicV) -> Any:
        def write(uch: Any, offset: int, size: int, value: int, ud: Any) -> None:
            try:
                if size != 4 or not gicv.write(offset, value):
                    raise GuestFault(f"guest write to GICC offset 0x{offset:x} (size {size}): not modelled")
            except BaseException as e:  # noqa: BLE001
                self._fail(e)

        return write

    # ---- running ------------------------------------------------------------------------
    def run(self, max_instructions: int = 0) -> None:
        """Run to the guest's SYSTEM_OFF/RESET. Raises on a fault or a blown budget
        (the time budget is the deadline given at construction)."""
        self.vcpu.first_entry()
        run_guarded(self, LOAD_ADDR, RUN_UNTIL, max_instructions, a64.UC_ARM64_REG_PC)
        self.vcpu.vcpu_put()

    def read_insn(self, pc: int) -> int | None:
        """The instruction word at ``pc`` as the guest's memory holds it now (None: unmapped)."""
        try:
            return int.from_bytes(self.uc.mem_read(pc, 4), "little")
        except UcError:
            return None

    def guest_registers(self) -> dict[str, int]:
        regs = {f"x{n}": self.regs.read(XREG[n]) for n in range(31)}
        regs["pc"] = self.regs.read(a64.UC_ARM64_REG_PC)
        return regs
