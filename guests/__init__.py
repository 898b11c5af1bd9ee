"""Registry of the reference guest images (``worldswitch.guests``).

The guests are tiny flat binaries built from the ``.S`` sources next to this
module (see ``README.md`` and ``Makefile``). Each one loops a fixed number of
times over one kind of exit and then ends the VM with PSCI SYSTEM_RESET
(``x0``/``r0`` = 0x84000009, ``hvc #0``). A binary is loaded at its
``load_address`` and entered at its first byte.

This module only describes the files; it imports nothing heavy, so the
simulator can list guests without pulling in the emulator.
"""

from __future__ import annotations

import pathlib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "AARCH32_LOAD_ADDRESS",
    "AARCH64_LOAD_ADDRESS",
    "GUESTS",
    "SHORT_ITERATIONS",
    "GuestImage",
    "image_path",
    "short_variant",
]

#: kvmtool's kernel load addresses (RAM starts at 0x80000000).
AARCH64_LOAD_ADDRESS = 0x80080000
AARCH32_LOAD_ADDRESS = 0x80008000

#: Loop counts of the short variants in ``short/`` (for fast tests).
SHORT_ITERATIONS: tuple[int, ...] = (256, 1024)

Arch = Literal["aarch64", "aarch32"]


@dataclass(frozen=True)
class GuestImage:
    """One guest binary and what is known about it without running it.

    ``iterations`` is the loop count the binary was built with. The simulator
    must still count the exits it actually observes rather than trust it.
    """

    name: str
    #: Path relative to this package directory, with ``/`` separators.
    filename: str
    arch: Arch
    load_address: int
    iterations: int
    description: str


# name -> (arch, description); the descriptions give the exit per iteration.
_KINDS: dict[str, tuple[Arch, str]] = {
    "null_hvc": (
        "aarch64",
        "Null hypercall: PSCI_VERSION via hvc #0; one HVC exit per iteration.",
    ),
    "self_sgi": (
        "aarch64",
        (
            "Self-IPI: SGI0 to itself, then ack and EOI; one exit per iteration "
            "(GICv2: GICD_SGIR MMIO write; GICv3: ICC_SGI1R_EL1 sysreg trap)."
        ),
    ),
    "sysreg": (
        "aarch64",
        (
            "System-register trap: mrs PMSELR_EL0 (MDCR_EL2.TPM); one sysreg "
            "exit per iteration."
        ),
    ),
    "aarch32_pmselr": (
        "aarch32",
        (
            "AArch32 system-register trap: mrc PMSELR (HDCR.TPM); one cp15 "
            "exit per iteration."
        ),
    ),
}


def _image(name: str, kind: str, filename: str, iterations: int) -> GuestImage:
    arch, description = _KINDS[kind]
    load = AARCH64_LOAD_ADDRESS if arch == "aarch64" else AARCH32_LOAD_ADDRESS
    return GuestImage(name, filename, arch, load, iterations, description)


#: The full-length images, keyed by name. null_hvc uses the study's listing
#: (1<<16 calls, although its text says 2^20); null_hvc_2p20 is the 2^20 one.
GUESTS: dict[str, GuestImage] = {
    "null_hvc": _image("null_hvc", "null_hvc", "null_hvc.bin", 1 << 16),
    "null_hvc_2p20": _image("null_hvc_2p20", "null_hvc", "null_hvc_2p20.bin", 1 << 20),
    "self_sgi": _image("self_sgi", "self_sgi", "self_sgi.bin", 1 << 20),
    "sysreg": _image("sysreg", "sysreg", "sysreg.bin", 1 << 20),
    "aarch32_pmselr": _image(
        "aarch32_pmselr", "aarch32_pmselr", "aarch32_pmselr.bin", 1 << 20
    ),
}


def short_variant(name: str, iterations: int) -> GuestImage:
    """Return the short build of guest ``name`` with ``iterations`` loops.

    Short variants exist for the four guest sources (``null_hvc``,
    ``self_sgi``, ``sysreg``, ``aarch32_pmselr``) and the loop counts in
    ``SHORT_ITERATIONS``. Anything else raises ``KeyError``.
    """
    if name not in _KINDS:
        raise KeyError(
            f"no short variant of guest {name!r}; known: {', '.join(sorted(_KINDS))}"
        )
    if iterations not in SHORT_ITERATIONS:
        raise KeyError(
            f"guest {name!r} has no short variant with {iterations} iterations; "
            f"built: {', '.join(map(str, SHORT_ITERATIONS))}"
        )
    stem = f"{name}-{iterations}"
    return _image(stem, name, f"short/{stem}.bin", iterations)


def image_path(image: GuestImage) -> pathlib.Path:
    """Return the path of ``image``'s binary, which ships next to this module."""
    return pathlib.Path(__file__).parent / image.filename
