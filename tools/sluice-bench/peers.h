/* SPDX-License-Identifier: MIT */
/*
 * Peers that sluice-bench measures sluice against, built from other
 * projects' headers in files of their own, so that their compiler flags stay
 * apart (the Makefile gives peer_rte.o DPDK's, and peer_ck.o -DHAVE_CK).  Each
 * peer builds without its package too: then it says so, and the suite skips
 * its column.
 *
 * The loops live with the peers rather than behind a call per packet, so
 * that each peer's inline fast path is inlined into its loop, as in a real
 * user.
 */
#ifndef SLUICE_BENCH_PEERS_H
#define SLUICE_BENCH_PEERS_H

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A peer is a table of calls.  One built without its package says why in
 * .missing and has no calls: its suite skips its column.
 */

/*
 * DPDK's rte_ring, single producer and single consumer, 64-byte elements
 * (rte_ring_*_elem), in memory the caller maps shared before forking.
 * No EAL: rte_ring_init() on our own memory needs none.
 */
struct peer_spsc {
	const char *missing;		/* NULL: built in */
	const char *(*version)(void);	/* "DPDK 22.11.11" */
	/* Bytes a ring of @count 64-byte elements takes. */
	size_t (*size)(unsigned int count);
	/*
	 * Make an empty ring of @count (a power of two; @count - 1 usable)
	 * 64-byte elements at @mem, 64-byte aligned.  0 or a negative errno.
	 */
	int (*init)(void *mem, unsigned int count);
	/*
	 * Producer: enqueue @n 64-byte packets, numbered from 0 in their
	 * first eight bytes, in bursts of @burst (1 or 32), spinning while
	 * the ring is full.  0 or -EINVAL.
	 */
	int (*produce)(void *mem, uint64_t n, unsigned int burst);
	/*
	 * Consumer: dequeue @n packets in bursts of up to @burst, spinning
	 * while the ring is empty, and count in @bad those whose number is
	 * not the next one.
	 */
	int (*consume)(void *mem, uint64_t n, unsigned int burst, uint64_t *bad);
};

extern const struct peer_spsc peer_rte_spsc;

/* ------------------------------------------------ many writers, many readers */

/*
 * The chan suite runs a channel and its peers for a fixed time, not a fixed
 * count: with more processes than CPUs a ring can stall for as long as the
 * scheduler likes, and a count might never be reached in a sane time.
 * Every process loops until the parent sets PEER_STOP, noting how far it
 * had got when it saw each phase begin; the parent divides the frames done
 * between the two marks by the time between the two stores.
 */
#define PEER_WRITERS_MAX	8
#define PEER_BURST		32u	/* frames per call, every peer */

enum peer_phase {
	PEER_WARM = 0,		/* running, not counted yet */
	PEER_MEASURE = 1,	/* counted */
	PEER_STOP = 2,		/* writers stop; readers take what is left */
};

/* In memory shared by the parent and every writer and reader. */
struct peer_ctl {
	/* Written three times a rep by the parent, read by everyone each call. */
	_Alignas(64) _Atomic uint32_t phase;
	/* Writers that have stopped, so that readers know when a ring is done. */
	_Alignas(64) _Atomic uint32_t writers_done;
};

/* One process's counts, in frames: its own memory until it reports them. */
struct peer_count {
	uint64_t at_start;	/* done when it first saw PEER_MEASURE (or later) */
	uint64_t at_end;	/* done when it first saw PEER_STOP */
	uint64_t total;		/* done in all */
	uint64_t bad;		/* received torn, from nowhere, or out of order */
	uint32_t seen;		/* the last phase it saw */
};

/*
 * Note the phase after @n frames; true once it is PEER_STOP.  A process
 * preempted through a phase change notes it late, but it did nothing while
 * it was off the CPU, so its marks are as good as on time.
 */
static inline bool peer_tick(struct peer_ctl *ctl, struct peer_count *c, uint64_t n)
{
	/* Relaxed: the phase marks time only; nothing is published through it. */
	uint32_t p = atomic_load_explicit(&ctl->phase, memory_order_relaxed);

	if (__builtin_expect(p != c->seen, 0)) {
		if (c->seen == PEER_WARM)
			c->at_start = n;
		if (p == PEER_STOP)
			c->at_end = n;
		c->seen = p;
	}
	return p == PEER_STOP;
}

/*
 * A 64-byte frame as every writer sends it: its writer, that writer's own
 * count, and a check word at the other end, so that a reader notices a
 * frame torn or taken from the wrong place.
 */
struct peer_frame {
	uint64_t seq;		/* the writer's frames before this one */
	uint32_t writer;	/* 0 .. writers - 1 */
	uint32_t zero;
	uint64_t fill[5];
	uint64_t check;		/* peer_frame_check(seq, writer) */
};

_Static_assert(sizeof(struct peer_frame) == 64, "a frame is 64 bytes");

static inline uint64_t peer_frame_check(uint64_t seq, uint32_t writer)
{
	return ~seq ^ ((uint64_t)writer << 56) ^ 0x5a5a5a5a5a5aull;
}

