/* The compiled hit path of the round-trip cache (core/memo.py, core/fasthit.py).
 *
 * Unicorn calls these hooks instead of the Python ones. Each builds the same key the
 * Python callback would, looks it up among the transitions Python recorded from the
 * current state, and on a hit does what the guest would see (a register, a memory
 * value, the virtual IRQ line, the PC) without entering Python. On a miss, on the
 * periodic check, or while the state is unknown, it calls the Python callback it stands
 * in for, with the same arguments: that callback runs the round trip for real and may
 * record it here (ws_add). Python settles the tallies later (ws_pull).
 *
 * Nothing here decides anything about the model: it only replays. Unicorn's functions
 * are reached through pointers Python hands over, so this library links to nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <unicorn/unicorn.h>

typedef uc_err (*reg_rw_t)(uc_engine *, int, void *);
typedef uc_err (*mem_write_t)(uc_engine *, uint64_t, const void *, uint64_t);
typedef void (*mem_cb_t)(uc_engine *, uc_mem_type, uint64_t, int, int64_t, void *);
typedef uint32_t (*sys_cb_t)(uc_engine *, uc_arm64_reg, const uc_arm64_cp_reg *, void *);
typedef void (*intr_cb_t)(uc_engine *, uint32_t, void *);
typedef uint64_t (*mmio_read_cb_t)(uc_engine *, uint64_t, unsigned, void *);
typedef void (*mmio_write_cb_t)(uc_engine *, uint64_t, unsigned, uint64_t, void *);

#define NKEY 6
#define EXCP_HVC 11

typedef struct {
    uint64_t addr, esr;
    int32_t is_read, rt, needs_pc, cached, stale;
} ws_site;

typedef struct {
    int64_t state, t;  /* t < 0: an empty slot */
    uint64_t k[NKEY];
} ws_slot;

typedef struct {
    int64_t to;
    uint64_t out, hits;
    int32_t has_out, vi;
} ws_trans;

typedef struct ws_cache ws_cache;

typedef struct {  /* a hook's user data: the cache, and the Python callback it stands in for */
    ws_cache *c;
    void *fallback;
    void *fallback_ud;
    int64_t site;  /* 1-based index into sites, for an MRS/MSR site hook */
} ws_hook;

struct ws_cache {
    int64_t cur;  /* the model's state; -1: unknown, every hook falls back */
    int64_t stale;  /* a hit happened since Python last pulled */
    int64_t vi;  /* HCR_EL2.VI as last written */
    int64_t until_check, check_every, probing;
    uint8_t *ram;
    uint64_t ram_base, ram_size;
    uc_arm64_cp_reg hcr[2];  /* HCR_EL2 without and with VI */
    uint64_t psci_args[16];
    int64_t n_psci_args;
    uint64_t hvc_esr;
    ws_site *sites;
    int64_t nsites;
    ws_slot *slots;
    uint64_t mask;
    ws_trans *trans;
    int64_t ntrans, cap, maxtrans;  /* the arrays hold cap transitions; they grow up to maxtrans */
    int64_t *pending;
    int64_t npending;
    reg_rw_t reg_read, reg_write;
    mem_write_t mem_write;
    ws_hook *hooks;
    int64_t nhooks;
};

static uint64_t slot_of(const ws_cache *c, int64_t state, const uint64_t *k) {
    uint64_t h = (uint64_t)state * 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < NKEY; i++) {
        h ^= k[i] + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    }
    h ^= h >> 31;
    return h & c->mask;
}

/* A run that records nothing should pay (almost) nothing for the table: it starts with
 * room for FIRST_CAP transitions and doubles as Python records more, up to maxtrans. */
#define FIRST_CAP 64

