/* SPDX-License-Identifier: MIT */
/*
 * The region test programs' fixture: regions made on normal pages, their
 * files written behind the library's back the way a buggy or hostile
 * process would, and opened in a child, where a crash shows as a signal
 * and fails the test instead of ending the program.
 *
 * Included by the test_region*.c programs only.  Its functions are static
 * inline so that each program carries just what it uses, and the other
 * test programs (which link every object of tests-common-y) none of it.
 */
#ifndef SLUICE_TESTS_REGION_FIXTURE_H
#define SLUICE_TESTS_REGION_FIXTURE_H

#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <sluice/region.h>

#include "harness.h"
#include "internal.h"
#include "region_layout.h"

#define KIB		1024ul
#define MIB		(1024ul * KIB)
/* Most tests use a small region on normal pages: cheap and deterministic. */
#define SMALL		(64 * KIB)
#define HEAP		SLUICE_REGION_HEAP_OFF
#define CHILD_TIMEOUT	20	/* seconds before a hung child is killed */

#define HDR_OFF(F)	offsetof(struct sluice_region_hdr, F)
#define HDR_LEN(F)	sizeof(((struct sluice_region_hdr *)0)->F)
#define OBJ_OFF(I, F)	(offsetof(struct sluice_region_hdr, objs) +		\
			 (I) * sizeof(struct sluice_obj_entry) +		\
			 offsetof(struct sluice_obj_entry, F))
#define OBJ_LEN(F)	sizeof(((struct sluice_obj_entry *)0)->F)

/* ---------------------------------------------------------------- regions and their files */

static inline struct sluice_region *create_with(const char *name, size_t size,
						enum sluice_pages pages)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = pages);
	struct sluice_region *r = NULL;

	assert_int_equal(sluice_region_create(name, size, &opts, &r), 0);
	assert_non_null(r);
	return r;
}

/* A region on normal pages in the shm directory. */
static inline struct sluice_region *create_shm(const char *name, size_t size)
{
	return create_with(name, size, SLUICE_PAGES_NO_HUGE);
}

static inline void file_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/" SLUICE_FILE_PREFIX "%s", dir, name);

	assert_true(n > 0 && (size_t)n < len);
}

static inline void shm_path(char *buf, size_t len, const char *name)
{
	file_path(buf, len, sluice__shm_dir(), name);
}

/* Write the low @len bytes of @val (little-endian) at @off of the file. */
static inline void poke(int fd, size_t off, size_t len, uint64_t val)
{
	uint8_t buf[8];
	size_t i;

	assert_true(len <= sizeof(buf));
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(val >> (8 * i));
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
}

#define POKE_HDR(fd, F, V)	poke(fd, HDR_OFF(F), HDR_LEN(F), (uint64_t)(V))

/* Recompute the header checksum, as a forger would, after changing a field. */
static inline void fix_csum(int fd)
{
	unsigned char buf[SLUICE_REGION_CSUM_LEN];
	uint64_t csum;

	assert_int_equal(pread(fd, buf, sizeof(buf), 0), (ssize_t)sizeof(buf));
	csum = sluice__fnv1a(buf, sizeof(buf));
	poke(fd, HDR_OFF(csum), HDR_LEN(csum), csum);
}

struct open_arg {
	const char *name;
	const char *path;	/* open this file and use sluice_region_open_fd() */
	int wait_ms;
};

/* In a child: open, look at every byte, close; exit with -error. */
static inline int child_open(void *p)
{
	const struct open_arg *a = p;
	SLUICE_OPTS(sluice_region_open_opts, opts, .wait_ms = a->wait_ms);
	struct sluice_region *r;
	volatile unsigned char sum = 0;
	unsigned char *base;
	size_t i;
	int fd, err;

	if (a->path) {
		fd = open(a->path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return 200;
		err = sluice_region_open_fd(fd, &opts, &r);
		close(fd);
	} else {
		err = sluice_region_open(a->name, &opts, &r);
	}
	if (err)
		return -err;
	/* What open accepted must be safe to read, all of it. */
	base = sluice_region_base(r);
	for (i = 0; i < sluice_region_size(r); i += 512)
		sum += base[i];
	(void)sum;
	sluice_region_close(r);
	return 0;
}

/* Open @name in a child; 0 or the positive errno it failed with. */
static inline int open_in_child(const char *name)
{
	struct open_arg a = { .name = name, .wait_ms = -1 };

	return h_fork(child_open, &a, CHILD_TIMEOUT);
}

#endif /* SLUICE_TESTS_REGION_FIXTURE_H */
