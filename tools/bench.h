/* SPDX-License-Identifier: MIT */
/*
 * What every sluice-bench suite shares: options, clocks, CPU pinning, a
 * child process that reports numbers back, the huge-page pool, statistics,
 * and result tables printed for people or as JSON.
 *
 * A suite fills one struct bench_table: columns are the things compared
 * (4K and 2M pages; sluice, rte_ring and a pipe), rows are metrics, and each
 * cell collects one sample per repetition.  One column may be the subject:
 * every other column then gets a ratio column saying how many times better
 * the subject is, whichever way "better" points for that metric.  Nothing
 * here judges a number; the benchmark only reports.
 */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

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
	char title[BENCH_TEXT_MAX];
	unsigned int ncols;
	char col[BENCH_COLS_MAX][32];	/* column names, copied */
	char *skip[BENCH_COLS_MAX];	/* why a column has no numbers, or NULL */
	int subject;			/* column the ratios are about, -1: none */
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
 * How many times better column @col is than column @ref on @row, judged
 * by medians in the row's direction: above 1 means @col wins.  NAN if
 * either cell is empty.
 */
double bench_ratio(const struct bench_table *t, int row, int col, int ref);

void bench_table_print(const struct bench_table *t, FILE *f);
/* One JSON object, no trailing newline. */
void bench_table_json(const struct bench_table *t, FILE *f);
/* @s as a quoted, escaped JSON string. */
void bench_json_str(FILE *f, const char *s);

/* ------------------------------------------------------------- statistics */

/* The @p-th percentile (0..100) of @n values, nearest rank; NAN if n is 0. */
double bench_percentile(const double *v, unsigned int n, double p);

/* ------------------------------------------------------------- environment */

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

#endif /* SLUICE_BENCH_H */
