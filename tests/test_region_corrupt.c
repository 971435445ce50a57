// SPDX-License-Identifier: MIT
/*
 * Regions that a buggy or hostile process wrote into: every field of the
 * header corrupted, with its checksum left stale and forged to match; a
 * file truncated, grown, holed, or not a region's file at all; a
 * directory whose entries overlap, leave the heap or the region, or
 * cannot be; a lock whose holder died or never lets go; and a directory
 * scribbled over at random.  Whatever was written, a caller is never
 * crashed, never held past its deadline, never made to touch memory
 * outside the region, and never handed a range that overlaps an object
 * or leaves the region.
 *
 * The damage is done by writing to the region's file, then opening it in
 * a forked child, so that a crash shows up as a signal and fails the test.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching
 * tests; SLUICE_TEST_FUZZ_ROUNDS and SLUICE_TEST_FUZZ_SEED make the
 * scribbled directory test run longer or differently.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frames.h"
#include "harness.h"
#include "internal.h"
#include "region_fixture.h"
#include "region_layout.h"

/* ---------------------------------------------------------------- helpers */

/* Our own descriptor for a region's file, opened behind the library's back. */
static int open_shm_file(const char *name)
{
	char path[PATH_MAX];
	int fd;

	shm_path(path, sizeof(path), name);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void poke_bytes(int fd, size_t off, const void *p, size_t len)
{
	assert_int_equal(pwrite(fd, p, len, (off_t)off), (ssize_t)len);
}

#define POKE_OBJ(fd, I, F, V)	poke(fd, OBJ_OFF(I, F), OBJ_LEN(F), (uint64_t)(V))

/* The same through sluice_region_open_fd(), which checks no name. */
static int open_fd_in_child(const char *name)
{
	char path[PATH_MAX];
	struct open_arg a = { .path = path, .wait_ms = -1 };

	shm_path(path, sizeof(path), name);
	return h_fork(child_open, &a, CHILD_TIMEOUT);
}

/* After every test, pass or fail: no region of ours outlives it. */
static int cleanup(void **state)
{
	(void)state;
	h_unlink_all();
	return 0;
}

/* ---------------------------------------------------------------- corrupted headers */

/*
 * Create a region, check it opens, corrupt @len bytes at @off, optionally
 * re-sign the header, and expect opening it in a child to fail with @err.
 */
static void corrupt_then_open(size_t off, size_t len, uint64_t val, bool fix,
			      int err)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	r = create_shm(h_name(name), SMALL);
	assert_int_equal(open_in_child(name), 0);
	fd = open_shm_file(name);
	poke(fd, off, len, val);
	if (fix)
		fix_csum(fd);
	close(fd);
	assert_int_equal(open_in_child(name), -err);
	assert_int_equal(open_fd_in_child(name), -err);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/*
 * Two tests per field: with the checksum left stale (caught by it, or by an
 * earlier check), and with it recomputed, so the field's own check has to
 * catch it.
 */
#define HDR_CASE(WHAT, F, V, STALE_ERR, FIXED_ERR)				\
static void test_open_rejects_##WHAT(void **state)				\
{										\
	(void)state;								\
	corrupt_then_open(HDR_OFF(F), HDR_LEN(F), (uint64_t)(V), false,		\
			  STALE_ERR);						\
}										\
static void test_open_rejects_##WHAT##_even_with_a_valid_csum(void **state)	\
{										\
	(void)state;								\
	corrupt_then_open(HDR_OFF(F), HDR_LEN(F), (uint64_t)(V), true,		\
			  FIXED_ERR);						\
}
#define HDR_TESTS(WHAT)								\
	T(test_open_rejects_##WHAT),						\
	T(test_open_rejects_##WHAT##_even_with_a_valid_csum)

HDR_CASE(bad_magic, magic, 0x4b43554c53ull, -EBADMSG, -EBADMSG)
HDR_CASE(a_newer_abi, abi, SLUICE_REGION_ABI + 1, -EPROTO, -EPROTO)
HDR_CASE(abi_zero, abi, 0, -EPROTO, -EPROTO)
HDR_CASE(a_short_hdr_size, hdr_size, sizeof(struct sluice_region_hdr) - 64,
	 -EBADMSG, -EBADMSG)
HDR_CASE(a_long_hdr_size, hdr_size, sizeof(struct sluice_region_hdr) + 64,
	 -EBADMSG, -EBADMSG)
HDR_CASE(size_larger_than_the_file, size, SMALL + 4096, -EBADMSG, -EBADMSG)
HDR_CASE(size_smaller_than_the_file, size, SMALL - 4096, -EBADMSG, -EBADMSG)
HDR_CASE(size_near_uint64_max, size, UINT64_MAX - 4095, -EBADMSG, -EBADMSG)
HDR_CASE(page_size_not_a_power_of_two, page_size, 12288, -EBADMSG, -EBADMSG)
HDR_CASE(page_size_zero, page_size, 0, -EBADMSG, -EBADMSG)
HDR_CASE(page_size_below_4k, page_size, 1024, -EBADMSG, -EBADMSG)
HDR_CASE(page_size_not_dividing_size, page_size, 1 * MIB, -EBADMSG, -EBADMSG)
HDR_CASE(page_size_of_2_63, page_size, 1ull << 63, -EBADMSG, -EBADMSG)
HDR_CASE(heap_off_inside_the_header, heap_off, 4096, -EBADMSG, -EBADMSG)
HDR_CASE(heap_off_beyond_size, heap_off, SMALL + HEAP, -EBADMSG, -EBADMSG)
HDR_CASE(an_unknown_backing, backing, 0, -EBADMSG, -EBADMSG)
HDR_CASE(a_backing_out_of_range, backing, 99, -EBADMSG, -EBADMSG)
HDR_CASE(an_unknown_page_policy, pages, 3, -EBADMSG, -EBADMSG)
HDR_CASE(node_below_minus_one, node, -2, -EBADMSG, -EBADMSG)
HDR_CASE(requested_node_below_minus_one, node_requested, -7, -EBADMSG, -EBADMSG)
HDR_CASE(mode_beyond_0777, mode, 04777, -EBADMSG, -EBADMSG)

static void test_open_rejects_a_wrong_csum(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	uint64_t csum;
	int fd;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	fd = open_shm_file(name);
	assert_int_equal(pread(fd, &csum, 8, HDR_OFF(csum)), 8);
	POKE_HDR(fd, csum, csum ^ (1ull << 40));
	close(fd);
	assert_int_equal(open_in_child(name), EBADMSG);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* Proves fix_csum() works, so the _even_with_a_valid_csum tests mean it. */
static void test_open_accepts_a_header_re_signed_after_a_harmless_change(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r, *r2;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	fd = open_shm_file(name);
	POKE_HDR(fd, created_ns, 12345);
	fix_csum(fd);
	close(fd);
	assert_int_equal(sluice_region_open(name, NULL, &r2), 0);
	assert_int_equal(sluice_region_info(r2, &info), 0);
	assert_int_equal(info.created_ns, 12345);
	sluice_region_close(r2);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_open_rejects_a_flipped_name_byte(void **state)
{
	(void)state;
	/* 't' ^ 1 = 'u': still a valid name, but not the one signed. */
	corrupt_then_open(HDR_OFF(name), 1, 't' ^ 1, false, -EBADMSG);
}

static void test_open_rejects_a_header_naming_another_region(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	fd = open_shm_file(name);
	poke(fd, HDR_OFF(name), 1, 'u');
	fix_csum(fd);
	close(fd);
	/* By name: the header says another name. */
	assert_int_equal(open_in_child(name), EBADMSG);
	/* By descriptor no name is expected, and "u-..." is a fine name. */
	assert_int_equal(open_fd_in_child(name), 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_open_rejects_a_name_with_a_slash_even_with_a_valid_csum(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	fd = open_shm_file(name);
	poke(fd, HDR_OFF(name) + 1, 1, '/');
	fix_csum(fd);
	close(fd);
	assert_int_equal(open_fd_in_child(name), EBADMSG);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_open_rejects_an_unterminated_name_even_with_a_valid_csum(void **state)
{
	char name[H_NAME_SZ], junk[SLUICE_REGION_NAME_MAX + 1];
	struct sluice_region *r;
	int fd;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	memset(junk, 'a', sizeof(junk));
	fd = open_shm_file(name);
	poke_bytes(fd, HDR_OFF(name), junk, sizeof(junk));
	fix_csum(fd);
	close(fd);
	assert_int_equal(open_fd_in_child(name), EBADMSG);
	assert_int_equal(open_in_child(name), EBADMSG);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void truncate_then_open(off_t len, int err)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	r = create_shm(h_name(name), SMALL);
	/* Nothing may touch r's mapping past the new end from here. */
	fd = open_shm_file(name);
	assert_int_equal(ftruncate(fd, len), 0);
	close(fd);
	assert_int_equal(open_in_child(name), -err);
	assert_int_equal(open_fd_in_child(name), -err);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_open_rejects_a_file_truncated_to_nothing(void **state)
{
	(void)state;
	truncate_then_open(0, -EBADMSG);
}

static void test_open_rejects_a_file_truncated_inside_the_header(void **state)
{
	(void)state;
	truncate_then_open(100, -EBADMSG);
	truncate_then_open(sizeof(struct sluice_region_hdr) - 1, -EBADMSG);
}

static void test_open_rejects_a_file_truncated_after_the_header(void **state)
{
	(void)state;
	truncate_then_open(HEAP, -EBADMSG);
	truncate_then_open(SMALL - 4096, -EBADMSG);
}

static void test_open_rejects_a_file_grown_past_its_size(void **state)
{
	(void)state;
	truncate_then_open(SMALL + 4096, -EBADMSG);
}

static void test_open_rejects_a_file_with_holes(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	fd = open_shm_file(name);
	assert_int_equal(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   SMALL - 8192, 4096), 0);
	close(fd);
	assert_int_equal(open_in_child(name), EBADMSG);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_open_rejects_a_fifo_in_place_of_a_region(void **state)
{
	char name[H_NAME_SZ], path[PATH_MAX];

	(void)state;
	shm_path(path, sizeof(path), h_name(name));
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(open_in_child(name), EBADMSG);
	unlink(path);
}

static void test_open_does_not_follow_a_symlink_in_place_of_a_region(void **state)
{
	char name[H_NAME_SZ], link_name[H_NAME_SZ];
	char path[PATH_MAX], target[PATH_MAX];
	struct sluice_region *r;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	shm_path(target, sizeof(target), name);
	shm_path(path, sizeof(path), h_name(link_name));
	assert_int_equal(symlink(target, path), 0);
	assert_int_equal(open_in_child(link_name), EBADMSG);
	unlink(path);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* ---------------------------------------------------------------- corrupted directory */

static struct sluice_region *region_with_one_obj(char *name, int *fd)
{
	struct sluice_region *r;
	uint64_t off;

	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_alloc(r, "obj", SLUICE_OBJ_RAW, 256, 0, &off), 0);
	*fd = sluice_region_fd(r);
	return r;
}

static void expect_directory_rejected(struct sluice_region *r)
{
	struct sluice_obj_info oi;
	uint64_t off;

	assert_int_equal(sluice_region_find(r, "obj", &oi), -EBADMSG);
	assert_int_equal(sluice_region_obj(r, 0, &oi), -EBADMSG);
	assert_int_equal(sluice_region_alloc(r, "other", SLUICE_OBJ_RAW, 64, 0, &off),
			 -EBADMSG);
}

#define OBJ_CASE(WHAT, F, V)							\
static void test_directory_rejects_an_entry_with_##WHAT(void **state)	\
{										\
	struct sluice_region *r;						\
	char name[H_NAME_SZ];							\
	int fd;									\
										\
	(void)state;								\
	r = region_with_one_obj(name, &fd);					\
	POKE_OBJ(fd, 0, F, V);							\
	expect_directory_rejected(r);						\
	assert_int_equal(sluice_region_destroy(r), 0);				\
}

OBJ_CASE(a_range_past_the_end, size, SMALL)
OBJ_CASE(a_size_that_overflows, size, UINT64_MAX)
OBJ_CASE(an_offset_that_overflows, off, UINT64_MAX - 64)
OBJ_CASE(an_offset_past_the_end, off, SMALL + 4096)
OBJ_CASE(an_offset_inside_the_header, off, 0)
OBJ_CASE(size_zero, size, 0)
OBJ_CASE(type_zero, type, 0)
OBJ_CASE(an_unknown_state, state, 7)

static void test_directory_rejects_an_entry_with_an_unterminated_name(void **state)
{
	char junk[SLUICE_OBJ_NAME_MAX + 1];
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = region_with_one_obj(name, &fd);
	memset(junk, 'o', sizeof(junk));
	poke_bytes(fd, OBJ_OFF(0, name), junk, sizeof(junk));
	expect_directory_rejected(r);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_directory_rejects_an_entry_with_a_bad_name(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = region_with_one_obj(name, &fd);
	poke_bytes(fd, OBJ_OFF(0, name), "../x", 5);
	expect_directory_rejected(r);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_directory_rejects_nr_objs_beyond_the_maximum(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = region_with_one_obj(name, &fd);
	POKE_HDR(fd, nr_objs, SLUICE_REGION_OBJS_MAX + 1);
	expect_directory_rejected(r);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_true(info.nr_objs <= SLUICE_REGION_OBJS_MAX);
	POKE_HDR(fd, nr_objs, UINT32_MAX);
	expect_directory_rejected(r);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* Three objects of 256 bytes back to back from the heap start: obj, b, c. */
static struct sluice_region *region_with_three_objs(char *name, int *fd)
{
	struct sluice_region *r = region_with_one_obj(name, fd);
	uint64_t off;

	assert_int_equal(sluice_region_alloc(r, "b", SLUICE_OBJ_RAW, 256, 0, &off), 0);
	assert_int_equal(off, HEAP + 256);
	assert_int_equal(sluice_region_alloc(r, "c", SLUICE_OBJ_RAW, 256, 0, &off), 0);
	assert_int_equal(off, HEAP + 512);
	return r;
}

static void test_overlapping_directory_entries_are_ebadmsg(void **state)
{
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	uint64_t off;
	int fd;

	(void)state;
	r = region_with_three_objs(name, &fd);
	/* Back to back is not overlap. */
	assert_int_equal(sluice_region_find(r, "obj", &oi), 0);

	/*
	 * One byte shared by the first two entries: a look-up of the first,
	 * which a walk meets before the second, fails all the same.
	 */
	POKE_OBJ(fd, 1, off, HEAP + 255);
	expect_directory_rejected(r);
	assert_int_equal(sluice_region_obj(r, 2, &oi), -EBADMSG);
	assert_int_equal(sluice_region_find(r, "c", &oi), -EBADMSG);

	/* One entry wholly inside another. */
	POKE_OBJ(fd, 1, off, HEAP + 64);
	POKE_OBJ(fd, 1, size, 64);
	expect_directory_rejected(r);

	/* The same range twice, in the last two entries. */
	POKE_OBJ(fd, 1, off, HEAP + 512);
	POKE_OBJ(fd, 1, size, 256);
	expect_directory_rejected(r);

	/* Put back, the directory reads again. */
	POKE_OBJ(fd, 1, off, HEAP + 256);
	assert_int_equal(sluice_region_obj(r, 1, &oi), 0);
	assert_int_equal(oi.offset, HEAP + 256);
	assert_int_equal(sluice_region_alloc(r, "d", SLUICE_OBJ_RAW, 64, 0, &off), 0);
	assert_int_equal(off, HEAP + 768);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_a_directory_entry_past_the_heap_top_is_ebadmsg(void **state)
{
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd;

	(void)state;
	r = region_with_one_obj(name, &fd);
	/* Inside the region, but one byte past what was ever allocated. */
	POKE_OBJ(fd, 0, size, 257);
	expect_directory_rejected(r);
	/* Ending exactly at the top is what every allocation does. */
	POKE_OBJ(fd, 0, size, 256);
	assert_int_equal(sluice_region_find(r, "obj", &oi), 0);
	assert_int_equal(oi.size, 256);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_alloc_never_hands_out_a_range_that_overlaps_an_object(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	unsigned char *p;
	uint64_t off = 12345, i;
	int fd;

	(void)state;
	r = region_with_one_obj(name, &fd);
	assert_int_equal(sluice_region_find(r, "obj", &oi), 0);
	p = sluice_region_at(r, oi.offset, oi.size);
	assert_non_null(p);
	memset(p, 0xa5, oi.size);
	/* A top inside the heap, but under the object: allocating there would zero it. */
	POKE_HDR(fd, heap_top, HEAP);
	assert_int_equal(sluice_region_alloc(r, "other", SLUICE_OBJ_RAW, 64, 0, &off),
			 -EBADMSG);
	assert_int_equal(off, 12345);
	for (i = 0; i < oi.size; i++)
		assert_int_equal(p[i], 0xa5);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.nr_objs, 1);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_alloc_rejects_heap_top_beyond_the_region(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	char name[H_NAME_SZ];
	uint64_t off;
	int fd;

	(void)state;
	r = region_with_one_obj(name, &fd);
	POKE_HDR(fd, heap_top, SMALL + 1);
	assert_int_equal(sluice_region_alloc(r, "b", SLUICE_OBJ_RAW, 1, 0, &off),
			 -EBADMSG);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_true(info.heap_used <= info.heap_size);
	POKE_HDR(fd, heap_top, UINT64_MAX);
	assert_int_equal(sluice_region_alloc(r, "b", SLUICE_OBJ_RAW, 1, 0, &off),
			 -EBADMSG);
	/* Below the heap is as wrong as beyond it. */
	POKE_HDR(fd, heap_top, 64);
	assert_int_equal(sluice_region_alloc(r, "b", SLUICE_OBJ_RAW, 1, 0, &off),
			 -EBADMSG);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_true(info.heap_used <= info.heap_size);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static int child_dies_holding_the_lock(void *p)
{
	struct sluice_region *r;

	if (sluice_region_open(p, NULL, &r))
		return 1;
	if (sluice__region_lock(r))
		return 2;
	_exit(0);	/* still holding it */
}

static void test_alloc_recovers_a_lock_whose_holder_died(void **state)
{
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	uint64_t off;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(h_fork(child_dies_holding_the_lock, name, CHILD_TIMEOUT), 0);
	assert_int_equal(sluice_region_alloc(r, "after", SLUICE_OBJ_RAW, 64, 0, &off), 0);
	assert_int_equal(sluice_region_find(r, "after", &oi), 0);
	assert_int_equal(oi.offset, off);
	/* And the lock works normally from then on. */
	assert_int_equal(sluice_region_alloc(r, "again", SLUICE_OBJ_RAW, 64, 0, &off), 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

struct holder_arg {
	const char *name;
	int ready[2];	/* child -> parent: "I hold it" */
	int done[2];	/* parent -> child: "let go" */
};

static int child_holds_the_lock(void *p)
{
	struct holder_arg *a = p;
	struct sluice_region *r;
	char c = 'x';

	if (sluice_region_open(a->name, NULL, &r))
		return 1;
	if (sluice__region_lock(r))
		return 2;
	if (write(a->ready[1], &c, 1) != 1 || read(a->done[0], &c, 1) != 1)
		return 3;
	sluice__region_unlock(r);
	sluice_region_close(r);
	return 0;
}

static void test_alloc_times_out_on_a_lock_held_too_long(void **state)
{
	struct holder_arg a;
	struct sluice_region *r;
	char name[H_NAME_SZ], c;
	uint64_t off;
	int64_t t0;
	int pid;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	a.name = name;
	assert_int_equal(pipe2(a.ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(a.done, O_CLOEXEC), 0);
	pid = h_spawn(child_holds_the_lock, &a, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(read(a.ready[0], &c, 1), 1);
	t0 = h_now_ms();
	assert_int_equal(sluice_region_alloc(r, "x", SLUICE_OBJ_RAW, 64, 0, &off),
			 -ETIMEDOUT);
	/* The 2 seconds documented, with room for a busy machine. */
	assert_true(h_now_ms() - t0 >= 1000);
	assert_true(h_now_ms() - t0 < 3000);
	assert_int_equal(write(a.done[1], "x", 1), 1);
	assert_int_equal(h_wait(pid), 0);
	assert_int_equal(sluice_region_alloc(r, "x", SLUICE_OBJ_RAW, 64, 0, &off), 0);
	close(a.ready[0]);
	close(a.ready[1]);
	close(a.done[0]);
	close(a.done[1]);
	assert_int_equal(sluice_region_destroy(r), 0);
}

struct alloc_arg {
	struct sluice_region *r;
	char obj[16];
};

/* In a child: one alloc; exit with -error. */
static int child_alloc_once(void *p)
{
	struct alloc_arg *a = p;
	uint64_t off;

	return -sluice_region_alloc(a->r, a->obj, SLUICE_OBJ_RAW, 64, 0, &off);
}

/*
 * No lock lives in shared memory, where garbage once made glibc abort
 * (a pthread mutex there did, for fills 0x30, 0x40, 0xb0, 0xc0): whatever
 * is written where it was, allocation still works.
 */
static void test_alloc_keeps_no_lock_in_shared_memory(void **state)
{
	static const unsigned char fills[] = { 0x01, 0x30, 0x40, 0xb0, 0xc0, 0xff };
	unsigned char junk[HDR_LEN(reserved)];
	char name[H_NAME_SZ], bad[128] = "";
	struct alloc_arg a;
	int fd, st;
	size_t i;

	(void)state;
	a.r = create_shm(h_name(name), SMALL);
	fd = sluice_region_fd(a.r);
	for (i = 0; i < SLUICE_ARRAY_SIZE(fills) && !bad[0]; i++) {
		memset(junk, fills[i], sizeof(junk));
		poke_bytes(fd, HDR_OFF(reserved), junk, sizeof(junk));
		snprintf(a.obj, sizeof(a.obj), "obj%zu", i);
		st = h_fork(child_alloc_once, &a, CHILD_TIMEOUT);
		if (st >= H_SIGNALED)
			snprintf(bad, sizeof(bad), "reserved filled with %#x: "
				 "alloc died of signal %d", fills[i], st - H_SIGNALED);
		else if (st)
			snprintf(bad, sizeof(bad), "reserved filled with %#x: "
				 "alloc returned -%d, want 0", fills[i], st);
	}
	/* Clean up first: a failure here should not also be a leak. */
	assert_int_equal(sluice_region_destroy(a.r), 0);
	if (bad[0])
		fail_msg("%s", bad);
}

/* ---------------------------------------------------------------- a hostile peer */

/*
 * What Documentation/regions.md says a peer that writes anything into a
 * region cannot do: crash a caller, hold a call past its deadline, make
 * the library touch memory outside the region, or make it hand out a
 * range that overlaps another object or leaves the region.  The corrupted
 * directory tests above prove the last case by case; these prove the
 * rest, and the last again against garbage.
 */

static void test_find_and_obj_do_not_wait_for_the_directory_lock(void **state)
{
	struct sluice_obj_info oi;
	struct sluice_region *r;
	struct holder_arg a;
	char name[H_NAME_SZ], c;
	int64_t t0;
	int fd, pid;

	(void)state;
	r = region_with_one_obj(name, &fd);
	a.name = name;
	assert_int_equal(pipe2(a.ready, O_CLOEXEC), 0);
	assert_int_equal(pipe2(a.done, O_CLOEXEC), 0);
	pid = h_spawn(child_holds_the_lock, &a, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(read(a.ready[0], &c, 1), 1);
	t0 = h_now_ms();
	assert_int_equal(sluice_region_find(r, "obj", &oi), 0);
	assert_int_equal(sluice_region_obj(r, 0, &oi), 0);
	/* Far below the lock's 2 seconds: neither call waits for it. */
	assert_true(h_now_ms() - t0 < 1000);
	assert_int_equal(write(a.done[1], "x", 1), 1);
	assert_int_equal(h_wait(pid), 0);
	close(a.ready[0]);
	close(a.ready[1]);
	close(a.done[0]);
	close(a.done[1]);
	assert_int_equal(sluice_region_destroy(r), 0);
}

#define GUARD_TRIES	64
#define GUARD_NONE	77	/* a child's exit: no guarded mapping could be made */

/*
 * Open @name so that a PROT_NONE page lies on each side of its mapping,
 * and a touch just outside the region is SIGSEGV.  The kernel puts a new
 * mapping in the first gap that fits, in its own search order, so a gap of
 * exactly the region's size is made between two guard pages.  When the
 * region lands in another gap instead, it stays there, filling that gap,
 * and ours is filled too, so each try has one gap fewer ahead of ours.
 * NULL if no try landed.
 */
static struct sluice_region *open_guarded(const char *name, size_t size)
{
	const size_t pg = 4096;
	struct sluice_region *r;
	char *zone;
	int i;

	for (i = 0; i < GUARD_TRIES; i++) {
		zone = mmap(NULL, size + 2 * pg, PROT_NONE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (zone == MAP_FAILED || munmap(zone + pg, size))
			return NULL;
		if (sluice_region_open(name, NULL, &r))
			return NULL;
		if ((char *)sluice_region_base(r) == zone + pg)
			return r;
		if (mmap(zone + pg, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS |
			 MAP_FIXED, -1, 0) == MAP_FAILED)
			return NULL;
	}
	return NULL;
}

/*
 * In a child, on a guarded mapping: forge each directory value that, if
 * trusted, would send a call past the end of the region.
 */
static int child_calls_at_the_edges(void *p)
{
	struct sluice_region_hdr *h;
	struct sluice_obj_info oi;
	struct sluice_region *r;
	uint64_t off, size;

	r = open_guarded(p, SMALL);
	if (!r)
		return GUARD_NONE;
	h = sluice_region_base(r);
	size = sluice_region_size(r);

	/* A count that would walk the entries off the end of the mapping. */
	atomic_store(&h->nr_objs, UINT32_MAX);
	CK_EQ(sluice_region_find(r, "obj", &oi), -EBADMSG);
	CK_EQ(sluice_region_obj(r, 0, &oi), -EBADMSG);
	CK_EQ(sluice_region_alloc(r, "x", SLUICE_OBJ_RAW, 64, 0, &off), -EBADMSG);
	atomic_store(&h->nr_objs, 1);

	/* A full heap, then one nearly full: more would be zeroed past the end. */
	atomic_store(&h->heap_top, size);
	CK_EQ(sluice_region_alloc(r, "x", SLUICE_OBJ_RAW, 1, 1, &off), -ENOSPC);
	atomic_store(&h->heap_top, size - 64);
	CK_EQ(sluice_region_alloc(r, "x", SLUICE_OBJ_RAW, 65, 1, &off), -ENOSPC);
	/* What fits is zeroed to the last byte, just short of the guard. */
	CK_EQ(sluice_region_alloc(r, "x", SLUICE_OBJ_RAW, 64, 1, &off), 0);
	CK_EQ(off, size - 64);

	/* A top past the end, where the next object would start. */
	atomic_store(&h->heap_top, size + 4096);
	CK_EQ(sluice_region_alloc(r, "y", SLUICE_OBJ_RAW, 64, 0, &off), -EBADMSG);
	return 0;
}

static void test_directory_calls_never_touch_memory_outside_the_region(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	int fd, st;

	(void)state;
	r = region_with_one_obj(name, &fd);
	st = h_fork(child_calls_at_the_edges, name, CHILD_TIMEOUT);
	assert_int_equal(sluice_region_destroy(r), 0);
	if (st == GUARD_NONE)
		h_skip("no gap of the region's size could be put between guard pages");
	assert_int_equal(st, 0);
}

#define SCRIBBLE_ROUNDS	1000

/* A value a forger would try for an offset, a size or the heap top. */
static uint64_t forged(uint64_t x)
{
	uint64_t v = x >> 8;

	switch (x % 8) {
	case 0:
		return v;				/* anything */
	case 1:
		return 0;
	case 2:
		return HEAP - 64 + v % 1024;		/* about the heap start */
	case 3:
		return SMALL - v % 1024;		/* near the end */
	case 4:
		return SMALL + v % 64;			/* just past it */
	case 5:
		return UINT64_MAX - v % 64;		/* about to wrap */
	case 6:
		return 64 * (v % 16);			/* a small size */
	default:
		return HEAP + 64 * (v % 128);		/* on the allocator's grid */
	}
}

/*
 * Rewrite the whole directory (heap top, count, entries) from @seed: as
 * random bytes; as values forged one by one; or, most often, as the
 * directory an honest allocator would leave, then damaged in a place or
 * two (an offset, a size, the top, the count, or one entry moved onto
 * another), so that each check in turn is what stands in the way.
 */
static void scribble_directory(int fd, uint64_t seed)
{
	const size_t from = HDR_OFF(heap_top), len = sizeof(struct sluice_region_hdr) - from;
	struct sluice_region_hdr h;
	struct sluice_obj_entry *e;
	uint64_t rng = seed, x, top = HEAP;
	unsigned char *dir = (unsigned char *)&h + from;
	unsigned int i, j, k, hits;
	size_t b;

	memset(&h, 0, sizeof(h));
	x = h_mix(rng++);
	if (x % 4 == 0) {
		for (b = 0; b < len; b++)
			dir[b] = (unsigned char)h_mix(rng++);
		poke_bytes(fd, from, dir, len);
		return;
	}
	for (i = 0; i < SLUICE_REGION_OBJS_MAX; i++) {
		e = &h.objs[i];
		snprintf(e->name, sizeof(e->name), "o%u", i);
		e->type = SLUICE_OBJ_RAW;
		e->state = SLUICE_OBJ_LIVE;
		e->off = (top + 63) & ~63ull;
		e->size = 1 + h_mix(rng++) % 256;
		top = e->off + e->size;
		if (x % 4 == 1) {
			e->off = forged(h_mix(rng++));
			e->size = forged(h_mix(rng++));
		}
	}
	h.nr_objs = (uint32_t)(h_mix(rng++) % (SLUICE_REGION_OBJS_MAX + 1));
	h.heap_top = h.nr_objs ? h.objs[h.nr_objs - 1].off + h.objs[h.nr_objs - 1].size : HEAP;
	if (x % 4 == 1)
		h.heap_top = forged(h_mix(rng++));
	hits = (unsigned int)(h_mix(rng++) % 3);
	for (k = 0; k < hits; k++) {
		x = h_mix(rng++);
		i = (unsigned int)((x >> 8) % SLUICE_REGION_OBJS_MAX);
		j = (unsigned int)((x >> 16) % SLUICE_REGION_OBJS_MAX);
		switch (x % 5) {
		case 0:
			h.objs[i].off = forged(h_mix(rng++));
			break;
		case 1:
			h.objs[i].size = forged(h_mix(rng++));
			break;
		case 2:
			h.heap_top = forged(h_mix(rng++));
			break;
		case 3:
			h.objs[i].off = h.objs[j].off + (x >> 24) % 64;
			break;
		default:
			h.nr_objs = (uint32_t)((x >> 8) % (SLUICE_REGION_OBJS_MAX + 3));
			break;
		}
	}
	poke_bytes(fd, from, dir, len);
}

static bool disjoint(const struct sluice_obj_info *a, uint64_t off, uint64_t size)
{
	return a->offset + a->size <= off || off + size <= a->offset;
}

/*
 * In a child: each directory call returns one of its documented errors
 * or ranges inside the region that overlap no other, and all of them
 * judge the directory alike.
 */
static int child_reads_a_scribbled_directory(void *p)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_obj_info got[SLUICE_REGION_OBJS_MAX], oi;
	struct sluice_region *r = p;
	uint64_t size = sluice_region_size(r), off;
	unsigned int i, j, n;
	int err = 0, none;

	for (n = 0; n < SLUICE_REGION_OBJS_MAX; n++) {
		err = sluice_region_obj(r, n, &got[n]);
		if (err)
			break;
	}
	CK(err == 0 || err == -ENOENT || err == -EBADMSG);
	CK(err != -EBADMSG || n == 0);
	none = err == -EBADMSG ? -EBADMSG : -ENOENT;
	CK_EQ(sluice_region_obj(r, SLUICE_REGION_OBJS_MAX, &oi), none);
	CK_EQ(sluice_region_find(r, "absent", &oi), none);
	for (i = 0; i < n; i++) {
		CK(got[i].offset >= HEAP && got[i].size > 0);
		CK(got[i].offset <= size && got[i].size <= size - got[i].offset);
		for (j = 0; j < i; j++)
			CK(disjoint(&got[j], got[i].offset, got[i].size));
		CK_EQ(sluice_region_find(r, got[i].name, &oi), 0);
	}
	err = sluice_region_alloc(r, "new", SLUICE_OBJ_RAW, 64, 0, &off);
	CK(err == 0 || err == -EBADMSG || err == -ENOSPC);
	CK(err != -EBADMSG || none == -EBADMSG || n == 0);
	if (!err) {
		CK(off >= HEAP && off <= size && 64 <= size - off);
		for (i = 0; i < n; i++)
			CK(disjoint(&got[i], off, 64));
	}
	CK_EQ(sluice_region_info(r, &info), 0);
	CK(info.nr_objs <= SLUICE_REGION_OBJS_MAX && info.heap_used <= info.heap_size);
	return 0;
}

static void test_a_scribbled_directory_never_crashes_a_caller(void **state)
{
	const char *env = getenv("SLUICE_TEST_FUZZ_ROUNDS");
	unsigned int round, rounds = env ? (unsigned int)atoi(env) : SCRIBBLE_ROUNDS;
	uint64_t seed = getenv("SLUICE_TEST_FUZZ_SEED") ?
			strtoull(getenv("SLUICE_TEST_FUZZ_SEED"), NULL, 0) : 0;
	char name[H_NAME_SZ], bad[128] = "";
	struct sluice_region *r;
	int st;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	for (round = 0; round < rounds && !bad[0]; round++) {
		scribble_directory(sluice_region_fd(r), h_mix(seed + round + 1));
		st = h_fork(child_reads_a_scribbled_directory, r, CHILD_TIMEOUT);
		if (st >= H_SIGNALED)
			snprintf(bad, sizeof(bad), "round %u: died of signal %d",
				 round, st - H_SIGNALED);
		else if (st)
			snprintf(bad, sizeof(bad), "round %u: a call broke its "
				 "promise (stderr says which)", round);
	}
	/* Clean up first: a failure here should not also be a leak. */
	assert_int_equal(sluice_region_destroy(r), 0);
	if (bad[0])
		fail_msg("%s", bad);
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, NULL, cleanup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* corrupted headers */
		HDR_TESTS(bad_magic),
		HDR_TESTS(a_newer_abi),
		HDR_TESTS(abi_zero),
		HDR_TESTS(a_short_hdr_size),
		HDR_TESTS(a_long_hdr_size),
		HDR_TESTS(size_larger_than_the_file),
		HDR_TESTS(size_smaller_than_the_file),
		HDR_TESTS(size_near_uint64_max),
		HDR_TESTS(page_size_not_a_power_of_two),
		HDR_TESTS(page_size_zero),
		HDR_TESTS(page_size_below_4k),
		HDR_TESTS(page_size_not_dividing_size),
		HDR_TESTS(page_size_of_2_63),
		HDR_TESTS(heap_off_inside_the_header),
		HDR_TESTS(heap_off_beyond_size),
		HDR_TESTS(an_unknown_backing),
		HDR_TESTS(a_backing_out_of_range),
		HDR_TESTS(an_unknown_page_policy),
		HDR_TESTS(node_below_minus_one),
		HDR_TESTS(requested_node_below_minus_one),
		HDR_TESTS(mode_beyond_0777),
		T(test_open_rejects_a_wrong_csum),
		T(test_open_accepts_a_header_re_signed_after_a_harmless_change),
		T(test_open_rejects_a_flipped_name_byte),
		T(test_open_rejects_a_header_naming_another_region),
		T(test_open_rejects_a_name_with_a_slash_even_with_a_valid_csum),
		T(test_open_rejects_an_unterminated_name_even_with_a_valid_csum),
		T(test_open_rejects_a_file_truncated_to_nothing),
		T(test_open_rejects_a_file_truncated_inside_the_header),
		T(test_open_rejects_a_file_truncated_after_the_header),
		T(test_open_rejects_a_file_grown_past_its_size),
		T(test_open_rejects_a_file_with_holes),
		T(test_open_rejects_a_fifo_in_place_of_a_region),
		T(test_open_does_not_follow_a_symlink_in_place_of_a_region),
		/* corrupted directory */
		T(test_directory_rejects_an_entry_with_a_range_past_the_end),
		T(test_directory_rejects_an_entry_with_a_size_that_overflows),
		T(test_directory_rejects_an_entry_with_an_offset_that_overflows),
		T(test_directory_rejects_an_entry_with_an_offset_past_the_end),
		T(test_directory_rejects_an_entry_with_an_offset_inside_the_header),
		T(test_directory_rejects_an_entry_with_size_zero),
		T(test_directory_rejects_an_entry_with_type_zero),
		T(test_directory_rejects_an_entry_with_an_unknown_state),
		T(test_directory_rejects_an_entry_with_an_unterminated_name),
		T(test_directory_rejects_an_entry_with_a_bad_name),
		T(test_directory_rejects_nr_objs_beyond_the_maximum),
		T(test_overlapping_directory_entries_are_ebadmsg),
		T(test_a_directory_entry_past_the_heap_top_is_ebadmsg),
		T(test_alloc_never_hands_out_a_range_that_overlaps_an_object),
		T(test_alloc_rejects_heap_top_beyond_the_region),
		T(test_alloc_recovers_a_lock_whose_holder_died),
		T(test_alloc_times_out_on_a_lock_held_too_long),
		T(test_alloc_keeps_no_lock_in_shared_memory),
		/* a hostile peer */
		T(test_find_and_obj_do_not_wait_for_the_directory_lock),
		T(test_directory_calls_never_touch_memory_outside_the_region),
		T(test_a_scribbled_directory_never_crashes_a_caller),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("region_corrupt", tests, NULL, NULL);
}
