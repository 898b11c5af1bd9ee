/*
 * exitcost: the cost of the exits kvm-unit-tests' micro-bench times, in
 * counter ticks (CNTVCT_EL0, with an isb on each side of every read). Each
 * test runs N times; the average over the N timed sections is printed as
 * "<name>: <ticks> ticks/iteration".
 *
 *   hvc             hvc #0 with x0 = PSCI_VERSION (answered by KVM itself)
 *   mmio_read_user  a read of an address no device claims (KVM_EXIT_MMIO to
 *                   the VMM, which reads 0)
 *   mmio_read_vgic  a read of GICD_IIDR (emulated by the in-kernel vgic)
 *   eoi             the EOI of an acknowledged self-IPI (GICC_EOIR or
 *                   ICC_EOIR1_EL1; neither traps)
 *   ipi             a self-IPI round trip: send SGI 0, wait for the handler
 */
#include "unit.h"

const char progname[] = "exitcost";

#define N 64
#define UNCLAIMED_MMIO 0x0a000008UL
#define SGI 0

static volatile int ipis;

static void irq_handler(struct pt_regs *regs)
{
	u32 iar = gic_read_iar();

	(void)regs;
	if (gic_iar_irqnr(iar) == GIC_SPURIOUS)
		return;
	if (gic_iar_irqnr(iar) == SGI)
		ipis++;
	gic_write_eoir(iar);
}

static bool hvc_prep(void) { return true; }
static void hvc_exec(void)
{
	psci_invoke(PSCI_VERSION, 0, 0, 0);
}

static bool mmio_user_prep(void) { return true; }
static void mmio_user_exec(void)
{
	readl(UNCLAIMED_MMIO);
}

static bool mmio_vgic_prep(void) { return true; }
static void mmio_vgic_exec(void)
{
	readl(gic_dist_base() + GICD_IIDR);
}

/* eoi: the SGI is sent and acknowledged outside the timed section */
static u32 eoi_iar;
static bool eoi_prep(void)
{
	int tries;

	gic_send_sgi_self(SGI);
	for (tries = 0; tries < 16; tries++) {
		eoi_iar = gic_read_iar();
		if (gic_iar_irqnr(eoi_iar) == SGI)
			return true;
	}
	return false;
}
static void eoi_exec(void)
{
	gic_write_eoir(eoi_iar);
}

static bool ipi_prep(void)
{
	irq_enable();
	return true;
}
static void ipi_exec(void)
{
	int before = ipis;

	gic_send_sgi_self(SGI);
	while (ipis == before)
		;
}
static void ipi_post(void)
{
	irq_disable();
}

struct test {
	const char *name;
	bool (*prep)(void);
	void (*exec)(void);
	void (*post)(void);
};

static const struct test tests[] = {
	{ "hvc", hvc_prep, hvc_exec, NULL },
	{ "mmio_read_user", mmio_user_prep, mmio_user_exec, NULL },
	{ "mmio_read_vgic", mmio_vgic_prep, mmio_vgic_exec, NULL },
	{ "eoi", eoi_prep, eoi_exec, NULL },
	{ "ipi", ipi_prep, ipi_exec, ipi_post },
};

static void run(const struct test *t)
{
	u64 total = 0, t0, t1;
	int i;

	for (i = 0; i < N; i++) {
		if (!t->prep()) {
			report(false, "%s: set-up failed at iteration %d", t->name, i);
			return;
		}
		t0 = read_cntvct();
		t->exec();
		t1 = read_cntvct();
		if (t->post)
			t->post();
		total += t1 - t0;
	}
	printf("%s: %lu ticks/iteration\n", t->name, total / N);
	report(total / N > 0, "%s", t->name);
}

int main(void)
{
	unsigned int i;
	int version = gic_init();

	report_prefix("exitcost");
	printf("gic: v%d, %d iterations per test, CNTFRQ %lu Hz\n", version, N, read_cntfrq());
	if (!version) {
		report(false, "no GIC in the DT");
		return report_summary();
	}
	gic_enable_defaults();
	gic_irq_set_priority(SGI, 0xa0);
	gic_irq_enable(SGI);
	install_irq_handler(irq_handler);

	report(psci_invoke(PSCI_VERSION, 0, 0, 0) == 2, "PSCI_VERSION answers 2");
	for (i = 0; i < ARRAY_SIZE(tests); i++)
		run(&tests[i]);
	report(ipis == N, "every IPI handled (%d)", ipis);
	return report_summary();
}
