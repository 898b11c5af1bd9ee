/*
 * irq: self-IPIs through whichever GIC the DT describes. SGI 1 is enabled at
 * priority 0xa0, IRQs are unmasked, and the guest sends itself SGI 1 N times;
 * the IRQ handler (VBAR_EL1 + 0x280) acknowledges, counts and EOIs each.
 */
#include "unit.h"

const char progname[] = "irq";

#define SGI 1
#define N 16

static volatile int count, others, spurious;
static volatile u32 last_iar;
static volatile u64 last_spsr;

static void irq_handler(struct pt_regs *regs)
{
	u32 iar = gic_read_iar();
	unsigned int irq = gic_iar_irqnr(iar);

	if (irq == GIC_SPURIOUS) {
		spurious++;
		return;
	}
	last_iar = iar;
	last_spsr = regs->pstate;
	if (irq == SGI)
		count++;
	else
		others++;
	gic_write_eoir(iar);
	if (others > 8) {
		report(false, "interrupt storm: %d unexpected interrupts, the last INTID %u", others, irq);
		exit(report_summary());
	}
}

int main(void)
{
	int i, version;

	report_prefix("irq");
	version = gic_init();
	printf("gic: v%d (from the DT)\n", version);
	report(version == 2 || version == 3, "GIC found in the DT");
	if (!version)
		return report_summary();
	if (version == 3)
		report(gic_icc_sre() & 1, "ICC_SRE_EL1.SRE set");

	gic_enable_defaults();
	gic_irq_set_priority(SGI, 0xa0);
	gic_irq_enable(SGI);
	install_irq_handler(irq_handler);

	/* nothing pending yet */
	report(gic_iar_irqnr(gic_read_iar()) == GIC_SPURIOUS, "IAR reads spurious before any SGI");

	irq_enable();
	for (i = 0; i < N; i++) {
		int before = count;

		gic_send_sgi_self(SGI);
		while (count == before && !others)
			;
	}
	irq_disable();

	report(count == N, "%d SGIs sent, %d taken", N, count);
	report(others == 0 && spurious == 0, "no other interrupt (%d), no spurious (%d)", others, spurious);
	report(last_iar == SGI, "acknowledged ID 0x%x (SGI %d from CPU 0)", last_iar, SGI);
	report((last_spsr & 0xf) == 0x5 && !(last_spsr & BIT(7)),
	       "taken from EL1h with IRQs unmasked (SPSR 0x%lx)", last_spsr);
	report(gic_iar_irqnr(gic_read_iar()) == GIC_SPURIOUS, "nothing left pending");

	/* with IRQs masked, the SGI stays pending until the guest polls it */
	count = 0;
	gic_send_sgi_self(SGI);
	for (i = 0; i < 100; i++) {
		u32 iar = gic_read_iar();

		if (gic_iar_irqnr(iar) != GIC_SPURIOUS) {
			report(gic_iar_irqnr(iar) == SGI, "masked: polled IAR 0x%x", iar);
			gic_write_eoir(iar);
			break;
		}
	}
	report(i < 100 && count == 0, "masked: not taken as an IRQ");
	return report_summary();
}
