// SPDX-License-Identifier: MIT
/*
 * Tables for people (table.h).
 */
#include <stdlib.h>
#include <string.h>

#include "table.h"

char (*table_row(struct table *t))[TABLE_CELL_MAX]
{
	char (*cells)[TABLE_CELL_MAX];

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;

		cells = realloc(t->cells, cap * t->ncols * TABLE_CELL_MAX);
		if (!cells)
			return NULL;
		t->cells = cells;
		t->cap = cap;
	}
	cells = t->cells + t->nrows++ * t->ncols;
	memset(cells, 0, t->ncols * TABLE_CELL_MAX);
	return cells;
}

void table_free(struct table *t)
{
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

/* Characters in @s: bytes that do not continue a UTF-8 sequence. */
static unsigned int text_width(const char *s)
{
	unsigned int n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void pad(FILE *f, unsigned int n)
{
	while (n--)
		fputc(' ', f);
}

static void table_print_row(const struct table *t, const unsigned int *w,
			    unsigned int last, const char *const *cell, FILE *f)
{
	const char *gap = t->gap ? t->gap : "  ";
	unsigned int i, n;
	bool first = true;

	for (i = 0; i <= last; i++) {
		if (!w[i])
			continue;
		fputs(first ? (t->indent ? t->indent : "") : gap, f);
		first = false;
		n = w[i] - text_width(cell[i]);
		if (t->cols[i].right)
			pad(f, n);
		fputs(cell[i], f);
		if (!t->cols[i].right && i < last)
			pad(f, n);
	}
	fputc('\n', f);
}

void table_print(const struct table *t, FILE *f)
{
	const char *cell[TABLE_COLS_MAX];
	unsigned int w[TABLE_COLS_MAX], i, n, last = 0;
	size_t r;

	for (i = 0; i < t->ncols; i++) {
		w[i] = text_width(t->cols[i].title);
		cell[i] = t->cols[i].title;
	}
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			n = text_width(t->cells[r * t->ncols + i]);
			w[i] = n > w[i] ? n : w[i];
		}
	for (i = 0; i < t->ncols; i++)
		if (w[i])
			last = i;
	table_print_row(t, w, last, cell, f);
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++)
			cell[i] = t->cells[r * t->ncols + i];
		table_print_row(t, w, last, cell, f);
	}
}
