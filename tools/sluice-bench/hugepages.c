// SPDX-License-Identifier: MIT
/*
 * sluice-bench's huge pages: the pool grown for a run and given back at
 * exit, hugetlbfs mounted if none is.  See bench.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "internal.h"

#define HUGETLBFS_DEFAULT	"/dev/hugepages"
#define NR_HUGEPAGES		"/proc/sys/vm/nr_hugepages"

/* What bench_hugepages_ensure() did, so it can be undone. */
static struct {
	bool atexit_set;
	unsigned long orig;	/* pool size before the first raise */
	unsigned long added;	/* pages we added and still owe back */
	char mounted[PATH_MAX];	/* where we mounted hugetlbfs, if we did */
	char changes[PATH_MAX + BENCH_TEXT_MAX];
} hp_state;

static int nr_hugepages_write(unsigned long total)
{
	FILE *f = fopen(NR_HUGEPAGES, "we");
	int err;

	if (!f)
		return -errno;
	fprintf(f, "%lu\n", total);
	err = fclose(f) ? -errno : 0;
	return err;
}

void bench_hugepages_restore(void)
{
	struct sluice__hugepages hp;

	if (!hp_state.added || sluice__hugepages_get(&hp))
		return;
	/*
	 * Give back only what we added: another process may have grown the
	 * pool meanwhile, and its pages are not ours to take.
	 */
	if (!nr_hugepages_write(hp.total > hp_state.added ? hp.total - hp_state.added : 0))
		hp_state.added = 0;
}

const char *bench_hugepages_changes(void)
{
	return hp_state.changes[0] ? hp_state.changes : NULL;
}

static void changes_update(void)
{
	char pool[96] = "", *p = hp_state.changes;
	size_t len = sizeof(hp_state.changes);

	if (hp_state.added)
		snprintf(pool, sizeof(pool), "nr_hugepages raised %lu -> %lu for the run, then restored",
			 hp_state.orig, hp_state.orig + hp_state.added);
	if (hp_state.mounted[0])
		snprintf(p, len, "mounted hugetlbfs at %s (left mounted)%s%s",
			 hp_state.mounted, pool[0] ? "; " : "", pool);
	else
		snprintf(p, len, "%s", pool);
}

int bench_hugepages_ensure(unsigned long pages, char *why, size_t len)
{
	struct sluice__hugepages hp;
	unsigned long avail, want, got;
	const char *env = getenv("SLUICE_HUGETLBFS");
	char dir[PATH_MAX];
	bool had_mount;
	int err;

	if (env && !strcmp(env, "none")) {
		snprintf(why, len, "SLUICE_HUGETLBFS=none says not to use huge pages");
		return -ENOENT;
	}
	had_mount = !sluice__hugetlbfs_dir(dir, sizeof(dir));
	err = sluice__hugetlbfs_mount(dir, sizeof(dir), HUGETLBFS_DEFAULT);
	if (err) {
		snprintf(why, len, "no hugetlbfs mount, and mounting one at %s failed: %s",
			 HUGETLBFS_DEFAULT, strerror(-err));
		return err;
	}
	if (!had_mount)
		snprintf(hp_state.mounted, sizeof(hp_state.mounted), "%s", dir);

	err = sluice__hugepages_get(&hp);
	if (err) {
		snprintf(why, len, "cannot read the huge-page pool: %s", strerror(-err));
		return err;
	}
	/* Free pages may be promised to mappings already (rsvd). */
	avail = hp.free > hp.rsvd ? hp.free - hp.rsvd : 0;
	if (avail < pages) {
		want = hp.total + (pages - avail);
		err = sluice__hugepages_set_total(want, &got);
		if (!hp_state.added)
			hp_state.orig = hp.total;
		if (!err && got > hp.total)
			hp_state.added += got - hp.total;
		if (hp_state.added && !hp_state.atexit_set)
			hp_state.atexit_set = !atexit(bench_hugepages_restore);
		if (err) {
			snprintf(why, len, "need %lu free huge pages, have %lu, and raising nr_hugepages failed: %s",
				 pages, avail, strerror(-err));
			bench_hugepages_restore();
			changes_update();
			return err;
		}
		if (got < want) {
			snprintf(why, len, "need %lu free huge pages, have %lu; the kernel grew the pool to %lu of %lu asked (memory fragmented?)",
				 pages, avail, got, want);
			bench_hugepages_restore();
			changes_update();
			return -ENOMEM;
		}
	}
	changes_update();
	return 0;
}
