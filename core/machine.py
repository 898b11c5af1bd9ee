"""A kvmtool-like arm64 machine on Unicorn, with the trap plumbing.

Memory map (kvmtool arm64): RAM at 0x80000000 (``--mem`` MiB, 64 by default), the image
loaded at RAM + 0x80000, the DTB where kvmtool puts it (top of the first 256 MiB, 2 MiB
aligned) and its address in x0; the UART at 0x1000000, the GIC distributor at 0x3fff0000,
the GICv2 CPU interface at 0x3ffd0000, GICv3 redistributors at a configurable base
(default 0x3fbf0000, kvmtool's value for 32 vCPUs, which the reference guest uses). The
guest starts in EL1h with DAIF masked and the MMU off, as Linux's boot protocol says.

How each trap is caught (unicorn.md), none of which depends on where code sits:

- HVC, SMC, SVC and undefined instructions reach one UC_HOOK_INTR callback. HVC and SMC
  are exits; SVC and UNDEF never leave the guest on KVM, so the callback performs the
  exception entry into the guest's own vector (:meth:`GuestContext.enter_el1`).
- MRS/MSR: a UC_HOOK_INSN bounded to each site the image scan finds (the site index rides
  in user_data), then one global hook for the rest (code written at run time). A store
  into a scanned site marks it stale, and its hook falls back to the global path.
- WFI/WFE: a UC_HOOK_CODE bounded to each scanned one; an unhooked WFI makes
  ``emu_start`` return past it, and the run loop takes that as the WFI exit.
- MMIO: everything outside RAM is mapped as memory watched by a UC_HOOK_MEM_READ/WRITE,
  where the PC is the faulting instruction itself. Its syndrome is decoded from that
  instruction (:mod:`.decode`). Only the GICv2 CPU interface, which a guest reaches
  without an exit, stays an ``mmio_map`` region (no syndrome needed there).

Each callback runs the whole round trip (:meth:`Vcpu.world_switch`) and returns to the
guest without stopping the emulator. The run loop gives Unicorn whole quanta of guest
instructions, which the system counter turns into simulated time.
"""

from __future__ import annotations

import ctypes
import functools
import math
import mmap
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import capstone
from unicorn import (
    UC_ARCH_ARM64,
    UC_ERR_FETCH_PROT,
    UC_ERR_FETCH_UNMAPPED,
    UC_HOOK_CODE,
    UC_HOOK_INSN,
    UC_HOOK_INTR,
    UC_HOOK_MEM_FETCH_PROT,
    UC_HOOK_MEM_FETCH_UNMAPPED,
    UC_HOOK_MEM_READ,
    UC_HOOK_MEM_READ_UNMAPPED,
    UC_HOOK_MEM_WRITE,
    UC_HOOK_MEM_WRITE_UNMAPPED,
    UC_MEM_WRITE,
    UC_MODE_ARM,
    UC_PROT_ALL,
    UC_PROT_READ,
    UC_PROT_WRITE,
    Uc,
    UcError,
)
from unicorn import arm64_const as a64
from unicorn.unicorn_py3.arch.arm64 import HOOK_INSN_SYS_CFUNC, UcRegCP64
from unicorn.unicorn_py3.unicorn import (
    HOOK_CODE_CFUNC,
    HOOK_INTR_CFUNC,
    HOOK_MEM_ACCESS_CFUNC,
    HOOK_MEM_INVALID_CFUNC,
    MMIO_READ_CFUNC,
    MMIO_WRITE_CFUNC,
    uc_hook_h,
    uclib,
)

from . import stage1
from .board import REDIST_DEFAULT
from .budget import RunGuard, check_deadline
from .decode import (
    ESR_IL,
    HVC_BITS,
    HVC_MASK,
    WFE,
    WFI,
    LdstSite,
    decode_data_access,
    decode_ldst,
    decode_sysreg,
    sysreg_esr,
)
from .errors import BudgetExceeded, GuestFault, GuestImageError, WorldswitchError
from .events import Exit
from .hw.gic_v2 import GICC_IAR, GicV
from .hw.serial8250 import UART_BASE, UART_SIZE, Serial8250
from .hw.sys_counter import no_turn
from .kvm.arch_timer import VTIMER_PPI
from .kvm.arm import GICD_BASE, Vcpu
from .kvm.psci import PSCI_TAKES_ARGS
from .kvm.sys_regs import SysRegParams, sysreg_name
from .memo import Part, build_cache
from .spin import NOP, Loop, analyse, classify

RAM_BASE = 0x80000000
RAM_SIZE = 0x4000000  # 64 MiB: the default --mem
LOAD_OFFSET = 0x80000  # the arm64 Image's text_offset, which kvmtool assumes for a flat binary
LOAD_ADDR = RAM_BASE + LOAD_OFFSET
MAX_MEM_MB = 3 << 10  # RAM ends below 4 GiB + 2 GiB; kvmtool's 32-bit-friendly layout allows 3 GiB
MAX_IMAGE = RAM_SIZE - LOAD_OFFSET
# emu_start needs an end address; reaching this one (a VA no guest maps) is reported as a fault
RUN_UNTIL = 1 << 63
GICC_BASE, GICC_SIZE = 0x3FFD0000, 0x20000
REDIST_SIZE = 0x20000  # one vCPU: RD_base and SGI_base frames
#: guest instructions per run-loop turn: the granularity of the guest's instruction time
QUANTUM = 200_000
#: the turn of each vCPU while several run: the grain of their interleaving
SMP_QUANTUM = 2_000
#: the most a delay loop's clock read fast-forwards the clock, in cycles (10 µs at 2 GHz)
SPIN_STEP_MAX = 20_000
B_SELF = 0x14000000  # b . : the one instruction whose step leaves the PC where it was
#: the longest loop iteration the spin-loop probe follows (core/spin.py)
PROBE_MAX = 32
#: after a failed probe, quanta without one (doubling up to this many)
PROBE_BACKOFF_MAX = 64
# x0..x30, SP, NZCV: the state core/spin.py compares between a loop's iterations
GPR_IDS = [a64.UC_ARM64_REG_X0 + i for i in range(29)] + [
    a64.UC_ARM64_REG_X29, a64.UC_ARM64_REG_X30, a64.UC_ARM64_REG_SP, a64.UC_ARM64_REG_NZCV]

EXCP_UDEF, EXCP_SWI, EXCP_PREFETCH_ABORT, EXCP_DATA_ABORT, EXCP_HVC, EXCP_SMC = 1, 2, 3, 4, 11, 13
ESR_EC_SVC64 = 0x15
ESR_EC_IABT_LOW, ESR_EC_IABT_CUR, ESR_EC_DABT_LOW, ESR_EC_DABT_CUR = 0x20, 0x21, 0x24, 0x25
PMU_TRAPPED_CRM = (12, 13, 14)

# Non-secure EL1 under an EL2 (unicorn.md): SCR_EL3 = NS | HCE | RW; HCR_EL2 = RW | IMO | FMO,
# and VI (bit 7) is the virtual IRQ line, driven from the virtual CPU interface's state.
SCR_EL3_VALUE = 0x501
HCR_EL2_VALUE, HCR_VI = 0x80000018, 1 << 7
SCR_EL3_KEY = (3, 6, 1, 1, 0)
HCR_EL2_KEY = (3, 4, 1, 1, 0)
SPSR_EL1_KEY = (3, 0, 4, 0, 0)
SCTLR_EL1_KEY, TCR_EL1_KEY = (3, 0, 1, 0, 0), (3, 0, 2, 0, 2)
PSTATE_EL1H_MASKED = 0x3C5  # EL1h with D, A, I and F set: the boot state and every exception entry

XREG = [getattr(a64, f"UC_ARM64_REG_X{n}") for n in range(31)] + [a64.UC_ARM64_REG_XZR]
RT_OF_REG = {reg: n for n, reg in enumerate(XREG)}  # a hook's Unicorn register id -> Rt
ARG_REGS = (a64.UC_ARM64_REG_X1, a64.UC_ARM64_REG_X2, a64.UC_ARM64_REG_X3)


@dataclass(frozen=True)
class VmConfig:
    """What ``lkvm run`` is told about the VM (its option names)."""

    mem_mb: int = RAM_SIZE >> 20
    cpus: int = 1
    params: str = ""  # the kernel command line: /chosen/bootargs
    strict_mmio: bool = False  # an access no device claims is an error instead of a warning
    console: Callable[[bytes], None] | None = None  # where the UART's output goes as it comes
    clock: str = "model"  # "guest": the counter ignores modelled exit costs (transparency checks)


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
    # derived once: a trap at this site reads them and computes nothing
    key: tuple[int, int, int, int, int] = field(init=False, compare=False)
    esr: int = field(init=False, compare=False)

    def __post_init__(self) -> None:
        key = (self.op0, self.op1, self.crn, self.crm, self.op2)
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "esr", sysreg_esr(*key, self.rt, self.is_read))


@dataclass
class Scan:
    sysregs: list[SysregSite]
    # WFI and WFE addresses. (Not YIELD: with a code hook on a YIELD, Unicorn 2.1.4 was seen
    # to spin inside emu_start for ever, so a YIELD loop ends its turn at the quantum.)
    wfxs: list[int]


