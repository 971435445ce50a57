/* SPDX-License-Identifier: MIT */
/*
 * Tables for people: rows of text cells under a line of titles, each
 * column as wide as its widest cell.  Widths count characters, not bytes,
 * so "±" or "µ" take one column.
 */
#ifndef SLUICE_TOOLS_TABLE_H
#define SLUICE_TOOLS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define TABLE_CELL_MAX	96	/* bytes of a cell, its NUL included */
#define TABLE_COLS_MAX	32

struct table_col {
	const char *title;
	bool right;		/* right-aligned (numbers) */
};

/*
 * Zeroed but for cols, ncols and the spacing; table_free() when done.
 * A column whose title and cells are all empty is left out, with its gap:
 * a table may have columns that only some of its uses fill.
 */
struct table {
	const struct table_col *cols;
	unsigned int ncols;		/* at most TABLE_COLS_MAX */
	const char *indent;		/* before the first column; NULL: none */
	const char *gap;		/* between columns; NULL: two blanks */
	size_t nrows, cap;
	char (*cells)[TABLE_CELL_MAX];
};

/* The ncols empty cells of a new row, or NULL when out of memory. */
char (*table_row(struct table *t))[TABLE_CELL_MAX];

/* The titles, then every row; the last column has no trailing blanks. */
void table_print(const struct table *t, FILE *f);

void table_free(struct table *t);

#endif /* SLUICE_TOOLS_TABLE_H */
