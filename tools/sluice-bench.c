// SPDX-License-Identifier: MIT
/*
 * sluice-bench: measure sluice against its alternatives and print ratios.
 *
 *	sluice-bench [--reps N] [--size SIZE] [--cpu N] [--json] [SUITE...]
 *
 * Each suite fills one table (see bench.h): a row per metric, a column per
 * thing compared, the median of --reps repetitions in each cell with its
 * spread, and ratio columns that say how many times better the subject
 * column is.  The benchmark reports; it never decides that a number is good
 * enough, so it exits 0 whatever the timings are.  Exit status: 0 when every
 * suite ran (skipped columns included), 1 when a suite failed, 2 for a
 * usage error, 130 when interrupted.
 *
 * Adding a suite: write "static int suite_NAME(const struct bench_opts *,
 * struct bench_table *)" and add a line to suites[].
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <sluice.h>

#include "bench.h"
#include "internal.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION	"0.1.0"
#endif

#define PROG		"sluice-bench"
#define DEFAULT_REPS	5
#define DEFAULT_WARMUP	1

enum {
	EXIT_OK		= 0,
	EXIT_FAIL	= 1,
	EXIT_USAGE	= 2,
	EXIT_INTR	= 130,
};

static void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Progress for a person watching a terminal; silent otherwise. */
static void __attribute__((format(printf, 1, 2))) progress(const char *fmt, ...)
{
	va_list ap;

	if (!isatty(STDERR_FILENO))
		return;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static void progress_done(void)
{
	if (isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
}

/* ================================================================ region */

/*
 * Random access over a whole region, 4 KiB pages against 2 MiB pages.
 * Every access goes to a random 64-byte line anywhere in the region, so
 * with 4 KiB pages nearly every one misses the TLB (a 1 GiB region is
 * 262144 pages; the TLB holds a few thousand), while 512 huge pages nearly
 * fit.  The data misses the caches either way: what differs is the page
 * walk.  Create and open are timed too, page faults included, since a
 * region is prefaulted when created and page-table-populated when opened.
 */

#define REGION_DEFAULT_SIZE	(1ull << 30)
#define REGION_MIN_SIZE		(4ull << 20)
#define REGION_DEFAULT_ACCESSES	(4ull << 20)
#define LINE			64

enum {
	R_CHASE,	/* dependent reads: latency, ns per access */
	R_READ,		/* independent reads: throughput */
	R_WRITE,	/* independent 8-byte writes: throughput */
	R_CREATE,	/* sluice_region_create(), prefault included */
	R_OPEN,		/* sluice_region_open() by name in another process */
	R_DESTROY,	/* sluice_region_destroy() */
	R_NR,
};

static const struct {
	const char *name;
	const char *unit;
	enum bench_better better;
} region_rows[R_NR] = {
	[R_CHASE]	= { "dependent read", "ns/access", BENCH_LOWER_BETTER },
	[R_READ]	= { "random read", "M/s", BENCH_HIGHER_BETTER },
	[R_WRITE]	= { "random 8B write", "M/s", BENCH_HIGHER_BETTER },
	[R_CREATE]	= { "create+prefault", "ms", BENCH_LOWER_BETTER },
	[R_OPEN]	= { "open by name, other process", "ms", BENCH_LOWER_BETTER },
	[R_DESTROY]	= { "destroy", "ms", BENCH_LOWER_BETTER },
};

/*
 * Dependent reads: the next line's address is derived from the word just
 * loaded, so no load can start before the previous one finished and each
 * access pays the whole TLB miss, page walk and cache miss.  The region is
 * zero here, but the CPU cannot know that; the xorshift stream keeps the
 * addresses random whatever the memory holds.
 */
static __attribute__((noinline)) uint64_t
access_chase(const char *base, uint64_t lines, uint64_t n, uint64_t seed)
{
	uint64_t x = seed, v = 0;

	while (n--) {
		x = bench_xorshift64(x);
		v = *(const uint64_t *)(base + bench_scale(x ^ v, lines) * LINE);
	}
	return v;
}

/* Independent reads: the core overlaps as many misses as it can track. */
static __attribute__((noinline)) uint64_t
access_read(const char *base, uint64_t lines, uint64_t n, uint64_t seed)
{
	uint64_t x = seed, sum = 0;

	while (n--) {
		x = bench_xorshift64(x);
		sum += *(const uint64_t *)(base + bench_scale(x, lines) * LINE);
	}
	return sum;
}

/* Independent 8-byte writes to random words of random lines. */
static __attribute__((noinline)) void
access_write(char *base, uint64_t lines, uint64_t n, uint64_t seed)
{
	uint64_t x = seed;

	while (n--) {
		x = bench_xorshift64(x);
		*(uint64_t *)(base + bench_scale(x, lines) * LINE + (x & (LINE - 8))) = x;
	}
}

/* The accesses of one repetition on one mapping, in ns per access. */
static void region_access(char *base, uint64_t bytes, uint64_t n, unsigned int rep,
			  double ns[3])
{
	static volatile uint64_t sink;
	uint64_t lines = bytes / LINE, seed = 0x9e3779b97f4a7c15ull * (rep + 1), t;

	/* Warm the caches that hold page tables, as a running program would. */
	sink = access_read(base, lines, n / 4, seed ^ 1);

	t = bench_now_ns();
	sink = access_chase(base, lines, n, seed);
	ns[0] = (double)(bench_now_ns() - t) / (double)n;

	t = bench_now_ns();
	sink = access_read(base, lines, n, seed ^ 2);
	ns[1] = (double)(bench_now_ns() - t) / (double)n;

	t = bench_now_ns();
	access_write(base, lines, n, seed ^ 3);
	ns[2] = (double)(bench_now_ns() - t) / (double)n;
	(void)sink;
}

/* In a forked child: open the region by name, as a peer would. */
static int region_child_open(void *arg, double *out, unsigned int n)
{
	struct sluice_region *r;
	struct sluice_obj_info oi;
	uint64_t t;
	int err;

	(void)n;
	t = bench_now_ns();
	err = sluice_region_open(arg, NULL, &r);
	if (err)
		return err;
	err = sluice_region_find(r, "data", &oi);
	out[0] = (double)(bench_now_ns() - t) / 1e6;
	sluice_region_close(r);
	return err;
}

struct region_col {
	enum sluice_pages pages;
	size_t want_page;	/* page size this column is about */
	char label[16];
	int col;
	char got[80];		/* what the region really got, once known */
	bool stopped;		/* failed after some reps: keep what it got */
};

/*
 * One repetition on one page size: create, open from a child, access,
 * destroy.  Returns 0, or a negative errno with @why filled in.
 */
static int region_rep(struct bench_table *t, struct region_col *rc, size_t size, uint64_t n,
		      unsigned int rep, char *why, size_t len)
{
	SLUICE_OPTS(sluice_region_opts, ropts, .pages = rc->pages);
	char name[SLUICE_REGION_NAME_MAX + 1];
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r = NULL;
	uint64_t t0, off;
	double ns[3], open_ms;
	size_t kps;
	char *data;
	int err;

	snprintf(name, sizeof(name), PROG ".%d.%s", (int)getpid(), rc->label);
	t0 = bench_now_ns();
	err = sluice_region_create(name, size, &ropts, &r);
	if (err) {
		snprintf(why, len, "sluice_region_create(%s) failed: %s",
			 sluice_pages_str(rc->pages), strerror(-err));
		return err;
	}
	bench_add(t, R_CREATE, rc->col, (double)(bench_now_ns() - t0) / 1e6);

	err = sluice_region_info(r, &info);
	if (err) {
		snprintf(why, len, "sluice_region_info: %s", strerror(-err));
		goto out_destroy;
	}
	kps = sluice_region_page_size(r);
	if (kps != rc->want_page) {
		snprintf(why, len, "asked for %zu KiB pages, got %zu KiB (%s)",
			 rc->want_page >> 10, kps >> 10, sluice_backing_str(info.backing));
		err = -EIO;
		goto out_destroy;
	}
	snprintf(rc->got, sizeof(rc->got), "%s backing, %zu %ciB pages as the kernel reports them",
		 sluice_backing_str(info.backing), kps >= (1u << 20) ? kps >> 20 : kps >> 10,
		 kps >= (1u << 20) ? 'M' : 'K');

	/* The object spans everything after the header. */
	err = sluice_region_alloc(r, "data", SLUICE_OBJ_RAW,
				  info.heap_size & ~(uint64_t)(LINE - 1), 0, &off);
	if (err) {
		snprintf(why, len, "sluice_region_alloc: %s", strerror(-err));
		goto out_destroy;
	}
	data = sluice_region_at(r, off, info.heap_size & ~(uint64_t)(LINE - 1));
	if (!data) {
		snprintf(why, len, "sluice_region_at refused the object it allocated");
		err = -EFAULT;
		goto out_destroy;
	}

	err = bench_child_run(region_child_open, name, &open_ms, 1);
	if (err) {
		snprintf(why, len, "opening the region in a child failed: %s",
			 strerror(-err));
		goto out_destroy;
	}
	bench_add(t, R_OPEN, rc->col, open_ms);

	if (bench_stop)
		goto out_destroy;
	region_access(data, info.heap_size & ~(uint64_t)(LINE - 1), n, rep, ns);
	bench_add(t, R_CHASE, rc->col, ns[0]);
	bench_add(t, R_READ, rc->col, 1e3 / ns[1]);
	bench_add(t, R_WRITE, rc->col, 1e3 / ns[2]);

	t0 = bench_now_ns();
	err = sluice_region_destroy(r);
	r = NULL;
	if (err) {
		snprintf(why, len, "sluice_region_destroy: %s", strerror(-err));
		return err;
	}
	bench_add(t, R_DESTROY, rc->col, (double)(bench_now_ns() - t0) / 1e6);
	return 0;

out_destroy:
	sluice_region_destroy(r);
	return err;
}

static int suite_region(const struct bench_opts *o, struct bench_table *t)
{
	struct region_col cols[] = {
		{ SLUICE_PAGES_NO_HUGE, (size_t)sysconf(_SC_PAGESIZE) },
		{ SLUICE_PAGES_REQUIRE_HUGE, sluice__hugepage_size() },
	};
	size_t size = o->size ? o->size : REGION_DEFAULT_SIZE;
	uint64_t n = o->accesses ? o->accesses : REGION_DEFAULT_ACCESSES;
	unsigned int rep, i, k, ncols = SLUICE_ARRAY_SIZE(cols);
	char why[BENCH_TEXT_MAX];
	const char *changes;
	int err;

	for (i = 0; i < R_NR; i++)
		bench_table_row(t, region_rows[i].name, region_rows[i].unit,
				region_rows[i].better);
	for (i = 0; i < ncols; i++) {
		size_t ps = cols[i].want_page;

		/* "4K" and "2M" on x86-64; whatever the page sizes are elsewhere. */
		snprintf(cols[i].label, sizeof(cols[i].label), "%zu%c",
			 ps >= (1u << 20) ? ps >> 20 : ps >> 10, ps >= (1u << 20) ? 'M' : 'K');
		cols[i].col = bench_table_col(t, cols[i].label);
	}
	t->subject = cols[1].col;

	if (!cols[1].want_page) {
		bench_skip(t, cols[1].col, "the kernel has no huge pages");
	} else {
		/* Both columns cover the same bytes: whole huge pages. */
		size = (size + cols[1].want_page - 1) & ~(cols[1].want_page - 1);
		if (bench_hugepages_ensure(size / cols[1].want_page, why, sizeof(why)))
			bench_skip(t, cols[1].col, "%s", why);
	}
	bench_title(t, "%zu MiB region, random 64-byte lines anywhere in it, %" PRIu64
		    " accesses per loop, %u reps (+%u warm-up) on CPU %d",
		    size >> 20, n, o->reps, o->warmup, o->cpu);

	for (rep = 0; rep < o->warmup + o->reps && !bench_stop; rep++) {
		t->discard = rep < o->warmup;
		/* Alternate the order, so neither column always runs second. */
		for (k = 0; k < ncols && !bench_stop; k++) {
			struct region_col *rc = &cols[rep % 2 ? ncols - 1 - k : k];

			if (bench_skipped(t, rc->col) || rc->stopped)
				continue;
			if (t->discard)
				progress("region: warm-up %u/%u, %s pages",
					 rep + 1, o->warmup, rc->label);
			else
				progress("region: rep %u/%u, %s pages",
					 rep - o->warmup + 1, o->reps, rc->label);
			/* Other processes may have drained the pool since. */
			err = rc->pages == SLUICE_PAGES_REQUIRE_HUGE ?
			      bench_hugepages_ensure(size / rc->want_page, why, sizeof(why)) : 0;
			if (!err)
				err = region_rep(t, rc, size, n, rep, why, sizeof(why));
			if (!err)
				continue;
			/* Huge pages can run out under us; 4K pages failing is a failure. */
			if (rc->pages != SLUICE_PAGES_REQUIRE_HUGE) {
				progress_done();
				errmsg("region: %s", why);
				return err;
			}
			if (rep > o->warmup) {
				rc->stopped = true;
				bench_note(t, "%s: stopped after %u of %u reps: %s",
					   rc->label, rep - o->warmup, o->reps, why);
			} else {
				bench_skip(t, rc->col, "%s", why);
			}
		}
	}
	t->discard = false;
	progress_done();
	for (i = 0; i < ncols; i++)
		if (cols[i].got[0])
			bench_note(t, "%s: %s", cols[i].label, cols[i].got);
	bench_hugepages_restore();
	changes = bench_hugepages_changes();
	if (changes)
		bench_note(t, "%s", changes);
	bench_note(t, "cells: median of the reps ±half their range; ratios compare medians");
	return 0;
}

/* ================================================================ driver */

struct suite {
	const char *name;
	const char *brief;
	int (*run)(const struct bench_opts *o, struct bench_table *t);
};

static const struct suite suites[] = {
	{ "region", "random access over 4 KiB against 2 MiB pages; create and open costs",
	  suite_region },
};

static const struct suite *suite_find(const char *name)
{
	unsigned int i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
		if (!strcmp(suites[i].name, name))
			return &suites[i];
	return NULL;
}

static void usage(FILE *f)
{
	unsigned int i;

	fprintf(f,
		"Usage: " PROG " [OPTION]... [SUITE]...\n"
		"Measure sluice and print medians, spreads and ratios.  With no SUITE,\n"
		"run them all.  Timings are reported, never judged.\n\n"
		"Suites:\n");
	for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
		fprintf(f, "  %-10s %s\n", suites[i].name, suites[i].brief);
	fprintf(f,
		"\nOptions:\n"
		"  -r, --reps N       repetitions per measurement (default %d)\n"
		"  -w, --warmup N     repetitions run first and not counted (default %d)\n"
		"  -s, --size SIZE    bytes a suite works over, with K, M or G\n"
		"                     (region: default 1G)\n"
		"  -n, --accesses N   accesses per timed loop (region: default %llu)\n"
		"  -c, --cpu N        CPU to pin to (default: the last one allowed)\n"
		"  -j, --json         print one JSON document instead of tables\n"
		"  -l, --list         list the suites and exit\n"
		"  -h, --help         show this help and exit\n"
		"  -V, --version      show the version and exit\n\n"
		"Huge pages: the region suite mounts hugetlbfs if none is mounted and\n"
		"grows /proc/sys/vm/nr_hugepages for the run, shrinking it back at exit;\n"
		"without them the 2M column is skipped with the reason.\n\n"
		"Exit status: 0 all suites ran, 1 a suite failed, 2 usage error,\n"
		"130 interrupted.\n",
		DEFAULT_REPS, DEFAULT_WARMUP, (unsigned long long)REGION_DEFAULT_ACCESSES);
}

static int usage_err(const char *fmt, const char *arg)
{
	fprintf(stderr, PROG ": ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry '" PROG " --help' for more information.\n");
	return EXIT_USAGE;
}

/* "1G", "512M", "4096": bytes; false if malformed or out of range. */
static bool parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > (SIZE_MAX >> shift))
		return false;
	*out = (size_t)v << shift;
	return true;
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return false;
	*out = v;
	return true;
}