/* Make room for cap transitions, and a hash table of twice as many slots, rehashed. */
static int reserve(ws_cache *c, int64_t cap) {
    ws_trans *trans = realloc(c->trans, (size_t)cap * sizeof *trans);
    if (!trans)
        return 0;
    c->trans = trans;
    int64_t *pending = realloc(c->pending, (size_t)cap * sizeof *pending);
    if (!pending)
        return 0;
    c->pending = pending;
    uint64_t nslots = 1;
    while (nslots < (uint64_t)cap * 2)
        nslots <<= 1;
    ws_slot *slots = malloc(nslots * sizeof *slots);
    if (!slots)
        return 0;
    for (uint64_t i = 0; i < nslots; i++)
        slots[i].t = -1;
    ws_slot *old = c->slots;
    uint64_t nold = old ? c->mask + 1 : 0;
    c->slots = slots;
    c->mask = nslots - 1;
    c->cap = cap;
    for (uint64_t i = 0; i < nold; i++) {
        if (old[i].t < 0)
            continue;
        uint64_t j = slot_of(c, old[i].state, old[i].k);
        while (slots[j].t >= 0)
            j = (j + 1) & c->mask;
        slots[j] = old[i];
    }
    free(old);
    return 1;
}

ws_cache *ws_new(int64_t maxtrans, int64_t nsites, int64_t nhooks) {
    ws_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->sites = calloc((size_t)(nsites > 0 ? nsites : 1), sizeof *c->sites);
    c->hooks = calloc((size_t)(nhooks > 0 ? nhooks : 1), sizeof *c->hooks);
    if (!c->sites || !c->hooks || !reserve(c, maxtrans < FIRST_CAP ? maxtrans : FIRST_CAP)) {
        free(c->slots), free(c->trans), free(c->pending), free(c->sites), free(c->hooks), free(c);
        return NULL;
    }
    c->maxtrans = maxtrans;
    c->nsites = nsites;
    c->nhooks = nhooks;
    c->cur = -1;
    return c;
}

void ws_free(ws_cache *c) {
    if (c) {
        free(c->slots), free(c->trans), free(c->pending), free(c->sites), free(c->hooks);
        free(c);
    }
}

/* ---- set-up, from Python ------------------------------------------------------------ */
void ws_setup(ws_cache *c, void *reg_read, void *reg_write, void *mem_write, uint8_t *ram, uint64_t ram_base,
              uint64_t ram_size, uint64_t hcr_off, uint64_t hcr_on, uint64_t hvc_esr, int64_t check_every) {
    c->reg_read = (reg_rw_t)reg_read;
    c->reg_write = (reg_rw_t)reg_write;
    c->mem_write = (mem_write_t)mem_write;
    c->ram = ram, c->ram_base = ram_base, c->ram_size = ram_size;
    uint64_t hcr[2] = {hcr_off, hcr_on};
    for (int i = 0; i < 2; i++) {  /* HCR_EL2: op0 3, op1 4, CRn 1, CRm 1, op2 0 */
        c->hcr[i] = (uc_arm64_cp_reg){.crn = 1, .crm = 1, .op0 = 3, .op1 = 4, .op2 = 0, .val = hcr[i]};
    }
    c->hvc_esr = hvc_esr;
    c->check_every = c->until_check = check_every;
}

void ws_psci_takes_args(ws_cache *c, uint64_t x0) {
    if (c->n_psci_args < 16)
        c->psci_args[c->n_psci_args++] = x0;
}

void ws_site_set(ws_cache *c, int64_t i, uint64_t addr, uint64_t esr, int32_t is_read, int32_t rt, int32_t needs_pc,
                 int32_t cached) {
    c->sites[i] = (ws_site){.addr = addr, .esr = esr, .is_read = is_read, .rt = rt, .needs_pc = needs_pc,
                            .cached = cached};
}

void ws_site_stale(ws_cache *c, int64_t i) { c->sites[i].stale = 1; }

void *ws_hook_ud(ws_cache *c, int64_t i, void *fallback, void *fallback_ud, int64_t site) {
    c->hooks[i] = (ws_hook){.c = c, .fallback = fallback, .fallback_ud = fallback_ud, .site = site};
    return &c->hooks[i];
}

/* Where Python reads and writes the current state, the "a hit moved it" flag, the IRQ
 * line and the probing flag directly (a ctypes view costs no foreign call). */
int64_t *ws_field(ws_cache *c, int32_t which) {
    int64_t *fields[] = {&c->cur, &c->stale, &c->vi, &c->probing};
    return which >= 0 && which < 4 ? fields[which] : NULL;
}

