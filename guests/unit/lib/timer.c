/* timer.c: the generic timer's interrupt numbers, from /timer. */
#include "unit.h"

int timer_vtimer_irq(void)
{
	u32 len;
	const u8 *irqs = dt_getprop(dt_find_compatible("arm,armv8-timer"), "interrupts", &len);

	/* four <type number flags> triples: secure phys, phys, virt, hyp */
	if (!irqs || len < 3 * 12)
		return -1;
	irqs += 2 * 12;
	/* type 1 is a PPI (INTID 16 + n), type 0 an SPI (INTID 32 + n) */
	return (int)fdt32(irqs + 4) + (fdt32(irqs) == 1 ? 16 : 32);
}
