/* SPDX-License-Identifier: MIT */
/*
 * What sluicectl's commands share: the command table's entry, the options
 * given before a command, and the reading and formatting of regions that
 * ls, info and watch do alike.
 *
 * The tool links libsluice.a: beside the public API it uses the huge page
 * and process helpers of lib/internal.h, and learns what a region's rings
 * and channels hold, and who is attached to them, from lib/introspect.h.
 * It knows no shared layout of its own.
 */
#ifndef SLUICECTL_H
#define SLUICECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <sluice.h>

#include "introspect.h"
#include "../common/json.h"
#include "../common/msg.h"

#define PROG			"sluicectl"

/* Options given before the command (or as the command's own options). */
struct ctl_opts {
	bool json;
	bool quiet;
};

/* One option of a command, for its help: "-n, --count N" and what it does. */
struct ctl_opt_help {
	const char *flags;
	const char *text;	/* lines after the first are indented to match */
};

struct ctl_cmd {
	const char *name;
	int (*run)(const struct ctl_cmd *c, int argc, char **argv,
		   struct ctl_opts *o);
	const char *usage;	/* what follows "sluicectl NAME" */
	const char *brief;	/* one line for the command list */
	const char *help;	/* what it does */
	/* Its options but --help, which every command has; ends with { NULL }. */
	const struct ctl_opt_help *opts;
};

/* The commands, a file each. */
extern const struct ctl_cmd cmd_ls;	/* ls.c */
extern const struct ctl_cmd cmd_info;	/* info.c */
extern const struct ctl_cmd cmd_rm;	/* rm.c */
extern const struct ctl_cmd cmd_setup;	/* setup.c */
extern const struct ctl_cmd cmd_watch;	/* watch.c */

/* ------------------------------------------------------------ options (main.c) */

/* "Usage: sluicectl NAME USAGE", then the command's help. */
void cmd_help(const struct ctl_cmd *c, FILE *f);
/* Explain what getopt_long() rejected; returns EXIT_USAGE. */
int bad_option(const char *cmd, int ch, char **argv);
/*
 * Parse the options of a command that takes only --help and --json.
 * Returns -1 to go on with argv[optind], else the exit code.
 */
int common_opts(const struct ctl_cmd *c, int argc, char **argv,
		struct ctl_opts *o);
/* A count: decimal digits only, no sign, no overflow.  0 or -EINVAL. */
int parse_count(const char *s, unsigned long *out);

/* ------------------------------------------------------------ regions (region.c) */

/* Bytes as ls -h would: 512, 4K, 2M, 1.5G. */
const char *fmt_size(uint64_t v, char *buf, size_t len);
/* CLOCK_REALTIME nanoseconds as local or UTC (ISO 8601) time. */
const char *fmt_time(uint64_t ns, bool utc, char *buf, size_t len);
/* "raw", "spsc", "chan", or NULL for a type this tool does not know. */
const char *obj_type_str(uint32_t type);
/* One word for why a region could not be opened: "ok", "corrupt", ... */
const char *region_state(int err);

/* Directory entry @idx; -ENOENT past the end. */
int region_obj(const struct sluice_region *r, unsigned int idx,
	       struct sluice_obj_info *oi);
/* 0 unless the object count itself is corrupted. */
int region_dir_check(const struct sluice_region *r);
/* 0 if the count and the first @nr entries of the directory are sane. */
int region_objs_check(const struct sluice_region *r, unsigned int nr);

/* "producer", "strong writer", ...: the role with a channel end's kind. */
const char *peer_role_str(const struct sluice__peer *p);
/* The role without the kind, for JSON, which has the kind apart. */
const char *peer_role_word(enum sluice__peer_role role);
/* Is @p's process running?  A start time of 0 checks the pid alone. */
bool peer_alive(const struct sluice__peer *p);

/* The header fields of a region, shared by ls and info. */
void json_region_info(struct json *j, const struct sluice_region_info *info);

#endif /* SLUICECTL_H */
