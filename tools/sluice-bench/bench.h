/* SPDX-License-Identifier: MIT */
/*
 * What every sluice-bench suite shares: options, clocks, CPU pinning, a
 * child process that reports numbers back, a pair of pinned processes that
 * run at once over shared memory, the huge-page pool, statistics, and
 * result tables printed for people or as JSON.
 *
 * A suite fills a struct bench_table, or a few named ones: columns are the
 * things compared (4K and 2M pages; sluice, rte_ring and a pipe), rows are
 * metrics, and each cell collects one sample per repetition.  One column may be the subject:
 * every other column then gets a ratio column saying how many times better
 * the subject is, whichever way "better" points for that metric.  Nothing
 * here judges a number; the benchmark only reports.
 *
 * The framework's files: bench.c (tables, statistics, printing), run.c
 * (processes, pinning, clocks), hugepages.c; a suite lives in a file of its
 * own, named for it, and main.c lists them.
 */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "../common/msg.h"

#define BENCH_TABLES_MAX	4	/* tables one suite may fill */
#define BENCH_COLS_MAX	8
#define BENCH_ROWS_MAX	32
#define BENCH_NOTES_MAX	16
#define BENCH_TEXT_MAX	200

/* Options of one run, common to all suites. */
struct bench_opts {
	size_t size;		/* bytes a suite works over, 0: its default */
	unsigned int reps;	/* repetitions; cells report their median */
	unsigned int warmup;	/* repetitions run first and not counted */
	uint64_t accesses;	/* accesses per timed loop, 0: the suite's default */
	int cpu;		/* CPU the measuring thread is pinned to */
	int pair[2];		/* CPUs of two-process suites (spsc): 0 and 1 */
	unsigned int samples;	/* round trips per latency rep, 0: the suite's default */
	bool quick;		/* shorter runs, rougher numbers */
	bool json;		/* one JSON document on stdout instead of tables */
};

/* Which way a metric improves. */
enum bench_better {
	BENCH_LOWER_BETTER,	/* times, latencies */
	BENCH_HIGHER_BETTER,	/* throughputs */
};

/* Samples of one metric for one column, one per repetition. */
struct bench_cell {
	double *v;
	unsigned int n;
	unsigned int cap;
};

struct bench_row {
	const char *name;	/* "dependent read" */
	const char *unit;	/* "ns/access" */
	enum bench_better better;
	struct bench_cell cell[BENCH_COLS_MAX];
};

struct bench_table {
	const char *suite;
	char name[32];			/* which of the suite's tables, or "" */
	char title[BENCH_TEXT_MAX];
	unsigned int ncols;
	char col[BENCH_COLS_MAX][32];	/* column names, copied */
	char *skip[BENCH_COLS_MAX];	/* why a column has no numbers, or NULL */
	int subject;			/* column the ratios are about, -1: none */
	bool paired;			/* sample i of every column is from rep i,
					 * taken back to back: ratios are the
					 * median of per-rep ratios */
	bool discard;			/* warming up: bench_add() drops samples */
	unsigned int nrows;
	struct bench_row row[BENCH_ROWS_MAX];
	unsigned int nnotes;
	char note[BENCH_NOTES_MAX][BENCH_TEXT_MAX];
};

/* Median, extremes and count of a cell; NAN everywhere when it is empty. */
struct bench_stat {
	double median;
	double min;
	double max;
	unsigned int n;
};

/* ------------------------------------------------------------- tables */

void bench_table_init(struct bench_table *t, const char *suite);
/* Name one of several tables of a suite ("throughput"); printed and in JSON. */
void bench_table_name(struct bench_table *t, const char *name);
void bench_table_free(struct bench_table *t);
/* Add a column (the name is copied); returns its index. */
int bench_table_col(struct bench_table *t, const char *name);
/* Add a metric; @name and @unit must outlive the table.  Returns its index. */
int bench_table_row(struct bench_table *t, const char *name, const char *unit,
		    enum bench_better better);
