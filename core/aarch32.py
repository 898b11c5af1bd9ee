"""A 32-bit ARM host (Cortex-A15 class, GICv2) running an AArch32 guest on Unicorn.

The host is v4.5 arch/arm/kvm: cp15 traps go to ``kvm_handle_cp15_32`` / ``_64`` and
``emulate_cp15`` (:mod:`worldswitch.kvm.coproc`); HVC goes to PSCI. The world switch
itself (vgic-v2 GICH save/restore, timer flush, EL1/timer context counts) is the arm64
model's :meth:`Vcpu.world_switch`, reused as is: a GICv2 host saves and restores the same
GICH registers, and the counts are only as good as that approximation.

Unicorn 2.1.4 facts this relies on (probed here, keep as tests):

* ARM has no UC_HOOK_INSN for MRC/MCR/MRRC/MCRR (only arm64 has MRS/MSR). A UC_HOOK_CODE
  hook bounded to the instruction's address ([addr, addr]) runs *before* it, with PC at
  it. Writing PC = addr + 4 in the hook skips it; without that Unicorn executes the MRC
  natively (e.g. PMSELR reads back Unicorn's own value) after the hook.
* ``hvc #0`` in ARM state (CPU model Cortex-A15, the default; reset CPSR 0x1d3 = SVC,
  SCR 0x1 = NS): with SCR.HCE (bit 8) set through UC_ARM_REG_CP_REG it reaches
  UC_HOOK_INTR as intno 11 (EXCP_HVC), PC already past it (addr + 4), CPSR unchanged
  (the exception is not taken). Without HCE it is UNDEFINED and ``emu_start`` fails with
  UC_ERR_INSN_INVALID, PC at the hvc; the INTR hook is never called.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import capstone
from unicorn import UC_ARCH_ARM, UC_HOOK_CODE, UC_HOOK_INTR, UC_MODE_ARM, Uc, UcError
from unicorn import arm_const as a32
from unicorn.unicorn_py3.unicorn import HOOK_CODE_CFUNC, HOOK_INTR_CFUNC, uc_hook_h, uclib

from .board import Board
from .budget import check_deadline, run_guarded
from .errors import GuestFault, GuestImageError, PluginError
from .events import Ev, Exit
from .hooks import Hooks
from .kvm.arm import Vcpu
from .kvm.coproc import (
    CoprocParams,
    CoprocTable,
    cmp_reg,
    cp15_to_index,
    find_reg,
    index_to_params,
    trapped_encodings,
    v45_tables,
)
from .kvm.psci import PSCI_TAKES_ARGS
from .kvm.sys_regs import FindResult
from .machine import Regs, code_extent, read_word
from .memo import build_cache

RAM_BASE = 0x80000000
RAM_SIZE = 0x4000000  # 64 MiB
LOAD_ADDR = 0x80008000  # kvmtool's AArch32 kernel address
EXCP_HVC = 11
SCR_HCE = 1 << 8
ESR_IL = 1 << 25
EC_CP15_64 = 0x04  # events.Exit has no CP15_64 member yet
ARG_REGS = (a32.UC_ARM_REG_R1, a32.UC_ARM_REG_R2, a32.UC_ARM_REG_R3)
RREG = [getattr(a32, f"UC_ARM_REG_R{n}") for n in range(13)] + [a32.UC_ARM_REG_SP, a32.UC_ARM_REG_LR]
_SYSREG_TRAP = int(Ev.SYSREG_TRAP)


class VmmInitError(GuestFault):
    """The userspace VMM's vCPU set-up failed: a KVM ioctl returned an error."""


