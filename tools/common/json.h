/* SPDX-License-Identifier: MIT */
/*
 * A small JSON writer for the tools' --json output, pretty-printed or
 * compact.  It places commas and indentation, and escapes strings so the
 * output stays valid whatever bytes a name holds.  Values stream to the
 * FILE as they come: a long run can print its document piece by piece.
 */
#ifndef SLUICE_TOOLS_JSON_H
#define SLUICE_TOOLS_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* Zeroed but for f (and compact) before the document's first item. */
struct json {
	FILE *f;
	unsigned int depth;
	bool comma;		/* an item precedes at this depth */
	bool compact;		/* no new lines but the one after the document */
};

/*
 * Every call takes the @key of the item inside an object, or NULL for an
 * item of an array or the document itself.
 */

/* Open an object ('{') or an array ('['). */
void json_open(struct json *j, const char *key, char brace);
/* Close it ('}' or ']'); closing the document ends its line. */
void json_close(struct json *j, char brace);

/* A string, or null when @val is NULL. */
void json_str(struct json *j, const char *key, const char *val);
void json_u64(struct json *j, const char *key, uint64_t val);
void json_int(struct json *j, const char *key, long long val);
void json_bool(struct json *j, const char *key, bool val);
/* A measured number, six significant digits; null if it is not finite. */
void json_double(struct json *j, const char *key, double val);

#endif /* SLUICE_TOOLS_JSON_H */
