"""``worldswitch calibrate``: fit the profiles' free parameters to a measurement file.

Each cell (guest, platform) gives one equation: measured cycles per iteration =
Σ counted events per iteration × unit cost. Unit costs are linear in the profile's
parameters; the ones marked ``fit = true`` are solved by least squares per host
(C-v2 and C-v3 share host C's parameters), the others stay at their priors.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from .errors import ProfileError
from .platform import Platform, cycles, profile_dir
from .study import Cell


@dataclass
class HostFit:
    host: str
    params: dict[str, float]  # fitted values
    residuals: dict[tuple[str, str], tuple[float, float]]  # (guest, platform) -> (measured, model)


# `value = 4356.0  # comment`: the number is replaced, the key's spelling and the comment kept
_VALUE = re.compile(r"(?P<lead>\s*value\s*=\s*)[^#\r\n]*?(?P<tail>\s*(#[^\r\n]*)?\r?\n?)$")


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
    for name, v in params.items():
        # a cost is never negative: the measurement file, not the model, is wrong
        if not math.isfinite(v) or v < 0:
            raise ProfileError(f"host {host}: the measurements fit {name} = {v:.6g} cycles, which is impossible: "
                               "check the measurement file")
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


def _toml_float(v: float) -> str:
    """Ten significant digits: far below the fit's noise, and a TOML float (never an int)."""
    s = f"{v:.10g}"
    return s if any(c in s for c in ".e") else s + ".0"


def _rewrite(text: str, values: dict[str, float], where: str) -> str:
    """``text`` with the ``value = ...`` line of each named parameter replaced, comments kept."""
    lines = text.splitlines(keepends=True)
    for name, v in values.items():
        if not math.isfinite(v) or v < 0:
            raise ProfileError(f"{where}: refusing to write {name} = {v!r} cycles")
        header = re.compile(rf"\s*\[\s*parameters\.{re.escape(name)}\s*\]\s*(#.*)?$")
        start = next((i for i, line in enumerate(lines) if header.match(line)), None)
        hit = None
        if start is not None:
            for i in range(start + 1, len(lines)):
                if lines[i].lstrip().startswith("["):
                    break
                m = _VALUE.match(lines[i])
                if m:
                    hit = i
                    lines[i] = f"{m['lead']}{_toml_float(v)}{m['tail']}"
                    break
        if hit is None:
            raise ProfileError(f"{where}: cannot find the 'value = ...' line of [parameters.{name}] to update")
    return "".join(lines)


def _write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` in one step: a crash or a full disk leaves the old file or none, never half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); a profile is an ordinary file
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fitted_copy(pf: Platform, path: Path, fit: HostFit) -> str:
    """The text of ``pf``'s file ``path`` with ``fit``'s values, checked by parsing it back."""
    for k in fit.params:
        if k not in pf.parameters or not pf.parameters[k].fit:
            raise ProfileError(f"profile {path} of host {fit.host} has no fitted parameter {k!r}")
    try:
        text = _rewrite(path.read_text(), fit.params, f"profile {path}")
        written = tomllib.loads(text)["parameters"]
        ok = all(written[k]["value"] == float(_toml_float(v)) for k, v in fit.params.items())
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ProfileError(f"cannot update profile {path}: {e}") from None
    if not ok:  # the edit hit some other line: write nothing rather than a wrong profile
        raise ProfileError(f"cannot update profile {path}: its values are not where expected")
    return text


def _refuse_package(where: Path) -> None:
    package = profile_dir().parent.resolve()
    target = where.resolve()
    if target == package or package in target.parents:
        raise ProfileError(f"refusing to write into the installed package ({target}): write to a directory of "
                           "your own and load it with --profiles DIR --replace")


def check_out_dir(out_dir: Path) -> None:
    """Fail before a calibration run, not after it, if ``out_dir`` cannot take profiles."""
    _refuse_package(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ProfileError(f"cannot write profiles to {out_dir}: it exists and is not a directory")


def write_profiles(fits: list[HostFit], platforms: dict[str, Platform], out_dir: Path) -> list[Path]:
    """Copy every profile of a fitted host into ``out_dir`` with its fitted values, and
    return the files written (comments kept). Nothing is ever written into the installed
    package: its profiles are the reference the tests and other users rely on."""
    check_out_dir(out_dir)
    # Compose and check every file before writing any, so a bad one leaves out_dir untouched.
    texts: dict[Path, str] = {}
    for fit in fits:
        for pf in platforms.values():
            if pf.host != fit.host:
                continue
            if pf.path is None:
                raise ProfileError(f"profile {pf.name} has no file to copy")
            dest = out_dir / pf.path.name
            if dest in texts:
                raise ProfileError(f"two fitted profiles would both be written to {dest}")
            texts[dest] = _fitted_copy(pf, pf.path, fit)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for dest, text in texts.items():
            _write_atomically(dest, text)
    except OSError as e:
        raise ProfileError(f"cannot write profiles to {out_dir}: {e}") from None
    return list(texts)


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
        number = cycles(number, f"--prior {target + ':' if target else ''}{name}")
        if target and target not in out:
            raise ProfileError(f"--prior {item!r}: unknown platform {target!r}; known: {', '.join(out)}")
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
            owner = f"{target} has no" if target else "no profile has a"
            raise ProfileError(f"--prior {item!r}: {owner} parameter {name!r}")
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