class Vcpu32(Vcpu):
    """struct kvm_vcpu on a 32-bit host: the arm64 vCPU plus the cp15 tables and handlers."""

    def __init__(self, board: Board, hooks: Hooks) -> None:
        super().__init__(board, hooks)
        self.tables = v45_tables()
        hooks.call_setup("ws_coproc_tables", tables=self.tables)
        self.kvm_coproc_table_init()
        self.target_coproc = self.tables["a15_regs"]
        self.cp15_regs = self.tables["cp15_regs"]
        self.vmm_sync_invariant_regs()

    # ---- init ------------------------------------------------------------------------
    def kvm_coproc_table_init(self) -> None:
        """v4.5 checks only cp15_regs (BUG_ON on an out-of-order pair); plugins add checks."""
        regs = self.tables["cp15_regs"].entries
        for i in range(1, len(regs)):
            if cmp_reg(regs[i - 1], regs[i]) >= 0:
                raise PluginError(
                    f"BUG at kvm_coproc_table_init: cp15_regs is not sorted at index {i} ({regs[i].name}); "
                    "a ws_coproc_tables plugin broke it"
                )
        self.hooks.call_setup("ws_coproc_table_init", tables=self.tables)

    def vmm_sync_invariant_regs(self) -> None:
        """QEMU's kvm_arm_init_cpreg_list + write_kvmstate_to_list: every id of
        KVM_GET_REG_LIST, sorted ascending (QEMU qsorts the list), read with
        KVM_GET_ONE_REG. For an invariant register that ends in get_invariant_cp15's
        lookup of invariant_cp15 by id; an ENOENT there fails the VMM's vCPU init.

        Not counted: it is set-up, not part of any world switch."""
        table = self.tables["invariant_cp15"]
        for reg_id, name in sorted((cp15_to_index(r), r.name) for r in table.entries):
            if self._search(index_to_params(reg_id), table).entry is None:
                why = "binary search over the unsorted invariant_cp15 table" if not _sorted(table) else "no such entry"
                raise VmmInitError(f"KVM_GET_ONE_REG({name}) failed: ENOENT ({why})")

    # ---- the cp15 exits (kvm_handle_cp15_32/64 in handle_exit.py decode, then call this) ----
    def emulate_cp15(self, p: CoprocParams, vals: list[int]) -> int:
        self.c[_SYSREG_TRAP] += 1
        if self.hooks.ws_sysreg_trap:
            self.hooks.ws_sysreg_trap(self, p)
        r = self.find_coproc_reg(p, self.target_coproc)
        if r is None:
            r = self.find_coproc_reg(p, self.cp15_regs)
        if r is None or r.access is None:
            w, crn, crm, op1, op2 = p.key
            raise GuestFault(
                f"unsupported guest CP15 {'write' if p.is_write else 'read'}: "
                + (f"p15, {op1}, c{crn}" if w else f"p15, {op1}, c{crn}, c{crm}, {op2}")
                + " (KVM would inject UNDEF)"
            )
        r.access(self, p, r)
        vals[0], vals[1] = p.val, p.val2
        return 1

    def find_coproc_reg(self, p: CoprocParams, table: CoprocTable) -> Any:
        res = self._search(p, table)
        c = self.c
        for ev, n in res.costs:
            c[ev] += n
        return res.entry

    def _search(self, p: CoprocParams, table: CoprocTable) -> FindResult:
        """find_reg through the ws_find_coproc_reg hook, memoised per (table, key)."""
        cache = self.search_cache(table)
        res = cache.get(p.key)
        if res is None:
            hook = self.hooks.ws_find_coproc_reg
            res = cache[p.key] = (hook(p, table) if hook else None) or find_reg(p, table)
        return res


def _sorted(table: CoprocTable) -> bool:
    e = table.entries
    return all(cmp_reg(e[i - 1], e[i]) < 0 for i in range(1, len(e)))


@dataclass(frozen=True, slots=True)
class Cp15Site:
    """One MRC/MCR (or MRRC/MCRR) to cp15 the host traps, with its HSR precomputed."""

    addr: int
    is64: bool
    is_read: bool
    rt: int
    rt2: int
    esr: int


class Regs32(Regs):
    """Regs with a 32-bit buffer: Unicorn writes 4 bytes for an AArch32 register."""

    def __init__(self, uc: Uc) -> None:
        self.h = uc._uch
        self.val = ctypes.c_uint32()  # type: ignore[assignment]
        self.ref = ctypes.byref(self.val)


