/*
 * dt.c: a reader for the flattened device tree (DTB v17) kvmtool passes in x0.
 *
 * Nodes are named by the offset of their FDT_BEGIN_NODE token in the structure
 * block. Everything is read a byte at a time, big-endian, so no access depends
 * on the blob's alignment. Paths may leave out a node's unit address
 * ("/memory" finds "memory@80000000"); a path that does not start with '/' is
 * an alias looked up in /aliases.
 */
#include "unit.h"

#define FDT_BEGIN_NODE 1
#define FDT_END_NODE   2
#define FDT_PROP       3
#define FDT_NOP        4
#define FDT_END        9
#define MAX_DEPTH      16

static const u8 *blob;
static const u8 *structs;
static const char *strings;
static u32 struct_size;

u32 fdt32(const void *p)
{
	const u8 *b = p;

	return ((u32)b[0] << 24) | ((u32)b[1] << 16) | ((u32)b[2] << 8) | b[3];
}

static u32 align4(u32 n)
{
	return (n + 3) & ~3U;
}

u32 dt_magic(void)
{
	return blob ? fdt32(blob) : 0;
}

int dt_init(const void *b)
{
	const u8 *h = b;

	blob = NULL;
	if (!h || fdt32(h) != FDT_MAGIC || fdt32(h + 20) < 16)	/* magic, version */
		return -1;
	blob = h;
	structs = h + fdt32(h + 8);
	strings = (const char *)h + fdt32(h + 12);
	struct_size = fdt32(h + 36);
	return 0;
}

static u32 tag(int off)
{
	return (u32)off < struct_size ? fdt32(structs + off) : FDT_END;
}

/* The offset of the token after the one at off. */
static int next(int off)
{
	switch (tag(off)) {
	case FDT_BEGIN_NODE:
		return off + 4 + (int)align4(strlen((const char *)structs + off + 4) + 1);
	case FDT_PROP:
		return off + 12 + (int)align4(fdt32(structs + off + 4));
	case FDT_END_NODE:
	case FDT_NOP:
		return off + 4;
	default:
		return (int)struct_size;
	}
}

static const char *node_name(int node)
{
	return (const char *)structs + node + 4;
}

static int root(void)
{
	int off = 0;

	if (!blob)
		return -1;
	while (tag(off) == FDT_NOP)
		off += 4;
	return tag(off) == FDT_BEGIN_NODE ? off : -1;
}

/* The token after a node's whole subtree. */
static int skip_node(int node)
{
	int depth = 0, off = node;

	do {
		u32 t = tag(off);

		if (t == FDT_BEGIN_NODE)
			depth++;
		else if (t == FDT_END_NODE)
			depth--;
		else if (t == FDT_END)
			return (int)struct_size;
		off = next(off);
	} while (depth > 0);
	return off;
}

/* The first child of node (or -1), and the sibling after child (or -1). */
static int first_child(int node)
{
	int off = next(node);

	while (tag(off) == FDT_PROP || tag(off) == FDT_NOP)
		off = next(off);
	return tag(off) == FDT_BEGIN_NODE ? off : -1;
}

static int next_sibling(int child)
{
	int off = skip_node(child);

	while (tag(off) == FDT_NOP)
		off = next(off);
	return tag(off) == FDT_BEGIN_NODE ? off : -1;
}

static bool name_matches(const char *name, const char *want, size_t len)
{
	if (strncmp(name, want, len))
		return false;
	/* "memory" also names "memory@80000000" */
	return name[len] == '\0' || (name[len] == '@' && !memchr(want, '@', len));
}

const void *dt_getprop(int node, const char *name, u32 *lenp)
{
	int off;

	if (node < 0 || tag(node) != FDT_BEGIN_NODE)
		return NULL;
	for (off = next(node); tag(off) == FDT_PROP || tag(off) == FDT_NOP; off = next(off)) {
		if (tag(off) != FDT_PROP)
			continue;
		if (!strcmp(strings + fdt32(structs + off + 8), name)) {
			if (lenp)
				*lenp = fdt32(structs + off + 4);
			return structs + off + 12;
		}
	}
	return NULL;
}

