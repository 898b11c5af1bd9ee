"""Platform profiles: data files (TOML) with the hardware description and unit costs.

A profile names its host GIC and guest GIC, the list registers and priority bits, and
a set of scalar *parameters* (cycles), each either fitted by ``worldswitch calibrate``
or fixed as a documented prior. The ``[costs]`` table prices every event class as
``"param"``, ``"k * param"`` or a number.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from .errors import ProfileError
from .events import N_EVENTS, Ev


@dataclass(frozen=True)
class Parameter:
    value: float
    fit: bool
    why: str


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

    def unit_costs(self, overrides: dict[str, float] | None = None) -> list[float]:
        """Cycles per event, one per :class:`Ev` (unpriced events cost nothing)."""
        values = {k: p.value for k, p in self.parameters.items()}
        if overrides:
            values.update(overrides)
        units = [0.0] * N_EVENTS
        for ev, terms in self.costs.items():
            units[ev] = sum(coef * (values[name] if name else 1.0) for coef, name in terms)
        return units


def _parse_cost(expr: object, params: dict[str, Parameter], where: str) -> tuple[tuple[float, str], ...]:
    if isinstance(expr, int | float):
        return ((float(expr), ""),)
    if not isinstance(expr, str):
        raise ProfileError(f"{where}: a cost must be a number or 'param' or 'k * param'")
    terms = []
    for part in expr.split("+"):
        bits = [b.strip() for b in part.split("*")]
        coef, name = (float(bits[0]), bits[1]) if len(bits) == 2 else (1.0, bits[0])
        if name not in params:
            raise ProfileError(f"{where}: unknown parameter {name!r}")
        terms.append((coef, name))
    return tuple(terms)


def load_profile(path: Path) -> Platform:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProfileError(f"cannot read profile {path}: {e}") from None
    try:
        params = {
            k: Parameter(float(v["value"]), bool(v.get("fit", False)), str(v.get("why", "")))
            for k, v in data["parameters"].items()
        }
        costs = {}
        for name, expr in data["costs"].items():
            if name not in Ev.__members__:
                raise ProfileError(f"{path.name}: unknown event class {name!r} in [costs]")
            costs[Ev[name]] = _parse_cost(expr, params, f"{path.name} [costs] {name}")
        return Platform(
            name=data["name"], description=data["description"], host=data["host"],
            host_gic=int(data["host_gic"]), guest_gic=int(data["guest_gic"]), nr_lr=int(data["nr_lr"]),
            nr_pri_bits=int(data["nr_pri_bits"]), arch=data.get("arch", "aarch64"),
            calibrated=bool(data.get("calibrated", True)), parameters=params, costs=costs, path=path,
        )
    except KeyError as e:
        raise ProfileError(f"profile {path.name} lacks the key {e}") from None


def profile_dir() -> Path:
    return Path(str(resources.files("worldswitch").joinpath("platforms")))


def load_platforms(directory: Path | None = None) -> dict[str, Platform]:
    directory = directory or profile_dir()
    out = {}
    for path in sorted(directory.glob("*.toml")):
        pf = load_profile(path)
        out[pf.name] = pf
    return out


def get_platform(name: str, directory: Path | None = None) -> Platform:
    platforms = load_platforms(directory)
    if name not in platforms:
        raise ProfileError(f"unknown platform {name!r}; known: {', '.join(platforms)}")
    return platforms[name]
