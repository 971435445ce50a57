// SPDX-License-Identifier: MIT
/*
 * Regions: every promise of include/sluice/region.h that an honest user
 * sees kept, checked with real shared memory and real processes: their
 * lifetime, sizes, options and names; what another process sees; huge
 * pages, NUMA placement and anonymous regions passed over a socket; a
 * region caught half made; and the objects of its directory.
 *
 * What a region really got is checked against the kernel's own accounting
 * (/proc/self/smaps, /proc/meminfo, move_pages(2)), never against what
 * the library says about itself.  test_region_corrupt.c proves the rest:
 * what a buggy or hostile process that writes into a region can and
 * cannot do.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <numa.h>
#include <numaif.h>

#include "harness.h"
#include "internal.h"
#include "region_fixture.h"
#include "region_layout.h"

/* ---------------------------------------------------------------- helpers */

static char saved_hugetlbfs[PATH_MAX];
static bool had_hugetlbfs;

/* An anonymous region on normal pages. */
static struct sluice_region *create_anon_shm(size_t size)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_NO_HUGE);
	struct sluice_region *r = NULL;

	assert_int_equal(sluice_region_create_anon(NULL, size, &opts, &r), 0);
	assert_non_null(r);
	return r;
}

static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* For sluice_region_foreach(): count the regions called @want. */
struct find_ctx {
	const char *want;
	int seen;
};

static int note_region(const char *name, void *p)
{
	struct find_ctx *c = p;

	if (!strcmp(name, c->want))
		c->seen++;
	return 0;
}

static void need_hugepages(unsigned long n, char *dir)
{
	if (h_hugepages_ensure(n, dir, PATH_MAX))
		h_skip("%s", h_why());
}

static size_t hugepage_size(void)
{
	long long kb = h_meminfo("Hugepagesize");

	return kb > 0 ? (size_t)kb * KIB : 0;
}

static void set_hugetlbfs_env(const char *v)
{
	if (v)
		setenv("SLUICE_HUGETLBFS", v, 1);
	else if (had_hugetlbfs)
		setenv("SLUICE_HUGETLBFS", saved_hugetlbfs, 1);
	else
		unsetenv("SLUICE_HUGETLBFS");
}

static int group_setup(void **state)
{
	const char *env = getenv("SLUICE_HUGETLBFS");

	(void)state;
	if (env) {
		had_hugetlbfs = true;
		snprintf(saved_hugetlbfs, sizeof(saved_hugetlbfs), "%s", env);
	}
	return 0;
}

/* After every test, pass or fail: no region of ours outlives it. */
static int cleanup(void **state)
{
	(void)state;
	set_hugetlbfs_env(NULL);
	h_unlink_all();
	return 0;
}

static int group_teardown(void **state)
{
	cleanup(state);
	h_hugepages_restore();
	return 0;
}


/* ---------------------------------------------------------------- lifetime */

static void test_create_then_open_maps_the_same_memory(void **state)
{
	struct sluice_region *a, *b = NULL;
	char name[H_NAME_SZ];
	char *pa, *pb;

	(void)state;
	a = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_open(name, NULL, &b), 0);
	assert_non_null(b);
	assert_ptr_not_equal(sluice_region_base(a), sluice_region_base(b));
	assert_int_equal(sluice_region_size(b), sluice_region_size(a));
	assert_string_equal(sluice_region_name(b), name);

	pa = sluice_region_at(a, HEAP, 16);
	pb = sluice_region_at(b, HEAP, 16);
	assert_non_null(pa);
	assert_non_null(pb);
	strcpy(pa, "written via a");
	assert_string_equal(pb, "written via a");
	strcpy(pb, "written via b");
	assert_string_equal(pa, "written via b");

	sluice_region_close(b);
	assert_int_equal(sluice_region_destroy(a), 0);
}

