// SPDX-License-Identifier: MIT
/*
 * SPSC rings as a caller sees them: every promise of include/sluice/spsc.h
 * about a ring and its two sides.  Who may take which side (not one that
 * another live process holds); full, empty and sizes; batches across the
 * ring's end; zero copy (reserve and commit, peek and release); deadlines
 * and cancellation tokens; closing either side, which wakes the other,
 * blocked in another process; the consumer's eventfd; and, case by case,
 * how long a waiting side pauses before it first looks.
 *
 * The other SPSC programs prove the rest, with the same fixture
 * (spsc_fixture.h): test_spsc_corrupt.c, shared memory a buggy or hostile
 * peer wrote; test_spsc_dead.c, a side whose process died;
 * test_spsc_many.c, two processes streaming at full speed.  Under
 * ThreadSanitizer the two sides of a test are threads of one process
 * (h_run_sides()).
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include <sluice/cancel.h>
#include <sluice/spsc.h>

#include "frames.h"
#include "harness.h"
#include "spsc_fixture.h"

/* ---------------------------------------------------------------- roles */

static void test_create_and_attach_take_the_two_sides(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 10);
	get(c, 1, 10);
	shut(p);
	shut(c);
}

static void test_the_creator_may_take_the_consumer_side(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	put(p, 7, 64);
	get(c, 7, 64);
	assert_true(ctl_of(&ring_of(f, "q")->prod) & SLUICE_SPSC_ATTACHED);
	assert_true(ctl_of(&ring_of(f, "q")->cons) & SLUICE_SPSC_ATTACHED);
	shut(p);
	shut(c);
}

static void test_getters_report_the_geometry_on_both_sides(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;

	make_pair(f, 16, 100, NULL, &p, &c);
	assert_int_equal(sluice_spsc_slot_count(p), 16);
	assert_int_equal(sluice_spsc_slot_size(p), 100);
	assert_int_equal(sluice_spsc_slot_count(c), 16);
	assert_int_equal(sluice_spsc_slot_size(c), 100);
	shut(p);
	shut(c);
}

static void test_producer_calls_on_a_consumer_are_einval(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[2] = { { buf, 8 }, { buf, 8 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_send(c, buf, 8), -EINVAL);
	assert_int_equal(sluice_spsc_send(c, buf, 8), -EINVAL);
	assert_int_equal(sluice_spsc_send_batch(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_send_batch(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_reserve(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_reserve(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_commit(c, iov, 0), -EINVAL);
	/* Nothing reached the ring. */
	assert_int_equal(published(ring_of(f, "q")), 0);
	shut(p);
	shut(c);
}

static void test_consumer_calls_on_a_producer_are_einval(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[2] = { { buf, 64 }, { buf, 64 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 5);
	assert_int_equal(sluice_spsc_try_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_recv_batch(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_recv_batch(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_peek(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_peek(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_release(p, 0), -EINVAL);
	assert_int_equal(sluice_spsc_fd(p), -EINVAL);
	/* The packet is still there for the consumer. */
	get(c, 1, 5);
	shut(p);
	shut(c);
}

static void test_a_consumer_call_on_a_producer_holding_a_reservation_is_einval(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[1];

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), 1);
	/* The wrong side, whatever it holds: -EINVAL, not -EBUSY. */
	assert_int_equal(sluice_spsc_try_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_try_peek(p, iov, 1), -EINVAL);
	assert_int_equal(sluice_spsc_commit(p, iov, 0), 0);
	shut(p);
	shut(c);
}

static void test_a_producer_call_on_a_consumer_holding_a_peek_is_einval(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1];

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 5);
	assert_int_equal(sluice_spsc_try_peek(c, iov, 1), 1);
	assert_int_equal(sluice_spsc_try_send(c, buf, 5), -EINVAL);
	assert_int_equal(sluice_spsc_try_reserve(c, iov, 1), -EINVAL);
	assert_int_equal(sluice_spsc_release(c, 1), 1);
	shut(p);
	shut(c);
}

static void test_attaching_a_side_held_by_this_live_process_is_ebusy(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c, *q = NULL;

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q), -EBUSY);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q), -EBUSY);
	assert_null(q);
	/* The holders are undisturbed. */
	put(p, 3, 30);
	get(c, 3, 30);
	shut(p);
	shut(c);
}

struct attach_arg {
	struct sluice_region *r;
	const char *obj;
	enum sluice_spsc_role role;
};

/* In a child: attach; exit with the positive errno, or 0. */
static int child_attach(void *p)
{
	struct attach_arg *a = p;
	struct sluice_spsc *q;
	int err;

	err = sluice_spsc_attach(a->r, a->obj, a->role, NULL, &q);
	if (err)
		return -err;
	shut(q);
	return 0;
}

static void test_attaching_a_side_held_by_another_live_process_is_ebusy(void **state)
{
	struct h_fx *f = *state;
	struct attach_arg a = { f->r, "q", SLUICE_SPSC_PRODUCER };
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(h_fork(child_attach, &a, CHILD_TIMEOUT), EBUSY);
	/* The free side is there for the taking. */
	a.role = SLUICE_SPSC_CONSUMER;
	assert_int_equal(h_fork(child_attach, &a, CHILD_TIMEOUT), 0);
	shut(p);
}

/* A thread that outlives its process's main thread, then ends the process. */
static void *outlive_main(void *arg)
{
	(void)arg;
	usleep(300 * 1000);
	_exit(0);
}

/*
 * A process whose main thread has exited lives on in its other threads:
 * /proc shows its leader as a zombie, yet its side is still held.
 */
static void test_a_side_held_by_a_process_whose_main_thread_ended_is_ebusy(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	pthread_t t;
	int pipefd[2], status;
	char ok;
	pid_t pid;

#if defined(H_TSAN)
	h_skip("forks a process that runs a thread: not under ThreadSanitizer");
#endif
	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		if (sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &p) ||
		    pthread_create(&t, NULL, outlive_main, NULL))
			_exit(1);
		ok = 'y';
		if (write(pipefd[1], &ok, 1) != 1)
			_exit(1);
		pthread_exit(NULL);	/* the main thread goes; the process stays */
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &ok, 1), 1);
	close(pipefd[0]);
	usleep(50 * 1000);	/* the main thread is gone by now */
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &p), -EBUSY);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Now it is gone for good: the side is free. */
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	shut(p);
	shut(c);
}

static void test_attaching_a_closed_side_is_epipe(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c, *q = NULL;

	make_pair(f, 8, 64, NULL, &p, &c);
	shut(p);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q), -EPIPE);
	shut(c);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q), -EPIPE);
	assert_null(q);
}

static void test_attaching_a_missing_ring_is_enoent(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_attach(f->r, "nope", SLUICE_SPSC_CONSUMER, NULL, &q), -ENOENT);
	assert_null(q);
}

