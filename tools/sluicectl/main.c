// SPDX-License-Identifier: MIT
/*
 * sluicectl: list, inspect and remove sluice regions, set up huge pages,
 * and watch the processes attached to rings and channels.
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
 * This file dispatches to the commands, a file each, and holds the options
 * they share; see sluicectl.h.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "sluicectl.h"

const char tool_name[] = PROG;

/* ------------------------------------------------------------ options */

static const struct ctl_opt_help help_opt = { "-h, --help", "show this help" };

/* Options in two columns, the second as far in as the longest flags need. */
static void opts_print(const struct ctl_opt_help *opts, FILE *f)
{
	const struct ctl_opt_help *o;
	const char *t, *nl;
	int w = (int)strlen(help_opt.flags);

	for (o = opts; o && o->flags; o++)
		if ((int)strlen(o->flags) > w)
			w = (int)strlen(o->flags);
	for (o = opts; ; o++) {
		if (!o || !o->flags)
			o = &help_opt;
		fprintf(f, "  %-*s  ", w, o->flags);
		for (t = o->text; (nl = strchr(t, '\n')); t = nl + 1)
			fprintf(f, "%.*s\n  %-*s  ", (int)(nl - t), t, w, "");
		fprintf(f, "%s\n", t);
		if (o == &help_opt)
			break;
	}
}

void cmd_help(const struct ctl_cmd *c, FILE *f)
{
	fprintf(f, "Usage: " PROG " %s %s\n\n%s\nOptions:\n", c->name, c->usage, c->help);
	opts_print(c->opts, f);
}

/*
 * getopt_long() prints nothing itself (opterr is 0), since it would name
 * the command rather than the program.
 */
int bad_option(const char *cmd, int ch, char **argv)
{
	const char *arg = argv[optind - 1];

	if (ch == ':')
		return usage_err(cmd, "option '%s' needs an argument", arg);
	if (optopt && strncmp(arg, "--", 2))
		return usage_err(cmd, "invalid option -- '%c'", optopt);
	return usage_err(cmd, "unrecognized option '%s'", arg);
}

int common_opts(const struct ctl_cmd *c, int argc, char **argv,
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

int parse_count(const char *s, unsigned long *out)
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

/* ------------------------------------------------------------ commands */

static int run_help(const struct ctl_cmd *c, int argc, char **argv,
		    struct ctl_opts *o);

static const struct ctl_cmd cmd_help_cmd = {
	.name = "help",
	.run = run_help,
	.usage = "[COMMAND]",
	.brief = "show the help of a command",
	.help = "Show the help of COMMAND, or of sluicectl.\n",
};

/* In the order the help lists them. */
static const struct ctl_cmd *const cmds[] = {
	&cmd_ls, &cmd_info, &cmd_rm, &cmd_setup, &cmd_watch, &cmd_help_cmd,
};

static const struct ctl_cmd *cmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(cmds); i++)
		if (!strcmp(cmds[i]->name, name))
			return cmds[i];
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
		fprintf(f, "  %-6s %s\n", cmds[i]->name, cmds[i]->brief);
	fprintf(f,
		"\nOptions:\n"
		"  -j, --json     machine-readable JSON output\n"
		"  -h, --help     show this help\n"
		"  -V, --version  show the version\n\n"
		"Run '" PROG " COMMAND --help' for a command's options.\n"
		"Exit status: 0 success, 1 operation failed, 2 usage error.\n");
}

static int run_help(const struct ctl_cmd *c, int argc, char **argv,
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
