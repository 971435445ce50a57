// SPDX-License-Identifier: MIT
/*
 * The shared library's ABI: what libsluice.so exports is exactly what
 * lib/libsluice.map lists, every public function declared in include/ is in
 * the map, and nothing internal (sluice__*) leaks out.  make check runs
 * this against a build with BPF and one without (make BPF=0): both export
 * the same symbols, the map's, and only the first links libbpf.
 *
 * Needs SLUICE_OBJTREE (the build directory holding libsluice.so, set by
 * make check) and SLUICE_SRCTREE (the source tree, default ".").
 */
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sluice/liveness.h>

#include "harness.h"

#define NAMES_MAX	512

struct names {
	char *v[NAMES_MAX];
	char *version[NAMES_MAX];	/* map only: the node a name is in */
	size_t n;
};

static struct {
	char srctree[PATH_MAX];
	char lib[PATH_MAX];
	char why[PATH_MAX + 64];	/* set when the tests cannot run */
	void *dl;
	struct names map;		/* lib/libsluice.map, global: names */
	struct names nodes;		/* its version nodes */
	struct names decls;		/* sluice_* functions in include/ */
	struct names inlined;		/* public ones only static inline there */
	struct names internal;		/* sluice_* functions in lib/internal.h */
	char *elf;			/* libsluice.so, read whole */
	size_t elf_len;
} abi;

static bool names_has(const struct names *n, const char *s)
{
	size_t i;

	for (i = 0; i < n->n; i++)
		if (!strcmp(n->v[i], s))
			return true;
	return false;
}

static void names_add(struct names *n, const char *s, size_t len,
		      const char *version)
{
	if (n->n == NAMES_MAX)
		return;
	n->v[n->n] = strndup(s, len);
	n->version[n->n] = version ? strdup(version) : NULL;
	n->n++;
}

static void names_free(struct names *n)
{
	size_t i;

	for (i = 0; i < n->n; i++) {
		free(n->v[i]);
		free(n->version[i]);
	}
	n->n = 0;
}

static char *read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	FILE *f;

	f = fopen(path, "re");
	if (!f)
		return NULL;
	if (fstat(fileno(f), &st) || st.st_size < 0) {
		fclose(f);
		return NULL;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf && fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (!buf)
		return NULL;
	buf[st.st_size] = '\0';
	if (len)
		*len = (size_t)st.st_size;
	return buf;
}

/* Blank out C comments (both kinds) in place, keeping newlines. */
static void strip_comments(char *s)
{
	char *p = s;

	while (*p) {
		if (p[0] == '/' && p[1] == '*') {
			for (; *p && !(p[0] == '*' && p[1] == '/'); p++)
				if (*p != '\n')
					*p = ' ';
			if (*p) {
				p[0] = p[1] = ' ';
				p += 2;
			}
		} else if (p[0] == '/' && p[1] == '/') {
			for (; *p && *p != '\n'; p++)
				*p = ' ';
		} else {
			p++;
		}
	}
}