static void test_attach_rejects_bad_arguments(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_spsc_opts, flags, .flags = 1);
	struct sluice_spsc_opts tiny = { .sz = 4 };
	struct sluice_spsc *p, *q = NULL;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(sluice_spsc_attach(NULL, "q", SLUICE_SPSC_CONSUMER, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", 0, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", 3, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, &flags, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, &tiny, &q), -EINVAL);
	assert_null(q);
	/* None of that took the side. */
	assert_false(ctl_of(&ring_of(f, "q")->cons) & SLUICE_SPSC_ATTACHED);
	q = join(f, "q", SLUICE_SPSC_CONSUMER, NULL);
	shut(q);
	shut(p);
}

static void test_create_rejects_bad_arguments(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_spsc_opts, flags, .flags = 1);
	struct sluice_spsc_opts tiny = { .sz = 4 };
	struct {
		struct sluice_spsc_opts o;
		uint64_t future;
	} newer = { .o = { .sz = sizeof(newer) }, .future = 1 };
	const enum sluice_spsc_role P = SLUICE_SPSC_PRODUCER;
	struct sluice_obj_info info;
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_create(f->r, "q", 0, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 1, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 3, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 12, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", SLUICE_SPSC_SLOTS_MAX * 2u, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", UINT32_MAX, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 1u << 31, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 0, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, SLUICE_SPSC_SLOT_SIZE_MAX + 1, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, UINT32_MAX, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, 0, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, 3, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, &flags, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, &tiny, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, &newer.o, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(NULL, "q", 8, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "bad/name", 8, 64, P, NULL, &q), -EINVAL);
	assert_null(q);
	/* Nothing was allocated by any of them. */
	assert_int_equal(sluice_region_find(f->r, "q", &info), -ENOENT);
	/* A newer caller's zero tail is fine; the smallest ring is fine. */
	newer.future = 0;
	q = make(f, "q", 2, 1, P, &newer.o);
	shut(q);
}

static void test_create_of_a_taken_name_is_eexist(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *q = NULL;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL, &q), -EEXIST);
	assert_null(q);
	shut(p);
}

static void test_create_of_a_ring_too_big_for_the_region_is_enospc(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *q = NULL;

	/* 2^20 slots of 4 KiB: 4 GiB in an 8 MiB region. */
	assert_int_equal(sluice_spsc_create(f->r, "q", 1u << 20, 4096,
					    SLUICE_SPSC_PRODUCER, NULL, &q), -ENOSPC);
	assert_null(q);
}

static void test_close_of_null_is_a_no_op(void **state)
{
	(void)state;
	sluice_spsc_close(NULL);
}

/* ---------------------------------------------------------------- full, empty, sizes */

static void test_try_send_on_a_full_ring_is_eagain(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 8; i++)
		put(p, i, 64);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EAGAIN);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 1), -EAGAIN);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), -EAGAIN);
	assert_int_equal(published(ring_of(f, "q")), 8);
	/* One slot freed, one packet fits, and no more. */
	get(c, 0, 64);
	put(p, 8, 64);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EAGAIN);
	for (i = 1; i < 9; i++)
		get(c, i, 64);
	shut(p);
	shut(c);
}

static void test_try_recv_on_an_empty_ring_is_eagain(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[1] = { { buf, sizeof(buf) } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 1), -EAGAIN);
	assert_int_equal(sluice_spsc_try_peek(c, iov, 1), -EAGAIN);
	put(p, 1, 2);
	get(c, 1, 2);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	shut(p);
	shut(c);
}

static void test_recv_into_a_small_buffer_is_enobufs_and_keeps_the_packet(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 10000 * MS };
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[1] = { { buf, 19 } };
	int64_t t0;

	make_pair(f, 8, 64, &o, &p, &c);
	put(p, 5, 20);
	assert_int_equal(sluice_spsc_try_recv(c, buf, 19), -ENOBUFS);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, 19), -ENOBUFS);
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 1), -ENOBUFS);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 1), -ENOBUFS);
	assert_true(h_now_ms() - t0 < 5000);	/* did not wait */
	assert_int_equal(load64(&ring_of(f, "q")->head), 0);
	get(c, 5, 20);
	shut(p);
	shut(c);
}

static void test_recv_batch_stops_before_a_packet_longer_than_its_buffer(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[3][64];
	struct iovec iov[3] = { { b[0], 64 }, { b[1], 10 }, { b[2], 64 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 5);
	put(p, 2, 30);
	put(p, 3, 5);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 3), 1);
	assert_int_equal(iov[0].iov_len, 5);
	assert_true(h_intact(b[0], 1, 5));
	get(c, 2, 30);
	get(c, 3, 5);
	shut(p);
	shut(c);
}

static void test_send_rejects_oversize_packets_with_emsgsize(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[65];

	make_pair(f, 8, 64, NULL, &p, &c);
	h_fill(buf, 9, sizeof(buf));
	assert_int_equal(sluice_spsc_try_send(p, buf, 65), -EMSGSIZE);
	assert_int_equal(sluice_spsc_send(p, buf, 65), -EMSGSIZE);
	assert_int_equal(sluice_spsc_send(p, buf, SIZE_MAX), -EMSGSIZE);
	assert_int_equal(published(ring_of(f, "q")), 0);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	/* Exactly the slot size fits. */
	put(p, 9, 64);
	get(c, 9, 64);
	shut(p);
	shut(c);
}

static void test_send_batch_rejects_oversize_atomically(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[4][65];
	struct iovec iov[4];
	unsigned int i, bad;

	make_pair(f, 8, 64, NULL, &p, &c);
	/* Six taken: room for two, so a partial send would show. */
	for (i = 0; i < 6; i++)
		put(p, i, 8);
	for (i = 0; i < 4; i++) {
		h_fill(b[i], 10 + i, 64);
		iov[i] = (struct iovec){ b[i], 64 };
	}
	/* Found while copying (0, 1) or among those that would not fit (2, 3). */
	for (bad = 0; bad < 4; bad++) {
		iov[bad].iov_len = 65;
		assert_int_equal(sluice_spsc_send_batch(p, iov, 4), -EMSGSIZE);
		assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), -EMSGSIZE);
		iov[bad].iov_len = 64;
	}
	/* And on a full ring, where room is what the call looks at first. */
	put(p, 6, 8);
	put(p, 7, 8);
	iov[1].iov_len = 65;
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), -EMSGSIZE);
	assert_int_equal(published(ring_of(f, "q")), 8);
	for (i = 0; i < 8; i++)
		get(c, i, 8);
	assert_int_equal(sluice_spsc_try_recv(c, b[0], 64), -EAGAIN);
	/* The same batch without the oversize packet goes through whole. */
	iov[1].iov_len = 64;
	assert_int_equal(sluice_spsc_send_batch(p, iov, 4), 4);
	for (i = 0; i < 4; i++)
		get(c, 10 + i, 64);
	shut(p);
	shut(c);
}

