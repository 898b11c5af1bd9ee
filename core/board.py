"""The board: the hardware of one VM, as its platform profile describes it.

kvmtool builds the machine and KVM is handed the host's GIC; here ``build_board`` builds
every hardware model once (the hyp control interface, GICH or ICH_*_EL2; the virtual
CPU interface the guest reaches without an exit, GICV or ICV; the host irqchip the timer
code programs) and hands them to the vCPU. The KVM model only ever reaches them through
their accessors, each of which counts its accesses in ``counters``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .host import GicV2Irqchip, GicV3Irqchip
from .hw.gic_v2 import GicDistributor, GicH, GicV
from .hw.gic_v3 import GicRedistributor, IchInterface, IcvInterface
from .hw.sys_counter import SystemCounter

if TYPE_CHECKING:
    from .platform import Platform

#: kvmtool's GICv3 redistributor base for up to 32 vCPUs (0x3fff0000 - 32 * 0x20000)
REDIST_DEFAULT = 0x3FBF0000


@dataclass
class Board:
    platform: Platform
    counters: list[int]
    hyp_if: GicH | IchInterface  # the list registers' owner, which the hyp code saves and restores
    host_irqchip: GicV2Irqchip | GicV3Irqchip
    gicv: GicV | None  # a GICv2 guest's CPU interface (on either host)
    icv: IcvInterface | None  # a GICv3 guest's system-register interface
    redist_base: int = REDIST_DEFAULT
    clock: SystemCounter | None = None  # built from the platform when not given
    # the physical distributor (GICv2) or this CPU's redistributor (GICv3): the state of the
    # interrupts the CPU is signalled; KVM reaches it only through host_irqchip
    host_gic: GicDistributor | GicRedistributor | None = None

    def __post_init__(self) -> None:
        if self.clock is None:
            self.clock = SystemCounter(self.counters, self.platform)

    @staticmethod
    def mpidr(cpu: int) -> int:
        from .devicetree import mpidr_of

        return mpidr_of(cpu)


def build_board(platform: Platform, counters: list[int], redist_base: int = REDIST_DEFAULT,
                clock: SystemCounter | None = None) -> Board:
    """One physical CPU's hardware (its GIC CPU interfaces and host irqchip view); the
    counters and the system counter are the VM's, shared by every board."""
    board = _build_board(platform, counters, redist_base)
    if clock is not None:
        board.clock = clock
    return board


def _build_board(platform: Platform, counters: list[int], redist_base: int) -> Board:
    nr_lr = platform.nr_lr
    if platform.host_gic == 2:
        gich, gicd = GicH(counters, nr_lr), GicDistributor(counters)
        # an LR with the HW bit names a physical interrupt the GIC deactivates with it
        gich.lrf.deactivate_physical = gicd.deactivate
        return Board(platform, counters, gich, GicV2Irqchip(counters, gicd), GicV(counters, gich.lrf), None,
                     redist_base, host_gic=gicd)
    ich, gicr = IchInterface(counters, nr_lr, platform.nr_pri_bits), GicRedistributor(counters)
    ich.lrf.deactivate_physical = gicr.deactivate
    guest_v3 = platform.guest_gic == 3
    return Board(platform, counters, ich, GicV3Irqchip(counters, gicr),
                 None if guest_v3 else GicV(counters, ich.lrf), IcvInterface(counters, ich) if guest_v3 else None,
                 redist_base, host_gic=gicr)
