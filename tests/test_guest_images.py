"""The committed guest binaries in guests/ must match their assembler sources.

Three independent checks:

* With the cross binutils on PATH, the Makefile rebuilds every image into a
  temporary directory, byte for byte equal to the committed one.
* Always: capstone disassembles every committed image, and the listing must
  equal the one written out below from mission.md ("The reference guests")
  and the .S sources. The mnemonics of each .S file must follow the same
  order, and a short variant may differ from its full-length image only in
  the two instructions that load the loop count.
* Always: the registry in guests/__init__.py names files that exist and are
  plausible flat images.

The registry is imported from its file, so none of this needs the package
to be installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import capstone
import pytest

GUESTS_DIR = Path(__file__).resolve().parent.parent / "guests"

A64_BASE = 0x80080000
A32_BASE = 0x80008000
SHORT_ITERATIONS = (256, 1024)

# Every committed image: path under guests/ -> (source stem, loop count).
FULL_IMAGES: dict[str, tuple[str, int]] = {
    "null_hvc.bin": ("null_hvc", 1 << 16),
    "null_hvc_2p20.bin": ("null_hvc", 1 << 20),
    "self_sgi.bin": ("self_sgi", 1 << 20),
    "sysreg.bin": ("sysreg", 1 << 20),
    "aarch32_pmselr.bin": ("aarch32_pmselr", 1 << 20),
}
SHORT_IMAGES: dict[str, tuple[str, int]] = {
    f"short/{stem}-{n}.bin": (stem, n)
    for stem in ("null_hvc", "self_sgi", "sysreg", "aarch32_pmselr")
    for n in SHORT_ITERATIONS
}
ALL_IMAGES = {**FULL_IMAGES, **SHORT_IMAGES}


def is_aarch32(stem: str) -> bool:
    return stem.startswith("aarch32")


# ---------------------------------------------------------------------------
# Expected listings, in capstone 5's text form (mnemonic and operands, single
# spaces). Branch targets are absolute, so they also pin the layout.


def _imm(value: int) -> str:
    """Capstone prints immediates below 10 in decimal, the rest in hex."""
    return str(value) if value < 10 else hex(value)


def _a64_iters(count: int) -> list[str]:
    """The movz/movk pair that loads the loop count into x19."""
    high, low = (count >> 16) & 0xFFFF, count & 0xFFFF
    # Capstone shows movz as the `mov` alias, except for movz #0, lsl #16.
    first = f"mov x19, #{_imm(high << 16)}" if high else "movz x19, #0, lsl #16"
    return [first, f"movk x19, #{_imm(low)}"]


# x0 = 0x84000009 (PSCI SYSTEM_RESET); hvc #0.
A64_RESET = ["mov x0, #0x84000000", "movk x0, #9", "hvc #0"]


def expected_null_hvc(count: int) -> list[str]:
    return [
        *_a64_iters(count),
        "mov x0, #0x84000000",  # 0x08: PSCI_VERSION
        "hvc #0",
        "sub x19, x19, #1",
        "cbnz x19, #0x80080008",
        *A64_RESET,
        "b #0x80080024",  # b .
    ]


def expected_sysreg(count: int) -> list[str]:
    return [
        *_a64_iters(count),
        "mrs x0, pmselr_el0",  # 0x08
        "sub x19, x19, #1",
        "cbnz x19, #0x80080008",
        *A64_RESET,
        "b #0x80080020",  # b .
    ]


def expected_self_sgi(count: int) -> list[str]:
    # Capstone names the generic s3_* encodings; the names confirm them.
    return [
        *_a64_iters(count),
        # GIC flavour: ID_AA64PFR0_EL1[27:24], then ICC_SRE_EL1.SRE.
        "mrs x1, id_aa64pfr0_el1",
        "ubfx x1, x1, #0x18, #4",
        "cbz x1, #0x8008007c",  # -> GICv2 path
        "mrs x1, icc_sre_el1",  # s3_0_c12_c12_5
        "tbz w1, #0, #0x8008007c",  # -> GICv2 path
        # 0x1c: GICv3 set-up.
        "mov x1, #0x3fff0000",
        "mov w3, #2",
        "str w3, [x1]",  # GICD_CTLR <- 2
        "mov x2, #0x3fc00000",  # redistributor 0 SGI page
        "mov w3, #0xa0a0",
        "movk w3, #0xa0a0, lsl #16",
        "str w3, [x2, #0x400]",
        "mov w3, #0xf",
        "str w3, [x2, #0x100]",
        "mov x3, #0xf0",
        "msr icc_pmr_el1, x3",  # s3_0_c4_c6_0
        "mov x3, #1",
        "msr icc_igrpen1_el1, x3",  # s3_0_c12_c12_7
        "mov x4, #1",
        # 0x54: GICv3 loop.
        "msr icc_sgi1r_el1, x4",  # s3_0_c12_c11_5
        "mrs x0, icc_iar1_el1",  # 0x58: s3_0_c12_c12_0
        "cmp x0, #0x3ff",
        "b.ne #0x8008006c",
        "wfi",
        "b #0x80080058",
        "msr icc_eoir1_el1, x0",  # 0x6c: s3_0_c12_c12_1
        "sub x19, x19, #1",
        "cbnz x19, #0x80080054",
        "b #0x800800d8",  # -> reset
        # 0x7c: GICv2 set-up, 32-bit accesses only.
        "mov x1, #0x3fff0000",
        "mov x2, #0x3ffd0000",
        "mov w3, #1",
        "str w3, [x1]",  # GICD_CTLR <- 1
        "mov w3, #0xa0a0",
        "movk w3, #0xa0a0, lsl #16",
        "str w3, [x1, #0x400]",
        "mov w3, #0xf",
        "str w3, [x1, #0x100]",
        "mov w3, #0xf0",
        "str w3, [x2, #4]",  # GICC_PMR
        "mov w3, #1",
        "str w3, [x2]",  # GICC_CTLR
        "mov w4, #0x2000000",
        # 0xb4: GICv2 loop.
        "str w4, [x1, #0xf00]",  # GICD_SGIR
        "ldr w0, [x2, #0xc]",  # 0xb8: GICC_IAR
        "cmp w0, #0x3ff",
        "b.ne #0x800800cc",
        "wfi",
        "b #0x800800b8",
        "str w0, [x2, #0x10]",  # 0xcc: GICC_EOIR
        "sub x19, x19, #1",
        "cbnz x19, #0x800800b4",
        *A64_RESET,  # 0xd8
        "b #0x800800e4",  # b .
    ]


def expected_aarch32_pmselr(count: int) -> list[str]:
    return [
        f"movw r4, #{_imm(count & 0xFFFF)}",
        f"movt r4, #{_imm((count >> 16) & 0xFFFF)}",
        "mrc p15, #0, r0, c9, c12, #5",  # 0x08: PMSELR
        "subs r4, r4, #1",
        "bne #0x80008008",
        "movw r0, #9",
        "movt r0, #0x8400",
        "hvc #0",
        "b #0x80008020",  # b .
    ]


EXPECTED = {
    "null_hvc": expected_null_hvc,
    "self_sgi": expected_self_sgi,
    "sysreg": expected_sysreg,
    "aarch32_pmselr": expected_aarch32_pmselr,
}


def disassemble(stem: str, code: bytes) -> list[capstone.CsInsn]:
    if is_aarch32(stem):
        md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_ARM)
        base = A32_BASE
    else:
        md = capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)
        base = A64_BASE
    insns = list(md.disasm(code, base))
    # Capstone stops at the first word it cannot decode: all must decode.
    assert sum(i.size for i in insns) == len(code), "undecodable bytes"
    return insns


def as_text(insn: capstone.CsInsn) -> str:
    return " ".join(f"{insn.mnemonic} {insn.op_str}".split())


@pytest.mark.parametrize("relpath", sorted(ALL_IMAGES))
def test_disassembly_matches_listing(relpath: str) -> None:
    stem, count = ALL_IMAGES[relpath]
    insns = disassemble(stem, (GUESTS_DIR / relpath).read_bytes())
    assert [as_text(i) for i in insns] == EXPECTED[stem](count)


# ---------------------------------------------------------------------------
# The .S sources: their instruction mnemonics, in order.

# Source spellings that capstone shows under another name.
_ALIASES = {"movz": "mov"}


def source_mnemonics(stem: str) -> list[str]:
    comment = "@" if is_aarch32(stem) else "//"
    mnemonics = []
    for line in (GUESTS_DIR / f"{stem}.S").read_text().splitlines():
        line = line.split(comment, 1)[0]
        line = re.sub(r"^\s*\w+:", "", line).strip()  # drop a label
        if not line or line.startswith("."):  # blank or a directive
            continue
        mnemonic = line.split()[0].lower()
        mnemonics.append(_ALIASES.get(mnemonic, mnemonic))
    return mnemonics


@pytest.mark.parametrize("relpath", sorted(FULL_IMAGES))
def test_source_mnemonics_match_binary(relpath: str) -> None:
    stem, _ = FULL_IMAGES[relpath]
    insns = disassemble(stem, (GUESTS_DIR / relpath).read_bytes())
    binary = [_ALIASES.get(i.mnemonic, i.mnemonic) for i in insns]
    assert binary == source_mnemonics(stem)


@pytest.mark.parametrize("relpath", sorted(SHORT_IMAGES))
def test_short_variant_differs_only_in_loop_count(relpath: str) -> None:
    stem, _ = SHORT_IMAGES[relpath]
    full = (GUESTS_DIR / f"{stem}.bin").read_bytes()
    short = (GUESTS_DIR / relpath).read_bytes()
    assert len(short) == len(full)
    words = range(0, len(full), 4)
    changed = {i // 4 for i in words if full[i : i + 4] != short[i : i + 4]}
    # Words 0 and 1 are the movz/movk (movw/movt) pair that loads ITERS.
    assert changed and changed <= {0, 1}


# ---------------------------------------------------------------------------
# Rebuild with the Makefile and compare bytes.

TOOLCHAINS = {
    "aarch64": "aarch64-linux-gnu-",
    "aarch32": "arm-linux-gnueabihf-",
}


@pytest.mark.parametrize("group", sorted(TOOLCHAINS))
def test_makefile_rebuild_is_identical(group: str, tmp_path: Path) -> None:
    prefix = TOOLCHAINS[group]
    missing = [
        tool
        for tool in ("make", f"{prefix}as", f"{prefix}ld", f"{prefix}objcopy")
        if shutil.which(tool) is None
    ]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH to rebuild the guests")
    subprocess.run(
        ["make", "-s", "-C", str(GUESTS_DIR), f"OUT={tmp_path}", group],
        check=True,
        capture_output=True,
        timeout=60,
    )
    wanted = {
        p
        for p, (stem, _) in ALL_IMAGES.items()
        if is_aarch32(stem) == (group == "aarch32")
    }
    built = {
        p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()
    }
    assert built == wanted  # and no stray objects left behind
    for relpath in sorted(wanted):
        rebuilt = (tmp_path / relpath).read_bytes()
        assert rebuilt == (GUESTS_DIR / relpath).read_bytes(), relpath


# ---------------------------------------------------------------------------
# The registry, guests/__init__.py.


@pytest.fixture(scope="module")
def registry() -> Iterator[ModuleType]:
    name = "_worldswitch_guests_under_test"
    spec = importlib.util.spec_from_file_location(name, GUESTS_DIR / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def _all_registered(registry: ModuleType) -> list[Any]:
    images = list(registry.GUESTS.values())
    for stem in ("null_hvc", "self_sgi", "sysreg", "aarch32_pmselr"):
        for count in SHORT_ITERATIONS:
            images.append(registry.short_variant(stem, count))
    return images


def test_registry_names(registry: ModuleType) -> None:
    assert set(registry.GUESTS) == {
        "null_hvc",
        "null_hvc_2p20",
        "self_sgi",
        "sysreg",
        "aarch32_pmselr",
    }
    assert all(name == image.name for name, image in registry.GUESTS.items())
    assert registry.GUESTS["null_hvc"].iterations == 1 << 16


def test_registry_matches_files(registry: ModuleType) -> None:
    images = _all_registered(registry)
    assert {image.filename for image in images} == set(ALL_IMAGES)
    for image in images:
        stem, count = ALL_IMAGES[image.filename]
        assert image.iterations == count, image.name
        assert image.arch == ("aarch32" if is_aarch32(stem) else "aarch64")
        base = A32_BASE if image.arch == "aarch32" else A64_BASE
        assert image.load_address == base
        assert image.description


def test_image_files_exist_and_are_small(registry: ModuleType) -> None:
    for image in _all_registered(registry):
        path = registry.image_path(image)
        assert path.is_absolute() and path.is_file(), path
        assert path.parent in (GUESTS_DIR, GUESTS_DIR / "short")
        size = path.stat().st_size
        assert size > 0 and size % 4 == 0 and size < 4096, (path, size)


def test_short_variant_rejects_unknown(registry: ModuleType) -> None:
    with pytest.raises(KeyError, match="no short variant"):
        registry.short_variant("null_hvc_2p20", 256)
    with pytest.raises(KeyError, match="no short variant"):
        registry.short_variant("nonsense", 256)
    with pytest.raises(KeyError, match="512 iterations"):
        registry.short_variant("sysreg", 512)


def test_guest_image_is_frozen(registry: ModuleType) -> None:
    image = registry.GUESTS["sysreg"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.iterations = 1  # type: ignore[misc]
