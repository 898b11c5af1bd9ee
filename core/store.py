"""The results store: one SQLite file, one row per measured configuration.

A row is keyed by the hash of everything that decides its counts: the guest image's bytes
and iterations, the platform profile's contents, the plugins with their versions, how it
was measured (full length, or extrapolated from two short runs) and worldswitch's version.
So a rerun of a study finds what is already there and runs only the rest.

One writer: the process that runs a study. Workers (processes, Dask workers) return
results and never open the file. Each result is committed on its own as it arrives, in
WAL mode, so a ``kill -9`` loses at most the runs in flight and never leaves a half-written
row; SQLite's journal makes the file whole again when it is next opened.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import WorldswitchError

DEFAULT_DB = "worldswitch-results.sqlite"
SCHEMA = 1

_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    hash TEXT PRIMARY KEY,
    guest TEXT NOT NULL,
    platform TEXT NOT NULL,
    plugins TEXT NOT NULL,          -- comma-separated, canonical order; '' for vanilla
    method TEXT NOT NULL,           -- 'full' or 'short' (extrapolated from two short runs)
    iterations REAL NOT NULL,
    cycles REAL NOT NULL,           -- per iteration, priced with the profile's values
    counts TEXT NOT NULL,           -- JSON: every counter, per iteration
    visible TEXT NOT NULL,          -- JSON: what the guest saw (for the transparency check)
    config TEXT NOT NULL,           -- JSON: the resolved configuration the hash covers
    wall_seconds REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS studies (
    name TEXT PRIMARY KEY,
    spec TEXT NOT NULL              -- JSON: design, plugins, guests, platforms, method, seed
);
CREATE TABLE IF NOT EXISTS study_runs (
    study TEXT NOT NULL REFERENCES studies(name),
    hash TEXT NOT NULL REFERENCES runs(hash),
    label TEXT NOT NULL,            -- the design's name for the plugin set
    PRIMARY KEY (study, hash)
);
"""


# rows come out in one order whatever order the workers finished in
_ORDER = "ORDER BY r.guest, r.platform, r.plugins, r.method, r.hash"


class StoreError(WorldswitchError):
    exit_code = 8


@dataclass(frozen=True)
class Run:
    """A stored configuration's result."""

    hash: str
    guest: str
    platform: str
    plugins: tuple[str, ...]
    method: str
    iterations: float
    cycles: float
    counts: dict[str, float]
    visible: tuple[dict, ...]
    config: dict[str, Any]
    wall_seconds: float

    @property
    def selection(self) -> str:
        return ",".join(self.plugins) or "none"


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(config).encode()).hexdigest()


def resolved_config(guest: str, platform: Any, plugins: Iterable[str], method: str,
                    found: Mapping[str, Any]) -> dict[str, Any]:
    """Everything a run's counts depend on, as plain data (what the hash covers)."""
    from importlib.metadata import version

    from worldswitch import guests

    from .study import SHORT_LENGTHS

    g = guests.GUESTS[guest]
    images = ([guests.short_variant(guest, n) for n in SHORT_LENGTHS] if method == "short" else [g])
    digest = hashlib.sha256()
    for image in images:  # the binaries that actually run
        digest.update(guests.image_path(image).read_bytes())
    profile = asdict(platform)
    profile.pop("path", None)
    profile["costs"] = {ev.name: terms for ev, terms in platform.costs.items()}
    return {
        "worldswitch": version("worldswitch"),
        "guest": guest, "image_sha256": digest.hexdigest(), "iterations": g.iterations,
        "platform": profile,
        "plugins": [[p, found[p].meta.version or found[p].dist_version] for p in plugins],
        "method": method, "short_lengths": list(SHORT_LENGTHS) if method == "short" else None,
    }


