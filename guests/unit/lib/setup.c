/*
 * setup.c: what start.S calls before main(): read the device tree for the
 * console, the memory, the command line and the PSCI conduit, and build argv.
 */
#include "unit.h"

void psci_set_conduit(bool smc);
void setup(const void *fdt);

u64 dtb_phys;
u64 mem_base, mem_size;
const char *bootargs = "";
int nr_cpus;
int __argc;
char *__argv[MAX_ARGS + 1];

static char args[256];

static void split_args(void)
{
	size_t len = strlen(bootargs);
	char *p = args;

	if (len >= sizeof(args))
		len = sizeof(args) - 1;
	memcpy(args, bootargs, len);
	args[len] = '\0';
	__argv[0] = (char *)progname;
	__argc = 1;
	while (*p && __argc < MAX_ARGS) {
		while (*p == ' ')
			*p++ = '\0';
		if (!*p)
			break;
		__argv[__argc++] = p;
		while (*p && *p != ' ')
			p++;
	}
	__argv[__argc] = NULL;
}

void setup(const void *fdt)
{
	const char *method;
	u64 base;
	int node;

	dtb_phys = (u64)fdt;
	if (dt_init(fdt)) {
		/* the console is still at its default address: say why, then stop */
		printf("setup: no device tree at %p (magic 0x%x)\n", fdt, fdt ? fdt32(fdt) : 0);
		abort();
	}
	node = dt_stdout_node();
	if (node >= 0 && !dt_reg(node, 0, &base, NULL))
		uart_set_base(base);
	dt_reg(dt_path_offset("/memory"), 0, &mem_base, &mem_size);
	bootargs = dt_getprop_string(dt_path_offset("/chosen"), "bootargs");
	if (!bootargs)
		bootargs = "";
	nr_cpus = dt_count_children(dt_path_offset("/cpus"));
	method = dt_getprop_string(dt_path_offset("/psci"), "method");
	psci_set_conduit(method && !strcmp(method, "smc"));
	split_args();
}
