"""Study designs: which plugin sets to run to learn what each plugin buys.

A design turns a list of plugins into the sets to measure, vanilla always first:

- ``one-at-a-time``: each plugin alone over vanilla, with the plugins it requires (and the
  whole set, for what they save together);
- ``leave-one-out``: the whole set, and the whole set without each plugin (and whatever
  requires it);
- ``cumulative``: the plugins added one by one in the given order (the series' order:
  how the kernel applied them);
- ``factorial``: every subset (2^k runs per guest and platform: refused past
  :data:`FACTORIAL_MAX` plugins);
- ``random``: N subsets drawn with a seed, each plugin in or out with even odds;
- ``shapley``: N orders of the plugins drawn with a seed, and every prefix of each: what a
  sampled Shapley split needs when the factorial design is too large.

A set that breaks a plugin's ``requires`` is never run: it is listed in ``skipped`` with
the reason, as a user would want to see it. Third-party plugins take part exactly like the
built-in ones.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import UsageError

DESIGNS = ("one-at-a-time", "leave-one-out", "cumulative", "factorial", "random", "shapley")
#: factorial over more plugins than this is 2^13 = 8192 sets per guest and platform: refused
FACTORIAL_MAX = 12


@dataclass(frozen=True)
class Subset:
    """One plugin set of a design: a label for tables (``vanilla``, ``+7``, ``all−7``) and
    its plugins in the order ``parse_selection`` gives them."""

    label: str
    plugins: tuple[str, ...]

    @property
    def selection(self) -> str:
        return ",".join(self.plugins) or "none"


@dataclass
class Design:
    name: str
    plugins: tuple[str, ...]  # the plugins studied
    subsets: list[Subset] = field(default_factory=list)  # vanilla first, each set once
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (label, why it is not run)
    seed: int | None = None
    orders: list[tuple[str, ...]] = field(default_factory=list)  # shapley: the sampled orders

    def add(self, label: str, chosen: Sequence[str], found: Mapping[str, Any]) -> None:
        plugins = tuple(p for p in self.plugins if p in chosen)
        missing = _missing(plugins, found)
        if missing:
            self.skipped.append((label, missing))
        elif all(s.plugins != plugins for s in self.subsets):
            self.subsets.append(Subset(label, plugins))


def closure(name: str, found: Mapping[str, Any]) -> set[str]:
    """The plugin and everything it requires, transitively (installed or not)."""
    out, todo = {name}, [name]
    while todo:
        current = todo.pop()
        for req in found[current].meta.requires if current in found else ():
            if req not in out:
                out.add(req)
                todo.append(req)
    return out


def core(chosen: frozenset[str] | set[str], found: Mapping[str, Any]) -> frozenset[str]:
    """The largest part of ``chosen`` whose every plugin has its requirements in it (what
    the set amounts to: a plugin without its requirement does nothing)."""
    out = set(chosen)
    changed = True
    while changed:
        changed = False
        for p in list(out):
            if any(r not in out for r in found[p].meta.requires):
                out.discard(p)
                changed = True
    return frozenset(out)


def _missing(plugins: Sequence[str], found: Mapping[str, Any]) -> str:
    """Why a set breaks a ``requires``, or '' when it does not."""
    chosen = set(plugins)
    for p in plugins:
        for req in found[p].meta.requires:
            if req not in chosen:
                return f"{p} requires {req}"
    return ""


def _short(name: str, found: Mapping[str, Any]) -> str:
    """A plugin's label in a set's name: its patch number if built-in, else its name."""
    info = found[name]
    return str(info.meta.patch) if info.builtin and info.meta.patch else name


def build(name: str, plugins: Sequence[str], found: Mapping[str, Any], n: int | None = None,
          seed: int | None = None) -> Design:
    """The design ``name`` over ``plugins`` (a parsed selection, in series order)."""
    if name not in DESIGNS:
        raise UsageError(f"unknown design {name!r}; known: {', '.join(DESIGNS)}")
    if not plugins:
        raise UsageError("a design needs at least one plugin (--plugins)")
    d = Design(name, tuple(plugins), seed=seed)
    d.add("vanilla", (), found)
    if name == "one-at-a-time":
        d.add("all", plugins, found)  # so that "all together" and what the parts leave out are known
        for p in plugins:
            with_reqs = closure(p, found)
            outside = sorted(with_reqs - set(plugins))
            if outside:  # a requirement the user left out of the study: the set cannot be run
                d.skipped.append((f"+{_short(p, found)}", f"{p} requires {outside[0]}, which is not in the study"))
                continue
            extra = [x for x in plugins if x in with_reqs - {p}]
            d.add(f"+{_short(p, found)}" + (f" (with {','.join(_short(x, found) for x in extra)})" if extra else ""),
                  [x for x in plugins if x in with_reqs], found)
    elif name == "leave-one-out":
        d.add("all", plugins, found)
        for p in plugins:
            dependents = {x for x in plugins if p in closure(x, found)}
            d.add(f"all-{_short(p, found)}", [x for x in plugins if x not in dependents], found)
    elif name == "cumulative":
        for i in range(1, len(plugins) + 1):
            d.add("+" + ",".join(_short(x, found) for x in plugins[:i]), plugins[:i], found)
    elif name == "factorial":
        k = len(plugins)
        if k > FACTORIAL_MAX:
            raise UsageError(f"factorial over {k} plugins is 2^{k} = {2 ** k} sets per guest and platform; at most "
                             f"{FACTORIAL_MAX} plugins (try random N --seed S)")
        for mask in range(1, 2**k):
            chosen = [p for i, p in enumerate(plugins) if mask >> i & 1]
            d.add("+" + ",".join(_short(x, found) for x in chosen), chosen, found)
    elif name == "shapley":
        if n is None or n < 1:
            raise UsageError("shapley needs N >= 1, the number of sampled orders")
        rng = random.Random(seed if seed is not None else 0)
        d.seed = seed if seed is not None else 0
        for _ in range(n):
            order = list(plugins)
            rng.shuffle(order)
            d.orders.append(tuple(order))
            for i in range(1, len(order) + 1):
                part = core(set(order[:i]), found)
                if part:
                    d.add("+" + ",".join(_short(x, found) for x in plugins if x in part), sorted(part), found)
    else:
        if n is None or n < 1:
            raise UsageError("random needs N >= 1")
        rng = random.Random(seed if seed is not None else 0)
        d.seed = seed if seed is not None else 0
        tries, invalid = 0, 0
        limit = min(2 ** len(plugins) - 1, n)
        while len(d.subsets) - 1 < limit and tries < 200 * n:
            tries += 1
            chosen = [p for p in plugins if rng.random() < 0.5]
            if not chosen:
                continue
            if _missing(chosen, found):
                invalid += 1
                continue
            d.add("+" + ",".join(_short(x, found) for x in chosen), chosen, found)
        if invalid:
            d.skipped.append((f"{invalid} draw(s)", "broke a plugin's requires and were drawn again"))
        if len(d.subsets) - 1 < n:
            d.skipped.append((f"{n - len(d.subsets) + 1} set(s)", "not enough distinct valid subsets to draw"))
    return d