/* Record one sample, unless t->discard.  Returns 0 or -ENOMEM. */
int bench_add(struct bench_table *t, int row, int col, double v);
/* Mark a column as skipped, with the reason; its cells stay empty. */
void bench_skip(struct bench_table *t, int col, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool bench_skipped(const struct bench_table *t, int col);
/* A line printed under the table (and in the JSON "notes"). */
void bench_note(struct bench_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void bench_title(struct bench_table *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

struct bench_stat bench_cell_stat(const struct bench_cell *c);
/*
 * How many times better column @col is than column @ref on @row, in the
 * row's direction: above 1 means @col wins.  The ratio of the two medians,
 * or with t->paired the median of the ratios rep by rep, which a machine
 * whose speed drifts between reps disturbs less.  NAN if either cell is
 * empty.
 */
double bench_ratio(const struct bench_table *t, int row, int col, int ref);
/*
 * A note on row @row: the subject against column @col, "@what: sluice
 * 2.10x (target @target)", or why there is no ratio.  @target may be NULL.
 */
void bench_note_ratio(struct bench_table *t, int row, int col, const char *what,
		      const char *target);

struct json;

void bench_table_print(const struct bench_table *t, FILE *f);
/* The table as one JSON object, the next item of the array open in @j. */
void bench_table_json(const struct bench_table *t, struct json *j);

/* ------------------------------------------------------------- statistics */

/* The @p-th percentile (0..100) of @n values, nearest rank; NAN if n is 0. */
double bench_percentile(const double *v, unsigned int n, double p);

/* ------------------------------------------------------------- environment */

/*
 * Write (@wr) or read all of @len bytes through @fd.  Returns 0, or a
 * negative errno (-EPIPE when the other end is gone).
 */
int bench_fd_io(int fd, void *buf, size_t len, bool wr);

static inline uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64: cheap, good enough to scatter accesses; @s must not be 0. */
static inline uint64_t bench_xorshift64(uint64_t s)
{
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

/* Map @x uniformly onto [0, n) without a division. */
static inline uint64_t bench_scale(uint64_t x, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)x * n) >> 64);
}

/* Set by SIGINT/SIGTERM/SIGHUP: suites stop at the next step and clean up. */
extern volatile sig_atomic_t bench_stop;
void bench_signals_init(void);

/* Pin the calling thread to @cpu.  Returns 0 or a negative errno. */
int bench_pin_cpu(int cpu);
/* The highest-numbered CPU this process may run on, or -1. */
int bench_default_cpu(void);
/*
 * The two lowest-numbered CPUs this process may run on, in @cpu.  Returns 0,
 * or -ENODEV if it may run on fewer than two.
 */
int bench_default_pair(int cpu[2]);
/* May this process run on @cpu? */
bool bench_cpu_allowed(int cpu);

static inline void bench_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield" ::: "memory");
#endif
}

/* ------------------------------------------------------------- timestamps */

/*
 * Cheap timestamps for timing single round trips: the TSC where it ticks
 * at a constant rate (lfence keeps rdtsc from running ahead of the loads
 * before it), CLOCK_MONOTONIC elsewhere.  bench_ticks_init() calibrates
 * against CLOCK_MONOTONIC once; call it before forking, so that children
 * share the calibration.
 */
#if defined(__x86_64__) || defined(__i386__)
extern bool bench_ticks_tsc;
static inline uint64_t bench_ticks(void)
{
	if (__builtin_expect(bench_ticks_tsc, 1)) {
		__builtin_ia32_lfence();
		return __builtin_ia32_rdtsc();
	}
	return bench_now_ns();
}
#else
static inline uint64_t bench_ticks(void)
{
	return bench_now_ns();
}
#endif
void bench_ticks_init(void);
/* Nanoseconds in @ticks. */
double bench_ticks_ns(uint64_t ticks);
/* "TSC at 2.45 GHz, 22 ns a read": what bench_ticks() is and costs. */
const char *bench_ticks_describe(void);

/*
 * The host's state, to read the numbers beside it by: on a shared host
 * both move within seconds, and every ratio with them.
 */
