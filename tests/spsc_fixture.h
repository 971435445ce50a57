/* SPDX-License-Identifier: MIT */
/*
 * The SPSC test programs' fixture: rings made and attached for a test
 * (and closed for it if an assert fails), packets sent and received
 * whole, and the ring's shared memory found the way any process would.
 *
 * Included by the test_spsc*.c programs only.  Its functions are static
 * inline so that each program carries just what it uses, and the other
 * test programs (which link every object of tests-common-y) none of it.
 */
#ifndef SLUICE_TESTS_SPSC_FIXTURE_H
#define SLUICE_TESTS_SPSC_FIXTURE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sluice/spsc.h>

#include "frames.h"
#include "harness.h"
#include "internal.h"
#include "spsc_internal.h"

#define MIB		(1024ul * 1024)
#define REGION_SIZE	(8 * MIB)
#define CHILD_TIMEOUT	60	/* seconds before a hung side is killed */
#define MS		1000000ull	/* nanoseconds */

/* ---------------------------------------------------------------- fixture */

/* cmocka setup: the test's own region (see h_fx_setup()). */
static inline int spsc_setup(void **state)
{
	return h_fx_setup(state, REGION_SIZE);
}

static inline void close_spsc(void *q)
{
	sluice_spsc_close(q);
}

/* sluice_spsc_close(), and forget the handle. */
static inline void shut(struct sluice_spsc *q)
{
	h_untrack(q);
	sluice_spsc_close(q);
}

/* ---------------------------------------------------------------- rings */

static inline struct sluice_spsc *make(struct h_fx *f, const char *obj, uint32_t count,
				       uint32_t size, enum sluice_spsc_role role,
				       const struct sluice_spsc_opts *opts)
{
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_create(f->r, obj, count, size, role, opts, &q), 0);
	assert_non_null(q);
	h_track(q, close_spsc);
	return q;
}

static inline struct sluice_spsc *join(struct h_fx *f, const char *obj,
				       enum sluice_spsc_role role,
				       const struct sluice_spsc_opts *opts)
{
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_attach(f->r, obj, role, opts, &q), 0);
	assert_non_null(q);
	h_track(q, close_spsc);
	return q;
}

/* A ring "q" of @count slots of @size bytes: producer made, consumer attached. */
static inline void make_pair(struct h_fx *f, uint32_t count, uint32_t size,
			     const struct sluice_spsc_opts *opts,
			     struct sluice_spsc **p, struct sluice_spsc **c)
{
	*p = make(f, "q", count, size, SLUICE_SPSC_PRODUCER, opts);
	*c = join(f, "q", SLUICE_SPSC_CONSUMER, opts);
}

/* The ring's shared memory, found the way any process would. */
static inline struct sluice_spsc_ring *ring_of(struct h_fx *f, const char *obj)
{
	struct sluice_obj_info info;
	struct sluice_spsc_ring *ring;

	assert_int_equal(sluice_region_find(f->r, obj, &info), 0);
	assert_int_equal(info.type, SLUICE_OBJ_SPSC);
	ring = sluice_region_at(f->r, info.offset, info.size);
	assert_non_null(ring);
	return ring;
}

static inline _Atomic uint64_t *tag_at(struct sluice_spsc_ring *ring, uint64_t idx)
{
	return (_Atomic uint64_t *)((unsigned char *)ring + ring->tags_off) +
	       (idx & (ring->slot_count - 1));
}

static inline unsigned char *slot_at(struct sluice_spsc_ring *ring, uint64_t idx)
{
	return (unsigned char *)ring + ring->slots_off +
	       (size_t)(idx & (ring->slot_count - 1)) * ring->stride;
}

static inline uint64_t csum_of(const struct sluice_spsc_ring *ring)
{
	size_t from = offsetof(struct sluice_spsc_ring, abi);

	return sluice__fnv1a((const unsigned char *)ring + from,
			     SLUICE_SPSC_CSUM_LEN - from);
}

