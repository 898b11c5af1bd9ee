"""Third-party plugins \"installed\" under a temporary folder, for tests."""

from __future__ import annotations

import importlib
from pathlib import Path

from worldswitch import plugin


def plugin_source(name: str, body: str = "", **meta: object) -> str:
    fields = {"name": name, "title": "test", "subsystem": "test", "kind": "optimization", **meta}
    args = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"from worldswitch.plugin import PluginMeta, hookimpl\nWORLDSWITCH_PLUGIN = PluginMeta({args})\n{body}"


class FakeDist:
    """One fake installed distribution whose entry points grow with ``add``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.entry_points: list[str] = []
        self.modules: list[str] = []
        info = root / "wsfake-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: wsfake\nVersion: 0.1\n")
        self.eps_file = info / "entry_points.txt"

    def add(self, ep_name: str, source: str, attr: str = "") -> str:
        """Install ``source`` as a module behind entry point ``ep_name``; its value."""
        module = "wsfake_" + ep_name.replace("-", "_")
        (self.root / f"{module}.py").write_text(source)
        value = f"{module}:{attr}" if attr else module
        self.modules.append(module)
        self.entry_points.append(f"{ep_name} = {value}")
        self.eps_file.write_text("[worldswitch.plugins]\n" + "\n".join(self.entry_points) + "\n")
        importlib.invalidate_caches()
        plugin._discover.cache_clear()
        return value