static void test_zero_length_packets_are_delivered(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 1 };
	struct iovec iov[3] = { { buf, 0 }, { buf, 3 }, { buf, 0 } };
	struct iovec in[3] = { { buf, 8 }, { buf, 8 }, { buf, 8 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_send(p, buf, 0), 0);
	assert_int_equal(sluice_spsc_try_recv(c, buf, 0), 0);
	assert_int_equal(sluice_spsc_try_send(p, buf, 0), 0);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), 0);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 3), 3);
	assert_int_equal(sluice_spsc_recv_batch(c, in, 3), 3);
	assert_int_equal(in[0].iov_len, 0);
	assert_int_equal(in[1].iov_len, 3);
	assert_int_equal(in[2].iov_len, 0);
	/* Zero copy: a zero-length commit, a zero-length peek. */
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), 1);
	iov[0].iov_len = 0;
	assert_int_equal(sluice_spsc_commit(p, iov, 1), 1);
	in[0].iov_len = 99;
	assert_int_equal(sluice_spsc_peek(c, in, 1), 1);
	assert_int_equal(in[0].iov_len, 0);
	assert_int_equal(sluice_spsc_release(c, 1), 1);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- batches */

static void test_batches_wrap_around_the_ring(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char out[5][64], in[5][64];
	struct iovec oi[5], ii[5];
	uint64_t seq = 0, rseq = 0;
	unsigned int round, i;

	make_pair(f, 8, 64, NULL, &p, &c);
	/* Batches of 5 in 8 slots: every other batch straddles the wrap. */
	for (round = 0; round < 40; round++) {
		for (i = 0; i < 5; i++) {
			oi[i] = (struct iovec){ out[i], len_of(seq + i, 64, true) };
			h_fill(out[i], seq + i, oi[i].iov_len);
		}
		assert_int_equal(sluice_spsc_send_batch(p, oi, 5), 5);
		seq += 5;
		for (i = 0; i < 5; i++)
			ii[i] = (struct iovec){ in[i], 64 };
		assert_int_equal(sluice_spsc_recv_batch(c, ii, 5), 5);
		for (i = 0; i < 5; i++) {
			assert_int_equal(ii[i].iov_len, len_of(rseq, 64, true));
			assert_true(h_intact(in[i], rseq, ii[i].iov_len));
			rseq++;
		}
	}
	assert_int_equal(published(ring_of(f, "q")), 200);
	assert_int_equal(load64(&ring_of(f, "q")->head), 200);
	shut(p);
	shut(c);
}

/*
 * Batches that straddle the wrap are moved in two runs: a bad packet in
 * the second run must stop them exactly as one in the first does.
 */
static void test_a_bad_packet_after_the_wrap_stops_a_batch_as_before_it(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char out[5][65] = { { 0 } }, in[5][64];
	struct iovec oi[5], ii[5];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	/* Move both sides to slot 6: a batch of 5 takes slots 6, 7, 0, 1, 2. */
	for (i = 0; i < 6; i++) {
		assert_int_equal(sluice_spsc_send(p, out[0], 8), 0);
		assert_int_equal(sluice_spsc_recv(c, in[0], 64), 8);
	}
	for (i = 0; i < 5; i++) {
		h_fill(out[i], 6 + i, 16);
		oi[i] = (struct iovec){ out[i], 16 };
	}
	/* Over-size in the second run: nothing is sent. */
	oi[3].iov_len = 65;
	assert_int_equal(sluice_spsc_send_batch(p, oi, 5), -EMSGSIZE);
	assert_int_equal(published(ring_of(f, "q")), 6);
	assert_int_equal(sluice_spsc_try_recv_batch(c, ii, 1), -EAGAIN);

	/* A packet in the second run too long for its buffer ends the batch before it. */
	h_fill(out[3], 9, 64);
	oi[3].iov_len = 64;
	assert_int_equal(sluice_spsc_send_batch(p, oi, 5), 5);
	for (i = 0; i < 5; i++)
		ii[i] = (struct iovec){ in[i], 16 };
	assert_int_equal(sluice_spsc_recv_batch(c, ii, 5), 3);
	for (i = 0; i < 3; i++)
		assert_true(h_intact(in[i], 6 + i, ii[i].iov_len));
	for (i = 0; i < 2; i++)
		ii[i] = (struct iovec){ in[i], 64 };
	assert_int_equal(sluice_spsc_recv_batch(c, ii, 5), 2);
	assert_int_equal(ii[0].iov_len, 64);
	assert_true(h_intact(in[0], 9, 64));
	assert_true(h_intact(in[1], 10, 16));
	assert_int_equal(load64(&ring_of(f, "q")->head), 11);
	shut(p);
	shut(c);
}

static void test_try_send_batch_sends_what_fits(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[5][16];
	struct iovec iov[5];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 5; i++) {
		put(p, i, 1);
		h_fill(b[i], 50 + i, 16);
		iov[i] = (struct iovec){ b[i], 16 };
	}
	/* Three free: three go, in one publication. */
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 5), 3);
	assert_int_equal(published(ring_of(f, "q")), 8);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov + 3, 2), -EAGAIN);
	for (i = 0; i < 5; i++)
		get(c, i, 1);
	for (i = 0; i < 3; i++)
		get(c, 50 + i, 16);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 0), 0);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 0), 0);
	shut(p);
	shut(c);
}

static void test_recv_batch_takes_what_is_there(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[8][64];
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 3; i++)
		put(p, i, 20);
	for (i = 0; i < 8; i++)
		iov[i] = (struct iovec){ b[i], 64 };
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 8), 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(iov[i].iov_len, 20);
		assert_true(h_intact(b[i], i, 20));
	}
	assert_int_equal(iov[3].iov_len, 64);	/* untouched */
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 0), -EINVAL);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- zero copy */

/* Move both sides to index @n of an empty ring. */
static void advance(struct sluice_spsc *p, struct sluice_spsc *c, unsigned int n)
{
	unsigned char buf[64];
	unsigned int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(sluice_spsc_try_send(p, buf, 0), 0);
		assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), 0);
	}
}

static void test_reserve_hands_out_a_run_that_wraps_in_ring_order(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 100, NULL, &p, &c);
	ring = ring_of(f, "q");
	advance(p, c, 6);
	/* Slots 6, 7, 0, 1, 2: one run, in order, across the wrap. */
	assert_int_equal(sluice_spsc_reserve(p, iov, 5), 5);
	for (i = 0; i < 5; i++) {
		assert_ptr_equal(iov[i].iov_base, slot_at(ring, 6 + i));
		assert_int_equal(iov[i].iov_len, 100);
		h_fill(iov[i].iov_base, 40 + i, 100 - i);
		iov[i].iov_len = 100 - i;
	}
	/* Nothing is visible before the commit. */
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	assert_int_equal(sluice_spsc_commit(p, iov, 5), 5);
	for (i = 0; i < 5; i++)
		get(c, 40 + i, 100 - i);
	shut(p);
	shut(c);
}

