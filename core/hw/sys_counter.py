"""The generic timer's system counter (CNTPCT/CNTVCT), on simulated time.

Unicorn's counter registers read host time, which would make every run different. Here
time is what the model says the machine spent: the priced counters (every world switch
at the platform's unit costs, its fixed-size context moves included), the guest's own
instructions at ``guest_cpi`` cycles each, and the idle time a waiting vCPU skips. Cycles
become counter ticks through the platform's CPU clock and CNTFRQ. Guest instructions are
counted turn by turn when the machine's run loop gets control back; inside a turn,
``in_turn`` (which the machine sets while a core runs) adds the instructions run since
the turn began, so every read sees every instruction before it.

CNTVOFF is zero, so the virtual and physical counts are equal (KVM sets CNTVOFF to the
host count at VM creation; a guest only ever sees differences).

The clock is the one way a guest may see an optimization: that is what it is for. To check
that plugins are otherwise transparent, a run can use ``mode="guest"``, where the clock
counts only the guest's own instructions and idle time, which no plugin can change.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..cost import clock_pricer

if TYPE_CHECKING:
    from ..platform import Platform


def no_turn() -> float:
    """No core is running: the clock holds every instruction already."""
    return 0.0


class SystemCounter:
    def __init__(self, counters: list[int], platform: Platform, mode: str = "model") -> None:
        if mode not in ("model", "guest"):
            raise ValueError(f"clock mode {mode!r}: expected 'model' or 'guest'")
        self.c = counters
        self.mode = mode
        self.used = False  # the guest read the counter or armed the timer: its view depends on time
        self.price = clock_pricer(platform)
        self.cntfrq = platform.cntfrq_hz
        self.cpu_hz = platform.cpu_hz
        self.guest_cpi = platform.guest_cpi
        self.guest_insns = 0.0  # counted by the machine, turn by turn
        self.in_turn: Callable[[], float] = no_turn  # the running turn's instructions so far
        self.idle_cycles = 0.0  # skipped while every vCPU waited
        self._mark, self._priced = -1, 0.0
        self.reads = 0  # how often time was read: a round trip that reads it is never memoised


    def cycles(self) -> float:
        self.reads += 1
        own = (self.guest_insns + self.in_turn()) * self.guest_cpi + self.idle_cycles
        if self.mode == "guest":
            return own
        # counters only grow, so their sum changes whenever the price does: a guest polling
        # the counter between two exits pays for one sum, not for pricing every event class
        mark = sum(self.c)
        if mark != self._mark:
            self._mark, self._priced = mark, self.price(self.c)
        return self._priced + own

    def ticks(self) -> int:
        return int(self.cycles() * self.cntfrq // self.cpu_hz)

    def cycles_to(self, ticks: int) -> float:
        """Cycles from now until the count reaches ``ticks`` (its first whole cycle)."""
        return -(-(ticks * self.cpu_hz) // self.cntfrq) - self.cycles()

    def wait_until(self, ticks: int) -> None:
        """Idle until the count reaches ``ticks`` (nothing happens if it already has)."""
        now = self.ticks()
        if ticks > now:
            # the first whole cycle at or after the deadline, so ticks() >= target afterwards
            self.idle_cycles += max(self.cycles_to(ticks), 0.0)
            while self.ticks() < ticks:  # float rounding: at most a step or two
                self.idle_cycles += 1.0
