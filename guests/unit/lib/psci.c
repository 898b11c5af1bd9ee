/* psci.c: PSCI 0.2 calls, over the conduit /psci's "method" names (hvc or smc). */
#include "unit.h"

static bool use_smc;

void psci_set_conduit(bool smc);

void psci_set_conduit(bool smc)
{
	use_smc = smc;
}

u64 psci_invoke(u64 fn, u64 a1, u64 a2, u64 a3)
{
	register u64 x0 asm("x0") = fn;
	register u64 x1 asm("x1") = a1;
	register u64 x2 asm("x2") = a2;
	register u64 x3 asm("x3") = a3;

	if (use_smc)
		asm volatile("smc #0" : "+r" (x0), "+r" (x1), "+r" (x2), "+r" (x3) : : "memory");
	else
		asm volatile("hvc #0" : "+r" (x0), "+r" (x1), "+r" (x2), "+r" (x3) : : "memory");
	return x0;
}

void psci_system_off(void)
{
	psci_invoke(PSCI_SYSTEM_OFF, 0, 0, 0);
	/* the VM has ended; nothing should run past this point */
	for (;;)
		barrier();
}
