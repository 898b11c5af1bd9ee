"""Measurement files: the figures ``table`` compares with and ``calibrate`` fits."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from .errors import ProfileError


def load_reference(path: Path | None = None) -> dict[str, dict[str, float]]:
    """{guest: {platform: cycles per iteration}} from a measurement file."""
    try:
        text = path.read_text() if path else resources.files("worldswitch").joinpath("data/reference.toml").read_text()
        data = tomllib.loads(text)
        return {g: {p: float(v) for p, v in row.items()} for g, row in data["cells"].items()}
    except (OSError, tomllib.TOMLDecodeError, KeyError, AttributeError, ValueError) as e:
        raise ProfileError(f"cannot read measurement file {path or 'data/reference.toml'}: {e}") from None
