"""Stopping a guest from outside: the time budget, Ctrl-C and SIGTERM.

While Unicorn runs guest code, the interpreter holds no control: ctypes releases the
GIL in ``uc_emu_start``, so a Python signal handler runs only when a trap callback
happens to execute. A guest that never traps (``b .``) would ignore Ctrl-C and any
budget. So a run is guarded by a watchdog thread that sleeps on a pipe: the C-level
signal handler writes the signal number into it (``signal.set_wakeup_fd``) and the
deadline is its select timeout. Either way the watchdog calls ``uc_emu_stop``, which
Unicorn allows from another thread, and the main thread sees why the run stopped.

While guarded, SIGINT and SIGTERM do not raise inside trap callbacks (a raise there
would be lost in ctypes: "Exception ignored on calling ctypes callback"); they are
recorded, and :meth:`RunGuard.raise_if_signalled` raises ``KeyboardInterrupt`` or
:class:`~worldswitch.errors.Terminated` once the emulator has stopped.
"""

from __future__ import annotations

import math
import os
import select
import signal
import threading
import time
from types import TracebackType
from typing import Any

from unicorn.unicorn_py3.unicorn import uclib

from .errors import Terminated

#: worker processes turn this off: their parent owns Ctrl-C, and SIGTERM kills them outright
CATCH_SIGNALS = True
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def deadline_after(timeout: float | None) -> float | None:
    """The monotonic instant a budget of ``timeout`` seconds ends (None: no budget)."""
    if timeout is None:
        return None
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"a time budget must be a positive number of seconds, not {timeout!r}")
    return time.monotonic() + timeout


def check_deadline(deadline: float | None, what: str) -> None:
    """For Python-side preparation (the image scan): raise once the budget is spent."""
    if deadline is not None and time.monotonic() >= deadline:
        from .errors import BudgetExceeded

        raise BudgetExceeded(f"the time budget ran out while {what}")


class RunGuard:
    """Context manager around one ``uc_emu_start``: see the module docstring."""

    def __init__(self, uch: Any, deadline: float | None) -> None:
        self.uch = uch
        self.deadline = deadline
        self.timed_out = False
        self.signalled: int | None = None
        self._done = False
        self._saved: dict[int, Any] = {}
        self._old_fd = -1
        self._r, self._w = os.pipe()
        os.set_blocking(self._w, False)
        self._thread = threading.Thread(target=self._watch, name="worldswitch-watchdog", daemon=True)

    def _on_signal(self, signum: int, frame: Any) -> None:
        # also reached through the wakeup fd; recording here covers a signal that lands
        # while a trap callback runs Python code
        if self.signalled is None:
            self.signalled = signum
        uclib.uc_emu_stop(self.uch)

    @property
    def stopping(self) -> bool:
        """The budget ran out or a signal came: the run loop must not start Unicorn again."""
        return self.timed_out or self.signalled is not None

    def _watch(self) -> None:
        while True:
            if self.stopping:
                # keep stopping: a run loop between two emu_start calls would miss one stop
                timeout: float | None = 0.05
            else:
                timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            ready, _, _ = select.select([self._r], [], [], timeout)
            if self._done:
                return
            if not ready:
                self.timed_out = self.timed_out or self.signalled is None
                uclib.uc_emu_stop(self.uch)
                continue
            data = os.read(self._r, 64)
            for signum in data:
                if signum in _SIGNALS and self.signalled is None:
                    self.signalled = signum
                    uclib.uc_emu_stop(self.uch)

    def __enter__(self) -> RunGuard:
        if CATCH_SIGNALS and threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                self._saved[sig] = signal.signal(sig, self._on_signal)
            self._old_fd = signal.set_wakeup_fd(self._w, warn_on_full_buffer=False)
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self._done = True
        if self._saved:
            signal.set_wakeup_fd(self._old_fd)
            for sig, handler in self._saved.items():
                signal.signal(sig, handler)
        try:
            os.write(self._w, b"\0")  # wake the watchdog so it ends
        except BlockingIOError:
            pass
        self._thread.join()
        os.close(self._r)
        os.close(self._w)

    def raise_if_signalled(self) -> None:
        if self.signalled == signal.SIGTERM:
            raise Terminated()
        if self.signalled == signal.SIGINT:
            raise KeyboardInterrupt()


def run_guarded(machine: Any, begin: int, until: int, max_instructions: int, pc_reg: int) -> None:
    """``uc_emu_start`` under a :class:`RunGuard`, then say why it stopped.

    ``until`` is an address no guest reaches on purpose: Unicorn stops there instead of
    faulting, so arriving there is reported as the fault it would be on hardware."""
    from unicorn import UcError

    from .errors import BudgetExceeded, GuestFault

    fault = None
    with RunGuard(machine.uc._uch, machine.deadline) as guard:
        try:
            machine.uc.emu_start(begin, until, 0, max_instructions)
        except UcError as e:
            fault = e
    guard.raise_if_signalled()
    if machine.error is not None:
        raise machine.error
    if machine.finished:
        return
    pc = machine.regs.read(pc_reg)
    if fault is not None:
        raise GuestFault(f"guest fault at pc 0x{pc:x}: {fault}")
    if guard.timed_out:
        raise BudgetExceeded(f"the time budget ran out before the guest finished (pc 0x{pc:x})")
    if pc == until:
        raise GuestFault(f"guest branched to 0x{pc:x}, outside the machine's memory")
    if max_instructions:
        raise BudgetExceeded(f"the budget of {max_instructions:,} instructions ran out before the guest finished "
                             f"(pc 0x{pc:x})")
    raise GuestFault(f"guest stopped at pc 0x{pc:x} without ending the VM")