class Store:
    """The results file. Open it in the one process that writes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.exists() and not self.path.is_file():
            raise StoreError(f"results database {self.path}: exists and is not a file")
        try:
            self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_TABLES)
            row = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA),))
            elif row[0] != str(SCHEMA):
                raise StoreError(f"results database {self.path}: schema {row[0]}, this worldswitch reads {SCHEMA}")
        except sqlite3.DatabaseError as e:
            raise StoreError(f"results database {self.path}: {e}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            yield self.db
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def has(self, h: str) -> bool:
        return self.db.execute("SELECT 1 FROM runs WHERE hash=?", (h,)).fetchone() is not None

    def add(self, run: Run, study: str | None = None, label: str | None = None) -> None:
        """Store a result (and link it to ``study``) in one transaction; a result already
        there (same hash) is not stored twice."""
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)", (
                run.hash, run.guest, run.platform, ",".join(run.plugins), run.method, run.iterations, run.cycles,
                canonical(run.counts), canonical(list(run.visible)), canonical(run.config), run.wall_seconds))
            if study is not None:
                db.execute("INSERT OR IGNORE INTO study_runs VALUES (?,?,?)", (study, run.hash, label or ""))

    def link(self, study: str, h: str, label: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO study_runs VALUES (?,?,?)", (study, h, label))

    def begin_study(self, name: str, spec: Mapping[str, Any]) -> None:
        """Record a study; rerunning one with the same name must mean the same study."""
        text = canonical(spec)
        row = self.db.execute("SELECT spec FROM studies WHERE name=?", (name,)).fetchone()
        if row is not None and row[0] != text:
            raise StoreError(f"results database {self.path}: a different study is already named {name!r} "
                             "(choose another --name, or another --db)")
        if row is None:
            with self._tx() as db:
                db.execute("INSERT INTO studies VALUES (?,?)", (name, text))

    def studies(self) -> dict[str, dict[str, Any]]:
        """Every study, oldest first."""
        return {n: json.loads(s) for n, s in self.db.execute("SELECT name, spec FROM studies ORDER BY rowid")}

    def study_runs(self, name: str) -> list[tuple[str, Run]]:
        """(label, run) of every result linked to the study."""
        rows = self.db.execute(
            "SELECT s.label, r.* FROM study_runs s JOIN runs r ON r.hash = s.hash WHERE s.study=? " + _ORDER,
            (name,)).fetchall()
        return [(row[0], _run(row[1:])) for row in rows]

    def runs(self, guest: str | None = None, platform: str | None = None, study: str | None = None) -> list[Run]:
        sql, args = "SELECT r.* FROM runs r", []
        where = []
        if study is not None:
            sql += " JOIN study_runs s ON s.hash = r.hash"
            where.append("s.study = ?")
            args.append(study)
        if guest is not None:
            where.append("r.guest = ?")
            args.append(guest)
        if platform is not None:
            where.append("r.platform = ?")
            args.append(platform)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_run(row) for row in self.db.execute(sql + " " + _ORDER, args)]

    def find(self, prefix: str) -> Run:
        """The run whose hash starts with ``prefix`` (as `git` takes a commit)."""
        if not prefix or any(c not in "0123456789abcdef" for c in prefix.lower()):
            raise StoreError(f"{prefix!r} is not a run's hash (or a prefix of one): `worldswitch results` lists them")
        rows = self.db.execute("SELECT * FROM runs WHERE hash LIKE ?", (prefix.lower() + "%",)).fetchall()
        if not rows:
            raise StoreError(f"no stored run's hash starts with {prefix!r}")
        if len(rows) > 1:
            raise StoreError(f"{len(rows)} stored runs' hashes start with {prefix!r}: give more of it")
        return _run(rows[0])

    def count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def _run(row: tuple) -> Run:
    h, guest, platform, plugins, method, iterations, cycles, counts, visible, config, wall = row
    return Run(h, guest, platform, tuple(p for p in plugins.split(",") if p), method, iterations, cycles,
               json.loads(counts), tuple(json.loads(visible)), json.loads(config), wall)
