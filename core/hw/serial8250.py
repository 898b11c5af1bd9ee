"""kvmtool's hw/serial.c: a 16550A UART, emulated in userspace behind KVM_EXIT_MMIO.

The guest's console. Only the transmit side carries data: what the guest writes to THR is
the console text (kept for ``--json`` and streamed to ``sink`` as it comes); nothing is ever
received, so RBR reads 0 and LSR always says the transmitter is empty and no data is ready.
The other registers keep what the guest writes, so a driver's probe (scratch register, LCR
divisor latch) reads back what it expects.
"""

from __future__ import annotations

from collections.abc import Callable

UART_BASE = 0x1000000  # kvmtool's ARM_UART_MMIO_BASE: the first of its four 8-byte UARTs
UART_SIZE = 8

RBR_THR_DLL, IER_DLM, IIR_FCR, LCR, MCR, LSR, MSR, SCR = range(8)
LCR_DLAB = 0x80
LSR_THRE, LSR_TEMT = 0x20, 0x40
IIR_NO_INT, IIR_FIFO_ENABLED = 0x01, 0xC0
MSR_DCD_DSR_CTS = 0xB0  # carrier, data set ready, clear to send: a cable is attached


class Serial8250:
    """One 16550A with byte-wide registers (reg-shift 0)."""

    def __init__(self, sink: Callable[[bytes], None] | None = None) -> None:
        self.output = bytearray()
        self.sink = sink
        self.ier = self.lcr = self.mcr = self.scr = self.fcr = 0
        self.dll, self.dlm = 12, 0  # 9600 baud from the 1.8432 MHz clock the DT gives

    def read(self, offset: int) -> int:
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR_DLL:
            return self.dll if dlab else 0
        if offset == IER_DLM:
            return self.dlm if dlab else self.ier
        if offset == IIR_FCR:
            return IIR_NO_INT | (IIR_FIFO_ENABLED if self.fcr & 1 else 0)
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            return LSR_THRE | LSR_TEMT
        if offset == MSR:
            return MSR_DCD_DSR_CTS
        return self.scr

    def write(self, offset: int, value: int) -> None:
        value &= 0xFF
        dlab = self.lcr & LCR_DLAB
        if offset == RBR_THR_DLL:
            if dlab:
                self.dll = value
            else:
                self.output.append(value)
                if self.sink is not None:
                    self.sink(bytes((value,)))
        elif offset == IER_DLM:
            if dlab:
                self.dlm = value
            else:
                self.ier = value & 0x0F
        elif offset == IIR_FCR:
            self.fcr = value
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self.mcr = value & 0x1F
        elif offset == SCR:
            self.scr = value

    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")
