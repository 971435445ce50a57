// SPDX-License-Identifier: MIT
/*
 * sluice-bench's results: tables, their statistics, and how they are
 * printed, for people or as JSON, and the progress a person watches.
 * See bench.h.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "../common/json.h"
#include "../common/table.h"

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

void bench_note_ratio(struct bench_table *t, int row, int col, const char *what,
		      const char *target)
{
	double r = bench_ratio(t, row, t->subject, col);
	char tg[BENCH_TEXT_MAX] = "";

	if (bench_skipped(t, col)) {
		bench_note(t, "%s: no ratio, %s skipped", what, t->col[col]);
		return;
	}
	if (isnan(r)) {
		bench_note(t, "%s: no ratio (no rep with both cells)", what);
		return;
	}
	if (target)
		snprintf(tg, sizeof(tg), " (target %s)", target);
	if (t->row[row].better == BENCH_HIGHER_BETTER)
		bench_note(t, "%s: sluice %.2fx%s", what, r, tg);
	else
		bench_note(t, "%s: sluice takes %.2fx as long%s", what, 1 / r, tg);
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

/* The metric, the table's columns, then a ratio column for each of them. */
#define PRINT_COLS	(1 + 2 * BENCH_COLS_MAX)
_Static_assert(PRINT_COLS <= TABLE_COLS_MAX, "bench tables fit a table");

void bench_table_print(const struct bench_table *t, FILE *f)
{
	char title[PRINT_COLS][TABLE_CELL_MAX] = { "metric" };
	struct table_col cols[PRINT_COLS] = { { NULL, false } };
	/* Ratio columns of the subject, or of any column without one, stay empty. */
	struct table tab = {
		.cols = cols, .ncols = 1 + 2 * t->ncols, .indent = "  ", .gap = "   ",
	};
	char (*cell)[TABLE_CELL_MAX];
	unsigned int r, c;

	fprintf(f, "%s%s%s: %s\n", t->suite, t->name[0] ? " " : "", t->name, t->title);
	for (c = 0; c < t->ncols; c++) {
		snprintf(title[1 + c], TABLE_CELL_MAX, "%s", t->col[c]);
		if (is_ref(t, c))
			snprintf(title[1 + t->ncols + c], TABLE_CELL_MAX, "%s vs %s",
				 t->col[t->subject], t->col[c]);
	}
	for (c = 0; c < tab.ncols; c++)
		cols[c].title = title[c];
	for (r = 0; r < t->nrows; r++) {
		cell = table_row(&tab);
		if (!cell)
			break;	/* out of memory: the rows so far */
		snprintf(cell[0], TABLE_CELL_MAX, "%s (%s)", t->row[r].name, t->row[r].unit);
		for (c = 0; c < t->ncols; c++) {
			fmt_cell(cell[1 + c], TABLE_CELL_MAX, t, (int)r, (int)c);
			if (is_ref(t, c))
				fmt_ratio(cell[1 + t->ncols + c], TABLE_CELL_MAX,
					  bench_ratio(t, (int)r, t->subject, (int)c));
		}
	}
	table_print(&tab, f);
	table_free(&tab);
	for (c = 0; c < t->ncols; c++)
		if (t->skip[c])
			fprintf(f, "  %s skipped: %s\n", t->col[c], t->skip[c]);
	for (c = 0; c < t->nnotes; c++)
		fprintf(f, "  %s\n", t->note[c]);
}

void bench_table_json(const struct bench_table *t, struct json *j)
{
	char name[2 * sizeof(t->col[0]) + 8];
	const struct bench_row *row;
	struct bench_stat st;
	unsigned int r, c, i;

	json_open(j, NULL, '{');
	json_str(j, "suite", t->suite);
	if (t->name[0])
		json_str(j, "table", t->name);
	json_str(j, "title", t->title);
	json_open(j, "columns", '[');
	for (c = 0; c < t->ncols; c++)
		json_str(j, NULL, t->col[c]);
	json_close(j, ']');
	json_open(j, "skipped", '{');
	for (c = 0; c < t->ncols; c++)
		if (t->skip[c])
			json_str(j, t->col[c], t->skip[c]);
	json_close(j, '}');
	json_open(j, "metrics", '[');
	for (r = 0; r < t->nrows; r++) {
		row = &t->row[r];
		json_open(j, NULL, '{');
		json_str(j, "name", row->name);
		json_str(j, "unit", row->unit);
		json_str(j, "better", row->better == BENCH_HIGHER_BETTER ? "higher" : "lower");
		json_open(j, "values", '{');
		for (c = 0; c < t->ncols; c++) {
			if (!row->cell[c].n)
				continue;
			st = bench_cell_stat(&row->cell[c]);
			json_open(j, t->col[c], '{');
			json_double(j, "median", st.median);
			json_double(j, "min", st.min);
			json_double(j, "max", st.max);
			json_open(j, "samples", '[');
			for (i = 0; i < row->cell[c].n; i++)
				json_double(j, NULL, row->cell[c].v[i]);
			json_close(j, ']');
			json_close(j, '}');
		}
		json_close(j, '}');
		/* Above 1 when the subject is better; as printed, see bench_ratio(). */
		json_open(j, "ratios", '{');
		for (c = 0; c < t->ncols; c++) {
			if (!is_ref(t, c))
				continue;
			snprintf(name, sizeof(name), "%s vs %s", t->col[t->subject], t->col[c]);
			json_double(j, name, bench_ratio(t, (int)r, t->subject, (int)c));
		}
		json_close(j, '}');
		json_close(j, '}');
	}
	json_close(j, ']');
	json_open(j, "notes", '[');
	for (i = 0; i < t->nnotes; i++)
		json_str(j, NULL, t->note[i]);
	json_close(j, ']');
	json_close(j, '}');
}

/* ------------------------------------------------------------- progress */

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