static void test_getters_report_what_the_region_got(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	struct stat st;

	(void)state;
	/* 10000 bytes round up to whole pages. */
	r = create_shm(h_name(name), HEAP + 10000);
	assert_non_null(sluice_region_base(r));
	assert_int_equal(sluice_region_size(r), HEAP + 12288);
	assert_int_equal(sluice_region_page_size(r), 4096);
	assert_int_equal(sluice_region_backing(r), SLUICE_BACKING_SHM);
	assert_string_equal(sluice_region_name(r), name);
	if (numa_available() >= 0)
		assert_int_equal(sluice_region_node(r), 0);
	assert_true(sluice_region_fd(r) >= 0);
	assert_int_equal(fstat(sluice_region_fd(r), &st), 0);
	assert_int_equal(st.st_size, (off_t)sluice_region_size(r));
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_info_reports_the_header(void **state)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_NO_HUGE,
		    .mode = 0640);
	struct sluice_region_info info = { .sz = sizeof(info) };
	uint64_t before, after, off;
	struct sluice_region *r;
	char name[H_NAME_SZ];

	(void)state;
	before = sluice__now_ns(CLOCK_REALTIME);
	assert_int_equal(sluice_region_create(h_name(name), SMALL, &opts, &r), 0);
	after = sluice__now_ns(CLOCK_REALTIME);

	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.sz, sizeof(info));
	assert_string_equal(info.name, name);
	assert_int_equal(info.size, SMALL);
	assert_int_equal(info.page_size, 4096);
	assert_int_equal(info.heap_size, SMALL - HEAP);
	assert_int_equal(info.heap_used, 0);
	assert_int_equal(info.backing, SLUICE_BACKING_SHM);
	assert_int_equal(info.pages, SLUICE_PAGES_NO_HUGE);
	assert_int_equal(info.node_requested, -1);
	assert_int_equal(info.huge_fallback_err, 0);
	assert_int_equal(info.abi_version, SLUICE_REGION_ABI);
	assert_int_equal(info.mode, 0640);
	assert_int_equal(info.creator_pid, getpid());
	assert_int_equal(info.creator_uid, getuid());
	assert_true(info.creator_alive);
	assert_in_range(info.created_ns, before, after);
	assert_int_equal(info.nr_objs, 0);

	assert_int_equal(sluice_region_alloc(r, "x", SLUICE_OBJ_RAW, 100, 64, &off), 0);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.nr_objs, 1);
	assert_int_equal(info.heap_used, off + 100 - HEAP);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_info_rejects_an_implausible_size(void **state)
{
	struct sluice_region_info info;
	struct sluice_region *r;
	char name[H_NAME_SZ];

	(void)state;
	r = create_shm(h_name(name), SMALL);
	info.sz = 0;
	assert_int_equal(sluice_region_info(r, &info), -EINVAL);
	info.sz = sizeof(info.sz) - 1;
	assert_int_equal(sluice_region_info(r, &info), -EINVAL);
	info.sz = 1 << 20;
	assert_int_equal(sluice_region_info(r, &info), -EINVAL);
	assert_int_equal(sluice_region_info(r, NULL), -EINVAL);
	info.sz = sizeof(info);
	assert_int_equal(sluice_region_info(NULL, &info), -EINVAL);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_info_fills_what_the_callers_struct_has_room_for(void **state)
{
	struct {
		struct sluice_region_info info;
		unsigned char future[24];	/* a newer caller's fields */
	} big;
	struct sluice_region_info small;
	size_t small_sz = sluice__offsetofend(struct sluice_region_info, size);
	struct sluice_region *r;
	char name[H_NAME_SZ];
	size_t i;

	(void)state;
	r = create_shm(h_name(name), SMALL);

	/* An older caller: what lies past its sz is not its, left alone. */
	memset(&small, 0xee, sizeof(small));
	small.sz = small_sz;
	assert_int_equal(sluice_region_info(r, &small), 0);
	assert_int_equal(small.sz, small_sz);
	assert_string_equal(small.name, name);
	assert_int_equal(small.size, SMALL);
	for (i = small_sz; i < sizeof(small); i++)
		assert_int_equal(((unsigned char *)&small)[i], 0xee);

	/* A newer caller: everything we know, zeros for what we do not. */
	memset(&big, 0xee, sizeof(big));
	big.info.sz = sizeof(big);
	assert_int_equal(sluice_region_info(r, &big.info), 0);
	assert_int_equal(big.info.sz, sizeof(big));
	assert_string_equal(big.info.name, name);
	assert_int_equal(big.info.size, SMALL);
	assert_int_equal(big.info.creator_pid, getpid());
	for (i = 0; i < sizeof(big.future); i++)
		assert_int_equal(big.future[i], 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_create_faults_in_every_page(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	struct h_smaps s;

	(void)state;
	r = create_shm(h_name(name), 1 * MIB);
	assert_int_equal(h_smaps(sluice_region_base(r), &s), 0);
	assert_int_equal(s.size_kb, 1 * MIB / KIB);
	assert_int_equal(s.rss_kb, 1 * MIB / KIB);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_region_file_has_the_requested_mode(void **state)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_NO_HUGE,
		    .mode = 0604);
	char name[H_NAME_SZ], path[PATH_MAX];
	struct sluice_region *r;
	struct stat st;
	mode_t old;
	int err;

	(void)state;
	/* The umask must not eat into what was asked for. */
	old = umask(077);
	err = sluice_region_create(h_name(name), SMALL, &opts, &r);
	umask(old);
	assert_int_equal(err, 0);
	shm_path(path, sizeof(path), name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0604);
	assert_int_equal(sluice_region_destroy(r), 0);

	/* The default is 0600. */
	r = create_shm(h_name(name), SMALL);
	shm_path(path, sizeof(path), name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_close_leaves_the_region_for_others(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];

	(void)state;
	r = create_shm(h_name(name), SMALL);
	strcpy(sluice_region_at(r, HEAP, 8), "kept");
	sluice_region_close(r);

	r = NULL;
	assert_int_equal(sluice_region_open(name, NULL, &r), 0);
	assert_string_equal(sluice_region_at(r, HEAP, 8), "kept");
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_destroy_removes_the_name(void **state)
{
	char name[H_NAME_SZ], path[PATH_MAX];
	struct sluice_region *r;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	shm_path(path, sizeof(path), name);
	assert_true(file_exists(path));
	assert_int_equal(sluice_region_destroy(r), 0);
	assert_false(file_exists(path));
	assert_int_equal(sluice_region_open(name, NULL, &r), -ENOENT);
}

static void test_destroy_keeps_other_mappings_alive(void **state)
{
	struct sluice_region *a, *b;
	char name[H_NAME_SZ];

	(void)state;
	a = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_open(name, NULL, &b), 0);
	strcpy(sluice_region_at(a, HEAP, 8), "alive");
	assert_int_equal(sluice_region_destroy(a), 0);
	assert_string_equal(sluice_region_at(b, HEAP, 8), "alive");
	sluice_region_close(b);
}

static void test_destroy_leaves_a_newer_region_of_the_same_name_alone(void **state)
{
	struct sluice_region *old, *new, *r;
	char name[H_NAME_SZ];

	(void)state;
	old = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_unlink(name), 0);
	new = create_shm(name, 2 * SMALL);
	/* The name is no longer old's: destroying old must not remove it. */
	assert_int_equal(sluice_region_destroy(old), -ENOENT);
	assert_int_equal(sluice_region_open(name, NULL, &r), 0);
	assert_int_equal(sluice_region_size(r), 2 * SMALL);
	sluice_region_close(r);
	assert_int_equal(sluice_region_destroy(new), 0);
}

static void test_unlink_removes_the_name_but_not_the_mapping(void **state)
{
	struct sluice_region *r, *r2;
	char name[H_NAME_SZ];

	(void)state;
	r = create_shm(h_name(name), SMALL);
	strcpy(sluice_region_at(r, HEAP, 8), "mapped");
	assert_int_equal(sluice_region_unlink(name), 0);
	assert_int_equal(sluice_region_open(name, NULL, &r2), -ENOENT);
	assert_int_equal(sluice_region_unlink(name), -ENOENT);
	assert_string_equal(sluice_region_at(r, HEAP, 8), "mapped");
	sluice_region_close(r);
}

static void test_close_and_destroy_accept_null(void **state)
{
	(void)state;
	sluice_region_close(NULL);
	assert_int_equal(sluice_region_destroy(NULL), 0);
}

static void test_open_of_a_missing_region_is_enoent(void **state)
{
	SLUICE_OPTS(sluice_region_open_opts, opts, .wait_ms = 100);
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ];
	int64_t t0;

	(void)state;
	assert_int_equal(sluice_region_open(h_name(name), NULL, &r), -ENOENT);
	assert_null(r);
	/* With a wait, it waits that long first. */
	t0 = h_now_ms();
	assert_int_equal(sluice_region_open(name, &opts, &r), -ENOENT);
	assert_true(h_now_ms() - t0 >= 90);
	assert_int_equal(sluice_region_unlink(name), -ENOENT);
}

struct create_arg {
	const char *name;
	size_t size;
	enum sluice_pages pages;
	unsigned int delay_ms;	/* before creating */
	unsigned int hold_ms;	/* after creating, before closing */
};

static int child_create(void *p)
{
	const struct create_arg *a = p;
	SLUICE_OPTS(sluice_region_opts, opts, .pages = a->pages);
	struct sluice_region *r;
	int err;

	h_sleep_ms(a->delay_ms);
	err = sluice_region_create(a->name, a->size, &opts, &r);
	if (err)
		return -err;
	h_sleep_ms(a->hold_ms);
	sluice_region_close(r);
	return 0;
}

static void test_open_waits_for_a_region_created_later(void **state)
{
	SLUICE_OPTS(sluice_region_open_opts, opts, .wait_ms = 10000);
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	char name[H_NAME_SZ];
	struct create_arg a = {
		.name = h_name(name), .size = SMALL,
		.pages = SLUICE_PAGES_NO_HUGE, .delay_ms = 150,
	};
	int64_t t0;
	int pid;

	(void)state;
	t0 = h_now_ms();
	pid = h_spawn(child_create, &a, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(sluice_region_open(name, &opts, &r), 0);
	assert_true(h_now_ms() - t0 >= 100);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.creator_pid, pid);
	sluice_region_close(r);
	assert_int_equal(h_wait(pid), 0);
}

static void test_creator_alive_follows_the_creator_process(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	char name[H_NAME_SZ];
	struct create_arg a = {
		.name = h_name(name), .size = SMALL,
		.pages = SLUICE_PAGES_NO_HUGE,
	};
	int pid;

	(void)state;
	pid = h_spawn(child_create, &a, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait(pid), 0);
	assert_int_equal(sluice_region_open(name, NULL, &r), 0);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.creator_pid, pid);
	assert_false(info.creator_alive);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_a_killed_creator_never_leaves_a_half_made_region(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	/* Big enough that faulting it in takes a while. */
	struct create_arg a = {
		.name = h_name(name), .size = 256 * MIB,
		.pages = SLUICE_PAGES_NO_HUGE, .hold_ms = 60000,
	};
	int64_t t0;
	int pid, err, status;

	(void)state;
	pid = h_spawn(child_create, &a, CHILD_TIMEOUT);
	assert_true(pid > 0);
	/* Whenever the name exists, it names a whole region. */
	t0 = h_now_ms();
	while (h_now_ms() - t0 < 15) {
		err = sluice_region_open(name, NULL, &r);
		assert_true(err == 0 || err == -ENOENT);
		if (!err) {
			assert_int_equal(sluice_region_size(r), 256 * MIB);
			sluice_region_close(r);
		}
	}
	kill(pid, SIGKILL);
	status = h_wait(pid);
	assert_int_equal(status, H_SIGNALED + SIGKILL);
	err = open_in_child(name);
	assert_true(err == 0 || err == ENOENT);
	sluice_region_unlink(name);
}

static void test_concurrent_creates_of_one_name_have_one_winner(void **state)
{
	enum { N = 6 };
	char name[H_NAME_SZ];
	struct create_arg a = {
		.name = h_name(name), .size = SMALL,
		.pages = SLUICE_PAGES_NO_HUGE, .delay_ms = 50,
	};
	int pid[N], i, won = 0, lost = 0, st;

	(void)state;
	for (i = 0; i < N; i++) {
		pid[i] = h_spawn(child_create, &a, CHILD_TIMEOUT);
		assert_true(pid[i] > 0);
	}
	for (i = 0; i < N; i++) {
		st = h_wait(pid[i]);
		if (st == 0)
			won++;
		else if (st == EEXIST)
			lost++;
		else
			fail_msg("creator %d: status %d", i, st);
	}
	assert_int_equal(won, 1);
	assert_int_equal(lost, N - 1);
	assert_int_equal(open_in_child(name), 0);
}

/* ---------------------------------------------------------------- sizes, options */

static void test_create_rejects_sizes_too_small(void **state)
{
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ];

	(void)state;
	h_name(name);
	assert_int_equal(sluice_region_create(name, 0, NULL, &r), -EINVAL);
	assert_int_equal(sluice_region_create(name, HEAP, NULL, &r), -EINVAL);
	assert_int_equal(sluice_region_create_anon(NULL, HEAP, NULL, &r), -EINVAL);
	assert_null(r);
	assert_int_equal(sluice_region_open(name, NULL, &r), -ENOENT);
	/* One byte of heap is enough. */
	r = create_shm(name, HEAP + 1);
	assert_int_equal(sluice_region_size(r), HEAP + 4096);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_create_rejects_sizes_too_large_with_e2big(void **state)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_NO_HUGE);
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ], path[PATH_MAX];

	(void)state;
	h_name(name);
	assert_int_equal(sluice_region_create(name, SIZE_MAX, &opts, &r), -E2BIG);
	assert_int_equal(sluice_region_create(name, SIZE_MAX, NULL, &r), -E2BIG);
	assert_int_equal(sluice_region_create(name, (size_t)1 << 50, &opts, &r), -E2BIG);
	assert_null(r);
	shm_path(path, sizeof(path), name);
	assert_false(file_exists(path));
}

