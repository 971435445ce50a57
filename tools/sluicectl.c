// SPDX-License-Identifier: MIT
/*
 * sluicectl: list, inspect and remove sluice regions, and set up huge pages.
 *
 *	sluicectl [--json] ls
 *	sluicectl [--json] info NAME
 *	sluicectl rm [--force] NAME...
 *	sluicectl [--json] setup --hugepages N [--mount DIR] [--quiet]
 *	sluicectl [--json] watch [--count N] [--timeout SEC] [REGION...]
 *
 * Human output goes to stdout in aligned columns; --json prints one JSON
 * document instead, for scripts.  Errors go to stderr as
 * "sluicectl: CMD NAME: reason".  The exit status is 0 on success, 1 when an
 * operation failed and 2 for a usage error (see sluicectl(8)).
 *
 * The tool links libsluice.a, so beside the public API it uses the huge
 * page and process helpers of lib/internal.h, and reads the processes
 * attached to rings and channels from their shared layouts (spsc_core.h,
 * lib/chan_layout.h).
 */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <sluice.h>
#include <sluice/liveness.h>
#include <sluice/spsc_core.h>

#include "chan_layout.h"
#include "internal.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION		"0.1.0"
#endif

#define PROG			"sluicectl"
#define DEFAULT_HUGETLBFS	"/dev/hugepages"

/* Exit codes, documented in sluicectl(8): scripts rely on them. */
enum {
	EXIT_OK		= 0,
	EXIT_FAIL	= 1,
	EXIT_USAGE	= 2,
};

/* Options given before the command (or as the command's own options). */
struct ctl_opts {
	bool json;
	bool quiet;
};

struct ctl_cmd {
	const char *name;
	int (*run)(const struct ctl_cmd *c, int argc, char **argv,
		   struct ctl_opts *o);
	const char *usage;	/* what follows "sluicectl NAME" */
	const char *brief;	/* one line for the command list */
	const char *help;	/* what it does and its options */
};

/* ------------------------------------------------------------ messages */

static void __attribute__((format(printf, 1, 2))) errmsg(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* "sluicectl: CMD ARG: reason" for a negative errno @err. */
static void errmsg_errno(const char *cmd, const char *arg, int err)
{
	if (arg)
		errmsg("%s %s: %s", cmd, arg, strerror(-err));
	else
		errmsg("%s: %s", cmd, strerror(-err));
}

static void cmd_help(const struct ctl_cmd *c, FILE *f)
{
	fprintf(f, "Usage: " PROG " %s %s\n\n%s", c->name, c->usage, c->help);
}

/* Report a usage error of command @cmd (NULL for the global options). */
static int __attribute__((format(printf, 2, 3)))
usage_err(const char *cmd, const char *fmt, ...)
{
	const char *sp = cmd ? " " : "";
	va_list ap;

	fprintf(stderr, PROG "%s%s: ", sp, cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PROG "%s%s --help' for more information.\n",
		sp, cmd ? cmd : "");
	return EXIT_USAGE;
}

/*
 * Explain what getopt_long() rejected.  It prints nothing itself (opterr is
 * 0), since it would name the command rather than the program.
 */
static int bad_option(const char *cmd, int ch, char **argv)
{
	const char *arg = argv[optind - 1];

	if (ch == ':')
		return usage_err(cmd, "option '%s' needs an argument", arg);
	if (optopt && strncmp(arg, "--", 2))
		return usage_err(cmd, "invalid option -- '%c'", optopt);
	return usage_err(cmd, "unrecognized option '%s'", arg);
}

/*
 * Parse the options of a command that takes only --help and --json.
 * Returns -1 to go on with argv[optind], else the exit code.
 */
static int common_opts(const struct ctl_cmd *c, int argc, char **argv,
		       struct ctl_opts *o)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 }
	};
	int ch;

	while ((ch = getopt_long(argc, argv, ":hj", longopts, NULL)) != -1) {
		switch (ch) {
		case 'h':
			cmd_help(c, stdout);
			return EXIT_OK;
		case 'j':
			o->json = true;
			break;
		default:
			return bad_option(c->name, ch, argv);
		}
	}
	return -1;
}

/* ------------------------------------------------------------ formatting */

/* Bytes as ls -h would: 512, 4K, 2M, 1.5G. */
static const char *fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	unsigned int u = 0;
	double d = (double)v / 1024;

	if (v < 1024) {
		snprintf(buf, len, "%" PRIu64, v);
		return buf;
	}
	while (d >= 1024 && u < sizeof(units) - 2) {
		d /= 1024;
		u++;
	}
	if (v % (1ull << (10 * (u + 1))) == 0)
		snprintf(buf, len, "%.0f%c", d, units[u]);
	else if (d >= 1023.95 && u < sizeof(units) - 2)
		snprintf(buf, len, "1.0%c", units[u + 1]);
	else
		snprintf(buf, len, "%.1f%c", d, units[u]);
	return buf;
}

/* CLOCK_REALTIME nanoseconds as local or UTC (ISO 8601) time. */
static const char *fmt_time(uint64_t ns, bool utc, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t n;

	if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)))
		return "?";
	if (utc) {
		n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf + n, len - n, ".%09" PRIu64 "Z", ns % 1000000000u);
	} else {
		strftime(buf, len, "%Y-%m-%d %H:%M:%S %z", &tm);
	}
	return buf;
}

static const char *obj_type_str(uint32_t type)
{
	switch (type) {
	case SLUICE_OBJ_RAW:
		return "raw";
	case SLUICE_OBJ_SPSC:
		return "spsc";
	case SLUICE_OBJ_CHAN:
		return "chan";
	}
	return NULL;
}

/* One word for why a region could not be opened. */
static const char *region_state(int err)
{
	switch (-err) {
	case 0:
		return "ok";
	case EAGAIN:
		return "not-ready";
	case EBADMSG:
		return "corrupt";
	case EPROTO:
		return "bad-abi";
	case EACCES:
	case EPERM:
		return "denied";
	case ENOENT:
		return "gone";
	}
	return "error";
}

/* ------------------------------------------------------------ tables */

#define CELL_MAX	96
#define TABLE_COLS_MAX	16

struct column {
	const char *title;
	bool right;		/* right-aligned (numbers) */
};

/* Rows of text cells, printed with every column as wide as its widest. */
struct table {
	const struct column *cols;
	unsigned int ncols;
	size_t nrows, cap;
	char (*cells)[CELL_MAX];
};

/* Cells of a new row, or NULL when out of memory. */
static char (*table_row(struct table *t))[CELL_MAX]
{
	char (*cells)[CELL_MAX];

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;

		cells = realloc(t->cells, cap * t->ncols * CELL_MAX);
		if (!cells)
			return NULL;
		t->cells = cells;
		t->cap = cap;
	}
	cells = t->cells + t->nrows++ * t->ncols;
	memset(cells, 0, t->ncols * CELL_MAX);
	return cells;
}

static void table_print_row(const struct table *t, const int *w,
			    const char *const *cell)
{
	unsigned int i;

	for (i = 0; i < t->ncols; i++) {
		const char *sep = i ? "  " : "";

		/* The last column is not padded: no trailing blanks. */
		if (t->cols[i].right)
			printf("%s%*s", sep, w[i], cell[i]);
		else if (i + 1 < t->ncols)
			printf("%s%-*s", sep, w[i], cell[i]);
		else
			printf("%s%s", sep, cell[i]);
	}
	putchar('\n');
}

static void table_print(const struct table *t)
{
	const char *cell[TABLE_COLS_MAX];
	int w[TABLE_COLS_MAX];
	unsigned int i;
	size_t r;

	for (i = 0; i < t->ncols; i++) {
		w[i] = (int)strlen(t->cols[i].title);
		cell[i] = t->cols[i].title;
	}
	for (r = 0; r < t->nrows; r++)
		for (i = 0; i < t->ncols; i++) {
			int n = (int)strlen(t->cells[r * t->ncols + i]);

			w[i] = n > w[i] ? n : w[i];
		}
	table_print_row(t, w, cell);
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++)
			cell[i] = t->cells[r * t->ncols + i];
		table_print_row(t, w, cell);
	}
}

/* ------------------------------------------------------------ JSON */

/*
 * A small JSON writer: pretty-printed (or, compact, one document a line),
 * commas and indentation handled here, strings escaped so the output stays
 * valid whatever bytes a name holds.
 */
struct json {
	FILE *f;
	unsigned int depth;
	bool comma;		/* an item precedes at this depth */
	bool compact;		/* no new lines but the one after the document */
};

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

static void json_open(struct json *j, const char *key, char brace)
{
	json_item(j, key);
	fputc(brace, j->f);
	j->depth++;
	j->comma = false;
}

static void json_close(struct json *j, char brace)
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

static void json_str(struct json *j, const char *key, const char *val)
{
	json_item(j, key);
	if (val)
		json_string(j, val);
	else
		fputs("null", j->f);
}

static void json_u64(struct json *j, const char *key, uint64_t val)
{
	json_item(j, key);
	fprintf(j->f, "%" PRIu64, val);
}

static void json_int(struct json *j, const char *key, long long val)
{
	json_item(j, key);
	fprintf(j->f, "%lld", val);
}

