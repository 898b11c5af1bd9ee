"""Platform profiles: data files (TOML) with the hardware description and unit costs.

A profile names its host GIC and guest GIC, the list registers and priority bits, and
a set of scalar *parameters* (cycles), each either fitted by ``worldswitch calibrate``
or fixed as a documented prior. The ``[costs]`` table prices every event class as
``"param"``, ``"k * param"`` or a number.

The built-in profiles live in the package and are never written to; a user directory
(:func:`use_profile_dir`, or ``$WORLDSWITCH_PROFILES``) adds profiles, or replaces
built-in ones when asked to.
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ProfileError
from .events import N_EVENTS, Ev

PROFILES_ENV = "WORLDSWITCH_PROFILES"

#: List registers a host GIC can have: GICH_VTR.ListRegs (GICv2) is 6 bits, so up to 64
#: GICH_LRn; a GICv3 CPU interface has at most 16 ICH_LR<n>_EL2 (Linux masks
#: ICH_VTR_EL2.ListRegs with 0xf).
MAX_LRS = {2: 64, 3: 16}
#: Virtual priority bits: GICv2 implements 5 (GICH_LR.Priority is [27:23]); GICv3's
#: ICH_VTR_EL2.PRIbits reports 5 to 8.
PRI_BITS = range(5, 9)
ARCHES = ("aarch64", "aarch32")
_TOP_KEYS = {"name", "description", "host", "host_gic", "guest_gic", "nr_lr", "nr_pri_bits", "arch",
             "calibrated", "parameters", "costs", "cpu_hz", "cntfrq_hz", "guest_cpi"}
#: Clock defaults when a profile gives none. The CPU clock is the 2 GHz of the only clock
#: figure the study gives (patch 6's commit message); CNTFRQ is 100 MHz, what kvmtool's
#: hosts of that generation program (it passes the host's through); one cycle per guest
#: instruction is a plain in-order assumption. They only set the speed of the guest's
#: clock: no cycle figure of a run depends on them.
CLOCK_DEFAULTS = {"cpu_hz": 2_000_000_000, "cntfrq_hz": 100_000_000, "guest_cpi": 1.0}
_PARAM_KEYS = {"value", "fit", "why", "prior", "range", "source"}


@dataclass(frozen=True)
class Parameter:
    """One unit-cost parameter (cycles). ``value`` is what runs are priced with. A fitted
    parameter (``fit``) has no prior: the measurements alone set it. Any other is a prior:
    a central value (``prior``, else ``value``) and a plausible ``range`` (read as its
    90 % interval) from a ``source``; without a range it is held fixed at ``value``."""

    value: float
    fit: bool
    why: str
    prior: float | None = None
    range: tuple[float, float] | None = None
    source: str = ""

    @property
    def central(self) -> float:
        """The prior's central value (before any calibration moved ``value``)."""
        return self.value if self.prior is None else self.prior


@dataclass(frozen=True)
class Platform:
    name: str
    description: str
    host: str
    host_gic: int
    guest_gic: int
    nr_lr: int
    nr_pri_bits: int
    arch: str
    calibrated: bool
    parameters: dict[str, Parameter]
    costs: dict[Ev, tuple[tuple[float, str], ...]]  # event -> sum of coef * parameter ('' = constant)
    path: Path | None = field(default=None, compare=False)
    cpu_hz: int = CLOCK_DEFAULTS["cpu_hz"]
    cntfrq_hz: int = CLOCK_DEFAULTS["cntfrq_hz"]
    guest_cpi: float = CLOCK_DEFAULTS["guest_cpi"]

    def unit_costs(self, overrides: dict[str, float] | None = None) -> list[float]:
        """Cycles per event, one per :class:`Ev` (unpriced events cost nothing)."""
        values = {k: p.value for k, p in self.parameters.items()}
        if overrides:
            values.update(overrides)
        units = [0.0] * N_EVENTS
        for ev, terms in self.costs.items():
            units[ev] = sum(coef * (values[name] if name else 1.0) for coef, name in terms)
        return units


def show(value: object) -> str:
    """A value as the user wrote it in TOML (true, "two", nan), for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # nan, inf, -inf: TOML spells them the same
    return repr(value)


def cycles(value: object, where: str) -> float:
    """A number of cycles: finite and >= 0. TOML's ``true`` is not a number (Python's bool
    is an int), nor is a string, nan or inf."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProfileError(f"{where} = {show(value)}: expected a number of cycles")
    if not math.isfinite(value) or value < 0:
        raise ProfileError(f"{where} = {show(value)}: expected a finite number >= 0")
    return float(value)


def _text(data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
    v = data.get(key, default)
    if v is None:
        raise ProfileError(f"{where}: lacks the key {key!r}")
    if not isinstance(v, str) or (not v.strip() and default is None):
        raise ProfileError(f"{where}: {key} = {show(v)}: expected a non-empty string")
    return v


def _integer(data: dict[str, Any], key: str, where: str, allowed: range | tuple[int, ...], why: str) -> int:
    if key not in data:
        raise ProfileError(f"{where}: lacks the key {key!r}")
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, int) or v not in allowed:
        raise ProfileError(f"{where}: {key} = {show(v)}: expected {why}")
    return v


