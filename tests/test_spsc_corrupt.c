// SPDX-License-Identifier: MIT
/*
 * SPSC rings whose shared memory a buggy or hostile peer wrote: head and
 * tail far apart, moved back, or garbage; tags too long, of another lap,
 * or bad inside a batch; a config that cannot be, of another ABI, or no
 * ring at all; and a peer that keeps waking a waiting side, or shows it
 * the packet it waits for and takes it back before it can look.  Every
 * call says -EBADMSG (or -EPROTO) where it can tell, consumes nothing it
 * could not check, and a blocking call still ends by its deadline or its
 * token.
 *
 * The damage is done by writing into the ring's shared memory, found with
 * sluice_region_find() and the layout in spsc_layout.h, or by acting at
 * the library's test points (lib/testpoint.h).
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <sluice/cancel.h>
#include <sluice/spsc.h>


#include "frames.h"
#include "futex.h"
#include "harness.h"
#include "spsc_fixture.h"
#include "testpoint.h"

/* ---------------------------------------------------------------- a peer gone wrong */

struct nagger {
	_Atomic uint32_t *word;
	_Atomic bool stop;
	unsigned long bumps;
};

/* A peer gone wrong: bump and wake the futex word as fast as it can. */
static void *nag(void *p)
{
	struct nagger *n = p;
	int64_t t0 = h_now_ms();

	/* Give up after 3 s, so that a wait it holds fails the test, not hangs it. */
	while (!atomic_load(&n->stop) && h_now_ms() - t0 < 3000) {
		atomic_fetch_add(n->word, 1);
		if (!(++n->bumps % 256))
			sluice__futex_wake(n->word);
	}
	return NULL;
}

static void test_a_peer_that_keeps_waking_us_cannot_hold_us_past_the_deadline(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .spin_ns = 1, .timeout_ns = 100 * MS };
	struct sluice_spsc *p, *c;
	struct nagger n = { 0 };
	unsigned char buf[8];
	pthread_t t;
	int64_t t0;
	int ret;

	make_pair(f, 8, 8, &o, &p, &c);
	n.word = &ring_of(f, "q")->cons.seq;
	assert_int_equal(pthread_create(&t, NULL, nag, &n), 0);
	t0 = h_now_ms();
	ret = sluice_spsc_recv(c, buf, sizeof(buf));
	atomic_store(&n.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(ret, -ETIMEDOUT);
	h_assert_took(t0, 100, 2000);
	assert_true(n.bumps > 0);
	shut(p);
	shut(c);
}

/*
 * A producer gone wrong, acting at the library's test points: as each
 * wait of the consumer begins it shows the packet waited for, and as the
 * wait ends ready it takes it back, before the call can look.  So every
 * wait ends at its first look, reading no clock, and every call after it
 * finds nothing.  It stops at @until_ms, when a call it still holds has
 * failed its test.
 */
static struct {
	struct sluice_spsc *c;
	_Atomic uint64_t *tag;		/* of packet 0 */
	struct sluice_cancel *tok;	/* triggered after @cancel_after readies */
	unsigned long readies, cancel_after;
	int64_t until_ms;
} liar;

static void liar_acts(enum sluice__tp point, void *q)
{
	if (q != liar.c || h_now_ms() >= liar.until_ms)
		return;
	if (point == SLUICE__TP_SPSC_WAIT) {
		store64(liar.tag, SLUICE_SPSC_TAG(0, 8));
		return;
	}
	store64(liar.tag, 0);
	if (liar.tok && ++liar.readies == liar.cancel_after)
		sluice_cancel_trigger(liar.tok, 0);
}

enum consumer_call { CALL_RECV, CALL_RECV_BATCH, CALL_PEEK, CALLS };

static int consumer_call(struct sluice_spsc *c, enum consumer_call which)
{
	struct iovec iov[2] = { { scratch, 64 }, { scratch, 64 } };

	switch (which) {
	case CALL_RECV:
		return sluice_spsc_recv(c, scratch, sizeof(scratch));
	case CALL_RECV_BATCH:
		return sluice_spsc_recv_batch(c, iov, 2);
	default:
		return sluice_spsc_peek(c, iov, 2);
	}
}

