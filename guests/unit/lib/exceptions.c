/* exceptions.c: what the vector stubs call, and the handler tables. */
#include "unit.h"

extern char el0_resume[];

#define SVC_EL0_RETURN 0xffff
#define PSTATE_EL1H_MASKED 0x3c5

static sync_handler_t sync_handlers[NR_GROUPS][64];
static irq_handler_t irq_handler;

static const char *const vector_names[16] = {
	"el1t sync", "el1t irq", "el1t fiq", "el1t serror",
	"el1h sync", "el1h irq", "el1h fiq", "el1h serror",
	"el0 sync (a64)", "el0 irq (a64)", "el0 fiq (a64)", "el0 serror (a64)",
	"el0 sync (a32)", "el0 irq (a32)", "el0 fiq (a32)", "el0 serror (a32)",
};

void install_sync_handler(enum vector_group group, unsigned int ec, sync_handler_t fn)
{
	if (group < NR_GROUPS && ec < 64)
		sync_handlers[group][ec] = fn;
}

void install_irq_handler(irq_handler_t fn)
{
	irq_handler = fn;
}

u64 current_el(void)
{
	return (read_sysreg(CurrentEL) >> 2) & 3;
}

static void unexpected(unsigned int index, struct pt_regs *regs)
{
	report(false, "unexpected exception: %s, ESR 0x%lx, ELR 0x%lx, FAR 0x%lx, SPSR 0x%lx",
	       vector_names[index & 15], regs->esr, regs->pc, regs->far, regs->pstate);
	report_summary();
	exit(1);
}

void do_exception(unsigned int index, struct pt_regs *regs);

void do_exception(unsigned int index, struct pt_regs *regs)
{
	unsigned int group = index >> 2, kind = index & 3;

	if (kind == 0) {
		unsigned int ec = ESR_EC(regs->esr);

		/* the way back from run_el0 */
		if (group == EL0_64 && ec == EC_SVC64 && (regs->esr & 0xffff) == SVC_EL0_RETURN) {
			regs->pc = (u64)el0_resume;
			regs->pstate = PSTATE_EL1H_MASKED;
			return;
		}
		if (sync_handlers[group][ec]) {
			sync_handlers[group][ec](regs, regs->esr);
			return;
		}
	} else if (kind == 1 && irq_handler) {
		irq_handler(regs);
		return;
	}
	unexpected(index, regs);
}