def _flag(data: dict[str, Any], key: str, where: str, default: bool) -> bool:
    v = data.get(key, default)
    if not isinstance(v, bool):
        raise ProfileError(f"{where}: {key} = {show(v)}: expected true or false")
    return v


def _table(data: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = data.get(key)
    if not isinstance(v, dict) or not v:
        raise ProfileError(f"{where}: expected a non-empty [{key}] table")
    return v


def _parse_cost(expr: object, params: dict[str, Parameter], where: str) -> tuple[tuple[float, str], ...]:
    if isinstance(expr, int | float) and not isinstance(expr, bool):
        return ((cycles(expr, where), ""),)
    if not isinstance(expr, str):
        raise ProfileError(f"{where} = {show(expr)}: a cost must be a number or 'param' or 'k * param'")
    terms = []
    for part in expr.split("+"):
        bits = [b.strip() for b in part.split("*")]
        if len(bits) > 2:
            raise ProfileError(f"{where} = {show(expr)}: a term is 'param' or 'k * param'")
        if len(bits) == 2:
            try:
                coef = float(bits[0])
            except ValueError:
                raise ProfileError(f"{where} = {show(expr)}: {bits[0]!r} is not a number") from None
            if not math.isfinite(coef) or coef < 0:
                raise ProfileError(f"{where} = {show(expr)}: a coefficient must be finite and >= 0")
            name = bits[1]
        else:
            coef, name = 1.0, bits[0]
        if name not in params:
            raise ProfileError(f"{where}: unknown parameter {name!r}")
        terms.append((coef, name))
    return tuple(terms)


def _parameter(spec: object, where: str) -> Parameter:
    if not isinstance(spec, dict):
        raise ProfileError(f"{where}: expected a table with value, fit and why")
    unknown = sorted(set(spec) - _PARAM_KEYS)
    if unknown:  # a misspelt 'fit' would silently make a fitted parameter a prior
        raise ProfileError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(_PARAM_KEYS))})")
    if "value" not in spec:
        raise ProfileError(f"{where}: lacks the key 'value'")
    value, fit = cycles(spec["value"], f"{where} value"), _flag(spec, "fit", where, False)
    prior = cycles(spec["prior"], f"{where} prior") if "prior" in spec else None
    bounds = None
    if "range" in spec:
        r = spec["range"]
        if not isinstance(r, list) or len(r) != 2:
            raise ProfileError(f"{where}: range = {show(r)}: expected [LOW, HIGH] in cycles")
        lo, hi = (cycles(x, f"{where} range") for x in r)
        central = value if prior is None else prior
        if not lo <= central <= hi or lo == hi:
            raise ProfileError(f"{where}: range = [{lo:g}, {hi:g}] must be wider than a point and hold the "
                               f"prior's central value {central:g}")
        bounds = (lo, hi)
    if fit and (bounds is not None or prior is not None):
        # a fitted parameter is set by the measurements alone: a prior on it would be silently ignored
        raise ProfileError(f"{where}: fit = true takes no prior or range (the measurements alone set it)")
    if prior is not None and bounds is None:
        raise ProfileError(f"{where}: a prior needs its range = [LOW, HIGH]")
    return Parameter(value, fit, _text(spec, "why", where, ""), prior, bounds, _text(spec, "source", where, ""))


