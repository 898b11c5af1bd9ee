/*
 * spinwait: waiting for the virtual timer by spinning, not in WFI, as
 * kvm-unit-tests' micro-bench does in timer_10ms:
 *
 *	while (!fired && tries--)
 *		cpu_relax();
 *
 * The loop reads no clock and never exits, so only the guest's own
 * instructions move simulated time: a 10 ms wait is 2*10^7 of them at 2 GHz,
 * unless the machine skips the loop's rounds (core/spin.py). Skipped or run,
 * the guest must see the same thing, so this guest prints what the loop
 * leaves: how many rounds it ran (tries left) and the ticks it waited.
 *
 *   1. armed "us=N" microseconds ahead (default 10000): the interrupt ends
 *      the spin, with tries to spare;
 *   2. armed as far ahead, with tries = 1000: the counter ends the spin
 *      first, long before the deadline, and the interrupt comes later, in
 *      WFI. A machine that skipped past the counter's end would see the
 *      interrupt end the spin instead.
 *
 * With "smp" (and --cpus 2) vCPU 1 is started first, into micro-bench's
 * idle loop for secondaries (yield, yield, b), so that both vCPUs spin.
 */
#include "unit.h"

const char progname[] = "spinwait";

static int vtimer_irq;
static volatile int fired;

static void irq_handler(struct pt_regs *regs)
{
	u32 iar = gic_read_iar();

	(void)regs;
	if (gic_iar_irqnr(iar) == (unsigned int)vtimer_irq) {
		vtimer_set_ctl(CNTV_CTL_ENABLE | CNTV_CTL_IMASK);
		fired++;
	}
	gic_write_eoir(iar);
}

/* vCPU 1's whole life: no stack, no runtime, IRQs masked */
extern char secondary_spin[];
asm(".pushsection .text\n.globl secondary_spin\nsecondary_spin:\n"
    "1:\tyield\n\tyield\n\tb 1b\n.popsection");

static bool has_arg(int argc, char **argv, const char *arg)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], arg) == 0)
			return true;
	return false;
}

static u64 parse_us(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "us=", 3) == 0) {
			u64 v = 0;

			for (const char *p = argv[i] + 3; *p >= '0' && *p <= '9'; p++)
				v = v * 10 + (u64)(*p - '0');
			return v;
		}
	}
	return 10000;
}

/* Arm the timer `ticks` ahead and spin with `tries`: the tries left (the
 * loop's final value, ~0u once they ran out) and the ticks spent */
static u32 spin(u64 ticks, u32 tries, u64 *waited)
{
	u64 t0;

	fired = 0;
	t0 = read_cntvct();
	vtimer_set_cval(t0 + ticks);
	vtimer_set_ctl(CNTV_CTL_ENABLE);
	isb();
	while (!fired && tries--)
		asm volatile("yield" : : : "memory");
	*waited = read_cntvct() - t0;
	return tries;
}

int main(int argc, char **argv)
{
	u64 us = parse_us(argc, argv), ticks, waited;
	u32 left;

	report_prefix("spinwait");
	if (has_arg(argc, argv, "smp"))
		report(psci_invoke(PSCI_CPU_ON, 1, (u64)secondary_spin, 0) == 0, "vCPU 1 started");
	vtimer_irq = timer_vtimer_irq();
	if (vtimer_irq < 0 || !gic_init()) {
		report(false, "a timer and a GIC in the DT");
		return report_summary();
	}
	ticks = read_cntfrq() / 1000000 * us;
	gic_enable_defaults();
	gic_irq_enable(vtimer_irq);
	install_irq_handler(irq_handler);
	irq_enable();

	left = spin(ticks, 1u << 28, &waited);
	printf("irq: %lu us, tries left %u, waited %lu ticks\n", us, left, waited);
	report(fired == 1 && left != ~0u, "the interrupt ended the spin");
	report(waited >= ticks, "after the deadline (%lu >= %lu ticks)", waited, ticks);

	left = spin(ticks, 1000, &waited);
	printf("tries: %lu us, tries left %u, fired %d, waited %lu ticks\n", us, left, fired, waited);
	report(left == ~0u && !fired, "the counter ended the spin, before the deadline");
	while (!fired)
		wfi();
	report(fired == 1, "then the interrupt came");
	return report_summary();
}