static void json_bool(struct json *j, const char *key, bool val)
{
	json_item(j, key);
	fputs(val ? "true" : "false", j->f);
}

/* The header fields of a region, shared by ls and info. */
static void json_region_info(struct json *j,
			     const struct sluice_region_info *info)
{
	int fb = info->huge_fallback_err;
	char buf[64];

	snprintf(buf, sizeof(buf), "%04o", info->mode);
	json_u64(j, "size", info->size);
	json_str(j, "backing", sluice_backing_str(info->backing));
	json_u64(j, "page_size", info->page_size);
	json_str(j, "pages", sluice_pages_str(info->pages));
	json_int(j, "node", info->node);
	json_int(j, "node_requested", info->node_requested);
	json_int(j, "huge_fallback_errno", -fb);
	json_str(j, "huge_fallback", fb ? strerror(-fb) : NULL);
	json_u64(j, "abi_version", info->abi_version);
	json_str(j, "mode", buf);
	json_int(j, "creator_pid", info->creator_pid);
	json_u64(j, "creator_uid", info->creator_uid);
	json_bool(j, "creator_alive", info->creator_alive);
	json_u64(j, "created_ns", info->created_ns);
	json_str(j, "created", fmt_time(info->created_ns, true, buf,
					  sizeof(buf)));
	json_u64(j, "heap_used", info->heap_used);
	json_u64(j, "heap_size", info->heap_size);
	json_u64(j, "nr_objs", info->nr_objs);
}

/* ------------------------------------------------------------ regions */

/* Directory entry @idx; -ENOENT past the end. */
static int region_obj(const struct sluice_region *r, unsigned int idx,
		      struct sluice_obj_info *oi)
{
	memset(oi, 0, sizeof(*oi));
	return sluice_region_obj(r, idx, oi);
}

/*
 * Is the object count itself corrupted?  sluice_region_info() clamps it to
 * SLUICE_REGION_OBJS_MAX, but sluice_region_obj() past every possible entry
 * says -ENOENT for a sane count and -EBADMSG for a corrupted one.
 */
static int region_dir_check(const struct sluice_region *r)
{
	struct sluice_obj_info oi;
	int err = region_obj(r, SLUICE_REGION_OBJS_MAX, &oi);

	return err == -ENOENT ? 0 : err;
}

/* 0 if the count and every entry of the directory are sane. */
static int region_objs_check(const struct sluice_region *r, unsigned int nr)
{
	struct sluice_obj_info oi;
	unsigned int i;
	int err = region_dir_check(r);

	for (i = 0; !err && i < nr; i++) {
		err = region_obj(r, i, &oi);
		if (err == -ENOENT)	/* fewer now than at the snapshot */
			return 0;
	}
	return err;
}

/* ------------------------------------------------------------ peers */

/*
 * The processes attached to a region's objects: the two sides of each SPSC
 * ring, and the reader and writer tables of each channel.  They are read
 * straight from shared memory that any process may have scribbled on, so
 * every value is loaded once into a local and checked before it is used,
 * and an object whose layout does not check out is an error, not a read.
 *
 * Nothing is locked: a side or a place taken or given up while we look may
 * be seen half changed (a new pid with the old owner's start), which shows
 * for one look as a dead peer.  Tools report; the library decides.
 */
enum peer_role { PEER_PRODUCER, PEER_CONSUMER, PEER_WRITER, PEER_READER };

struct peer {
	const char *object;	/* the object's name */
	uint32_t type;		/* SLUICE_OBJ_SPSC or SLUICE_OBJ_CHAN */
	enum peer_role role;
	uint32_t kind;		/* channel ends: SLUICE_CHAN_STRONG or _WEAK */
	pid_t pid;		/* in the attached process's pid namespace */
	uint64_t start;		/* its start time; 0: not known (pid alone) */
	bool marked_dead;	/* SPSC: a survivor's monitor saw it die */
};

/* Called for each peer; non-zero stops the walk and is returned. */
typedef int (*peer_fn)(const struct peer *p, void *ctx);

static const char *peer_role_str(const struct peer *p)
{
	bool weak = p->kind == SLUICE_CHAN_WEAK;

	switch (p->role) {
	case PEER_PRODUCER:
		return "producer";
	case PEER_CONSUMER:
		return "consumer";
	case PEER_WRITER:
		return weak ? "weak writer" : "strong writer";
	case PEER_READER:
		return weak ? "weak reader" : "strong reader";
	}
	return "?";
}

/* The role without the kind, for JSON, which has the kind apart. */
static const char *peer_role_word(enum peer_role role)
{
	static const char *const words[] = {
		[PEER_PRODUCER] = "producer", [PEER_CONSUMER] = "consumer",
		[PEER_WRITER] = "writer", [PEER_READER] = "reader",
	};

	return words[role];
}

/* Is @p's process running?  A start time of 0 checks the pid alone. */
static bool peer_alive(const struct peer *p)
{
	uint64_t now;

	if (p->marked_dead)
		return false;
	if (!p->start)
		return sluice__proc_start_time(p->pid, &now) == 0;
	return sluice__proc_alive(p->pid, p->start);
}

static int spsc_peers(const struct sluice_region *r,
		      const struct sluice_obj_info *oi, peer_fn fn, void *ctx)
{
	struct peer p = { .object = oi->name, .type = SLUICE_OBJ_SPSC };
	struct sluice_spsc_side *side;
	struct sluice_spsc_ring *ring;
	uint64_t magic;
	uint32_t ctl;
	int i, err;

	if (oi->size < sizeof(*ring))
		return -EPROTO;
	ring = sluice_region_at(r, oi->offset, sizeof(*ring));
	if (!ring || oi->offset % 64)
		return -EBADMSG;
	/* Pairs with the release store of magic that ends sluice_spsc_create(). */
	magic = atomic_load_explicit((_Atomic uint64_t *)&ring->magic,
				     memory_order_acquire);
	if (!magic)
		return -EAGAIN;		/* its creator is still at it */
	if (magic != SLUICE_SPSC_MAGIC || ring->abi != SLUICE_SPSC_ABI)
		return -EPROTO;
	/* The sides sit at fixed offsets (spsc_core.h): no geometry to check. */
	for (i = 0; i < 2; i++) {
		side = i ? &ring->cons : &ring->prod;
		/* Pairs with side_claim()'s release store: pid and start are the claimer's. */
		ctl = atomic_load_explicit(&side->ctl, memory_order_acquire);
		if (!(ctl & SLUICE_SPSC_ATTACHED) || (ctl & SLUICE_SPSC_CLOSED))
			continue;
		p.pid = atomic_load_explicit(&side->pid, memory_order_relaxed);
		p.start = atomic_load_explicit(&side->start, memory_order_relaxed);
		if (p.pid <= 0)
			continue;
		p.role = i ? PEER_CONSUMER : PEER_PRODUCER;
		p.marked_dead = ctl & SLUICE_SPSC_DEAD;
		err = fn(&p, ctx);
		if (err)
			return err;
	}
	return 0;
}

/* A private copy of a channel's configuration, checked as chan.c does. */
static int chan_config_check(const struct sluice_chan_hdr *c, uint64_t obj_size)
{
	const uint64_t readers_off = ((sizeof(*c) + 63) & ~(uint64_t)63) +
				     CHAN_INDEX_N * sizeof(uint64_t);

	if (c->abi != SLUICE_CHAN_ABI)
		return -EPROTO;
	if (c->csum != sluice__fnv1a((const unsigned char *)c + CHAN_CSUM_FROM,
				     CHAN_CSUM_TO - CHAN_CSUM_FROM))
		return -EBADMSG;
	/* Bounded first, so the sums below cannot overflow. */
	if (c->readers_max < 1 || c->readers_max > SLUICE_CHAN_ENDS_MAX ||
	    c->writers_max < 1 || c->writers_max > SLUICE_CHAN_ENDS_MAX)
		return -EBADMSG;
	if (c->readers_off != readers_off ||
	    c->writers_off != readers_off + (uint64_t)c->readers_max *
				sizeof(struct sluice_chan_rent) ||
	    c->writers_off + (uint64_t)c->writers_max *
	    sizeof(struct sluice_chan_went) > obj_size)
		return -EBADMSG;
	return 0;
}

/* One place of a channel's table: taken, by a pid, of a known kind. */
static int chan_place(struct peer *p, _Atomic uint64_t *owner_p,
		      _Atomic uint64_t *start_p, peer_fn fn, void *ctx)
{
	/* Pairs with the stores that take a place: its start is behind it. */
	uint64_t owner = atomic_load_explicit(owner_p, memory_order_acquire);

	if (!owner)
		return 0;
	p->pid = CHAN_OWNER_PID(owner);
	p->kind = CHAN_OWNER_KIND(owner);
	/* Kind 0: a reader joining; it shows with its kind in a moment. */
	if (p->pid <= 0 ||
	    (p->kind != SLUICE_CHAN_STRONG && p->kind != SLUICE_CHAN_WEAK))
		return 0;
	/* 0 while a writer is taking its place: the pid alone, then. */
	p->start = atomic_load_explicit(start_p, memory_order_relaxed);
	return fn(p, ctx);
}