/* ---- the transition table ----------------------------------------------------------- */

static int64_t lookup(const ws_cache *c, const uint64_t *k) {
    for (uint64_t i = slot_of(c, c->cur, k);; i = (i + 1) & c->mask) {
        const ws_slot *s = &c->slots[i];
        if (s->t < 0)
            return -1;
        if (s->state == c->cur && !memcmp(s->k, k, sizeof s->k))
            return s->t;
    }
}

/* Record a transition; its index, or -1 when the table is full. */
int64_t ws_add(ws_cache *c, int64_t state, uint64_t k0, uint64_t k1, uint64_t k2, uint64_t k3, uint64_t k4,
               uint64_t k5, int64_t to, uint64_t out, int32_t has_out, int32_t vi) {
    if (c->ntrans >= c->maxtrans)
        return -1;
    if (c->ntrans >= c->cap && !reserve(c, c->cap * 2 < c->maxtrans ? c->cap * 2 : c->maxtrans))
        return -1;  /* no memory: this one stays with Python */
    uint64_t k[NKEY] = {k0, k1, k2, k3, k4, k5};
    uint64_t i = slot_of(c, state, k);
    while (c->slots[i].t >= 0) {
        if (c->slots[i].state == state && !memcmp(c->slots[i].k, k, sizeof k))
            return -1;  /* recorded already */
        i = (i + 1) & c->mask;
    }
    int64_t t = c->ntrans++;
    c->trans[t] = (ws_trans){.to = to, .out = out, .has_out = has_out, .vi = vi};
    c->slots[i].state = state;
    memcpy(c->slots[i].k, k, sizeof k);
    c->slots[i].t = t;
    return t;
}

/* Hand Python the replays since its last pull: (index, hits) pairs; returns how many,
 * and the current state and whether any hit moved it. */
int64_t ws_pull(ws_cache *c, int64_t *idx, uint64_t *hits, int64_t *cur, int64_t *stale) {
    int64_t n = c->npending;
    for (int64_t i = 0; i < n; i++) {
        int64_t t = c->pending[i];
        idx[i] = t;
        hits[i] = c->trans[t].hits;
        c->trans[t].hits = 0;
    }
    c->npending = 0;
    *cur = c->cur;
    *stale = c->stale;
    c->stale = 0;
    return n;
}

/* ---- a hit -------------------------------------------------------------------------- */
static const ws_trans *hit(ws_cache *c, const uint64_t *k) {
    if (c->cur < 0 || c->probing)
        return NULL;
    int64_t t = lookup(c, k);
    if (t < 0)
        return NULL;
    if (--c->until_check <= 0) {  /* this one runs for real and is compared with its record */
        c->until_check = c->check_every;
        return NULL;
    }
    ws_trans *tr = &c->trans[t];
    if (!tr->hits)
        c->pending[c->npending++] = t;
    tr->hits++;
    c->cur = tr->to;
    c->stale = 1;
    return tr;
}

static void set_vi(uc_engine *uc, ws_cache *c, int32_t vi) {
    if (vi != c->vi) {
        c->vi = vi;
        c->reg_write(uc, UC_ARM64_REG_CP_REG, &c->hcr[vi]);
    }
}

/* ---- the hooks ---------------------------------------------------------------------- */
/* A stage-2 data abort (UC_HOOK_MEM_READ/WRITE on device memory): key (1, pc, word |
 * is_write << 32 | size << 40, address, written value). */
void ws_mmio(uc_engine *uc, uc_mem_type type, uint64_t addr, int size, int64_t value, void *ud) {
    ws_hook *x = ud;
    ws_cache *c = x->c;
    if (c->cur >= 0 && !c->probing) {
        uint64_t pc = 0;
        c->reg_read(uc, UC_ARM64_REG_PC, &pc);
        uint64_t off = pc - c->ram_base;
        if (off <= c->ram_size - 4) {
            uint32_t word;
            memcpy(&word, c->ram + off, 4);
            uint64_t is_write = type == UC_MEM_WRITE;
            uint64_t v = 0;
            if (is_write)
                v = size >= 8 ? (uint64_t)value : (uint64_t)value & ((1ULL << (8 * size)) - 1);
            uint64_t k[NKEY] = {1, pc, word | is_write << 32 | (uint64_t)size << 40, addr, v, 0};
            const ws_trans *t = hit(c, k);
            if (t) {
                if (!is_write && t->has_out)
                    c->mem_write(uc, addr, &t->out, (uint64_t)size);
                set_vi(uc, c, t->vi);
                return;
            }
        }
    }
    ((mem_cb_t)x->fallback)(uc, type, addr, size, value, x->fallback_ud);
}

