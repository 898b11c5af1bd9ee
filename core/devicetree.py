"""The flattened device tree kvmtool hands an arm64 guest, built in Python.

The blob follows what kvmtool's ``lkvm run`` generates on arm64 (``arm/fdt.c`` ``setup_fdt`` and the node
generators it calls), node for node and in the same order:

- ``/``: ``interrupt-parent`` (the GIC's phandle, 1), ``compatible = "linux,dummy-virt"``, two address and two
  size cells;
- ``/chosen``: ``bootargs`` (left out when empty, as kvmtool does with ``--nodefaults`` and no ``-p``),
  ``kaslr-seed`` (a u64, 0 unless ``--kaslr-seed`` is given) and ``stdout-path = "serial0"``;
- ``/memory``: ``device_type = "memory"`` and one ``reg`` pair for the whole of RAM;
- ``/cpus``: one ``cpu@<mpidr>`` per vCPU, ``compatible = "arm,arm-v8"`` (kvmtool's generic v8 target),
  ``reg`` = the MPIDR affinity bits; ``enable-method = "psci"`` only when there is more than one vCPU;
- ``/intc``: the GICv2 (``arm,cortex-a15-gic``: distributor + CPU interface) or GICv3 (``arm,gic-v3``:
  distributor + one 128 KiB redistributor frame pair per vCPU, placed right below the distributor);
- ``/timer``: ``arm,armv8-timer`` / ``arm,armv7-timer``, the four PPIs 13, 14, 11, 10, level-low, with the
  GICv2 CPU target mask (one bit per vCPU) in the flags cell, ``always-on``;
- ``/U6_16550A@1000000``: the first 8250 UART (``ns16550a``, 8 bytes of registers, SPI 0 = interrupt ID 32,
  level-high, 1.8432 MHz clock);
- ``/psci``: ``arm,psci-0.2`` + ``arm,psci``, ``method = "hvc"`` and the PSCI 0.2 SMC64 function IDs for the
  legacy ``cpu_suspend``/``cpu_off``/``cpu_on``/``migrate`` properties (what kvmtool writes for an aarch64
  guest when KVM has ``KVM_CAP_ARM_PSCI_0_2``, as v4.5 does);
- ``/aliases``: ``serial0`` = the UART's path.

kvmtool's names are kept even where dtc would ask for more: ``/memory`` and ``/intc`` have a ``reg`` but no
unit address, which dtc reports as ``unit_address_vs_reg`` (Linux matches both by type and compatible).

Left out, because the modelled VM does not have them: the PCI host bridge (``pci__generate_fdt_nodes``) and
every virtio device (PCI or MMIO); kvmtool's other three UARTs (``U6_16550A@1001000`` .. ``@1003000`` with
interrupt IDs 33-35) and its ``motorola,mc146818`` RTC at 0x1010000, which this VM does not emulate;
the PMU node (only with ``--pmu``), CFI flash (only with ``--flash``), initrd properties (no initrd) and the
GICv2m/ITS MSI frame (only with ``--irqchip=gicv2m``/``gicv3-its``). Where kvmtool takes a value from KVM
at run time (the vCPU's MPIDR, the PSCI capability, the CPU target) this module uses what Linux v4.5 gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import fdt

__all__ = ["FDT_ALIGN", "FDT_MAX_SIZE", "MachineLayout", "build_dtb", "build_tree", "dtb_address", "mpidr_of"]

FDT_MAX_SIZE = 0x10000
"""Room kvmtool reserves for the DTB (include/kvm/fdt.h)."""

FDT_ALIGN = 2 << 20
"""Alignment of the DTB's guest address (arm/kvm.c)."""

LOWMEM_LIMIT = 256 << 20
"""kvmtool keeps the DTB and initrd within the first 256 MiB of RAM (arm/kvm.c)."""

