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
#include <poll.h>
#include <sys/mman.h>
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

void bench_table_name(struct bench_table *t, const char *name)
{
	snprintf(t->name, sizeof(t->name), "%s", name);
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
	const struct bench_cell *a = &r->cell[col], *b = &r->cell[ref];
	struct bench_cell c = { NULL, 0, 0 };
	double x, y, m;
	unsigned int i;

	if (!t->paired) {
		x = bench_cell_stat(a).median;
		y = bench_cell_stat(b).median;
		if (isnan(x) || isnan(y) || x <= 0 || y <= 0)
			return NAN;
		return r->better == BENCH_HIGHER_BETTER ? x / y : y / x;
	}
	/* Rep by rep, as far as both columns got. */
	c.v = malloc((a->n ? a->n : 1) * sizeof(*c.v));
	if (!c.v)
		return NAN;
	for (i = 0; i < a->n && i < b->n; i++) {
		x = a->v[i];
		y = b->v[i];
		if (x > 0 && y > 0)
			c.v[c.n++] = r->better == BENCH_HIGHER_BETTER ? x / y : y / x;
	}
	m = bench_cell_stat(&c).median;	/* NAN when empty */
	free(c.v);
	return m;
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

	fprintf(f, "%s%s%s: %s\n", t->suite, t->name[0] ? " " : "", t->name, t->title);
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
	if (t->name[0]) {
		fputs(",\"table\":", f);
		bench_json_str(f, t->name);
	}
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

int bench_default_pair(int cpu[2])
{
	cpu_set_t set;
	int c, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cpu[n++] = c;
	return n == 2 ? 0 : -ENODEV;
}

bool bench_cpu_allowed(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(set), &set))
		return false;
	return CPU_ISSET(cpu, &set);
}

/* ------------------------------------------------------------- timestamps */

#if defined(__x86_64__) || defined(__i386__)
bool bench_ticks_tsc;
#endif
static double ticks_per_ns = 1;
static char ticks_what[96] = "CLOCK_MONOTONIC";

/* Does the TSC tick at a constant rate, whatever the CPU's frequency? */
static bool tsc_constant(void)
{
	char line[4096];
	bool ok = false;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		ok = strstr(line, " constant_tsc") && strstr(line, " nonstop_tsc");
		break;
	}
	fclose(f);
	return ok;
}

void bench_ticks_init(void)
{
	static bool done;
	uint64_t t0, t1, c0, c1, best = UINT64_MAX;
	unsigned int i;

	if (done)
		return;
	done = true;
#if defined(__x86_64__) || defined(__i386__)
	if (tsc_constant()) {
		bench_ticks_tsc = true;
		/* 20 ms against the monotonic clock: parts per 10^5. */
		t0 = bench_now_ns();
		c0 = bench_ticks();
		do
			t1 = bench_now_ns();
		while (t1 - t0 < 20000000);
		c1 = bench_ticks();
		ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
		if (ticks_per_ns < 0.1 || ticks_per_ns > 20) {
			bench_ticks_tsc = false;	/* not believable */
			ticks_per_ns = 1;
		}
	}
#endif
	/* What one read costs: the least of many back-to-back pairs. */
	for (i = 0; i < 10000; i++) {
		c0 = bench_ticks();
		c1 = bench_ticks();
		if (c1 - c0 < best)
			best = c1 - c0;
	}
#if defined(__x86_64__) || defined(__i386__)
	if (bench_ticks_tsc)
		snprintf(ticks_what, sizeof(ticks_what), "lfence+rdtsc, TSC at %.3f GHz, %.0f ns a read",
			 ticks_per_ns, bench_ticks_ns(best));
	else
#endif
		snprintf(ticks_what, sizeof(ticks_what), "CLOCK_MONOTONIC, %.0f ns a read",
			 bench_ticks_ns(best));
}

double bench_ticks_ns(uint64_t ticks)
{
	return (double)ticks / ticks_per_ns;
}

const char *bench_ticks_describe(void)
{
	return ticks_what;
}

/* ------------------------------------------------------------- the host */

#define HOST_ROUNDS	20000u
#define HOST_WARMUP	1000u		/* untimed: the first waits for the fork */
#define HOST_ADDS	(20u * 1000 * 1000)

struct host_probe {
	_Alignas(64) _Atomic uint64_t ping;
	_Alignas(64) _Atomic uint64_t pong;
	_Alignas(64) struct bench_host h;
};

