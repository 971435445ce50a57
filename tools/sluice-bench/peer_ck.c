// SPDX-License-Identifier: MIT
/*
 * The ck_ring peer: Concurrency Kit's ring, many producers and many
 * consumers, each 64-byte frame copied into the ring and out of it through
 * the typed calls CK_RING_PROTOTYPE makes, spinning with ck_pr_stall() on
 * a full or empty ring.  See peers.h for why typed and not pointers.
 *
 * ck_ring is a header; the Makefile defines HAVE_CK when it is installed
 * (libck-dev).  Otherwise every call says the peer is missing.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "peers.h"

#ifndef CK_PKG_VERSION
#define CK_PKG_VERSION	""
#endif

#ifdef HAVE_CK

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <ck_pr.h>
#include <ck_ring.h>
#pragma GCC diagnostic pop

/* ck_ring_{enqueue,dequeue}_mpmc_frame() and the rest, for 64-byte frames. */
CK_RING_PROTOTYPE(frame, peer_frame)

/*
 * The ring's indices, then its slots on lines of their own.  Nothing in
 * either is a pointer, so every process may map it anywhere.
 */
struct ck_shared {
	struct ck_ring ring;
	_Alignas(64) struct peer_frame slot[];
};

static const char *ck_version(void)
{
	return CK_PKG_VERSION;
}

static size_t ck_size(unsigned int count)
{
	return sizeof(struct ck_shared) + (size_t)count * sizeof(struct peer_frame);
}

static int ck_init(void *mem, unsigned int count)
{
	struct ck_shared *s = mem;

	if (count < 2 || (count & (count - 1)))
		return -EINVAL;
	ck_ring_init(&s->ring, count);
	return 0;
}

static int ck_produce(void *mem, struct peer_ctl *ctl, unsigned int writer,
		      struct peer_count *c)
{
	struct ck_shared *s = mem;
	struct peer_frame f;
	unsigned int i;
	uint64_t seq = 0;
	bool stop = false;

	memset(&f, 0, sizeof(f));
	/* A burst: PEER_BURST calls, then a look at the phase, as rte_ring. */
	while (!stop && !peer_tick(ctl, c, seq)) {
		for (i = 0; i < PEER_BURST; i++) {
			peer_frame_set(&f, writer, seq);
			while (!ck_ring_enqueue_mpmc_frame(&s->ring, s->slot, &f)) {
				stop = peer_tick(ctl, c, seq);
				if (stop)
					break;
				ck_pr_stall();
			}
			if (stop)
				break;
			seq++;
		}
	}
	c->total = seq;
	/* Pairs with the readers' acquire: every enqueue above is complete. */
	atomic_fetch_add_explicit(&ctl->writers_done, 1, memory_order_release);
	return 0;
}

/* Up to a burst, one call a frame. */
static inline unsigned int ck_take(void *mem, struct peer_frame *f)
{
	struct ck_shared *s = mem;
	unsigned int k;

	for (k = 0; k < PEER_BURST; k++)
		if (!ck_ring_dequeue_mpmc_frame(&s->ring, s->slot, &f[k]))
			break;
	return k;
}

static inline void ck_pause(void)
{
	ck_pr_stall();
}

static int ck_consume(void *mem, struct peer_ctl *ctl, unsigned int writers,
		      struct peer_count *c)
{
	return peer_consume(mem, ctl, writers, c, ck_take, ck_pause);
}

const struct peer_mpmc peer_ck = {
	.version = ck_version,
	.size = ck_size,
	.init = ck_init,
	.produce = ck_produce,
	.consume = ck_consume,
};

#else /* !HAVE_CK */

const struct peer_mpmc peer_ck = {
	.missing = "libck-dev (Concurrency Kit) not installed: no ck_ring.h",
};

#endif /* HAVE_CK */