def load_image(path: str, max_size: int = MAX_IMAGE) -> bytes:
    """Read and check a flat binary guest image (AArch64 or AArch32)."""
    try:
        with open(path, "rb") as f:
            data = f.read(max_size + 1)
    except OSError as e:
        raise GuestImageError(f"cannot read guest image {path}: {e.strerror}") from None
    if not data:
        raise GuestImageError(f"guest image {path} is empty")
    if len(data) > max_size:
        raise GuestImageError(f"guest image {path} is larger than the {max_size >> 20} MiB the machine can load")
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
    """Find the trap sites worth a hook of their own: every MRS/MSR and WFI/WFE.

    Every word up to the end of the code is decoded, data included: a site found in data
    is hooked but never executed. The scan is only the fast path; what it misses (code
    the guest writes at run time) is caught by the global hooks."""
    if next(capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM).disasm_lite(code[:4], base), None) is None:
        raise GuestImageError("the image does not start with a valid instruction for its architecture")
    sysregs: list[SysregSite] = []
    wfxs: list[int] = []
    words = memoryview(code)[: code_extent(code)].cast("I")
    for i, w in enumerate(words):
        if not i & 0xFFFF:
            check_deadline(deadline, "scanning the guest image")
        if (w & 0xFFD00000) == 0xD5100000:
            sysregs.append(SysregSite(base + 4 * i, *decode_sysreg(w)))  # type: ignore[misc]
        elif w == WFI or w == WFE:
            wfxs.append(base + 4 * i)
    return Scan(sysregs, wfxs)


@functools.cache
def emu_counter_offset() -> int:
    """Where Unicorn keeps the number of instructions the current ``emu_start`` has begun.

    ``emu_start(..., count)`` counts instructions with a code hook of its own
    (``hook_count_cb`` in uc.c, into ``uc_struct.emu_counter``), which the run loop pays
    for anyway. Reading that field lets a clock read inside a turn see the instructions
    run since the turn began, at no cost per instruction. The field is private, so its
    place is found here, once, on a core that ran a known count, and checked with a
    second count; Unicorn is pinned, and any other layout is an error, never a guess."""
    found = None
    for count in (1234, 777):
        uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        uc.mem_map(0x10000, 0x4000)
        uc.mem_write(0x10000, NOP.to_bytes(4, "little") * 0x1000)
        uc.emu_start(0x10000, 0x14000, 0, count)
        base = ctypes.cast(uc._uch, ctypes.c_void_p).value or 0
        # the hook stops the core when the count passes ``count``: emu_counter is count + 1,
        # and emu_count, the field after it, is count
        hits = {off for off in range(0, 2048, 8)  # the struct is larger; 1368 in 2.1.4
                if ctypes.c_size_t.from_address(base + off).value == count + 1
                and ctypes.c_size_t.from_address(base + off + 8).value == count}
        found = hits if found is None else found & hits
    if not found or len(found) != 1:
        raise WorldswitchError("cannot find Unicorn's instruction counter: worldswitch needs unicorn==2.1.4 "
                               "(pip install -e . installs it)")
    return found.pop()


@functools.cache
def unicorn_knows(op0: int, op1: int, crn: int, crm: int, op2: int, is_read: bool) -> bool:
    """Does Unicorn 2.1.4 implement this system register at EL1? (It UNDEFs the ones it lacks.)"""
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


def _takes_site(handler: Any) -> bool:
    """A handler called as ``handler(site, value)``, like KVM's (the clock's count reads)."""
    code = getattr(handler, "__code__", None)
    return code is not None and code.co_argcount - (1 if hasattr(handler, "__self__") else 0) == 2


WORD = struct.Struct("<I")
DWORD = struct.Struct("<Q")


def read_word(uc: Uc, buf: Any, addr: int) -> int | None:
    """One little-endian word of the guest's physical memory through Unicorn (None: unmapped)."""
    if uclib.uc_mem_read(uc._uch, addr, buf, 4):
        return None
    return int.from_bytes(buf.raw[:4], "little")


class Regs:
    """Raw register access: about 0.3 µs a call instead of the binding's 2.5 µs."""

    def __init__(self, uc: Uc) -> None:
        self.h = uc._uch
        self.val = ctypes.c_uint64()
        self.ref = ctypes.byref(self.val)
        self.cp = UcRegCP64()
        self.cp_ref = ctypes.byref(self.cp)

    def read(self, reg: int) -> int:
        uclib.uc_reg_read(self.h, reg, self.ref)
        return self.val.value

    def write(self, reg: int, value: int) -> None:
        self.val.value = value
        uclib.uc_reg_write(self.h, reg, self.ref)

    def read_cp(self, key: tuple[int, int, int, int, int]) -> int:
        """A system register Unicorn has no name for (SCTLR_EL1, TCR_EL1), through CP_REG."""
        cp = self.cp
        cp.op0, cp.op1, cp.crn, cp.crm, cp.op2 = key
        uclib.uc_reg_read(self.h, a64.UC_ARM64_REG_CP_REG, self.cp_ref)
        return cp.val

    def write_cp(self, key: tuple[int, int, int, int, int], value: int) -> None:
        """A system register through CP_REG: the write that makes Unicorn rebuild its EL state."""
        cp = self.cp
        cp.op0, cp.op1, cp.crn, cp.crm, cp.op2 = key
        cp.val = value
        uclib.uc_reg_write(self.h, a64.UC_ARM64_REG_CP_REG, self.cp_ref)


class GuestContext:
    """The guest's EL1 context as KVM and the CPU's exception entry reach it."""

    def __init__(self, regs: Regs, ram_base: int, ram_end: int) -> None:
        self.regs = regs
        self.ram_base, self.ram_end = ram_base, ram_end
        self.pc_of_trap = 0  # the instruction that trapped, for an exception KVM injects
        self.injected = False  # an exception entry moved the PC: the trap must not advance it

    def trap_pc(self) -> int:
        return self.pc_of_trap

    def current_el(self) -> int:
        return (self.regs.read(a64.UC_ARM64_REG_PSTATE) >> 2) & 3

    def enter_el1(self, esr: int, far: int | None, elr: int) -> None:
        """A synchronous exception taken to EL1, written as the hardware's entry writes it:
        ESR/FAR/ELR/SPSR_EL1, SP_ELx selection, PSTATE = EL1h with DAIF masked, and the PC
        at the vector for the EL and stack it came from."""
        r = self.regs
        pstate = r.read(a64.UC_ARM64_REG_PSTATE)
        el, spsel = (pstate >> 2) & 3, pstate & 1
        offset = 0x400 if el == 0 else 0x200 if spsel else 0x000
        r.write(a64.UC_ARM64_REG_ESR_EL1, esr)
        if far is not None:
            r.write(a64.UC_ARM64_REG_FAR_EL1, far)
        r.write(a64.UC_ARM64_REG_ELR_EL1, elr)
        if el == 0 or not spsel:  # the live SP was SP_EL0: bank it, take SP_EL1
            r.write(a64.UC_ARM64_REG_SP_EL0, r.read(a64.UC_ARM64_REG_SP))
            sp = r.read(a64.UC_ARM64_REG_SP_EL1)
            r.write(a64.UC_ARM64_REG_PSTATE, PSTATE_EL1H_MASKED)
            r.write(a64.UC_ARM64_REG_SP, sp)
        else:
            r.write(a64.UC_ARM64_REG_PSTATE, PSTATE_EL1H_MASKED)
        vector = r.read(a64.UC_ARM64_REG_VBAR_EL1) + offset
        if not self.ram_base <= vector < self.ram_end:
            # on KVM the fetch would abort, and that abort would abort again, for ever
            raise GuestFault(f"guest took an exception (ESR_EL1 0x{esr:x}, from pc 0x{elr:x}) but its vector "
                             f"table (VBAR_EL1 0x{vector - offset:x}) is not in RAM: it would loop for ever")
        r.write_cp(SPSR_EL1_KEY, pstate)  # also rebuilds Unicorn's cached EL state
        r.write(a64.UC_ARM64_REG_PC, vector)
        self.injected = True


OFF, RUNNING, BLOCKED = "off", "running", "blocked"


