"""What the measurements say about the unit costs, and how sure a prediction is.

Every figure the model prices is linear in the profiles' parameters: a cell's cycles per
iteration are ``c0 + a·θ``, with ``a`` its counted events per iteration times their cost
coefficients (:mod:`worldswitch.cost`). So calibration is a linear-Gaussian problem with an
exact answer, no sampling:

- a prior parameter is a Gaussian whose 90 % interval is its documented ``range`` (the
  wider side's width on both sides when the range is lopsided: conservative);
- a fitted parameter (``fit = true``) has a flat prior: the data alone must set it;
- a measured cell is ``c0 + a·θ`` plus Gaussian noise of its ``spread`` (one standard
  deviation), or :data:`DEFAULT_NOISE` of its value when the file gives none;
- platforms of one host (C-v2 and C-v3) share one set of parameters.

The posterior is Gaussian too, then cut to costs >= 0: its mode (found as in
non-negative least squares) is the calibrated value, and a prediction's 90 % interval is
the 5th to 95th percentile over seeded draws from it. With only vanilla figures this is
"draw the priors, refit the free parameters to vanilla, price, keep draws whose costs are
all possible": the free parameters are linear in the priors.

numpy is imported here only, so the run path never loads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import ProfileError

if TYPE_CHECKING:
    from .platform import Platform

#: z of a two-sided 90 % interval of a Gaussian
Z90 = 1.6448536269514722
#: the name of the measurements' own share of an interval in :meth:`Posterior.shares`
NOISE_SHARE = "measurements"
#: posterior samples behind every interval, and their seed (fixed: same intervals everywhere)
DRAWS = 20000
SEED = 20160201
#: the noise of a figure given without a spread: measurement and model error together,
#: one standard deviation as a fraction of the figure (the study gives no spreads; its
#: vanilla figures are fitted to well under 1 %, see README "What to trust")
DEFAULT_NOISE = 0.01


@dataclass(frozen=True)
class Unknown:
    """One parameter the fit estimates: ``name`` of ``host``; ``prior``/``sd`` its Gaussian
    prior, or None for a flat one (a ``fit = true`` parameter)."""

    host: str
    name: str
    prior: float | None
    sd: float | None
    low: float | None = None
    high: float | None = None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.name}"


@dataclass(frozen=True)
class Row:
    """A linear figure: cycles = c0 + a·θ (a over the model's unknowns)."""

    c0: float
    a: np.ndarray

    def __sub__(self, other: Row) -> Row:
        return Row(self.c0 - other.c0, self.a - other.a)


@dataclass(frozen=True)
class Observation:
    """A measured figure and where it came from (for messages and reports)."""

    label: str
    row: Row
    cycles: float
    sd: float


def prior_sd(low: float, high: float, central: float) -> float:
    return max(central - low, high - central) / Z90


class Model:
    """The unknowns of the given hosts' calibrated profiles, and the rows of cells on them."""

    def __init__(self, platforms: Mapping[str, Platform], hosts: Sequence[str]) -> None:
        self.platforms = {n: p for n, p in platforms.items() if p.host in hosts and p.calibrated}
        self.unknowns: list[Unknown] = []
        self.index: dict[tuple[str, str], int] = {}
        seen: dict[tuple[str, str], tuple[str, object]] = {}
        for pf in self.platforms.values():
            for name, p in sorted(pf.parameters.items()):
                key = (pf.host, name)
                spec = (p.fit, p.central if not p.fit else None, p.range)
                if key in seen:
                    if seen[key][1] != spec:
                        raise ProfileError(f"profiles {seen[key][0]} and {pf.name} of host {pf.host} disagree on "
                                           f"parameter {name!r} (fit, prior or range): one host has one set of costs")
                    continue
                seen[key] = (pf.name, spec)
                if p.fit:
                    u = Unknown(pf.host, name, None, None)
                elif p.range is not None:
                    u = Unknown(pf.host, name, p.central, prior_sd(*p.range, p.central), *p.range)
                else:
                    continue  # held fixed at its value: a constant, not an unknown
                self.index[key] = len(self.unknowns)
                self.unknowns.append(u)

    def row(self, counts: Mapping[str, float], pf: Platform) -> Row:
        """The linear form of a cell's cycles per iteration on ``pf``."""
        a = np.zeros(len(self.unknowns))
        c0 = 0.0
        for ev, terms in pf.costs.items():
            n = counts.get(ev.name, 0.0)
            if not n:
                continue
            for coef, name in terms:
                i = self.index.get((pf.host, name)) if name else None
                if i is not None:
                    a[i] += n * coef
                else:
                    c0 += n * coef * (pf.parameters[name].value if name else 1.0)
        return Row(c0, a)


@dataclass
class Posterior:
    model: Model
    mean: np.ndarray
    cov: np.ndarray
    precision: np.ndarray
    at_zero: list[int]  # costs the data pushed below zero, held there
    _draws: np.ndarray | None = None

    def draws(self) -> np.ndarray:
        """Samples of the unknowns from the posterior with every cost >= 0, seeded so that
        every process draws the same ones. Hosts share nothing, so each host's block is
        drawn on its own, by rejection from its Gaussian (exact for the cut posterior)."""
        if self._draws is None:
            rng = np.random.default_rng(SEED)
            out = np.tile(self.mean, (DRAWS, 1))
            for host in dict.fromkeys(u.host for u in self.model.unknowns):
                block = [i for i, u in enumerate(self.model.unknowns) if u.host == host and i not in self.at_zero]
                out[:, block] = self._block_draws(rng, block, host)
            self._draws = out
        return self._draws

    def _block_draws(self, rng: np.random.Generator, block: list[int], host: str) -> np.ndarray:
        cov = self.cov[np.ix_(block, block)]
        chol = np.linalg.cholesky(cov + 1e-12 * np.diag(np.diag(cov)) + 1e-300 * np.eye(len(block)))
        kept: list[np.ndarray] = []
        got = tried = 0
        while got < DRAWS and tried < 50 * DRAWS:
            batch = self.mean[block] + rng.standard_normal((DRAWS, len(block))) @ chol.T
            ok = batch[(batch >= 0).all(axis=1)]
            kept.append(ok)
            got += len(ok)
            tried += DRAWS
        if got < DRAWS:
            raise ProfileError(f"host {host}: the priors and measurements leave almost no room for costs >= 0 "
                               f"({got} of {tried} draws): check the measurement files and the priors' ranges")
        return np.concatenate(kept)[:DRAWS]

    def interval(self, row: Row) -> tuple[float, float]:
        """The 90 % interval of a linear figure: its 5th and 95th percentiles over :meth:`draws`."""
        values = row.c0 + self.draws() @ row.a
        lo, hi = np.percentile(values, [5, 95])
        return float(lo), float(hi)

    def change_interval(self, before: Row, after: Row) -> tuple[float, float]:
        """The 90 % interval of after/before − 1, computed draw by draw (no linearisation)."""
        d = self.draws()
        values = (after.c0 + d @ after.a) / (before.c0 + d @ before.a) - 1.0
        lo, hi = np.percentile(values, [5, 95])
        return float(lo), float(hi)

    def value(self, host: str, name: str) -> float:
        return float(self.mean[self.model.index[(host, name)]])

    def sd(self, i: int) -> float:
        return float(np.sqrt(max(self.cov[i, i], 0.0)))

    def predict(self, row: Row) -> tuple[float, float]:
        """Mean and standard deviation of a linear figure."""
        return row.c0 + float(row.a @ self.mean), float(np.sqrt(max(row.a @ self.cov @ row.a, 0.0)))

    def shares(self, grad: np.ndarray) -> dict[str, float]:
        """How much each prior contributes to the variance of ``grad·θ``, and the rest, the
        measurements' noise, under :data:`NOISE_SHARE` (fractions summing to 1). Exact for the
        Gaussian: the posterior mean is linear in the prior means and the measurements, so
        its variance splits into their terms."""
        w = self.cov @ grad
        total = float(grad @ w)
        if total <= 0:
            return {}
        out = {}
        for i, u in enumerate(self.model.unknowns):
            if u.sd is not None:
                out[u.label] = float(w[i] ** 2 / u.sd**2) / total
        out[NOISE_SHARE] = max(0.0, 1.0 - sum(out.values()))
        return out


def fit(model: Model, observations: Sequence[Observation]) -> Posterior:
    """The Gaussian posterior of the unknowns given the observations, with every cost >= 0.

    A cost the data pushes below zero is held at zero (the posterior's mode under the
    constraint, found by an active set as in non-negative least squares) and listed in
    ``Posterior.at_zero``: a sign that the model lacks something the measurements see.
    A flat (fitted) parameter the observations cannot determine is an error naming it."""
    n = len(model.unknowns)
    precision = np.zeros((n, n))
    b = np.zeros(n)
    for ob in observations:
        w = 1.0 / ob.sd**2
        precision += w * np.outer(ob.row.a, ob.row.a)
        b += w * ob.row.a * (ob.cycles - ob.row.c0)
    for i, u in enumerate(model.unknowns):
        if u.sd is not None:
            precision[i, i] += 1.0 / u.sd**2
            b[i] += u.prior / u.sd**2
    _check_identified(model, precision)
    zero: list[int] = []
    for _ in range(4 * n + 4):
        free = [i for i in range(n) if i not in zero]
        mean = np.zeros(n)
        mean[free] = np.linalg.solve(precision[np.ix_(free, free)], b[free])
        negative = [i for i in free if mean[i] < 0]
        if negative:
            zero.append(min(negative, key=lambda i: mean[i]))
            continue
        # a cost held at zero that would now lower the misfit by rising is released
        grad = precision @ mean - b
        rising = [i for i in zero if grad[i] < -1e-9 * max(1.0, abs(b[i]))]
        if not rising:
            break
        zero.remove(min(rising, key=lambda i: grad[i]))
    cov = np.zeros((n, n))
    free = [i for i in range(n) if i not in zero]
    cov[np.ix_(free, free)] = np.linalg.inv(precision[np.ix_(free, free)])
    return Posterior(model, mean, cov, precision, sorted(zero))


def _check_identified(model: Model, precision: np.ndarray) -> None:
    diag = np.sqrt(np.diag(precision))
    for i, u in enumerate(model.unknowns):
        if diag[i] == 0:
            raise ProfileError(f"host {u.host}: parameter {u.name!r} is not identified by the measurements "
                               "(no measured figure depends on it, and it has no prior)")
    scaled = precision / np.outer(diag, diag)
    vals, vecs = np.linalg.eigh(scaled)
    if vals[0] > 1e-10 * vals[-1]:
        return
    flat = [i for i, u in enumerate(model.unknowns) if u.sd is None]
    worst = max(flat, key=lambda i: abs(vecs[i, 0])) if flat else int(np.argmax(abs(vecs[:, 0])))
    others = [model.unknowns[i].name for i in flat if abs(vecs[i, 0]) > 0.05 and i != worst]
    along = f" (only its sum with {', '.join(others)} is)" if others else ""
    u = model.unknowns[worst]
    raise ProfileError(f"host {u.host}: parameter {u.name!r} is not identified by the measurements{along}: "
                       "add measurements that separate it, or give it a prior")