def scan_image(code: bytes, base: int = LOAD_ADDR, deadline: float | None = None
               ) -> tuple[list[Cp15Site], dict[int, int]]:
    """The trapped cp15 sites and the HVCs (immediate by the PC Unicorn reports: addr + 4)."""
    traps = trapped_encodings()
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM)
    sites: list[Cp15Site] = []
    hvcs: dict[int, int] = {}
    decoded = 0
    for addr, _size, mnemonic, _ops in md.disasm_lite(code[: code_extent(code)], base):
        decoded += 1
        if not decoded & 0xFFFF:
            check_deadline(deadline, "scanning the guest image")
        w = int.from_bytes(code[addr - base : addr - base + 4], "little")
        cond = w >> 28
        if (w & 0x0FF000F0) == 0x01400070 and cond == 0xE:  # HVC #imm12:imm4
            hvcs[addr + 4] = ((w >> 4) & 0xFFF0) | (w & 0xF)
            continue
        if mnemonic not in ("mrc", "mcr", "mrrc", "mcrr") or (w >> 8) & 0xF != 15:
            continue
        is_read = bool((w >> 20) & 1)
        rt, crm = (w >> 12) & 0xF, w & 0xF
        if mnemonic in ("mrc", "mcr"):
            crn, op1, op2 = (w >> 16) & 0xF, (w >> 21) & 7, (w >> 5) & 7
            key, rt2 = (False, crn, crm, op1, op2), 0
            iss = (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (crm << 1) | int(is_read)
            ec = Exit.CP15_32
        else:
            op1, rt2 = (w >> 4) & 0xF, (w >> 16) & 0xF
            key = (True, crm, 0, op1, 0)
            iss = (op1 << 16) | (rt2 << 10) | (rt << 5) | (crm << 1) | int(is_read)
            ec = EC_CP15_64
        hsr_crn = key[1]
        writes_only = traps.get(key)
        if writes_only is None and hsr_crn != 15:  # HSTR.T15 traps all of c15
            continue
        if writes_only and is_read:
            continue
        if cond != 0xE or rt == 15 or rt2 == 15:
            raise GuestImageError(f"cp15 access at 0x{addr:x}: conditional or PC/APSR operands are not modelled")
        esr = (ec << 26) | ESR_IL | (1 << 24) | (cond << 20) | iss  # CV set, COND = AL
        sites.append(Cp15Site(addr, key[0], is_read, rt, rt2, esr))
    if decoded == 0:
        raise GuestImageError("the image does not start with a valid A32 instruction")
    return sites, hvcs


class Machine32:
    """One VM on the 32-bit host: a Vcpu32, its Unicorn core, the trap hooks. One per run."""

    vi = False  # no virtual IRQ line is modelled on this host: the cache keys on nothing of the CPU

    def __init__(self, code: bytes, vcpu: Vcpu32, redist_base: int = 0, deadline: float | None = None,
                 cache: bool = True, verify_cache: int = 0, log: Callable[[str], None] | None = None) -> None:
        self.vcpu = vcpu
        self.memo = build_cache(vcpu, self, [], on=cache, verify=verify_cache, log=log)
        self.deadline = deadline
        self.platform = vcpu.platform
        self.error: BaseException | None = None
        self.finished = False
        self.sites, self.hvc_imms = scan_image(code, deadline=deadline)
        self.uc = Uc(UC_ARCH_ARM, UC_MODE_ARM)
        self.uc.ctl_set_cpu_model(a32.UC_CPU_ARM_CORTEX_A15)
        self.regs = Regs32(self.uc)
        vcpu.read_guest_pc = lambda: self.regs.read(a32.UC_ARM_REG_PC)
        vcpu.read_guest_insn = lambda pc: read_word(self.uc, self._insn_buf, pc)
        self._keep: list[Any] = []  # ctypes callbacks must outlive the run
        self._insn_buf = ctypes.create_string_buffer(8)
        self._build(code)

    def _hook(self, kind: int, cb: Any, begin: int = 1, end: int = 0, ud: int = 0) -> None:
        h = uc_hook_h()
        err = uclib.uc_hook_add(
            self.uc._uch, ctypes.byref(h), kind, cb, ctypes.c_void_p(ud), ctypes.c_uint64(begin), ctypes.c_uint64(end)
        )
        if err:
            raise UcError(err)
        self._keep.append(cb)

    def _build(self, code: bytes) -> None:
        uc = self.uc
        uc.mem_map(RAM_BASE, RAM_SIZE)
        uc.mem_write(LOAD_ADDR, code)
        scr = (15, 0, 0, 1, 1, 0, 0)  # SCR: p15, 0, c1, c1, 0
        uc.reg_write(a32.UC_ARM_REG_CP_REG, scr + (uc.reg_read(a32.UC_ARM_REG_CP_REG, scr) | SCR_HCE,))
        self._hook(UC_HOOK_INTR, HOOK_INTR_CFUNC(self._on_intr))
        imms = set(self.hvc_imms.values())
        self.hvc_esr = (Exit.HVC32 << 26) | ESR_IL | (imms.pop() if len(imms) == 1 else 0)
        self.hvc_esr_varies = len(imms) > 0
        cb = HOOK_CODE_CFUNC(self._on_cp15)
        for i, site in enumerate(self.sites):
            self._hook(UC_HOOK_CODE, cb, site.addr, site.addr, i)

    # ---- the trap callbacks (the hot path) -------------------------------------------
    def _fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        uclib.uc_emu_stop(self.uc._uch)

    def recordable(self) -> bool:
        """Did the round trip that just ran stay inside the model (core/memo.py)?"""
        return self.error is None and not self.finished  # (this host injects nothing: it faults)

    def _on_cp15(self, uch: Any, addr: int, size: int, ud: Any) -> None:
        try:
            site = self.sites[ud or 0]
            regs, memo = self.regs, self.memo
            if site.is_read:
                key: tuple[int, ...] = (2, ud or 0)
            else:
                key = (2, ud or 0, regs.read(RREG[site.rt]), regs.read(RREG[site.rt2]) if site.is64 else 0)
            vals = memo.serve(key, self._cp15_trip, site, key) if memo.on else self._cp15_trip(site, key)
            if vals is not None and site.is_read:
                regs.write(RREG[site.rt], vals[0] & 0xFFFFFFFF)
                if site.is64:
                    regs.write(RREG[site.rt2], vals[1] & 0xFFFFFFFF)
            regs.write(a32.UC_ARM_REG_PC, addr + 4)  # else Unicorn runs the MRC/MCR natively
        except BaseException as e:  # noqa: BLE001 - raw callbacks swallow exceptions
            self._fail(e)

    def _cp15_trip(self, site: Any, key: tuple[int, ...]) -> tuple[int, int] | None:
        """The round trip of a cp15 access: the two values a read returns (None: the VM ended)."""
        vals = [0, 0] if site.is_read else [key[2], key[3]]
        if not self.vcpu.world_switch(site.esr, vals):
            self.finished = True
            uclib.uc_emu_stop(self.uc._uch)
            return None
        return vals[0], vals[1]

    def _on_intr(self, uch: Any, intno: int, ud: Any) -> None:
        try:
            regs = self.regs
            if intno != EXCP_HVC:
                pc = regs.read(a32.UC_ARM_REG_PC)
                raise GuestFault(f"guest raised exception {intno} at pc 0x{pc:x}; worldswitch does not model that")
            r0 = regs.read(a32.UC_ARM_REG_R0)
            args = [r0, *((regs.read(r) for r in ARG_REGS) if r0 in PSCI_TAKES_ARGS else (0, 0, 0))]
            esr = self.hvc_esr
            if self.hvc_esr_varies:
                esr = (Exit.HVC32 << 26) | ESR_IL | self.hvc_imms.get(regs.read(a32.UC_ARM_REG_PC), 0)
            memo = self.memo
            out = memo.serve((3, esr, *args), self._hvc_trip, esr, args) if memo.on else self._hvc_trip(esr, args)
            if out != r0:
                regs.write(a32.UC_ARM_REG_R0, out & 0xFFFFFFFF)  # PSCI errors are -1 etc. in 32 bits
        except BaseException as e:  # noqa: BLE001
            self._fail(e)

    def _hvc_trip(self, esr: int, args: list[int]) -> int:
        """The round trip of an HVC: r0 as the guest gets it back."""
        if not self.vcpu.world_switch(esr, args):
            self.finished = True
            uclib.uc_emu_stop(self.uc._uch)
        return args[0]

    # ---- running ------------------------------------------------------------------------
    def run(self, max_instructions: int = 0) -> None:
        """Run to the guest's SYSTEM_OFF/RESET. Raises on a fault or a blown budget.
        (WFI is not modelled on the 32-bit host: a guest that waits stops with a fault.)"""
        self.vcpu.first_entry()
        try:
            run_guarded(self, LOAD_ADDR, 0xFFFFFFF0, max_instructions, a32.UC_ARM_REG_PC)
        finally:
            self.memo.sync()  # replayed round trips: the tallies catch up
        self.vcpu.vcpu_put()

    def cache_stats(self) -> dict[str, Any]:
        return self.memo.stats()

    def guest_registers(self) -> dict[str, int]:
        regs = {f"r{n}": self.regs.read(RREG[n]) for n in range(13)}
        regs["sp"], regs["lr"] = self.regs.read(a32.UC_ARM_REG_SP), self.regs.read(a32.UC_ARM_REG_LR)
        regs["pc"], regs["cpsr"] = self.regs.read(a32.UC_ARM_REG_PC), self.regs.read(a32.UC_ARM_REG_CPSR)
        return regs