static void test_reserve_gives_no_more_than_is_free(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 5; i++)
		put(p, i, 1);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 8), 3);
	assert_int_equal(sluice_spsc_commit(p, iov, 0), 0);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 0), -EINVAL);
	shut(p);
	shut(c);
}

static void test_commit_of_fewer_than_reserved_gives_the_rest_back(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[4], again[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_reserve(p, iov, 4), 4);
	for (i = 0; i < 4; i++) {
		h_fill(iov[i].iov_base, 60 + i, 33);
		iov[i].iov_len = 33;
	}
	assert_int_equal(sluice_spsc_commit(p, iov, 2), 2);
	assert_int_equal(published(ring_of(f, "q")), 2);
	get(c, 60, 33);
	get(c, 61, 33);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	/* The two given back are the next ones handed out. */
	assert_int_equal(sluice_spsc_reserve(p, again, 1), 1);
	assert_ptr_equal(again[0].iov_base, iov[2].iov_base);
	assert_int_equal(sluice_spsc_commit(p, again, 0), 0);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	put(p, 70, 3);
	get(c, 70, 3);
	shut(p);
	shut(c);
}

static void test_commit_rejects_a_wrong_address_or_too_many_before_publishing(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[4];
	void *keep;
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	advance(p, c, 6);
	assert_int_equal(sluice_spsc_reserve(p, iov, 3), 3);
	for (i = 0; i < 3; i++) {
		h_fill(iov[i].iov_base, 80 + i, 64);
		iov[i].iov_len = 64;
	}
	iov[3] = iov[2];
	/* More than reserved. */
	assert_int_equal(sluice_spsc_commit(p, iov, 4), -EINVAL);
	/* A wrong address in the middle: the slot after the wrap swapped. */
	keep = iov[1].iov_base;
	iov[1].iov_base = iov[2].iov_base;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), -EINVAL);
	iov[1].iov_base = (unsigned char *)keep + 1;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), -EINVAL);
	iov[1].iov_base = keep;
	/* Too long. */
	iov[2].iov_len = 65;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), -EMSGSIZE);
	iov[2].iov_len = 64;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), 3);
	/* Nothing was published by the failures; the reservation survived them. */
	for (i = 0; i < 3; i++)
		get(c, 80 + i, 64);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	shut(p);
	shut(c);
}

static void test_commit_after_the_consumer_closed_is_epipe_and_drops_the_reservation(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[2];

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), 2);
	iov[0].iov_len = iov[1].iov_len = 1;
	shut(c);
	assert_int_equal(sluice_spsc_commit(p, iov, 2), -EPIPE);
	assert_int_equal(published(ring_of(f, "q")), 0);
	/* Dropped: the next call says -EPIPE, not -EBUSY. */
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_send(p, iov[0].iov_base, 1), -EPIPE);
	shut(p);
}

static void test_commit_without_a_reservation_is_einval(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[1];

	make_pair(f, 8, 64, NULL, &p, &c);
	iov[0] = (struct iovec){ slot_at(ring_of(f, "q"), 0), 1 };
	assert_int_equal(sluice_spsc_commit(p, iov, 1), -EINVAL);
	assert_int_equal(sluice_spsc_commit(p, NULL, 0), 0);
	assert_int_equal(published(ring_of(f, "q")), 0);
	shut(p);
	shut(c);
}

