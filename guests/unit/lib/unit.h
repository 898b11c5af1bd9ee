/*
 * unit.h: the whole interface of the guests/unit runtime.
 *
 * A bare-metal runtime for the worldswitch machine (kvmtool's arm64 layout):
 * start-up, exception vectors, a device-tree reader, console output, PSCI,
 * the GICv2/GICv3 guest interfaces and the virtual timer. Everything runs at
 * EL1 with the MMU off; data accesses are then Device memory, so the code is
 * built with -mstrict-align and device registers are touched only through the
 * accessors below (one plain load or store each, so the hypervisor gets a
 * valid syndrome).
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BIT(n) (1UL << (n))

/* ---- system registers and barriers ---------------------------------------- */

#define read_sysreg(r) ({                                        \
	u64 __val;                                               \
	asm volatile("mrs %0, " #r : "=r" (__val));              \
	__val;                                                   \
})
#define write_sysreg(v, r) do {                                  \
	u64 __val = (u64)(v);                                    \
	asm volatile("msr " #r ", %x0" : : "rZ" (__val));        \
} while (0)

#define isb()      asm volatile("isb" : : : "memory")
#define dsb(opt)   asm volatile("dsb " #opt : : : "memory")
#define wfi()      asm volatile("wfi" : : : "memory")
#define barrier()  asm volatile("" : : : "memory")

static inline void irq_enable(void)  { asm volatile("msr daifclr, #2" : : : "memory"); }
static inline void irq_disable(void) { asm volatile("msr daifset, #2" : : : "memory"); }

/* ---- device registers: one plain load or store, never a pair or writeback -- */

static inline void writeb(u8 v, u64 addr)
{
	asm volatile("strb %w0, [%1]" : : "rZ" (v), "r" (addr) : "memory");
}
static inline void writel(u32 v, u64 addr)
{
	asm volatile("str %w0, [%1]" : : "rZ" (v), "r" (addr) : "memory");
}
static inline u8 readb(u64 addr)
{
	u32 v;
	asm volatile("ldrb %w0, [%1]" : "=r" (v) : "r" (addr) : "memory");
	return (u8)v;
}
static inline u32 readl(u64 addr)
{
	u32 v;
	asm volatile("ldr %w0, [%1]" : "=r" (v) : "r" (addr) : "memory");
	return v;
}
static inline u64 readq(u64 addr)
{
	u64 v;
	asm volatile("ldr %0, [%1]" : "=r" (v) : "r" (addr) : "memory");
	return v;
}

/* ---- libc bits ------------------------------------------------------------- */

void *memset(void *s, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);
char *strchr(const char *s, int c);
void *memchr(const void *s, int c, size_t n);

/* ---- console and formatted output ------------------------------------------ */

void uart_set_base(u64 base);
u64 uart_base(void);
void putchar_unit(char c);
void puts_unit(const char *s);
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* ---- results, like kvm-unit-tests ------------------------------------------ */

