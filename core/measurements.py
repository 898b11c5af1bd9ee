"""Measurement files: the figures ``table`` compares with and ``calibrate`` fits."""

from __future__ import annotations

import math
import tomllib
from importlib import resources
from pathlib import Path

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
