"""The vCPU and its run loop: arch/arm/kvm/arm.c (kvm_arch_vcpu_ioctl_run), the hyp
world switch of arch/arm64/kvm/hyp/switch.c (__guest_run), and handle_exit.

worldswitch runs the whole round trip inside the Unicorn callback that caught the
trap, like the hypervisor's exception vector: the exit half of ``__guest_run``, the
host's sync and ``handle_exit``, then the flush and the entry half. Read
:meth:`Vcpu.world_switch` top to bottom for the order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import BudgetExceeded
from ..events import (
    EL1_SYSREG_RESTORE,
    EL1_SYSREG_SAVE,
    TIMER_SYSREG,
    USER_EXIT,
    WORLD_SWITCH,
)
from ..hooks import Hooks
from ..hw.gic_v2 import GicV
from ..hw.gic_v3 import IcvInterface
from . import arch_timer
from .handle_exit import arm_exit_handlers
from .hyp.vgic_v2_sr import build_vgic_v2_sr
from .hyp.vgic_v3_sr import build_vgic_v3_sr
from .sys_regs import (
    FindResult,
    SysRegParams,
    SysRegTable,
    find_reg,
    generic_v8_target_table,
    load_sys_reg_descs,
)
from .vgic.mmio import GICD_BASE, GICD_SIZE, MmioRange  # noqa: F401 - GICD_* re-exported
from .vgic.vgic import VgicDist, VgicV2Cpu, VgicV3Cpu
from .vgic.vgic_v2_emul import vgic_dist_ranges
from .vgic.vgic_v3_emul import vgic_redist_ranges, vgic_v3_dist_ranges

if TYPE_CHECKING:
    from ..board import Board

# __sysreg_save_state / __sysreg_restore_state move 22 EL1 system registers plus
# SP_EL0, ELR_EL2, SPSR_EL2, SP_EL1, ELR_EL1 and SPSR_EL1; each half of the round trip
# saves one context and restores the other.
EL1_CONTEXT_REGS = 28
# __timer_save_state: R CNTV_CTL, R CNTV_CVAL, W CNTV_CTL, R/W CNTHCTL;
# __timer_restore_state: R/W CNTHCTL, W CNTVOFF, W CNTV_CVAL, W CNTV_CTL.
TIMER_SAVE_ACCESSES = 5
TIMER_RESTORE_ACCESSES = 5


def fixed_steps(exits: int, entries: int) -> tuple[tuple[int, int], ...]:
    """The fixed-size context moves of ``exits`` exit halves and ``entries`` entry halves,
    by event class: the same every round trip, so they are charged in one go."""
    regs = EL1_CONTEXT_REGS * (exits + entries)
    return ((EL1_SYSREG_SAVE, regs), (EL1_SYSREG_RESTORE, regs),
            (TIMER_SYSREG, TIMER_SAVE_ACCESSES * exits + TIMER_RESTORE_ACCESSES * entries))



class Vcpu:
    """struct kvm_vcpu with the hardware it runs on.

    Built from a platform profile: the host GIC decides the hyp interface (GICH or
    ICH_*_EL2) and the host irqchip driver; the guest GIC decides what the guest sees
    (GICC through GICV, or ICC through ICV) and which vgic emulation serves it.
    """

    #: what the round-trip cache captures of struct kvm_vcpu itself (core/memo.py); the
    #: hardware and the vgic, timer and plugin objects declare theirs
    STATE = ("sys_regs", "system_event", "run_mmio", "blocked", "powered_off", "yielded")
    TALLIES = ("exits", "entries")
    #: the objects whose state is part of this one's
    HOLDS = ("timer", "vgic_cpu", "dist", "hyp_if", "host_irqchip")
    #: what changes without being state: a memo of table searches (the same answer either
    #: way) and the warnings (a round trip that warns is never replayed)
    SCRATCH = ("_search_cache", "warnings", "_warned")

    def __init__(self, board: Board, hooks: Hooks) -> None:
        platform = self.platform = board.platform
        counters = self.c = board.counters
        self.hooks = hooks
        self.exits = [0] * 65  # by exception class, and IRQ exits in slot 64 (Exit.IRQ)
        self.entries = 0
        self.sys_regs: dict[str, int] = {}
        self.clock = board.clock  # the system counter, on simulated time
        self.vcpu_id = 0
        self.board_mpidr = board.mpidr
        self.mpidr = board.mpidr(0)
        self.timer = arch_timer.ArchTimerCpu()
        self.timer_flush = arch_timer.kvm_timer_flush_hwstate
        self.on_guest_exit = hooks.ws_guest_exit
        self.on_guest_enter = hooks.ws_guest_enter
        self.system_event = 0  # set when the guest asked for SYSTEM_OFF / SYSTEM_RESET
        # struct kvm_run's MMIO exit: (address, is_write, size, value) for the VMM to emulate
        self.run_mmio: tuple[int, bool, int, int] | None = None
        # the guest's EL1 context, as KVM's inject_fault.c reaches it (set by the machine)
        self.ctxt: Any = None
        # what the kernel would pr_warn (once per cause), kept for the run's result
        self.warnings: list[str] = []
        self._warned: set[Any] = set()
        self.warn: Callable[[str], None] = lambda msg: None
        self.nr_vcpus = 1
        # the run loop's view of this vCPU after an exit (kvm_vcpu_block, PSCI CPU_OFF, WFE)
        self.blocked = False
        self.powered_off = False
        self.yielded = False
        self.power: Any = None  # the VM's vCPU power control, for PSCI (None: a lone vCPU)
        # the machine's accessors for observers (a tracer); never called on the trap path
        self.read_guest_pc: Callable[[], int] = lambda: 0
        self.read_guest_insn: Callable[[int], int | None] = lambda pc: None
        # False while Unicorn reports an MMIO access with the PC of its block's start
        self.mmio_pc_exact = False
        self.redist_base = board.redist_base
        self.max_exits = 1 << 62
        self.target_table = generic_v8_target_table()
        self.sys_reg_descs = load_sys_reg_descs()
        # memoised table searches: one dict per table (by id), keyed by what is looked up
        self._search_cache: dict[int, dict[Any, FindResult]] = {}
        # the hardware, built by the board: reached only through its accessors
        self.hyp_if: Any = board.hyp_if
        self.host_irqchip: Any = board.host_irqchip
        # the physical GIC itself: the machine's view of what signals the CPU, never KVM's
        self.host_gic: Any = board.host_gic
        self.gicv: GicV | None = board.gicv
        self.icv: IcvInterface | None = board.icv
        nr_lr, pri = platform.nr_lr, platform.nr_pri_bits
        # Patches 7-11 and 13-17 change arch/arm64/kvm/hyp; a 32-bit host saves and
        # restores the vgic in its own assembly (arch/arm/kvm/interrupts_head.S) with the
        # same v4.5 access sequence, which the series leaves alone.
        sr_hooks = self.sr_hooks = hooks if platform.arch == "aarch64" else Hooks(None)
        if platform.host_gic == 2:
            self.vgic_cpu: Any = VgicV2Cpu(nr_lr)
            self.vgic_save, self.vgic_restore = build_vgic_v2_sr(sr_hooks)
        else:
            self.vgic_cpu = VgicV3Cpu(nr_lr, pri, vgic_sre=1 if platform.guest_gic == 3 else 0)
            self.vgic_save, self.vgic_restore = build_vgic_v3_sr(sr_hooks)
        self.dist = VgicDist(counters, self.vgic_cpu, platform.guest_gic)
        arch_timer.kvm_timer_vcpu_reset(self)
        if platform.guest_gic == 2:
            self.dist_ranges: list[MmioRange] = vgic_dist_ranges()
            hooks.call_setup("ws_vgic_dist_ranges", ranges=self.dist_ranges, guest_gic=2)
            self.redist_ranges: list[MmioRange] = []
        else:
            self.dist_ranges = vgic_v3_dist_ranges()
            hooks.call_setup("ws_vgic_dist_ranges", ranges=self.dist_ranges, guest_gic=3)
            self.redist_ranges = vgic_redist_ranges()

    # ---- the round trip ----------------------------------------------------------------
    def world_switch(self, esr: int, *operands: Any) -> bool:
        """One exit, ``handle_exit`` on its syndrome and operands, and the re-entry.
        False when the exit goes to userspace.

        The fixed-size context moves of each half (EL1 registers, timer registers) are
        charged per exit and per entry by :meth:`finish_counts`."""
        c = self.c
        # __guest_run, exit half: guest context saved, host context restored
        c[WORLD_SWITCH] += 1
        if c[WORLD_SWITCH] > self.max_exits:
            raise BudgetExceeded(f"exit budget of {self.max_exits} exits exhausted before the guest finished")
        self.vgic_save(self.vgic_cpu, self.hyp_if)
        self.exits[esr >> 26] += 1
        # kvm_arch_vcpu_ioctl_run, back in the host
        timer = self.timer
        if timer.cntv_ctl & 1 or timer.irq_level:  # kvm_timer_sync_hwstate: only a live timer can change
            arch_timer.kvm_timer_sync_hwstate(self)
        self.dist.sync_hwstate()
        if self.on_guest_exit is not None:
            self.on_guest_exit(self, esr)
        # handle_exit, inlined (one Python call less per exit): the handler of the exception class
        if arm_exit_handlers[esr >> 26](self, esr, *operands) <= 0:
            return False
        if self.blocked or self.powered_off:  # kvm_vcpu_block / CPU_OFF: the entry waits for a wake-up
            return False
        # the next iteration of the run loop: flush, then __guest_run's entry half
        self.timer_flush(self)
        self.dist.flush_hwstate()
        self.vgic_restore(self.vgic_cpu, self.hyp_if)
        self.entries += 1
        if self.on_guest_enter is not None:
            self.on_guest_enter(self)
        return True

    def finish_counts(self, entries: int | None = None) -> None:
        """Charge the fixed-size steps of every exit and entry half of the run (``entries``:
        of every vCPU, when there are several; the exits are counted for all of them)."""
        c = self.c
        for ev, n in fixed_steps(c[WORLD_SWITCH], self.entries if entries is None else entries):
            c[ev] = n

    def first_entry(self) -> None:
        """vcpu_load and the first KVM_RUN: the entry half alone."""
        self.hooks.call_setup("ws_vcpu_init", vcpu=self)
        if self.vmcr_at_load_put():
            self.hyp_if.write_vmcr(self.vgic_cpu.vgic_vmcr)  # vgic_v{2,3}_load
        arch_timer.kvm_timer_flush_hwstate(self)
        self.dist.flush_hwstate()
        self.vgic_restore(self.vgic_cpu, self.hyp_if)
        self.entries += 1

    def wake(self) -> None:
        """kvm_vcpu_block returned: the rest of the run loop's turn, the entry half."""
        self.blocked = False
        self._entry_half()

    def reenter(self) -> None:
        """KVM_RUN called again after the VMM handled an exit: the entry half alone."""
        self.c[USER_EXIT] += 1
        self.run_mmio = None
        self._entry_half()

    def _entry_half(self) -> None:
        """The flush and __guest_run's entry half, as world_switch ends (which inlines it)."""
        self.timer_flush(self)
        self.dist.flush_hwstate()
        self.vgic_restore(self.vgic_cpu, self.hyp_if)
        self.entries += 1
        if self.on_guest_enter is not None:
            self.on_guest_enter(self)

    def warn_once(self, key: Any, msg: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.warnings.append(msg)
            self.warn(msg)

    def kvm_mpidr_to_vcpu(self, mpidr: int) -> int | None:
        """The id of the vCPU with this MPIDR affinity, None if there is none."""
        for cpu in range(self.nr_vcpus):
            if (self.board_mpidr(cpu) ^ mpidr) & 0xFF00FFFFFF == 0:
                return cpu
        return None

    @property
    def counter(self) -> int:
        """CNTVCT as the guest would read it now."""
        return self.clock.ticks()

    def vcpu_put(self) -> None:
        """kvm_arch_vcpu_put: patch 6 drops its cache here."""
        self.hooks.call_setup("ws_vcpu_put", vcpu=self)
        if self.vmcr_at_load_put():
            self.vgic_cpu.vgic_vmcr = self.hyp_if.read_vmcr()  # vgic_v{2,3}_put
        self.finish_counts()

    def vmcr_at_load_put(self) -> bool:
        """Has a plugin moved the VMCR switch from every exit and entry to load/put?"""
        ask = self.sr_hooks.ws_vgic_save_vmcr
        return ask is not None and ask(self.vgic_cpu) is False

    # ---- what the exit handlers (handle_exit.py) use ----------------------------------
    def search_cache(self, table: Any) -> dict[Any, FindResult]:
        cache = self._search_cache.get(id(table))
        if cache is None:
            cache = self._search_cache[id(table)] = {}
        return cache

    def find_reg(self, p: SysRegParams, table: SysRegTable) -> Any:
        """find_reg through the ws_find_sys_reg hook, memoised per (table, key)."""
        cache = self.search_cache(table)
        res = cache.get(p.key)
        if res is None:
            hook = self.hooks.ws_find_sys_reg
            res = cache[p.key] = (hook(p, table) if hook else None) or find_reg(p, table)
        c = self.c
        for ev, n in res.costs:
            c[ev] += n
        return res.entry

    def exits_by_reason(self) -> dict[int, int]:
        return {ec: n for ec, n in enumerate(self.exits) if n}