void report_prefix(const char *prefix);
void report(bool pass, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void report_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int report_summary(void);
void exit(int code) __attribute__((noreturn));
void abort(void) __attribute__((noreturn));

/* ---- what start-up found ---------------------------------------------------- */

#define MAX_ARGS 16
extern u64 dtb_phys;          /* x0 at entry */
extern u64 mem_base, mem_size;/* /memory reg */
extern const char *bootargs;  /* /chosen/bootargs, "" when absent */
extern int nr_cpus;           /* nodes under /cpus */
extern const char progname[]; /* each test defines it */

/* ---- flattened device tree ------------------------------------------------- */

#define FDT_MAGIC 0xd00dfeedU

u32 fdt32(const void *p);
int dt_init(const void *blob);           /* 0, or -1 for a bad header */
u32 dt_magic(void);
int dt_path_offset(const char *path);    /* a path, or an alias name; -1 if absent */
int dt_find_compatible(const char *compat);
bool dt_is_compatible(int node, const char *compat);
const void *dt_getprop(int node, const char *name, u32 *lenp);
const char *dt_getprop_string(int node, const char *name);
int dt_reg(int node, int index, u64 *addr, u64 *size);
int dt_count_children(int node);
int dt_stdout_node(void);                /* /chosen/stdout-path, through /aliases */

/* ---- exceptions ------------------------------------------------------------ */

/* The frame the vector stubs push (vectors.S keeps the same layout). */
struct pt_regs {
	u64 regs[31];
	u64 sp;       /* the SP the exception interrupted */
	u64 pc;       /* ELR_EL1: where eret goes */
	u64 pstate;   /* SPSR_EL1: what eret restores */
	u64 esr;
	u64 far;
};

/* Vector groups, by the 0x200 block of VBAR_EL1 they sit in. */
enum vector_group { EL1_SP0, EL1_SPX, EL0_64, EL0_32, NR_GROUPS };

#define ESR_EC(esr)      (((esr) >> 26) & 0x3f)
#define ESR_IL           BIT(25)
#define ESR_ISS(esr)     ((esr) & 0x1ffffff)
#define EC_UNKNOWN       0x00
#define EC_SVC64         0x15
#define EC_HVC64         0x16
#define EC_SYS64         0x18

typedef void (*sync_handler_t)(struct pt_regs *regs, u64 esr);
typedef void (*irq_handler_t)(struct pt_regs *regs);

extern char vectors[];
void install_sync_handler(enum vector_group group, unsigned int ec, sync_handler_t fn);
void install_irq_handler(irq_handler_t fn);
/* Run fn at EL0t (SP = sp_top) until it returns; its return value comes back. */
u64 run_el0(u64 (*fn)(void), u64 sp_top);
u64 current_el(void);

/* ---- PSCI ------------------------------------------------------------------ */

#define PSCI_VERSION        0x84000000U
#define PSCI_CPU_OFF        0x84000002U
#define PSCI_AFFINITY_INFO  0xc4000004U
#define PSCI_CPU_ON         0xc4000003U
#define PSCI_SYSTEM_OFF     0x84000008U
#define PSCI_SYSTEM_RESET   0x84000009U
#define PSCI_FEATURES       0x8400000aU

u64 psci_invoke(u64 fn, u64 a1, u64 a2, u64 a3);
void psci_system_off(void) __attribute__((noreturn));

/* ---- GIC ------------------------------------------------------------------- */

#define GIC_SPURIOUS 1023

int gic_init(void);                  /* from the DT: 2, 3, or 0 (none found) */
int gic_version(void);
u64 gic_dist_base(void);
u64 gic_cpu_base(void);              /* GICv2 CPU interface, or the GICv3 redistributor */
void gic_enable_defaults(void);      /* distributor + CPU interface on, PMR 0xf0 */
void gic_irq_enable(unsigned int irq);
void gic_irq_set_priority(unsigned int irq, u8 prio);
void gic_send_sgi_self(unsigned int sgi);
u32 gic_read_iar(void);
void gic_write_eoir(u32 iar);
u64 gic_icc_sre(void);                /* GICv3: ICC_SRE_EL1; 0 on a GICv2 */
static inline unsigned int gic_iar_irqnr(u32 iar) { return iar & 0x3ff; }

#define GICD_CTLR      0x000
#define GICD_TYPER     0x004
#define GICD_IIDR      0x008
#define GICD_ISENABLER 0x100
#define GICD_IPRIORITYR 0x400
#define GICD_SGIR      0xf00

/* ---- generic timer ---------------------------------------------------------- */

#define CNTV_CTL_ENABLE  BIT(0)
#define CNTV_CTL_IMASK   BIT(1)
#define CNTV_CTL_ISTATUS BIT(2)

static inline u64 read_cntvct(void)
{
	u64 v;
	isb();
	v = read_sysreg(cntvct_el0);
	isb();
	return v;
}
static inline u64 read_cntfrq(void) { return read_sysreg(cntfrq_el0); }
static inline u64 vtimer_ctl(void) { return read_sysreg(cntv_ctl_el0); }
static inline void vtimer_set_ctl(u64 v) { write_sysreg(v, cntv_ctl_el0); isb(); }
static inline void vtimer_set_tval(u32 v) { write_sysreg(v, cntv_tval_el0); isb(); }
static inline void vtimer_set_cval(u64 v) { write_sysreg(v, cntv_cval_el0); isb(); }
static inline u64 vtimer_cval(void) { return read_sysreg(cntv_cval_el0); }
/* The virtual timer's interrupt ID from /timer (third PPI), or -1. */
int timer_vtimer_irq(void);

#endif