static void lie_to(struct h_fx *f, struct sluice_spsc *c, int64_t for_ms)
{
	liar.c = c;
	liar.tag = tag_at(ring_of(f, "q"), 0);
	liar.until_ms = h_now_ms() + for_ms;
	liar.readies = 0;
	store64(liar.tag, 0);
	sluice__tp_hook = liar_acts;
}

static void test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_deadline(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *p, *c;
	enum consumer_call call;
	int64_t t0;

	make_pair(f, 8, 64, &o, &p, &c);
	for (call = 0; call < CALLS; call++) {
		lie_to(f, c, 3000);
		t0 = h_now_ms();
		assert_int_equal(consumer_call(c, call), -ETIMEDOUT);
		h_assert_took(t0, 100, 2000);
	}
	sluice__tp_hook = NULL;
	shut(p);
	shut(c);
}

static void test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_token(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 20000 * MS };
	struct sluice_spsc *p, *c;
	enum consumer_call call;
	int64_t t0;

	make_pair(f, 8, 64, &o, &p, &c);
	for (call = 0; call < CALLS; call++) {
		assert_int_equal(sluice_cancel_create(NULL, &liar.tok), 0);
		sluice_spsc_set_cancel(c, liar.tok);
		lie_to(f, c, 3000);
		liar.cancel_after = 100;
		t0 = h_now_ms();
		assert_int_equal(consumer_call(c, call), -ECANCELED);
		h_assert_took(t0, 0, 2000);
		assert_true(liar.readies >= 100);
		sluice__tp_hook = NULL;
		sluice_spsc_set_cancel(c, NULL);
		sluice_cancel_destroy(liar.tok);
		liar.tok = NULL;
	}
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- corruption */

static void test_a_head_far_ahead_of_tail_makes_producer_calls_ebadmsg(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	fill_up(p);
	store64(&ring->head, 1000);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_wait(p), -EBADMSG);
	/* Far behind is as bad. */
	store64(&ring->head, UINT64_MAX - 3);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EBADMSG);
	/* Repaired, the ring is as it was: full, every packet intact. */
	store64(&ring->head, 0);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EAGAIN);
	assert_int_equal(published(ring), 8);
	get(c, 0, 1);
	shut(p);
	shut(c);
}

static void test_a_garbage_head_is_caught_when_the_producer_next_looks(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	unsigned int i;
	int err = 0;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	put(p, 0, 1);
	store64(&ring->head, 0x8000000000000000ull);
	/* Within a ring's worth of sends the producer reloads head and stops. */
	for (i = 0; i < 9 && !err; i++)
		err = sluice_spsc_try_send(p, buf, 1);
	assert_int_equal(err, -EBADMSG);
	assert_true(published_from(ring, 0) <= 8);
	shut(p);
	shut(c);
}

static void test_a_head_moved_backwards_is_ebadmsg_not_a_full_ring(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	fill_up(p);
	get(c, 0, 1);
	get(c, 1, 1);
	put(p, 8, 1);	/* the producer has seen head at 2: one slot left */
	for (i = 0; i < 4; i++)
		iov[i] = (struct iovec){ buf, 1 };
	/* head at 1 takes that slot back: a look for more room must not. */
	store64(&ring->head, 1);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), -EBADMSG);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 4), -EBADMSG);
	assert_int_equal(sluice_spsc_reserve(p, iov, 4), -EBADMSG);
	assert_int_equal(sluice_spsc_wait(p), -EBADMSG);
	/* Repaired, the slot is there again. */
	store64(&ring->head, 2);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), 1);
	assert_int_equal(published(ring), 10);
	shut(p);
	shut(c);
}

static void test_attach_rejects_indices_more_than_a_ring_apart(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *c, *p = NULL;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	ring = ring_of(f, "q");
	store64(&ring->tail, 9);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &p), -EBADMSG);
	assert_null(p);
	/* The failed attach let go of the side. */
	store64(&ring->tail, 0);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	put(p, 1, 1);
	get(c, 1, 1);
	shut(p);
	shut(c);
}

