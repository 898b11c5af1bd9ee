/*
 * timer: the virtual timer through the vgic. It is armed 1 ms ahead, first
 * with CNTV_TVAL_EL0 and then with CNTV_CTL_EL0/CNTV_CVAL_EL0; the guest waits
 * in WFI with IRQs unmasked, and the handler sees the timer's INTID (27, from
 * the DT), masks the timer (CNTV_CTL.IMASK) and EOIs.
 */
#include "unit.h"

const char progname[] = "timer";

static int vtimer_irq;
static volatile int fired, others;
static volatile u64 ctl_in_handler, fired_at;
static volatile u32 last_irq;

static void irq_handler(struct pt_regs *regs)
{
	u32 iar = gic_read_iar();
	unsigned int irq = gic_iar_irqnr(iar);

	(void)regs;
	if (irq == GIC_SPURIOUS)
		return;
	last_irq = irq;
	if (irq == (unsigned int)vtimer_irq) {
		fired_at = read_cntvct();
		ctl_in_handler = vtimer_ctl();
		/* a level interrupt: lower it before the EOI, or it comes straight back */
		vtimer_set_ctl(CNTV_CTL_ENABLE | CNTV_CTL_IMASK);
		fired++;
	} else {
		others++;
	}
	gic_write_eoir(iar);
	if (others > 8) {
		/* an interrupt that keeps coming back would never let the test end */
		report(false, "interrupt storm: %d unexpected interrupts, the last INTID %u", others, irq);
		exit(report_summary());
	}
}

/*
 * Sleep until the handler has run: the WFI never misses the wake-up, since a
 * pending interrupt ends WFI even while PSTATE.I masks it. Gives up (false)
 * once the counter is 10 ms past the deadline.
 */
static bool wait_for_timer(u64 deadline, u64 freq)
{
	u64 give_up = deadline + freq / 100;

	irq_disable();
	while (!fired && read_cntvct() < give_up) {
		wfi();
		irq_enable();
		isb();
		irq_disable();
	}
	irq_enable();
	return fired;
}

int main(void)
{
	u64 freq, ticks, t0, t1, cval;
	int version;
	bool ok;

	report_prefix("timer");
	freq = read_cntfrq();
	ticks = freq / 1000;
	printf("CNTFRQ_EL0: %lu Hz\n", freq);
	report(freq == 100000000UL, "CNTFRQ_EL0 is 100 MHz");

	vtimer_irq = timer_vtimer_irq();
	report(vtimer_irq == 27, "virtual timer: INTID %d from the DT", vtimer_irq);
	version = gic_init();
	report(version == 2 || version == 3, "GICv%d from the DT", version);
	if (vtimer_irq < 0 || !version)
		return report_summary();

	t0 = read_cntvct();
	t1 = read_cntvct();
	report(t1 >= t0, "CNTVCT_EL0 does not go backwards (%lu, %lu)", t0, t1);

	gic_enable_defaults();
	gic_irq_set_priority(vtimer_irq, 0xa0);
	gic_irq_enable(vtimer_irq);
	install_irq_handler(irq_handler);

	/* TVAL: 1 ms from now */
	vtimer_set_ctl(0);
	fired = 0;
	t0 = read_cntvct();
	vtimer_set_tval((u32)ticks);
	vtimer_set_ctl(CNTV_CTL_ENABLE);
	report(!(vtimer_ctl() & CNTV_CTL_ISTATUS), "tval: not expired right after arming");
	ok = wait_for_timer(t0 + ticks, freq);
	t1 = read_cntvct();
	report(ok, "tval: the interrupt came");
	printf("tval: waited %lu ticks for %lu\n", t1 - t0, ticks);
	report(fired == 1 && last_irq == (u32)vtimer_irq, "tval: IRQ %u taken once", last_irq);
	report(ctl_in_handler == (CNTV_CTL_ENABLE | CNTV_CTL_ISTATUS),
	       "tval: handler saw CNTV_CTL 0x%lx (ENABLE|ISTATUS)", ctl_in_handler);
	report(fired_at - t0 >= ticks, "tval: fired after %lu ticks (>= %lu)", fired_at - t0, ticks);
	report(t1 - t0 >= ticks, "tval: counter advanced %lu ticks", t1 - t0);

	/* CVAL: an absolute deadline 1 ms ahead */
	vtimer_set_ctl(0);
	fired = 0;
	cval = read_cntvct() + ticks;
	vtimer_set_cval(cval);
	report(vtimer_cval() == cval, "cval: reads back 0x%lx", vtimer_cval());
	vtimer_set_ctl(CNTV_CTL_ENABLE);
	ok = wait_for_timer(cval, freq);
	t1 = read_cntvct();
	report(ok, "cval: the interrupt came");
	report(fired == 1 && last_irq == (u32)vtimer_irq, "cval: IRQ %u taken once", last_irq);
	report(fired_at >= cval && t1 >= cval, "cval: fired at %lu, deadline %lu", fired_at, cval);

	/* masked: the deadline passes, nothing is delivered */
	vtimer_set_ctl(0);
	fired = 0;
	vtimer_set_cval(read_cntvct());
	vtimer_set_ctl(CNTV_CTL_ENABLE | CNTV_CTL_IMASK);
	report(vtimer_ctl() == (CNTV_CTL_ENABLE | CNTV_CTL_IMASK | CNTV_CTL_ISTATUS),
	       "masked timer: CNTV_CTL 0x%lx (ISTATUS set under IMASK)", vtimer_ctl());
	/* a few exits, each a chance for the hypervisor to inject it */
	psci_invoke(PSCI_VERSION, 0, 0, 0);
	psci_invoke(PSCI_VERSION, 0, 0, 0);
	report(fired == 0 && others == 0, "masked timer: no interrupt");
	vtimer_set_ctl(0);
	return report_summary();
}
