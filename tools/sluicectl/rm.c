// SPDX-License-Identifier: MIT
/*
 * sluicectl rm: remove regions by name.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>

#include <sluice.h>

#include "sluicectl.h"

static int run_rm(const struct ctl_cmd *c, int argc, char **argv,
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

const struct ctl_cmd cmd_rm = {
	.name = "rm",
	.run = run_rm,
	.usage = "[--force] [--] NAME...",
	.brief = "remove regions",
	.help =
"Remove the named regions.  Processes that map one keep their mapping.\n",
	.opts = (const struct ctl_opt_help[]){
		{ "-f, --force", "a region that does not exist is not an error" },
		{ NULL },
	},
};