static inline void peer_frame_set(struct peer_frame *f, uint32_t writer, uint64_t seq)
{
	f->seq = seq;
	f->writer = writer;
	f->check = peer_frame_check(seq, writer);
}

/*
 * Is @f whole, from one of @writers writers, and after the last frame this
 * reader saw from its writer?  @next holds, per writer, the least sequence
 * number that may come next.  @every: this reader must see every frame (a
 * broadcast), so the next one exactly; otherwise (a frame goes to one of
 * many consumers) any later one.
 */
static inline bool peer_frame_take(const struct peer_frame *f, unsigned int writers,
				   uint64_t *next, bool every)
{
	uint64_t seq = f->seq;
	uint32_t w = f->writer;

	if (w >= writers || f->check != peer_frame_check(seq, w))
		return false;
	if (every ? seq != next[w] : seq < next[w]) {
		/* Take up the count again from here, so one slip is one bad frame. */
		next[w] = seq + 1;
		return false;
	}
	next[w] = seq + 1;
	return true;
}

/* A many-producer, many-consumer ring of 64-byte frames (the chan suite). */
struct peer_mpmc {
	const char *missing;		/* NULL: built in */
	const char *(*version)(void);
	/* Bytes a ring of @count frames takes. */
	size_t (*size)(unsigned int count);
	/* An empty ring of @count (a power of two; @count - 1 usable) frames at @mem. */
	int (*init)(void *mem, unsigned int count);
	/*
	 * Writer @writer: enqueue numbered frames until PEER_STOP, then count
	 * itself in ctl->writers_done.  A burst cut short by PEER_STOP counts
	 * the frames that went in.
	 */
	int (*produce)(void *mem, struct peer_ctl *ctl, unsigned int writer,
		       struct peer_count *c);
	/* Reader: see peer_consume(). */
	int (*consume)(void *mem, struct peer_ctl *ctl, unsigned int writers,
		       struct peer_count *c);
};

/*
 * rte_ring in its default multi-producer, multi-consumer mode (flags 0 at
 * rte_ring_init()), bursts of PEER_BURST: rte_ring_mp_enqueue_burst_elem()
 * and rte_ring_mc_dequeue_burst_elem(), spinning with rte_pause() while the
 * ring is full or empty, as a DPDK application does.
 */
extern const struct peer_mpmc peer_rte_mpmc;

/*
 * Concurrency Kit's ck_ring, multi-producer and multi-consumer, typed for
 * struct peer_frame (CK_RING_PROTOTYPE): ck_ring_enqueue_mpmc_frame() and
 * ck_ring_dequeue_mpmc_frame() copy the 64 bytes into and out of the ring,
 * as rte_ring's _elem calls do, where the plain pointer calls would move
 * only a pointer and leave the frame to a pool of our own.  ck_ring has
 * no burst call: a burst is PEER_BURST calls, each a compare-and-swap.
 * Header only; built with -DHAVE_CK when its header is installed.
 */
extern const struct peer_mpmc peer_ck;

/*
 * A reader's loop, every MPMC peer's: @take dequeues up to PEER_BURST
 * frames into its array, @pause waits a moment.  Frames of @writers
 * writers are taken and checked until PEER_STOP has come, every writer is
 * done and the ring is empty.  After PEER_STOP it yields its CPU while the
 * ring is empty, so that a writer sharing the CPU finishes sooner; nothing
 * is counted then.  Inlined with constant @take and @pause, so each peer's
 * own calls are inlined into it, as in its users' code.
 */
static inline __attribute__((always_inline)) int
peer_consume(void *ring, struct peer_ctl *ctl, unsigned int writers, struct peer_count *c,
	     unsigned int (*take)(void *ring, struct peer_frame *f), void (*pause)(void))
{
	struct peer_frame f[PEER_BURST];
	uint64_t next[PEER_WRITERS_MAX] = { 0 }, n = 0, bad = 0;
	unsigned int i, k;
	bool last = false, stop;

	if (writers > PEER_WRITERS_MAX)
		return -EINVAL;
	for (;;) {
		stop = peer_tick(ctl, c, n);
		k = take(ring, f);
		if (k) {
			/* Checked after the burst, as rte_ring's apps do. */
			for (i = 0; i < k; i++)
				bad += !peer_frame_take(&f[i], writers, next, false);
			n += k;
			continue;
		}
		if (last)
			break;
		/*
		 * Empty.  Once every writer is done (acquire: pairs with the
		 * writers' release, so their last enqueues are visible), the
		 * next empty dequeue means empty for good.
		 */
		if (atomic_load_explicit(&ctl->writers_done, memory_order_acquire) == writers)
			last = true;
		else if (stop)
			sched_yield();	/* uncounted now: let a writer on this CPU finish */
		else
			pause();
	}
	peer_tick(ctl, c, n);
	c->total = n;
	c->bad = bad;
	return 0;
}

#endif /* SLUICE_BENCH_PEERS_H */
