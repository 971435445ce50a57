// SPDX-License-Identifier: MIT
/*
 * sluicectl ls: every region, a line each, with its header, its state and
 * how many of the processes attached to its objects still run.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice.h>

#include "../common/table.h"
#include "sluicectl.h"

/* ------------------------------------------------------------ peers */

/* Distinct processes attached to a region, and how many of them run. */
struct peer_tally {
	struct {
		pid_t pid;
		uint64_t start;
		bool alive;
	} *v;
	unsigned int n, cap, alive;
};

static int peer_tally_add(const struct sluice__peer *p, void *ctx)
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
		err = sluice__obj_peers(r, &oi, peer_tally_add, &t);
	}
	*alive = t.alive;
	*total = t.n;
	free(t.v);
	return err == -ENOMEM ? err : 0;
}

/* ------------------------------------------------------------ regions */

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

/* ------------------------------------------------------------ output */

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

static const struct table_col ls_cols[LS_COLS] = {
	[LS_NAME] = { "NAME", false },	[LS_SIZE] = { "SIZE", true },
	[LS_BACKING] = { "BACKING", false }, [LS_PAGE] = { "PAGE", true },
	[LS_NODE] = { "NODE", true },	[LS_PID] = { "PID", true },
	[LS_ALIVE] = { "ALIVE", false },	[LS_OBJS] = { "OBJS", true },
	[LS_PEERS] = { "PEERS", true },	[LS_STATE] = { "STATE", false },
};

static_assert(LS_COLS <= TABLE_COLS_MAX, "table too wide");

static void ls_fill_row(char (*c)[TABLE_CELL_MAX], const struct ls_entry *e)
{
	const struct sluice_region_info *in = &e->info;
	unsigned int i;

	snprintf(c[LS_NAME], TABLE_CELL_MAX, "%s", e->name);
	/* The state word says it all, unless it is just "error". */
	if (strcmp(region_state(e->err), "error"))
		snprintf(c[LS_STATE], TABLE_CELL_MAX, "%s", region_state(e->err));
	else
		snprintf(c[LS_STATE], TABLE_CELL_MAX, "error: %s",
			 strerror(-e->err));
	if (!e->have_info) {
		for (i = LS_NAME + 1; i < LS_STATE; i++)
			strcpy(c[i], "-");
		return;
	}
	fmt_size(in->size, c[LS_SIZE], TABLE_CELL_MAX);
	snprintf(c[LS_BACKING], TABLE_CELL_MAX, "%s",
		 sluice_backing_str(in->backing));
	fmt_size(in->page_size, c[LS_PAGE], TABLE_CELL_MAX);
	if (in->node >= 0)
		snprintf(c[LS_NODE], TABLE_CELL_MAX, "%d", in->node);
	else
		strcpy(c[LS_NODE], "-");
	snprintf(c[LS_PID], TABLE_CELL_MAX, "%d", (int)in->creator_pid);
	strcpy(c[LS_ALIVE], in->creator_alive ? "yes" : "no");
	snprintf(c[LS_OBJS], TABLE_CELL_MAX, "%u", in->nr_objs);
	/* Running of attached: "2/3". */
	if (e->peers.have)
		snprintf(c[LS_PEERS], TABLE_CELL_MAX, "%u/%u", e->peers.alive,
			 e->peers.total);
	else
		strcpy(c[LS_PEERS], "-");
}

static int ls_print_human(const struct ls_list *l)
{
	struct table t = { .cols = ls_cols, .ncols = LS_COLS };
	char (*row)[TABLE_CELL_MAX];
	size_t i;

	for (i = 0; i < l->n; i++) {
		row = table_row(&t);
		if (!row) {
			table_free(&t);
			return -ENOMEM;
		}
		ls_fill_row(row, &l->v[i]);
	}
	table_print(&t, stdout);
	table_free(&t);
	return 0;
}

static int run_ls(const struct ctl_cmd *c, int argc, char **argv,
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

const struct ctl_cmd cmd_ls = {
	.name = "ls",
	.run = run_ls,
	.usage = "[--json]",
	.brief = "list regions",
	.help =
"List every named region: size, backing, page size, node, creator and\n"
"whether it is alive, number of objects, and its peers: the processes\n"
"attached to its rings and channels, as running/attached.  A region that\n"
"cannot be opened or checked is listed with its state (not-ready, corrupt,\n"
"bad-abi, denied, gone, error) instead of \"ok\".\n",
	.opts = (const struct ctl_opt_help[]){
		{ "-j, --json", "print a JSON array, one object per region" },
		{ NULL },
	},
};
