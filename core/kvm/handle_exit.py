"""arch/arm64/kvm/handle_exit.c (and arch/arm/kvm/handle_exit.c): where every exit goes.

``handle_exit`` looks the exception class of the syndrome up in ``arm_exit_handlers``,
one table for both hosts, as the kernel does. The trap callbacks of the machine only
build the syndrome (ESR/HSR, as the hardware builds it from the trapping instruction)
and the operands the hardware would leave in registers; every decision is made here.

Each handler is called as ``handler(vcpu, esr, *operands)`` and returns what the
kernel's do: 1 to re-enter the guest, 0 to return to userspace (the run ends).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import GuestFault
from ..events import MMIO_ABORT, MMIO_RANGE_TEST, PSCI_CALL, SYSREG_TRAP, WFX, Exit
from . import psci
from .inject_fault import kvm_inject_pabt, kvm_inject_undefined
from .sys_regs import FindResult, SysRegParams, sysreg_name
from .vgic.mmio import GICD_BASE, GICD_SIZE, vgic_find_range
from .vgic.vgic_v2_emul import dist_write_is_shared

GICR_FRAMES = 0x20000  # a vCPU's redistributor: RD_base and SGI_base, 64 KiB each

if TYPE_CHECKING:
    from .arm import Vcpu

ESR_ELx_EC_SHIFT = 26
ExitHandler = Callable[..., int]


def handle_hvc(vcpu: Vcpu, esr: int, regs: list[int]) -> int:
    """handle_hvc -> kvm_psci_call. ``regs`` is [x0, x1, x2, x3] (x1-x3 only read for the
    calls that take them); x0 is updated in place."""
    vcpu.c[PSCI_CALL] += 1
    if vcpu.hooks.ws_hvc:
        vcpu.hooks.ws_hvc(vcpu, regs[0])
    ret, x0, event = psci.kvm_psci_0_2_call(vcpu, regs)
    if x0 is not None:
        regs[0] = x0
    if not ret:
        vcpu.system_event = event
    return ret


def handle_smc(vcpu: Vcpu, esr: int) -> int:
    """handle_smc: v4.5 has no SMC calling convention for guests; it injects UNDEF."""
    kvm_inject_undefined(vcpu)
    return 1


def handle_irq(vcpu: Vcpu, esr: int) -> int:
    """ARM_EXCEPTION_IRQ: a host interrupt (the virtual timer's) took the CPU out of the
    guest; the host handled it, and the run loop re-enters."""
    return 1


def kvm_handle_sys_reg(vcpu: Vcpu, esr: int, p: SysRegParams) -> int:
    """kvm_handle_sys_reg -> emulate_sys_reg: the target table, then sys_reg_descs."""
    vcpu.c[SYSREG_TRAP] += 1
    if vcpu.hooks.ws_sysreg_trap:
        vcpu.hooks.ws_sysreg_trap(vcpu, p)
    r = vcpu.find_reg(p, vcpu.target_table)
    if r is None:
        r = vcpu.find_reg(p, vcpu.sys_reg_descs)
    if r is None:
        # emulate_sys_reg: "Unsupported guest sys_reg access", then UNDEF for the guest
        vcpu.warn_once(("sys_reg", p.key), f"unsupported guest sys_reg access: {'write' if p.is_write else 'read'} "
                       f"of {sysreg_name(*p.key)} (not in {vcpu.target_table.name} nor sys_reg_descs): the guest "
                       "takes UNDEF, as on KVM")
        kvm_inject_undefined(vcpu)
        return 1
    r.access(vcpu, p, r)
    return 1


def kvm_handle_guest_abort(vcpu: Vcpu, esr: int, addr: int, is_write: bool, size: int, value: int,
                           out: list[int]) -> int:
    """kvm_handle_guest_abort -> io_mem_abort -> kvm_io_bus -> vgic_handle_mmio_access.

    The value read is returned in ``out[0]``."""
    vcpu.c[MMIO_ABORT] += 1
    if vcpu.hooks.ws_mmio_trap:
        vcpu.hooks.ws_mmio_trap(vcpu, addr, is_write, size, value)
    dist = vcpu.dist
    if GICD_BASE <= addr < GICD_BASE + GICD_SIZE:
        ranges, offset, what = vcpu.dist_ranges, addr - GICD_BASE, "distributor"
    elif vcpu.redist_ranges and vcpu.redist_base <= addr < vcpu.redist_base + GICR_FRAMES * vcpu.nr_vcpus:
        # one RD_base + SGI_base pair per vCPU: the frame says whose private interrupts
        cpu, offset = divmod(addr - vcpu.redist_base, GICR_FRAMES)
        ranges, what, dist = vcpu.redist_ranges, "redistributor", dist.peers[cpu]
    else:
        # no in-kernel device on the kvm_io_bus: KVM_EXIT_MMIO, for the VMM to emulate
        vcpu.run_mmio = (addr, is_write, size, value)
        return 0
    cache = vcpu.search_cache(ranges)
    hit = cache.get(offset << 4 | size)
    if hit is None:
        rng, tested = vgic_find_range(ranges, offset, size)
        hit = cache[offset << 4 | size] = FindResult(rng, ((MMIO_RANGE_TEST, tested),))
    vcpu.c[MMIO_RANGE_TEST] += hit.costs[0][1]
    rng = hit.entry
    if rng is None:
        # vgic_handle_mmio_range: "Unhandled access"; the bus then has no taker: to userspace
        vcpu.warn_once(("vgic", addr), f"unhandled vgic {what} {'write' if is_write else 'read'} of size {size} "
                       f"at offset 0x{offset:x} (0x{addr:x}): no register there")
        vcpu.run_mmio = (addr, is_write, size, value)
        return 0
    out[0] = rng.handle(dist, offset - rng.base, is_write, value, size) & ((1 << (8 * size)) - 1)
    if is_write and len(dist.peers) > 1 and what == "distributor" and (
            vcpu.platform.guest_gic == 3 or dist_write_is_shared(rng.name, offset - rng.base)):
        for other in dist.peers:  # the shared registers: every vCPU's copy sees the write
            if other is not dist:
                rng.handle(other, offset - rng.base, is_write, value, size)
    return 1


def kvm_handle_wfx(vcpu: Vcpu, esr: int) -> int:
    """kvm_handle_wfx -> kvm_vcpu_block: returns once the vCPU has something to take."""
    vcpu.c[WFX] += 1
    if vcpu.hooks.ws_wfi:
        vcpu.hooks.ws_wfi(vcpu)
    if vcpu.dist.has_pending():
        return 1
    if esr & 1:  # WFE: kvm_vcpu_on_spin, a yield to another vCPU
        vcpu.yielded = True
        return 1
    if vcpu.timer.should_fire(vcpu.counter):  # kvm_arch_vcpu_runnable: the timer is due
        return 1
    # kvm_vcpu_block: the run loop resumes this vCPU when it has something to take; if
    # nothing can ever come, the machine says so. Simulated time jumps; no host time.
    vcpu.blocked = True
    return 1


def kvm_handle_iabt(vcpu: Vcpu, esr: int, addr: int) -> int:
    """kvm_handle_guest_abort for an instruction fetch outside every memslot: v4.5 injects a
    prefetch abort ("Prefetch Abort on I/O address")."""
    vcpu.c[MMIO_ABORT] += 1
    kvm_inject_pabt(vcpu, addr)
    return 1


def kvm_handle_cp15_32(vcpu: Any, esr: int, vals: list[int]) -> int:
    """kvm_handle_cp15_32 (32-bit host): decode the HSR like decode_32bit_hsr, then
    emulate_cp15. ``vals`` is [Rt1, Rt2] as read from the guest; a read's result is
    written back into it."""
    from .coproc import CoprocParams

    p = CoprocParams(
        (esr >> 10) & 0xF, (esr >> 1) & 0xF, (esr >> 14) & 0x7, (esr >> 17) & 0x7, False,
        not esr & 1, (esr >> 5) & 0xF, 0, vals[0],
    )
    return vcpu.emulate_cp15(p, vals)


def kvm_handle_cp15_64(vcpu: Any, esr: int, vals: list[int]) -> int:
    """kvm_handle_cp15_64: the HSR's CRm field is the primary register number, kept in CRn."""
    from .coproc import CoprocParams

    p = CoprocParams(
        (esr >> 1) & 0xF, 0, (esr >> 16) & 0xF, 0, True, not esr & 1, (esr >> 5) & 0xF,
        (esr >> 10) & 0xF, vals[0], vals[1],
    )
    return vcpu.emulate_cp15(p, vals)


def kvm_handle_unknown_ec(vcpu: Any, esr: int, *operands: Any) -> int:
    """An exception class KVM does not handle: the kernel injects UNDEF or fails the run."""
    raise GuestFault(f"exit with unknown exception class 0x{esr >> ESR_ELx_EC_SHIFT:x} (ESR 0x{esr:x})")


#: arm_exit_handlers[]: every exit, by the exception class in ESR_ELx[31:26]
arm_exit_handlers: list[ExitHandler] = [kvm_handle_unknown_ec] * 65
arm_exit_handlers[Exit.WFX] = kvm_handle_wfx
arm_exit_handlers[Exit.CP15_32] = kvm_handle_cp15_32
arm_exit_handlers[Exit.CP15_64] = kvm_handle_cp15_64
arm_exit_handlers[Exit.HVC32] = handle_hvc
arm_exit_handlers[Exit.HVC64] = handle_hvc
arm_exit_handlers[Exit.SMC64] = handle_smc
arm_exit_handlers[Exit.SYS64] = kvm_handle_sys_reg
arm_exit_handlers[Exit.IABT_LOW] = kvm_handle_iabt
arm_exit_handlers[Exit.DABT_LOW] = kvm_handle_guest_abort
arm_exit_handlers[Exit.IRQ] = handle_irq


def handle_exit(vcpu: Any, esr: int, operands: tuple[Any, ...]) -> int:
    """handle_exit for ARM_EXCEPTION_TRAP: the handler of the syndrome's exception class."""
    return arm_exit_handlers[esr >> ESR_ELx_EC_SHIFT](vcpu, esr, *operands)
