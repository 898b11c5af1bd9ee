"""Memoised round trips: a trap from the same complete model state does the same thing.

The model is deterministic. A round trip (an exit and its re-entry, or a guest access to
the virtual CPU interface) reads only the model's state, the trap's own operands and the
plugins' state, and writes only the model's state, the counters, and what the guest gets
back (a register value, the virtual IRQ line). So the first time a trap meets a state,
the cache runs it for real and records the *transition*: the next state, what every
tally grew by, and what the guest got. The next time, it replays that record instead.

State is captured from fields each class declares once (``STATE``): the hardware models,
the KVM model's vCPU, timer and vgic, and every plugin object (``PluginMeta.state``).
Tallies (``TALLIES``, the counters, exits by class) only ever grow and never steer the
model; a hit adds to them lazily, so it costs one increment. A hit does not touch the
model's objects either: they fall behind, and :meth:`RoundTripCache.sync` puts them
back in the recorded state (and settles the tallies) before anything else reads them.

A round trip is recorded only when replaying it is provably the same: nothing left
the model (no exit to userspace, no exception injected into the guest, no block, yield,
power-off or system event, no warning), the clock was not read (time is not in the key),
and no event hook fired (an observer must never miss an event). Anything else runs for
real and leaves the state unknown, so the next trap captures it afresh.

The cache is off for a run (``reason`` says why) when something cannot be captured: a
plugin that does not declare its state, an observer of every exit, several vCPUs.
Every K-th hit runs for real instead and is compared with its record (K is
:data:`CHECK_EVERY`, or ``verify``); any difference raises :class:`CacheMismatch`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .errors import WorldswitchError
from .events import USER_EXIT

#: Every WINDOW misses the cache reviews itself: with fewer than an eighth as many hits in
#: that time (a guest booting, printing, doing one-off work), it sleeps for the next
#: DORMANT exits, doubling up to DORMANT_MAX while it stays fruitless (watching costs a
#: few µs a trap), then looks again. Asleep, it costs one comparison a trap: the machine's
#: callbacks test :attr:`RoundTripCache.live`, run the round trip themselves, and call
#: :meth:`RoundTripCache.wake` once the vCPU's exit count reaches :attr:`~RoundTripCache.wake_at`. Counts
#: of traps and exits, so the same in every run.
WINDOW = 64
DORMANT, DORMANT_MAX = 1024, 1 << 16
#: a table this big has stopped paying for itself (a state that keeps changing)
MAX_TRANSITIONS = 8192
#: misses between two forgettings of which traps were not worth a capture
AMNESTY = 1024
#: every this many replays one runs for real and is compared with its record (``--verify-cache``
#: makes it more often): besides checking, it keeps the exit budget and the progress counts
#: within that many exits of the truth
CHECK_EVERY = 4096
#: hooks whose implementation fires on every exit or entry: with one, nothing is recordable
EVERY_EXIT_EVENTS = ("ws_guest_exit", "ws_guest_enter")

#: an exit count no run reaches: the alarm of a cache that is awake or off
NEVER = 1 << 62

Snapshot = tuple[Any, ...]


class CacheMismatch(WorldswitchError):
    """``--verify-cache`` re-executed a cached round trip and it came out differently."""

    exit_code = 10


class Uncapturable(Exception):
    """A state field holds something the cache cannot copy and compare."""


_PLAIN = frozenset({int, bool, type(None), str, float, bytes, tuple, frozenset})


def freeze(value: Any) -> Any:
    """An immutable, comparable copy of a state field."""
    t = type(value)
    if t in _PLAIN:
        return value
    if t is list:
        return tuple(value)
    if t is bytearray:
        return bytes(value)
    if t is dict:
        return tuple(sorted(value.items()))
    if t is set:
        return frozenset(value)
    raise Uncapturable(f"a field of type {t.__name__}")


def thaw_into(obj: Any, name: str, frozen: Any) -> None:
    """Put a frozen field back, in place for containers (other objects alias them)."""
    cur = getattr(obj, name)
    t = type(cur)
    if t is list or t is bytearray:
        cur[:] = frozen
    elif t is dict or t is set:
        cur.clear()
        cur.update(frozen)
    else:
        setattr(obj, name, frozen)


class Part:
    """One object's declared state fields."""

    __slots__ = ("obj", "names", "who", "strict")

    def __init__(self, obj: Any, names: tuple[str, ...], who: str, strict: bool = False) -> None:
        self.obj, self.names, self.who, self.strict = obj, tuple(names), who, strict

    def capture(self) -> Snapshot:
        obj = self.obj
        if self.strict:  # a plugin object: every attribute it has must be declared
            extra = set(getattr(obj, "__dict__", {})) - set(self.names)
            if extra:
                raise Uncapturable(f"{self.who} has attribute(s) {', '.join(sorted(extra))} that its "
                                   "PluginMeta.state does not declare")
        try:
            return tuple([freeze(getattr(obj, n)) for n in self.names])
        except AttributeError as e:
            raise Uncapturable(f"{self.who} has no attribute {e.name!r}, which its state declares") from None
        except Uncapturable as e:
            raise Uncapturable(f"{self.who}: {e}") from None

    def restore(self, snap: Snapshot) -> None:
        for n, v in zip(self.names, snap):
            thaw_into(self.obj, n, v)


