/* SPDX-License-Identifier: MIT */
/*
 * Extensible option structs.
 *
 * Every sluice option struct starts with "size_t sz", its own size as the
 * caller's compiler saw it.  A newer library reads only the fields an older
 * caller knew about and treats the rest as defaults; an older library
 * rejects (-EINVAL) a newer caller that set a field it does not know: a
 * non-zero byte past the end of the last field it knows, what is tail
 * padding to it included.  This is libbpf's LIBBPF_OPTS and OPTS_VALID.
 *
 *	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_REQUIRE_HUGE);
 *	err = sluice_region_create("frames", 64 << 20, &opts, &r);
 */
#ifndef SLUICE_OPTS_H
#define SLUICE_OPTS_H

#include <string.h>

/*
 * Declare @NAME as a struct @TYPE with every byte zeroed (padding too, so the
 * library's check for unknown non-zero fields is exact), sz filled in and the
 * given fields set.
 */
#define SLUICE_OPTS(TYPE, NAME, ...)					\
	struct TYPE NAME = ({						\
		memset(&NAME, 0, sizeof(struct TYPE));			\
		(struct TYPE){						\
			.sz = sizeof(struct TYPE),			\
			__VA_ARGS__					\
		};							\
	})

#endif /* SLUICE_OPTS_H */