static void test_a_tag_longer_than_a_slot_is_ebadmsg_and_consumes_nothing(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[2] = { { buf, 64 }, { buf, 64 } };
	static const uint32_t bad[] = { 65, 4096, UINT32_MAX };
	int64_t t0;
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	put(p, 0, 10);
	for (i = 0; i < 3; i++) {
		store64(tag_at(ring, 0), SLUICE_SPSC_TAG(0, bad[i]));
		t0 = h_now_ms();
		assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EBADMSG);
		assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EBADMSG);
		assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 2), -EBADMSG);
		assert_int_equal(sluice_spsc_recv_batch(c, iov, 2), -EBADMSG);
		assert_int_equal(sluice_spsc_try_peek(c, iov, 2), -EBADMSG);
		assert_int_equal(sluice_spsc_peek(c, iov, 2), -EBADMSG);
		h_assert_took(t0, 0, 2000);	/* none of them waited */
		assert_int_equal(load64(&ring->head), 0);
	}
	/* Repaired: the packet was never consumed. */
	store64(tag_at(ring, 0), SLUICE_SPSC_TAG(0, 10));
	get(c, 0, 10);
	shut(p);
	shut(c);
}

static void test_a_bad_tag_inside_a_batch_ends_the_batch_before_it(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char b[4][64];
	struct iovec iov[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	for (i = 0; i < 4; i++) {
		put(p, i, 20);
		iov[i] = (struct iovec){ b[i], 64 };
	}
	store64(tag_at(ring, 2), SLUICE_SPSC_TAG(2, 1000));
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 4), 2);
	assert_true(h_intact(b[0], 0, 20) && h_intact(b[1], 1, 20));
	assert_int_equal(sluice_spsc_try_recv(c, b[0], 64), -EBADMSG);
	assert_int_equal(load64(&ring->head), 2);
	shut(p);
	shut(c);
}

static void test_a_tag_of_another_lap_is_not_a_packet(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	/* Slot 0 claims index 8 (next lap) or 0xffffffff: neither is index 0. */
	store64(tag_at(ring, 0), SLUICE_SPSC_TAG(8, 5));
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	store64(tag_at(ring, 0), SLUICE_SPSC_TAG(0xffffffffull, 5));
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(load64(&ring->head), 0);
	put(p, 3, 5);
	get(c, 3, 5);
	shut(p);
	shut(c);
}

/* Corrupt a copy of the config with @poke, attach, restore. */
static int attach_with_config(struct h_fx *f, void (*poke)(struct sluice_spsc_ring *),
			      bool fix_csum)
{
	struct sluice_spsc_ring *ring = ring_of(f, "q"), saved;
	struct sluice_spsc *q = NULL;
	int err;

	memcpy(&saved, ring, offsetof(struct sluice_spsc_ring, tail));
	poke(ring);
	if (fix_csum)
		ring->csum = csum_of(ring);
	err = sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q);
	memcpy(ring, &saved, offsetof(struct sluice_spsc_ring, tail));
	if (!err)
		shut(q);
	assert_true(err || q);
	return err;
}

static void poke_count_3(struct sluice_spsc_ring *r) { r->slot_count = 3; }
static void poke_count_0(struct sluice_spsc_ring *r) { r->slot_count = 0; }
static void poke_count_big(struct sluice_spsc_ring *r) { r->slot_count = 1u << 31; }
static void poke_size_0(struct sluice_spsc_ring *r) { r->slot_size = 0; }
static void poke_size_big(struct sluice_spsc_ring *r) { r->slot_size = 128; }
static void poke_stride(struct sluice_spsc_ring *r) { r->stride = 32; }
static void poke_tags_off(struct sluice_spsc_ring *r) { r->tags_off += 64; }
static void poke_slots_off(struct sluice_spsc_ring *r) { r->slots_off = 1ull << 40; }
static void poke_size(struct sluice_spsc_ring *r) { r->size *= 2; }
static void poke_csum(struct sluice_spsc_ring *r) { r->csum ^= 1; }
static void poke_abi(struct sluice_spsc_ring *r) { r->abi = SLUICE_SPSC_ABI + 1; }
static void poke_magic(struct sluice_spsc_ring *r) { r->magic ^= 0x100; }
static void poke_magic_0(struct sluice_spsc_ring *r) { r->magic = 0; }
static void poke_nothing(struct sluice_spsc_ring *r) { (void)r; }