static void test_producer_calls_are_ebusy_while_a_reservation_is_outstanding(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[2], one[1] = { { buf, 1 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), 2);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EBUSY);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EBUSY);
	assert_int_equal(sluice_spsc_try_send_batch(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_send_batch(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_try_reserve(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_reserve(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_wait(p), -EBUSY);
	iov[0].iov_len = 1;
	assert_int_equal(sluice_spsc_commit(p, iov, 1), 1);
	/* Free again. */
	put(p, 2, 2);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), 1);
	get(c, 2, 2);
	shut(p);
	shut(c);
}

static void test_consumer_calls_are_ebusy_while_a_peek_is_outstanding(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[2], one[1] = { { buf, 64 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 10);
	put(p, 2, 10);
	assert_int_equal(sluice_spsc_peek(c, iov, 1), 1);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EBUSY);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EBUSY);
	assert_int_equal(sluice_spsc_try_recv_batch(c, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_recv_batch(c, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_try_peek(c, iov, 1), -EBUSY);
	assert_int_equal(sluice_spsc_peek(c, iov, 1), -EBUSY);
	assert_int_equal(sluice_spsc_wait(c), -EBUSY);
	assert_int_equal(sluice_spsc_release(c, 1), 1);
	get(c, 2, 10);
	shut(p);
	shut(c);
}

static void test_peek_shows_packets_in_place_and_release_may_be_partial(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	advance(p, c, 5);
	for (i = 0; i < 5; i++)
		put(p, 90 + i, 10 + i);
	/* Slots 5, 6, 7, 0, 1: one run across the wrap. */
	assert_int_equal(sluice_spsc_peek(c, iov, 8), 5);
	for (i = 0; i < 5; i++) {
		assert_ptr_equal(iov[i].iov_base, slot_at(ring, 5 + i));
		assert_int_equal(iov[i].iov_len, 10 + i);
		assert_true(h_intact(iov[i].iov_base, 90 + i, 10 + i));
	}
	assert_int_equal(sluice_spsc_release(c, 6), -EINVAL);
	assert_int_equal(sluice_spsc_release(c, 2), 2);
	assert_int_equal(load64(&ring->head), 7);
	/* The rest were not read: they come again. */
	assert_int_equal(sluice_spsc_peek(c, iov, 2), 2);
	assert_true(h_intact(iov[0].iov_base, 92, 12));
	assert_true(h_intact(iov[1].iov_base, 93, 13));
	assert_int_equal(sluice_spsc_release(c, 0), 0);
	get(c, 92, 12);
	get(c, 93, 13);
	get(c, 94, 14);
	shut(p);
	shut(c);
}

static void test_release_without_a_peek_is_einval(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 1);
	assert_int_equal(sluice_spsc_release(c, 1), -EINVAL);
	assert_int_equal(sluice_spsc_release(c, 0), 0);
	assert_int_equal(load64(&ring_of(f, "q")->head), 0);
	get(c, 1, 1);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- deadlines */

static void timeouts(struct h_fx *f, uint32_t spin_ns, bool by_opts)
{
	struct sluice_spsc_opts o = { .sz = sizeof(o), .spin_ns = spin_ns };
	struct sluice_spsc *p, *c;
	unsigned char buf[64] = { 0 };
	struct iovec iov[2] = { { buf, 1 }, { buf, 1 } };
	int64_t t0;

	if (by_opts)
		o.timeout_ns = 50 * MS;
	make_pair(f, 8, 64, &o, &p, &c);
	if (!by_opts) {
		sluice_spsc_set_timeout(p, 50 * MS);
		sluice_spsc_set_timeout(c, 50 * MS);
	}
	/* Empty: every consumer call that waits gives up after 50 ms. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 2), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_peek(c, iov, 2), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_wait(c), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	/* Full: every producer call that waits too. */
	fill_up(p);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send(p, buf, 1), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send_batch(p, iov, 2), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	/* Nothing was lost or added by all that. */
	assert_int_equal(published(ring_of(f, "q")), 8);
	get(c, 0, 1);
	shut(p);
	shut(c);
}

static void test_blocking_calls_time_out_on_empty_and_full_rings(void **state)
{
	timeouts(*state, 0, false);
}

static void test_the_timeout_can_be_set_in_the_options(void **state)
{
	timeouts(*state, 0, true);
}

static void test_blocking_calls_time_out_while_sleeping(void **state)
{
	timeouts(*state, 1, false);
}

static void test_blocking_calls_time_out_while_spinning_only(void **state)
{
	timeouts(*state, UINT32_MAX, false);
}

static void test_the_default_timeout_is_five_seconds(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	int64_t t0;

	make_pair(f, 8, 64, NULL, &p, &c);
	sluice_spsc_set_timeout(c, 10 * MS);
	sluice_spsc_set_timeout(c, 0);	/* back to the default */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -ETIMEDOUT);
	h_assert_took(t0, 5000, 15000);
	shut(p);
	shut(c);
}

struct trickle {
	struct sluice_spsc *c;
	unsigned int every_ms;
	unsigned int most;
	_Atomic bool stop;
};

/* A slow consumer: one packet every @every_ms, @most in all, until stopped. */
static void *trickle(void *p)
{
	struct trickle *t = p;
	unsigned char buf[64];
	unsigned int taken = 0;

	while (!atomic_load(&t->stop) && taken < t->most) {
		h_sleep_ms(t->every_ms);
		if (sluice_spsc_try_recv(t->c, buf, sizeof(buf)) >= 0)
			taken++;
	}
	return NULL;
}

static void test_send_batch_ends_by_one_deadline_though_each_wait_gains_a_slot(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct trickle t = { .every_ms = 80, .most = 8 };
	struct sluice_spsc *p;
	unsigned char buf[8] = { 0 };
	struct iovec iov[8];
	pthread_t th;
	unsigned int i;
	int64_t t0, ms;
	int ret;

	make_pair(f, 4, 64, &o, &p, &t.c);
	fill_up(p);
	for (i = 0; i < 8; i++)
		iov[i] = (struct iovec){ buf, 1 };
	assert_int_equal(pthread_create(&th, NULL, trickle, &t), 0);
	/*
	 * Each wait gains one slot 80 ms in, before a 100 ms deadline of its
	 * own would pass: the call has one deadline, not one per wait, or
	 * its 8 packets would take 8 waits.
	 */
	t0 = h_now_ms();
	ret = sluice_spsc_send_batch(p, iov, 8);
	ms = h_now_ms() - t0;
	atomic_store(&t.stop, true);
	assert_int_equal(pthread_join(th, NULL), 0);
	h_assert_ms(ms, 100, 400);
	/* One slot came before the deadline, unless the consumer ran late. */
	assert_true(ret == 1 || ret == -ETIMEDOUT);
	shut(p);
	shut(t.c);
}

/* ---------------------------------------------------------------- cancel */

enum blocked_in { IN_SEND, IN_RECV };

/*
 * Block in a send on a full ring or a recv on an empty one, tied to a
 * token; another thread triggers @fire (the token or an ancestor) with
 * @reason after 100 ms.  The call must return @want then, and every later
 * call that would wait must return it at once.
 */
static void cancel_blocked(struct h_fx *f, enum blocked_in where, uint32_t spin_ns,
			   int reason, bool via_parent)
{
	struct sluice_spsc_opts o = {
		.sz = sizeof(o), .spin_ns = spin_ns, .timeout_ns = 20000 * MS,
	};
	struct sluice_cancel *parent, *tok;
	struct sluice_spsc *p, *c, *q;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	struct h_later l = { .ms = 100, .reason = reason };
	int want = reason ? reason : -ECANCELED;
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &parent), 0);
	assert_int_equal(sluice_cancel_create(parent, &tok), 0);
	make_pair(f, 8, 64, &o, &p, &c);
	q = where == IN_SEND ? p : c;
	sluice_spsc_set_cancel(q, tok);
	if (where == IN_SEND)
		fill_up(p);
	l.tok = via_parent ? parent : tok;
	t0 = h_now_ms();
	h_later_start(&l);
	if (where == IN_SEND)
		assert_int_equal(sluice_spsc_send(q, buf, 1), want);
	else
		assert_int_equal(sluice_spsc_recv(q, buf, sizeof(buf)), want);
	h_assert_took(t0, 90, 10000);
	h_later_join(&l);

	/* Later: at once, every call that would wait. */
	t0 = h_now_ms();
	if (where == IN_SEND) {
		assert_int_equal(sluice_spsc_send(q, buf, 1), want);
		assert_int_equal(sluice_spsc_send_batch(q, iov, 1), want);
		assert_int_equal(sluice_spsc_reserve(q, iov, 1), want);
	} else {
		assert_int_equal(sluice_spsc_recv(q, buf, sizeof(buf)), want);
		assert_int_equal(sluice_spsc_recv_batch(q, iov, 1), want);
		assert_int_equal(sluice_spsc_peek(q, iov, 1), want);
	}
	assert_int_equal(sluice_spsc_wait(q), want);
	h_assert_took(t0, 0, 2000);
	/* The ring itself is intact: the peer still works. */
	if (where == IN_SEND) {
		get(c, 0, 1);
		assert_int_equal(published(ring_of(f, "q")), 8);
	} else {
		put(p, 1, 1);
		assert_int_equal(load64(&ring_of(f, "q")->head), 0);
	}
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
	sluice_cancel_destroy(parent);
}

static void test_cancel_wakes_a_send_blocked_on_a_full_ring(void **state)
{
	cancel_blocked(*state, IN_SEND, 0, 0, false);
}

static void test_cancel_wakes_a_recv_blocked_on_an_empty_ring(void **state)
{
	cancel_blocked(*state, IN_RECV, 0, 0, false);
}

static void test_cancel_wakes_a_send_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_SEND, 1, 0, false);
}

static void test_cancel_wakes_a_recv_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_RECV, 1, 0, false);
}

static void test_cancel_stops_a_recv_that_only_spins(void **state)
{
	cancel_blocked(*state, IN_RECV, UINT32_MAX, 0, false);
}

static void test_cancel_of_a_recv_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_RECV, 1, -ESHUTDOWN, false);
}

static void test_cancel_of_a_send_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_SEND, 0, -ENOTCONN, false);
}