static bool is_ident(char c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/*
 * A version script: NODE { global: a; b; local: *; } [PARENT];
 * Names in global: sections go to abi.map with their node.
 */
static int parse_map(const char *path)
{
	enum { OUTSIDE, NODE_LOCAL, NODE_GLOBAL } where = OUTSIDE;
	char node[128] = "", *text, *p, *start;
	size_t len;

	text = read_file(path, NULL);
	if (!text)
		return -errno;
	strip_comments(text);
	for (p = text; *p;) {
		if (isspace((unsigned char)*p) || *p == ';') {
			p++;
			continue;
		}
		if (*p == '{') {
			where = NODE_LOCAL;
			p++;
			continue;
		}
		if (*p == '}') {
			where = OUTSIDE;
			p++;
			continue;
		}
		start = p;
		while (*p && (is_ident(*p) || *p == '.' || *p == '*'))
			p++;
		len = (size_t)(p - start);
		if (!len) {
			p++;
			continue;
		}
		if (*p == ':') {
			p++;
			where = len == 6 && !strncmp(start, "global", 6) ?
				NODE_GLOBAL : NODE_LOCAL;
		} else if (where == OUTSIDE) {
			/* A node's name, or after '}' its parent's. */
			snprintf(node, sizeof(node), "%.*s", (int)len, start);
			if (!names_has(&abi.nodes, node))
				names_add(&abi.nodes, start, len, NULL);
		} else if (where == NODE_GLOBAL) {
			names_add(&abi.map, start, len, node);
		}
	}
	free(text);
	return 0;
}

/* A top-level statement: a function declaration if "sluice_name(" is in it. */
static void header_statement(const char *stmt, struct names *out)
{
	const char *q = stmt, *e;
	struct names *to = out;

	while (isspace((unsigned char)*q))
		q++;
	if (!strncmp(q, "typedef", 7))
		return;
	/* static inline: only sluice__ helpers may be, for C alone. */
	if (!strncmp(q, "static", 6)) {
		if (out != &abi.decls)
			return;
		to = &abi.inlined;
	}
	for (; (q = strstr(q, "sluice_")); q++) {
		if (q > stmt && is_ident(q[-1]))
			continue;
		for (e = q; is_ident(*e); e++)
			;
		while (isspace((unsigned char)*e))
			e++;
		if (*e != '(')
			continue;
		for (e = q; is_ident(*e); e++)
			;
		if (to == &abi.inlined && q[7] == '_')
			return;		/* an internal helper */
		names_add(to, q, (size_t)(e - q), NULL);
		return;
	}
}

/*
 * Functions a header declares: top-level statements, not static or
 * typedef, whose first "sluice_name(" is the declarator.  Preprocessor
 * lines and #ifdef __cplusplus blocks (extern "C" { }) are skipped.
 */
static void parse_header(const char *path, struct names *out)
{
	bool in_cplusplus = false, continued = false;
	char *text, *line, *next, *stmt, *p;
	size_t n = 0, cap;
	int depth = 0;

	text = read_file(path, &cap);
	if (!text)
		return;
	strip_comments(text);
	stmt = malloc(cap + 2);
	if (!stmt) {
		free(text);
		return;
	}
	for (line = text; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (continued || *p == '#') {
			if (!continued && !strncmp(p, "#ifdef __cplusplus", 18))
				in_cplusplus = true;
			else if (!continued && !strncmp(p, "#endif", 6))
				in_cplusplus = false;
			continued = *line && line[strlen(line) - 1] == '\\';
			continue;
		}
		if (in_cplusplus)
			continue;
		for (; *p; p++) {
			if (depth) {
				depth += (*p == '{') - (*p == '}');
			} else if (*p == ';' || *p == '{') {
				stmt[n] = '\0';
				header_statement(stmt, out);
				n = 0;
				depth = *p == '{';
			} else {
				stmt[n++] = *p;
			}
		}
		if (!depth)
			stmt[n++] = ' ';
	}
	free(stmt);
	free(text);
}

static void parse_headers(void)
{
	char dir[PATH_MAX + 32], path[PATH_MAX * 2];
	struct dirent *de;
	size_t len;
	DIR *d;

	snprintf(path, sizeof(path), "%s/lib/internal.h", abi.srctree);
	parse_header(path, &abi.internal);
	snprintf(path, sizeof(path), "%s/include/sluice.h", abi.srctree);
	parse_header(path, &abi.decls);
	snprintf(dir, sizeof(dir), "%s/include/sluice", abi.srctree);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		len = strlen(de->d_name);
		if (len < 3 || strcmp(de->d_name + len - 2, ".h"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		parse_header(path, &abi.decls);
	}
	closedir(d);
}

static int group_setup(void **state)
{
	const char *obj = getenv("SLUICE_OBJTREE");
	const char *src = getenv("SLUICE_SRCTREE");
	char map[PATH_MAX + 32];
	struct stat st;
	int err;

	(void)state;
	if (!obj || !*obj) {
		snprintf(abi.why, sizeof(abi.why),
			 "SLUICE_OBJTREE is not set: no libsluice.so to check");
		return 0;
	}
	snprintf(abi.srctree, sizeof(abi.srctree), "%s", src && *src ? src : ".");
	snprintf(abi.lib, sizeof(abi.lib), "%s/libsluice.so", obj);
	snprintf(map, sizeof(map), "%s/lib/libsluice.map", abi.srctree);
	if (stat(abi.lib, &st)) {
		snprintf(abi.why, sizeof(abi.why), "%s: %s", abi.lib, strerror(errno));
		return 0;
	}
	err = parse_map(map);
	if (err) {
		snprintf(abi.why, sizeof(abi.why), "%s: %s (set SLUICE_SRCTREE)",
			 map, strerror(-err));
		return 0;
	}
	parse_headers();
	abi.elf = read_file(abi.lib, &abi.elf_len);
	abi.dl = dlopen(abi.lib, RTLD_NOW | RTLD_LOCAL);
	if (!abi.dl)
		snprintf(abi.why, sizeof(abi.why), "dlopen: %s", dlerror());
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (abi.dl)
		dlclose(abi.dl);
	free(abi.elf);
	names_free(&abi.map);
	names_free(&abi.nodes);
	names_free(&abi.decls);
	names_free(&abi.inlined);
	names_free(&abi.internal);
	return 0;
}

static void need_abi(void)
{
	if (abi.why[0])
		h_skip("%s", abi.why);
}

/* ---------------------------------------------------------------- ELF */

/* Section @type of the library, and the string table it links to. */
static const Elf64_Shdr *elf_section(uint32_t type, const char **strtab)
{
	const Elf64_Ehdr *eh = (const void *)abi.elf;
	const Elf64_Shdr *sh;
	size_t i;

	assert_non_null(abi.elf);
	assert_true(abi.elf_len >= sizeof(*eh));
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
	assert_true(eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(*sh) <= abi.elf_len);
	sh = (const void *)(abi.elf + eh->e_shoff);
	for (i = 0; i < eh->e_shnum; i++) {
		if (sh[i].sh_type != type)
			continue;
		assert_true(sh[i].sh_link < eh->e_shnum);
		assert_true(sh[i].sh_offset + sh[i].sh_size <= abi.elf_len);
		*strtab = abi.elf + sh[sh[i].sh_link].sh_offset;
		return &sh[i];
	}
	return NULL;
}

/* ---------------------------------------------------------------- tests */

/*
 * Public names only: sluice_*, no wildcards.  (A sluice__ helper may be
 * listed when a public inline function calls it; the header test below
 * holds it to being declared in include/.)
 */
static void test_the_map_lists_public_symbols_only(void **state)
{
	size_t i, bad = 0;

	(void)state;
	need_abi();
	assert_true(abi.map.n > 0);
	for (i = 0; i < abi.map.n; i++) {
		if (!strncmp(abi.map.v[i], "sluice_", 7) &&
		    !strpbrk(abi.map.v[i], "*?["))
			continue;
		print_error("map exports \"%s\": not a sluice_ name\n",
			    abi.map.v[i]);
		bad++;
	}
	assert_int_equal(bad, 0);
}

static void test_every_symbol_in_the_map_resolves_at_its_version(void **state)
{
	size_t i, bad = 0;

	(void)state;
	need_abi();
	for (i = 0; i < abi.map.n; i++) {
		if (!dlsym(abi.dl, abi.map.v[i])) {
			print_error("%s is in the map but not in %s\n",
				    abi.map.v[i], abi.lib);
			bad++;
		} else if (!dlvsym(abi.dl, abi.map.v[i], abi.map.version[i])) {
			print_error("%s does not resolve at version %s\n",
				    abi.map.v[i], abi.map.version[i]);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void test_internal_symbols_do_not_resolve(void **state)
{
	size_t i, bad = 0;

	(void)state;
	need_abi();
	/* Sanity: the handle does resolve what it should, and the scan works. */
	assert_non_null(dlsym(abi.dl, "sluice_region_create"));
	assert_true(names_has(&abi.internal, "sluice__fnv1a"));
	for (i = 0; i < abi.internal.n; i++) {
		if (!dlsym(abi.dl, abi.internal.v[i]))
			continue;
		print_error("internal %s is exported\n", abi.internal.v[i]);
		bad++;
	}
	assert_int_equal(bad, 0);
}

static void test_library_exports_nothing_outside_the_map(void **state)
{
	const Elf64_Sym *sym;
	const Elf64_Shdr *sh;
	const char *strtab, *name;
	size_t i, n, defined = 0, bad = 0;

	(void)state;
	need_abi();
	sh = elf_section(SHT_DYNSYM, &strtab);
	assert_non_null(sh);
	sym = (const void *)(abi.elf + sh->sh_offset);
	n = sh->sh_size / sizeof(*sym);
	for (i = 1; i < n; i++) {
		if (sym[i].st_shndx == SHN_UNDEF ||
		    (ELF64_ST_BIND(sym[i].st_info) != STB_GLOBAL &&
		     ELF64_ST_BIND(sym[i].st_info) != STB_WEAK))
			continue;
		name = strtab + sym[i].st_name;
		/* The linker's own symbols for version nodes. */
		if (sym[i].st_shndx == SHN_ABS && names_has(&abi.nodes, name))
			continue;
		if (!names_has(&abi.map, name)) {
			print_error("%s exports %s, which the map does not list\n",
				    abi.lib, name);
			bad++;
		}
		defined++;
	}
	assert_int_equal(bad, 0);
	/* And everything the map lists is there (no duplicates in it). */
	assert_int_equal(defined, abi.map.n);
}

static void test_library_has_a_versioned_soname(void **state)
{
	const Elf64_Shdr *sh;
	const Elf64_Dyn *dyn;
	const char *strtab, *soname = NULL;
	char path[PATH_MAX + 64];
	struct stat st;
	size_t i, n;

	(void)state;
	need_abi();
	sh = elf_section(SHT_DYNAMIC, &strtab);
	assert_non_null(sh);
	dyn = (const void *)(abi.elf + sh->sh_offset);
	n = sh->sh_size / sizeof(*dyn);
	for (i = 0; i < n && dyn[i].d_tag != DT_NULL; i++)
		if (dyn[i].d_tag == DT_SONAME)
			soname = strtab + dyn[i].d_un.d_val;
	assert_non_null(soname);
	assert_int_equal(strncmp(soname, "libsluice.so.", 13), 0);
	assert_true(isdigit((unsigned char)soname[13]));
	/* The soname is there to be found next to the library. */
	snprintf(path, sizeof(path), "%.*s/%s",
		 (int)(strrchr(abi.lib, '/') - abi.lib), abi.lib, soname);
	assert_int_equal(stat(path, &st), 0);
}

/*
 * Was the library built with BPF?  Asked of the library itself: an AUTO
 * monitor's reason for taking pidfd is "built without BPF" only in a
 * build without it (Documentation/liveness.md).  Returns 1 or 0, or -1
 * with @why if no monitor could be made to ask.
 */
static int built_with_bpf(char *why, size_t len)
{
	/* The library's own, not those this program is linked with. */
	__typeof__(sluice_liveness_create) *create =
		dlsym(abi.dl, "sluice_liveness_create");
	__typeof__(sluice_liveness_why) *reason = dlsym(abi.dl, "sluice_liveness_why");
	__typeof__(sluice_liveness_destroy) *destroy =
		dlsym(abi.dl, "sluice_liveness_destroy");
	SLUICE_OPTS(sluice_liveness_opts, o, .flags = SLUICE_LIVENESS_NO_PIN);
	struct sluice_liveness *m = NULL;
	int err, with;

	assert_non_null(create);
	assert_non_null(reason);
	assert_non_null(destroy);
	err = create(&o, &m);
	if (err) {
		snprintf(why, len, "no liveness monitor to ask: %s", strerror(-err));
		return -1;
	}
	with = strcmp(reason(m), "built without BPF") != 0;
	destroy(m);
	return with;
}

static void test_a_library_built_without_bpf_needs_no_libbpf(void **state)
{
	const Elf64_Shdr *sh;
	const Elf64_Dyn *dyn;
	const char *strtab;
	char why[128];
	bool needs = false;
	size_t i, n;
	int with;

	(void)state;
	need_abi();
	with = built_with_bpf(why, sizeof(why));
	if (with < 0)
		h_skip("%s", why);
	sh = elf_section(SHT_DYNAMIC, &strtab);
	assert_non_null(sh);
	dyn = (const void *)(abi.elf + sh->sh_offset);
	n = sh->sh_size / sizeof(*dyn);
	for (i = 0; i < n && dyn[i].d_tag != DT_NULL; i++)
		if (dyn[i].d_tag == DT_NEEDED &&
		    !strncmp(strtab + dyn[i].d_un.d_val, "libbpf.so", 9))
			needs = true;
	print_message("    built %s BPF; %s libbpf\n", with ? "with" : "without",
		      needs ? "needs" : "does not need");
	/* With BPF it must link libbpf: so a wrong answer above fails too. */
	assert_int_equal(needs, with);
}

static void test_every_public_function_is_in_the_map(void **state)
{
	size_t i, bad = 0;

	(void)state;
	need_abi();
	/* The scan finds the functions we know are there. */
	assert_true(names_has(&abi.decls, "sluice_region_create"));
	assert_true(names_has(&abi.decls, "sluice_backing_str"));
	assert_false(names_has(&abi.decls, "sluice_region_fn"));
	for (i = 0; i < abi.decls.n; i++) {
		if (names_has(&abi.map, abi.decls.v[i]))
			continue;
		print_error("%s is declared in include/ but not in the map\n",
			    abi.decls.v[i]);
		bad++;
	}
	assert_int_equal(bad, 0);
}

static void test_every_symbol_in_the_map_is_declared_in_a_header(void **state)
{
	size_t i, bad = 0;

	(void)state;
	need_abi();
	for (i = 0; i < abi.map.n; i++) {
		if (names_has(&abi.decls, abi.map.v[i]))
			continue;
		print_error("%s is in the map but declared in no public header\n",
			    abi.map.v[i]);
		bad++;
	}
	assert_int_equal(bad, 0);
}

/*
 * Every public call is exported, inline ones too (out of line, under their
 * own names, from lib/spsc_ffi.c): a header may make a public call static
 * inline only through SLUICE_SPSC_INLINE, which the library compiles out
 * of line.
 */
static void test_every_public_inline_call_is_also_exported(void **state)
{
	size_t i;

	(void)state;
	need_abi();
	/* The inline one-packet calls are among the exported declarations. */
	assert_true(names_has(&abi.decls, "sluice_spsc_try_send"));
	assert_true(names_has(&abi.map, "sluice_spsc_recv"));
	assert_non_null(dlsym(abi.dl, "sluice_spsc_try_recv"));
	for (i = 0; i < abi.inlined.n; i++)
		print_error("%s is static inline only: nothing exports it\n", abi.inlined.v[i]);
	assert_int_equal(abi.inlined.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_the_map_lists_public_symbols_only),
		cmocka_unit_test(test_every_symbol_in_the_map_resolves_at_its_version),
		cmocka_unit_test(test_internal_symbols_do_not_resolve),
		cmocka_unit_test(test_library_exports_nothing_outside_the_map),
		cmocka_unit_test(test_library_has_a_versioned_soname),
		cmocka_unit_test(test_a_library_built_without_bpf_needs_no_libbpf),
		cmocka_unit_test(test_every_public_function_is_in_the_map),
		cmocka_unit_test(test_every_symbol_in_the_map_is_declared_in_a_header),
		cmocka_unit_test(test_every_public_inline_call_is_also_exported),
	};

	return cmocka_run_group_tests_name("abi", tests, group_setup,
					   group_teardown);
}