const char *dt_getprop_string(int node, const char *name)
{
	u32 len;
	const char *s = dt_getprop(node, name, &len);

	return s && len && s[len - 1] == '\0' ? s : NULL;
}

int dt_path_offset(const char *path)
{
	int node = root();

	if (node < 0 || !path)
		return -1;
	if (path[0] != '/') {
		const char *alias = dt_getprop_string(dt_path_offset("/aliases"), path);

		return alias && alias[0] == '/' ? dt_path_offset(alias) : -1;
	}
	while (*path) {
		const char *end;
		size_t len;
		int child;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		end = strchr(path, '/');
		len = end ? (size_t)(end - path) : strlen(path);
		for (child = first_child(node); child >= 0; child = next_sibling(child))
			if (name_matches(node_name(child), path, len))
				break;
		if (child < 0)
			return -1;
		node = child;
		path += len;
	}
	return node;
}

bool dt_is_compatible(int node, const char *compat)
{
	u32 len, pos = 0;
	const char *list = dt_getprop(node, "compatible", &len);

	if (!list)
		return false;
	while (pos < len) {
		if (!strcmp(list + pos, compat))
			return true;
		pos += (u32)strlen(list + pos) + 1;
	}
	return false;
}

int dt_find_compatible(const char *compat)
{
	int off;

	if (root() < 0)
		return -1;
	for (off = root(); tag(off) != FDT_END && off < (int)struct_size; off = next(off))
		if (tag(off) == FDT_BEGIN_NODE && dt_is_compatible(off, compat))
			return off;
	return -1;
}

int dt_count_children(int node)
{
	int n = 0, child;

	if (node < 0)
		return -1;
	for (child = first_child(node); child >= 0; child = next_sibling(child))
		n++;
	return n;
}

/* The parent of node, found by walking down from the root. */
static int parent_of(int node)
{
	int stack[MAX_DEPTH], depth = -1, off;

	for (off = root(); off >= 0 && tag(off) != FDT_END; off = next(off)) {
		u32 t = tag(off);

		if (t == FDT_BEGIN_NODE) {
			if (off == node)
				return depth >= 0 ? stack[depth] : -1;
			if (++depth >= MAX_DEPTH)
				return -1;
			stack[depth] = off;
		} else if (t == FDT_END_NODE) {
			depth--;
		}
	}
	return -1;
}

static u32 cells(int node, const char *name, u32 dflt)
{
	u32 len;
	const void *p = dt_getprop(node, name, &len);

	return p && len == 4 ? fdt32(p) : dflt;
}

static u64 read_cells(const u8 *p, u32 n)
{
	u64 v = 0;

	while (n--) {
		v = (v << 32) | fdt32(p);
		p += 4;
	}
	return v;
}

int dt_reg(int node, int index, u64 *addr, u64 *size)
{
	int parent = parent_of(node);
	u32 ac, sc, len, entry;
	const u8 *reg;

	if (parent < 0)
		return -1;
	ac = cells(parent, "#address-cells", 2);
	sc = cells(parent, "#size-cells", 1);
	if (ac > 2 || sc > 2)
		return -1;
	reg = dt_getprop(node, "reg", &len);
	entry = 4 * (ac + sc);
	if (!reg || index < 0 || (u32)(index + 1) * entry > len)
		return -1;
	reg += (u32)index * entry;
	if (addr)
		*addr = read_cells(reg, ac);
	if (size)
		*size = read_cells(reg + 4 * ac, sc);
	return 0;
}

int dt_stdout_node(void)
{
	const char *path = dt_getprop_string(dt_path_offset("/chosen"), "stdout-path");
	char buf[64];
	size_t len;

	if (!path)
		return -1;
	/* "serial0:115200n8": the options after ':' are not part of the name */
	len = strchr(path, ':') ? (size_t)(strchr(path, ':') - path) : strlen(path);
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, path, len);
	buf[len] = '\0';
	return dt_path_offset(buf);
}