/* An MRS/MSR at a scanned site: key (2, address, ESR, written value). */
uint32_t ws_sysreg(uc_engine *uc, uc_arm64_reg reg, const uc_arm64_cp_reg *cp, void *ud) {
    ws_hook *x = ud;
    ws_cache *c = x->c;
    const ws_site *s = &c->sites[x->site - 1];
    if (s->cached && !s->stale) {
        uint64_t k[NKEY] = {2, s->addr, s->esr, s->is_read ? 0 : cp->val, 0, 0};
        const ws_trans *t = hit(c, k);
        if (t) {
            if (s->is_read && s->rt != 31)
                c->reg_write(uc, reg, (void *)&t->out);
            set_vi(uc, c, t->vi);
            if (s->needs_pc) {
                uint64_t pc = s->addr + 4;
                c->reg_write(uc, UC_ARM64_REG_PC, &pc);
            }
            return 1;
        }
    }
    return ((sys_cb_t)x->fallback)(uc, reg, cp, x->fallback_ud);
}

/* An HVC (UC_HOOK_INTR): key (3, ESR, x0, x1, x2, x3), x1-x3 only for the PSCI calls
 * that take them (else 0, as the Python callback does). */
void ws_intr(uc_engine *uc, uint32_t intno, void *ud) {
    ws_hook *x = ud;
    ws_cache *c = x->c;
    if (intno == EXCP_HVC && c->cur >= 0 && !c->probing) {
        uint64_t a[4] = {0, 0, 0, 0};
        c->reg_read(uc, UC_ARM64_REG_X0, &a[0]);
        for (int64_t i = 0; i < c->n_psci_args; i++) {
            if (c->psci_args[i] == a[0]) {
                c->reg_read(uc, UC_ARM64_REG_X1, &a[1]);
                c->reg_read(uc, UC_ARM64_REG_X2, &a[2]);
                c->reg_read(uc, UC_ARM64_REG_X3, &a[3]);
                break;
            }
        }
        uint64_t k[NKEY] = {3, c->hvc_esr, a[0], a[1], a[2], a[3]};
        const ws_trans *t = hit(c, k);
        if (t) {
            if (t->has_out && t->out != a[0])
                c->reg_write(uc, UC_ARM64_REG_X0, (void *)&t->out);
            set_vi(uc, c, t->vi);
            return;
        }
    }
    ((intr_cb_t)x->fallback)(uc, intno, x->fallback_ud);
}

/* The GICv2 guest's GICC page (the GICV frame, no exit): key (4, offset, size) for a
 * read, (5, offset, size, value) for a write. */
uint64_t ws_gicv_read(uc_engine *uc, uint64_t offset, unsigned size, void *ud) {
    ws_hook *x = ud;
    ws_cache *c = x->c;
    uint64_t k[NKEY] = {4, offset, size, 0, 0, 0};
    const ws_trans *t = hit(c, k);
    if (t) {
        set_vi(uc, c, t->vi);
        return t->out;
    }
    return ((mmio_read_cb_t)x->fallback)(uc, offset, size, x->fallback_ud);
}

void ws_gicv_write(uc_engine *uc, uint64_t offset, unsigned size, uint64_t value, void *ud) {
    ws_hook *x = ud;
    ws_cache *c = x->c;
    uint64_t k[NKEY] = {5, offset, size, value, 0, 0};
    const ws_trans *t = hit(c, k);
    if (t) {
        set_vi(uc, c, t->vi);
        return;
    }
    ((mmio_write_cb_t)x->fallback)(uc, offset, size, value, x->fallback_ud);
}