struct bench_host {
	double line_ns;		/* a shared line's round trip between the pair */
	double ghz;		/* the first CPU's clock: dependent adds a ns */
};
/* Measure it on @cpu (two processes, pinned).  Returns 0 or a negative errno. */
int bench_host_probe(const int cpu[2], struct bench_host *h);

/* ------------------------------------------------------------- two processes */

/* Memory that forked children share with the parent and each other. */
void *bench_shared_alloc(size_t len);
void bench_shared_free(void *p, size_t len);

/*
 * A start line for the processes of one measurement, in shared memory,
 * zeroed before they fork: each calls bench_gate_pass() and none returns
 * before all @parties have arrived, so timing starts together.
 */
struct bench_gate {
	_Alignas(64) _Atomic uint32_t arrived;
};

static inline void bench_gate_pass(struct bench_gate *g, unsigned int parties)
{
	/* Arrivals are the only stores; nothing else is published through it. */
	atomic_fetch_add_explicit(&g->arrived, 1, memory_order_acq_rel);
	while (atomic_load_explicit(&g->arrived, memory_order_acquire) < parties)
		bench_cpu_relax();
}

/*
 * Run @fn(@arg, 0) and @fn(@arg, 1) at the same time in two forked children,
 * pinned to @cpu[0] and @cpu[1].  What they share must be mapped shared
 * before the call (bench_shared_alloc()); @arg itself is the parent's memory,
 * copied into each child.  Waits for both, at most @timeout_ms.  A child
 * that fails or dies gets its sibling killed, since the sibling may be
 * spinning on a peer that is gone.
 *
 * Return: 0 when both returned 0, else the first error: what @fn returned,
 * -ECHILD if a child died, -ETIMEDOUT, -EINTR if bench_stop was set, or an
 * error of pipe(2) or fork(2).
 */
int bench_pair_run(int (*fn)(void *arg, int side), void *arg, const int cpu[2],
		   unsigned int timeout_ms);

/*
 * Run @fn in a forked child, which inherits the parent's CPU pinning.  The
 * child fills up to @n values in @out and returns 0 or a negative errno;
 * both reach the parent over a pipe.  Returns what @fn returned, or a
 * negative errno if the child could not run or died.
 */
int bench_child_run(int (*fn)(void *arg, double *out, unsigned int n),
		    void *arg, double *out, unsigned int n);

/*
 * Make sure @pages huge pages of the default size are free to use, mounting
 * hugetlbfs and growing /proc/sys/vm/nr_hugepages if needed.  The pool
 * shrinks back by what was added at exit (or by bench_hugepages_restore()).
 * On failure returns a negative errno and explains in @why.
 */
int bench_hugepages_ensure(unsigned long pages, char *why, size_t len);
/* Undo what bench_hugepages_ensure() added to the pool; idempotent. */
void bench_hugepages_restore(void);
/* A line describing what bench_hugepages_ensure() changed, or NULL. */
const char *bench_hugepages_changes(void);

/* Progress for a person watching a terminal (stderr); silent otherwise. */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_progress_done(void);

/* ------------------------------------------------------------- suites */

/*
 * A suite fills the BENCH_TABLES_MAX tables it is given: the first, or
 * several it names.  Returns 0, or a negative errno when it failed (a
 * skipped column is not a failure).
 */
int suite_region(const struct bench_opts *o, struct bench_table *t);	/* region.c */
int suite_spsc(const struct bench_opts *o, struct bench_table *t);	/* spsc.c */
int suite_chan(const struct bench_opts *o, struct bench_table *t);	/* chan.c */
int suite_live(const struct bench_opts *o, struct bench_table *t);	/* live.c */
int suite_mux(const struct bench_opts *o, struct bench_table *t);	/* mux.c */

/* Their limits and defaults that the options and --help quote. */
#define REGION_MIN_SIZE		(4ull << 20)
#define REGION_DEFAULT_ACCESSES	(4ull << 20)
#define LAT_SAMPLES		40000
#define LAT_QUICK_SAMPLES	10000
#define LAT_SAMPLES_MAX		10000000

#endif /* SLUICE_BENCH_H */