ARM_MEMORY_AREA = 0x80000000
PHANDLE_GIC = 1
GIC_SPI_IRQ_BASE = 32
GIC_FDT_IRQ_TYPE_SPI = 0
GIC_FDT_IRQ_TYPE_PPI = 1
GIC_FDT_IRQ_PPI_CPU_SHIFT = 8
GIC_V2_MAX_CPUS = 8
IRQ_TYPE_LEVEL_HIGH = 4
IRQ_TYPE_LEVEL_LOW = 8
GIC_DIST_SIZE = 0x10000
GIC_CPUI_SIZE = 0x20000
GIC_REDIST_SIZE = 0x20000
ARM_MPIDR_HWID_BITMASK = 0xFF00FFFFFF
UART_REG_SIZE = 8
UART_CLOCK_HZ = 1843200

PSCI_0_2_FN_CPU_OFF = 0x84000002
PSCI_0_2_FN64_CPU_SUSPEND = 0xC4000001
PSCI_0_2_FN64_CPU_ON = 0xC4000003
PSCI_0_2_FN64_MIGRATE = 0xC4000005

_MAX_VCPU_ID = 1 << 20  # Aff0 (4 bits), Aff1 (8 bits) and Aff2 (8 bits) in reset_mpidr


@dataclass(frozen=True)
class MachineLayout:
    """Guest-physical layout of the VM, with kvmtool's defaults for an arm64 ``lkvm run``.

    ``uart_irq`` is a GIC interrupt ID (kvmtool's line number): kvmtool hands out lines from 32 (the first
    SPI) in allocation order, and the console 8250 is the first device to ask. ``timer_ppis`` are the PPI
    numbers (not interrupt IDs) of the secure physical, non-secure physical, virtual and hypervisor timers.
    """

    ram_base: int = ARM_MEMORY_AREA
    ram_size: int = 64 << 20
    nr_cpus: int = 1
    bootargs: str = ""
    gic: int = 2
    gicd_base: int = 0x3FFF0000
    gicc_base: int = 0x3FFD0000
    redist_base: int | None = None
    uart_base: int = 0x1000000
    uart_irq: int = GIC_SPI_IRQ_BASE
    timer_ppis: tuple[int, int, int, int] = (13, 14, 11, 10)
    kaslr_seed: int = 0

    def __post_init__(self) -> None:
        if self.gic not in (2, 3):
            raise ValueError(f"gic must be 2 or 3, not {self.gic!r}")
        if self.nr_cpus < 1:
            raise ValueError(f"nr_cpus must be at least 1, not {self.nr_cpus}")
        if self.gic == 2 and self.nr_cpus > GIC_V2_MAX_CPUS:
            raise ValueError(f"a GICv2 serves at most {GIC_V2_MAX_CPUS} vCPUs, not {self.nr_cpus}")
        if self.nr_cpus > _MAX_VCPU_ID:
            raise ValueError(f"nr_cpus {self.nr_cpus} does not fit the MPIDR affinity fields")
        if self.ram_base < ARM_MEMORY_AREA:
            raise ValueError(f"RAM must start at or above {ARM_MEMORY_AREA:#x}, not {self.ram_base:#x}")
        if self.ram_size <= 0:
            raise ValueError(f"ram_size must be positive, not {self.ram_size}")
        if self.gic == 3 and self.redistributor_base < 0:
            raise ValueError("the redistributor region would start below address 0")
        if not GIC_SPI_IRQ_BASE <= self.uart_irq < 1020:
            raise ValueError(f"uart_irq must be an SPI interrupt ID (32..1019), not {self.uart_irq}")
        if len(self.timer_ppis) != 4 or not all(0 <= ppi < 16 for ppi in self.timer_ppis):
            raise ValueError(f"timer_ppis must be four PPI numbers 0..15, not {self.timer_ppis!r}")
        if not self.bootargs.isascii():
            raise ValueError("bootargs must be ASCII")
        if not 0 <= self.kaslr_seed < 1 << 64:
            raise ValueError("kaslr_seed must fit in 64 bits")

    @property
    def redistributor_base(self) -> int:
        """Start of the GICv3 redistributor region: ``redist_base``, or kvmtool's placement below the
        distributor."""
        if self.redist_base is not None:
            return self.redist_base
        return self.gicd_base - self.redistributor_size

    @property
    def redistributor_size(self) -> int:
        """Size of the GICv3 redistributor region: one RD_base + SGI_base frame pair per vCPU."""
        return self.nr_cpus * GIC_REDIST_SIZE


