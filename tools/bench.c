// SPDX-License-Identifier: MIT
/*
 * sluice-bench's shared parts: result tables, statistics, pinning, child
 * processes and the huge-page pool.  See bench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"

#define HUGETLBFS_DEFAULT	"/dev/hugepages"
#define NR_HUGEPAGES		"/proc/sys/vm/nr_hugepages"

/* ------------------------------------------------------------- tables */

void bench_table_init(struct bench_table *t, const char *suite)
{
	memset(t, 0, sizeof(*t));
	t->suite = suite;
	t->subject = -1;
}

void bench_table_free(struct bench_table *t)
{
	unsigned int r, c;

	for (r = 0; r < t->nrows; r++)
		for (c = 0; c < BENCH_COLS_MAX; c++)
			free(t->row[r].cell[c].v);
	for (c = 0; c < BENCH_COLS_MAX; c++)
		free(t->skip[c]);
	memset(t, 0, sizeof(*t));
}

int bench_table_col(struct bench_table *t, const char *name)
{
	if (t->ncols == BENCH_COLS_MAX)
		abort();	/* a suite with more columns than it can have */
	snprintf(t->col[t->ncols], sizeof(t->col[t->ncols]), "%s", name);
	return (int)t->ncols++;
}

int bench_table_row(struct bench_table *t, const char *name, const char *unit,
		    enum bench_better better)
{
	struct bench_row *row;

	if (t->nrows == BENCH_ROWS_MAX)
		abort();
	row = &t->row[t->nrows];
	row->name = name;
	row->unit = unit;
	row->better = better;
	return (int)t->nrows++;
}

