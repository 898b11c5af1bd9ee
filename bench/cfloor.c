/* cfloor: the floor hypervisor of bench/floor.py (FloorVM), written in C against libunicorn.
 *
 * It does what FloorVM does, hook for hook, so that it counts the same exits; only the
 * language of the hooks differs. What is left is the cost Unicorn itself cannot avoid.
 *
 *     cfloor IMAGE GIC [TIMEOUT_US] < sites
 *
 * The sites come from floor.py's capstone scan (so this file needs no disassembler),
 * one per line on stdin:
 *     s ADDR_HEX OP0 OP1 CRN CRM OP2 IS_READ    an MRS (IS_READ 1) or MSR (register) site
 *     w ADDR_HEX                                a WFI site
 *
 * Output, one line of JSON on stdout:
 *     {"seconds": S, "exits": N, "traps": T, "ok": true|false, "error": "..."}
 * "seconds" covers uc_emu_start only (CLOCK_MONOTONIC, which is what time.perf_counter
 * reads on Linux). Exit status 0 if ok, 1 if the guest did not finish properly, 2 on
 * bad usage or input.
 */
#define _POSIX_C_SOURCE 199309L
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unicorn/unicorn.h>

/* kvmtool's arm64 layout, which the guests hard-code. */
#define RAM_BASE 0x80000000ULL
#define RAM_SIZE 0x4000000ULL
#define LOAD_ADDR 0x80080000ULL
#define GICD_BASE 0x3FFF0000ULL
#define GICD_SIZE 0x10000ULL
#define GICC_BASE 0x3FFD0000ULL
#define GICC_SIZE 0x20000ULL
#define GICR_BASE 0x3FBF0000ULL
#define GICR_SIZE 0x20000ULL
#define GICD_SGIR 0xF00
#define GICC_IAR 0x0C
#define SPURIOUS 0x3FF

#define EXCP_HVC 11 /* with SCR_EL3.HCE set, hvc reaches UC_HOOK_INTR as this, PC past it */
#define PSCI_VERSION 0x84000000ULL
#define PSCI_SYSTEM_RESET 0x84000009ULL

/* System registers by (op0, op1, CRn, CRm, op2), packed into one int to compare. */
#define KEY(op0, op1, crn, crm, op2) (((op0) << 14) | ((op1) << 11) | ((crn) << 7) | ((crm) << 3) | (op2))
#define ID_AA64PFR0 KEY(3, 0, 0, 4, 0)
#define PMSELR KEY(3, 3, 9, 12, 5)
#define ICC_PMR KEY(3, 0, 4, 6, 0)
#define ICC_SGI1R KEY(3, 0, 12, 11, 5)
#define ICC_IAR1 KEY(3, 0, 12, 12, 0)
#define ICC_EOIR1 KEY(3, 0, 12, 12, 1)
#define ICC_SRE KEY(3, 0, 12, 12, 5)
#define ICC_IGRPEN1 KEY(3, 0, 12, 12, 7)

enum read_kind { READ_NONE, READ_ACK, READ_CONST };

/* One MRS/MSR site, specialised before the run so the hook does no dispatch on the key. */
typedef struct {
    uint64_t addr;
    int key, is_read;
    uint64_t next_pc; /* nonzero: the hook moves PC here (Unicorn lacks every ICC_* register) */
    int is_exit;      /* traps to KVM on hardware: PMSELR, ICC_SGI1R */
    int sends_sgi;
    enum read_kind read;
    uint64_t value; /* READ_CONST */
    char what[64];  /* for the error message */
} Site;

/* One VM per process, so its state is global: the hooks reach it without user_data. */
static struct {
    uc_engine *uc;
    int gic;
    uint64_t exits; /* traps KVM would see as a VM exit: hvc, trapped sysregs, GICD/GICR MMIO, wfi */
    uint64_t traps; /* every hook call, including what a real vCPU interface would serve */
    int pending;    /* the one SGI the guests send to themselves */
    int reset;
    int failed;
    char error[256];
} vm;

static void fail(const char *fmt, ...) {
    /* A hook cannot return an error into uc_emu_start: record the first, stop, report after. */
    if (!vm.failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(vm.error, sizeof vm.error, fmt, ap);
        va_end(ap);
        vm.failed = 1;
    }
    uc_emu_stop(vm.uc);
}