class Transition:
    """What one round trip from one state does: where it goes, what it adds, what the
    guest gets. ``hits`` counts replays whose tallies are not yet added."""

    __slots__ = ("to", "edges", "hits", "deltas", "out", "vi")

    def __init__(self, to: int, edges: dict[Any, Transition], deltas: tuple[Any, ...], out: Any, vi: bool) -> None:
        self.to, self.edges, self.hits, self.deltas, self.out, self.vi = to, edges, 0, deltas, out, vi


class Tallies:
    """The monotone counts a round trip adds to: lists (the counters, exits by class),
    int attributes (entries, EOIs) and dicts (acknowledged IDs)."""

    def __init__(self, lists: list[list[int]], attrs: list[tuple[Any, str]], dicts: list[dict[Any, int]]) -> None:
        self.lists, self.attrs, self.dicts = lists, attrs, dicts

    def mark(self) -> tuple[Any, ...]:
        return ([lst[:] for lst in self.lists], [getattr(o, n) for o, n in self.attrs], [dict(d) for d in self.dicts])

    def since(self, mark: tuple[Any, ...]) -> tuple[Any, ...]:
        """What each tally grew by since ``mark``: (container, key, delta) triples."""
        lists, attrs, dicts = mark
        out: list[tuple[Any, Any, int]] = []
        for lst, old in zip(self.lists, lists):
            out += [(lst, i, v - o) for i, (v, o) in enumerate(zip(lst, old)) if v != o]
        for (obj, name), old in zip(self.attrs, attrs):
            if getattr(obj, name) != old:
                out.append(((obj, name), None, getattr(obj, name) - old))
        for d, old in zip(self.dicts, dicts):
            out += [(d, k, v - old.get(k, 0)) for k, v in d.items() if v != old.get(k, 0)]
        return tuple(out)


def apply_deltas(deltas: tuple[Any, ...], times: int) -> None:
    for where, key, d in deltas:
        if key is None:
            obj, name = where
            setattr(obj, name, getattr(obj, name) + d * times)
        elif type(where) is dict:
            where[key] = where.get(key, 0) + d * times
        else:
            where[key] += d * times


