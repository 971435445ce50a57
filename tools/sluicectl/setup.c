// SPDX-License-Identifier: MIT
/*
 * sluicectl setup: grow the huge page pool and mount hugetlbfs.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sluicectl.h"

#define DEFAULT_HUGETLBFS	"/dev/hugepages"

struct setup_result {
	unsigned long want;
	struct sluice__hugepages hp;
	char mount[4096];
	bool mounted;		/* mounted by this run, not found so */
	bool no_mount;		/* SLUICE_HUGETLBFS=none: none wanted */
};

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

static int run_setup(const struct ctl_cmd *c, int argc, char **argv,
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

const struct ctl_cmd cmd_setup = {
	.name = "setup",
	.run = run_setup,
	.usage = "--hugepages N [--mount DIR] [--quiet] [--json]",
	.brief = "reserve huge pages and mount hugetlbfs",
	.help =
"Grow the huge page pool to at least N pages and mount hugetlbfs unless\n"
"one is mounted.  Fails if the kernel gives fewer than N pages.  Needs\n"
"root; running it again changes nothing.\n",
	.opts = (const struct ctl_opt_help[]){
		{ "-n, --hugepages N", "pages of the default huge page size to hold" },
		{ "-m, --mount DIR", "where to mount hugetlbfs (default $SLUICE_HUGETLBFS,\n"
				     "else " DEFAULT_HUGETLBFS ")" },
		{ "-q, --quiet", "print nothing unless something fails" },
		{ "-j, --json", "print the result as a JSON object" },
		{ NULL },
	},
};