/* IAR / ICC_IAR1: the pending SGI0 (INTID 0) once, else spurious. */
static uint64_t ack(void) {
    if (vm.pending) {
        vm.pending = 0;
        return 0;
    }
    return SPURIOUS;
}

/* ---- the hooks (the hot path) ------------------------------------------------------------ */
static void on_intr(uc_engine *uc, uint32_t intno, void *ud) {
    (void)ud;
    vm.traps++;
    if (intno != EXCP_HVC) {
        fail("exception %u: the floor only handles hvc", intno);
        return;
    }
    vm.exits++;
    uint64_t x0;
    uc_reg_read(uc, UC_ARM64_REG_X0, &x0);
    if (x0 == PSCI_VERSION) {
        uint64_t v = 2; /* PSCI 0.2 */
        uc_reg_write(uc, UC_ARM64_REG_X0, &v);
    } else if (x0 == PSCI_SYSTEM_RESET) {
        vm.reset = 1;
        uc_emu_stop(uc);
    } else {
        fail("hvc with x0 = 0x%" PRIx64 ": not a PSCI call the floor knows", x0);
    }
}

static uint32_t on_sysreg(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp, void *ud) {
    (void)cp;
    const Site *s = ud;
    vm.traps++;
    if (s->is_exit)
        vm.exits++;
    if (s->read == READ_ACK) {
        uint64_t v = ack();
        uc_reg_write(uc, reg, &v); /* reg is the destination Xt */
    } else if (s->read == READ_CONST) {
        uc_reg_write(uc, reg, &s->value);
    } else if (s->sends_sgi) {
        vm.pending = 1; /* SGI0 to self: the only SGI the guest sends */
    }
    if (s->next_pc)
        uc_reg_write(uc, UC_ARM64_REG_PC, &s->next_pc);
    return 1; /* skip the instruction */
}

/* Unknown registers fail only if the guest really executes them (as in floor.py: no trap counted). */
static uint32_t on_unknown_sysreg(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp, void *ud) {
    (void)uc, (void)reg, (void)cp;
    fail("%s: not handled by the floor", ((const Site *)ud)->what);
    return 1;
}

static void on_wfi(uc_engine *uc, uint64_t addr, uint32_t size, void *ud) {
    (void)size, (void)ud;
    vm.traps++;
    vm.exits++;
    if (!vm.pending) { /* nothing will ever wake it: a real hypervisor would hang here */
        fail("wfi at 0x%" PRIx64 " with nothing pending", addr);
        return;
    }
    uint64_t pc = addr + 4; /* no AArch64 WFI hook in 2.1.4: skip it by hand */
    uc_reg_write(uc, UC_ARM64_REG_PC, &pc);
}

/* GICD and GICR accesses are stage-2 faults on hardware (exits); GICC is the GICV page (no exit). */
static uint64_t gicd_read(uc_engine *uc, uint64_t offset, unsigned size, void *ud) {
    (void)uc, (void)offset, (void)size, (void)ud;
    vm.traps++;
    vm.exits++;
    return 0;
}

static void gicd_write(uc_engine *uc, uint64_t offset, unsigned size, uint64_t value, void *ud) {
    (void)uc, (void)size, (void)value, (void)ud;
    vm.traps++;
    vm.exits++;
    if (offset == GICD_SGIR)
        vm.pending = 1;
}

static uint64_t gicc_read(uc_engine *uc, uint64_t offset, unsigned size, void *ud) {
    (void)uc, (void)size, (void)ud;
    vm.traps++;
    return offset == GICC_IAR ? ack() : 0;
}

static void gicc_write(uc_engine *uc, uint64_t offset, unsigned size, uint64_t value, void *ud) {
    (void)uc, (void)offset, (void)size, (void)value, (void)ud;
    vm.traps++; /* CTLR, PMR, EOIR: nothing to keep */
}

static uint64_t gicr_read(uc_engine *uc, uint64_t offset, unsigned size, void *ud) {
    (void)uc, (void)offset, (void)size, (void)ud;
    vm.traps++;
    vm.exits++;
    return 0;
}

static void gicr_write(uc_engine *uc, uint64_t offset, unsigned size, uint64_t value, void *ud) {
    (void)uc, (void)offset, (void)size, (void)value, (void)ud;
    vm.traps++;
    vm.exits++;
}