/* A whole consistent geometry, checksum and all, for 16 slots: too big. */
static void poke_bigger_ring(struct sluice_spsc_ring *r)
{
	uint64_t tags = (r->tags_off + 16 * 8 + 63) & ~63ull;

	r->slot_count = 16;
	r->slots_off = tags;
	r->size = tags + 16ull * r->stride;
}

static void test_attach_rejects_a_corrupted_config(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	/* Checksum left stale. */
	assert_int_equal(attach_with_config(f, poke_count_3, false), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size_big, false), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_csum, false), -EBADMSG);
	/* Checksum forged to match: the values themselves are checked. */
	assert_int_equal(attach_with_config(f, poke_count_3, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_count_0, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_count_big, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size_0, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size_big, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_stride, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_tags_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_slots_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_bigger_ring, true), -EBADMSG);
	/* And the untouched config attaches. */
	assert_int_equal(attach_with_config(f, poke_nothing, false), 0);
	shut(p);
}

static void test_attach_rejects_another_abi_or_magic_with_eproto(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(attach_with_config(f, poke_abi, true), -EPROTO);
	assert_int_equal(attach_with_config(f, poke_abi, false), -EPROTO);
	assert_int_equal(attach_with_config(f, poke_magic, false), -EPROTO);
	/* No magic yet: its creator is still at it. */
	assert_int_equal(attach_with_config(f, poke_magic_0, false), -EAGAIN);
	shut(p);
}

static void test_attach_to_an_object_of_another_type_is_eproto(void **state)
{
	struct h_fx *f = *state;
	struct sluice_spsc *q = NULL;
	uint64_t off;

	assert_int_equal(sluice_region_alloc(f->r, "raw", SLUICE_OBJ_RAW, 65536, 64, &off), 0);
	assert_int_equal(sluice_spsc_attach(f->r, "raw", SLUICE_SPSC_CONSUMER, NULL, &q), -EPROTO);
	assert_int_equal(sluice_region_alloc(f->r, "user", SLUICE_OBJ_USER, 65536, 64, &off), 0);
	assert_int_equal(sluice_spsc_attach(f->r, "user", SLUICE_SPSC_PRODUCER, NULL, &q), -EPROTO);
	/* A "ring" too small to hold a ring's header. */
	assert_int_equal(sluice_region_alloc(f->r, "tiny", SLUICE_OBJ_SPSC, 64, 64, &off), 0);
	assert_int_equal(sluice_spsc_attach(f->r, "tiny", SLUICE_SPSC_PRODUCER, NULL, &q), -EPROTO);
	assert_null(q);
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, spsc_setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* deadlines */
		T(test_a_peer_that_keeps_waking_us_cannot_hold_us_past_the_deadline),
		T(test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_deadline),
		T(test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_token),
		/* corruption */
		T(test_a_head_far_ahead_of_tail_makes_producer_calls_ebadmsg),
		T(test_a_garbage_head_is_caught_when_the_producer_next_looks),
		T(test_a_head_moved_backwards_is_ebadmsg_not_a_full_ring),
		T(test_attach_rejects_indices_more_than_a_ring_apart),
		T(test_a_tag_longer_than_a_slot_is_ebadmsg_and_consumes_nothing),
		T(test_a_bad_tag_inside_a_batch_ends_the_batch_before_it),
		T(test_a_tag_of_another_lap_is_not_a_packet),
		T(test_attach_rejects_a_corrupted_config),
		T(test_attach_rejects_another_abi_or_magic_with_eproto),
		T(test_attach_to_an_object_of_another_type_is_eproto),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("spsc_corrupt", tests, NULL, NULL);
}
