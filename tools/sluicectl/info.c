// SPDX-License-Identifier: MIT
/*
 * sluicectl info: one region's header, its object directory, and the
 * processes attached to its rings and channels.
 */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sluice.h>

#include "../common/table.h"
#include "sluicectl.h"

/* ------------------------------------------------------------ JSON */

static int peer_skip(const struct sluice__peer *p, void *ctx)
{
	(void)p;
	(void)ctx;
	return 0;
}

static int info_peer_json(const struct sluice__peer *p, void *ctx)
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
	err = sluice__obj_peers(r, oi, peer_skip, NULL);
	if (err) {
		json_str(j, "peers", NULL);
		json_int(j, "peers_errno", -err);
		json_str(j, "peers_error", strerror(-err));
		return;
	}
	json_open(j, "peers", '[');
	sluice__obj_peers(r, oi, info_peer_json, j);
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
			if (sluice__obj_has_peers(oi.type))
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

/* ------------------------------------------------------------ people */

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

static const struct table_col obj_cols[OBJ_COLS] = {
	[OBJ_NAME] = { "NAME", false },	[OBJ_TYPE] = { "TYPE", false },
	[OBJ_OFFSET] = { "OFFSET", true }, [OBJ_SIZE] = { "SIZE", true },
};

static_assert(OBJ_COLS <= TABLE_COLS_MAX, "table too wide");

static void info_fill_obj(char (*c)[TABLE_CELL_MAX], unsigned int idx, int err,
			  const struct sluice_obj_info *oi)
{
	const char *type = obj_type_str(oi->type);
	unsigned int i;

	if (err) {
		snprintf(c[OBJ_NAME], TABLE_CELL_MAX, "#%u: %s", idx, strerror(-err));
		for (i = OBJ_NAME + 1; i < OBJ_COLS; i++)
			strcpy(c[i], "-");
		return;
	}
	snprintf(c[OBJ_NAME], TABLE_CELL_MAX, "%s", oi->name);
	if (type)
		snprintf(c[OBJ_TYPE], TABLE_CELL_MAX, "%s", type);
	else
		snprintf(c[OBJ_TYPE], TABLE_CELL_MAX, "%" PRIu32, oi->type);
	snprintf(c[OBJ_OFFSET], TABLE_CELL_MAX, "0x%" PRIx64, oi->offset);
	fmt_size(oi->size, c[OBJ_SIZE], TABLE_CELL_MAX);
}

enum { PC_OBJECT, PC_ROLE, PC_PID, PC_STATE, PC_COLS };

static const struct table_col peer_cols[PC_COLS] = {
	[PC_OBJECT] = { "OBJECT", false }, [PC_ROLE] = { "ROLE", false },
	[PC_PID] = { "PID", true },	[PC_STATE] = { "STATE", false },
};

static_assert(PC_COLS <= TABLE_COLS_MAX, "table too wide");

static int info_peer_row(const struct sluice__peer *p, void *ctx)
{
	char (*row)[TABLE_CELL_MAX] = table_row(ctx);

	if (!row)
		return -ENOMEM;
	snprintf(row[PC_OBJECT], TABLE_CELL_MAX, "%s", p->object);
	snprintf(row[PC_ROLE], TABLE_CELL_MAX, "%s", peer_role_str(p));
	snprintf(row[PC_PID], TABLE_CELL_MAX, "%d", (int)p->pid);
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
	char (*row)[TABLE_CELL_MAX];
	unsigned int i;
	size_t before;
	int err = 0;

	for (i = 0; i < nr && err != -ENOMEM; i++) {
		if (region_obj(r, i, &oi) || !sluice__obj_has_peers(oi.type))
			continue;
		before = t.nrows;
		err = sluice__obj_peers(r, &oi, info_peer_row, &t);
		if (!err || err == -ENOMEM)
			continue;
		/* Rows of an object that then failed to check are not its peers. */
		t.nrows = before;
		row = table_row(&t);
		if (!row) {
			err = -ENOMEM;
			break;
		}
		snprintf(row[PC_OBJECT], TABLE_CELL_MAX, "%s", oi.name);
		strcpy(row[PC_ROLE], "-");
		strcpy(row[PC_PID], "-");
		snprintf(row[PC_STATE], TABLE_CELL_MAX, "unreadable: %s", strerror(-err));
		err = 0;
	}
	if (!err && t.nrows) {
		putchar('\n');
		table_print(&t, stdout);
	}
	table_free(&t);
	return err;
}

static int info_print_human(const struct sluice_region *r,
			    const struct sluice_region_info *info)
{
	struct table t = { .cols = obj_cols, .ncols = OBJ_COLS };
	struct sluice_obj_info oi;
	char (*row)[TABLE_CELL_MAX];
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
			table_free(&t);
			return -ENOMEM;
		}
		info_fill_obj(row, i, err, &oi);
	}
	if (t.nrows) {
		putchar('\n');
		table_print(&t, stdout);
	}
	table_free(&t);
	err = info_print_peers(r, info->nr_objs);
	return bad ? bad : err;
}

static int run_info(const struct ctl_cmd *c, int argc, char **argv,
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

const struct ctl_cmd cmd_info = {
	.name = "info",
	.run = run_info,
	.usage = "[--json] NAME",
	.brief = "show a region's header and objects",
	.help =
"Show the header of region NAME, its object directory, and the processes\n"
"attached to its rings and channels: pid, role, alive or dead.\n",
	.opts = (const struct ctl_opt_help[]){
		{ "-j, --json", "print a JSON object" },
		{ NULL },
	},
};