/* ---- set-up ------------------------------------------------------------------------------- */
static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", *s);
        else
            putchar(*s);
    }
    putchar('"');
}

static int report(double seconds, int ok, const char *error) {
    printf("{\"seconds\": %.9f, \"exits\": %" PRIu64 ", \"traps\": %" PRIu64 ", \"ok\": %s, \"error\": ", seconds,
           vm.exits, vm.traps, ok ? "true" : "false");
    json_string(error);
    printf("}\n");
    return ok ? 0 : 1;
}

static void check(uc_err err, const char *what) {
    /* Set-up errors are the harness's, not the guest's: report them and stop. */
    if (err) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: %s", what, uc_strerror(err));
        report(0.0, 0, msg);
        exit(2);
    }
}

static uint64_t cp_read(int op0, int op1, int crn, int crm, int op2) {
    uc_arm64_cp_reg cp = {.crn = crn, .crm = crm, .op0 = op0, .op1 = op1, .op2 = op2};
    check(uc_reg_read(vm.uc, UC_ARM64_REG_CP_REG, &cp), "cp_reg read");
    return cp.val;
}

static void cp_write(int op0, int op1, int crn, int crm, int op2, uint64_t val) {
    uc_arm64_cp_reg cp = {.crn = crn, .crm = crm, .op0 = op0, .op1 = op1, .op2 = op2, .val = val};
    check(uc_reg_write(vm.uc, UC_ARM64_REG_CP_REG, &cp), "cp_reg write");
}

/* Mirror of FloorVM._sysreg_handler: decide once what the hook for this site does. Returns
 * 0 if the floor does not handle the site (its hook then fails if the guest executes it). */