static inline uint64_t load64(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

static inline void store64(_Atomic uint64_t *p, uint64_t v)
{
	atomic_store_explicit(p, v, memory_order_release);
}

/*
 * Packets published from @idx on, counted as a takeover counts them: over
 * the tags.  tail is no count, only the producer's last announcement.
 */
static inline uint64_t published_from(struct sluice_spsc_ring *ring, uint64_t idx)
{
	uint64_t from = idx;

	while (idx - from < ring->slot_count &&
	       SLUICE_SPSC_TAG_IS(load64(tag_at(ring, idx)), idx))
		idx++;
	return idx;
}

/* The producer's position: packets published since the ring was made. */
static inline uint64_t published(struct sluice_spsc_ring *ring)
{
	return published_from(ring, load64(&ring->head));
}

static inline uint32_t ctl_of(struct sluice_spsc_side *s)
{
	return atomic_load_explicit(&s->ctl, memory_order_acquire);
}

/* ---------------------------------------------------------------- packets */

/* Length of packet @seq: @max, or anything from 0 to @max when @random. */
static inline size_t len_of(uint64_t seq, size_t max, bool random)
{
	return random ? h_mix(seq ^ 0x5eed) % (max + 1) : max;
}

/* Send packet @seq of @len bytes, without waiting. */
static inline void put(struct sluice_spsc *p, uint64_t seq, size_t len)
{
	unsigned char buf[4096];

	assert_true(len <= sizeof(buf));
	h_fill(buf, seq, len);
	assert_int_equal(sluice_spsc_try_send(p, buf, len), 0);
}

/* Receive one packet, which must be number @seq of @len bytes. */
static inline void get(struct sluice_spsc *c, uint64_t seq, size_t len)
{
	unsigned char buf[4096];

	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), (int)len);
	assert_true(h_intact(buf, seq, len));
}

/* Somewhere to put what a test receives and does not look at. */
static unsigned char scratch[4096] __attribute__((unused));

static inline void fill_up(struct sluice_spsc *p)
{
	uint32_t i;

	for (i = 0; i < sluice_spsc_slot_count(p); i++)
		put(p, i, 1);
}

/* For sides too: NULL if @obj is not there. */
static inline struct sluice_spsc_ring *ring_in(struct sluice_region *r, const char *obj)
{
	struct sluice_obj_info info;

	if (sluice_region_find(r, obj, &info))
		return NULL;
	return sluice_region_at(r, info.offset, info.size);
}

/* ---------------------------------------------------------------- two sides */

/* Run @a and @b at once, as the two sides of a test (h_run_sides()). */
static inline void run_pair(int (*a)(void *), int (*b)(void *), void *arg,
			    unsigned int timeout_s)
{
	const struct h_side s[2] = { { a, arg }, { b, arg } };

	h_run_sides(s, 2, timeout_s);
}

/*
 * Whether @obj has been made, in the region's struct h_sync: a side
 * attaches only to a finished ring (racing the creation is a test of its
 * own).
 */
static inline _Atomic uint32_t *made_flag(struct sluice_region *r, const char *obj)
{
	static const char *const names[] = { "stream", "ping", "pong", "q" };
	struct h_sync *sy = h_sync_of(r);
	unsigned int i;

	for (i = 0; sy && i < 4; i++)
		if (!strcmp(obj, names[i]))
			return &sy->made[i];
	return NULL;
}

/* Create @obj as one side and tell the other side it is there. */
static inline int make_and_tell(struct sluice_region *r, const char *obj, uint32_t count,
				uint32_t size, enum sluice_spsc_role role,
				const struct sluice_spsc_opts *opts, struct sluice_spsc **q)
{
	_Atomic uint32_t *made = made_flag(r, obj);
	int err;

	if (!made)
		return -ENOENT;
	err = sluice_spsc_create(r, obj, count, size, role, opts, q);
	/* Pairs with the acquire in attach_when_made(). */
	if (!err)
		atomic_store_explicit(made, 1, memory_order_release);
	return err;
}

/* Wait for the other side to have made @obj, then attach to it. */
static inline int attach_when_made(struct sluice_region *r, const char *obj,
				   enum sluice_spsc_role role,
				   const struct sluice_spsc_opts *opts,
				   struct sluice_spsc **q)
{
	_Atomic uint32_t *made = made_flag(r, obj);
	int64_t t0 = h_now_ms();

	if (!made)
		return -ENOENT;
	while (!atomic_load_explicit(made, memory_order_acquire)) {
		if (h_now_ms() - t0 > 10000)
			return -ETIMEDOUT;
		h_sleep_ms(1);
	}
	return sluice_spsc_attach(r, obj, role, opts, q);
}

#endif /* SLUICE_TESTS_SPSC_FIXTURE_H */
