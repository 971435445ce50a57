// SPDX-License-Identifier: MIT
/*
 * SPSC rings one of whose sides died, by exit or SIGKILL, with no chance
 * to close: its side can be taken over by a new process, which carries on
 * after the last packet the dead one published (going by the tags, not by
 * the tail it announced), and a survivor blocked on it gets -EPIPE from
 * its first deadline, having read all that was sent.  A peer that holds
 * the region's lock for good delays no call past its deadline.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include <sluice/spsc.h>

#include "frames.h"
#include "harness.h"
#include "spsc_fixture.h"

/* ---------------------------------------------------------------- takeover */

struct dead_arg {
	struct sluice_region *r;
	unsigned int sent;	/* packets committed before dying */
	unsigned int reserved;	/* then reserved, written, never committed */
	unsigned int taken;	/* consumer: packets received before dying */
	unsigned int peeked;	/* then peeked, never released */
};

/* In a child: attach as producer, send, reserve, die without closing. */
static int child_producer_dies(void *p)
{
	struct dead_arg *a = p;
	struct sluice_spsc *q;
	struct iovec iov[8];
	unsigned char buf[64];
	unsigned int i;

	if (sluice_spsc_attach(a->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q))
		return 1;
	for (i = 0; i < a->sent; i++) {
		h_fill(buf, 100 + i, 40);
		if (sluice_spsc_try_send(q, buf, 40))
			return 2;
	}
	if (a->reserved) {
		if (sluice_spsc_try_reserve(q, iov, a->reserved) != (int)a->reserved)
			return 3;
		for (i = 0; i < a->reserved; i++)
			memset(iov[i].iov_base, 0xee, iov[i].iov_len);
	}
	_exit(0);	/* no close: the process just dies */
}

/* In a child: attach as consumer, take some, peek some, die. */
static int child_consumer_dies(void *p)
{
	struct dead_arg *a = p;
	struct sluice_spsc *q;
	struct iovec iov[8];
	unsigned char buf[64];
	unsigned int i;

	if (sluice_spsc_attach(a->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q))
		return 1;
	for (i = 0; i < a->taken; i++)
		if (sluice_spsc_try_recv(q, buf, sizeof(buf)) != 40 || !h_intact(buf, 100 + i, 40))
			return 2;
	if (a->peeked && sluice_spsc_try_peek(q, iov, a->peeked) != (int)a->peeked)
		return 3;
	_exit(0);
}

static void test_a_dead_producers_side_can_be_taken_over(void **state)
{
	struct h_fx *f = *state;
	struct dead_arg a = { .r = f->r, .sent = 5, .reserved = 2 };
	struct sluice_spsc *p, *c;
	unsigned int i;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	assert_int_equal(h_fork(child_producer_dies, &a, CHILD_TIMEOUT), 0);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	/* The new producer carries on after the last committed packet... */
	for (i = 0; i < 3; i++)
		put(p, 200 + i, 40);
	/* ...so the consumer gets exactly the dead one's, then the new one's. */
	for (i = 0; i < 5; i++)
		get(c, 100 + i, 40);
	for (i = 0; i < 3; i++)
		get(c, 200 + i, 40);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	shut(p);
	shut(c);
}

/*
 * A producer dies having published four packets, of which the consumer
 * takes @taken; tail says @tail.  tail is only an announcement and may lag,
 * even behind head, which is no corruption: the new producer carries on
 * after the last tag, never inside what the consumer has freed.
 */
static void takeover_with_tail(struct h_fx *f, unsigned int taken, uint64_t tail)
{
	struct dead_arg a = { .r = f->r, .sent = 4 };
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned int i;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	assert_int_equal(h_fork(child_producer_dies, &a, CHILD_TIMEOUT), 0);
	ring = ring_of(f, "q");
	assert_int_equal(published(ring), 4);
	for (i = 0; i < taken; i++)
		get(c, 100 + i, 40);
	store64(&ring->tail, tail);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	put(p, 200, 40);
	for (i = taken; i < 4; i++)
		get(c, 100 + i, 40);
	get(c, 200, 40);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	shut(p);
	shut(c);
}

static void test_a_takeover_goes_by_the_tags_not_by_tail(void **state)
{
	takeover_with_tail(*state, 0, 2);
}

static void test_a_takeover_with_tail_behind_head_carries_on_after_head(void **state)
{
	takeover_with_tail(*state, 4, 1);
}