static void test_cancel_of_a_parent_token_wakes_a_wait_on_its_child(void **state)
{
	cancel_blocked(*state, IN_RECV, 1, -EHOSTDOWN, true);
}

static void test_a_token_triggered_before_the_call_fails_it_at_once(void **state)
{
	struct h_fx *f = *state;
	struct sluice_cancel *tok;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 20000 * MS };
	struct sluice_spsc *p, *c;
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	assert_int_equal(sluice_cancel_trigger(tok, -EIO), 0);
	o.cancel = tok;		/* through the options this time */
	make_pair(f, 8, 64, &o, &p, &c);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -EIO);
	h_assert_took(t0, 0, 2000);
	/* Detached from the token, the wait is an ordinary one again. */
	sluice_spsc_set_cancel(c, NULL);
	sluice_spsc_set_timeout(c, 30 * MS);
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -ETIMEDOUT);
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
}

static void test_a_triggered_token_fails_only_calls_that_would_wait(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 20000 * MS };
	struct sluice_cancel *tok;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	o.cancel = tok;
	make_pair(f, 2, 64, &o, &p, &c);
	assert_int_equal(sluice_cancel_trigger(tok, 0), 0);
	/* Room: the send needs no wait and goes through; so does the recv. */
	h_fill(buf, 1, 20);
	assert_int_equal(sluice_spsc_send(p, buf, 20), 0);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), 20);
	assert_true(h_intact(buf, 1, 20));
	/* Empty: this one would wait. */
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -ECANCELED);
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
}

static void test_a_huge_timeout_does_not_expire_at_once(void **state)
{
	struct h_fx *f = *state;
	struct sluice_cancel *tok;
	struct sluice_spsc *p, *c;
	struct h_later l = { .ms = 100 };
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	make_pair(f, 8, 64, NULL, &p, &c);
	sluice_spsc_set_cancel(c, tok);
	/* "Practically forever": must not wrap around to the past. */
	sluice_spsc_set_timeout(c, UINT64_MAX);
	l.tok = tok;
	t0 = h_now_ms();
	h_later_start(&l);
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -ECANCELED);
	h_assert_took(t0, 90, 10000);
	h_later_join(&l);
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
}

/* ---------------------------------------------------------------- close */

static void test_after_the_producer_closes_the_consumer_reads_all_then_epipe(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 8; i++)
		put(p, i, 8 * i);
	shut(p);
	assert_true(ctl_of(&ring_of(f, "q")->prod) & SLUICE_SPSC_CLOSED);
	get(c, 0, 0);
	get(c, 1, 8);
	assert_int_equal(sluice_spsc_peek(c, iov, 2), 2);
	assert_int_equal(sluice_spsc_release(c, 2), 2);
	for (i = 0; i < 4; i++)
		iov[i] = (struct iovec){ buf, 64 };
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 1), 1);
	get(c, 5, 40);
	get(c, 6, 48);
	get(c, 7, 56);
	/* End of stream, from every call, every time, without waiting. */
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 4), -EPIPE);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 4), -EPIPE);
	assert_int_equal(sluice_spsc_peek(c, iov, 4), -EPIPE);
	assert_int_equal(sluice_spsc_wait(c), -EPIPE);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	shut(c);
}

static void test_after_the_consumer_closes_the_producer_gets_epipe(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 1);
	shut(c);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EPIPE);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_wait(p), -EPIPE);
	assert_int_equal(published(ring_of(f, "q")), 1);
	shut(p);
}

struct closer {
	struct sluice_region *r;
	uint32_t spin_ns;
	int64_t waited_ms;
};

/* Fill the ring, then block in send until the consumer closes. */
static int blocked_producer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_opts o = {
		.sz = sizeof(o), .spin_ns = cl->spin_ns, .timeout_ns = 30000 * MS,
	};
	unsigned char buf[8] = { 0 };
	struct sluice_spsc *p;
	int64_t t0;
	int i;

	CK_EQ(make_and_tell(cl->r, "q", 4, 8, SLUICE_SPSC_PRODUCER, &o, &p), 0);
	for (i = 0; i < 4; i++)
		CK_EQ(sluice_spsc_try_send(p, buf, 8), 0);
	t0 = h_now_ms();
	CK_EQ(sluice_spsc_send(p, buf, 8), -EPIPE);
	/* Woken by the close, not by its 30 s deadline. */
	CK(h_now_ms() - t0 >= 50);
	CK(h_now_ms() - t0 < 10000);
	CK_EQ(sluice_spsc_send(p, buf, 8), -EPIPE);
	shut(p);
	return 0;
}

/* Attach, wait until the producer is stuck on the full ring, close. */
static int closing_consumer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *c;

	CK_EQ(attach_when_made(cl->r, "q", SLUICE_SPSC_CONSUMER, NULL, &c), 0);
	ring = ring_in(cl->r, "q");
	CK(ring);
	while (published(ring) < 4)
		h_sleep_ms(1);
	h_sleep_ms(150);
	shut(c);
	return 0;
}

static void test_a_consumer_closing_wakes_a_producer_blocked_on_a_full_ring(void **state)
{
	struct h_fx *f = *state;
	struct closer cl = { .r = f->r };

	run_pair(blocked_producer, closing_consumer, &cl, CHILD_TIMEOUT);
}

static void test_a_consumer_closing_wakes_a_producer_asleep_on_a_full_ring(void **state)
{
	struct h_fx *f = *state;
	struct closer cl = { .r = f->r, .spin_ns = 1 };

	run_pair(blocked_producer, closing_consumer, &cl, CHILD_TIMEOUT);
}

/* Block in recv on an empty ring until the producer closes. */
static int blocked_consumer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_opts o = {
		.sz = sizeof(o), .spin_ns = cl->spin_ns, .timeout_ns = 30000 * MS,
	};
	unsigned char buf[8];
	struct sluice_spsc *c;
	int64_t t0;

	CK_EQ(attach_when_made(cl->r, "q", SLUICE_SPSC_CONSUMER, &o, &c), 0);
	CK_EQ(sluice_spsc_recv(c, buf, sizeof(buf)), 3);
	t0 = h_now_ms();
	CK_EQ(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	CK(h_now_ms() - t0 >= 50);
	CK(h_now_ms() - t0 < 10000);
	shut(c);
	return 0;
}

static int closing_producer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p;

	CK_EQ(make_and_tell(cl->r, "q", 4, 8, SLUICE_SPSC_PRODUCER, NULL, &p), 0);
	CK_EQ(sluice_spsc_send(p, "abc", 3), 0);
	ring = ring_in(cl->r, "q");
	CK(ring);
	/* Once the packet is taken, the consumer is on its way to block. */
	while (load64(&ring->head) < 1)
		h_sleep_ms(1);
	h_sleep_ms(150);
	shut(p);
	return 0;
}

