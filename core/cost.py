"""The cost model: cycles = Σ counted events × the platform's unit costs.

This is the only place counts become cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .events import Ev
from .platform import Platform


def cycles(counts: Sequence[float] | Mapping[str, float], platform: Platform,
           overrides: dict[str, float] | None = None) -> float:
    """Price counts: a run's counter array (indexed by :class:`Ev`), or counts by event
    name (a table cell's per-iteration counts)."""
    units = platform.unit_costs(overrides)
    if isinstance(counts, Mapping):
        return sum(units[Ev[name]] * n for name, n in counts.items())
    return sum(u * n for u, n in zip(units, counts))


def breakdown(counts: list[int], platform: Platform) -> dict[str, float]:
    """Cycles by event class, for the classes that cost something."""
    units = platform.unit_costs()
    return {ev.name: units[ev] * counts[ev] for ev in Ev if units[ev] * counts[ev]}


def pricer(platform: Platform) -> Callable[[Sequence[float]], float]:
    """:func:`cycles` for a run's counter array, with the unit costs looked up once (the
    system counter prices the run so far on every guest read of the clock)."""
    units = platform.unit_costs()

    def price(counts: Sequence[float]) -> float:
        return sum(u * n for u, n in zip(units, counts))

    return price


def clock_pricer(platform: Platform) -> Callable[[Sequence[float]], float]:
    """The cycles a running guest has lived through, for the system counter: as
    :func:`pricer`, but the fixed-size context moves of each round trip, which the vCPU
    counts in one go when it stops (``Vcpu.finish_counts``), are charged with each exit.
    A guest sees an exit only once it is back in, so every exit it sees came with its entry."""
    from .kvm.arm import fixed_steps

    units = list(platform.unit_costs())
    per_round_trip = 0.0
    for ev, n in fixed_steps(1, 1):
        per_round_trip += units[ev] * n
        units[ev] = 0.0  # never twice, whatever the counters hold
    world_switch = Ev.WORLD_SWITCH

    def price(counts: Sequence[float]) -> float:
        return sum(u * n for u, n in zip(units, counts)) + per_round_trip * counts[world_switch]

    return price