def mpidr_of(cpu: int) -> int:
    """MPIDR_EL1 as KVM v4.5 resets it for vCPU ``cpu`` (sys_regs.c ``reset_mpidr``).

    At most 16 vCPUs share an Aff0 cluster (the GICv3 SGI target list is 16 bits wide); bit 31 is RES1.
    """
    if not 0 <= cpu < _MAX_VCPU_ID:
        raise ValueError(f"vCPU id {cpu} out of range")
    aff0 = cpu & 0x0F
    aff1 = (cpu >> 4) & 0xFF
    aff2 = (cpu >> 12) & 0xFF
    return (1 << 31) | (aff2 << 16) | (aff1 << 8) | aff0


def dtb_address(layout: MachineLayout) -> int:
    """Guest-physical address where kvmtool copies the DTB for a kernel boot.

    kvmtool counts back ``FDT_MAX_SIZE + FDT_ALIGN`` bytes from the last byte of the lowmem window (RAM,
    capped at 256 MiB) and rounds up to ``FDT_ALIGN`` (arm/kvm.c ``kvm__arch_load_kernel_image``).
    """
    limit = layout.ram_base + min(layout.ram_size, LOWMEM_LIMIT) - 1
    pos = limit - (FDT_MAX_SIZE + FDT_ALIGN)
    addr = (pos + FDT_ALIGN - 1) & ~(FDT_ALIGN - 1)
    if addr <= layout.ram_base:
        # the kernel image starts at the base of RAM, so kvmtool would die: "fdt overlaps with kernel image"
        raise ValueError(f"{layout.ram_size:#x} bytes of RAM leave no room for a kernel below the DTB")
    return addr


def _cells64(*values: int) -> list[int]:
    """Split 64-bit values into big-endian pairs of 32-bit cells."""
    cells: list[int] = []
    for value in values:
        cells += [(value >> 32) & 0xFFFFFFFF, value & 0xFFFFFFFF]
    return cells


def _node(name: str, *items: fdt.Property | fdt.Node) -> fdt.Node:
    node = fdt.Node(name)
    for item in items:
        node.append(item)
    return node


def _uart_node_name(layout: MachineLayout) -> str:
    return f"U6_16550A@{layout.uart_base:x}"


def _cpus(layout: MachineLayout) -> fdt.Node:
    cpus = _node("cpus", fdt.PropWords("#address-cells", 1), fdt.PropWords("#size-cells", 0))
    for cpu in range(layout.nr_cpus):
        hwid = mpidr_of(cpu) & ARM_MPIDR_HWID_BITMASK
        props: list[fdt.Property] = [
            fdt.PropStrings("device_type", "cpu"),
            fdt.PropStrings("compatible", "arm,arm-v8"),
        ]
        if layout.nr_cpus > 1:
            props.append(fdt.PropStrings("enable-method", "psci"))
        props.append(fdt.PropWords("reg", hwid))
        cpus.append(_node(f"cpu@{hwid:x}", *props))
    return cpus


def _gic(layout: MachineLayout) -> fdt.Node:
    if layout.gic == 2:
        compatible = "arm,cortex-a15-gic"
        second = (layout.gicc_base, GIC_CPUI_SIZE)
    else:
        compatible = "arm,gic-v3"
        second = (layout.redistributor_base, layout.redistributor_size)
    return _node(
        "intc",
        fdt.PropStrings("compatible", compatible),
        fdt.PropWords("#interrupt-cells", 3),
        fdt.Property("interrupt-controller"),
        fdt.PropWords("reg", *_cells64(layout.gicd_base, GIC_DIST_SIZE, *second)),
        fdt.PropWords("phandle", PHANDLE_GIC),
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
    )