class Cpu:
    """One vCPU's CPU: its Unicorn core over the VM's shared RAM, and the trap hooks."""

    def __init__(self, vm: Machine, vcpu: Vcpu, cpu_id: int) -> None:
        self.vm = vm
        self.config = vm.config
        self.ram_size = vm.ram_size
        self.code = vm.code
        self.scan = vm.scan
        self.stale = vm.stale  # hooked sites a guest store may have changed (the code is shared)
        self.vcpu = vcpu
        self.cpu_id = cpu_id
        self.platform = vcpu.platform
        self.redist_base = vm.redist_base
        self.uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
        # the instructions the current turn has begun (emu_counter_offset): read, never written
        self.emu_counter = ctypes.c_size_t.from_address(
            (ctypes.cast(self.uc._uch, ctypes.c_void_p).value or 0) + emu_counter_offset())
        self.share = 1  # how many vCPUs share the clock this turn
        self.whole = False  # the last turn ran its whole quantum
        self.regs = Regs(self.uc)
        self.ctxt = vcpu.ctxt = GuestContext(self.regs, RAM_BASE, RAM_BASE + self.ram_size)
        # for observers (tracing) only: nothing on the trap path calls these
        vcpu.read_guest_pc = lambda: self.regs.read(a64.UC_ARM64_REG_PC)
        vcpu.read_guest_insn = self.read_insn
        vcpu.mmio_pc_exact = True
        self._keep: list[Any] = []  # ctypes callbacks must outlive the run
        self._insn_buf = ctypes.create_string_buffer(8)
        self._sysreg_serve: dict[tuple[tuple[int, int, int, int, int], bool], tuple[Any, ...]] = {}
        self.vi = False
        self.lrf = vcpu.hyp_if.lrf
        self.host_gic = vcpu.host_gic
        self.lr_state_shift = self.lrf.codec.state_shift
        self.hcr_vi = []  # HCR_EL2 without and with VI, as CP_REG writes (byref keeps each alive)
        for value in (HCR_EL2_VALUE, HCR_EL2_VALUE | HCR_VI):
            cp = UcRegCP64()
            cp.op0, cp.op1, cp.crn, cp.crm, cp.op2 = HCR_EL2_KEY
            cp.val = value
            self.hcr_vi.append(ctypes.byref(cp))
        self.virq_group = 1 if self.platform.guest_gic == 3 else 0
        self.fetch_fault: int | None = None
        self.resume_at: int | None = None
        self.hooked_wfx_pc = -1  # the WFI/WFE a hook just handled, so the run loop does not take it twice
        self._last_read: tuple[int, int, float] | None = None  # the last clock read: (pc, counters, insns)
        self._spin = 1
        self.cut = False  # stopped early on purpose: resume where it stands, count nothing
        self.spinning = False  # its last turn ended in a spin: it waits for time or another vCPU
        self.loop: Loop | None = None  # its last turn ended in a loop it could skip (core/spin.py)
        self.probing = False  # stepping a loop to see whether it can be skipped: no trap may act
        self.probe_fault = False
        self._probe_wait, self._probe_backoff = 0, 1
        self.state = OFF
        self.loaded = False  # vcpu_load ran: vcpu_put must too
        self.pc = 0  # where the core resumes
        # memoised round trips (core/memo.py): the IRQ line this CPU drives is part of the state
        self.memo = build_cache(vcpu, self, [Part(self, ("vi",), "the virtual IRQ line")], on=vm.cache,
                                verify=vm.verify_cache, log=vm.log,
                                why_off="several vCPUs (a round trip reaches the others' state)"
                                if vm.config.cpus > 1 else None)
        self._build()

    # ---- set-up ------------------------------------------------------------------------
    def _hook(self, kind: int, cb: Any, begin: int = 1, end: int = 0, ud: int | None = 0, *extra: Any) -> None:
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
        self._keep += [rcb, wcb]
        (rfn, rud), (wfn, wud) = self._stand_in("ws_gicv_read", rcb), self._stand_in("ws_gicv_write", wcb)
        err = uclib.uc_mmio_map(self.uc._uch, base, size, rfn, rud, wfn, wud)
        if err:
            raise UcError(err)

    def _stand_in(self, name: str, cb: Any, ud: int = 0, site: int = 0) -> tuple[Any, Any]:
        """What to register for the Python callback ``cb``: the compiled hit path's hook
        ``name`` standing in for it (it calls ``cb`` on a miss), or ``cb`` itself."""
        if self.fast is None:
            return cb, ud or None
        self._keep.append(cb)
        fn, fud = self.fast.hook(name, cb, ud, site)
        return ctypes.c_void_p(ctypes.cast(fn, ctypes.c_void_p).value), fud

    def _compiled_hits(self) -> Any:
        """The compiled hit path for this CPU's round-trip cache (core/fasthit.py), or None."""
        memo = self.memo
        if not memo.on:
            return None
        from .fasthit import FastHits, library, why_not

        lib = library()
        if lib is None:
            memo.log(f"compiled hit path unavailable ({why_not()}): cache hits run in Python")
            return None
        fast = FastHits(lib, uclib, self.vm.ram_ptr, RAM_BASE, self.ram_size, (HCR_EL2_VALUE, HCR_EL2_VALUE | HCR_VI),
                        self.hvc_esr, tuple(PSCI_TAKES_ARGS), len(self.scan.sysregs), memo.check_every)
        memo.fast = fast
        return fast

    def _build(self) -> None:
        uc = self.uc
        ram_end = RAM_BASE + self.ram_size
        uc.mem_map_ptr(RAM_BASE, self.ram_size, UC_PROT_ALL, self.vm.ram_ptr)  # one RAM for every vCPU
        self.hvc_esr = (Exit.HVC64 << 26) | ESR_IL  # ISS (the immediate) built only when observed
        self.fast = self._compiled_hits()
        self._reset()
        self.native_pfr0 = uc.cpr_read(3, 0, 0, 4, 0)
        # Everything below RAM is MMIO: plain memory watched by a hook that sees the exact PC.
        # The GICv2 CPU interface is the exception: stage 2 maps it to GICV, no exit.
        gicv = self.vcpu.gicv if self.platform.guest_gic == 2 else None
        mem_cb, mem_ud = self._stand_in("ws_mmio", HOOK_MEM_ACCESS_CFUNC(self._make_on_mmio()))
        rw = UC_PROT_READ | UC_PROT_WRITE  # device memory is never executed: a fetch there aborts
        if gicv is not None:
            uc.mem_map(0, GICC_BASE, rw)
            uc.mem_map(GICC_BASE + GICC_SIZE, RAM_BASE - GICC_BASE - GICC_SIZE, rw)
            self._mmio(GICC_BASE, GICC_SIZE, self._gicv_read(gicv), self._gicv_write(gicv))
            self._hook(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, mem_cb, 0, GICC_BASE - 1, mem_ud)
            self._hook(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, mem_cb, GICC_BASE + GICC_SIZE, RAM_BASE - 1, mem_ud)
        else:
            uc.mem_map(0, RAM_BASE, rw)
            self._hook(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, mem_cb, 0, RAM_BASE - 1, mem_ud)
        # Above RAM: mapped a page at a time when first touched, then watched the same way
        self._hook(UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE, mem_cb, ram_end, (1 << 64) - 1, mem_ud)
        self._hook(UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED,
                   HOOK_MEM_INVALID_CFUNC(self._on_data_unmapped))
        self._hook(UC_HOOK_MEM_FETCH_UNMAPPED | UC_HOOK_MEM_FETCH_PROT, HOOK_MEM_INVALID_CFUNC(self._on_fetch_unmapped))
        intr_cb, intr_ud = self._stand_in("ws_intr", HOOK_INTR_CFUNC(self._on_intr))
        self._hook(UC_HOOK_INTR, intr_cb, ud=intr_ud)
        # MRS/MSR: the scanned sites first (a hook each, the site in user_data), then one
        # global hook per direction for code the scan could not see.
        self.sysreg_sites: list[tuple[Any, ...] | None] = []
        self.site_index: dict[int, int] = {}  # a hooked site's address -> its index in the compiled table
        sys_cb = HOOK_INSN_SYS_CFUNC(self._make_on_sysreg())
        for site in self.scan.sysregs:
            serve = self._serve(site.key, site.is_read)
            if serve is None:
                continue
            self.sysreg_sites.append((site, *serve))
            n = len(self.sysreg_sites)
            ins = a64.UC_ARM64_INS_MRS if site.is_read else a64.UC_ARM64_INS_MSR
            if self.fast is not None:
                self.fast.site(n - 1, site.addr, site.esr, site.is_read, site.rt, serve[2], serve[4])
                self.site_index[site.addr] = n - 1
            cb, ud = self._stand_in("ws_sysreg", sys_cb, n, n)
            self._hook(UC_HOOK_INSN, cb, site.addr, site.addr, ud, ctypes.c_int(ins))
        for ins in (a64.UC_ARM64_INS_MRS, a64.UC_ARM64_INS_MSR):
            self._hook(UC_HOOK_INSN, sys_cb, 1, 0, 0, ctypes.c_int(ins))
        wfx_cb = HOOK_CODE_CFUNC(self._on_wfx)
        self.scan_words = {addr: int.from_bytes(self.code[addr - LOAD_ADDR:addr - LOAD_ADDR + 4], "little")
                           for addr in self.scan.wfxs}
        for addr in self.scan.wfxs:
            self._hook(UC_HOOK_CODE, wfx_cb, addr, addr)
        # a guest store over a hooked site makes that site's hook stale
        sites = [s.addr for s in self.scan.sysregs] + self.scan.wfxs
        if sites:
            self._hook(UC_HOOK_MEM_WRITE, HOOK_MEM_ACCESS_CFUNC(self._on_code_write), min(sites), max(sites) + 3)

    def _reset(self) -> None:
        """The CPU state kvmtool's vCPU init leaves, and the EL3/EL2 controls that make
        Unicorn behave as the non-secure EL1 of a KVM guest: EL1h, DAIF masked, MMU off."""
        regs = self.regs
        regs.write_cp(SCR_EL3_KEY, SCR_EL3_VALUE)
        regs.write_cp(HCR_EL2_KEY, HCR_EL2_VALUE)
        regs.write(a64.UC_ARM64_REG_PSTATE, PSTATE_EL1H_MASKED)
        regs.write_cp(SPSR_EL1_KEY, 0)
        # MPIDR_EL1 at non-secure EL1 reads VMPIDR_EL2, where KVM puts the vCPU's (Unicorn's
        # own MPIDR is the same in every instance)
        regs.write_cp((3, 4, 0, 0, 5), self.vcpu.mpidr)

    def _serve(self, key: tuple[int, int, int, int, int], is_read: bool) -> tuple[Any, ...] | None:
        """What serves this MRS/MSR, memoised: (handler, takes the site, PC must be advanced
        by hand, may change the virtual IRQ line, a round trip the cache may replay); None
        when Unicorn serves it itself."""
        got = self._sysreg_serve.get((key, is_read), False)
        if got is False:
            handler = self._classify(key, is_read)
            if handler is None:
                got = None
            else:
                # KVM's handlers and the clock's reads take the site and the written value
                kvm = handler == self._trap_sysreg or handler == self._unknown_sysreg or _takes_site(handler)
                icc = (key[0], key[1], key[2]) == (3, 0, 12) or key == (3, 0, 4, 6, 0)
                cached = handler == self._trap_sysreg or icc and not kvm  # core/memo.py
                got = (handler, kvm, not unicorn_knows(*key, is_read), icc and not kvm, cached)
            self._sysreg_serve[key, is_read] = got
        return got

    def _classify(self, key: tuple[int, int, int, int, int], is_read: bool) -> Any:
        """What serves an MRS/MSR: a KVM trap, the virtual CPU interface, an ID register
        override, the simulated counter, or (None) Unicorn itself."""
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
                }.get((key, is_read))
                if serve is not None:
                    return serve
                return self._unknown_sysreg  # an ICV register this model does not implement
            if pf.host_gic == 3 and key == (3, 0, 12, 12, 5) and is_read:
                ich = self.vcpu.hyp_if
                return lambda: ich.sre_el1  # a GICv2 guest sees SRE clear: no sysreg interface
            return None  # no system-register interface (GICv2, or SRE clear): Unicorn UNDEFs it
        if key == (3, 0, 0, 4, 0) and is_read:
            gic = 1 if pf.host_gic == 3 else 0  # ID_AA64PFR0_EL1.GIC: is there a sysreg interface?
            value = (self.native_pfr0 & ~(0xF << 24)) | (gic << 24)
            return lambda: value
        if (op0, op1, crn) == (3, 3, 14) and crm in (0, 3):
            return self._timer_reg(key, is_read)
        if op0 == 2 or (op0 == 3 and crn == 9 and crm in PMU_TRAPPED_CRM and op1 in (0, 3)):
            return self._trap_sysreg  # MDCR_EL2.TDA/TPM: debug and PMU registers trap
        if op0 == 3 and crn in (11, 15):
            return self._trap_sysreg  # HCR_EL2.TIDCP: implementation defined registers trap
        if (op0, op1, crn, crm) == (3, 3, 14, 2):
            return self._trap_sysreg  # CNTP_*: v4.5 clears CNTHCTL_EL2.EL1PCEN, so they trap
        return None

    def _timer_reg(self, key: tuple[int, ...], is_read: bool) -> Any:
        """CNTFRQ, CNTPCT, CNTVCT and CNTV_*: the guest's view of the generic timer, on the
        simulated system counter (Unicorn's would be host time). The reads that depend on the
        count take the trapping site, to notice a guest spinning on the clock."""
        vcpu = self.vcpu
        timer = vcpu.timer
        crm, op2 = key[3], key[4]
        if crm == 0:
            if op2 in (1, 2) and is_read:  # CNTPCT, CNTVCT: CNTVOFF is zero
                return self._read_counter
            if op2 == 0 and is_read:
                frq = self.platform.cntfrq_hz
                return lambda: frq
            return None  # a write to CNTFRQ at EL1, or a read-only counter: Unicorn UNDEFs it
        if op2 == 1:
            if is_read:  # ISTATUS: the condition is met, whatever IMASK says
                def read_ctl(site: SysregSite, value: int) -> int:
                    now = self._read_counter(site, value)
                    return timer.cntv_ctl | (4 if timer.cntv_ctl & 1 and timer.cntv_cval <= now else 0)
                return read_ctl
            return lambda v: self._timer_write("cntv_ctl", v & 3)
        if op2 == 2:
            return (lambda: timer.cntv_cval) if is_read else (lambda v: self._timer_write("cntv_cval", v))
        if is_read:  # TVAL
            return lambda site, value: (timer.cntv_cval - self._read_counter(site, value)) & 0xFFFFFFFF
        return lambda v: self._timer_write("cntv_cval", vcpu.counter + ((v ^ 0x80000000) - 0x80000000))

    def _read_counter(self, site: SysregSite, value: int = 0) -> int:
        """The count a guest read sees; the timer's interrupt comes first if it is due (on
        hardware it fires the moment the count reaches CVAL, before any later read).

        A guest that reads the clock again from the same instruction with nothing else
        counted in between (no exit, same quantum) is waiting for it: a delay loop. Each such
        read fast-forwards the clock, by a step that doubles up to :data:`SPIN_STEP_MAX`
        cycles, so a wait of 100 ms does not cost 10^8 emulated instructions. The guest sees
        its wait end as it would, after fewer turns of its loop."""
        self.vcpu.clock.used = True
        self._spin_point(site.addr)
        self._timer_irq_if_due()
        return self.vcpu.counter

    def _spin_point(self, pc: int) -> None:
        """A clock read at ``pc``. Met again with nothing counted in between (no
        exit, same quantum), the vCPU is spinning: it waits for time, or for another vCPU.
        With another vCPU able to run, its turn ends (``spinning``: the scheduler warps time
        once every running vCPU spins); alone, it fast-forwards the clock."""
        clock = self.vcpu.clock
        mark = (pc, sum(clock.c), clock.guest_insns)
        if mark != self._last_read:
            self._last_read, self._spin = mark, 1
            return
        if self.vm.others_running(self.cpu_id):
            self.spinning = self.cut = True
            uclib.uc_emu_stop(self.uc._uch)
        else:
            self._spin = min(self._spin * 2, SPIN_STEP_MAX)
            clock.idle_cycles += self._spin

    def _timer_write(self, field: str, value: int) -> None:
        self.memo.enter()
        self.vcpu.clock.used = True
        setattr(self.vcpu.timer, field, value & ((1 << 64) - 1))
        self._timer_irq_if_due()

    # ---- interrupts ----------------------------------------------------------------------
    def _update_vi(self) -> None:
        """Drive HCR_EL2.VI as the level of "the virtual CPU interface signals an interrupt"."""
        lrf = self.lrf
        if not self.vi and not any(lrf.lr):
            return  # the line is low and every LR empty: the common exit, decided in C
        # only a pending LR can be signalled: most calls (after an IAR, an EOI, an exit
        # with nothing queued) end at this scan
        sh = self.lr_state_shift
        for v in lrf.lr:
            if (v >> sh) & 1:
                level = lrf._deliverable(self.virq_group)[0] >= 0
                break
        else:
            level = False
        if level != self.vi:
            self.set_vi(level)

    def set_vi(self, level: bool) -> None:
        self.vi = level
        if self.fast is not None:
            self.fast.vi.value = level
        # twice per interrupt: the two CP_REG writes are built once (_build)
        uclib.uc_reg_write(self.regs.h, a64.UC_ARM64_REG_CP_REG, self.hcr_vi[level])

    def _gic_lines(self) -> None:
        """After the guest's EOI: the GIC's maintenance interrupt (an EOI KVM asked to hear
        of) is a host IRQ, so an exit; and a physical interrupt the EOI deactivated (an LR
        with HW set: the timer's) is signalled again at once if its line is still high."""
        lrf = self.lrf
        if lrf.maintenance:
            lrf.maintenance = False
            self._exit(Exit.IRQ << 26)
        if lrf.phys_deactivated:
            lrf.phys_deactivated = False
            self._timer_irq_if_due()

    def timer_can_signal(self) -> bool:
        """Could the virtual timer's condition reach this vCPU: take it out of the guest
        (its physical PPI inactive, as KVM leaves it while nothing is injected), or wake it
        from WFI (no interrupt already injected)?"""
        timer = self.vcpu.timer
        if timer.cntv_ctl & 3 != 1:  # disabled or masked: the line is low
            return False
        if self.state == BLOCKED:
            return not timer.irq_level
        return not self.host_gic.is_active(VTIMER_PPI)

    def _timer_irq_if_due(self) -> None:
        """The virtual timer's condition met while the guest runs: on hardware its PPI takes
        the CPU out of the guest (an IRQ exit), and KVM injects it on the way back in."""
        if self.timer_can_signal() and self.vcpu.timer.should_fire(self.vcpu.counter):
            self._exit(Exit.IRQ << 26)

    # ---- the trap callbacks (the hot path) -------------------------------------------
    def _fail(self, e: BaseException) -> None:
        if self.vm.error is None:
            self.vm.error = e
        uclib.uc_emu_stop(self.uc._uch)

    def _exit(self, esr: int, *operands: Any) -> bool:
        """One world switch; on a return to userspace, what kvmtool does before KVM_RUN again.
        True when the guest goes on at once; False when this vCPU stops (the VM ended, or
        it blocks in WFI or powered off) and the scheduler takes over."""
        self.memo.enter()
        vcpu = self.vcpu
        if vcpu.world_switch(esr, *operands):
            self._update_vi()
            if vcpu.yielded:  # WFE: kvm_vcpu_on_spin, let another vCPU run
                vcpu.yielded = False
                if self.vm.nr_on > 1:
                    uclib.uc_emu_stop(self.uc._uch)
            return True
        return self._exited_to(operands[-1] if operands and isinstance(operands[-1], list) else None)

    def _exited_to(self, out: list[int] | None) -> bool:
        """The rest of :meth:`_exit` when the exit did not go straight back into the guest:
        to userspace (KVM_EXIT_MMIO, answered as kvmtool does, ``out`` taking a read's
        value), or the vCPU stops (the VM ended, it blocks in WFI, it powered off)."""
        vcpu = self.vcpu
        mmio = vcpu.run_mmio
        if mmio is None:
            if vcpu.blocked:
                self.state = BLOCKED
            elif vcpu.powered_off:
                self.state = OFF
            else:  # a system event: the VM ends
                self.vm.finished = True
            uclib.uc_emu_stop(self.uc._uch)
            return False
        if out is not None:
            out[0] = self.vm.kvm_cpu_emulate_mmio(*mmio)
        else:
            self.vm.kvm_cpu_emulate_mmio(*mmio)
        vcpu.reenter()
        self._update_vi()
        return True

    def _on_intr(self, uch: Any, intno: int, ud: Any) -> None:
        try:
            regs = self.regs
            ctxt = self.ctxt
            if intno == EXCP_HVC:
                x0 = regs.read(a64.UC_ARM64_REG_X0)
                args = [x0, *((regs.read(r) for r in ARG_REGS) if x0 in PSCI_TAKES_ARGS else (0, 0, 0))]
                esr = self.hvc_esr
                if self.vcpu.on_guest_exit is not None:  # only an observer reads the ISS
                    word = self.read_insn(regs.read(a64.UC_ARM64_REG_PC) - 4) or 0
                    esr |= (word >> 5) & 0xFFFF if word & HVC_MASK == HVC_BITS else 0
                ctxt.injected = False
                memo = self.memo
                if memo.live:
                    out = memo.serve((3, esr, *args), self._hvc_trip, esr, args)
                else:
                    out = self._hvc_trip(esr, args)
                    if self.vcpu.entries >= memo.wake_at:  # a sleeping cache's alarm
                        memo.wake()
                if out is not None and out != x0:
                    regs.write(a64.UC_ARM64_REG_X0, out)
                return
            pc = regs.read(a64.UC_ARM64_REG_PC)
            if intno == EXCP_SMC:  # HCR_EL2.TSC: an exit, with the SMC itself as the return address
                ctxt.pc_of_trap = pc - 4
                self._exit((Exit.SMC64 << 26) | ESR_IL)
            elif intno == EXCP_SWI:  # SVC: the guest's own vector, no exit
                word = self.read_insn(pc - 4) or 0
                ctxt.enter_el1((ESR_EC_SVC64 << 26) | ESR_IL | ((word >> 5) & 0xFFFF), None, pc)
            elif intno == EXCP_UDEF:  # an undefined instruction (HVC at EL0 included): no exit
                ctxt.enter_el1(ESR_IL, None, pc)
            elif intno in (EXCP_PREFETCH_ABORT, EXCP_DATA_ABORT) and self._stage1_abort(intno, pc):
                pass  # the guest takes it at its own vector, as on KVM: no exit
            elif intno == EXCP_PREFETCH_ABORT and not RAM_BASE <= pc < RAM_BASE + self.ram_size:
                raise GuestFault(f"guest branched to 0x{pc:x}, outside the machine's memory (an address the "
                                 "CPU cannot even translate: Unicorn reports a prefetch abort without its syndrome)")
            else:
                what = {EXCP_PREFETCH_ABORT: "a stage-1 prefetch abort", EXCP_DATA_ABORT: "a stage-1 data abort"}
                raise GuestFault(f"guest took {what.get(intno, f'exception {intno}')} at pc 0x{pc:x} that its "
                                 "page tables do not explain (an address size or external abort?): Unicorn does "
                                 "not report the syndrome, so worldswitch cannot deliver it")
        except BaseException as e:  # noqa: BLE001 - raw callbacks swallow exceptions
            self._fail(e)

    def _hvc_trip(self, esr: int, args: list[int]) -> int | None:
        """The round trip of an HVC: x0 as the guest gets it back (None: the vCPU stopped)."""
        # Cpu._exit, its common case inlined (a hypercall never yields or goes to userspace)
        if self.vcpu.world_switch(esr, args):
            self._update_vi()
            return args[0]
        self._exited_to(None)
        return None

    def _stage1_abort(self, intno: int, pc: int) -> bool:
        """An abort the guest's own page tables cause (MMU on): walk them for the syndrome
        the hardware would write and enter the guest's vector with it (ARM ARM D8; never an
        exit on KVM). False if the MMU is off or the walk finds no fault to report."""
        regs = self.regs
        sctlr = regs.read_cp(SCTLR_EL1_KEY)
        if not sctlr & 1:
            return False
        tcr = regs.read_cp(TCR_EL1_KEY)
        ttbr0, ttbr1 = regs.read(a64.UC_ARM64_REG_TTBR0_EL1), regs.read(a64.UC_ARM64_REG_TTBR1_EL1)
        el = self.ctxt.current_el()

        def at(va: int, access: str) -> stage1.Fault | int | None:
            return stage1.walk(self._read_phys64, va, tcr, ttbr0, ttbr1, sctlr, el, access)

        if intno == EXCP_PREFETCH_ABORT:
            fault = at(pc, "fetch")
            if not isinstance(fault, stage1.Fault):
                return False
            ec = ESR_EC_IABT_LOW if el == 0 else ESR_EC_IABT_CUR
            self.ctxt.enter_el1((ec << 26) | ESR_IL | fault.fsc, pc, pc)
            return True
        where = at(pc, "fetch")  # the faulting instruction, read through the same tables
        word = self.read_insn(where) if isinstance(where, int) else None
        access = decode_data_access(word, pc, self.regs.read) if word is not None else None
        if access is None:
            return False
        va, is_write = access
        fault = at(va, "write" if is_write else "read")
        if not isinstance(fault, stage1.Fault):
            return False
        ec = ESR_EC_DABT_LOW if el == 0 else ESR_EC_DABT_CUR
        # ISV is 0: an abort reported at EL1 carries no instruction syndrome (as QEMU builds it)
        self.ctxt.enter_el1((ec << 26) | ESR_IL | (int(is_write) << 6) | fault.fsc, va, pc)
        return True

    def _read_phys64(self, pa: int) -> int | None:
        off = pa - RAM_BASE
        return DWORD.unpack_from(self.vm.ram, off)[0] if 0 <= off <= self.ram_size - 8 else None

    def _make_on_sysreg(self) -> Any:
        """The MRS/MSR callback. Locals bound once: this runs once per trapped access."""
        sites = self.sysreg_sites
        h, val, ref = self.uc._uch, self.regs.val, self.regs.ref
        reg_write = uclib.uc_reg_write
        pc_reg = a64.UC_ARM64_REG_PC
        from_address = ctypes.c_uint64.from_address
        string_at = ctypes.string_at
        unpack = struct.Struct("<5I").unpack
        ctxt, memo, vcpu = self.ctxt, self.memo, self.vcpu
        stale = self.stale
        trip = self._sysreg_trip

        def on_sysreg(uch: Any, reg: int, pcp: int, ud: Any) -> int:
            try:
                entry = sites[ud - 1] if ud else None
                if entry is None or stale and entry[0].addr in stale:
                    # the global hook (or a stale site): decode from what Unicorn reports
                    crn, crm, op0, op1, op2 = unpack(string_at(pcp, 20))
                    pc = self.regs.read(pc_reg)
                    word = self.read_insn(pc) or 0
                    is_read = bool((word >> 21) & 1)
                    serve = self._serve((op0, op1, crn, crm, op2), is_read)
                    if serve is None:
                        return 0  # Unicorn's own register
                    entry = (SysregSite(pc, op0, op1, crn, crm, op2, RT_OF_REG.get(reg, 31), is_read), *serve)
                site, needs_pc, cached = entry[0], entry[3], entry[5]
                ctxt.injected = False
                written = 0 if site.is_read else from_address(pcp + 24).value
                if cached:  # a round trip through the model (a KVM trap, the ICV interface)
                    if memo.live:
                        value = memo.serve((2, site.addr, site.esr, written), trip, entry, written)
                    else:
                        value = trip(entry, written)
                        if vcpu.entries >= memo.wake_at:  # a sleeping cache's alarm
                            memo.wake()
                else:  # the clock, the timer, a constant: they read the model's objects
                    memo.settle()
                    value = trip(entry, written)
                if site.is_read and site.rt != 31 and not ctxt.injected:
                    val.value = value
                    reg_write(h, reg, ref)
                if ctxt.injected:
                    # Unicorn ignores a PC written in an MRS/MSR hook (it goes on past the
                    # instruction): stop, and let the run loop resume at the vector
                    self.resume_at = self.regs.read(pc_reg)
                    uclib.uc_emu_stop(h)
                elif needs_pc:
                    val.value = site.addr + 4  # Unicorn lacks the register: it would run it again
                    reg_write(h, pc_reg, ref)
            except BaseException as e:  # noqa: BLE001 - raw callbacks swallow exceptions
                self._fail(e)
            return 1

        return on_sysreg

    def _sysreg_trip(self, entry: tuple[Any, ...], written: int) -> int:
        """Serve one MRS/MSR: the value a read returns (0 for a write)."""
        site, handler, kvm, _, vi, _ = entry
        if site.is_read:
            value = handler(site, 0) if kvm else handler()
        else:
            value = 0
            if kvm:
                handler(site, written)
            else:
                handler(written)
        if vi:
            lrf = self.lrf
            if lrf.maintenance or lrf.phys_deactivated:
                self._gic_lines()
            self._update_vi()
        return value

    def _trap_sysreg(self, site: SysregSite, value: int = 0) -> int:
        p = SysRegParams(*site.key, not site.is_read, value)
        self.ctxt.pc_of_trap = site.addr
        # Cpu._exit, its common case inlined (a trapped register never yields or goes to userspace)
        if self.vcpu.world_switch(site.esr, p):
            self._update_vi()
        else:
            self._exited_to(None)
        return p.regval

    def _unknown_sysreg(self, site: SysregSite, value: int = 0) -> int:
        raise GuestFault(
            f"guest {'read' if site.is_read else 'write'} of system register {sysreg_name(*site.key)} "
            f"at pc 0x{site.addr:x}: the virtual CPU interface of platform {self.platform.name} does not model it"
        )

    def _on_code_write(self, uch: Any, access: int, addr: int, size: int, value: int, ud: Any) -> None:
        """A store into the range of hooked sites: the sites it covers may no longer hold the
        instruction their hook was made for."""
        for site in [s.addr for s in self.scan.sysregs] + self.scan.wfxs:
            if addr < site + 4 and site < addr + size:
                self.stale.add(site)
                if site in self.site_index:
                    self.fast.site_stale(self.site_index[site])

    def _on_wfx(self, uch: Any, addr: int, size: int, ud: Any) -> None:
        try:
            word = self.read_insn(addr) if addr in self.stale else self.scan_words[addr]
            if word not in (WFI, WFE):
                return
            self.hooked_wfx_pc = addr
            self.ctxt.injected = False
            self.ctxt.pc_of_trap = addr
            self.pc = addr + 4  # where a blocked or yielding vCPU resumes
            if self._exit((Exit.WFX << 26) | ESR_IL | (1 if word == WFE else 0)) and not self.ctxt.injected:
                self.regs.write(a64.UC_ARM64_REG_PC, addr + 4)
        except BaseException as e:  # noqa: BLE001
            self._fail(e)

    def _decode_access(self, pc: int, word: int | None, is_write: bool, size: int, addr: int) -> LdstSite:
        """The load/store ``word`` at ``pc`` that made this access, checked: one the
        hardware gives a valid syndrome for, of the size Unicorn reports."""
        site = decode_ldst(word) if word is not None else None
        what = "write" if is_write else "read"
        if site is None or site.is_write != is_write:
            raise GuestFault(f"MMIO {what} of {size} bytes at 0x{addr:x} by pc 0x{pc:x}: the instruction there "
                             f"({'unreadable' if word is None else f'0x{word:08x}'}) is not a {what} worldswitch "
                             "can build a syndrome for")
        if not site.valid:
            raise GuestFault(f"MMIO {what} at 0x{addr:x} by a {site.what} at pc 0x{pc:x}: the hardware reports no "
                             "valid syndrome (ISV=0) for it, so KVM cannot emulate it (v4.5: load/store "
                             "instruction decoding not implemented)")
        if site.size != size:
            raise GuestFault(f"MMIO access of {size} bytes at 0x{addr:x} by pc 0x{pc:x}, whose instruction "
                             f"transfers {site.size}: an unaligned device access")
        return site

    def _make_on_mmio(self) -> Any:
        regs = self.regs
        pc_reg = a64.UC_ARM64_REG_PC
        uch_ = self.uc._uch
        buf = ctypes.create_string_buffer(8)
        unpack, ram, last = WORD.unpack_from, self.vm.ram, self.ram_size - 4
        ctxt, memo, vcpu = self.ctxt, self.memo, self.vcpu
        syndromes: dict[int, int] = {}
        trip = self._mmio_trip

        def on_mmio(uch: Any, access: int, addr: int, size: int, value: int, ud: Any) -> None:
            if self.probing:  # a device access is no skippable loop: stop before anything acts
                self.probe_fault = True
                uclib.uc_emu_stop(uch_)
                return
            try:
                is_write = access == UC_MEM_WRITE
                pc = regs.read(pc_reg)
                off = pc - RAM_BASE
                word = unpack(ram, off)[0] if 0 <= off <= last else read_word(self.uc, buf, pc)
                # the syndrome of this instruction word making this access, memoised
                key = (pc << 40) | ((word or 0) << 8) | (is_write << 4) | size
                esr = syndromes.get(key)
                if esr is None:
                    esr = syndromes[key] = self._decode_access(pc, word, is_write, size, addr).esr()
                ctxt.pc_of_trap = pc
                ctxt.injected = False
                value = value & ((1 << (8 * size)) - 1) if is_write else 0
                # the trap's key, as the compiled hit path builds it (core/fasthit.c)
                if memo.live:
                    mkey = (1, pc, (word or 0) | is_write << 32 | size << 40, addr, value)
                    out = memo.serve(mkey, trip, esr, addr, is_write, size, value)
                else:
                    out = trip(esr, addr, is_write, size, value)
                    if vcpu.entries >= memo.wake_at:  # a sleeping cache's alarm
                        memo.wake()
                if out is not None and not is_write:
                    buf.raw = out.to_bytes(8, "little")
                    uclib.uc_mem_write(uch_, addr, buf, size)
            except BaseException as e:  # noqa: BLE001 - raw callbacks swallow exceptions
                self._fail(e)

        return on_mmio

    def _mmio_trip(self, esr: int, addr: int, is_write: bool, size: int, value: int) -> int | None:
        """The round trip of a stage-2 data abort: what a read returns (None: the vCPU stopped)."""
        out = [0]
        # Cpu._exit, its common case inlined: this is the hottest trap
        if self.vcpu.world_switch(esr, addr, is_write, size, value, out):
            self._update_vi()
        elif not self._exited_to(out):
            return None
        return out[0]

    def _on_data_unmapped(self, uch: Any, access: int, addr: int, size: int, value: int, ud: Any) -> bool:
        """A data access above RAM: map the page, so the access retries as MMIO."""
        if self.probing:
            self.probe_fault = True
            return False
        try:
            page = addr & ~0xFFFF
            self.uc.mem_map(page, 0x10000, UC_PROT_READ | UC_PROT_WRITE)
            if (addr + size - 1) & ~0xFFFF != page:
                self.uc.mem_map(page + 0x10000, 0x10000, UC_PROT_READ | UC_PROT_WRITE)
            return True
        except BaseException as e:  # noqa: BLE001
            self._fail(e)
            return False

    def _on_fetch_unmapped(self, uch: Any, access: int, addr: int, size: int, value: int, ud: Any) -> bool:
        self.fetch_fault = addr  # the run loop makes it the exit KVM would see
        return False

    # The GICv2 guest's GICC accesses reach the virtual CPU interface without an exit;
    # they change its state all the same, so they go through the round-trip cache too.
    def _gicv_read(self, gicv: GicV) -> Any:
        memo = self.memo

        def trip(offset: int, size: int) -> int:
            value = gicv.read(offset) if size == 4 else None
            if value is None:
                raise GuestFault(f"guest read of GICC offset 0x{offset:x} (size {size}): not modelled")
            if offset == GICC_IAR:  # the one read that changes the interface's state
                self._update_vi()
            return value

        def read(uch: Any, offset: int, size: int, ud: Any) -> int:
            try:
                return memo.serve((4, offset, size), trip, offset, size) if memo.live else trip(offset, size)
            except BaseException as e:  # noqa: BLE001
                self._fail(e)
                return 0

        return read

    def _gicv_write(self, gicv: GicV) -> Any:
        lrf, memo = self.vcpu.hyp_if.lrf, self.memo

        def trip(offset: int, size: int, value: int) -> None:
            if size != 4 or not gicv.write(offset, value):
                raise GuestFault(f"guest write to GICC offset 0x{offset:x} (size {size}): not modelled")
            if lrf.maintenance or lrf.phys_deactivated:
                self._gic_lines()
            self._update_vi()

        def write(uch: Any, offset: int, size: int, value: int, ud: Any) -> None:
            try:
                if memo.live:
                    memo.serve((5, offset, size, value), trip, offset, size, value)
                else:
                    trip(offset, size, value)
            except BaseException as e:  # noqa: BLE001
                self._fail(e)

        return write

    # ---- running ------------------------------------------------------------------------
    def power_on(self, entry: int, x0: int) -> None:
        """PSCI CPU_ON (or the boot vCPU): reset state, x0, the entry point; vcpu_load and
        the first KVM_RUN's entry half."""
        self.memo.enter()
        self._reset()
        self.regs.write(a64.UC_ARM64_REG_X0, x0)
        self.pc = entry
        self.state = RUNNING
        self.loaded = True
        self.vcpu.first_entry()
        self._update_vi()

    def wake(self) -> None:
        """kvm_vcpu_block returns: the entry half the blocked WFI exit still owes."""
        self.memo.enter()
        self.vcpu.dist.kicked = False  # the wake-up is the kick: the entry flushes what is pending
        self.vcpu.wake()
        self._update_vi()
        self.state = RUNNING

    def run_quantum(self, quantum: int, share: int = 1) -> int:
        """Run up to ``quantum`` guest instructions, the clock shared with ``share``
        running vCPUs; the number executed that the clock has not counted yet."""
        vm = self.vm
        self.spinning = False
        self._timer_irq_if_due()  # time may have moved on while other vCPUs ran
        dist = self.vcpu.dist
        if dist.kicked:
            # another vCPU's IPI kicked this one out of the guest (a host IRQ: an exit), so that
            # the entry's flush puts the interrupt in an LR
            dist.kicked = False
            self.ctxt.injected = False
            self._exit(Exit.IRQ << 26)
            if vm.error is not None or vm.finished:
                return 0
        self.fetch_fault = None
        self.hooked_wfx_pc = -1
        fault = None
        clock = self.vcpu.clock
        self.share = share
        clock.in_turn = self._in_turn  # a clock read inside the turn sees its instructions
        try:
            self.uc.emu_start(self.pc, RUN_UNTIL, 0, quantum)
        except UcError as e:
            fault = e
        clock.in_turn = no_turn
        # Unicorn's count hook stops the core when its count passes the quantum; any other
        # stop leaves it at the instructions begun, the one that stopped it included
        begun = self.emu_counter.value
        self.whole = begun > quantum
        executed = quantum if self.whole else begun
        self.memo.settle()  # replayed round trips: objects and tallies catch up
        if vm.error is not None or vm.finished:
            return executed
        if self.resume_at is not None:  # an exception entered from an MRS/MSR hook
            self.pc, self.resume_at = self.resume_at, None
            return executed
        if self.state != RUNNING:  # blocked in WFI or powered off: self.pc is set
            return executed
        pc = self.regs.read(a64.UC_ARM64_REG_PC)
        if fault is not None:
            if fault.errno in (UC_ERR_FETCH_UNMAPPED, UC_ERR_FETCH_PROT) and self.fetch_fault is not None:
                self._iabt(pc)  # the VA the guest branched to (the hook saw its PA)
                self.pc = self.regs.read(a64.UC_ARM64_REG_PC)
                return executed
            raise GuestFault(f"guest fault at pc 0x{pc:x}: {fault}")
        if pc == RUN_UNTIL:
            raise GuestFault(f"guest branched to 0x{pc:x}, outside the machine's memory")
        self.pc = pc
        if self.hooked_wfx_pc == pc - 4 or self.cut:  # a WFE that yielded, a spin that gave way
            self.cut = False
            return executed
        prev = self.read_insn(pc - 4)
        if prev in (WFI, WFE) and not self.whole:
            # a WFI the scan did not see (Unicorn returns past it): the exit it is on KVM
            self.guest_insns_done(executed)
            self.ctxt.pc_of_trap = pc - 4
            self.ctxt.injected = False
            self._exit((Exit.WFX << 26) | ESR_IL | (1 if prev == WFE else 0))
            if self.state == RUNNING and not vm.finished:
                self.pc = self.regs.read(a64.UC_ARM64_REG_PC)
            return 0
        self._timer_irq_if_due()
        if self.state == RUNNING and not vm.finished:
            self.pc = self.regs.read(a64.UC_ARM64_REG_PC)
        return executed

    def _in_turn(self) -> float:
        """The clock's share of the instructions this turn has run so far (the one whose
        hook is reading the clock is not done yet)."""
        done = self.emu_counter.value - 1
        return done / self.share if done > 0 else 0.0

    def guest_insns_done(self, n: int) -> None:
        """Move ``n`` instructions of this turn onto the clock before an exit that reads it."""
        self.vm.instructions += n
        self.vcpu.clock.guest_insns += n / self.share

    def recordable(self) -> bool:
        """Did the round trip that just ran stay inside the model, so that the cache may
        replay it? Not if it stopped the core, injected an exception, or yielded."""
        vm = self.vm
        return (vm.error is None and not vm.finished and self.state == RUNNING and self.resume_at is None
                and not self.cut and not self.ctxt.injected and not self.vcpu.yielded)

    def _iabt(self, addr: int) -> None:
        """A fetch from an address no memory backs: KVM's instruction-abort exit."""
        self.ctxt.pc_of_trap = addr
        self._exit((Exit.IABT_LOW << 26) | ESR_IL | 0x06, addr)

    def read_insn(self, pc: int) -> int | None:
        """The instruction word at ``pc`` as the guest's memory holds it now (None: unmapped).
        RAM is read from the VM's own buffer (a tenth of a Unicorn call's cost)."""
        off = pc - RAM_BASE
        if 0 <= off <= self.ram_size - 4:
            return WORD.unpack_from(self.vm.ram, off)[0]
        return read_word(self.uc, self._insn_buf, pc)

    # ---- spin loops (core/spin.py) ----------------------------------------------------
    def gprs(self) -> list[int]:
        return self.uc.reg_read_batch(GPR_IDS)

    def watch_loop(self) -> Loop | None:
        """After a turn with no exit: is the core spinning in a loop the scheduler may skip?
        A probe that fails is not repeated for a while (the code is doing real work)."""
        if self._probe_wait:
            self._probe_wait -= 1
            return None
        loop = self.probe_loop()
        if loop is None:
            self._probe_backoff = min(self._probe_backoff * 2, PROBE_BACKOFF_MAX)
            self._probe_wait = self._probe_backoff
        else:
            self._probe_backoff = 1
        return loop

    def probe_loop(self) -> Loop | None:
        """Run the code at the core's PC twice round, one instruction at a time, each checked
        before it runs (core/spin.py's rules: no store, no trap), then put every register
        back. The loop it went round, if it may be skipped; otherwise None."""
        uc = self.uc
        saved = uc.context_save()
        self.probing, self.probe_fault = True, False
        if self.fast is not None:
            self.fast.probing.value = 1
        try:
            s0 = self.gprs()
            first = self._step_round(self.pc)
            if first is None:
                return None
            s1 = self.gprs()
            if self._step_round(self.pc) != first:
                return None
            return analyse(first, s0, s1, self.gprs())
        finally:
            uc.context_restore(saved)
            self.probing, self.fetch_fault = False, None
            if self.fast is not None:
                self.fast.probing.value = 0

    def _step_round(self, head: int) -> list[tuple[int, int]] | None:
        """Step from ``head`` until the PC is back there: the (pc, word) path, or None."""
        path, pc = [], head
        for _ in range(PROBE_MAX):
            word = self.read_insn(pc)
            if word is None or classify(word) is None:
                return None
            path.append((pc, word))
            try:
                self.uc.emu_start(pc, RUN_UNTIL, 0, 1)
            except UcError:
                return None
            pc = self.regs.read(a64.UC_ARM64_REG_PC)
            if self.probe_fault or pc == path[-1][0] and word != B_SELF:
                return None  # a device access, or a step that did not run (a stop request)
            if pc == head:
                return path
        return None

    def skip(self, loop: Loop, n: int) -> None:
        """Leave the core where ``n`` more rounds of ``loop`` would: only its induction
        registers and flags differ (core/spin.py)."""
        if n <= 0:
            return
        for r, value in loop.advance(self.gprs(), n).items():
            self.regs.write(GPR_IDS[r], value)


