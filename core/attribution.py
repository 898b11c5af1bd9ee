"""Who saves what: a study's results turned into per-plugin attribution.

For each guest × platform, with ``saved(S)`` the cycles per iteration a plugin set S saves
against vanilla:

- **alone**: ``saved(p with its requirements)``;
- **marginal**: what the whole set loses without p (and whatever requires p):
  ``saved(all) − saved(all − p − dependents)``;
- **interaction** of a pair a, b on top of R, what both need besides each other:
  ``saved(R+a+b) − saved(R+a) − saved(R+b) + saved(R)``, a set missing a requirement
  counting as its part that has them all: zero when the two simply add up, and all of 8's
  saving for 8 with 7, which it needs;
- **Shapley value**: each plugin's fair share of ``saved(all)``, averaging its marginal
  saving over every order of adding the plugins. A set that breaks a ``requires`` counts
  as its largest part that does not (a plugin without its requirement does nothing), so
  the shares add up to ``saved(all)`` exactly. Exact when every such part was measured
  (the factorial design); estimated from sampled orders, with its standard error, by the
  ``shapley`` design; otherwise not given.

Each figure appears only when every set it needs was measured; which design measures what
is in :mod:`worldswitch.designs`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

from .designs import closure, core


def attribute(plugins: Sequence[str], cycles: Mapping[frozenset[str], float],
              found: Mapping[str, Any], orders: Sequence[Sequence[str]] = ()) -> dict[str, Any]:
    """Attribution for one guest × platform from the measured ``cycles`` (per iteration)
    of each plugin set (frozenset; the empty set is vanilla)."""
    vanilla = cycles.get(frozenset())
    if vanilla is None:
        raise ValueError("no vanilla figure")
    everything = frozenset(plugins)

    def saved(s: frozenset[str]) -> float | None:
        c = cycles.get(s)
        return None if c is None else vanilla - c

    def with_reqs(p: str) -> frozenset[str]:
        return frozenset(closure(p, found)) & everything

    rows = []
    total = saved(everything)
    for p in plugins:
        dependents = frozenset(x for x in plugins if p in closure(x, found))
        rest = saved(everything - dependents)
        rows.append({"plugin": p, "alone": saved(with_reqs(p)),
                     "marginal": None if total is None or rest is None else total - rest})
    interactions = []
    for a, b in combinations(plugins, 2):
        # on top of what both need besides each other; a set missing a requirement counts
        # as its part that has them all (as for the Shapley shares): so for 8, which needs
        # 7, everything 8 saves is an interaction with 7
        base = (frozenset(closure(a, found)) | frozenset(closure(b, found))) & everything - {a, b}
        parts = [saved(core(base | {a, b}, found)), saved(core(base | {a}, found)), saved(core(base | {b}, found)),
                 saved(core(base, found))]
        if None not in parts:
            interactions.append({"a": a, "b": b, "value": parts[0] - parts[1] - parts[2] + parts[3]})
    shapley = _shapley(list(plugins), saved, found)
    sampled = _sampled_shapley(orders, saved, found) if shapley is None and orders else None
    for row in rows:
        row["shapley"] = None if shapley is None else shapley[row["plugin"]]
        if sampled is not None:
            row["shapley"], row["shapley_se"] = sampled[row["plugin"]]
    return {"vanilla": vanilla, "all": None if total is None else vanilla - total, "saved": total,
            "plugins": rows, "interactions": interactions, "shapley_exact": shapley is not None,
            "shapley_orders": len(orders) if sampled is not None else 0}


def _sampled_shapley(orders: Sequence[Sequence[str]], saved: Any,
                     found: Mapping[str, Any]) -> dict[str, tuple[float, float]] | None:
    """The mean marginal saving of each plugin over the sampled orders, with its standard
    error (sd / sqrt(orders)): an unbiased estimate of the Shapley share."""
    samples: dict[str, list[float]] = {p: [] for p in orders[0]}
    for order in orders:
        before = 0.0
        for i, p in enumerate(order):
            part = core(set(order[: i + 1]), found)
            now = saved(part) if part else 0.0
            if now is None:
                return None
            samples[p].append(now - before)
            before = now
    out = {}
    for p, xs in samples.items():
        mean = sum(xs) / len(xs)
        var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1) if len(xs) > 1 else float("nan")
        out[p] = (mean, math.sqrt(var / len(xs)) if len(xs) > 1 else float("nan"))
    return out


def _shapley(players: list[str], saved: Any, found: Mapping[str, Any]) -> dict[str, float] | None:
    k = len(players)
    if k > 12:  # 2^11 orders' worth of subsets per plugin: past that, use a sample (not written yet)
        return None
    memo: dict[frozenset[str], float | None] = {}

    def value(s: frozenset[str]) -> float | None:
        c = core(s, found)
        if c not in memo:
            memo[c] = 0.0 if not c else saved(c)
        return memo[c]

    out = {}
    fact = [math.factorial(i) for i in range(k + 1)]
    for i, p in enumerate(players):
        others = players[:i] + players[i + 1:]
        phi = 0.0
        for mask in range(1 << (k - 1)):
            s = frozenset(o for j, o in enumerate(others) if mask >> j & 1)
            with_p, without = value(s | {p}), value(s)
            if with_p is None or without is None:
                return None
            phi += fact[len(s)] * fact[k - len(s) - 1] / fact[k] * (with_p - without)
        out[p] = phi
    return out