static int chan_peers(const struct sluice_region *r,
		      const struct sluice_obj_info *oi, peer_fn fn, void *ctx)
{
	struct peer p = { .object = oi->name, .type = SLUICE_OBJ_CHAN };
	struct sluice_chan_hdr *h, cfg;
	struct sluice_chan_went *wr;
	struct sluice_chan_rent *rd;
	uint64_t magic;
	uint32_t i;
	int err;

	if (oi->size < sizeof(*h))
		return -EPROTO;
	h = sluice_region_at(r, oi->offset, oi->size);
	if (!h || oi->offset % 64)
		return -EBADMSG;
	/* Pairs with the release store of magic that ends sluice_chan_create(). */
	magic = atomic_load_explicit((_Atomic uint64_t *)&h->magic,
				     memory_order_acquire);
	if (!magic)
		return -EAGAIN;
	if (magic != SLUICE_CHAN_MAGIC)
		return -EPROTO;
	/* Read once, check the copy, use the copy. */
	memcpy(&cfg, h, CHAN_CSUM_TO + sizeof(cfg.csum));
	err = chan_config_check(&cfg, oi->size);
	if (err)
		return err;
	wr = (struct sluice_chan_went *)((unsigned char *)h + cfg.writers_off);
	rd = (struct sluice_chan_rent *)((unsigned char *)h + cfg.readers_off);
	p.role = PEER_WRITER;
	for (i = 0; i < cfg.writers_max; i++) {
		err = chan_place(&p, &wr[i].owner, &wr[i].start, fn, ctx);
		if (err)
			return err;
	}
	p.role = PEER_READER;
	for (i = 0; i < cfg.readers_max; i++) {
		err = chan_place(&p, &rd[i].owner, &rd[i].start, fn, ctx);
		if (err)
			return err;
	}
	return 0;
}

/*
 * Call @fn for each process attached to object @oi.  Objects of other
 * types have none.  Returns 0, what @fn returned, or why the object could
 * not be read: -EAGAIN (not made yet), -EPROTO (not what its type says, or
 * another ABI), -EBADMSG (corrupted).
 */
static int obj_peers(const struct sluice_region *r,
		     const struct sluice_obj_info *oi, peer_fn fn, void *ctx)
{
	switch (oi->type) {
	case SLUICE_OBJ_SPSC:
		return spsc_peers(r, oi, fn, ctx);
	case SLUICE_OBJ_CHAN:
		return chan_peers(r, oi, fn, ctx);
	}
	return 0;
}

static bool obj_has_peers(uint32_t type)
{
	return type == SLUICE_OBJ_SPSC || type == SLUICE_OBJ_CHAN;
}

/* Distinct processes attached to a region, and how many of them run. */
struct peer_tally {
	struct {
		pid_t pid;
		uint64_t start;
		bool alive;
	} *v;
	unsigned int n, cap, alive;
};

static int peer_tally_add(const struct peer *p, void *ctx)
{
	struct peer_tally *t = ctx;
	bool alive = peer_alive(p);
	unsigned int i;

	for (i = 0; i < t->n; i++) {
		if (t->v[i].pid != p->pid || t->v[i].start != p->start)
			continue;
		/* Alive at any of its places is alive (a mark may be torn). */
		if (alive && !t->v[i].alive) {
			t->v[i].alive = true;
			t->alive++;
		}
		return 0;
	}
	if (t->n == t->cap) {
		unsigned int cap = t->cap ? 2 * t->cap : 16;
		void *v = realloc(t->v, cap * sizeof(*t->v));

		if (!v)
			return -ENOMEM;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n].pid = p->pid;
	t->v[t->n].start = p->start;
	t->v[t->n].alive = alive;
	t->n++;
	t->alive += alive;
	return 0;
}

/*
 * Count the processes attached to the objects of @r (the first @nr
 * directory entries).  Objects that cannot be read are passed over: info
 * shows why.
 */
static int region_peers(const struct sluice_region *r, unsigned int nr,
			unsigned int *alive, unsigned int *total)
{
	struct peer_tally t = { 0 };
	struct sluice_obj_info oi;
	unsigned int i;
	int err = 0;

	for (i = 0; i < nr && err != -ENOMEM; i++) {
		if (region_obj(r, i, &oi))
			continue;
		err = obj_peers(r, &oi, peer_tally_add, &t);
	}
	*alive = t.alive;
	*total = t.n;
	free(t.v);
	return err == -ENOMEM ? err : 0;
}

/* ------------------------------------------------------------ ls */

/* Processes attached to a region's objects: counted, and running. */
struct ls_peers {
	bool have;
	unsigned int alive;
	unsigned int total;
};

struct ls_entry {
	char *name;
	int err;		/* from opening or checking it, 0 if sane */
	bool have_info;		/* info is valid (even with an error) */
	struct sluice_region_info info;
	struct ls_peers peers;
};

/*
 * Open @name, take a snapshot of its header and check its directory, count
 * the processes attached to its objects, then close it again.  @have_info
 * tells whether @info was filled: a region with a sane header and a
 * corrupted directory has both an error and an info (and no peer count).
 */
static int region_snapshot(const char *name, int wait_ms,
			   struct sluice_region_info *info, bool *have_info,
			   struct ls_peers *peers)
{
	SLUICE_OPTS(sluice_region_open_opts, oo, .wait_ms = wait_ms);
	struct sluice_region *r;
	int err;

	*have_info = false;
	peers->have = false;
	err = sluice_region_open(name, &oo, &r);
	if (err)
		return err;
	memset(info, 0, sizeof(*info));
	info->sz = sizeof(*info);
	err = sluice_region_info(r, info);
	if (err)
		goto out;
	*have_info = true;
	err = region_objs_check(r, info->nr_objs);
	if (err)
		goto out;
	err = region_peers(r, info->nr_objs, &peers->alive, &peers->total);
	peers->have = !err;
out:
	sluice_region_close(r);
	return err;
}

struct ls_list {
	struct ls_entry *v;
	size_t n, cap;
};

static int ls_collect(const char *name, void *ctx)
{
	struct ls_list *l = ctx;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct ls_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	memset(&l->v[l->n], 0, sizeof(l->v[0]));
	l->v[l->n].name = strdup(name);
	if (!l->v[l->n].name)
		return -ENOMEM;
	l->n++;
	return 0;
}