static void test_a_producer_closing_wakes_a_consumer_blocked_on_an_empty_ring(void **state)
{
	struct h_fx *f = *state;
	struct closer cl = { .r = f->r };

	run_pair(closing_producer, blocked_consumer, &cl, CHILD_TIMEOUT);
}

static void test_a_producer_closing_wakes_a_consumer_asleep_on_an_empty_ring(void **state)
{
	struct h_fx *f = *state;
	struct closer cl = { .r = f->r, .spin_ns = 1 };

	run_pair(closing_producer, blocked_consumer, &cl, CHILD_TIMEOUT);
}

static void test_close_drops_an_outstanding_reservation(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[2];

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 4);
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), 2);
	memset(iov[0].iov_base, 0xab, 64);
	shut(p);
	get(c, 1, 4);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EPIPE);
	shut(c);
}

/* ---------------------------------------------------------------- eventfd */

static bool fd_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, ms);

	assert_true(n >= 0);
	return n == 1 && (p.revents & POLLIN);
}

/* Read the eventfd until it stays quiet: the bridge has reported everything. */
static void settle(int fd)
{
	uint64_t v;
	int i;

	for (i = 0; i < 100; i++) {
		while (read(fd, &v, sizeof(v)) == sizeof(v))
			;
		if (!fd_readable(fd, 20))
			return;
	}
	fail_msg("eventfd %d never went quiet", fd);
}

static void test_fd_is_readable_after_a_send_and_again_after_more(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	int fd, i;

	make_pair(f, 8, 64, NULL, &p, &c);
	fd = sluice_spsc_fd(c);
	assert_true(fd >= 0);
	assert_int_equal(sluice_spsc_fd(c), fd);
	assert_false(fd_readable(fd, 50));
	for (i = 0; i < 3; i++)
		put(p, i, 10);
	assert_true(fd_readable(fd, 5000));
	settle(fd);
	for (i = 0; i < 3; i++)
		get(c, i, 10);
	/*
	 * Drained: -EAGAIN tells the bridge so.  It may still report packets
	 * we have already read (harmless); once that has settled, the fd
	 * stays quiet while nothing arrives.
	 */
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	settle(fd);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	assert_false(fd_readable(fd, 50));
	/* More: readable again. */
	put(p, 3, 11);
	assert_true(fd_readable(fd, 5000));
	settle(fd);
	get(c, 3, 11);
	shut(p);
	shut(c);
}

static void test_fd_is_readable_at_end_of_stream(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	int fd;

	make_pair(f, 8, 64, NULL, &p, &c);
	fd = sluice_spsc_fd(c);
	assert_true(fd >= 0);
	assert_false(fd_readable(fd, 50));
	shut(p);
	assert_true(fd_readable(fd, 5000));
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EPIPE);
	shut(c);
}

static void test_fd_made_while_packets_wait_is_readable_and_drains_at_once(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	int fd, i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 4; i++)
		put(p, i, 4);
	fd = sluice_spsc_fd(c);
	assert_true(fd >= 0);
	/* The consumer goes on using the handle while the bridge starts. */
	for (i = 0; i < 4; i++)
		get(c, i, 4);
	assert_true(fd_readable(fd, 5000));
	shut(p);
	shut(c);
}

static void test_close_frees_the_fd(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p, *c;
	int before;

	before = h_count_fds();
	make_pair(f, 8, 64, NULL, &p, &c);
	assert_true(sluice_spsc_fd(c) >= 0);
	assert_int_equal(h_count_fds(), before + 1);
	shut(c);
	assert_int_equal(h_count_fds(), before);
	shut(p);
}

struct fd_churn {
	struct sluice_region *r;
	unsigned int rounds;
};

/*
 * Make a consumer's eventfd and close the consumer at once, many times:
 * the close must stop the bridge thread however far it got.  The side is
 * reset by hand between rounds, as a fresh ring would have it.
 */
static int fd_churn(void *arg)
{
	struct fd_churn *fc = arg;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *c;
	uint64_t t0, rng = 42;
	unsigned int i;

	ring = ring_in(fc->r, "q");
	CK(ring);
	for (i = 0; i < fc->rounds; i++) {
		atomic_store(&ring->cons.ctl, 0);
		CK_EQ(sluice_spsc_attach(fc->r, "q", SLUICE_SPSC_CONSUMER, NULL, &c), 0);
		CK(sluice_spsc_fd(c) >= 0);
		/* Close at every point of the bridge's start, 0 to 20 us in. */
		t0 = sluice__now_ns(CLOCK_MONOTONIC);
		while (sluice__now_ns(CLOCK_MONOTONIC) - t0 < h_rng_next(&rng) % 20000)
			;
		shut(c);
	}
	return 0;
}

static void test_closing_a_consumer_right_after_making_its_fd_never_hangs(void **state)
{
	struct h_fx *f = *state;
	struct fd_churn fc = { .r = f->r, .rounds = 3000 };
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	/* A close that hangs in its eventfd bridge keeps the side from returning. */
	if (H_SIDES_ARE_THREADS)
		fc.rounds = 300;
	h_run_sides(&(struct h_side){ fd_churn, &fc }, 1, 30);
	shut(p);
}

/* ---------------------------------------------------------------- slipping */

/* sluice__slip_next(slip, polls, found, max): the policy, case by case. */
#define NEXT(slip, polls, found) \
	sluice__slip_next(slip, polls, found, SLUICE__SPSC_SLIP_MAX)
#define LONE	SLUICE__SLIP_LONE
#define BURST	SLUICE__SLIP_BURST
#define FAR	SLUICE__SLIP_FAR

static void test_slip_grows_while_quick_waits_find_a_burst(void **state)
{
	(void)state;
	/* From no slip, a quick wait alone is enough to try a little. */
	assert_int_equal(NEXT(0, 1, LONE), 1);
	assert_int_equal(NEXT(1, 1, BURST), 3);
	assert_int_equal(NEXT(3, 2, BURST), 7);
	assert_int_equal(NEXT(SLUICE__SPSC_SLIP_MAX - 1, 1, BURST),
			 SLUICE__SPSC_SLIP_MAX);
	assert_int_equal(NEXT(SLUICE__SPSC_SLIP_MAX, 1, BURST),
			 SLUICE__SPSC_SLIP_MAX);
	/* Another most is kept to, also one that is not a power of two less one. */
	assert_int_equal(sluice__slip_next(127, 1, BURST, 256), 255);
	assert_int_equal(sluice__slip_next(255, 1, BURST, 256), 256);
	assert_int_equal(sluice__slip_next(256, 2, BURST, 256), 256);
}

static void test_slip_stops_at_a_lone_packet_and_halves_on_a_long_wait(void **state)
{
	(void)state;
	/* A ping-pong: the pause was only latency. */
	assert_int_equal(NEXT(7, 1, LONE), 0);
	/* The wait went on after the pause: the pause was not what it waited for. */
	assert_int_equal(NEXT(40, 3, LONE), 20);
	assert_int_equal(NEXT(40, 3, FAR), 20);
	assert_int_equal(NEXT(1, 100, BURST), 0);
}

