/*
 * boot: what the machine hands the guest at entry, read back through the
 * device tree: the DTB pointer, /memory, /chosen/bootargs (as argv), the
 * console's alias and address, the GIC and the PSCI conduit.
 */
#include "unit.h"

const char progname[] = "boot";

extern char _start[];

static void check_format(const char *want, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check_format(const char *want, const char *fmt, ...)
{
	char buf[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	report(!strcmp(buf, want), "printf \"%s\" gives \"%s\"", fmt, buf);
}

/* The runtime's own printf, through snprintf. */
static void check_printf(void)
{
	char small[4];

	check_format("42 -7 4294967295", "%d %d %u", 42, -7, 4294967295U);
	check_format("ff 0x00c0ffee 1234abcd5678", "%x 0x%08x %lx", 255, 0xc0ffee, 0x1234abcd5678UL);
	check_format("[  5][5  ][-0005]", "[%3d][%-3d][%05d]", 5, 5, -5);
	check_format("0x80080000 x %", "%p %c %%", (void *)0x80080000UL, 'x');
	check_format("[ab  ][cd]", "[%-4s][%s]", "ab", "cd");
	report(snprintf(small, sizeof(small), "%s", "truncated") == 9 && !strcmp(small, "tru"),
	       "snprintf truncates and returns the full length");
}

int main(int argc, char **argv)
{
	int node, i;
	u64 uart = 0, el = current_el();
	const char *method;
	u32 len;

	report_prefix("boot");
	printf("dtb: 0x%lx\n", dtb_phys);
	printf("memory: base 0x%lx size 0x%lx (%lu MiB)\n", mem_base, mem_size, mem_size >> 20);
	printf("bootargs: \"%s\"\n", bootargs);
	printf("argc: %d\n", argc);
	for (i = 0; i < argc; i++)
		printf("argv[%d]: %s\n", i, argv[i]);

	report(dt_magic() == FDT_MAGIC, "DT magic 0x%08x", dt_magic());
	report(fdt32((const u8 *)dtb_phys + 20) == 17, "DT version %u", fdt32((const u8 *)dtb_phys + 20));
	report(mem_base == 0x80000000UL, "memory base 0x%lx", mem_base);
	report(mem_size >= (16UL << 20) && !(mem_size & 0xfffff), "memory size %lu MiB", mem_size >> 20);
	report(dtb_phys >= mem_base && dtb_phys < mem_base + mem_size && !(dtb_phys & 0x1fffff),
	       "DTB inside RAM, 2 MiB aligned");
	report((u64)_start == 0x80080000UL, "image at 0x%lx", (u64)_start);
	report(argv[argc] == NULL && !strcmp(argv[0], progname), "argv[0] is the program, argv[argc] NULL");

	node = dt_stdout_node();
	if (node >= 0)
		dt_reg(node, 0, &uart, NULL);
	printf("uart: 0x%lx\n", uart);
	report(node >= 0 && dt_is_compatible(node, "ns16550a"), "stdout-path leads to an ns16550a");
	report(uart == uart_base() && uart == 0x1000000UL, "console at the DT's address 0x%lx", uart);
	report((readb(uart + 5) & 0x60) == 0x60, "LSR: transmitter empty");

	printf("CurrentEL: EL%lu\n", el);
	report(el == 1, "running at EL1");
	report((read_sysreg(daif) & 0x3c0) == 0x3c0, "DAIF masked at entry");
	report(!(read_sysreg(sctlr_el1) & 1), "MMU off");
	report((read_sysreg(mpidr_el1) & 0xff00ffffffUL) == 0 && nr_cpus >= 1,
	       "MPIDR 0x%lx, %d CPU node(s)", read_sysreg(mpidr_el1), nr_cpus);

	method = dt_getprop_string(dt_path_offset("/psci"), "method");
	report(method && !strcmp(method, "hvc"), "PSCI method %s", method ? method : "(none)");
	report(psci_invoke(PSCI_VERSION, 0, 0, 0) == 2, "PSCI version 0.2");
	report(psci_invoke(PSCI_FEATURES, PSCI_SYSTEM_OFF, 0, 0) == 0, "PSCI_FEATURES(SYSTEM_OFF) = 0");
	report(psci_invoke(PSCI_AFFINITY_INFO, read_sysreg(mpidr_el1) & 0xff00ffffffUL, 0, 0) == 0,
	       "AFFINITY_INFO: this CPU is on");

	report(psci_invoke(PSCI_CPU_ON, read_sysreg(mpidr_el1) & 0xff00ffffffUL, (u64)_start, 0) == (u64)-4,
	       "CPU_ON of this CPU: ALREADY_ON");

	gic_init();
	printf("gic: v%d dist 0x%lx cpu/redist 0x%lx\n", gic_version(), gic_dist_base(), gic_cpu_base());
	report(gic_version() == 2 || gic_version() == 3, "interrupt controller from the DT");
	report(gic_dist_base() == 0x3fff0000UL, "GIC distributor at 0x%lx", gic_dist_base());
	node = dt_find_compatible("arm,armv8-timer");
	report(dt_getprop(node, "interrupts", &len) && len == 48 && timer_vtimer_irq() == 27,
	       "virtual timer INTID %d", timer_vtimer_irq());

	check_printf();
	return report_summary();
}