def _ppi_cpu_mask(layout: MachineLayout) -> int:
    """The GICv2 CPU-target bits of a PPI's flags cell (one bit per vCPU); 0 on a GICv3."""
    if layout.gic == 3:
        return 0
    return ((1 << layout.nr_cpus) - 1) << GIC_FDT_IRQ_PPI_CPU_SHIFT


def _timer(layout: MachineLayout) -> fdt.Node:
    flags = _ppi_cpu_mask(layout) | IRQ_TYPE_LEVEL_LOW
    cells: list[int] = []
    for ppi in layout.timer_ppis:
        cells += [GIC_FDT_IRQ_TYPE_PPI, ppi, flags]
    return _node(
        "timer",
        fdt.PropStrings("compatible", "arm,armv8-timer", "arm,armv7-timer"),
        fdt.PropWords("interrupts", *cells),
        fdt.Property("always-on"),
    )


def _uart(layout: MachineLayout) -> fdt.Node:
    return _node(
        _uart_node_name(layout),
        fdt.PropStrings("compatible", "ns16550a"),
        fdt.PropWords("reg", *_cells64(layout.uart_base, UART_REG_SIZE)),
        fdt.PropWords("interrupts", GIC_FDT_IRQ_TYPE_SPI, layout.uart_irq - GIC_SPI_IRQ_BASE, IRQ_TYPE_LEVEL_HIGH),
        fdt.PropWords("clock-frequency", UART_CLOCK_HZ),
    )


def _psci() -> fdt.Node:
    return _node(
        "psci",
        fdt.PropStrings("compatible", "arm,psci-0.2", "arm,psci"),
        fdt.PropStrings("method", "hvc"),
        fdt.PropWords("cpu_suspend", PSCI_0_2_FN64_CPU_SUSPEND),
        fdt.PropWords("cpu_off", PSCI_0_2_FN_CPU_OFF),
        fdt.PropWords("cpu_on", PSCI_0_2_FN64_CPU_ON),
        fdt.PropWords("migrate", PSCI_0_2_FN64_MIGRATE),
    )


def _chosen(layout: MachineLayout) -> fdt.Node:
    chosen = fdt.Node("chosen")
    if layout.bootargs:
        chosen.append(fdt.PropStrings("bootargs", layout.bootargs))
    chosen.append(fdt.PropWords("kaslr-seed", *_cells64(layout.kaslr_seed)))
    chosen.append(fdt.PropStrings("stdout-path", "serial0"))
    return chosen


def build_tree(layout: MachineLayout) -> fdt.FDT:
    """The device tree for ``layout`` as an ``fdt.FDT`` object (see the module docstring for its shape)."""
    root = _node(
        "/",
        fdt.PropWords("interrupt-parent", PHANDLE_GIC),
        fdt.PropStrings("compatible", "linux,dummy-virt"),
        fdt.PropWords("#address-cells", 2),
        fdt.PropWords("#size-cells", 2),
        _chosen(layout),
        _node(
            "memory",
            fdt.PropStrings("device_type", "memory"),
            fdt.PropWords("reg", *_cells64(layout.ram_base, layout.ram_size)),
        ),
        _cpus(layout),
        _gic(layout),
        _timer(layout),
        _uart(layout),
        _psci(),
        _node("aliases", fdt.PropStrings("serial0", "/" + _uart_node_name(layout))),
    )
    tree = fdt.FDT()
    tree.root = root
    return tree


def build_dtb(layout: MachineLayout) -> bytes:
    """Serialise the device tree for ``layout``: DTB version 17 (last compatible 16), no reserved memory,
    boot CPU 0, at most ``FDT_MAX_SIZE`` bytes."""
    blob = build_tree(layout).to_dtb(version=17, last_comp_version=16, boot_cpuid_phys=0)
    if len(blob) > FDT_MAX_SIZE:
        raise ValueError(f"the DTB is {len(blob)} bytes, more than kvmtool's {FDT_MAX_SIZE}")
    return blob
