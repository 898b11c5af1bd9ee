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