static int ls_cmp(const void *a, const void *b)
{
	const struct ls_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void ls_free(struct ls_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
}

/*
 * Every region by name, sorted, each name once (a name may be listed in both
 * the hugetlbfs and the /dev/shm directory), each with its header or error.
 */
static int ls_gather(struct ls_list *l)
{
	size_t i, n = 0;
	int err;

	err = sluice_region_foreach(ls_collect, l);
	if (err)
		return err < 0 ? err : -EIO;
	if (l->n)
		qsort(l->v, l->n, sizeof(l->v[0]), ls_cmp);
	for (i = 0; i < l->n; i++) {
		if (n && !strcmp(l->v[n - 1].name, l->v[i].name)) {
			free(l->v[i].name);
			continue;
		}
		l->v[n++] = l->v[i];
	}
	l->n = n;
	/* Do not wait for a region being created: report it as it is. */
	for (i = 0; i < l->n; i++)
		l->v[i].err = region_snapshot(l->v[i].name, -1, &l->v[i].info,
					      &l->v[i].have_info, &l->v[i].peers);
	return 0;
}

static void ls_print_json(const struct ls_list *l)
{
	struct json j = { .f = stdout };
	size_t i;

	json_open(&j, NULL, '[');
	for (i = 0; i < l->n; i++) {
		const struct ls_entry *e = &l->v[i];

		json_open(&j, NULL, '{');
		json_str(&j, "name", e->name);
		json_str(&j, "state", region_state(e->err));
		if (e->err) {
			json_int(&j, "errno", -e->err);
			json_str(&j, "error", strerror(-e->err));
		}
		if (e->have_info)
			json_region_info(&j, &e->info);
		if (e->peers.have) {
			json_open(&j, "peers", '{');
			json_u64(&j, "alive", e->peers.alive);
			json_u64(&j, "total", e->peers.total);
			json_close(&j, '}');
		}
		json_close(&j, '}');
	}
	json_close(&j, ']');
}

enum { LS_NAME, LS_SIZE, LS_BACKING, LS_PAGE, LS_NODE, LS_PID, LS_ALIVE,
       LS_OBJS, LS_PEERS, LS_STATE, LS_COLS };

static const struct column ls_cols[LS_COLS] = {
	[LS_NAME] = { "NAME", false },	[LS_SIZE] = { "SIZE", true },
	[LS_BACKING] = { "BACKING", false }, [LS_PAGE] = { "PAGE", true },
	[LS_NODE] = { "NODE", true },	[LS_PID] = { "PID", true },
	[LS_ALIVE] = { "ALIVE", false },	[LS_OBJS] = { "OBJS", true },
	[LS_PEERS] = { "PEERS", true },	[LS_STATE] = { "STATE", false },
};

static_assert(LS_COLS <= TABLE_COLS_MAX, "table too wide");

static void ls_fill_row(char (*c)[CELL_MAX], const struct ls_entry *e)
{
	const struct sluice_region_info *in = &e->info;
	unsigned int i;

	snprintf(c[LS_NAME], CELL_MAX, "%s", e->name);
	/* The state word says it all, unless it is just "error". */
	if (strcmp(region_state(e->err), "error"))
		snprintf(c[LS_STATE], CELL_MAX, "%s", region_state(e->err));
	else
		snprintf(c[LS_STATE], CELL_MAX, "error: %s",
			 strerror(-e->err));
	if (!e->have_info) {
		for (i = LS_NAME + 1; i < LS_STATE; i++)
			strcpy(c[i], "-");
		return;
	}
	fmt_size(in->size, c[LS_SIZE], CELL_MAX);
	snprintf(c[LS_BACKING], CELL_MAX, "%s",
		 sluice_backing_str(in->backing));
	fmt_size(in->page_size, c[LS_PAGE], CELL_MAX);
	if (in->node >= 0)
		snprintf(c[LS_NODE], CELL_MAX, "%d", in->node);
	else
		strcpy(c[LS_NODE], "-");
	snprintf(c[LS_PID], CELL_MAX, "%d", (int)in->creator_pid);
	strcpy(c[LS_ALIVE], in->creator_alive ? "yes" : "no");
	snprintf(c[LS_OBJS], CELL_MAX, "%u", in->nr_objs);
	/* Running of attached: "2/3". */
	if (e->peers.have)
		snprintf(c[LS_PEERS], CELL_MAX, "%u/%u", e->peers.alive,
			 e->peers.total);
	else
		strcpy(c[LS_PEERS], "-");
}

static int ls_print_human(const struct ls_list *l)
{
	struct table t = { .cols = ls_cols, .ncols = LS_COLS };
	char (*row)[CELL_MAX];
	size_t i;

	for (i = 0; i < l->n; i++) {
		row = table_row(&t);
		if (!row) {
			free(t.cells);
			return -ENOMEM;
		}
		ls_fill_row(row, &l->v[i]);
	}
	table_print(&t);
	free(t.cells);
	return 0;
}

static int cmd_ls(const struct ctl_cmd *c, int argc, char **argv,
		  struct ctl_opts *o)
{
	struct ls_list l = { 0 };
	int ret, err;

	ret = common_opts(c, argc, argv, o);
	if (ret >= 0)
		return ret;
	if (optind < argc)
		return usage_err(c->name, "unexpected argument '%s'",
				 argv[optind]);

	err = ls_gather(&l);
	if (!err) {
		if (o->json)
			ls_print_json(&l);
		else
			err = ls_print_human(&l);
	}
	ls_free(&l);
	if (err) {
		errmsg_errno(c->name, NULL, err);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ------------------------------------------------------------ info */

static int peer_skip(const struct peer *p, void *ctx)
{
	(void)p;
	(void)ctx;
	return 0;
}

static int info_peer_json(const struct peer *p, void *ctx)
{
	struct json *j = ctx;

	json_open(j, NULL, '{');
	json_int(j, "pid", p->pid);
	json_u64(j, "start", p->start);
	json_str(j, "role", peer_role_word(p->role));
	if (p->type == SLUICE_OBJ_CHAN)
		json_str(j, "kind", p->kind == SLUICE_CHAN_WEAK ? "weak" : "strong");
	json_bool(j, "alive", peer_alive(p));
	json_close(j, '}');
	return 0;
}

/*
 * "peers": the processes attached to a ring or a channel, or null with
 * why they could not be read.
 */
static void info_peers_json(struct json *j, const struct sluice_region *r,
			    const struct sluice_obj_info *oi)
{
	int err;

	/* Check first, so that an unreadable object prints no half array. */
	err = obj_peers(r, oi, peer_skip, NULL);
	if (err) {
		json_str(j, "peers", NULL);
		json_int(j, "peers_errno", -err);
		json_str(j, "peers_error", strerror(-err));
		return;
	}
	json_open(j, "peers", '[');
	obj_peers(r, oi, info_peer_json, j);
	json_close(j, ']');
}

static void info_print_objs_json(struct json *j, const struct sluice_region *r,
				 unsigned int nr, int *bad)
{
	struct sluice_obj_info oi;
	unsigned int i;
	int err;

	json_open(j, "objects", '[');
	for (i = 0; i < nr; i++) {
		err = region_obj(r, i, &oi);
		if (err == -ENOENT)
			break;
		json_open(j, NULL, '{');
		json_u64(j, "index", i);
		if (err) {
			*bad = err;
			json_int(j, "errno", -err);
			json_str(j, "error", strerror(-err));
		} else {
			json_str(j, "name", oi.name);
			if (obj_type_str(oi.type))
				json_str(j, "type", obj_type_str(oi.type));
			else
				json_u64(j, "type", oi.type);
			json_u64(j, "type_id", oi.type);
			json_u64(j, "offset", oi.offset);
			json_u64(j, "size", oi.size);
			if (obj_has_peers(oi.type))
				info_peers_json(j, r, &oi);
		}
		json_close(j, '}');
	}
	json_close(j, ']');
}

static int info_print_json(const struct sluice_region *r,
			   const struct sluice_region_info *info)
{
	struct json j = { .f = stdout };
	int bad = 0;

	json_open(&j, NULL, '{');
	json_str(&j, "name", info->name);
	json_region_info(&j, info);
	bad = region_dir_check(r);
	if (bad) {
		json_str(&j, "objects", NULL);
		json_int(&j, "objects_errno", -bad);
		json_str(&j, "objects_error", strerror(-bad));
	} else {
		info_print_objs_json(&j, r, info->nr_objs, &bad);
	}
	json_close(&j, '}');
	return bad;
}

/*
 * Whether huge pages back the region: hugetlb, transparent (a page size
 * above the base page on tmpfs), or not, with why hugetlb was not used.
 */
static const char *info_huge_str(const struct sluice_region_info *in,
				 char *buf, size_t len)
{
	int fb = in->huge_fallback_err;
	const char *what;

	if (in->backing == SLUICE_BACKING_HUGETLBFS ||
	    in->backing == SLUICE_BACKING_MEMFD_HUGETLB)
		return "yes (hugetlb)";
	if (in->pages == SLUICE_PAGES_NO_HUGE)
		return "no (not wanted)";
	what = in->page_size > (uint64_t)sysconf(_SC_PAGESIZE) ?
	       "transparent" : "no";
	if (!fb)
		return what;
	snprintf(buf, len, "%s (hugetlb not used: %s)", what, strerror(-fb));
	return buf;
}

static void info_print_header(const struct sluice_region_info *in)
{
	char a[96], b[32], c[32];

	printf("%-14s %s\n", "name:", in->name);
	printf("%-14s %s (%" PRIu64 " bytes)\n", "size:",
	       fmt_size(in->size, a, sizeof(a)), in->size);
	printf("%-14s %s, %s pages\n", "backing:",
	       sluice_backing_str(in->backing),
	       fmt_size(in->page_size, a, sizeof(a)));
	printf("%-14s %s\n", "page policy:", sluice_pages_str(in->pages));
	printf("%-14s %s\n", "huge pages:", info_huge_str(in, a, sizeof(a)));
	snprintf(a, sizeof(a), "%d", in->node);
	snprintf(b, sizeof(b), "%d", in->node_requested);
	printf("%-14s %s (requested %s)\n", "node:",
	       in->node >= 0 ? a : "mixed or unknown",
	       in->node_requested >= 0 ? b : "any");
	printf("%-14s pid %d (%s), uid %u\n", "creator:",
	       (int)in->creator_pid, in->creator_alive ? "alive" : "exited",
	       (unsigned int)in->creator_uid);
	printf("%-14s %s\n", "created:",
	       fmt_time(in->created_ns, false, a, sizeof(a)));
	printf("%-14s %04o\n", "mode:", in->mode);
	printf("%-14s %" PRIu32 "\n", "abi version:", in->abi_version);
	printf("%-14s %s used of %s (%" PRIu64 " of %" PRIu64 " bytes)\n",
	       "heap:", fmt_size(in->heap_used, b, sizeof(b)),
	       fmt_size(in->heap_size, c, sizeof(c)), in->heap_used,
	       in->heap_size);
	printf("%-14s %u\n", "objects:", in->nr_objs);
}

enum { OBJ_NAME, OBJ_TYPE, OBJ_OFFSET, OBJ_SIZE, OBJ_COLS };

static const struct column obj_cols[OBJ_COLS] = {
	[OBJ_NAME] = { "NAME", false },	[OBJ_TYPE] = { "TYPE", false },
	[OBJ_OFFSET] = { "OFFSET", true }, [OBJ_SIZE] = { "SIZE", true },
};

static_assert(OBJ_COLS <= TABLE_COLS_MAX, "table too wide");

static void info_fill_obj(char (*c)[CELL_MAX], unsigned int idx, int err,
			  const struct sluice_obj_info *oi)
{
	const char *type = obj_type_str(oi->type);
	unsigned int i;

	if (err) {
		snprintf(c[OBJ_NAME], CELL_MAX, "#%u: %s", idx, strerror(-err));
		for (i = OBJ_NAME + 1; i < OBJ_COLS; i++)
			strcpy(c[i], "-");
		return;
	}
	snprintf(c[OBJ_NAME], CELL_MAX, "%s", oi->name);
	if (type)
		snprintf(c[OBJ_TYPE], CELL_MAX, "%s", type);
	else
		snprintf(c[OBJ_TYPE], CELL_MAX, "%" PRIu32, oi->type);
	snprintf(c[OBJ_OFFSET], CELL_MAX, "0x%" PRIx64, oi->offset);
	fmt_size(oi->size, c[OBJ_SIZE], CELL_MAX);
}

enum { PC_OBJECT, PC_ROLE, PC_PID, PC_STATE, PC_COLS };

static const struct column peer_cols[PC_COLS] = {
	[PC_OBJECT] = { "OBJECT", false }, [PC_ROLE] = { "ROLE", false },
	[PC_PID] = { "PID", true },	[PC_STATE] = { "STATE", false },
};

static_assert(PC_COLS <= TABLE_COLS_MAX, "table too wide");

static int info_peer_row(const struct peer *p, void *ctx)
{
	char (*row)[CELL_MAX] = table_row(ctx);

	if (!row)
		return -ENOMEM;
	snprintf(row[PC_OBJECT], CELL_MAX, "%s", p->object);
	snprintf(row[PC_ROLE], CELL_MAX, "%s", peer_role_str(p));
	snprintf(row[PC_PID], CELL_MAX, "%d", (int)p->pid);
	strcpy(row[PC_STATE], peer_alive(p) ? "alive" : "dead");
	return 0;
}

/*
 * Who is attached to each ring and channel: a row per process and role,
 * or one saying why an object could not be read.
 */
static int info_print_peers(const struct sluice_region *r, unsigned int nr)
{
	struct table t = { .cols = peer_cols, .ncols = PC_COLS };
	struct sluice_obj_info oi;
	char (*row)[CELL_MAX];
	unsigned int i;
	size_t before;
	int err = 0;

	for (i = 0; i < nr && err != -ENOMEM; i++) {
		if (region_obj(r, i, &oi) || !obj_has_peers(oi.type))
			continue;
		before = t.nrows;
		err = obj_peers(r, &oi, info_peer_row, &t);
		if (!err || err == -ENOMEM)
			continue;
		/* Rows of an object that then failed to check are not its peers. */
		t.nrows = before;
		row = table_row(&t);
		if (!row) {
			err = -ENOMEM;
			break;
		}
		snprintf(row[PC_OBJECT], CELL_MAX, "%s", oi.name);
		strcpy(row[PC_ROLE], "-");
		strcpy(row[PC_PID], "-");
		snprintf(row[PC_STATE], CELL_MAX, "unreadable: %s", strerror(-err));
		err = 0;
	}
	if (!err && t.nrows) {
		putchar('\n');
		table_print(&t);
	}
	free(t.cells);
	return err;
}

static int info_print_human(const struct sluice_region *r,
			    const struct sluice_region_info *info)
{
	struct table t = { .cols = obj_cols, .ncols = OBJ_COLS };
	struct sluice_obj_info oi;
	char (*row)[CELL_MAX];
	unsigned int i;
	int err, bad = 0;

	info_print_header(info);
	bad = region_dir_check(r);
	if (bad)
		return bad;
	for (i = 0; i < info->nr_objs; i++) {
		err = region_obj(r, i, &oi);
		if (err == -ENOENT)
			break;
		bad = err ? err : bad;
		row = table_row(&t);
		if (!row) {
			free(t.cells);
			return -ENOMEM;
		}
		info_fill_obj(row, i, err, &oi);
	}
	if (t.nrows) {
		putchar('\n');
		table_print(&t);
	}
	free(t.cells);
	err = info_print_peers(r, info->nr_objs);
	return bad ? bad : err;
}

static int cmd_info(const struct ctl_cmd *c, int argc, char **argv,
		    struct ctl_opts *o)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	const char *name;
	int ret, err;

	ret = common_opts(c, argc, argv, o);
	if (ret >= 0)
		return ret;
	if (optind >= argc)
		return usage_err(c->name, "missing region name");
	if (optind + 1 < argc)
		return usage_err(c->name, "unexpected argument '%s'",
				 argv[optind + 1]);
	name = argv[optind];

	err = sluice_region_open(name, NULL, &r);
	if (err)
		goto err_msg;
	err = sluice_region_info(r, &info);
	if (err)
		goto err_close;
	if (o->json)
		err = info_print_json(r, &info);
	else
		err = info_print_human(r, &info);
	sluice_region_close(r);
	if (err) {
		errmsg("%s %s: object directory: %s", c->name, name,
		       strerror(-err));
		return EXIT_FAIL;
	}
	return EXIT_OK;

err_close:
	sluice_region_close(r);
err_msg:
	errmsg_errno(c->name, name, err);
	return EXIT_FAIL;
}

/* ------------------------------------------------------------ rm */

static int cmd_rm(const struct ctl_cmd *c, int argc, char **argv,
		  struct ctl_opts *o)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	bool force = false;
	int ch, i, err, ret = EXIT_OK;

	(void)o;
	while ((ch = getopt_long(argc, argv, ":fh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'f':
			force = true;
			break;
		case 'h':
			cmd_help(c, stdout);
			return EXIT_OK;
		default:
			return bad_option(c->name, ch, argv);
		}
	}
	if (optind >= argc && !force)
		return usage_err(c->name, "missing region name");

	for (i = optind; i < argc; i++) {
		err = sluice_region_unlink(argv[i]);
		if (!err || (force && err == -ENOENT))
			continue;
		errmsg_errno(c->name, argv[i], err);
		ret = EXIT_FAIL;
	}
	return ret;
}

/* ------------------------------------------------------------ setup */

struct setup_result {
	unsigned long want;
	struct sluice__hugepages hp;
	char mount[4096];
	bool mounted;		/* mounted by this run, not found so */
	bool no_mount;		/* SLUICE_HUGETLBFS=none: none wanted */
};

/* A count of pages: decimal digits only, no sign, no overflow. */
static int parse_count(const char *s, unsigned long *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoul(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	return 0;
}

/*
 * Where to mount hugetlbfs when --mount is not given: the directory that
 * SLUICE_HUGETLBFS names, since that is where the library will look, else
 * the usual place.  NULL when SLUICE_HUGETLBFS is "none".
 */
static const char *setup_default_dir(void)
{
	const char *env = getenv("SLUICE_HUGETLBFS");

	if (!env || !*env)
		return DEFAULT_HUGETLBFS;
	return strcmp(env, "none") ? env : NULL;
}

/*
 * Grow the pool, then make sure hugetlbfs is mounted (at @want_dir unless
 * one is mounted already; not at all if @want_dir is NULL).  Returns 0 or a
 * negative errno, with @what naming the step that failed.
 */
static int setup_apply(struct setup_result *res, const char *want_dir,
		       const char **what)
{
	char cur[sizeof(res->mount)];
	unsigned long got;
	int err;

	*what = "/proc/sys/vm/nr_hugepages";
	err = sluice__hugepages_set_total(res->want, &got);
	if (err)
		return err;

	*what = want_dir;
	if (!want_dir) {	/* SLUICE_HUGETLBFS=none: no mount wanted */
		res->no_mount = true;
		goto counts;
	}
	res->mounted = sluice__hugetlbfs_dir(cur, sizeof(cur)) != 0;
	snprintf(res->mount, sizeof(res->mount), "%s", want_dir);
	err = sluice__hugetlbfs_mount(res->mount, sizeof(res->mount),
				      want_dir);
	if (err)
		return err;

counts:
	*what = "/proc/meminfo";
	return sluice__hugepages_get(&res->hp);
}

static void setup_print(const struct setup_result *res, bool json)
{
	struct json j = { .f = stdout };
	char a[32], b[32];

	if (json) {
		json_open(&j, NULL, '{');
		json_u64(&j, "page_size", res->hp.page_size);
		json_u64(&j, "requested", res->want);
		json_u64(&j, "total", res->hp.total);
		json_u64(&j, "free", res->hp.free);
		json_u64(&j, "reserved", res->hp.rsvd);
		json_u64(&j, "surplus", res->hp.surplus);
		json_str(&j, "mount", res->no_mount ? NULL : res->mount);
		json_bool(&j, "mounted", res->mounted);
		json_close(&j, '}');
		return;
	}
	printf("%-11s %lu total, %lu free, %lu reserved (%s each, %s in all)\n",
	       "huge pages:", res->hp.total, res->hp.free, res->hp.rsvd,
	       fmt_size(res->hp.page_size, a, sizeof(a)),
	       fmt_size((uint64_t)res->hp.total * res->hp.page_size, b,
			sizeof(b)));
	if (res->no_mount)
		printf("%-11s none (SLUICE_HUGETLBFS=none)\n", "hugetlbfs:");
	else
		printf("%-11s %s (%s)\n", "hugetlbfs:", res->mount,
		       res->mounted ? "mounted now" : "already mounted");
}

static int cmd_setup(const struct ctl_cmd *c, int argc, char **argv,
		     struct ctl_opts *o)
{
	static const struct option longopts[] = {
		{ "hugepages", required_argument, NULL, 'n' },
		{ "mount", required_argument, NULL, 'm' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct setup_result res = { 0 };
	const char *dir = setup_default_dir(), *what;
	bool have_n = false;
	int ch, err;

	while ((ch = getopt_long(argc, argv, ":n:m:qjh", longopts,
				 NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (parse_count(optarg, &res.want))
				return usage_err(c->name,
						 "bad page count '%s'", optarg);
			have_n = true;
			break;
		case 'm':
			if (optarg[0] != '/')
				return usage_err(c->name,
						 "'%s' is not an absolute path",
						 optarg);
			dir = optarg;
			break;
		case 'q':
			o->quiet = true;
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			cmd_help(c, stdout);
			return EXIT_OK;
		default:
			return bad_option(c->name, ch, argv);
		}
	}
	if (!have_n)
		return usage_err(c->name, "--hugepages N is required");
	if (optind < argc)
		return usage_err(c->name, "unexpected argument '%s'",
				 argv[optind]);

	if (!sluice__hugepage_size()) {
		errmsg("%s: this kernel has no huge pages", c->name);
		return EXIT_FAIL;
	}
	err = setup_apply(&res, dir, &what);
	if (err) {
		errmsg_errno(c->name, what, err);
		return EXIT_FAIL;
	}
	if (!o->quiet)
		setup_print(&res, o->json);
	if (res.hp.total < res.want) {
		errmsg("%s: asked for %lu huge pages, the kernel gave only %lu "
		       "(not enough free contiguous memory; hugepages=%lu on "
		       "the kernel command line reserves them at boot)",
		       c->name, res.want, res.hp.total, res.want);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* ------------------------------------------------------------ watch */

#define WATCH_RESCAN_NS		1000000000ull	/* look for new regions and peers */

/* Where a watched process is attached, as last seen. */
struct watch_att {
	char region[SLUICE_REGION_NAME_MAX + 1];
	char object[SLUICE_OBJ_NAME_MAX + 1];
	uint32_t type;
	enum peer_role role;
	uint32_t kind;
	bool seen;		/* in the scan under way */
};

struct watch_ctx;

/*
 * A process, watched once however many places it holds.  The monitor's
 * thread touches only died, died_ns and qnext, under the lock; the rest
 * belongs to the main thread.  A process is freed by the main thread only
 * when no watch of it can fire any more: printed after it fired, or
 * unwatched before.
 */
struct watch_proc {
	struct watch_proc *next;	/* all of them */
	struct watch_ctx *w;
	pid_t pid;
	uint64_t start;			/* 0: not known (it was dead when seen) */
	uint64_t id;			/* of its watch, if watching */
	bool watching;
	bool stale;			/* dead when the watch began: not news */
	bool warned;			/* a failed watch was reported */
	bool seen;			/* in the scan under way */
	struct watch_att *att;
	unsigned int natt, catt;
	/* Under the lock. */
	bool died;			/* queued, or printed */
	bool printed;
	uint64_t died_ns;		/* CLOCK_REALTIME, when it was seen dead */
	struct watch_proc *qnext;
};

/* A region being watched, kept mapped between scans. */
struct watch_region {
	struct watch_region *next;
	char name[SLUICE_REGION_NAME_MAX + 1];
	struct sluice_region *r;	/* NULL: not open (now) */
	int err;			/* why not, as last reported */
	bool seen;
};

struct watch_ctx {
	struct sluice_liveness *m;
	bool json;
	char *const *names;		/* regions named, or NULL: all of them */
	int nnames;
	bool initial;			/* the first scan */
	struct watch_proc *procs;
	struct watch_region *regions;
	int efd;			/* eventfd: deaths are queued */
	pthread_mutex_t lock;		/* the queue, and died/printed */
	struct watch_proc *queue, **qtail;
};

/* Lock held.  Queue @p's death, once. */
static void watch_queue(struct watch_ctx *w, struct watch_proc *p)
{
	if (p->died)
		return;
	p->died = true;
	p->died_ns = sluice__now_ns(CLOCK_REALTIME);
	p->qnext = NULL;
	*w->qtail = p;
	w->qtail = &p->qnext;
}

/* The monitor saw a watched process die: queue it, wake the main loop. */
static void watch_died(pid_t pid, uint64_t start, void *arg)
{
	struct watch_proc *p = arg;
	struct watch_ctx *w = p->w;
	uint64_t one = 1;

	(void)pid;
	(void)start;
	pthread_mutex_lock(&w->lock);
	watch_queue(w, p);
	pthread_mutex_unlock(&w->lock);
	/*
	 * After the unlock p may be freed: only w from here.  The write
	 * cannot fail (one a death does not overflow the counter).
	 */
	(void)!write(w->efd, &one, sizeof(one));
}

static void watch_proc_free(struct watch_proc *p)
{
	free(p->att);
	free(p);
}

static bool watch_proc_died(struct watch_ctx *w, struct watch_proc *p,
			    bool *printed)
{
	bool died;

	pthread_mutex_lock(&w->lock);
	died = p->died;
	if (printed)
		*printed = p->printed;
	pthread_mutex_unlock(&w->lock);
	return died;
}

static int watch_att_add(struct watch_proc *p, const char *region,
			 const struct peer *pe)
{
	struct watch_att *a;
	unsigned int i;

	for (i = 0; i < p->natt; i++) {
		a = &p->att[i];
		if (a->role == pe->role && a->kind == pe->kind &&
		    !strcmp(a->region, region) && !strcmp(a->object, pe->object)) {
			a->seen = true;
			return 0;
		}
	}
	if (p->natt == p->catt) {
		unsigned int cap = p->catt ? 2 * p->catt : 4;

		a = realloc(p->att, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		p->att = a;
		p->catt = cap;
	}
	a = &p->att[p->natt++];
	memset(a, 0, sizeof(*a));
	snprintf(a->region, sizeof(a->region), "%s", region);
	snprintf(a->object, sizeof(a->object), "%s", pe->object);
	a->type = pe->type;
	a->role = pe->role;
	a->kind = pe->kind;
	a->seen = true;
	return 0;
}

/* Watch @p, if it is not yet; a process already dead fires at once. */
static void watch_proc_arm(struct watch_ctx *w, struct watch_proc *p)
{
	int err;

	if (p->watching || p->stale)
		return;
	err = sluice_liveness_watch_fn(w->m, p->pid, p->start, watch_died, p,
				       &p->id);
	if (!err) {
		p->watching = true;
		return;
	}
	/* Tried again at every scan; said once. */
	if (!p->warned)
		errmsg("watch: cannot watch pid %d: %s (trying again)",
		       (int)p->pid, strerror(-err));
	p->warned = true;
}

struct watch_walk {
	struct watch_ctx *w;
	const char *region;
};

static int watch_peer(const struct peer *pe, void *ctx)
{
	struct watch_walk *ww = ctx;
	struct watch_ctx *w = ww->w;
	struct watch_proc *p;
	uint64_t start = pe->start;
	bool fresh = false;
	int err;

	/* A side already marked dead: its death is old news. */
	if (pe->marked_dead)
		return 0;
	/* Not known: the process's now, or 0 if it is gone. */
	if (!start && sluice__proc_start_time(pe->pid, &start))
		start = 0;
	for (p = w->procs; p; p = p->next)
		if (p->pid == pe->pid && p->start == start)
			break;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->w = w;
		p->pid = pe->pid;
		p->start = start;
		p->next = w->procs;
		w->procs = p;
		fresh = true;
	}
	p->seen = true;
	/*
	 * Where it was when it died is what its death line says; and a
	 * process dead is watched no more, so that nothing fires on it after
	 * its line is printed and it is freed.
	 */
	if (watch_proc_died(w, p, NULL))
		return 0;
	err = watch_att_add(p, ww->region, pe);
	if (err)
		return err;
	if (fresh && !(start && sluice__proc_alive(pe->pid, start))) {
		/*
		 * Dead already.  At the first scan, before we were looking;
		 * later, it came and went between two scans: news.
		 */
		if (w->initial) {
			p->stale = true;
		} else {
			pthread_mutex_lock(&w->lock);
			watch_queue(w, p);
			pthread_mutex_unlock(&w->lock);
		}
		return 0;
	}
	watch_proc_arm(w, p);
	return 0;
}

/* The region @name, open; NULL if it cannot be opened now. */
static struct sluice_region *watch_region_get(struct watch_ctx *w,
					      const char *name)
{
	SLUICE_OPTS(sluice_region_open_opts, oo, .wait_ms = -1);
	struct watch_region *wr;
	struct stat st;
	int err;

	for (wr = w->regions; wr; wr = wr->next)
		if (!strcmp(wr->name, name))
			break;
	if (!wr) {
		wr = calloc(1, sizeof(*wr));
		if (!wr)
			return NULL;
		snprintf(wr->name, sizeof(wr->name), "%s", name);
		wr->next = w->regions;
		w->regions = wr;
	}
	wr->seen = true;
	/* Removed (and perhaps made again) since: let the old one go. */
	if (wr->r && (fstat(sluice_region_fd(wr->r), &st) || !st.st_nlink)) {
		sluice_region_close(wr->r);
		wr->r = NULL;
	}
	if (wr->r)
		return wr->r;
	err = sluice_region_open(name, &oo, &wr->r);
	if (err) {
		wr->r = NULL;
		/*
		 * Said once per cause.  A region being made is not worth a
		 * word, nor one removed while we listed, unless it was named.
		 */
		if (err != wr->err && err != -EAGAIN && (w->names || err != -ENOENT))
			errmsg("watch %s: %s%s", name, strerror(-err),
			       err == -ENOENT ? " (watching for it)" : "");
		wr->err = err;
		return NULL;
	}
	wr->err = 0;
	return wr->r;
}

static int watch_region_scan(struct watch_ctx *w, const char *name)
{
	struct watch_walk ww = { .w = w, .region = name };
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r = watch_region_get(w, name);
	struct sluice_obj_info oi;
	unsigned int i;
	int err;

	if (!r)
		return 0;
	if (sluice_region_info(r, &info) || region_dir_check(r))
		return 0;
	for (i = 0; i < info.nr_objs; i++) {
		if (region_obj(r, i, &oi))
			continue;
		err = obj_peers(r, &oi, watch_peer, &ww);
		if (err == -ENOMEM)
			return err;
	}
	return 0;
}

static int watch_scan_one(const char *name, void *ctx)
{
	return watch_region_scan(ctx, name);
}

/*
 * After a scan: forget regions gone, places given up by live processes,
 * and processes no longer worth watching.
 */
static void watch_sweep(struct watch_ctx *w)
{
	struct watch_region *wr, **wrp = &w->regions;
	struct watch_proc *p, **pp = &w->procs;
	bool died, printed;
	unsigned int i, n;

	while ((wr = *wrp)) {
		if (wr->seen) {
			wrp = &wr->next;
			continue;
		}
		*wrp = wr->next;
		sluice_region_close(wr->r);
		free(wr);
	}
	while ((p = *pp)) {
		died = watch_proc_died(w, p, &printed);
		if (died || p->stale) {
			/* Kept while it shows, so that it is not news again. */
			if (p->seen || (died && !printed)) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			watch_proc_free(p);
			continue;
		}
		/*
		 * A place not seen this time was given up, if the process
		 * still runs; if it does not, its death is on its way to the
		 * queue, and says where it was.
		 */
		for (i = n = 0; i < p->natt; i++)
			n += p->att[i].seen;
		if (n < p->natt && sluice__proc_alive(p->pid, p->start)) {
			for (i = n = 0; i < p->natt; i++)
				if (p->att[i].seen)
					p->att[n++] = p->att[i];
			p->natt = n;
		}
		/* Once unwatched its function does not run: free to free. */
		if (!p->natt &&
		    (!p->watching || !sluice_liveness_unwatch(w->m, p->id))) {
			*pp = p->next;
			watch_proc_free(p);
			continue;
		}
		pp = &p->next;
	}
}

static int watch_scan(struct watch_ctx *w)
{
	struct watch_region *wr;
	struct watch_proc *p;
	unsigned int i;
	int err = 0;

	for (wr = w->regions; wr; wr = wr->next)
		wr->seen = false;
	for (p = w->procs; p; p = p->next) {
		p->seen = false;
		for (i = 0; i < p->natt; i++)
			p->att[i].seen = false;
	}
	if (w->names) {
		for (i = 0; !err && i < (unsigned int)w->nnames; i++)
			err = watch_region_scan(w, w->names[i]);
	} else {
		/* A name in both directories is the same region: seen twice, once. */
		err = sluice_region_foreach(watch_scan_one, w);
		if (err > 0)
			err = -EIO;
	}
	/* A region directory that could not be read: keep what we have. */
	if (!err)
		watch_sweep(w);
	return err == -ENOMEM ? err : 0;
}

/* "2026-11-23 20:31:02.123", local time. */
static const char *fmt_time_ms(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t n;

	if (!localtime_r(&t, &tm))
		return "?";
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03u", (unsigned int)(ns % 1000000000u / 1000000));
	return buf;
}

static void watch_print(const struct watch_ctx *w, const struct watch_proc *p)
{
	const struct watch_att *a;
	struct peer pe;
	struct json j;
	char when[64];
	unsigned int i;

	for (i = 0; i < p->natt; i++) {
		a = &p->att[i];
		/* A document a line: each starts afresh. */
		j = (struct json){ .f = stdout, .compact = true };
		pe = (struct peer){ .type = a->type, .role = a->role, .kind = a->kind };
		if (!w->json) {
			printf("%s region %s object %s: %s pid %d died\n",
			       fmt_time_ms(p->died_ns, when, sizeof(when)), a->region,
			       a->object, peer_role_str(&pe), (int)p->pid);
			continue;
		}
		json_open(&j, NULL, '{');
		json_str(&j, "event", "death");
		json_str(&j, "time", fmt_time(p->died_ns, true, when, sizeof(when)));
		json_u64(&j, "time_ns", p->died_ns);
		json_str(&j, "region", a->region);
		json_str(&j, "object", a->object);
		json_str(&j, "type", obj_type_str(a->type));
		json_str(&j, "role", peer_role_word(a->role));
		if (a->type == SLUICE_OBJ_CHAN)
			json_str(&j, "kind", a->kind == SLUICE_CHAN_WEAK ? "weak" : "strong");
		json_int(&j, "pid", p->pid);
		json_u64(&j, "start", p->start);
		json_close(&j, '}');
	}
}

/*
 * Print the deaths queued, up to @max in all (0: no limit), counting them
 * in @deaths.  A process that had given up every place is not counted.
 */
static void watch_drain(struct watch_ctx *w, unsigned long *deaths,
			unsigned long max)
{
	struct watch_proc *p, *q;

	pthread_mutex_lock(&w->lock);
	q = w->queue;
	w->queue = NULL;
	w->qtail = &w->queue;
	for (p = q; p; p = p->qnext)
		p->printed = true;
	pthread_mutex_unlock(&w->lock);
	/* Printed now, so the sweep may free them; not before we are done. */
	for (p = q; p; p = p->qnext) {
		if (!p->natt || (max && *deaths >= max))
			continue;
		watch_print(w, p);
		++*deaths;
	}
}

/* Seconds, with a fraction: "10", "0.5". */
static int parse_secs(const char *s, uint64_t *ns)
{
	char *end;
	double v;

	if ((*s < '0' || *s > '9') && *s != '.')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 1e9)
		return -EINVAL;
	*ns = (uint64_t)(v * 1e9);
	return 0;
}

static void watch_start_line(const struct watch_ctx *w)
{
	struct json j = { .f = stdout, .compact = true };
	enum sluice_liveness_backend b = sluice_liveness_backend(w->m);
	const char *why = sluice_liveness_why(w->m);
	const struct watch_region *wr;
	const struct watch_proc *p;
	unsigned int nr = 0, np = 0;

	for (wr = w->regions; wr; wr = wr->next)
		nr += wr->r != NULL;
	for (p = w->procs; p; p = p->next)
		np += p->watching;
	if (!w->json) {
		printf("watching %u process%s in %u region%s with %s%s%s%s\n", np,
		       np == 1 ? "" : "es", nr, nr == 1 ? "" : "s",
		       sluice_liveness_backend_str(b), *why ? " (" : "", why,
		       *why ? ")" : "");
		return;
	}
	json_open(&j, NULL, '{');
	json_str(&j, "event", "start");
	json_str(&j, "backend", sluice_liveness_backend_str(b));
	json_str(&j, "fallback", *why ? why : NULL);
	json_u64(&j, "regions", nr);
	json_u64(&j, "processes", np);
	json_close(&j, '}');
}

static void watch_free(struct watch_ctx *w)
{
	struct watch_region *wr;
	struct watch_proc *p;

	while ((p = w->procs)) {
		w->procs = p->next;
		watch_proc_free(p);
	}
	while ((wr = w->regions)) {
		w->regions = wr->next;
		sluice_region_close(wr->r);
		free(wr);
	}
}

/* Flush what was printed; false when stdout is gone (*err says why). */
static bool watch_flush(int *err)
{
	if (!fflush(stdout) && !ferror(stdout))
		return true;
	*err = errno ? -errno : -EIO;
	return false;
}

static int cmd_watch(const struct ctl_cmd *c, int argc, char **argv,
		     struct ctl_opts *o)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	SLUICE_OPTS(sluice_liveness_opts, lo, .backend = SLUICE_LIVENESS_AUTO);
	struct watch_ctx w = { .efd = -1 };
	unsigned long count = 0, deaths = 0;
	uint64_t timeout = 0, now, end = UINT64_MAX, next, wait;
	struct pollfd pfd[2];
	sigset_t sigs, old;
	int ch, i, sfd = -1, err, out_err = 0, ret = EXIT_FAIL;
	bool timed_out = false;

	while ((ch = getopt_long(argc, argv, ":n:t:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (parse_count(optarg, &count) || !count)
				return usage_err(c->name, "bad count '%s'", optarg);
			break;
		case 't':
			if (parse_secs(optarg, &timeout))
				return usage_err(c->name, "bad timeout '%s'", optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			cmd_help(c, stdout);
			return EXIT_OK;
		default:
			return bad_option(c->name, ch, argv);
		}
	}
	for (i = optind; i < argc; i++) {
		err = sluice__name_check(argv[i], SLUICE_REGION_NAME_MAX);
		if (err) {
			errmsg_errno(c->name, argv[i], err);
			return EXIT_FAIL;
		}
	}
	w.json = o->json;
	w.names = optind < argc ? argv + optind : NULL;
	w.nnames = argc - optind;
	w.qtail = &w.queue;
	pthread_mutex_init(&w.lock, NULL);
	/* Each death on its line at once, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A reader that goes away ends the watch; not a signal that leaves pins. */
	signal(SIGPIPE, SIG_IGN);

	/* Blocked before the monitor's thread starts, so it inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		errmsg_errno(c->name, "signalfd", -errno);
		goto out;
	}
	w.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w.efd < 0) {
		errmsg_errno(c->name, "eventfd", -errno);
		goto out;
	}
	err = sluice_liveness_create(&lo, &w.m);
	if (err) {
		errmsg_errno(c->name, "liveness monitor", err);
		goto out;
	}

	w.initial = true;
	err = watch_scan(&w);
	w.initial = false;
	if (err)
		goto err_scan;
	watch_start_line(&w);
	now = sluice__now_ns(CLOCK_MONOTONIC);
	if (timeout)
		end = now + timeout;
	next = now + WATCH_RESCAN_NS;
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = w.efd, .events = POLLIN };
	for (;;) {
		watch_drain(&w, &deaths, count);
		if (!watch_flush(&out_err) || (count && deaths >= count))
			break;
		now = sluice__now_ns(CLOCK_MONOTONIC);
		if (now >= end) {
			timed_out = true;
			break;
		}
		if (now >= next) {
			err = watch_scan(&w);
			if (err)
				goto err_scan;
			next = now + WATCH_RESCAN_NS;
			continue;	/* a scan may have queued deaths */
		}
		wait = (next < end ? next : end) - now;
		if (poll(pfd, 2, (int)((wait + 999999) / 1000000)) < 0 && errno != EINTR) {
			errmsg_errno(c->name, "poll", -errno);
			goto out;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			/*
			 * SIGINT or SIGTERM: a clean end.  Taken, so that
			 * it is not delivered when the mask is restored.
			 */
			(void)!read(sfd, &si, sizeof(si));
			break;
		}
		if (pfd[1].revents) {
			uint64_t v;

			if (read(w.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
		}
	}
	ret = EXIT_OK;
	if (out_err && out_err != -EPIPE) {
		errmsg("write error: %s", strerror(-out_err));
		ret = EXIT_FAIL;
	}
	if (out_err) {
		/* Nowhere to write what is left: drop it, so main does not try. */
		__fpurge(stdout);
		clearerr(stdout);
	}
	if (timed_out && count && deaths < count) {
		errmsg("%s: %lu of %lu deaths before the timeout", c->name, deaths, count);
		ret = EXIT_FAIL;
	}
	goto out;

err_scan:
	errmsg_errno(c->name, NULL, err);
out:
	/* First: once it returns, watch_died() runs no more. */
	sluice_liveness_destroy(w.m);
	watch_free(&w);
	if (w.efd >= 0)
		close(w.efd);
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_destroy(&w.lock);
	return ret;
}

/* ------------------------------------------------------------ main */

static int cmd_help_cmd(const struct ctl_cmd *c, int argc, char **argv,
			struct ctl_opts *o);

static const struct ctl_cmd cmds[] = {
	{
		.name = "ls",
		.run = cmd_ls,
		.usage = "[--json]",
		.brief = "list regions",
		.help =
"List every named region: size, backing, page size, node, creator and\n"
"whether it is alive, number of objects, and its peers: the processes\n"
"attached to its rings and channels, as running/attached.  A region that\n"
"cannot be opened or checked is listed with its state (not-ready, corrupt,\n"
"bad-abi, denied, gone, error) instead of \"ok\".\n"
"\n"
"Options:\n"
"  -j, --json   print a JSON array, one object per region\n"
"  -h, --help   show this help\n",
	},
	{
		.name = "info",
		.run = cmd_info,
		.usage = "[--json] NAME",
		.brief = "show a region's header and objects",
		.help =
"Show the header of region NAME, its object directory, and the processes\n"
"attached to its rings and channels: pid, role, alive or dead.\n"
"\n"
"Options:\n"
"  -j, --json   print a JSON object\n"
"  -h, --help   show this help\n",
	},
	{
		.name = "rm",
		.run = cmd_rm,
		.usage = "[--force] [--] NAME...",
		.brief = "remove regions",
		.help =
"Remove the named regions.  Processes that map one keep their mapping.\n"
"\n"
"Options:\n"
"  -f, --force  a region that does not exist is not an error\n"
"  -h, --help   show this help\n",
	},
	{
		.name = "setup",
		.run = cmd_setup,
		.usage = "--hugepages N [--mount DIR] [--quiet] [--json]",
		.brief = "reserve huge pages and mount hugetlbfs",
		.help =
"Grow the huge page pool to at least N pages and mount hugetlbfs unless\n"
"one is mounted.  Fails if the kernel gives fewer than N pages.  Needs\n"
"root; running it again changes nothing.\n"
"\n"
"Options:\n"
"  -n, --hugepages N  pages of the default huge page size to hold\n"
"  -m, --mount DIR    where to mount hugetlbfs (default $SLUICE_HUGETLBFS,\n"
"                     else " DEFAULT_HUGETLBFS ")\n"
"  -q, --quiet        print nothing unless something fails\n"
"  -j, --json         print the result as a JSON object\n"
"  -h, --help         show this help\n",
	},
	{
		.name = "watch",
		.run = cmd_watch,
		.usage = "[--json] [--count N] [--timeout SEC] [REGION...]",
		.brief = "print peer deaths as they happen",
		.help =
"Watch every process attached to the rings and channels of the named\n"
"regions (all regions if none is named) and print a line when one dies:\n"
"\n"
"  2026-11-23 20:31:02.123 region R object O: producer pid 1234 died\n"
"\n"
"A liveness monitor sees each death at once (BPF where it loads, else\n"
"pidfd; the first line says which, and why not BPF).  Regions and peers\n"
"are looked for again every second.  A process attached to several\n"
"objects gets a line for each, and counts as one death.  Runs until\n"
"SIGINT or SIGTERM (exit status 0).\n"
"\n"
"Options:\n"
"  -n, --count N      stop after N deaths\n"
"  -t, --timeout SEC  stop after SEC seconds (status 1 if --count deaths\n"
"                     were not seen by then)\n"
"  -j, --json         one JSON object a line: a \"start\" event, then\n"
"                     \"death\" events\n"
"  -h, --help         show this help\n",
	},
	{
		.name = "help",
		.run = cmd_help_cmd,
		.usage = "[COMMAND]",
		.brief = "show the help of a command",
		.help = "Show the help of COMMAND, or of sluicectl.\n",
	},
};

static const struct ctl_cmd *cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(cmds); i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

static void main_help(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: " PROG " [--json] COMMAND [ARGS]\n"
		"Inspect and manage sluice shared-memory regions.\n\n"
		"Commands:\n");
	for (i = 0; i < SLUICE_ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %-6s %s\n", cmds[i].name, cmds[i].brief);
	fprintf(f,
		"\nOptions:\n"
		"  -j, --json     machine-readable JSON output\n"
		"  -h, --help     show this help\n"
		"  -V, --version  show the version\n\n"
		"Run '" PROG " COMMAND --help' for a command's options.\n"
		"Exit status: 0 success, 1 operation failed, 2 usage error.\n");
}

static int cmd_help_cmd(const struct ctl_cmd *c, int argc, char **argv,
			struct ctl_opts *o)
{
	const struct ctl_cmd *sub;
	int ret;

	ret = common_opts(c, argc, argv, o);
	if (ret >= 0)
		return ret;
	if (optind >= argc) {
		main_help(stdout);
		return EXIT_OK;
	}
	sub = cmd_find(argv[optind]);
	if (!sub)
		return usage_err(c->name, "unknown command '%s'", argv[optind]);
	cmd_help(sub, stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct ctl_opts o = { 0 };
	const struct ctl_cmd *c;
	int ch, ret;

	opterr = 0;
	/* '+': stop at the command, whose options are its own. */
	while ((ch = getopt_long(argc, argv, "+:jhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			o.json = true;
			break;
		case 'h':
			main_help(stdout);
			return EXIT_OK;
		case 'V':
			printf(PROG " " SLUICE_VERSION "\n");
			return EXIT_OK;
		default:
			return bad_option(NULL, ch, argv);
		}
	}
	if (optind >= argc)
		return usage_err(NULL, "missing command");
	c = cmd_find(argv[optind]);
	if (!c)
		return usage_err(NULL, "unknown command '%s'", argv[optind]);

	argc -= optind;
	argv += optind;
	optind = 0;	/* glibc: start afresh, argv[0] is the command */
	ret = c->run(c, argc, argv, &o);
	if (fflush(stdout) || ferror(stdout)) {
		errmsg("write error: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return ret;
}
