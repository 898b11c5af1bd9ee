"""Errors a user can cause, each with a documented process exit code."""

from __future__ import annotations


class WorldswitchError(Exception):
    """Base class: ``str(err)`` is a one-line message, ``exit_code`` the CLI's code."""

    exit_code = 1


class UsageError(WorldswitchError):
    """An option or argument out of its documented range."""

    exit_code = 2


class GuestImageError(WorldswitchError):
    """The guest image is missing, empty, oversized or not a valid flat binary."""

    exit_code = 3


class PluginError(WorldswitchError):
    """Unknown plugin, broken plugin, or an impossible combination."""

    exit_code = 4


class GuestFault(WorldswitchError):
    """The guest did something the model cannot serve (unknown sysreg or MMIO access, ...)."""

    exit_code = 5


class BudgetExceeded(WorldswitchError):
    """The guest did not finish within its exit or time budget."""

    exit_code = 6


class PluginFailure(WorldswitchError):
    """A plugin raised inside a hook; the run is invalid."""

    exit_code = 7


class ProfileError(WorldswitchError):
    """A platform profile or measurement file is malformed."""

    exit_code = 8


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the CLI stops as for Ctrl-C, with exit code 143 (128 + 15)."""


class TransparencyError(WorldswitchError):
    """A plugin set changed what the guest sees: its figures are not a saving, they are invalid."""

    exit_code = 9
