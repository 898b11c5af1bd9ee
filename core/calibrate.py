"""``worldswitch calibrate``: what the measurements say about the unit costs.

Every measured figure (the study's vanilla table, and any board measurements of vanilla
or patched kernels) is one linear equation in the profiles' parameters. All of them are
fitted jointly (:mod:`worldswitch.inference`): fitted parameters by the data alone, priors
pulled by the data as far as it identifies them, every platform of one host sharing its
costs. The result is each parameter with its uncertainty, every row's residual, a
leave-one-out cross-validation, and profiles written only where asked (``--write DIR``).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ProfileError
from .platform import Platform, cycles, profile_dir

if TYPE_CHECKING:
    from .inference import Model, Observation, Posterior
    from .measurements import Measurement
    from .study import Cell

#: a cell to run: (plugin selection, guest, platform)
Config = tuple[str, str, str]


@dataclass(frozen=True)
class Target:
    """A measured figure the fit must explain."""

    guest: str
    platform: str
    plugins: tuple[str, ...]  # canonical selection; () is vanilla
    cycles: float
    spread: float | None
    origin: str  # where it was read, for messages

    @property
    def config(self) -> Config:
        return (",".join(self.plugins) or "none", self.guest, self.platform)

    @property
    def selection(self) -> str:
        """The plugin set as a user would write it: vanilla, series, or the names."""
        from .plugin import discover, parse_selection

        if not self.plugins:
            return "vanilla"
        return "series" if self.plugins == tuple(parse_selection("series", discover())) else ",".join(self.plugins)

    @property
    def label(self) -> str:
        return f"{self.guest} on {self.platform} ({self.selection})"


def targets(reference: Mapping[str, Mapping[str, float]] | None, measurements: Sequence[Measurement],
            reference_name: str = "data/reference.toml", measurements_name: str = "") -> list[Target]:
    """The figures to fit: the vanilla reference's cells, then the measurement rows. The same
    cell measured twice is an error naming both places."""
    out: list[Target] = []
    seen: dict[tuple[str, str, tuple[str, ...]], str] = {}
    for guest, row in (reference or {}).items():
        for platform, value in row.items():
            out.append(Target(guest, platform, (), value, None, f"{reference_name} [cells.{guest}] {platform}"))
    for m in measurements:
        out.append(Target(m.guest, m.platform, m.plugins, m.cycles, m.spread,
                          f"measurement file {measurements_name}, measurement {m.row}"))
    for t in out:
        key = (t.guest, t.platform, t.plugins)
        if key in seen:
            raise ProfileError(f"{t.origin}: {t.label} is already measured in {seen[key]} (pass --reference none "
                               "to fit your own vanilla figures instead of the study's)")
        seen[key] = t.origin
    return out


@dataclass
class Calibration:
    """The joint fit: the posterior, the rows it explains, and what the data did to each prior."""

    posterior: Posterior
    targets: list[Target]
    observations: list[Observation]

    @property
    def model(self) -> Model:
        return self.posterior.model

    def values(self, platform: str) -> dict[str, float]:
        """The fitted value of every parameter ``platform`` shares with the fit."""
        pf = self.model.platforms[platform]
        return {name: self.posterior.value(pf.host, name) for name in pf.parameters
                if (pf.host, name) in self.model.index}

    def residuals(self) -> list[tuple[Target, float, float]]:
        """(row, model figure, its sd) for every fitted row."""
        return [(t, *self.posterior.predict(o.row)) for t, o in zip(self.targets, self.observations)]

    def leave_one_out(self) -> list[tuple[Target, float | None, float | None]]:
        """Each row predicted by the fit to all the others: (row, prediction, sd), or None
        where the others cannot identify the fitted parameters without it."""
        from .inference import fit

        out: list[tuple[Target, float | None, float | None]] = []
        for i, t in enumerate(self.targets):
            others = self.observations[:i] + self.observations[i + 1:]
            try:
                post = fit(self.model, others)
            except ProfileError:
                out.append((t, None, None))
                continue
            out.append((t, *post.predict(self.observations[i].row)))
        return out

    def verdicts(self) -> list[dict[str, object]]:
        """Per parameter: prior, range, posterior mean and sd, and what the data did: ``at
        zero`` (the data push it below zero: held there), ``fitted`` (no prior),
        ``overrode`` (the posterior left the prior's range), ``informed`` (the data at least
        halved the prior's sd) or ``prior`` (the data says little)."""
        out = []
        post = self.posterior
        for i, u in enumerate(self.model.unknowns):
            mean, sd = float(post.mean[i]), post.sd(i)
            if i in post.at_zero:
                verdict = "at zero"
            elif u.sd is None:
                verdict = "fitted"
            elif not u.low <= mean <= u.high:
                verdict = "overrode"
            elif sd < 0.5 * u.sd:
                verdict = "informed"
            else:
                verdict = "prior"
            out.append({"host": u.host, "name": u.name, "prior": u.prior, "range": None if u.sd is None else
                        [u.low, u.high], "value": mean, "sd": sd, "verdict": verdict})
        return out


def calibrate(platforms: Mapping[str, Platform], cells: Mapping[Config, Cell], rows: Sequence[Target]) -> Calibration:
    """Fit every host that has a measured, calibrated platform in ``rows``, jointly."""
    from .errors import TransparencyError
    from .inference import DEFAULT_NOISE, Model, Observation, fit
    from .study import transparency_problem

    for t in rows:
        if not platforms[t.platform].calibrated:
            raise ProfileError(f"{t.origin}: platform {t.platform} is not calibrated (calibrated = false in its "
                               "profile), so no fit can use it")
        vanilla = cells.get(("none", t.guest, t.platform))
        problem = transparency_problem(vanilla, cells[t.config]) if t.plugins and vanilla is not None else None
        if problem:  # the model's runs of that plugin set are not the kernel the user measured
            raise TransparencyError(f"{t.origin}: the plugin set {t.selection} changes what the guest sees "
                                    f"({problem}), so its counts cannot be fitted to a measurement")
    used = list(rows)
    if not used:
        raise ProfileError("no measurement to fit")
    hosts = sorted({platforms[t.platform].host for t in used})
    model = Model(platforms, hosts)
    obs = [Observation(t.origin, model.row(cells[t.config].counts, platforms[t.platform]), t.cycles,
                       t.spread if t.spread else DEFAULT_NOISE * t.cycles) for t in used]
    post = fit(model, obs)
    for i in post.at_zero:
        u = model.unknowns[i]
        if u.sd is None:
            # a cost no prior holds up that the data want negative: the file, not the model, is wrong
            raise ProfileError(f"host {u.host}: the measurements fit {u.name} below 0 cycles, which is "
                               "impossible: check the measurement file")
    return Calibration(post, used, obs)


def configurations(rows: Sequence[Target]) -> list[Config]:
    """The runs a fit needs, once each, in first-seen order: every row's, and vanilla beside
    each patched row (what the guest saw under it is checked against vanilla's)."""
    out: list[Config] = []
    for t in rows:
        out.append(t.config)
        if t.plugins:
            out.append(("none", t.guest, t.platform))
    return list(dict.fromkeys(out))


@dataclass
class HostFit:
    """One host's fitted values, as :func:`write_profiles` writes them."""

    host: str
    params: dict[str, float]
    residuals: dict[tuple[str, str], tuple[float, float]]


def host_fits(cal: Calibration) -> list[HostFit]:
    out: dict[str, HostFit] = {}
    for i, u in enumerate(cal.model.unknowns):
        out.setdefault(u.host, HostFit(u.host, {}, {})).params[u.name] = float(cal.posterior.mean[i])
    return [out[h] for h in sorted(out)]


# `value = 4356.0  # comment`: the number is replaced, the key's spelling and the comment kept
_VALUE = re.compile(r"(?P<lead>\s*value\s*=\s*)[^#\r\n]*?(?P<tail>\s*(#[^\r\n]*)?\r?\n?)$")


def _toml_float(v: float) -> str:
    """Ten significant digits: far below the fit's noise, and a TOML float (never an int)."""
    s = f"{v:.10g}"
    return s if any(c in s for c in ".e") else s + ".0"


def _rewrite(text: str, values: dict[str, float], where: str, keep: Mapping[str, float] | None = None) -> str:
    """``text`` with the ``value = ...`` line of each named parameter replaced, comments kept.
    A parameter in ``keep`` also gets a ``prior = ...`` line with that value after it: a
    prior whose central value was its ``value`` keeps it, not the fit's (else the next fit
    would count the data twice)."""
    keep = keep or {}
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
                    if name in keep:
                        newline = "\n" if lines[i].endswith("\n") else ""
                        if not newline:
                            lines[i] += "\n"
                        lines.insert(i + 1, f"prior = {_toml_float(keep[name])}\n")
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
        if k not in pf.parameters:
            raise ProfileError(f"profile {path} of host {fit.host} has no parameter {k!r}")
    keep = {k: pf.parameters[k].value for k in fit.params
            if pf.parameters[k].range is not None and pf.parameters[k].prior is None}
    try:
        text = _rewrite(path.read_text(), fit.params, f"profile {path}", keep)
        written = tomllib.loads(text)["parameters"]
        ok = all(written[k]["value"] == float(_toml_float(v)) for k, v in fit.params.items())
        ok = ok and all(written[k]["prior"] == float(_toml_float(v)) for k, v in keep.items())
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
    """Apply ``[PLATFORM:]NAME=VALUE``: hold a prior at exactly VALUE (no range), on every
    platform, or on every platform of PLATFORM's host (one host has one set of costs)."""
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
        if target and name not in out[target].parameters:
            raise ProfileError(f"--prior {item!r}: {target} has no parameter {name!r}")
        for pname, pf in out.items():
            if target and pf.host != out[target].host:
                continue
            if name in pf.parameters:
                if pf.parameters[name].fit:
                    raise ProfileError(f"--prior {item!r}: {name} is fitted on {pname}, not a prior")
                held = replace(pf.parameters[name], value=number, prior=None, range=None)
                out[pname] = replace(pf, parameters={**pf.parameters, name: held})
                hit = True
        if not hit:
            owner = f"{target} has no" if target else "no profile has a"
            raise ProfileError(f"--prior {item!r}: {owner} parameter {name!r}")
    return out


def fitted_profiles(platforms: Mapping[str, Platform], cal: Calibration) -> dict[str, Platform]:
    """The profiles with every parameter the fit estimated set to its fitted value."""
    return {name: with_values(pf, cal.values(name)) if name in cal.model.platforms else pf
            for name, pf in platforms.items()}