static void test_create_rejects_null_out(void **state)
{
	char name[H_NAME_SZ];

	(void)state;
	assert_int_equal(sluice_region_create(h_name(name), SMALL, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_region_create_anon(NULL, SMALL, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_region_open(name, NULL, NULL), -EINVAL);
}

/* A newer caller's options struct: ours plus a field we do not know. */
struct opts_v2 {
	struct sluice_region_opts v1;
	uint64_t future;
};

static void test_opts_with_unknown_nonzero_tail_are_rejected(void **state)
{
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ];
	struct opts_v2 o;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.v1.sz = sizeof(o);
	o.v1.pages = SLUICE_PAGES_NO_HUGE;
	o.future = 1;
	assert_int_equal(sluice_region_create(h_name(name), SMALL, &o.v1, &r), -EINVAL);
	assert_null(r);
	/* The same struct with the unknown field zero is fine. */
	o.future = 0;
	assert_int_equal(sluice_region_create(name, SMALL, &o.v1, &r), 0);
	assert_int_equal(sluice_region_backing(r), SLUICE_BACKING_SHM);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_opts_with_a_bad_sz_are_rejected(void **state)
{
	struct sluice_region_open_opts oo;
	struct sluice_region_opts o;
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ];
	static const size_t bad[] = { 0, 1, sizeof(size_t) - 1, 1 << 20, SIZE_MAX };
	size_t i;

	(void)state;
	h_name(name);
	for (i = 0; i < SLUICE_ARRAY_SIZE(bad); i++) {
		memset(&o, 0, sizeof(o));
		o.sz = bad[i];
		assert_int_equal(sluice_region_create(name, SMALL, &o, &r), -EINVAL);
		assert_int_equal(sluice_region_create_anon(NULL, SMALL, &o, &r), -EINVAL);
	}
	assert_null(r);

	r = create_shm(name, SMALL);
	memset(&oo, 0, sizeof(oo));
	oo.sz = 1;
	assert_int_equal(sluice_region_open(name, &oo, &r), -EINVAL);
	assert_int_equal(sluice_region_open_fd(sluice_region_fd(r), &oo, &r), -EINVAL);
	assert_int_equal(sluice_region_recv(-1, &oo, &r), -EINVAL);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_opts_from_an_older_caller_default_the_rest(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	char name[H_NAME_SZ];
	struct sluice_region_opts o;

	(void)state;
	/* An old caller knew only sz and flags: what lies after is not its. */
	memset(&o, 0xff, sizeof(o));
	o.sz = sluice__offsetofend(struct sluice_region_opts, flags);
	o.flags = 0;
	set_hugetlbfs_env("none");
	assert_int_equal(sluice_region_create(h_name(name), SMALL, &o, &r), 0);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.pages, SLUICE_PAGES_PREFER_HUGE);
	assert_int_equal(info.mode, 0600);
	assert_int_equal(info.node_requested, -1);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_opts_with_unknown_values_are_rejected(void **state)
{
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ];

	(void)state;
	h_name(name);
	{
		SLUICE_OPTS(sluice_region_opts, o, .flags = 1u << 7);
		assert_int_equal(sluice_region_create(name, SMALL, &o, &r), -EINVAL);
	}
	{
		SLUICE_OPTS(sluice_region_opts, o, .pages = 3);
		assert_int_equal(sluice_region_create(name, SMALL, &o, &r), -EINVAL);
	}
	{
		SLUICE_OPTS(sluice_region_opts, o, .pages = (enum sluice_pages)-1);
		assert_int_equal(sluice_region_create(name, SMALL, &o, &r), -EINVAL);
	}
	{
		SLUICE_OPTS(sluice_region_opts, o, .mode = 01777);
		assert_int_equal(sluice_region_create(name, SMALL, &o, &r), -EINVAL);
	}
	assert_null(r);
	assert_int_equal(sluice_region_open(name, NULL, &r), -ENOENT);
}

static void test_node_without_the_node_flag_is_einval(void **state)
{
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ];
	static const int nodes[] = { 1, -5, 1000 };
	size_t i;

	(void)state;
	h_name(name);
	for (i = 0; i < SLUICE_ARRAY_SIZE(nodes); i++) {
		SLUICE_OPTS(sluice_region_opts, o, .node = nodes[i]);
		assert_int_equal(sluice_region_create(name, SMALL, &o, &r), -EINVAL);
		assert_int_equal(sluice_region_create_anon(NULL, SMALL, &o, &r), -EINVAL);
	}
	assert_null(r);
}

/* ---------------------------------------------------------------- names */

static void expect_bad_name(const char *name, int err)
{
	struct sluice_region *r = NULL;

	assert_int_equal(sluice_region_create(name, SMALL, NULL, &r), err);
	assert_int_equal(sluice_region_open(name, NULL, &r), err);
	assert_int_equal(sluice_region_unlink(name), err);
	if (name)	/* NULL is the default label for anonymous regions */
		assert_int_equal(sluice_region_create_anon(name, SMALL, NULL, &r), err);
	assert_null(r);
}

static void test_empty_name_is_einval(void **state)
{
	(void)state;
	expect_bad_name("", -EINVAL);
}

static void test_null_name_is_einval(void **state)
{
	(void)state;
	expect_bad_name(NULL, -EINVAL);
}

static void test_name_of_64_chars_is_enametoolong(void **state)
{
	char name[65];

	(void)state;
	memset(name, 'a', 64);
	name[64] = '\0';
	expect_bad_name(name, -ENAMETOOLONG);
}

