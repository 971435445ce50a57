/* SPDX-License-Identifier: MIT */
/*
 * Messages of the sluice tools: errors on stderr as "NAME: what: why",
 * usage errors that say where the help is, and the exit codes the tools
 * document.  Each tool defines tool_name; the version is the Makefile's.
 */
#ifndef SLUICE_TOOLS_MSG_H
#define SLUICE_TOOLS_MSG_H

#include <stdarg.h>

#ifndef SLUICE_VERSION
#error "SLUICE_VERSION is the Makefile's VERSION, passed with -D"
#endif

/* Exit codes, in each tool's help and man page: scripts rely on them. */
enum {
	EXIT_OK		= 0,
	EXIT_FAIL	= 1,
	EXIT_USAGE	= 2,
};

/* The program's name, which starts every message ("sluicectl"). */
extern const char tool_name[];

/* "NAME: message" on stderr, with the new line. */
void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "NAME: WHO: message"; with @who NULL, as errmsg(). */
void verrmsg(const char *who, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* "NAME: WHAT ARG: reason" for a negative errno @err; @arg may be NULL. */
void errmsg_errno(const char *what, const char *arg, int err);

/*
 * A usage error of command @cmd, or of the program itself when @cmd is
 * NULL: "NAME CMD: message", then a line naming the --help to read.
 * Returns EXIT_USAGE.
 */
int usage_err(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif /* SLUICE_TOOLS_MSG_H */
