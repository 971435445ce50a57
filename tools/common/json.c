// SPDX-License-Identifier: MIT
/*
 * The tools' JSON writer (json.h).
 */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>

#include "json.h"

static void json_indent(struct json *j)
{
	unsigned int i;

	if (j->compact)
		return;
	fputc('\n', j->f);
	for (i = 0; i < j->depth; i++)
		fputs("  ", j->f);
}

/* Length of the valid UTF-8 sequence at @s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 0;
	n = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : 2;
	cp = s[0] & (0x7f >> n);
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

static void json_string(struct json *j, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n;

	fputc('"', j->f);
	while (*s) {
		if (*s == '"' || *s == '\\') {
			fprintf(j->f, "\\%c", *s++);
		} else if (*s == '\n') {
			fputs("\\n", j->f);
			s++;
		} else if (*s < 0x20 || *s == 0x7f) {
			fprintf(j->f, "\\u%04x", *s++);
		} else if (*s < 0x80) {
			fputc(*s++, j->f);
		} else if ((n = utf8_len(s))) {
			fwrite(s, 1, n, j->f);
			s += n;
		} else {
			fputs("\\ufffd", j->f);	/* not UTF-8 */
			s++;
		}
	}
	fputc('"', j->f);
}

/* Start an item: comma, new line, and "key": inside an object. */
static void json_item(struct json *j, const char *key)
{
	if (j->comma)
		fputc(',', j->f);
	if (j->depth)
		json_indent(j);
	if (key) {
		json_string(j, key);
		fputs(j->compact ? ":" : ": ", j->f);
	}
	j->comma = true;
}

void json_open(struct json *j, const char *key, char brace)
{
	json_item(j, key);
	fputc(brace, j->f);
	j->depth++;
	j->comma = false;
}

void json_close(struct json *j, char brace)
{
	bool empty = !j->comma;

	j->depth--;
	if (!empty)
		json_indent(j);
	fputc(brace, j->f);
	j->comma = true;
	if (!j->depth)
		fputc('\n', j->f);
}

void json_str(struct json *j, const char *key, const char *val)
{
	json_item(j, key);
	if (val)
		json_string(j, val);
	else
		fputs("null", j->f);
}

void json_u64(struct json *j, const char *key, uint64_t val)
{
	json_item(j, key);
	fprintf(j->f, "%" PRIu64, val);
}

void json_int(struct json *j, const char *key, long long val)
{
	json_item(j, key);
	fprintf(j->f, "%lld", val);
}

void json_bool(struct json *j, const char *key, bool val)
{
	json_item(j, key);
	fputs(val ? "true" : "false", j->f);
}

void json_double(struct json *j, const char *key, double val)
{
	json_item(j, key);
	if (isfinite(val))
		fprintf(j->f, "%.6g", val);
	else
		fputs("null", j->f);
}