static void test_name_of_63_chars_is_accepted(void **state)
{
	char name[SLUICE_REGION_NAME_MAX + 1];
	struct sluice_region *r, *r2;
	size_t n;

	(void)state;
	n = (size_t)snprintf(name, sizeof(name), "%s", h_prefix());
	memset(name + n, 'z', SLUICE_REGION_NAME_MAX - n);
	name[SLUICE_REGION_NAME_MAX] = '\0';
	r = create_shm(name, SMALL);
	assert_int_equal(sluice_region_open(name, NULL, &r2), 0);
	assert_string_equal(sluice_region_name(r2), name);
	sluice_region_close(r2);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_name_with_a_slash_is_einval(void **state)
{
	(void)state;
	expect_bad_name("a/b", -EINVAL);
	expect_bad_name("../../etc/passwd", -EINVAL);
	expect_bad_name("/abs", -EINVAL);
}

static void test_name_starting_with_a_dot_is_einval(void **state)
{
	(void)state;
	expect_bad_name(".", -EINVAL);
	expect_bad_name("..", -EINVAL);
	expect_bad_name(".hidden", -EINVAL);
}

static void test_name_with_other_characters_is_einval(void **state)
{
	(void)state;
	expect_bad_name("a b", -EINVAL);
	expect_bad_name("tab\there", -EINVAL);
	expect_bad_name("new\nline", -EINVAL);
	expect_bad_name("caf\xc3\xa9", -EINVAL);
	expect_bad_name("star*", -EINVAL);
}

static void test_duplicate_name_is_eexist(void **state)
{
	struct sluice_region *r, *r2 = NULL;
	char name[H_NAME_SZ];
	SLUICE_OPTS(sluice_region_opts, huge, .pages = SLUICE_PAGES_PREFER_HUGE);

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_create(name, SMALL, NULL, &r2), -EEXIST);
	assert_int_equal(sluice_region_create(name, 2 * SMALL, &huge, &r2), -EEXIST);
	assert_null(r2);
	/* The first one is untouched. */
	assert_int_equal(sluice_region_size(r), SMALL);
	assert_int_equal(open_in_child(name), 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_duplicate_of_a_huge_region_is_eexist_on_normal_pages(void **state)
{
	char dir[PATH_MAX], name[H_NAME_SZ];
	SLUICE_OPTS(sluice_region_opts, shm, .pages = SLUICE_PAGES_NO_HUGE);
	struct sluice_region *r, *r2 = NULL;

	(void)state;
	need_hugepages(1, dir);
	r = create_with(h_name(name), hugepage_size(), SLUICE_PAGES_REQUIRE_HUGE);
	assert_int_equal(sluice_region_backing(r), SLUICE_BACKING_HUGETLBFS);
	/* One name is never in both directories. */
	assert_int_equal(sluice_region_create(name, SMALL, &shm, &r2), -EEXIST);
	assert_null(r2);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* ---------------------------------------------------------------- processes */

static int child_reads_and_writes(void *p)
{
	const char *name = p;
	struct sluice_region *r;
	char *at;
	int err;

	err = sluice_region_open(name, NULL, &r);
	if (err)
		return -err;
	at = sluice_region_at(r, HEAP, 64);
	if (!at || strcmp(at, "from parent")) {
		sluice_region_close(r);
		return 100;
	}
	at = sluice_region_at(r, sluice_region_size(r) - 64, 64);
	if (!at) {
		sluice_region_close(r);
		return 101;
	}
	strcpy(at, "from child");
	sluice_region_close(r);
	return 0;
}

static void check_across_processes(enum sluice_pages pages, size_t size)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];

	r = create_with(h_name(name), size, pages);
	strcpy(sluice_region_at(r, HEAP, 64), "from parent");
	assert_int_equal(h_fork(child_reads_and_writes, name, CHILD_TIMEOUT), 0);
	assert_string_equal(sluice_region_at(r, sluice_region_size(r) - 64, 64),
			    "from child");
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_child_opens_by_name_and_writes_are_seen_both_ways(void **state)
{
	(void)state;
	check_across_processes(SLUICE_PAGES_NO_HUGE, SMALL);
}

static void test_child_opens_a_huge_region_and_writes_are_seen_both_ways(void **state)
{
	char dir[PATH_MAX];

	(void)state;
	need_hugepages(2, dir);
	check_across_processes(SLUICE_PAGES_REQUIRE_HUGE, 2 * hugepage_size());
}

struct pingpong {
	_Alignas(64) _Atomic uint64_t ping;
	_Alignas(64) _Atomic uint64_t pong;
};

#define PINGPONG_ROUNDS	20000

static bool wait_for(_Atomic uint64_t *p, uint64_t want, int64_t deadline)
{
	unsigned int spins = 0;

	/* Acquire: pairs with the peer's release store of @want. */
	while (atomic_load_explicit(p, memory_order_acquire) != want) {
		if (++spins % 1024 == 0) {
			if (h_now_ms() > deadline)
				return false;
			sched_yield();
		}
	}
	return true;
}

static int child_pong(void *p)
{
	struct sluice_obj_info obj;
	struct sluice_region *r;
	struct pingpong *pp;
	int64_t deadline = h_now_ms() + 10000;
	uint64_t i;
	int err;

	err = sluice_region_open(p, NULL, &r);
	if (err)
		return -err;
	err = sluice_region_find(r, "pingpong", &obj);
	pp = err ? NULL : sluice_region_at(r, obj.offset, sizeof(*pp));
	if (!pp) {
		sluice_region_close(r);
		return 100;
	}
	for (i = 1; i <= PINGPONG_ROUNDS; i++) {
		if (!wait_for(&pp->ping, i, deadline)) {
			sluice_region_close(r);
			return 101;
		}
		/* Release: the parent's acquire in wait_for() pairs with it. */
		atomic_store_explicit(&pp->pong, i, memory_order_release);
	}
	sluice_region_close(r);
	return 0;
}

static void test_live_processes_see_each_others_stores(void **state)
{
	int64_t deadline = h_now_ms() + 10000;
	struct sluice_region *r;
	struct pingpong *pp;
	char name[H_NAME_SZ];
	uint64_t i, off;
	int pid;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_alloc(r, "pingpong", SLUICE_OBJ_RAW,
					     sizeof(*pp), 64, &off), 0);
	pp = sluice_region_at(r, off, sizeof(*pp));
	assert_non_null(pp);
	pid = h_spawn(child_pong, name, CHILD_TIMEOUT);
	assert_true(pid > 0);
	for (i = 1; i <= PINGPONG_ROUNDS; i++) {
		/* Release: the child's acquire in wait_for() pairs with it. */
		atomic_store_explicit(&pp->ping, i, memory_order_release);
		if (!wait_for(&pp->pong, i, deadline))
			break;
	}
	assert_int_equal(h_wait(pid), 0);
	assert_int_equal(atomic_load(&pp->pong), PINGPONG_ROUNDS);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* ---------------------------------------------------------------- huge pages */

static void test_require_huge_is_backed_by_huge_pages_per_the_kernel(void **state)
{
	char dir[PATH_MAX], name[H_NAME_SZ], path[PATH_MAX];
	size_t hps = hugepage_size();
	long long free0 = 0, free1 = 0;
	struct sluice_region *r = NULL;
	struct h_smaps s;
	struct statfs sfs;
	struct stat st;
	int try;

	(void)state;
	need_hugepages(2, dir);
	/*
	 * HugePages_Free is machine-wide: another process may take or give
	 * pages meanwhile, so retry until one measurement is undisturbed.
	 */
	for (try = 0; try < 10; try++) {
		free0 = h_meminfo("HugePages_Free");
		r = create_with(h_name(name), 2 * hps, SLUICE_PAGES_REQUIRE_HUGE);
		free1 = h_meminfo("HugePages_Free");
		if (free0 - free1 == 2)
			break;
		assert_int_equal(sluice_region_destroy(r), 0);
		r = NULL;
		h_sleep_ms(50);
	}
	assert_non_null(r);
	assert_int_equal(free0 - free1, 2);

	assert_int_equal(sluice_region_backing(r), SLUICE_BACKING_HUGETLBFS);
	assert_int_equal(sluice_region_page_size(r), hps);
	assert_int_equal(sluice_region_size(r), 2 * hps);

	assert_int_equal(h_smaps(sluice_region_base(r), &s), 0);
	assert_int_equal(s.kernel_page_kb, hps / KIB);
	assert_int_equal(s.size_kb, 2 * hps / KIB);
	assert_int_equal(s.shared_hugetlb_kb + s.private_hugetlb_kb, 2 * hps / KIB);

	/* Its file is on a hugetlbfs, under the name it was given. */
	file_path(path, sizeof(path), dir, name);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, (off_t)(2 * hps));
	assert_int_equal(statfs(path, &sfs), 0);
	assert_int_equal(sfs.f_type, HUGETLBFS_MAGIC);

	assert_int_equal(sluice_region_destroy(r), 0);
	assert_false(file_exists(path));
}

static int child_checks_huge_mapping(void *p)
{
	size_t hps = hugepage_size();
	struct sluice_region *r;
	struct h_smaps s;
	int err;

	err = sluice_region_open(p, NULL, &r);
	if (err)
		return -err;
	err = h_smaps(sluice_region_base(r), &s);
	if (err)
		err = 100;
	else if (s.kernel_page_kb != (long long)(hps / KIB))
		err = 101;
	else if (s.shared_hugetlb_kb + s.private_hugetlb_kb !=
		 (long long)(sluice_region_size(r) / KIB))
		err = 102;	/* opened, but not every page mapped */
	else if (sluice_region_page_size(r) != hps)
		err = 103;
	sluice_region_close(r);
	return err;
}

static void test_opener_of_a_huge_region_maps_huge_pages_too(void **state)
{
	char dir[PATH_MAX], name[H_NAME_SZ];
	struct sluice_region *r;

	(void)state;
	need_hugepages(2, dir);
	r = create_with(h_name(name), 2 * hugepage_size(), SLUICE_PAGES_REQUIRE_HUGE);
	assert_int_equal(h_fork(child_checks_huge_mapping, name, CHILD_TIMEOUT), 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_prefer_huge_uses_huge_pages_when_it_can(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	char dir[PATH_MAX], name[H_NAME_SZ];
	struct sluice_region *r;
	struct h_smaps s;

	(void)state;
	need_hugepages(1, dir);
	/* 3 MB asked, 2 huge pages given. */
	r = create_with(h_name(name), 3 * MIB, SLUICE_PAGES_PREFER_HUGE);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.backing, SLUICE_BACKING_HUGETLBFS);
	assert_int_equal(info.size, 2 * hugepage_size());
	assert_int_equal(info.huge_fallback_err, 0);
	assert_int_equal(h_smaps(sluice_region_base(r), &s), 0);
	assert_int_equal(s.kernel_page_kb, hugepage_size() / KIB);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_require_huge_without_hugetlbfs_is_enoent(void **state)
{
	char name[H_NAME_SZ], path[PATH_MAX];
	struct sluice_region *r = NULL;
	SLUICE_OPTS(sluice_region_opts, o, .pages = SLUICE_PAGES_REQUIRE_HUGE);

	(void)state;
	set_hugetlbfs_env("none");
	assert_int_equal(sluice_region_create(h_name(name), SMALL, &o, &r), -ENOENT);
	assert_null(r);
	shm_path(path, sizeof(path), name);
	assert_false(file_exists(path));
}

static void test_prefer_huge_without_hugetlbfs_falls_back_and_says_why(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	char name[H_NAME_SZ];
	struct h_smaps s;

	(void)state;
	set_hugetlbfs_env("none");
	r = create_with(h_name(name), 4 * MIB, SLUICE_PAGES_PREFER_HUGE);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.backing, SLUICE_BACKING_SHM);
	assert_int_equal(info.pages, SLUICE_PAGES_PREFER_HUGE);
	assert_int_equal(info.huge_fallback_err, -ENOENT);
	/* The page size it reports is the one the kernel maps it with. */
	assert_int_equal(h_smaps(sluice_region_base(r), &s), 0);
	if (s.shmem_pmd_kb * KIB >= info.size)
		assert_int_equal(info.page_size, 2 * MIB);
	else
		assert_int_equal(info.page_size, s.kernel_page_kb * KIB);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_no_huge_gets_shm_with_4k_pages(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	char dir[PATH_MAX], name[H_NAME_SZ], path[PATH_MAX];
	struct sluice_region *r;
	struct h_smaps s;

	(void)state;
	/* Even where huge pages are there for the taking. */
	if (h_hugepages_ensure(1, dir, sizeof(dir)))
		print_message("(no huge pages to refuse: %s)\n", h_why());
	r = create_with(h_name(name), 4 * MIB, SLUICE_PAGES_NO_HUGE);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.backing, SLUICE_BACKING_SHM);
	assert_int_equal(info.page_size, 4096);
	assert_int_equal(info.huge_fallback_err, 0);
	assert_int_equal(h_smaps(sluice_region_base(r), &s), 0);
	assert_int_equal(s.kernel_page_kb, 4);
	assert_int_equal(s.shmem_pmd_kb, 0);
	assert_int_equal(s.shared_hugetlb_kb + s.private_hugetlb_kb, 0);
	shm_path(path, sizeof(path), name);
	assert_true(file_exists(path));
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* A size no pool can give: more pages than the pool has in all. */
static size_t undrainable_size(void)
{
	FILE *f = fopen("/proc/sys/vm/nr_overcommit_hugepages", "re");
	unsigned long over = 0;
	long long total;

	if (f) {
		if (fscanf(f, "%lu", &over) != 1)
			over = 0;
		fclose(f);
	}
	if (over)
		h_skip("nr_overcommit_hugepages=%lu: the pool cannot be drained", over);
	total = h_meminfo("HugePages_Total");
	if (total > 1024)
		h_skip("a pool of %lld huge pages is too big to outgrow here", total);
	return (size_t)(total + 1) * hugepage_size();
}

static int child_create_reports(void *p)
{
	const struct create_arg *a = p;
	SLUICE_OPTS(sluice_region_opts, opts, .pages = a->pages);
	struct sluice_region *r;
	int err;

	if (a->name)
		err = sluice_region_create(a->name, a->size, &opts, &r);
	else
		err = sluice_region_create_anon(NULL, a->size, &opts, &r);
	if (err)
		return -err;
	sluice_region_close(r);
	return 0;
}

static void test_require_huge_with_a_drained_pool_is_enomem_not_sigbus(void **state)
{
	char dir[PATH_MAX], name[H_NAME_SZ], path[PATH_MAX];
	struct create_arg a = { .pages = SLUICE_PAGES_REQUIRE_HUGE };
	struct sluice_region *r;

	(void)state;
	need_hugepages(1, dir);
	a.size = undrainable_size();
	a.name = h_name(name);
	assert_int_equal(h_fork(child_create_reports, &a, CHILD_TIMEOUT), ENOMEM);
	/* Nothing left behind, in either directory. */
	file_path(path, sizeof(path), dir, name);
	assert_false(file_exists(path));
	shm_path(path, sizeof(path), name);
	assert_false(file_exists(path));
	assert_int_equal(sluice_region_open(name, NULL, &r), -ENOENT);

	/* The same for an anonymous region. */
	a.name = NULL;
	assert_int_equal(h_fork(child_create_reports, &a, CHILD_TIMEOUT), ENOMEM);
}

static void test_prefer_huge_with_a_drained_pool_falls_back_and_says_why(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	char dir[PATH_MAX], name[H_NAME_SZ];
	struct sluice_region *r;

	(void)state;
	need_hugepages(1, dir);
	r = create_with(h_name(name), undrainable_size(), SLUICE_PAGES_PREFER_HUGE);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.backing, SLUICE_BACKING_SHM);
	assert_int_equal(info.huge_fallback_err, -ENOMEM);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* ---------------------------------------------------------------- NUMA */

/* Ask the kernel where a spread of pages (first, last, between) live. */
static void assert_pages_on_node(void *base, size_t size, size_t page, int node)
{
	enum { N = 16 };
	void *pages[N];
	int status[N], i;

	for (i = 0; i < N - 1; i++)
		pages[i] = (char *)base + (size / page * (size_t)i / (N - 1)) * page;
	pages[N - 1] = (char *)base + size - page;
	memset(status, 0x7f, sizeof(status));
	assert_int_equal(move_pages(0, N, pages, NULL, status, 0), 0);
	for (i = 0; i < N; i++)
		assert_int_equal(status[i], node);
}

static void check_node_zero(enum sluice_pages pages, size_t size)
{
	SLUICE_OPTS(sluice_region_opts, o, .flags = SLUICE_REGION_NODE,
		    .node = 0, .pages = pages);
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r, *r2;
	char name[H_NAME_SZ];

	if (numa_available() < 0)
		h_skip("the kernel has no NUMA support: move_pages cannot tell");
	assert_int_equal(sluice_region_create(h_name(name), size, &o, &r), 0);
	assert_int_equal(sluice_region_node(r), 0);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.node_requested, 0);
	assert_int_equal(info.node, 0);
	assert_pages_on_node(sluice_region_base(r), sluice_region_size(r),
			     sluice_region_page_size(r), 0);
	/* An opener reads the same report from the header. */
	assert_int_equal(sluice_region_open(name, NULL, &r2), 0);
	assert_int_equal(sluice_region_node(r2), 0);
	assert_int_equal(sluice_region_info(r2, &info), 0);
	assert_int_equal(info.node_requested, 0);
	assert_pages_on_node(sluice_region_base(r2), sluice_region_size(r2),
			     sluice_region_page_size(r2), 0);
	sluice_region_close(r2);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_node_zero_places_every_page_on_node_zero(void **state)
{
	(void)state;
	check_node_zero(SLUICE_PAGES_NO_HUGE, 4 * MIB);
}

static void test_node_zero_places_huge_pages_on_node_zero(void **state)
{
	char dir[PATH_MAX];

	(void)state;
	need_hugepages(2, dir);
	check_node_zero(SLUICE_PAGES_REQUIRE_HUGE, 2 * hugepage_size());
}

static void test_node_that_does_not_exist_is_enodev(void **state)
{
	struct sluice_region *r = NULL;
	char name[H_NAME_SZ], path[PATH_MAX];
	int nodes[] = { numa_max_node() + 1, 1000, -5, -1, INT_MAX, INT_MIN };
	size_t i;

	(void)state;
	h_name(name);
	for (i = 0; i < SLUICE_ARRAY_SIZE(nodes); i++) {
		SLUICE_OPTS(sluice_region_opts, o, .flags = SLUICE_REGION_NODE,
			    .node = nodes[i]);
		assert_int_equal(sluice_region_create(name, SMALL, &o, &r), -ENODEV);
		assert_int_equal(sluice_region_create_anon(NULL, SMALL, &o, &r),
				 -ENODEV);
	}
	assert_null(r);
	shm_path(path, sizeof(path), name);
	assert_false(file_exists(path));
}

/* ---------------------------------------------------------------- anonymous */

static int child_recv_and_reply(void *p)
{
	int sock = *(int *)p;
	struct sluice_region *r;
	char *at;
	int err;

	err = sluice_region_recv(sock, NULL, &r);
	if (err)
		return -err;
	if (strcmp(sluice_region_name(r), "anon-test") ||
	    (sluice_region_backing(r) != SLUICE_BACKING_MEMFD &&
	     sluice_region_backing(r) != SLUICE_BACKING_MEMFD_HUGETLB))
		err = 100;
	at = sluice_region_at(r, HEAP, 64);
	if (!err && (!at || strcmp(at, "to child")))
		err = 101;
	at = sluice_region_at(r, sluice_region_size(r) - 64, 64);
	if (!err && at)
		strcpy(at, "to parent");
	sluice_region_close(r);
	return err;
}

static void check_anon_passing(enum sluice_pages pages, size_t size,
			       enum sluice_backing want)
{
	SLUICE_OPTS(sluice_region_opts, o, .pages = pages);
	struct sluice_region *r;
	int sv[2], pid;

	assert_int_equal(sluice_region_create_anon("anon-test", size, &o, &r), 0);
	assert_int_equal(sluice_region_backing(r), want);
	strcpy(sluice_region_at(r, HEAP, 64), "to child");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = h_spawn(child_recv_and_reply, &sv[1], CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(sluice_region_send(r, sv[0]), 0);
	assert_int_equal(h_wait(pid), 0);
	assert_string_equal(sluice_region_at(r, sluice_region_size(r) - 64, 64),
			    "to parent");
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_anon_region_passes_to_a_child_over_a_unix_socket(void **state)
{
	(void)state;
	check_anon_passing(SLUICE_PAGES_NO_HUGE, SMALL, SLUICE_BACKING_MEMFD);
}

static void test_anon_huge_region_passes_to_a_child_over_a_unix_socket(void **state)
{
	char dir[PATH_MAX];

	(void)state;
	need_hugepages(2, dir);
	check_anon_passing(SLUICE_PAGES_REQUIRE_HUGE, hugepage_size(),
			   SLUICE_BACKING_MEMFD_HUGETLB);
}

static void test_anon_region_prefers_huge_pages_per_the_kernel(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	size_t hps = hugepage_size();
	struct sluice_region *r;
	char dir[PATH_MAX];
	struct h_smaps s;

	(void)state;
	need_hugepages(2, dir);
	assert_int_equal(sluice_region_create_anon(NULL, 2 * hps, NULL, &r), 0);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.backing, SLUICE_BACKING_MEMFD_HUGETLB);
	assert_int_equal(info.page_size, hps);
	assert_int_equal(info.huge_fallback_err, 0);
	assert_int_equal(h_smaps(sluice_region_base(r), &s), 0);
	assert_int_equal(s.kernel_page_kb, hps / KIB);
	assert_int_equal(s.shared_hugetlb_kb + s.private_hugetlb_kb, 2 * hps / KIB);
	sluice_region_close(r);
}

static void test_recv_of_plain_data_is_eproto(void **state)
{
	struct sluice_region *r = NULL;
	int sv[2], fds;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fds = h_count_fds();
	assert_int_equal(write(sv[0], "hello", 5), 5);
	assert_int_equal(sluice_region_recv(sv[1], NULL, &r), -EPROTO);
	assert_null(r);
	assert_int_equal(h_count_fds(), fds);
	close(sv[0]);
	close(sv[1]);
}

/* Send @n descriptors in one message. */
static void send_fds(int sock, const int *fds, int n)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 8)];
	} ctl;
	char byte = 'x';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf,
		.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n),
	};
	struct cmsghdr *c;

	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
	assert_int_equal(sendmsg(sock, &msg, 0), 1);
}