class Machine:
    """One VM, as ``lkvm run`` builds it: RAM shared by every vCPU, the device tree, the
    UART, one :class:`Cpu` per vCPU, and a deterministic scheduler. One per run.

    The scheduler is round robin over the running vCPUs, a quantum of guest instructions
    each; a vCPU leaves its turn early when it blocks in WFI, yields with WFE or powers
    off. When every vCPU waits, simulated time jumps to the earliest timer deadline. So a
    run is the same sequence of events in every process, whatever the host does."""

    def __init__(self, code: bytes, vcpus: Vcpu | list[Vcpu], redist_base: int = REDIST_DEFAULT,
                 deadline: float | None = None, config: VmConfig | None = None, cache: bool = True,
                 verify_cache: int = 0, log: Callable[[str], None] | None = None) -> None:
        self.config = config = config or VmConfig()
        # memoised round trips (core/memo.py): on unless asked; verified every K-th hit if K
        self.cache, self.verify_cache, self.log = cache, verify_cache, log
        vcpus = [vcpus] if isinstance(vcpus, Vcpu) else list(vcpus)
        if len(vcpus) != config.cpus:
            raise ValueError(f"{len(vcpus)} vCPU models for --cpus {config.cpus}")
        if config.clock not in ("model", "guest"):
            raise ValueError(f"clock {config.clock!r}: expected 'model' or 'guest'")
        self.ram_size = config.mem_mb << 20
        if len(code) > self.ram_size - LOAD_OFFSET:
            raise GuestImageError(f"the guest image ({len(code):,} bytes) does not fit in {config.mem_mb} MiB of RAM "
                                  f"above the load offset 0x{LOAD_OFFSET:x}")
        self.code = code
        self.deadline = deadline
        self.vcpu = vcpus[0]
        self.platform = self.vcpu.platform
        self.redist_base = redist_base
        self.clock = self.vcpu.clock
        self.clock.mode = config.clock
        self.error: BaseException | None = None
        self.finished = False
        self.instructions = 0
        self.spin_skipped = 0  # instructions of spin loops skipped (core/spin.py)
        self.scan = scan_image(code, deadline=deadline)
        self.stale: set[int] = set()
        self.uart = Serial8250(config.console)
        self.ram = mmap.mmap(-1, self.ram_size)
        self.ram_ptr = ctypes.addressof(ctypes.c_char.from_buffer(self.ram))
        self.ram[LOAD_OFFSET:LOAD_OFFSET + len(code)] = code
        self.dtb_addr = self._place_dtb()
        dists = [v.dist for v in vcpus]
        for i, v in enumerate(vcpus):
            v.vcpu_id, v.nr_vcpus, v.mpidr, v.power = i, len(vcpus), v.board_mpidr(i), self
            v.dist.vcpu_id, v.dist.peers = i, dists
            v.dist.retarget()  # which SPIs this vCPU takes depends on its id
        self.cores = [Cpu(self, v, i) for i, v in enumerate(vcpus)]

    def _place_dtb(self) -> int:
        """kvmtool's device tree for this VM, where kvmtool puts it."""
        from .devicetree import MachineLayout, build_dtb, dtb_address

        cfg = self.config
        try:
            layout = MachineLayout(
                ram_base=RAM_BASE, ram_size=self.ram_size, nr_cpus=cfg.cpus, bootargs=cfg.params,
                gic=self.platform.guest_gic, gicd_base=GICD_BASE, gicc_base=GICC_BASE,
                redist_base=self.redist_base if self.platform.guest_gic == 3 else None, uart_base=UART_BASE,
            )
            addr = dtb_address(layout)
            dtb = build_dtb(layout)
        except ValueError as e:
            raise GuestImageError(f"cannot build the device tree: {e}") from None
        if addr < LOAD_ADDR + len(self.code):
            raise GuestImageError(f"the device tree at 0x{addr:x} would overlap the guest image "
                                  f"(kvmtool: 'fdt overlaps with kernel image'); give more --mem")
        self.ram[addr - RAM_BASE:addr - RAM_BASE + len(dtb)] = dtb
        return addr

    # ---- PSCI's view of the vCPUs (vcpu.power) ------------------------------------------
    @property
    def nr_on(self) -> int:
        return sum(c.state != OFF for c in self.cores)

    def cpu_is_on(self, cpu: int) -> bool:
        return self.cores[cpu].state != OFF

    def cpu_on(self, cpu: int, entry: int, context: int) -> None:
        self.cores[cpu].power_on(entry, context)

    def others_running(self, cpu: int) -> bool:
        """Could another vCPU make progress now (running, or woken by what it has pending)?"""
        for c in self.cores:
            if c.cpu_id != cpu and (c.state == RUNNING or c.state == BLOCKED and c.vcpu.dist.has_pending()):
                return True
        return False

    def others_on(self, cpu: int) -> bool:
        return any(c.state != OFF for c in self.cores if c.cpu_id != cpu)

    # ---- kvmtool: the VMM side of KVM_EXIT_MMIO ------------------------------------------
    def kvm_cpu_emulate_mmio(self, addr: int, is_write: bool, size: int, value: int) -> int:
        """kvm__emulate_mmio: the UART, or nothing (reads 0, writes ignored, as kvmtool does)."""
        if UART_BASE <= addr < UART_BASE + UART_SIZE:
            if is_write:
                self.uart.write(addr - UART_BASE, value)
                return 0
            return self.uart.read(addr - UART_BASE)
        what = "write" if is_write else "read"
        if self.config.strict_mmio:
            raise GuestFault(f"MMIO {what} of {size} bytes at 0x{addr:x}: no device there (--strict-mmio)")
        self.vcpu.warn_once(("mmio", addr, is_write), f"ignoring MMIO {what} of {size} bytes at 0x{addr:x}: no "
                            "device there" + ("" if is_write else "; it reads 0") + ", as in lkvm")
        return 0

    # ---- running ------------------------------------------------------------------------
    def run(self, max_instructions: int = 0) -> None:
        """Run to the guest's SYSTEM_OFF/RESET. Raises on a fault or a blown budget
        (the time budget is the deadline given at construction)."""
        cores = self.cores
        cores[0].power_on(LOAD_ADDR, self.dtb_addr)  # the boot protocol: x0 = the DTB
        turn = 0
        with RunGuard(cores[0].uc._uch, self.deadline) as guard:
            while not (guard.stopping or self.error is not None or self.finished):
                self._wake_blocked()
                running = [c for c in cores if c.state == RUNNING]
                if not running:
                    self._idle()
                    continue
                if all(c.spinning or c.loop is not None for c in running) and (
                        len(running) > 1 or running[0].loop is not None):
                    self._all_spinning(running)
                while cores[turn % len(cores)].state != RUNNING:
                    turn += 1
                core = cores[turn % len(cores)]
                turn += 1
                guard.uch = core.uc._uch
                # several vCPUs at work take short turns: one waiting on another sees it act
                # within SMP_QUANTUM instructions, not within a whole quantum
                quantum = QUANTUM if len(running) == 1 else SMP_QUANTUM
                if max_instructions:
                    quantum = min(quantum, max_instructions - self.instructions)
                # a turn ends when the next timer is due, so its interrupt comes on time
                deadline = self._next_deadline()
                if deadline is not None:
                    due = math.ceil(self.clock.cycles_to(deadline) / self.clock.guest_cpi * len(running))
                    if due > 0:
                        quantum = min(quantum, due)
                entries = core.vcpu.entries
                executed = core.run_quantum(quantum, len(running))
                if guard.stopping:
                    break
                self.instructions += executed
                # the running vCPUs share the time: a round of quanta is one quantum of it
                self.clock.guest_insns += executed / len(running)
                if max_instructions and self.instructions >= max_instructions and not self.finished:
                    raise BudgetExceeded(f"the budget of {max_instructions:,} instructions ran out before the guest "
                                         f"finished (pc 0x{core.pc:x})")
                # a turn that ran whole without an exit may be a spin the scheduler can skip
                core.loop = (core.watch_loop() if core.whole and core.vcpu.entries == entries
                             and core.state == RUNNING and not self.finished else None)
                if deadline is not None and self.error is None and not self.finished:
                    for c in running:  # the deadline passed: its vCPU exits now, not at its next turn
                        if c.state == RUNNING:
                            c._timer_irq_if_due()
        guard.raise_if_signalled()
        if self.error is not None:
            raise self.error
        if not self.finished:
            raise BudgetExceeded(f"the time budget ran out before the guest finished (pc 0x{cores[0].pc:x})")
        loaded = [c.vcpu for c in cores if c.loaded]
        for v in loaded:
            v.vcpu_put()
        if len(loaded) > 1:
            self.vcpu.finish_counts(sum(v.entries for v in loaded))

    def _wake_blocked(self) -> None:
        """kvm_vcpu_block ends when the vCPU is runnable: an interrupt to take, or its timer due."""
        for core in self.cores:
            if core.state == BLOCKED:
                v = core.vcpu
                if v.dist.has_pending() or v.timer.should_fire(v.counter):
                    core.wake()

    def _next_deadline(self) -> int | None:
        """The earliest count at which an armed, unmasked virtual timer fires, if any."""
        armed = [c.vcpu.timer.cntv_cval for c in self.cores if c.state != OFF and c.timer_can_signal()]
        return min(armed) if armed else None

    def _all_spinning(self, running: list[Cpu]) -> None:
        """Every running vCPU spins: only time can change anything. Jump to the earliest
        armed timer's deadline (if there is one), then let them all spin once more.

        A vCPU spinning on the clock needs nothing more. One spinning in a loop is moved on
        by the rounds it would have run meanwhile (core/spin.py), each loop probed again
        here, against memory as it is now that no vCPU runs; if any cannot be, or a loop's
        counter would end it sooner, time moves only as far as every loop surely goes."""
        loops = [c for c in running if c.loop is not None]
        for c in running:
            c.spinning, c.loop = False, None
        target = self._next_deadline()
        clock = self.clock
        if target is None and loops and len(loops) == len(running):
            self._refuse_forever(loops)
        if target is None or target <= clock.ticks():
            return
        if not loops:
            clock.wait_until(target)
            return
        fresh = [(c, c.probe_loop()) for c in loops]
        # the instructions each vCPU runs before the deadline (they share the clock); the
        # last few are run, so the deadline is met on an instruction, not skipped over
        budget = int(clock.cycles_to(target) / clock.guest_cpi) - 1
        for c, loop in fresh:
            if loop is None:
                return
            budget = min(budget, loop.max_iterations(c.gprs()) * loop.length)
        if budget <= 0:
            return
        skipped = []
        for c, loop in fresh:
            rounds = budget // loop.length
            c.skip(loop, rounds)
            skipped.append(rounds * loop.length)
        self.instructions += sum(skipped)
        self.spin_skipped += sum(skipped)
        # time moves as far as every vCPU surely went; none is ahead by a whole round
        clock.guest_insns += min(skipped)

    def _refuse_forever(self, loops: list[Cpu]) -> None:
        """Every running vCPU spins in a loop with no counter, and no timer is armed: no
        store, exit or interrupt can ever change what they read. Say so now, as a WFI that
        would block forever does, instead of spinning out the time budget."""
        fresh = [(c, c.probe_loop()) for c in loops]
        if all(loop is not None and not loop.delta for _, loop in fresh):
            where = ", ".join(f"vCPU {c.cpu_id} at pc 0x{c.pc:x}" for c, _ in fresh)
            raise GuestFault(f"guest spins for ever: {where} in a loop that stores nothing, never exits and counts "
                             "nothing, with no timer armed to interrupt it")

    def _idle(self) -> None:
        """Every vCPU waits: jump to the earliest timer deadline, or say it never comes."""
        armed = [c.vcpu.timer.cntv_cval for c in self.cores
                 if c.state == BLOCKED and c.vcpu.timer.cntv_ctl & 3 == 1]
        if not armed:
            waiting = [c.cpu_id for c in self.cores if c.state == BLOCKED]
            raise GuestFault("guest waits in WFI with no interrupt pending and no timer armed: it would block forever"
                             + (f" (vCPUs {waiting})" if len(self.cores) > 1 else ""))
        self.clock.wait_until(min(armed))

    # ---- what the run leaves ------------------------------------------------------------
    def guest_registers(self) -> dict[str, int]:
        """The boot vCPU's general-purpose registers and PC."""
        regs = self.cores[0].regs
        out = {f"x{n}": regs.read(XREG[n]) for n in range(31)}
        out["pc"] = regs.read(a64.UC_ARM64_REG_PC)
        return out

    def console(self) -> str:
        return self.uart.text()

    def exits_by_reason(self) -> dict[int, int]:
        total = [0] * 65
        for c in self.cores:
            for ec, n in enumerate(c.vcpu.exits):
                total[ec] += n
        return {ec: n for ec, n in enumerate(total) if n}

    @property
    def system_event(self) -> int:
        return max(c.vcpu.system_event for c in self.cores)

    @property
    def warnings(self) -> list[str]:
        return [w for c in self.cores for w in c.vcpu.warnings]

    def cache_stats(self) -> dict[str, Any]:
        """The round-trip cache of the boot vCPU: on or why not, hits, misses, states."""
        return self.cores[0].memo.stats()