/* "model name" from /proc/cpuinfo. */
static void cpu_model(char *buf, size_t len)
{
	char line[256], *p;
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(p = strchr(line, ':')))
			continue;
		p += strspn(p + 1, " \t") + 1;
		p[strcspn(p, "\n")] = '\0';
		snprintf(buf, len, "%s", p);
		break;
	}
	fclose(f);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 's' },
		{ "accesses", required_argument, NULL, 'n' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct bench_opts o = { .reps = DEFAULT_REPS, .warmup = DEFAULT_WARMUP, .cpu = -1 };
	const struct suite *run[SLUICE_ARRAY_SIZE(suites)];
	unsigned int nrun = 0, i, j;
	unsigned long long v;
	struct bench_table t;
	char model[128];
	struct utsname un;
	int ch, err, ret = EXIT_OK;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":r:w:s:n:c:jlhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (!parse_uint(optarg, 100000, &v) || !v)
				return usage_err("bad --reps '%s': want 1 to 100000", optarg);
			o.reps = (unsigned int)v;
			break;
		case 'w':
			if (!parse_uint(optarg, 1000, &v))
				return usage_err("bad --warmup '%s': want 0 to 1000", optarg);
			o.warmup = (unsigned int)v;
			break;
		case 's':
			if (!parse_size(optarg, &o.size) || o.size < REGION_MIN_SIZE)
				return usage_err("bad --size '%s': want 4M or more, e.g. 1G", optarg);
			break;
		case 'n':
			if (!parse_uint(optarg, 1ull << 40, &v) || v < 1024)
				return usage_err("bad --accesses '%s': want 1024 or more", optarg);
			o.accesses = v;
			break;
		case 'c':
			if (!parse_uint(optarg, INT_MAX, &v))
				return usage_err("bad --cpu '%s'", optarg);
			o.cpu = (int)v;
			break;
		case 'j':
			o.json = true;
			break;
		case 'l':
			for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
				printf("%-10s %s\n", suites[i].name, suites[i].brief);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf(PROG " " SLUICE_VERSION "\n");
			return EXIT_OK;
		case ':':
			return usage_err("option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_err("unrecognized option '%s'", argv[optind - 1]);
		}
	}
	for (i = (unsigned int)optind; i < (unsigned int)argc; i++) {
		const struct suite *s = suite_find(argv[i]);

		if (!s)
			return usage_err("unknown suite '%s' (see --list)", argv[i]);
		for (j = 0; j < nrun && run[j] != s; j++)
			;
		if (j == nrun)
			run[nrun++] = s;
	}
	if (!nrun)
		for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
			run[nrun++] = &suites[i];

	if (o.cpu < 0)
		o.cpu = bench_default_cpu();
	err = bench_pin_cpu(o.cpu);
	if (err) {
		errmsg("cannot pin to CPU %d: %s", o.cpu, strerror(-err));
		return EXIT_FAIL;
	}
	bench_signals_init();

	cpu_model(model, sizeof(model));
	if (uname(&un))
		snprintf(un.release, sizeof(un.release), "?");
	if (o.json) {
		printf("{\"tool\":\"" PROG "\",\"version\":\"" SLUICE_VERSION "\","
		       "\"host\":{\"cpu\":");
		bench_json_str(stdout, model);
		printf(",\"cpus\":%ld,\"kernel\":", sysconf(_SC_NPROCESSORS_ONLN));
		bench_json_str(stdout, un.release);
		printf("},\"options\":{\"reps\":%u,\"warmup\":%u,\"size\":%zu,\"accesses\":%"
		       PRIu64 ",\"cpu\":%d},\"suites\":[",
		       o.reps, o.warmup, o.size, o.accesses, o.cpu);
	} else {
		printf(PROG " " SLUICE_VERSION " on %s, %ld CPUs, Linux %s\n\n",
		       model, sysconf(_SC_NPROCESSORS_ONLN), un.release);
	}
	fflush(stdout);

	for (i = 0; i < nrun && !bench_stop; i++) {
		bench_table_init(&t, run[i]->name);
		err = run[i]->run(&o, &t);
		if (err)
			ret = EXIT_FAIL;
		if (o.json) {
			fputs(i ? "," : "", stdout);
			bench_table_json(&t, stdout);
		} else {
			bench_table_print(&t, stdout);
			if (i + 1 < nrun)
				putchar('\n');
		}
		fflush(stdout);
		bench_table_free(&t);
	}
	if (o.json)
		printf("]}\n");
	bench_hugepages_restore();
	if (bench_stop) {
		errmsg("interrupted");
		return EXIT_INTR;
	}
	return ret;
}
