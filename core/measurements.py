"""Measurement files: the figures ``table`` compares with and ``calibrate`` fits."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import ProfileError


def load_reference(path: Path | None = None) -> dict[str, dict[str, float]]:
    """{guest: {platform: cycles per iteration}} from a measurement file.

    Every cell must be a measured figure: a finite number of cycles > 0, for a built-in
    guest and a known platform (built-in or from the user's profile directory). Anything
    else is a ProfileError naming the file, guest and platform, never a fit to nonsense."""
    from worldswitch.guests import GUESTS

    from .platform import load_platforms, show

    name = path or "data/reference.toml"
    try:
        text = path.read_text() if path else resources.files("worldswitch").joinpath("data/reference.toml").read_text()
        data = tomllib.loads(text)
    except (OSError, ValueError) as e:  # ValueError: TOML syntax or not UTF-8
        raise ProfileError(f"cannot read measurement file {name}: {e}") from None
    where = f"measurement file {name}"
    cells = data.get("cells")
    if not isinstance(cells, dict) or not cells:
        raise ProfileError(f"{where}: no measurements (expected [cells.GUEST] tables of PLATFORM = cycles)")
    platforms = load_platforms()
    out: dict[str, dict[str, float]] = {}
    for guest, row in cells.items():
        if guest not in GUESTS:
            raise ProfileError(f"{where}: [cells.{guest}]: no such guest; known: {', '.join(GUESTS)}")
        if not isinstance(row, dict) or not row:
            raise ProfileError(f"{where}: [cells.{guest}] must be a non-empty table of PLATFORM = cycles")
        for platform, v in row.items():
            cell = f"{where}: [cells.{guest}] {platform}"
            if platform not in platforms:
                raise ProfileError(f"{cell}: no such platform; known: {', '.join(platforms)}")
            # bool is an int in Python: `true` would otherwise be a figure of 1 cycle
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ProfileError(f"{cell} = {show(v)}: expected a finite number of cycles > 0")
            out.setdefault(guest, {})[platform] = float(v)
    return out


@dataclass(frozen=True)
class Measurement:
    """One measured cell: a guest on a platform under a plugin set (``plugins``: the
    canonical, sorted selection; empty for vanilla), in cycles per iteration."""

    guest: str
    platform: str
    plugins: tuple[str, ...]
    cycles: float
    spread: float | None  # one standard deviation, in cycles, when the user gave one
    row: int  # 1-based position in the file, for messages


EXAMPLE = "data/measurements-board-A-C-v3.toml"
FIELDS = {"guest", "platform", "plugins", "cycles_per_iteration", "spread"}


def _cycles(v: Any) -> bool:
    # bool is an int in Python: `true` would otherwise be a figure of 1 cycle
    return not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)


def load_measurements(path: Path | None = None) -> list[Measurement]:
    """The rows of a measurement file: ``[[measurement]]`` tables of ``guest``,
    ``platform``, ``plugins`` (a ``--patches`` selection: ``vanilla``, ``series``, ``7-11``,
    plugin names), ``cycles_per_iteration`` and, optionally, ``spread``. Without a path,
    the example shipped in the package (a user's two boards, the whole series).

    Every row must name a built-in guest, a known platform and installed plugins, and
    give a finite number of cycles > 0 (a spread > 0); no two rows may measure the same
    cell. Anything else is a one-line ProfileError naming the file and the row."""
    from worldswitch.guests import GUESTS

    from .errors import PluginError
    from .platform import load_platforms, show
    from .plugin import discover, parse_selection

    name = str(path) if path else EXAMPLE
    try:
        text = path.read_text() if path else resources.files("worldswitch").joinpath(EXAMPLE).read_text()
        data = tomllib.loads(text)
    except (OSError, ValueError) as e:  # ValueError: TOML syntax or not UTF-8
        raise ProfileError(f"cannot read measurement file {name}: {e}") from None
    rows = data.get("measurement")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise ProfileError(f"measurement file {name}: no measurements (expected [[measurement]] tables)")
    platforms = load_platforms()
    plugins = discover()
    out: list[Measurement] = []
    seen: dict[tuple[str, str, tuple[str, ...]], int] = {}
    for i, r in enumerate(rows, 1):
        where = f"measurement file {name}, measurement {i}"
        if extra := sorted(set(r) - FIELDS):
            raise ProfileError(f"{where}: unknown field {extra[0]!r}; expected {', '.join(sorted(FIELDS))}")
        for key in ("guest", "platform", "cycles_per_iteration"):
            if key not in r:
                raise ProfileError(f"{where}: missing {key!r}")
        guest, platform, sel = r["guest"], r["platform"], r.get("plugins", "vanilla")
        if guest not in GUESTS:
            raise ProfileError(f"{where}: guest {show(guest)}: no such guest; known: {', '.join(GUESTS)}")
        if platform not in platforms:
            raise ProfileError(f"{where}: platform {show(platform)}: no such platform; known: {', '.join(platforms)}")
        if not isinstance(sel, str):
            raise ProfileError(f"{where}: plugins = {show(sel)}: expected a selection such as \"series\" or \"7-11\"")
        try:
            chosen = tuple(parse_selection(sel, plugins))
        except PluginError as e:
            raise ProfileError(f"{where}: plugins {sel!r}: {e}") from None
        cycles, spread = r["cycles_per_iteration"], r.get("spread")
        if not _cycles(cycles) or cycles <= 0:
            raise ProfileError(f"{where}: cycles_per_iteration = {show(cycles)}: expected a finite number of "
                               "cycles > 0")
        if spread is not None and (not _cycles(spread) or spread <= 0):
            # no figure is exact: a zero spread would let one row overrule every other
            raise ProfileError(f"{where}: spread = {show(spread)}: expected a finite number of cycles > 0 (one "
                               "standard deviation)")
        key = (guest, platform, chosen)
        if key in seen:
            raise ProfileError(f"{where}: {guest} on {platform} with plugins {sel!r} was already measured "
                               f"(measurement {seen[key]})")
        seen[key] = i
        out.append(Measurement(guest, platform, chosen, float(cycles), None if spread is None else float(spread), i))
    return out