static void test_slip_halves_when_the_peer_got_half_a_ring_ahead(void **state)
{
	(void)state;
	assert_int_equal(NEXT(SLUICE__SPSC_SLIP_MAX, 1, FAR),
			 SLUICE__SPSC_SLIP_MAX / 2);
	assert_int_equal(NEXT(9, 2, FAR), 4);
	/* No slip yet: far ahead is still a reason to try one. */
	assert_int_equal(NEXT(0, 1, FAR), 1);
}

/*
 * A small ring, streaming: the peer gets a slot further ahead for every
 * two pauses, a second packet is always waiting, and half the ring is 16
 * slots.  The slip must settle between none and the most, not ratchet up
 * to the most (with which the peer filled or drained the ring during
 * every pause).
 */
static void test_slip_settles_below_the_most_on_a_small_ring(void **state)
{
	uint32_t slip = 0, ahead, lo = UINT32_MAX, hi = 0;
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		ahead = 2 + slip / 2;
		slip = NEXT(slip, 1, ahead >= 16 ? FAR : BURST);
		if (i >= 900) {
			lo = slip < lo ? slip : lo;
			hi = slip > hi ? slip : hi;
		}
	}
	print_message("    slip settles between %u and %u pauses\n", lo, hi);
	assert_true(lo > 0);
	assert_true(hi < SLUICE__SPSC_SLIP_MAX);
}

#undef NEXT
#undef LONE
#undef BURST
#undef FAR

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, spsc_setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* roles and arguments */
		T(test_create_and_attach_take_the_two_sides),
		T(test_the_creator_may_take_the_consumer_side),
		T(test_getters_report_the_geometry_on_both_sides),
		T(test_producer_calls_on_a_consumer_are_einval),
		T(test_consumer_calls_on_a_producer_are_einval),
		T(test_a_consumer_call_on_a_producer_holding_a_reservation_is_einval),
		T(test_a_producer_call_on_a_consumer_holding_a_peek_is_einval),
		T(test_attaching_a_side_held_by_this_live_process_is_ebusy),
		T(test_attaching_a_side_held_by_another_live_process_is_ebusy),
		T(test_a_side_held_by_a_process_whose_main_thread_ended_is_ebusy),
		T(test_attaching_a_closed_side_is_epipe),
		T(test_attaching_a_missing_ring_is_enoent),
		T(test_attach_rejects_bad_arguments),
		T(test_create_rejects_bad_arguments),
		T(test_create_of_a_taken_name_is_eexist),
		T(test_create_of_a_ring_too_big_for_the_region_is_enospc),
		T(test_close_of_null_is_a_no_op),
		/* full, empty, sizes */
		T(test_try_send_on_a_full_ring_is_eagain),
		T(test_try_recv_on_an_empty_ring_is_eagain),
		T(test_recv_into_a_small_buffer_is_enobufs_and_keeps_the_packet),
		T(test_recv_batch_stops_before_a_packet_longer_than_its_buffer),
		T(test_send_rejects_oversize_packets_with_emsgsize),
		T(test_send_batch_rejects_oversize_atomically),
		T(test_zero_length_packets_are_delivered),
		/* batches */
		T(test_batches_wrap_around_the_ring),
		T(test_a_bad_packet_after_the_wrap_stops_a_batch_as_before_it),
		T(test_try_send_batch_sends_what_fits),
		T(test_recv_batch_takes_what_is_there),
		/* zero copy */
		T(test_reserve_hands_out_a_run_that_wraps_in_ring_order),
		T(test_reserve_gives_no_more_than_is_free),
		T(test_commit_of_fewer_than_reserved_gives_the_rest_back),
		T(test_commit_rejects_a_wrong_address_or_too_many_before_publishing),
		T(test_commit_without_a_reservation_is_einval),
		T(test_commit_after_the_consumer_closed_is_epipe_and_drops_the_reservation),
		T(test_producer_calls_are_ebusy_while_a_reservation_is_outstanding),
		T(test_consumer_calls_are_ebusy_while_a_peek_is_outstanding),
		T(test_peek_shows_packets_in_place_and_release_may_be_partial),
		T(test_release_without_a_peek_is_einval),
		/* deadlines */
		T(test_blocking_calls_time_out_on_empty_and_full_rings),
		T(test_the_timeout_can_be_set_in_the_options),
		T(test_blocking_calls_time_out_while_sleeping),
		T(test_blocking_calls_time_out_while_spinning_only),
		T(test_the_default_timeout_is_five_seconds),
		T(test_send_batch_ends_by_one_deadline_though_each_wait_gains_a_slot),
		T(test_a_huge_timeout_does_not_expire_at_once),
		T(test_a_triggered_token_fails_only_calls_that_would_wait),
		/* cancel */
		T(test_cancel_wakes_a_send_blocked_on_a_full_ring),
		T(test_cancel_wakes_a_recv_blocked_on_an_empty_ring),
		T(test_cancel_wakes_a_send_asleep_on_the_futex),
		T(test_cancel_wakes_a_recv_asleep_on_the_futex),
		T(test_cancel_stops_a_recv_that_only_spins),
		T(test_cancel_of_a_recv_with_a_reason_returns_that_reason),
		T(test_cancel_of_a_send_with_a_reason_returns_that_reason),
		T(test_cancel_of_a_parent_token_wakes_a_wait_on_its_child),
		T(test_a_token_triggered_before_the_call_fails_it_at_once),
		/* close */
		T(test_after_the_producer_closes_the_consumer_reads_all_then_epipe),
		T(test_after_the_consumer_closes_the_producer_gets_epipe),
		T(test_a_consumer_closing_wakes_a_producer_blocked_on_a_full_ring),
		T(test_a_consumer_closing_wakes_a_producer_asleep_on_a_full_ring),
		T(test_a_producer_closing_wakes_a_consumer_blocked_on_an_empty_ring),
		T(test_a_producer_closing_wakes_a_consumer_asleep_on_an_empty_ring),
		T(test_close_drops_an_outstanding_reservation),
		/* eventfd */
		T(test_fd_is_readable_after_a_send_and_again_after_more),
		T(test_fd_is_readable_at_end_of_stream),
		T(test_fd_made_while_packets_wait_is_readable_and_drains_at_once),
		T(test_close_frees_the_fd),
		T(test_closing_a_consumer_right_after_making_its_fd_never_hangs),
		/* slipping */
		cmocka_unit_test(test_slip_grows_while_quick_waits_find_a_burst),
		cmocka_unit_test(test_slip_stops_at_a_lone_packet_and_halves_on_a_long_wait),
		cmocka_unit_test(test_slip_halves_when_the_peer_got_half_a_ring_ahead),
		cmocka_unit_test(test_slip_settles_below_the_most_on_a_small_ring),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("spsc", tests, NULL, NULL);
}