class RoundTripCache:
    """The transitions of one vCPU's run. The machine asks :attr:`edges` (the current
    state's recorded transitions, None when the state is unknown or the cache is off)
    on every trap; on a miss it calls :meth:`trip`."""

    def __init__(self, parts: list[Part], tallies: Tallies, clock: Any, vcpu: Any, machine: Any,
                 verify: int = 0, reason: str | None = None, log: Callable[[str], None] | None = None) -> None:
        self.parts = parts
        self.tallies = tallies
        self.clock = clock
        self.vcpu = vcpu
        self.machine = machine  # for what makes a trip unrecordable: error, finished, stop flags
        self.log = log or (lambda msg: None)
        self.reason = reason  # why the cache is off for this run (None: on)
        self.on = reason is None
        # watching: on and awake. The machine's callbacks test this one attribute per trap;
        # while it is False they run the round trip themselves and the cache is not called.
        self.live = self.on
        self.ids: dict[Snapshot, int] = {}
        self.snaps: list[Snapshot] = []
        self.out_edges: list[dict[Any, Transition]] = []
        self.cur = -1  # the state the model is in (-1: unknown, captured at the next trap)
        self.edges: dict[Any, Transition] | None = None
        self.stale = False  # hits may have moved the state past what the objects hold
        self.held = -1  # the state the model's objects hold (-1: not known to be a recorded one)
        self.diffs: dict[tuple[int, int], list[int]] = {}  # (held, wanted): the parts that differ
        self.pending: list[Transition] = []  # replayed transitions whose tallies are owed
        self.hits = self.misses = self.transitions = 0
        self.verified = 0  # hits run for real and found equal to their record (they count as hits in a review)
        self.events = 0  # event hooks fired (bumped by wrappers the machine installs)
        self.wake_at = NEVER  # asleep until the vCPU's exits reach this
        self.slept = 0  # exits that ran while it slept (round trips run for real, unlooked-at)
        self.backoff = DORMANT
        self.review_at, self.hits_then = WINDOW, 0
        # A capture costs tens of µs, so a trap is captured only once it has been seen (a
        # trap met once cannot hit), and not while the last real run of its site (the key's
        # first three words: kind, instruction or offset, syndrome or function) could not be
        # recorded (a UART write, a clock read): the state is then left unknown instead.
        self.seen: set[Any] = set()
        self.fruitless: set[Any] = set()
        self.captures = 0
        # the compiled hit path (core/fasthit.py), when the machine installed it: hits then
        # happen in C, which Python learns of in sync(); Python itself looks nothing up
        self.fast: Any = None
        self.fast_trans: dict[int, Transition] = {}
        self.check_every = verify or CHECK_EVERY
        self.until_check = self.check_every

    # ---- switching off ---------------------------------------------------------------
    def turn_off(self, reason: str) -> None:
        if self.on:
            self.sync()
            if not self.live:  # asleep: the exits since it fell asleep were slept through
                self.slept += self.vcpu.entries
            self.on = self.live = False
            self.wake_at = NEVER
            self.reason, self.edges = reason, None
            self._set_cur(-1)
            self.log(f"round-trip cache off for this run: {reason}")

    def _set_cur(self, sid: int) -> None:
        self.cur = sid
        if self.fast is not None:
            self.fast.cur.value = sid if self.live else -1

    # ---- keeping the objects right ------------------------------------------------------
    def sync(self) -> None:
        """Make the model's objects hold the current state and the tallies add up:
        called before anything but a cached trap reads the model."""
        if self.fast is not None and self.fast.moved.value:
            pulled, cur, moved = self.fast.pull()
            for idx, n in pulled:
                apply_deltas(self.fast_trans[idx].deltas, n)
                self.hits += n
            if moved:
                self.cur, self.stale = cur, True
        if self.pending:
            for t in self.pending:
                apply_deltas(t.deltas, t.hits)
                t.hits = 0
            self.pending.clear()
        if self.stale:
            self.stale = False
            if self.cur != self.held:
                self._restore()

    def _restore(self) -> None:
        """Put the objects in the current state: only the parts in which it differs from
        the state they hold (a loop often comes back to the state it left, and then
        nothing is copied)."""
        cur, held = self.cur, self.held
        todo = self.diffs.get((held, cur))
        if todo is None:
            want = self.snaps[cur]
            if held < 0:
                todo = list(range(len(want)))
            else:
                todo = [i for i, (a, b) in enumerate(zip(self.snaps[held], want)) if a != b]
                self.diffs[held, cur] = todo
        snap, parts = self.snaps[cur], self.parts
        for i in todo:
            parts[i].restore(snap[i])
        self.held = cur

    def settle(self) -> None:
        """:meth:`sync` if any hit may have happened since the last one; asleep (no hit can
        have), wake if the alarm is due."""
        if not self.live:
            if self.vcpu.entries >= self.wake_at:
                self.wake()
        elif self.pending or self.stale or self.fast is not None and self.fast.moved.value:
            self.sync()

    def invalidate(self) -> None:
        """Something outside the cache is about to change the model (after :meth:`sync`)."""
        self.edges = None
        self.held = -1
        if self.cur >= 0:
            self._set_cur(-1)

    def enter(self) -> None:
        """A way into the model that is not a cached trap: objects right, state unknown."""
        self.settle()
        self.invalidate()

    def capture(self) -> int:
        self.captures += 1
        snap = tuple([p.capture() for p in self.parts])
        sid = self.ids.get(snap)
        if sid is None:
            sid = self.ids[snap] = len(self.snaps)
            self.snaps.append(snap)
            self.out_edges.append({})
        self.held = sid
        return sid

    # ---- a hit ----------------------------------------------------------------------------
    def hit(self, t: Transition) -> bool:
        """Replay ``t`` (False: this one runs for real, to be checked against it)."""
        self.until_check -= 1
        if not self.until_check:
            self.until_check = self.check_every
            return False
        if not t.hits:
            self.pending.append(t)
        t.hits += 1
        self.hits += 1
        self.cur, self.edges, self.stale = t.to, t.edges, True
        return True

    # ---- a miss ---------------------------------------------------------------------------
    def serve(self, key: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """Trap ``key``'s round trip, on the Python path: replayed if it was recorded from
        the current state (what the guest gets back, and the virtual IRQ line as it was
        left), else run for real by ``fn(*args)`` and recorded if it can be. Only while the
        cache is on: a run without it calls ``fn`` itself."""
        edges = self.edges
        t = edges.get(key) if edges is not None else None
        if t is not None and self.hit(t):
            m = self.machine
            if t.vi != m.vi:
                m.set_vi(t.vi)
            return t.out
        return self.trip(key, fn, *args)

    def trip(self, key: Any, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` for real (the round trip of trap ``key``) and record it if it
        can be replayed. Returns what ``fn`` returns: what the guest gets."""
        if not self.live:  # asleep (a host that calls serve() regardless): nothing to sync
            if self.vcpu.entries < self.wake_at:
                return fn(*args)
            self.wake()
        self.misses += 1
        self.settle()
        if self.misses >= self.review_at:
            self._review()
            if not self.live:
                return fn(*args)
        if key not in self.seen or key[:3] in self.fruitless:
            self.seen.add(key)
            if self.misses % AMNESTY == 0:
                self.fruitless.clear()
            self.invalidate()
            return fn(*args)
        try:
            if self.cur < 0:
                self._set_cur(self.capture())
        except Uncapturable as e:
            self.turn_off(f"its state cannot be captured ({e})")
            return fn(*args)
        src = self.cur
        expected = self.out_edges[src].get(key)  # set when verifying a hit
        mark = self.tallies.mark()
        vcpu, clock, m = self.vcpu, self.clock, self.machine
        reads, events, warned, user = clock.reads, self.events, len(vcpu.warnings), vcpu.c[USER_EXIT]
        out = fn(*args)
        recordable = (clock.reads == reads and self.events == events and len(vcpu.warnings) == warned
                      and vcpu.c[USER_EXIT] == user and m.recordable())
        if not recordable:
            if expected is not None:
                raise CacheMismatch(f"verify-cache: a cached round trip (trap {key!r}) ran for real and left the "
                                    "model (an exit to userspace, an injection, a clock read or an event)")
            self.fruitless.add(key[:3])
            self.invalidate()
            return out
        try:
            dst = self.capture()
        except Uncapturable as e:
            self.turn_off(f"its state cannot be captured ({e})")
            return out
        t = Transition(dst, self.out_edges[dst], self.tallies.since(mark), out, m.vi)
        if expected is not None:
            self._compare(key, expected, t)
            self.verified += 1
        elif self.transitions < MAX_TRANSITIONS:
            self.out_edges[src][key] = t
            self.transitions += 1
            if self.fast is not None:
                idx = self.fast.add(src, key, dst, out, t.vi)
                if idx >= 0:
                    self.fast_trans[idx] = t
        self.edges = self.out_edges[dst] if self.fast is None else None
        self._set_cur(dst)
        return out

    def _review(self) -> None:
        """WINDOW misses since the last review: sleep if they bought few hits."""
        if self.hits + self.verified - self.hits_then < WINDOW // 8:
            self.invalidate()
            self.live = False
            self.wake_at = self.vcpu.entries + self.backoff
            self.slept -= self.vcpu.entries  # (+ the count at waking: the exits slept through)
            self.backoff = min(self.backoff * 2, DORMANT_MAX)
        else:
            self.backoff = DORMANT
            self.review_at = self.misses + WINDOW
        self.hits_then = self.hits + self.verified

    def wake(self) -> None:
        """The alarm: the vCPU's exits reached :attr:`wake_at` (never, with the cache off)."""
        if self.live or not self.on:
            return
        self.live = True
        self.wake_at = NEVER
        self.slept += self.vcpu.entries
        self.review_at = self.misses + WINDOW

    def _compare(self, key: Any, want: Transition, got: Transition) -> None:
        for what, a, b in (("the next state", self.snaps[want.to], self.snaps[got.to]),
                           ("the counts added", _plain(want.deltas), _plain(got.deltas)),
                           ("what the guest got", want.out, got.out), ("the virtual IRQ line", want.vi, got.vi)):
            if a != b:
                raise CacheMismatch(f"verify-cache: a cached round trip (trap {key!r}) ran for real and changed "
                                    f"{what} differently: cached {_short(a)}, real {_short(b)}")

    def stats(self) -> dict[str, Any]:
        slept = self.slept + (0 if self.live or not self.on else self.vcpu.entries)
        return {"on": self.on, "reason": self.reason, "hits": self.hits, "misses": self.misses, "slept": slept,
                "verified": self.verified,
                "states": len(self.snaps), "transitions": self.transitions, "compiled": self.fast is not None}


def _plain(deltas: tuple[Any, ...]) -> list[tuple[int, Any, int]]:
    return [(id(w if k is not None else w[0]), k if k is not None else w[1], d) for w, k, d in deltas]


def _short(v: Any) -> str:
    s = repr(v)
    return s if len(s) <= 200 else s[:197] + "..."


# ---- what a run's cache is made of ------------------------------------------------------
def model_parts(vcpu: Any) -> list[Part]:
    """The KVM model's and the hardware's declared state for one vCPU: each object's
    ``STATE`` fields, then the objects its ``HOLDS`` names, depth first."""
    parts: list[Part] = []
    seen: set[int] = set()

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        cls = type(obj)
        parts.append(Part(obj, cls.STATE, cls.__name__))
        for name in getattr(cls, "HOLDS", ()):
            walk(getattr(obj, name))

    walk(vcpu)
    return parts


def model_tallies(vcpu: Any) -> Tallies:
    lrf = vcpu.hyp_if.lrf
    return Tallies([vcpu.c, vcpu.exits], [(vcpu, "entries"), (lrf, "eois")], [lrf.acked])


def plugin_parts(hooks: Any) -> list[Part] | str:
    """Each registered plugin object's declared state, or (a string) why one cannot be
    captured. Only plugins that answer per-trap hooks matter: set-up hooks run once."""
    import types

    from .hookspecs import per_trap_hooks

    pm = hooks.pm
    if pm is None:
        return []
    per_trap = set(per_trap_hooks())
    for name in EVERY_EXIT_EVENTS:
        if getattr(hooks, name) is not None:
            who = ", ".join(sorted(_who(pm, i.plugin) for i in getattr(pm.hook, name).get_hookimpls()))
            return f"{who} observes every exit ({name}), and an observer must see every event"
    parts = []
    for obj in pm.get_plugins():
        if not {hc.name for hc in pm.get_hookcallers(obj) or ()} & per_trap:
            continue
        meta = getattr(obj, "WORLDSWITCH_PLUGIN", None)
        state = getattr(meta, "state", None)
        if state is None:
            return f"plugin {_who(pm, obj)} does not declare its state (PluginMeta.state)"
        parts.append(Part(obj, state, f"plugin {_who(pm, obj)}", strict=not isinstance(obj, types.ModuleType)))
    return parts


def _who(pm: Any, obj: Any) -> str:
    meta = getattr(obj, "WORLDSWITCH_PLUGIN", None)
    return repr(getattr(meta, "name", None) or pm.get_name(obj) or type(obj).__name__)


def count_events(hooks: Any, cache: RoundTripCache) -> None:
    """Make every event hook bump ``cache.events`` as it fires, so that a round trip
    during which an observer saw something is never replayed without it."""
    from .hookspecs import per_trap_hooks

    for name, rule in per_trap_hooks().items():
        fn = getattr(hooks, name)
        if rule == "each" and fn is not None:
            setattr(hooks, name, _counted(fn, cache))


def _counted(fn: Callable[..., Any], cache: RoundTripCache) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        cache.events += 1
        return fn(*args)

    return call


def build_cache(vcpu: Any, host: Any, extra: list[Part], on: bool = True, verify: int = 0,
                why_off: str | None = None, log: Callable[[str], None] | None = None) -> RoundTripCache:
    """The cache of one vCPU's run on ``host`` (the machine's CPU, which answers
    ``recordable()`` and holds ``vi``). ``extra``: the host's own state (the IRQ line)."""
    reason = None if on else "--no-cache"
    reason = reason or why_off
    parts: list[Part] | str = []
    if reason is None:
        parts = plugin_parts(vcpu.hooks)
        if isinstance(parts, str):
            reason, parts = parts, []
    cache = RoundTripCache([*extra, *model_parts(vcpu), *parts], model_tallies(vcpu), vcpu.clock, vcpu, host,
                           verify=verify, reason=reason, log=log)
    if reason is not None:
        cache.log(f"round-trip cache off for this run: {reason}")
    else:
        count_events(vcpu.hooks, cache)
    return cache