static int specialise(Site *s, uint64_t pfr0) {
    int k = s->key;
    s->next_pc = (k == ICC_PMR || k == ICC_SGI1R || k == ICC_IAR1 || k == ICC_EOIR1 || k == ICC_SRE ||
                  k == ICC_IGRPEN1)
                     ? s->addr + 4
                     : 0;
    s->is_exit = k == PMSELR || k == ICC_SGI1R;
    s->sends_sgi = k == ICC_SGI1R && !s->is_read;
    s->read = READ_NONE;
    if (s->is_read && k == ICC_IAR1) {
        s->read = READ_ACK;
    } else if (s->is_read && (k == ID_AA64PFR0 || k == PMSELR || k == ICC_SRE)) {
        s->read = READ_CONST;
        s->value = k == ID_AA64PFR0 ? pfr0 : k == PMSELR ? 0 : (vm.gic == 3 ? 1 : 0);
    }
    /* The other writes the guests make are dropped: nothing reads them back. */
    int dropped = !s->is_read && (k == ICC_SGI1R || k == PMSELR || k == ICC_PMR || k == ICC_EOIR1 ||
                                  k == ICC_IGRPEN1 || k == ICC_SRE);
    return s->read != READ_NONE || dropped;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s IMAGE GIC [TIMEOUT_US] < sites\n", argv[0]);
        return 2;
    }
    vm.gic = atoi(argv[2]);
    uint64_t timeout_us = argc == 4 ? strtoull(argv[3], NULL, 10) : 0;

    /* The image. */
    static unsigned char code[RAM_SIZE - (LOAD_ADDR - RAM_BASE)];
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    size_t len = fread(code, 1, sizeof code, f);
    int too_big = fgetc(f) != EOF;
    fclose(f);
    if (len == 0 || too_big) {
        fprintf(stderr, "%s: empty, or larger than the RAM above the load address\n", argv[1]);
        return 2;
    }

    /* The sites. */
    Site *sites = NULL;
    size_t nsites = 0, cap = 0;
    uint64_t *wfis = NULL;
    size_t nwfis = 0, wcap = 0;
    char kind;
    while (scanf(" %c", &kind) == 1) {
        uint64_t addr;
        if (kind == 's') {
            int op0, op1, crn, crm, op2, is_read;
            if (scanf("%" SCNx64 " %d %d %d %d %d %d", &addr, &op0, &op1, &crn, &crm, &op2, &is_read) != 7)
                break;
            if (nsites == cap && !(sites = realloc(sites, (cap = cap ? 2 * cap : 16) * sizeof *sites)))
                return 2;
            Site *s = &sites[nsites++];
            *s = (Site){.addr = addr, .key = KEY(op0, op1, crn, crm, op2), .is_read = is_read != 0};
            snprintf(s->what, sizeof s->what, "%s s%d_%d_c%d_c%d_%d at 0x%" PRIx64, is_read ? "mrs" : "msr", op0,
                     op1, crn, crm, op2, addr);
        } else if (kind == 'w') {
            if (scanf("%" SCNx64, &addr) != 1)
                break;
            if (nwfis == wcap && !(wfis = realloc(wfis, (wcap = wcap ? 2 * wcap : 16) * sizeof *wfis)))
                return 2;
            wfis[nwfis++] = addr;
        } else {
            break;
        }
    }
    if (!feof(stdin)) {
        fprintf(stderr, "bad site line on stdin (expected 's ADDR OP0 OP1 CRN CRM OP2 IS_READ' or 'w ADDR')\n");
        return 2;
    }

    /* The VM, in FloorVM._build's order. */
    check(uc_open(UC_ARCH_ARM64, UC_MODE_ARM, &vm.uc), "uc_open");
    check(uc_mem_map(vm.uc, RAM_BASE, RAM_SIZE, UC_PROT_ALL), "uc_mem_map");
    check(uc_mem_write(vm.uc, LOAD_ADDR, code, len), "uc_mem_write");
    /* SCR_EL3.HCE: hvc becomes intno 11 with PC past it, not a UDEF whose hook must move PC. */
    cp_write(3, 6, 1, 1, 0, cp_read(3, 6, 1, 1, 0) | (1ULL << 8));
    uint64_t pfr0 = (cp_read(3, 0, 0, 4, 0) & ~(0xFULL << 24)) | ((uint64_t)(vm.gic == 3 ? 1 : 0) << 24);
    uc_hook hh;
    check(uc_hook_add(vm.uc, &hh, UC_HOOK_INTR, (void *)on_intr, NULL, 1, 0), "hook intr");
    for (size_t i = 0; i < nsites; i++) {
        Site *s = &sites[i];
        void *cb = specialise(s, pfr0) ? (void *)on_sysreg : (void *)on_unknown_sysreg;
        check(uc_hook_add(vm.uc, &hh, UC_HOOK_INSN, cb, s, s->addr, s->addr,
                          s->is_read ? UC_ARM64_INS_MRS : UC_ARM64_INS_MSR),
              "hook sysreg");
    }
    for (size_t i = 0; i < nwfis; i++)
        check(uc_hook_add(vm.uc, &hh, UC_HOOK_CODE, (void *)on_wfi, NULL, wfis[i], wfis[i]), "hook wfi");
    check(uc_mmio_map(vm.uc, GICD_BASE, GICD_SIZE, gicd_read, NULL, gicd_write, NULL), "mmio GICD");
    check(uc_mmio_map(vm.uc, GICC_BASE, GICC_SIZE, gicc_read, NULL, gicc_write, NULL), "mmio GICC");
    check(uc_mmio_map(vm.uc, GICR_BASE, GICR_SIZE, gicr_read, NULL, gicr_write, NULL), "mmio GICR");

    /* The run. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uc_err err = uc_emu_start(vm.uc, LOAD_ADDR, 1ULL << 63, timeout_us, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;

    /* Did the guest really finish? The same checks, in the same order, as FloorVM.run. */
    char msg[320];
    uint64_t pc = 0, x19 = 0;
    uc_reg_read(vm.uc, UC_ARM64_REG_PC, &pc);
    uc_reg_read(vm.uc, UC_ARM64_REG_X19, &x19);
    int ok = 0;
    if (vm.failed)
        snprintf(msg, sizeof msg, "%s", vm.error);
    else if (err)
        snprintf(msg, sizeof msg, "emulation stopped at pc 0x%" PRIx64 ": %s", pc, uc_strerror(err));
    else if (!vm.reset)
        snprintf(msg, sizeof msg, "no SYSTEM_RESET (timeout?) at pc 0x%" PRIx64, pc);
    else if (x19 != 0)
        snprintf(msg, sizeof msg, "SYSTEM_RESET with the loop counter x19 = %" PRIu64 ", not 0", x19);
    else
        ok = 1, msg[0] = '\0';
    int rc = report(seconds, ok, msg);
    uc_close(vm.uc);
    free(sites);
    free(wfis);
    return rc;
}
