// SPDX-License-Identifier: MIT
/*
 * sluice-bench's region suite: random access over a whole region, 4 KiB
 * pages against 2 MiB pages.  Every access goes to a random 64-byte line
 * anywhere in the region, so with 4 KiB pages nearly every one misses the
 * TLB (a 1 GiB region is 262144 pages; the TLB holds a few thousand),
 * while 512 huge pages nearly fit.  The data misses the caches either way:
 * what differs is the page walk.  Create and open are timed too, page
 * faults included, since a region is prefaulted when created and
 * page-table-populated when opened.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sluice.h>

#include "bench.h"
#include "internal.h"

#define REGION_DEFAULT_SIZE	(1ull << 30)
#define REGION_QUICK_SIZE	(256ull << 20)
#define REGION_QUICK_ACCESSES	(1ull << 20)
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

	snprintf(name, sizeof(name), "%s.%d.%s", tool_name, (int)getpid(), rc->label);
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

int suite_region(const struct bench_opts *o, struct bench_table *t)
{
	struct region_col cols[] = {
		{ SLUICE_PAGES_NO_HUGE, (size_t)sysconf(_SC_PAGESIZE) },
		{ SLUICE_PAGES_REQUIRE_HUGE, sluice__hugepage_size() },
	};
	size_t size = o->size ? o->size : o->quick ? REGION_QUICK_SIZE : REGION_DEFAULT_SIZE;
	uint64_t n = o->accesses ? o->accesses :
		     o->quick ? REGION_QUICK_ACCESSES : REGION_DEFAULT_ACCESSES;
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
				bench_progress("region: warm-up %u/%u, %s pages",
					 rep + 1, o->warmup, rc->label);
			else
				bench_progress("region: rep %u/%u, %s pages",
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
				bench_progress_done();
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
	bench_progress_done();
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
