"""The host kernel's interrupt-controller driver, as far as KVM's timer code uses it:
irq_set_irqchip_state for the virtual timer PPI (kernel/irq/manage.c and the
irq-gic / irq-gic-v3 drivers)."""

from __future__ import annotations

from .events import IRQCHIP_STATE_CALL
from .hw.gic_v2 import GicDistributor
from .hw.gic_v3 import GicRedistributor


class GicV2Irqchip:
    """irq-gic.c: gic_poke_irq writes one bit of GICD_ISACTIVERn / GICD_ICACTIVERn."""

    STATE = ()  # the driver keeps nothing; the distributor it pokes does (core/memo.py)
    HOLDS = ("gicd",)

    def __init__(self, counters: list[int], gicd: GicDistributor) -> None:
        self.c = counters
        self.gicd = gicd

    def irq_set_irqchip_state(self, irq: int, active: bool) -> None:
        self.c[IRQCHIP_STATE_CALL] += 1
        if active:
            self.gicd.write_isactiver(irq // 32, 1 << (irq % 32))
        else:
            self.gicd.write_icactiver(irq // 32, 1 << (irq % 32))


class GicV3Irqchip:
    """irq-gic-v3.c: a PPI's active state is in the redistributor's SGI frame, and the
    driver then waits for the write to take effect (gic_redist_wait_for_rwp)."""

    STATE = ()
    HOLDS = ("gicr",)

    def __init__(self, counters: list[int], gicr: GicRedistributor) -> None:
        self.c = counters
        self.gicr = gicr

    def irq_set_irqchip_state(self, irq: int, active: bool) -> None:
        self.c[IRQCHIP_STATE_CALL] += 1
        if active:
            self.gicr.write_isactiver0(1 << irq)
        else:
            self.gicr.write_icactiver0(1 << irq)
        while self.gicr.read_ctlr() & (1 << 3):  # RWP
            pass
