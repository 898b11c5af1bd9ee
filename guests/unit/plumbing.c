/*
 * plumbing: traps in places a code scanner could miss, with exit counts the
 * test checks exactly.
 *   (a) a literal pool, then a loop of 8 trapped "mrs x0, pmselr_el0":
 *       8 sys64 exits;
 *   (b) a routine copied at run time to 0x80200000 (outside the image), with
 *       one trapped mrs and one hvc, run twice: 2 sys64 + 2 hvc64 exits;
 *   (c) GICv2 only: a self-IPI whose GICD_SGIR store follows a stp (and, the
 *       second time, a pre-indexed str) to the stack in the same basic block;
 *       each must be one data abort with a valid syndrome.
 * Besides these, the only exits are the console's (one per character), the
 * GICv2 set-up (GICD_CTLR, a read and a write of GICD_IPRIORITYR0,
 * GICD_ISENABLER0) and the final SYSTEM_OFF.
 */
#include "unit.h"

const char progname[] = "plumbing";

#define COPY_ADDR 0x80200000UL
#define SGI 2

u64 seq_literal_loop(void);
void seq_sgi_after_stp(u64 unused, u64 gicd_sgir, u32 value);
void seq_sgi_after_str_pre(u64 unused, u64 gicd_sgir, u32 value);
extern char seq_copied[], seq_copied_end[];

static void sync_icache(u64 start, u64 end)
{
	u64 ctr = read_sysreg(ctr_el0);
	u64 dline = 4UL << ((ctr >> 16) & 0xf);	/* DminLine, in bytes */
	u64 iline = 4UL << (ctr & 0xf);		/* IminLine */
	u64 p;

	for (p = start & ~(dline - 1); p < end; p += dline)
		asm volatile("dc cvau, %0" : : "r" (p) : "memory");
	dsb(ish);
	for (p = start & ~(iline - 1); p < end; p += iline)
		asm volatile("ic ivau, %0" : : "r" (p) : "memory");
	dsb(ish);
	isb();
}

/* Poll for SGI, then EOI it: GICC accesses are not exits. */
static bool take_sgi(void)
{
	int tries;

	for (tries = 0; tries < 16; tries++) {
		u32 iar = gic_read_iar();

		if (gic_iar_irqnr(iar) == SGI) {
			gic_write_eoir(iar);
			return true;
		}
		if (gic_iar_irqnr(iar) != GIC_SPURIOUS)
			gic_write_eoir(iar);
	}
	return false;
}

int main(void)
{
	size_t len = (size_t)(seq_copied_end - seq_copied);
	u64 (*copied)(void) = (u64 (*)(void))COPY_ADDR;
	u64 v;

	report_prefix("plumbing");

	v = seq_literal_loop();
	report(v == 0xffffffffd53b9ca0UL, "(a) literal 0x%lx, then 8 trapped mrs", v);

	memcpy((void *)COPY_ADDR, seq_copied, len);
	sync_icache(COPY_ADDR, COPY_ADDR + len);
	v = copied();
	report(v == 2, "(b) copied routine at 0x%lx: PSCI version %lu", COPY_ADDR, v);
	v = copied();
	report(v == 2, "(b) again: PSCI version %lu", v);

	if (gic_init() != 2) {
		report_info("(c) skipped: not a GICv2 guest");
		return report_summary();
	}
	gic_enable_defaults();
	gic_irq_set_priority(SGI, 0xa0);
	gic_irq_enable(SGI);
	seq_sgi_after_stp(0, gic_dist_base() + GICD_SGIR, (2U << 24) | SGI);
	report(take_sgi(), "(c) SGI sent after a stp in the same block");
	seq_sgi_after_str_pre(0, gic_dist_base() + GICD_SGIR, (2U << 24) | SGI);
	report(take_sgi(), "(c) SGI sent after a pre-indexed str in the same block");
	return report_summary();
}