static void test_a_dead_consumers_side_can_be_taken_over(void **state)
{
	struct h_fx *f = *state;
	struct dead_arg a = { .r = f->r, .taken = 2, .peeked = 1 };
	struct sluice_spsc *p, *c;
	unsigned int i;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	for (i = 0; i < 5; i++)
		put(p, 100 + i, 40);
	assert_int_equal(h_fork(child_consumer_dies, &a, CHILD_TIMEOUT), 0);
	c = join(f, "q", SLUICE_SPSC_CONSUMER, NULL);
	/* What it took is gone; what it only peeked at comes again. */
	for (i = 2; i < 5; i++)
		get(c, 100 + i, 40);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	put(p, 300, 1);
	get(c, 300, 1);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- a dead peer */

struct sitter {
	struct sluice_region *r;
	enum sluice_spsc_role role;
	unsigned int sent;	/* a producer's packets, 100 on, 40 bytes */
};

/* In a child: take a side of "q", send if a producer, sit until killed. */
static int sit(void *p)
{
	struct sitter *s = p;
	struct sluice_spsc *q;
	unsigned char buf[64];
	unsigned int i;

	if (sluice_spsc_attach(s->r, "q", s->role, NULL, &q))
		return 1;
	for (i = 0; i < s->sent; i++) {
		h_fill(buf, 100 + i, 40);
		if (sluice_spsc_try_send(q, buf, 40))
			return 2;
	}
	for (;;)
		pause();
}

/*
 * A process takes @role's side of ring "q" (sending @sent packets if it
 * is the producer) and is killed with SIGKILL: no close, and no monitor
 * to see it die.  Returns once it is reaped.
 */
static void kill_a_peer(struct h_fx *f, enum sluice_spsc_role role, unsigned int sent)
{
	struct sitter s = { f->r, role, sent };
	struct sluice_spsc_ring *ring = ring_of(f, "q");
	struct sluice_spsc_side *side = role == SLUICE_SPSC_PRODUCER ? &ring->prod : &ring->cons;
	int64_t t0 = h_now_ms();
	int pid;

	pid = h_spawn(sit, &s, CHILD_TIMEOUT);
	assert_true(pid > 0);
	/* ATTACHED is stored (release) after pid. */
	while (!(ctl_of(side) & SLUICE_SPSC_ATTACHED) ||
	       atomic_load_explicit(&side->pid, memory_order_relaxed) != pid ||
	       published(ring) < sent) {
		if (h_now_ms() - t0 > 10000) {
			kill(pid, SIGKILL);
			fail_msg("the peer exited with %d before it was ready", h_wait(pid));
		}
		h_sleep_ms(1);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
}

static void test_a_producer_whose_consumer_was_killed_gets_epipe_from_its_first_deadline(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *p;
	unsigned char buf[8] = { 0 };
	struct iovec iov[12];
	unsigned int i;
	int64_t t0;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, &o);
	kill_a_peer(f, SLUICE_SPSC_CONSUMER, 0);
	for (i = 0; i < 12; i++)
		iov[i] = (struct iovec){ buf, 1 };
	/* What fits goes; the wait for the rest ends at the deadline, dead. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send_batch(p, iov, 12), 8);
	h_assert_took(t0, 100, 2000);
	/* So the next calls say so at once, without a wait of their own. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send_batch(p, iov + 8, 4), -EPIPE);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EPIPE);
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_wait(p), -EPIPE);
	h_assert_took(t0, 0, 50);
	assert_true(ctl_of(&ring_of(f, "q")->cons) & SLUICE_SPSC_DEAD);
	shut(p);
}

static void test_a_consumer_whose_producer_was_killed_reads_all_then_gets_epipe_from_its_first_deadline(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *c;
	unsigned char buf[64];
	struct iovec iov[1] = { { buf, sizeof(buf) } };
	unsigned int i;
	int64_t t0;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, &o);
	kill_a_peer(f, SLUICE_SPSC_PRODUCER, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), 40);
		assert_true(h_intact(buf, 100 + i, 40));
	}
	/* Nothing more: the wait ends at its deadline, which finds it dead. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	h_assert_took(t0, 100, 2000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_peek(c, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EPIPE);
	h_assert_took(t0, 0, 50);
	assert_true(ctl_of(&ring_of(f, "q")->prod) & SLUICE_SPSC_DEAD);
	shut(c);
}

/*
 * Marking the dead peer takes the region's lock: a peer holding it for
 * good costs the call no more than a moment past its deadline, and the
 * death is marked by a later call once the lock is free.
 */
static void test_a_peer_holding_the_region_lock_delays_no_call_past_its_deadline(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *c;
	unsigned char buf[64];
	int64_t t0;
	int pid;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, &o);
	kill_a_peer(f, SLUICE_SPSC_PRODUCER, 0);
	pid = h_hold_region_lock(f->name);
	assert_true(pid > 0);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -ETIMEDOUT);
	h_assert_took(t0, 100, 500);
	kill(pid, SIGKILL);
	h_wait(pid);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	h_assert_took(t0, 100, 500);
	shut(c);
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, spsc_setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* takeover */
		T(test_a_dead_producers_side_can_be_taken_over),
		T(test_a_takeover_goes_by_the_tags_not_by_tail),
		T(test_a_takeover_with_tail_behind_head_carries_on_after_head),
		T(test_a_dead_consumers_side_can_be_taken_over),
		/* a dead peer, no monitor */
		T(test_a_producer_whose_consumer_was_killed_gets_epipe_from_its_first_deadline),
		T(test_a_consumer_whose_producer_was_killed_reads_all_then_gets_epipe_from_its_first_deadline),
		T(test_a_peer_holding_the_region_lock_delays_no_call_past_its_deadline),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("spsc_dead", tests, NULL, NULL);
}