static int host_side(void *arg, int side)
{
	struct host_probe *p = arg;
	uint64_t i, t0, x = 0;

	/* Release and acquire: the round numbers are all that travel. */
	if (side) {
		for (i = 1; i <= HOST_WARMUP + HOST_ROUNDS; i++) {
			while (atomic_load_explicit(&p->ping, memory_order_acquire) != i)
				bench_cpu_relax();
			atomic_store_explicit(&p->pong, i, memory_order_release);
		}
		return 0;
	}
	for (i = 1, t0 = 0; i <= HOST_WARMUP + HOST_ROUNDS; i++) {
		if (i == HOST_WARMUP + 1)
			t0 = bench_now_ns();
		atomic_store_explicit(&p->ping, i, memory_order_release);
		while (atomic_load_explicit(&p->pong, memory_order_acquire) != i)
			bench_cpu_relax();
	}
	p->h.line_ns = (double)(bench_now_ns() - t0) / HOST_ROUNDS;
	/* Adds that each wait for the last: one a cycle on any core. */
	t0 = bench_now_ns();
	for (i = 0; i < HOST_ADDS; i++) {
		x++;
		__asm__ __volatile__("" : "+r"(x));
	}
	p->h.ghz = (double)HOST_ADDS / (double)(bench_now_ns() - t0);
	return 0;
}

int bench_host_probe(const int cpu[2], struct bench_host *h)
{
	struct host_probe *p = bench_shared_alloc(sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	err = bench_pair_run(host_side, p, cpu, 10000);
	if (!err)
		*h = p->h;
	bench_shared_free(p, sizeof(*p));
	return err;
}

/* ------------------------------------------------------------- two processes */

void *bench_shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void bench_shared_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

int bench_fd_io(int fd, void *buf, size_t len, bool wr)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = wr ? write(fd, p, len) : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
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
		if (bench_fd_io(fds[1], &ret, sizeof(ret), true) ||
		    bench_fd_io(fds[1], out, n * sizeof(*out), true))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	fds[1] = -1;
	if (bench_fd_io(fds[0], &ret, sizeof(ret), false) ||
	    bench_fd_io(fds[0], out, n * sizeof(*out), false))
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

int bench_pair_run(int (*fn)(void *arg, int side), void *arg, const int cpu[2],
		   unsigned int timeout_ms)
{
	int fds[2][2] = { { -1, -1 }, { -1, -1 } };
	pid_t pid[2] = { -1, -1 };
	bool done[2] = { false, false };
	struct pollfd pfd[2];
	uint64_t deadline, now;
	int32_t ret;
	int err = 0, i, n, status;

	fflush(NULL);	/* the children must not print our buffered output again */
	for (i = 0; i < 2; i++) {
		if (pipe2(fds[i], O_CLOEXEC)) {
			err = -errno;
			goto out;
		}
		pid[i] = fork();
		if (pid[i] < 0) {
			err = -errno;
			goto out;
		}
		if (!pid[i]) {
			close(fds[i][0]);
			ret = bench_pin_cpu(cpu[i]);
			if (!ret)
				ret = fn(arg, i);
			/* _exit: no atexit handlers, they belong to the parent. */
			_exit(bench_fd_io(fds[i][1], &ret, sizeof(ret), true) ? 1 : 0);
		}
		close(fds[i][1]);
		fds[i][1] = -1;
	}

	/* Each child's pipe says when it is done: its status, or end of file. */
	deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000;
	while (!err && !(done[0] && done[1])) {
		for (i = 0; i < 2; i++) {
			pfd[i].fd = done[i] ? -1 : fds[i][0];
			pfd[i].events = POLLIN;
		}
		now = bench_now_ns();
		if (now >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		n = poll(pfd, 2, (int)((deadline - now + 999999) / 1000000));
		if (n < 0 && errno != EINTR) {
			err = -errno;
			break;
		}
		if (bench_stop) {
			err = -EINTR;
			break;
		}
		for (i = 0; i < 2 && n > 0; i++) {
			if (!pfd[i].revents)
				continue;
			done[i] = true;
			if (bench_fd_io(fds[i][0], &ret, sizeof(ret), false))
				ret = -ECHILD;	/* it died before saying anything */
			if (ret && !err)
				err = ret;
		}
	}
out:
	for (i = 0; i < 2; i++) {
		if (pid[i] <= 0)
			continue;
		/* Ours, by pid: one that is not done may spin forever. */
		if (!done[i] || err)
			kill(pid[i], SIGKILL);
		while (waitpid(pid[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			err = -ECHILD;
	}
	for (i = 0; i < 2; i++) {
		if (fds[i][0] >= 0)
			close(fds[i][0]);
		if (fds[i][1] >= 0)
			close(fds[i][1]);
	}
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

void bench_progress(const char *fmt, ...)
{
	va_list ap;

	if (!isatty(STDERR_FILENO))
		return;
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

void bench_progress_done(void)
{
	if (isatty(STDERR_FILENO))
		fputs("\r\033[K", stderr);
}
