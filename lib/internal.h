/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared inside sluice: the library, its tools and its tests.
 * Nothing here is exported from libsluice.so (see libsluice.map); the tools
 * and tests link libsluice.a to reach it.  Internal names are sluice__*.
 */
#ifndef SLUICE_INTERNAL_H
#define SLUICE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SLUICE_ARRAY_SIZE(a)	(sizeof(a) / sizeof((a)[0]))
#define sluice__offsetofend(TYPE, F) (offsetof(TYPE, F) + sizeof(((TYPE *)0)->F))

/*
 * Option structs (see include/sluice/opts.h).  sluice__opts_valid() accepts
 * NULL, rejects an sz too small to hold sz itself, and rejects a newer
 * caller's struct whose fields beyond what this library knows are non-zero.
 * SLUICE_OPT() reads a field the caller's struct has, else the default.
 */
bool sluice__opts_valid(const void *opts, size_t known_sz);
/*
 * Valid options of struct @TYPE whose last field this library knows is
 * @LAST: known up to the end of that field, not to sizeof, so that a
 * newer caller's field set in what is tail padding here is seen.
 */
#define SLUICE_OPTS_VALID(opts, TYPE, LAST)				\
	sluice__opts_valid((opts), sluice__offsetofend(struct TYPE, LAST))
#define SLUICE_OPT(opts, TYPE, F, DEF)					\
	(((opts) && (opts)->sz >= sluice__offsetofend(struct TYPE, F)) ?	\
	 (opts)->F : (DEF))

/*
 * Names of regions and objects: 1..max characters from [A-Za-z0-9._-], not
 * starting with '.'.  Returns 0, -EINVAL or -ENAMETOOLONG.
 */
int sluice__name_check(const char *name, size_t max);

static inline bool sluice__is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* A spinning poll's pause: less power, and the sibling hyperthread runs. */
static inline void sluice__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* What a wait found ready when it ended: packets, slices or free slots. */
enum sluice__slip_found {
	SLUICE__SLIP_LONE,	/* just the one it waited for */
	SLUICE__SLIP_BURST,	/* more behind it */
	SLUICE__SLIP_FAR,	/* half the ring or more: the peer nearly had to wait */
};

/*
 * Temporal slipping (see util.c): the pauses the next wait makes before its
 * first poll, from the last wait's @slip, how many @polls that wait took and
 * what it @found; at most @max.
 */
uint32_t sluice__slip_next(uint32_t slip, unsigned int polls,
			   enum sluice__slip_found found, uint32_t max);

/*
 * Ask for the line at @p in a state this core may write, ahead of the
 * stores: the other cores' copies are invalidated now rather than when a
 * store reaches the head of the store buffer.  A hint: it never faults.
 * GCC emits __builtin_prefetch(p, 1, 3) as a plain read prefetch on
 * x86-64 unless built with -mprfchw, hence the instruction itself: the
 * CPUs that lack it (Intel's before Broadwell) run it as a no-op.
 */
static inline void sluice__prefetch_own(const void *p)
{
#if defined(__x86_64__) || defined(__i386__)
	__asm__("prefetchw %0" : : "m"(*(const char *)p));
#else
	__builtin_prefetch(p, 1, 3);
#endif
}

/* FNV-1a, 64 bit. */
uint64_t sluice__fnv1a(const void *p, size_t len);

/* Clocks, in nanoseconds. */
uint64_t sluice__now_ns(int clock_id);

/*
 * A process's start time (field 22 of /proc/PID/stat, clock ticks since
 * boot): with the pid it names one process for good, as pids get reused.
 * Returns 0 or a negative errno (-ESRCH if there is no such process, or
 * every thread of it has begun to exit: it runs no user code again).
 */
int sluice__proc_start_time(pid_t pid, uint64_t *start);
/*
 * The stat line of @pid as it stands, whatever its state: its start time
 * and whether its leader thread has begun to exit; either may be NULL.
 * Returns 0, -ESRCH (no such pid) or -EIO.
 */
int sluice__proc_stat(pid_t pid, uint64_t *start, bool *exiting);
/* Is the process with this pid and start time still running? */
bool sluice__proc_alive(pid_t pid, uint64_t start);

/* ---------------------------------------------------------------- hugetlb */

/*
 * The default huge page size (Hugepagesize in /proc/meminfo) in bytes, or 0
 * if the kernel has no huge pages.
 */
size_t sluice__hugepage_size(void);

/*
 * Find a hugetlbfs mount for the default huge page size.  The environment
 * variable SLUICE_HUGETLBFS overrides the mount table: a directory, or
 * "none" for no huge pages.  Writes the directory to @dir.
 * Returns 0, -ENOENT if there is none, or -ENAMETOOLONG.
 */
int sluice__hugetlbfs_dir(char *dir, size_t len);

/* Huge pages of the default size: in the pool, free, and reserved. */
struct sluice__hugepages {
	size_t page_size;
	unsigned long total;
	unsigned long free;
	unsigned long rsvd;
	unsigned long surplus;
};
int sluice__hugepages_get(struct sluice__hugepages *hp);

/*
 * Make the pool hold at least @total pages (never shrinks it) by writing
 * /proc/sys/vm/nr_hugepages.  The kernel may give fewer; @got receives the
 * pool size after the write.  Returns 0 or a negative errno.
 */
int sluice__hugepages_set_total(unsigned long total, unsigned long *got);

/*
 * Mount hugetlbfs at @dir (created if needed) unless a hugetlbfs mount
 * exists already; @dir receives the mount in use.  Returns 0 or -errno.
 */
int sluice__hugetlbfs_mount(char *dir, size_t len, const char *want);

/*
 * What the kernel really backs the mapping at @addr with, from
 * /proc/self/smaps: its KernelPageSize and how many bytes are mapped with
 * PMD-sized pages (huge pages, hugetlb or transparent).
 */
int sluice__smaps_query(const void *addr, size_t *kernel_page_size,
			size_t *huge_bytes);

/* ---------------------------------------------------------------- regions */

struct sluice_region;
/*
 * The region's directory lock (process-shared, robust), for the rare
 * changes objects make to their own shared state (a ring side being taken).
 * Returns 0, -ETIMEDOUT or -EBADMSG.
 */
int sluice__region_lock(struct sluice_region *r);
/*
 * The same, waiting no later than @deadline (CLOCK_MONOTONIC ns), nor more
 * than the usual 2 s: for a call that must return by its own deadline.
 */
int sluice__region_lock_until(struct sluice_region *r, uint64_t deadline);
void sluice__region_unlock(struct sluice_region *r);

/* ---------------------------------------------------------------- liveness */

struct sluice_liveness;
/*
 * When a monitor learned of its latest death, CLOCK_MONOTONIC ns, 0 where
 * unknown: the last thread's exit (BPF only: the program's clock), the
 * monitor's thread taking the report, and its first watch for it
 * beginning to fire.  For sluice-bench's breakdown of a death's latency.
 */
struct sluice__lv_times {
	uint64_t exit_ns;
	uint64_t seen_ns;
	uint64_t fire_ns;
};
void sluice__liveness_last(struct sluice_liveness *m, struct sluice__lv_times *t);

/* Where named regions live: /dev/shm unless SLUICE_SHM_DIR says otherwise. */
const char *sluice__shm_dir(void);
/* Region files are named with this prefix in both directories. */
#define SLUICE_FILE_PREFIX	"sluice."

#endif /* SLUICE_INTERNAL_H */