static void test_recv_of_two_fds_is_eproto_and_leaks_neither(void **state)
{
	struct sluice_region *a, *b, *r = NULL;
	int sv[2], fds[2], before;

	(void)state;
	a = create_anon_shm(SMALL);
	b = create_anon_shm(SMALL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fds[0] = sluice_region_fd(a);
	fds[1] = sluice_region_fd(b);
	send_fds(sv[0], fds, 2);
	before = h_count_fds();
	assert_int_equal(sluice_region_recv(sv[1], NULL, &r), -EPROTO);
	assert_null(r);
	assert_int_equal(h_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
	sluice_region_close(a);
	sluice_region_close(b);
}

static void test_recv_from_a_closed_peer_is_econnreset(void **state)
{
	struct sluice_region *r = NULL;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[0]);
	assert_int_equal(sluice_region_recv(sv[1], NULL, &r), -ECONNRESET);
	assert_null(r);
	close(sv[1]);
}

static void test_recv_of_something_not_a_region_is_rejected(void **state)
{
	struct sluice_region *r = NULL;
	int sv[2], fd, p[2], before;
	char *junk;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	before = h_count_fds();

	/* Not a regular file. */
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	send_fds(sv[0], &fd, 1);
	close(fd);
	assert_int_equal(sluice_region_recv(sv[1], NULL, &r), -EBADMSG);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	send_fds(sv[0], &p[0], 1);
	close(p[0]);
	close(p[1]);
	assert_int_equal(sluice_region_recv(sv[1], NULL, &r), -EBADMSG);

	/* A sealed memfd full of junk, ready flag included. */
	fd = memfd_create("junk", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	junk = malloc(SMALL);
	assert_non_null(junk);
	memset(junk, 0x6b, SMALL);
	assert_int_equal(pwrite(fd, junk, SMALL, 0), SMALL);
	assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	send_fds(sv[0], &fd, 1);
	assert_int_equal(sluice_region_recv(sv[1], NULL, &r), -EBADMSG);
	/* All zeroes: the ready flag is not set, which only -EAGAIN says. */
	memset(junk, 0, SMALL);
	assert_int_equal(pwrite(fd, junk, SMALL, 0), SMALL);
	free(junk);
	send_fds(sv[0], &fd, 1);
	close(fd);
	assert_int_equal(sluice_region_recv(sv[1], NULL, &r), -EAGAIN);

	assert_null(r);
	assert_int_equal(h_count_fds(), before);
	close(sv[0]);
	close(sv[1]);
}

static void test_send_to_a_closed_peer_is_epipe_not_sigpipe(void **state)
{
	struct sluice_region *r;
	int sv[2];

	(void)state;
	r = create_anon_shm(SMALL);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	/* No SIGPIPE: it would kill this test program. */
	assert_int_equal(sluice_region_send(r, sv[0]), -EPIPE);
	close(sv[0]);
	sluice_region_close(r);
}

static void test_send_of_null_region_is_einval(void **state)
{
	(void)state;
	assert_int_equal(sluice_region_send(NULL, 0), -EINVAL);
}

static void test_open_fd_of_a_closed_fd_is_ebadf(void **state)
{
	struct sluice_region *r = NULL;
	int fd;

	(void)state;
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(sluice_region_open_fd(fd, NULL, &r), -EBADF);
	assert_int_equal(sluice_region_open_fd(-1, NULL, &r), -EBADF);
	assert_null(r);
}

static void test_open_fd_rejects_an_unsealed_memfd(void **state)
{
	struct sluice_region *a, *r = NULL;
	ssize_t n;
	int fd;

	(void)state;
	/* A perfect copy of a valid anonymous region, minus the seals. */
	a = create_anon_shm(SMALL);
	fd = memfd_create("copy", MFD_CLOEXEC);
	assert_true(fd >= 0);
	n = pwrite(fd, sluice_region_base(a), sluice_region_size(a), 0);
	assert_int_equal(n, (ssize_t)sluice_region_size(a));
	assert_int_equal(sluice_region_open_fd(fd, NULL, &r), -EBADMSG);
	assert_null(r);
	/* The caller keeps its descriptor. */
	assert_int_equal(fcntl(fd, F_GETFD), FD_CLOEXEC);
	/* Claiming a named backing in the header does not excuse it. */
	POKE_HDR(fd, backing, SLUICE_BACKING_SHM);
	fix_csum(fd);
	assert_int_equal(sluice_region_open_fd(fd, NULL, &r), -EBADMSG);
	assert_null(r);
	close(fd);
	/* The original, sealed, opens. */
	assert_int_equal(sluice_region_open_fd(sluice_region_fd(a), NULL, &r), 0);
	assert_int_equal(sluice_region_size(r), SMALL);
	sluice_region_close(r);
	sluice_region_close(a);
}

static void test_anon_region_has_no_name_anywhere(void **state)
{
	struct sluice_region *r;
	char label[H_NAME_SZ];
	struct find_ctx c = { .want = label };

	(void)state;
	assert_int_equal(sluice_region_create_anon(h_name(label), SMALL, NULL, &r), 0);
	assert_string_equal(sluice_region_name(r), label);
	assert_int_equal(sluice_region_foreach(note_region, &c), 0);
	assert_int_equal(c.seen, 0);
	assert_int_equal(sluice_region_unlink(label), -ENOENT);
	assert_int_equal(open_in_child(label), ENOENT);
	/* Destroying it is closing it. */
	assert_int_equal(sluice_region_destroy(r), 0);

	/* With no label, the label is "anon". */
	assert_int_equal(sluice_region_create_anon(NULL, SMALL, NULL, &r), 0);
	assert_string_equal(sluice_region_name(r), "anon");
	sluice_region_close(r);
}

/* ---------------------------------------------------------------- mid-creation */

static void test_open_of_an_unready_region_is_eagain_at_once(void **state)
{
	SLUICE_OPTS(sluice_region_open_opts, nowait, .wait_ms = -1);
	struct sluice_region *r, *r2 = NULL;
	char name[H_NAME_SZ];
	int64_t t0;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	POKE_HDR(sluice_region_fd(r), ready, 0);
	t0 = h_now_ms();
	assert_int_equal(sluice_region_open(name, &nowait, &r2), -EAGAIN);
	assert_int_equal(sluice_region_open(name, NULL, &r2), -EAGAIN);
	assert_true(h_now_ms() - t0 < 100);
	assert_null(r2);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_open_waits_for_the_ready_flag_then_gives_up(void **state)
{
	SLUICE_OPTS(sluice_region_open_opts, wait, .wait_ms = 150);
	struct sluice_region *r, *r2 = NULL;
	char name[H_NAME_SZ];
	int64_t t0, dt;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	POKE_HDR(sluice_region_fd(r), ready, 0);
	t0 = h_now_ms();
	assert_int_equal(sluice_region_open(name, &wait, &r2), -EAGAIN);
	dt = h_now_ms() - t0;
	assert_in_range(dt, 140, 2000);
	assert_null(r2);
	assert_int_equal(sluice_region_destroy(r), 0);
}

struct ready_arg {
	int fd;
	unsigned int delay_ms;
};

static int child_sets_ready_later(void *p)
{
	const struct ready_arg *a = p;
	uint32_t v = SLUICE_REGION_READY;

	h_sleep_ms(a->delay_ms);
	return pwrite(a->fd, &v, sizeof(v), HDR_OFF(ready)) == sizeof(v) ? 0 : 1;
}

static void test_open_accepts_a_region_that_becomes_ready_while_it_waits(void **state)
{
	SLUICE_OPTS(sluice_region_open_opts, wait, .wait_ms = 10000);
	struct ready_arg a = { .delay_ms = 150 };
	struct sluice_region *r, *r2 = NULL;
	char name[H_NAME_SZ];
	int64_t t0;
	int pid;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	a.fd = sluice_region_fd(r);
	POKE_HDR(a.fd, ready, 0);
	t0 = h_now_ms();
	pid = h_spawn(child_sets_ready_later, &a, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(sluice_region_open(name, &wait, &r2), 0);
	assert_true(h_now_ms() - t0 >= 100);
	assert_int_equal(h_wait(pid), 0);
	assert_string_equal(sluice_region_name(r2), name);
	sluice_region_close(r2);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_open_rejects_a_garbage_ready_flag(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];

	(void)state;
	r = create_shm(h_name(name), SMALL);
	POKE_HDR(sluice_region_fd(r), ready, 0xdeadbeef);
	assert_int_equal(open_in_child(name), EBADMSG);
	POKE_HDR(sluice_region_fd(r), ready, SLUICE_REGION_READY ^ 1);
	assert_int_equal(open_in_child(name), EBADMSG);
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* ---------------------------------------------------------------- objects */

static void test_alloc_gives_zeroed_space_found_by_name(void **state)
{
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	unsigned char *p;
	uint64_t off;
	size_t i;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	/* A neighbour's bytes do not bleed into a new object. */
	assert_int_equal(sluice_region_alloc(r, "first", SLUICE_OBJ_RAW, 999, 1,
					     &off), 0);
	memset(sluice_region_at(r, off, 999), 0xa5, 999);
	assert_int_equal(sluice_region_alloc(r, "buf", SLUICE_OBJ_USER + 7, 1000, 0,
					     &off), 0);
	p = sluice_region_at(r, off, 1000);
	assert_non_null(p);
	for (i = 0; i < 1000; i++)
		assert_int_equal(p[i], 0);

	memset(&oi, 0xff, sizeof(oi));
	assert_int_equal(sluice_region_find(r, "buf", &oi), 0);
	assert_string_equal(oi.name, "buf");
	assert_int_equal(oi.type, SLUICE_OBJ_USER + 7);
	assert_int_equal(oi.offset, off);
	assert_int_equal(oi.size, 1000);
	assert_true(off >= HEAP);
	assert_true(off + 1000 <= SMALL);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_alloc_honours_alignment(void **state)
{
	static const uint64_t aligns[] = { 1, 2, 8, 64, 256, 4096, 65536, 8, 1 };
	struct sluice_region *r;
	char name[H_NAME_SZ], obj[16];
	uint64_t off, prev_end = 0;
	size_t i;

	(void)state;
	r = create_shm(h_name(name), 1 * MIB);
	for (i = 0; i < SLUICE_ARRAY_SIZE(aligns); i++) {
		snprintf(obj, sizeof(obj), "o%zu", i);
		/* Odd sizes so that the next offset is never aligned by luck. */
		assert_int_equal(sluice_region_alloc(r, obj, SLUICE_OBJ_RAW, 3,
						     aligns[i], &off), 0);
		assert_int_equal(off % aligns[i], 0);
		assert_true(off >= prev_end);
		prev_end = off + 3;
	}
	/* 0 means 64. */
	assert_int_equal(sluice_region_alloc(r, "dflt", SLUICE_OBJ_RAW, 3, 0, &off), 0);
	assert_int_equal(off % 64, 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_alloc_rejects_bad_arguments(void **state)
{
	char name[H_NAME_SZ], obj[SLUICE_OBJ_NAME_MAX + 2];
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	uint64_t off = 12345;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_alloc(r, "a", 0, 64, 0, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, "a", SLUICE_OBJ_RAW, 0, 0, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, "a", SLUICE_OBJ_RAW, 64, 3, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, "a", SLUICE_OBJ_RAW, 64, 96, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, "a", SLUICE_OBJ_RAW, 64, 1ull << 63, &off),
			 -EINVAL);
	assert_int_equal(sluice_region_alloc(r, "a", SLUICE_OBJ_RAW, 64, 0, NULL), -EINVAL);
	assert_int_equal(sluice_region_alloc(NULL, "a", SLUICE_OBJ_RAW, 64, 0, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, NULL, SLUICE_OBJ_RAW, 64, 0, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, "", SLUICE_OBJ_RAW, 64, 0, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, "a/b", SLUICE_OBJ_RAW, 64, 0, &off), -EINVAL);
	assert_int_equal(sluice_region_alloc(r, ".a", SLUICE_OBJ_RAW, 64, 0, &off), -EINVAL);
	memset(obj, 'n', SLUICE_OBJ_NAME_MAX + 1);
	obj[SLUICE_OBJ_NAME_MAX + 1] = '\0';
	assert_int_equal(sluice_region_alloc(r, obj, SLUICE_OBJ_RAW, 64, 0, &off),
			 -ENAMETOOLONG);
	assert_int_equal(off, 12345);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.nr_objs, 0);
	assert_int_equal(info.heap_used, 0);
	/* The longest name is fine. */
	obj[SLUICE_OBJ_NAME_MAX] = '\0';
	assert_int_equal(sluice_region_alloc(r, obj, SLUICE_OBJ_RAW, 64, 0, &off), 0);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_alloc_of_a_taken_name_is_eexist(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	uint64_t off, off2 = 0;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_alloc(r, "dup", SLUICE_OBJ_RAW, 64, 0, &off), 0);
	assert_int_equal(sluice_region_alloc(r, "dup", SLUICE_OBJ_CHAN, 128, 0, &off2),
			 -EEXIST);
	assert_int_equal(off2, 0);
	assert_int_equal(sluice_region_find(r, "dup", &oi), 0);
	assert_int_equal(oi.type, SLUICE_OBJ_RAW);
	assert_int_equal(oi.size, 64);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.nr_objs, 1);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_alloc_is_enospc_when_the_directory_is_full(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ], obj[16];
	uint64_t off;
	int i;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	for (i = 0; i < SLUICE_REGION_OBJS_MAX; i++) {
		snprintf(obj, sizeof(obj), "obj%d", i);
		assert_int_equal(sluice_region_alloc(r, obj, SLUICE_OBJ_RAW, 8, 8, &off), 0);
	}
	assert_int_equal(sluice_region_alloc(r, "one-more", SLUICE_OBJ_RAW, 8, 8, &off),
			 -ENOSPC);
	/* A taken name is still reported as such. */
	assert_int_equal(sluice_region_alloc(r, "obj3", SLUICE_OBJ_RAW, 8, 8, &off),
			 -EEXIST);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_alloc_is_enospc_when_out_of_space(void **state)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r;
	char name[H_NAME_SZ];
	uint64_t off;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_alloc(r, "big", SLUICE_OBJ_RAW,
					     SMALL - HEAP + 1, 0, &off), -ENOSPC);
	assert_int_equal(sluice_region_alloc(r, "huge", SLUICE_OBJ_RAW,
					     UINT64_MAX, 0, &off), -ENOSPC);
	assert_int_equal(sluice_region_alloc(r, "half", SLUICE_OBJ_RAW,
					     (SMALL - HEAP) / 2, 0, &off), 0);
	/* The rest, to the last byte. */
	assert_int_equal(sluice_region_alloc(r, "rest", SLUICE_OBJ_RAW,
					     (SMALL - HEAP) / 2, 0, &off), 0);
	assert_int_equal(off + (SMALL - HEAP) / 2, SMALL);
	assert_int_equal(sluice_region_alloc(r, "byte", SLUICE_OBJ_RAW, 1, 1, &off),
			 -ENOSPC);
	assert_int_equal(sluice_region_info(r, &info), 0);
	assert_int_equal(info.heap_used, info.heap_size);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_find_and_obj_walk_the_directory(void **state)
{
	static const char *const names[] = { "ring", "chan", "raw" };
	static const uint32_t types[] = { SLUICE_OBJ_SPSC, SLUICE_OBJ_CHAN, SLUICE_OBJ_RAW };
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	uint64_t off[3];
	unsigned int i;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	for (i = 0; i < 3; i++)
		assert_int_equal(sluice_region_alloc(r, names[i], types[i],
						     100 * (i + 1), 0, &off[i]), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sluice_region_obj(r, i, &oi), 0);
		assert_string_equal(oi.name, names[i]);
		assert_int_equal(oi.type, types[i]);
		assert_int_equal(oi.offset, off[i]);
		assert_int_equal(oi.size, 100 * (i + 1));
		assert_int_equal(sluice_region_find(r, names[i], &oi), 0);
		assert_int_equal(oi.offset, off[i]);
	}
	assert_int_equal(sluice_region_obj(r, 3, &oi), -ENOENT);
	assert_int_equal(sluice_region_obj(r, UINT32_MAX, &oi), -ENOENT);
	assert_int_equal(sluice_region_find(r, "missing", &oi), -ENOENT);
	assert_int_equal(sluice_region_find(r, "", &oi), -EINVAL);
	assert_int_equal(sluice_region_find(r, "a/b", &oi), -EINVAL);
	assert_int_equal(sluice_region_find(r, "ring", NULL), -EINVAL);
	assert_int_equal(sluice_region_destroy(r), 0);
}

static int child_allocs(void *p)
{
	const char *name = p;
	struct sluice_obj_info oi;
	struct sluice_region *r;
	uint64_t off;
	int err;

	err = sluice_region_open(name, NULL, &r);
	if (err)
		return -err;
	err = sluice_region_alloc(r, "from-child", SLUICE_OBJ_RAW, 4096, 0, &off);
	if (!err)
		memset(sluice_region_at(r, off, 4096), 'c', 4096);
	if (!err && sluice_region_find(r, "from-parent", &oi))
		err = -200;
	sluice_region_close(r);
	return -err;
}

static void test_objects_made_in_one_process_are_found_in_another(void **state)
{
	struct sluice_obj_info oi;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	unsigned char *p;
	uint64_t off;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_alloc(r, "from-parent", SLUICE_OBJ_RAW, 64, 0,
					     &off), 0);
	assert_int_equal(h_fork(child_allocs, name, CHILD_TIMEOUT), 0);
	assert_int_equal(sluice_region_find(r, "from-child", &oi), 0);
	assert_int_equal(oi.size, 4096);
	assert_true(oi.offset >= off + 64);
	p = sluice_region_at(r, oi.offset, oi.size);
	assert_non_null(p);
	assert_int_equal(p[0], 'c');
	assert_int_equal(p[4095], 'c');
	assert_int_equal(sluice_region_destroy(r), 0);
}

#define ALLOCATORS	4
#define ALLOCS_EACH	(SLUICE_REGION_OBJS_MAX / ALLOCATORS)
#define ALLOC_ROUNDS	10

/* A start line, in memory every child inherits, so they all alloc at once. */
struct start_line {
	_Atomic int ready;
	_Atomic int go;
};

struct allocator_arg {
	const char *name;
	struct start_line *start;
	int id;
};

static uint64_t alloc_size(int id, int j)
{
	return 64 + 40 * (uint64_t)j + 8 * (uint64_t)id + 1;
}

static int child_allocates_many(void *p)
{
	const struct allocator_arg *a = p;
	struct sluice_region *r;
	char obj[16];
	uint64_t off, sz;
	void *at;
	int j, err;

	err = sluice_region_open(a->name, NULL, &r);
	if (err)
		return -err;
	atomic_fetch_add(&a->start->ready, 1);
	while (!atomic_load(&a->start->go))
		;
	for (j = 0; j < ALLOCS_EACH && !err; j++) {
		snprintf(obj, sizeof(obj), "p%d-%d", a->id, j);
		sz = alloc_size(a->id, j);
		err = sluice_region_alloc(r, obj, SLUICE_OBJ_RAW, sz, 0, &off);
		at = err ? NULL : sluice_region_at(r, off, sz);
		if (at)
			memset(at, a->id * ALLOCS_EACH + j + 1, sz);
		else if (!err)
			err = -200;
	}
	sluice_region_close(r);
	return -err;
}

static int cmp_by_offset(const void *a, const void *b)
{
	const struct sluice_obj_info *x = a, *y = b;

	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static void alloc_race_once(struct start_line *start)
{
	struct sluice_obj_info objs[SLUICE_REGION_OBJS_MAX];
	struct allocator_arg a[ALLOCATORS];
	int pid[ALLOCATORS], i, id, j;
	struct sluice_region *r;
	char name[H_NAME_SZ];
	unsigned char *p;
	uint64_t k;

	atomic_store(&start->ready, 0);
	atomic_store(&start->go, 0);
	r = create_shm(h_name(name), 256 * KIB);
	for (i = 0; i < ALLOCATORS; i++) {
		a[i].name = name;
		a[i].start = start;
		a[i].id = i;
		pid[i] = h_spawn(child_allocates_many, &a[i], CHILD_TIMEOUT);
		assert_true(pid[i] > 0);
	}
	while (atomic_load(&start->ready) < ALLOCATORS)
		sched_yield();
	atomic_store(&start->go, 1);
	for (i = 0; i < ALLOCATORS; i++)
		assert_int_equal(h_wait(pid[i]), 0);

	for (i = 0; i < SLUICE_REGION_OBJS_MAX; i++)
		assert_int_equal(sluice_region_obj(r, (unsigned int)i, &objs[i]), 0);
	qsort(objs, SLUICE_REGION_OBJS_MAX, sizeof(objs[0]), cmp_by_offset);
	for (i = 0; i < SLUICE_REGION_OBJS_MAX; i++) {
		assert_int_equal(sscanf(objs[i].name, "p%d-%d", &id, &j), 2);
		assert_int_equal(objs[i].size, alloc_size(id, j));
		assert_true(objs[i].offset >= HEAP);
		assert_true(objs[i].offset + objs[i].size <= sluice_region_size(r));
		if (i > 0)
			assert_true(objs[i - 1].offset + objs[i - 1].size <=
				    objs[i].offset);
		/* Every byte still holds what its own allocator wrote. */
		p = sluice_region_at(r, objs[i].offset, objs[i].size);
		for (k = 0; k < objs[i].size; k++)
			assert_int_equal(p[k], id * ALLOCS_EACH + j + 1);
	}
	assert_int_equal(sluice_region_destroy(r), 0);
}

static void test_concurrent_allocs_from_many_processes_do_not_overlap(void **state)
{
	struct start_line *start;
	int round;

	(void)state;
	start = mmap(NULL, sizeof(*start), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(start != MAP_FAILED);
	for (round = 0; round < ALLOC_ROUNDS; round++)
		alloc_race_once(start);
	munmap(start, sizeof(*start));
}

static void test_region_at_checks_bounds(void **state)
{
	struct sluice_region *r;
	char name[H_NAME_SZ];
	char *base;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	base = sluice_region_base(r);
	assert_ptr_equal(sluice_region_at(r, 0, SMALL), base);
	assert_ptr_equal(sluice_region_at(r, SMALL - 1, 1), base + SMALL - 1);
	assert_ptr_equal(sluice_region_at(r, HEAP, 0), base + HEAP);
	assert_null(sluice_region_at(r, 0, SMALL + 1));
	assert_null(sluice_region_at(r, SMALL, 1));
	assert_null(sluice_region_at(r, SMALL + 1, 0));
	assert_null(sluice_region_at(r, 1, UINT64_MAX));
	assert_null(sluice_region_at(r, UINT64_MAX, 2));
	assert_null(sluice_region_at(r, UINT64_MAX - 1, 2));
	assert_null(sluice_region_at(r, 4096, UINT64_MAX - 4095));
	assert_null(sluice_region_at(NULL, 0, 1));
	assert_int_equal(sluice_region_destroy(r), 0);
}

/* ---------------------------------------------------------------- listing */

static int stop_at_region(const char *name, void *p)
{
	struct find_ctx *c = p;

	return strcmp(name, c->want) ? 0 : 42;
}

static void test_foreach_lists_a_created_region(void **state)
{
	char name[H_NAME_SZ], hname[H_NAME_SZ], dir[PATH_MAX];
	struct find_ctx c = { .want = name };
	struct sluice_region *r, *h = NULL;

	(void)state;
	r = create_shm(h_name(name), SMALL);
	assert_int_equal(sluice_region_foreach(note_region, &c), 0);
	assert_int_equal(c.seen, 1);
	/* A non-zero return stops the walk and comes back. */
	assert_int_equal(sluice_region_foreach(stop_at_region, &c), 42);
	assert_int_equal(sluice_region_foreach(NULL, &c), -EINVAL);

	/* Regions on hugetlbfs are listed too. */
	if (!h_hugepages_ensure(1, dir, sizeof(dir))) {
		h = create_with(h_name(hname), hugepage_size(),
				SLUICE_PAGES_REQUIRE_HUGE);
		c.want = hname;
		c.seen = 0;
		assert_int_equal(sluice_region_foreach(note_region, &c), 0);
		assert_int_equal(c.seen, 1);
		assert_int_equal(sluice_region_destroy(h), 0);
	}

	assert_int_equal(sluice_region_destroy(r), 0);
	c.want = name;
	c.seen = 0;
	assert_int_equal(sluice_region_foreach(note_region, &c), 0);
	assert_int_equal(c.seen, 0);
}

static void test_enum_names_are_readable(void **state)
{
	(void)state;
	assert_string_equal(sluice_backing_str(SLUICE_BACKING_HUGETLBFS), "hugetlbfs");
	assert_string_equal(sluice_backing_str(SLUICE_BACKING_SHM), "shm");
	assert_string_equal(sluice_backing_str(SLUICE_BACKING_MEMFD), "memfd");
	assert_string_equal(sluice_backing_str(SLUICE_BACKING_MEMFD_HUGETLB),
			    "memfd-hugetlb");
	assert_string_equal(sluice_backing_str((enum sluice_backing)77), "unknown");
	assert_string_equal(sluice_pages_str(SLUICE_PAGES_PREFER_HUGE), "prefer-huge");
	assert_string_equal(sluice_pages_str(SLUICE_PAGES_REQUIRE_HUGE), "require-huge");
	assert_string_equal(sluice_pages_str(SLUICE_PAGES_NO_HUGE), "no-huge");
	assert_string_equal(sluice_pages_str((enum sluice_pages)77), "unknown");
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, NULL, cleanup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* lifetime */
		T(test_create_then_open_maps_the_same_memory),
		T(test_getters_report_what_the_region_got),
		T(test_info_reports_the_header),
		T(test_info_rejects_an_implausible_size),
		T(test_info_fills_what_the_callers_struct_has_room_for),
		T(test_create_faults_in_every_page),
		T(test_region_file_has_the_requested_mode),
		T(test_close_leaves_the_region_for_others),
		T(test_destroy_removes_the_name),
		T(test_destroy_keeps_other_mappings_alive),
		T(test_destroy_leaves_a_newer_region_of_the_same_name_alone),
		T(test_unlink_removes_the_name_but_not_the_mapping),
		T(test_close_and_destroy_accept_null),
		T(test_open_of_a_missing_region_is_enoent),
		T(test_open_waits_for_a_region_created_later),
		T(test_creator_alive_follows_the_creator_process),
		T(test_a_killed_creator_never_leaves_a_half_made_region),
		T(test_concurrent_creates_of_one_name_have_one_winner),
		/* sizes and options */
		T(test_create_rejects_sizes_too_small),
		T(test_create_rejects_sizes_too_large_with_e2big),
		T(test_create_rejects_null_out),
		T(test_opts_with_unknown_nonzero_tail_are_rejected),
		T(test_opts_with_a_bad_sz_are_rejected),
		T(test_opts_from_an_older_caller_default_the_rest),
		T(test_opts_with_unknown_values_are_rejected),
		T(test_node_without_the_node_flag_is_einval),
		/* names */
		T(test_empty_name_is_einval),
		T(test_null_name_is_einval),
		T(test_name_of_64_chars_is_enametoolong),
		T(test_name_of_63_chars_is_accepted),
		T(test_name_with_a_slash_is_einval),
		T(test_name_starting_with_a_dot_is_einval),
		T(test_name_with_other_characters_is_einval),
		T(test_duplicate_name_is_eexist),
		T(test_duplicate_of_a_huge_region_is_eexist_on_normal_pages),
		/* processes */
		T(test_child_opens_by_name_and_writes_are_seen_both_ways),
		T(test_child_opens_a_huge_region_and_writes_are_seen_both_ways),
		T(test_live_processes_see_each_others_stores),
		/* huge pages */
		T(test_require_huge_is_backed_by_huge_pages_per_the_kernel),
		T(test_opener_of_a_huge_region_maps_huge_pages_too),
		T(test_prefer_huge_uses_huge_pages_when_it_can),
		T(test_require_huge_without_hugetlbfs_is_enoent),
		T(test_prefer_huge_without_hugetlbfs_falls_back_and_says_why),
		T(test_no_huge_gets_shm_with_4k_pages),
		T(test_require_huge_with_a_drained_pool_is_enomem_not_sigbus),
		T(test_prefer_huge_with_a_drained_pool_falls_back_and_says_why),
		/* NUMA */
		T(test_node_zero_places_every_page_on_node_zero),
		T(test_node_zero_places_huge_pages_on_node_zero),
		T(test_node_that_does_not_exist_is_enodev),
		/* anonymous regions */
		T(test_anon_region_passes_to_a_child_over_a_unix_socket),
		T(test_anon_huge_region_passes_to_a_child_over_a_unix_socket),
		T(test_anon_region_prefers_huge_pages_per_the_kernel),
		T(test_anon_region_has_no_name_anywhere),
		T(test_recv_of_plain_data_is_eproto),
		T(test_recv_of_two_fds_is_eproto_and_leaks_neither),
		T(test_recv_from_a_closed_peer_is_econnreset),
		T(test_recv_of_something_not_a_region_is_rejected),
		T(test_send_to_a_closed_peer_is_epipe_not_sigpipe),
		T(test_send_of_null_region_is_einval),
		T(test_open_fd_of_a_closed_fd_is_ebadf),
		T(test_open_fd_rejects_an_unsealed_memfd),
		/* mid-creation */
		T(test_open_of_an_unready_region_is_eagain_at_once),
		T(test_open_waits_for_the_ready_flag_then_gives_up),
		T(test_open_accepts_a_region_that_becomes_ready_while_it_waits),
		T(test_open_rejects_a_garbage_ready_flag),
		/* objects */
		T(test_alloc_gives_zeroed_space_found_by_name),
		T(test_alloc_honours_alignment),
		T(test_alloc_rejects_bad_arguments),
		T(test_alloc_of_a_taken_name_is_eexist),
		T(test_alloc_is_enospc_when_the_directory_is_full),
		T(test_alloc_is_enospc_when_out_of_space),
		T(test_find_and_obj_walk_the_directory),
		T(test_objects_made_in_one_process_are_found_in_another),
		T(test_concurrent_allocs_from_many_processes_do_not_overlap),
		T(test_region_at_checks_bounds),
		/* listing */
		T(test_foreach_lists_a_created_region),
		T(test_enum_names_are_readable),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("region", tests, group_setup,
					   group_teardown);
}
