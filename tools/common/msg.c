// SPDX-License-Identifier: MIT
/*
 * Messages of the sluice tools (msg.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "msg.h"

void verrmsg(const char *who, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: %s%s", tool_name, who ? who : "", who ? ": " : "");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrmsg(NULL, fmt, ap);
	va_end(ap);
}

void errmsg_errno(const char *what, const char *arg, int err)
{
	if (arg)
		errmsg("%s %s: %s", what, arg, strerror(-err));
	else
		errmsg("%s: %s", what, strerror(-err));
}

int usage_err(const char *cmd, const char *fmt, ...)
{
	const char *sp = cmd ? " " : "";
	va_list ap;

	fprintf(stderr, "%s%s%s: ", tool_name, sp, cmd ? cmd : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s%s%s --help' for more information.\n",
		tool_name, sp, cmd ? cmd : "");
	return EXIT_USAGE;
}
