"""``worldswitch calibrate``: fit the profiles' free parameters to a measurement file.

Each cell (guest, platform) gives one equation: measured cycles per iteration =
Σ counted events per iteration × unit cost. Unit costs are linear in the profile's
parameters; the ones marked ``fit = true`` are solved by least squares per host
(C-v2 and C-v3 share host C's parameters), the others stay at their priors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ProfileError
from .platform import Platform
from .study import Cell


@dataclass
class HostFit:
    host: str
    params: dict[str, float]  # fitted values
    residuals: dict[tuple[str, str], tuple[float, float]]  # (guest, platform) -> (measured, model)


def _solve(a: list[list[float]], y: list[float]) -> list[float]:
    """Least squares through the normal equations (a handful of unknowns)."""
    n = len(a[0])
    ata = [[sum(r[i] * r[j] for r in a) for j in range(n)] for i in range(n)]
    aty = [sum(r[i] * yy for r, yy in zip(a, y)) for i in range(n)]
    m = [row[:] + [v] for row, v in zip(ata, aty)]
    for col in range(n):
        piv = max(range(col, n), key=lambda r: abs(m[r][col]))
        if abs(m[piv][col]) < 1e-9 * max(1.0, max(abs(x) for row in m for x in row[:-1])):
            raise ValueError(col)
        m[col], m[piv] = m[piv], m[col]
        for r in range(n):
            if r != col:
                f = m[r][col] / m[col][col]
                m[r] = [x - f * y0 for x, y0 in zip(m[r], m[col])]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit_host(host: str, platforms: list[Platform], cells: dict[tuple[str, str], Cell],
             reference: dict[str, dict[str, float]]) -> HostFit:
    free = sorted({k for pf in platforms for k, p in pf.parameters.items() if p.fit})
    for pf in platforms[1:]:
        for k in free:
            a, b = platforms[0].parameters.get(k), pf.parameters.get(k)
            if (a is None) != (b is None) or (a and b and a.fit != b.fit):
                raise ProfileError(f"profiles of host {host} disagree on parameter {k!r}")
    rows, ys, keys = [], [], []
    for pf in platforms:
        priors = {k: (0.0 if p.fit else p.value) for k, p in pf.parameters.items()}
        for guest, row in reference.items():
            if pf.name not in row:
                continue
            cell = cells[(guest, pf.name)]
            coeffs = dict.fromkeys(free, 0.0)
            fixed = 0.0
            for ev, terms in pf.costs.items():
                n = cell.counts.get(ev.name, 0.0)
                for coef, name in terms:
                    if name in coeffs:
                        coeffs[name] += n * coef
                    else:
                        fixed += n * coef * (priors[name] if name else 1.0)
            rows.append([coeffs[k] for k in free])
            ys.append(row[pf.name] - fixed)
            keys.append((guest, pf.name))
    if len(rows) < len(free):
        raise ProfileError(f"host {host}: {len(free)} parameters to fit from only {len(rows)} measurements")
    try:
        theta = _solve(rows, ys)
    except ValueError as e:
        name = free[e.args[0]]
        raise ProfileError(f"host {host}: parameter {name!r} is not identified by the measurements") from None
    params = dict(zip(free, theta))
    residuals = {}
    for key, r, y in zip(keys, rows, ys):
        measured = reference[key[0]][key[1]]
        residuals[key] = (measured, measured - y + sum(c * t for c, t in zip(r, theta)))
    return HostFit(host, params, residuals)


def calibrate(platforms: dict[str, Platform], cells: dict[tuple[str, str], Cell],
              reference: dict[str, dict[str, float]]) -> list[HostFit]:
    hosts: dict[str, list[Platform]] = {}
    for pf in platforms.values():
        if pf.calibrated and any(pf.name in row for row in reference.values()):
            hosts.setdefault(pf.host, []).append(pf)
    return [fit_host(h, pfs, cells, reference) for h, pfs in sorted(hosts.items())]


def write_values(path: Path, values: dict[str, float]) -> None:
    """Rewrite ``value = ...`` of the named parameters, keeping the file's comments."""
    text = path.read_text()
    for name, v in values.items():
        pattern = re.compile(rf"(\[parameters\.{re.escape(name)}\]\s*\nvalue = )[^\n]*")
        text, n = pattern.subn(lambda m, v=v: f"{m.group(1)}{v:.4f}", text)
        if n != 1:
            raise ProfileError(f"{path.name}: cannot find [parameters.{name}] value to update")
    path.write_text(text)


def with_values(pf: Platform, values: dict[str, float]) -> Platform:
    params = {k: replace(p, value=values[k]) if k in values else p for k, p in pf.parameters.items()}
    return replace(pf, parameters=params)


def set_priors(platforms: dict[str, Platform], priors: list[str]) -> dict[str, Platform]:
    """Apply ``[PLATFORM:]NAME=VALUE`` overrides of prior parameters."""
    out = dict(platforms)
    for item in priors:
        target, _, assignment = item.rpartition(":")
        name, eq, value = assignment.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = None
        if not eq or number is None:
            raise ProfileError(f"--prior {item!r}: expected [PLATFORM:]NAME=VALUE")
        hit = False
        for pname, pf in out.items():
            if target and pname != target:
                continue
            if name in pf.parameters:
                if pf.parameters[name].fit:
                    raise ProfileError(f"--prior {item!r}: {name} is fitted on {pname}, not a prior")
                out[pname] = with_values(pf, {name: number})
                hit = True
        if not hit:
            raise ProfileError(f"--prior {item!r}: no profile has a parameter {name!r}")
    return out


def refit(platforms: dict[str, Platform], cells: dict[tuple[str, str], Cell],
          reference: dict[str, dict[str, float]]) -> dict[str, Platform]:
    """The profiles with their free parameters refitted (after a prior changed)."""
    out = dict(platforms)
    for fit in calibrate(platforms, cells, reference):
        for name, pf in out.items():
            if pf.host == fit.host:
                out[name] = with_values(pf, fit.params)
    return out