int bench_add(struct bench_table *t, int row, int col, double v)
{
	struct bench_cell *c = &t->row[row].cell[col];
	double *nv;

	if (t->discard)
		return 0;
	if (c->n == c->cap) {
		nv = realloc(c->v, (c->cap ? c->cap * 2 : 8) * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = c->cap ? c->cap * 2 : 8;
	}
	c->v[c->n++] = v;
	return 0;
}

void bench_skip(struct bench_table *t, int col, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(t->skip[col]);
	t->skip[col] = s ? s : strdup("skipped");
}

bool bench_skipped(const struct bench_table *t, int col)
{
	return t->skip[col] != NULL;
}

void bench_note(struct bench_table *t, const char *fmt, ...)
{
	va_list ap;

	if (t->nnotes == BENCH_NOTES_MAX)
		return;
	va_start(ap, fmt);
	vsnprintf(t->note[t->nnotes++], BENCH_TEXT_MAX, fmt, ap);
	va_end(ap);
}

void bench_title(struct bench_table *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->title, sizeof(t->title), fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------- statistics */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* A sorted copy of @n values, or NULL. */
static double *sorted_copy(const double *v, unsigned int n)
{
	double *s = malloc((n ? n : 1) * sizeof(*s));

	if (!s)
		return NULL;
	memcpy(s, v, n * sizeof(*s));
	qsort(s, n, sizeof(*s), cmp_double);
	return s;
}

double bench_percentile(const double *v, unsigned int n, double p)
{
	double *s, r;
	size_t rank;

	if (!n)
		return NAN;
	s = sorted_copy(v, n);
	if (!s)
		return NAN;
	rank = (size_t)ceil(p / 100 * n);
	r = s[rank ? (rank > n ? n - 1 : rank - 1) : 0];
	free(s);
	return r;
}

struct bench_stat bench_cell_stat(const struct bench_cell *c)
{
	struct bench_stat st = { NAN, NAN, NAN, c->n };
	double *s;

	if (!c->n)
		return st;
	s = sorted_copy(c->v, c->n);
	if (!s)
		return st;
	st.min = s[0];
	st.max = s[c->n - 1];
	st.median = c->n % 2 ? s[c->n / 2] : (s[c->n / 2 - 1] + s[c->n / 2]) / 2;
	free(s);
	return st;
}

double bench_ratio(const struct bench_table *t, int row, int col, int ref)
{
	const struct bench_row *r = &t->row[row];
	double a = bench_cell_stat(&r->cell[col]).median;
	double b = bench_cell_stat(&r->cell[ref]).median;

	if (isnan(a) || isnan(b) || a <= 0 || b <= 0)
		return NAN;
	return r->better == BENCH_HIGHER_BETTER ? a / b : b / a;
}

/* ------------------------------------------------------------- printing */

/* About four significant digits, never an exponent. */
static void fmt_num(char *buf, size_t len, double v)
{
	double a = fabs(v);
	int prec = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3;

	snprintf(buf, len, "%.*f", prec, v);
}

static void fmt_cell(char *buf, size_t len, const struct bench_table *t,
		     int row, int col)
{
	struct bench_stat st;
	char num[32];

	if (t->skip[col]) {
		snprintf(buf, len, "skipped");
		return;
	}
	st = bench_cell_stat(&t->row[row].cell[col]);
	if (!st.n) {
		snprintf(buf, len, "-");
		return;
	}
	fmt_num(num, sizeof(num), st.median);
	if (st.n > 1 && st.median != 0)
		snprintf(buf, len, "%s ±%.1f%%", num,
			 (st.max - st.min) / 2 / fabs(st.median) * 100);
	else
		snprintf(buf, len, "%s", num);
}

static void fmt_ratio(char *buf, size_t len, double r)
{
	if (isnan(r))
		snprintf(buf, len, "-");
	else if (r >= 0.995 && r < 1.005)
		snprintf(buf, len, "1.00x, same");
	else if (r >= 1)
		snprintf(buf, len, "%.2fx better", r);
	else
		snprintf(buf, len, "%.2fx worse", 1 / r);
}

/* The columns ratios are printed for: all but the subject. */
static bool is_ref(const struct bench_table *t, unsigned int c)
{
	return t->subject >= 0 && (int)c != t->subject;
}

#define CELL_MAX	64

void bench_table_print(const struct bench_table *t, FILE *f)
{
	/* Column 0 is the metric, then the table's columns, then ratios. */
	unsigned int ncells = 1 + 2 * t->ncols, width[1 + 2 * BENCH_COLS_MAX] = { 0 };
	char cell[1 + 2 * BENCH_COLS_MAX][CELL_MAX];
	unsigned int r, c, i, pass, last = 0;
	size_t n;

	fprintf(f, "%s: %s\n", t->suite, t->title);
	/* Pass 0 measures every cell, pass 1 prints them padded. */
	for (pass = 0; pass < 2; pass++) {
		for (r = 0; r <= t->nrows; r++) {
			for (i = 0; i < ncells; i++)
				cell[i][0] = '\0';
			for (c = 0; c < t->ncols; c++) {
				if (!r) {
					snprintf(cell[1 + c], CELL_MAX, "%s", t->col[c]);
					if (is_ref(t, c))
						snprintf(cell[1 + t->ncols + c], CELL_MAX,
							 "%s vs %s", t->col[t->subject], t->col[c]);
					continue;
				}
				fmt_cell(cell[1 + c], CELL_MAX, t, r - 1, c);
				if (is_ref(t, c))
					fmt_ratio(cell[1 + t->ncols + c], CELL_MAX,
						  bench_ratio(t, r - 1, t->subject, c));
			}
			if (!r)
				snprintf(cell[0], CELL_MAX, "metric");
			else
				snprintf(cell[0], CELL_MAX, "%s (%s)",
					 t->row[r - 1].name, t->row[r - 1].unit);
			for (i = 0; i < ncells; i++) {
				if (!pass) {
					n = strlen(cell[i]);
					/* "±" is two bytes but one column. */
					if (strstr(cell[i], "±"))
						n--;
					if (n > width[i])
						width[i] = (unsigned int)n;
					continue;
				}
				if (!width[i])
					continue;
				n = strlen(cell[i]) - (strstr(cell[i], "±") ? 1 : 0);
				fprintf(f, "%s%s%*s", i ? "   " : "  ", cell[i],
					i == last ? 0 : (int)(width[i] - n), "");
			}
			if (pass)
				fputc('\n', f);
		}
		for (i = 0; i < ncells; i++)
			if (width[i])
				last = i;
	}
	for (c = 0; c < t->ncols; c++)
		if (t->skip[c])
			fprintf(f, "  %s skipped: %s\n", t->col[c], t->skip[c]);
	for (i = 0; i < t->nnotes; i++)
		fprintf(f, "  %s\n", t->note[i]);
}

void bench_json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

void bench_table_json(const struct bench_table *t, FILE *f)
{
	unsigned int r, c, i;
	struct bench_stat st;
	char name[2 * CELL_MAX];
	bool first;

	fputs("{\"suite\":", f);
	bench_json_str(f, t->suite);
	fputs(",\"title\":", f);
	bench_json_str(f, t->title);
	fputs(",\"columns\":[", f);
	for (c = 0; c < t->ncols; c++) {
		fputs(c ? "," : "", f);
		bench_json_str(f, t->col[c]);
	}
	fputs("],\"skipped\":{", f);
	for (c = 0, first = true; c < t->ncols; c++) {
		if (!t->skip[c])
			continue;
		fputs(first ? "" : ",", f);
		first = false;
		bench_json_str(f, t->col[c]);
		fputc(':', f);
		bench_json_str(f, t->skip[c]);
	}
	fputs("},\"metrics\":[", f);
	for (r = 0; r < t->nrows; r++) {
		const struct bench_row *row = &t->row[r];

		fputs(r ? ",{\"name\":" : "{\"name\":", f);
		bench_json_str(f, row->name);
		fputs(",\"unit\":", f);
		bench_json_str(f, row->unit);
		fprintf(f, ",\"better\":\"%s\",\"values\":{",
			row->better == BENCH_HIGHER_BETTER ? "higher" : "lower");
		for (c = 0, first = true; c < t->ncols; c++) {
			if (!row->cell[c].n)
				continue;
			st = bench_cell_stat(&row->cell[c]);
			fputs(first ? "" : ",", f);
			first = false;
			bench_json_str(f, t->col[c]);
			fputs(":{\"median\":", f);
			json_num(f, st.median);
			fputs(",\"min\":", f);
			json_num(f, st.min);
			fputs(",\"max\":", f);
			json_num(f, st.max);
			fputs(",\"samples\":[", f);
			for (i = 0; i < row->cell[c].n; i++) {
				fputs(i ? "," : "", f);
				json_num(f, row->cell[c].v[i]);
			}
			fputs("]}", f);
		}
		/* Ratio of medians, above 1 when the subject is better. */
		fputs("},\"ratios\":{", f);
		for (c = 0, first = true; c < t->ncols; c++) {
			if (!is_ref(t, c))
				continue;
			fputs(first ? "" : ",", f);
			first = false;
			snprintf(name, sizeof(name), "%s vs %s",
				 t->col[t->subject], t->col[c]);
			bench_json_str(f, name);
			fputc(':', f);
			json_num(f, bench_ratio(t, (int)r, t->subject, (int)c));
		}
		fputs("}}", f);
	}
	fputs("],\"notes\":[", f);
	for (i = 0; i < t->nnotes; i++) {
		fputs(i ? "," : "", f);
		bench_json_str(f, t->note[i]);
	}
	fputs("]}", f);
}

/* ------------------------------------------------------------- environment */

volatile sig_atomic_t bench_stop;

static void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

void bench_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int bench_pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return -errno;
	return 0;
}

int bench_default_cpu(void)
{
	cpu_set_t set;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -1;
	for (cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--)
		if (CPU_ISSET(cpu, &set))
			return cpu;
	return -1;
}

/* Write or read all of @len bytes; false on error or end of file. */
static bool full_io(int fd, void *buf, size_t len, bool wr)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = wr ? write(fd, p, len) : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

int bench_child_run(int (*fn)(void *arg, double *out, unsigned int n),
		    void *arg, double *out, unsigned int n)
{
	int fds[2], status, err;
	int32_t ret;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	fflush(NULL);	/* the child must not print our buffered output again */
	pid = fork();
	if (pid < 0) {
		err = -errno;
		goto out_close;
	}
	if (!pid) {
		close(fds[0]);
		ret = fn(arg, out, n);
		/* _exit: no atexit handlers, they belong to the parent. */
		if (!full_io(fds[1], &ret, sizeof(ret), true) ||
		    !full_io(fds[1], out, n * sizeof(*out), true))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	fds[1] = -1;
	if (!full_io(fds[0], &ret, sizeof(ret), false) ||
	    !full_io(fds[0], out, n * sizeof(*out), false))
		ret = -EPIPE;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	err = ret;
	if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		err = -ECHILD;
out_close:
	close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return err;
}

/* ------------------------------------------------------------- huge pages */

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
