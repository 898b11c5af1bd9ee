/*
 * console.c: the ns16550a UART. Output only; kvmtool's 8250 always reports an
 * empty transmitter (LSR.THRE|TEMT), so a byte goes straight to THR without a
 * poll of LSR: one MMIO exit per character.
 */
#include "unit.h"

#define UART_DEFAULT_BASE 0x1000000UL	/* until the DT says otherwise */

static u64 base = UART_DEFAULT_BASE;

void uart_set_base(u64 b)
{
	base = b;
}

u64 uart_base(void)
{
	return base;
}

void putchar_unit(char c)
{
	writeb((u8)c, base);
}

void puts_unit(const char *s)
{
	while (*s)
		putchar_unit(*s++);
}