def load_profile(path: Path) -> Platform:
    """Read and check one profile: every error is one line naming the file and the field."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: TOML syntax or not UTF-8
        raise ProfileError(f"cannot read profile {path}: {e}") from None
    where = f"profile {path}"
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ProfileError(f"{where}: unknown key {unknown[0]!r}")
    name, description, host = (_text(data, k, where) for k in ("name", "description", "host"))
    host_gic = _integer(data, "host_gic", where, (2, 3), "2 or 3 (GICv2 or GICv3)")
    guest_gic = _integer(data, "guest_gic", where, (2, 3), "2 or 3 (GICv2 or GICv3)")
    if guest_gic == 3 and host_gic != 3:
        raise ProfileError(f"{where}: guest_gic = 3 needs host_gic = 3 (a GICv2 host cannot run a GICv3 guest)")
    max_lr = MAX_LRS[host_gic]
    nr_lr = _integer(data, "nr_lr", where, range(1, max_lr + 1), f"1 to {max_lr} list registers on a "
                     f"GICv{host_gic} host")
    nr_pri_bits = _integer(data, "nr_pri_bits", where, PRI_BITS, "5 to 8 priority bits")
    arch = _text(data, "arch", where, "aarch64")
    if arch not in ARCHES:
        raise ProfileError(f"{where}: arch = {show(arch)}: expected one of {', '.join(ARCHES)}")
    if arch == "aarch32" and (host_gic, guest_gic) != (2, 2):
        raise ProfileError(f"{where}: the aarch32 model is a GICv2 host with a GICv2 guest")
    params = {k: _parameter(v, f"{where} [parameters.{k}]") for k, v in _table(data, "parameters", where).items()}
    costs = {}
    for ev, expr in _table(data, "costs", where).items():
        if ev not in Ev.__members__:
            raise ProfileError(f"{where}: unknown event class {ev!r} in [costs]")
        costs[Ev[ev]] = _parse_cost(expr, params, f"{where} [costs] {ev}")
    return Platform(
        name=name, description=description, host=host, host_gic=host_gic, guest_gic=guest_gic, nr_lr=nr_lr,
        nr_pri_bits=nr_pri_bits, arch=arch, calibrated=_flag(data, "calibrated", where, True),
        parameters=params, costs=costs, path=path, **_clock(data, where),
    )


def _clock(data: dict[str, Any], where: str) -> dict[str, Any]:
    """cpu_hz, cntfrq_hz and guest_cpi: positive numbers (the first two whole hertz)."""
    out: dict[str, Any] = {}
    for key, default in CLOCK_DEFAULTS.items():
        v = data.get(key, default)
        whole = isinstance(default, int)
        if isinstance(v, bool) or not isinstance(v, int if whole else int | float) or not math.isfinite(v) or v <= 0:
            raise ProfileError(f"{where}: {key} = {show(v)}: expected a positive {'integer' if whole else 'number'}")
        out[key] = v if whole else float(v)
    return out


def profile_dir() -> Path:
    """The built-in profiles, inside the installed package: read-only for worldswitch."""
    return Path(str(resources.files("worldswitch").joinpath("platforms")))


# The user directory: (directory, replace). None defers to $WORLDSWITCH_PROFILES, read at
# load time so a library user who never calls use_profile_dir gets it too.
_user: tuple[Path | None, bool] = (None, False)


def use_profile_dir(directory: Path | None, replace: bool = False) -> None:
    """Load the profiles in ``directory`` (None: ``$WORLDSWITCH_PROFILES`` if set) besides
    the built-in ones; with ``replace``, one named like a built-in profile replaces it.

    Worker processes inherit the setting by fork; the CLI calls this once per invocation."""
    global _user
    if directory is not None and not directory.is_dir():  # fail before any run, not after
        raise ProfileError(f"profile directory {directory} does not exist or is not a directory")
    _user = (directory, replace)


def user_profile_dir() -> Path | None:
    directory, _ = _user
    if directory is None and os.environ.get(PROFILES_ENV):
        directory = Path(os.environ[PROFILES_ENV])
    return directory


def _load_dir(directory: Path) -> dict[str, Platform]:
    if not directory.is_dir():
        raise ProfileError(f"profile directory {directory} does not exist or is not a directory")
    out: dict[str, Platform] = {}
    for path in sorted(directory.glob("*.toml")):
        pf = load_profile(path)
        if pf.name in out:
            first = out[pf.name].path
            raise ProfileError(f"profiles {first.name if first else '?'} and {path.name} in {directory} are "
                               f"both named {pf.name!r}")
        out[pf.name] = pf
    return out


def load_platforms(directory: Path | None = None) -> dict[str, Platform]:
    """The profiles in ``directory``; by default the built-in ones plus the user directory's."""
    if directory is not None:
        return _load_dir(directory)
    out = _load_dir(profile_dir())
    user = user_profile_dir()
    if user is None:
        return out
    if user.is_dir() and user.resolve() == profile_dir().resolve():
        return out  # the built-ins themselves: nothing to add
    _, replace = _user
    for name, pf in _load_dir(user).items():
        if name in out and not replace:
            builtin = out[name].path
            raise ProfileError(f"profile {pf.path.name if pf.path else '?'} in {user} is named {name!r}, like the "
                               f"built-in profile {builtin.name if builtin else name}: pass --replace to use it "
                               "instead")
        out[name] = pf  # a replacement keeps the built-in's place in the listing
    return out


def platform_for_irqchip(pf: Platform, gic: int) -> Platform:
    """The profile of ``pf``'s host with a GICv``gic`` guest (lkvm's ``--irqchip``)."""
    if pf.guest_gic == gic:
        return pf
    same_host = [p for p in load_platforms().values() if p.host == pf.host and p.guest_gic == gic and p.arch == pf.arch]
    if not same_host:
        from .errors import UsageError

        why = " (a GICv2 host cannot run a GICv3 guest)" if gic == 3 and pf.host_gic == 2 else ""
        raise UsageError(f"--irqchip gicv{gic}: host {pf.host} has no profile with a GICv{gic} guest{why}")
    return sorted(same_host, key=lambda p: p.name)[0]


def get_platform(name: str, directory: Path | None = None) -> Platform:
    platforms = load_platforms(directory)
    if name not in platforms:
        raise ProfileError(f"unknown platform {name!r}; known: {', '.join(platforms)}")
    return platforms[name]
