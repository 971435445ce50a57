// SPDX-License-Identifier: MIT
/*
 * The rte_ring peer: DPDK's ring as a DPDK application drives it, 64-byte
 * elements, spinning with rte_pause() on a full or empty ring: single
 * producer and single consumer with bursts of 1 and 32 (the spsc suite),
 * and many producers and consumers with bursts of 32 (the chan suite).
 * See peers.h.
 *
 * Built with -DHAVE_DPDK and DPDK's cflags when pkg-config finds libdpdk
 * (the Makefile); otherwise every call says the peer is missing.
 */
#include <errno.h>
#include <sched.h>
#include <string.h>

#include "peers.h"

#define ESIZE	64u	/* bytes per element: one packet */
#define BURST	32u

#ifdef HAVE_DPDK

/* DPDK's headers are not written for our warning flags. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wpointer-arith"
#pragma GCC diagnostic ignored "-Wcast-qual"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_version.h>
#pragma GCC diagnostic pop

struct pkt {
	uint64_t seq;
	unsigned char pad[ESIZE - sizeof(uint64_t)];
};

_Static_assert(sizeof(struct pkt) == ESIZE, "a packet is one element");

static const char *rte_version_str(void)
{
	return rte_version();
}

static size_t ring_size(unsigned int count)
{
	ssize_t sz = rte_ring_get_memsize_elem(ESIZE, count);

	return sz < 0 ? 0 : (size_t)sz;
}

static int spsc_init(void *mem, unsigned int count)
{
	return rte_ring_init(mem, "sluice-bench", count, RING_F_SP_ENQ | RING_F_SC_DEQ);
}

/*
 * One loop per burst size, @burst a constant where it is inlined, as in an
 * application with a fixed burst.  A partial burst is finished before the
 * next starts, so no packet is dropped.
 */
static inline __attribute__((always_inline)) void
produce(struct rte_ring *r, uint64_t n, unsigned int burst)
{
	struct pkt p[BURST];
	unsigned int i, done, k;
	uint64_t seq = 0;

	memset(p, 0, sizeof(p));
	while (seq < n) {
		k = n - seq < burst ? (unsigned int)(n - seq) : burst;
		for (i = 0; i < k; i++)
			p[i].seq = seq + i;
		for (done = 0; done < k; ) {
			i = rte_ring_sp_enqueue_burst_elem(r, &p[done], ESIZE, k - done, NULL);
			if (!i)
				rte_pause();
			done += i;
		}
		seq += k;
	}
}

static inline __attribute__((always_inline)) uint64_t
consume(struct rte_ring *r, uint64_t n, unsigned int burst)
{
	struct pkt p[BURST];
	unsigned int i, k, want;
	uint64_t seq = 0, bad = 0;

	while (seq < n) {
		want = n - seq < burst ? (unsigned int)(n - seq) : burst;
		k = rte_ring_sc_dequeue_burst_elem(r, p, ESIZE, want, NULL);
		if (!k) {
			rte_pause();
			continue;
		}
		for (i = 0; i < k; i++)
			bad += p[i].seq != seq + i;
		seq += k;
	}
	return bad;
}

static int spsc_produce(void *mem, uint64_t n, unsigned int burst)
{
	if (burst == 1)
		produce(mem, n, 1);
	else if (burst == BURST)
		produce(mem, n, BURST);
	else
		return -EINVAL;
	return 0;
}

static int spsc_consume(void *mem, uint64_t n, unsigned int burst, uint64_t *bad)
{
	if (burst == 1)
		*bad = consume(mem, n, 1);
	else if (burst == BURST)
		*bad = consume(mem, n, BURST);
	else
		return -EINVAL;
	return 0;
}

const struct peer_spsc peer_rte_spsc = {
	.version = rte_version_str,
	.size = ring_size,
	.init = spsc_init,
	.produce = spsc_produce,
	.consume = spsc_consume,
};

/* ------------------------------------------------ many writers, many readers */

_Static_assert(sizeof(struct peer_frame) == ESIZE, "a frame is one element");
_Static_assert(PEER_BURST == BURST, "one burst size");

static int mpmc_init(void *mem, unsigned int count)
{
	/* Flags 0: RTE_RING_SYNC_MT at both ends, what rte_ring_create() gives. */
	return rte_ring_init(mem, "sluice-bench-mpmc", count, 0);
}

static int mpmc_produce(void *mem, struct peer_ctl *ctl, unsigned int writer,
			struct peer_count *c)
{
	struct rte_ring *r = mem;
	struct peer_frame f[BURST];
	unsigned int i, done;
	uint64_t seq = 0;

	memset(f, 0, sizeof(f));
	while (!peer_tick(ctl, c, seq)) {
		for (i = 0; i < BURST; i++)
			peer_frame_set(&f[i], writer, seq + i);
		/* Finish the burst, unless told to stop while the ring is full. */
		for (done = 0; done < BURST; ) {
			i = rte_ring_mp_enqueue_burst_elem(r, &f[done], ESIZE, BURST - done,
							   NULL);
			done += i;
			if (i)
				continue;
			if (peer_tick(ctl, c, seq + done))
				break;
			rte_pause();
		}
		seq += done;
	}
	c->total = seq;
	/* Pairs with the readers' acquire: every enqueue above is complete. */
	atomic_fetch_add_explicit(&ctl->writers_done, 1, memory_order_release);
	return 0;
}

static inline unsigned int mpmc_take(void *mem, struct peer_frame *f)
{
	return rte_ring_mc_dequeue_burst_elem(mem, f, ESIZE, BURST, NULL);
}

static inline void mpmc_pause(void)
{
	rte_pause();
}

static int mpmc_consume(void *mem, struct peer_ctl *ctl, unsigned int writers,
			struct peer_count *c)
{
	return peer_consume(mem, ctl, writers, c, mpmc_take, mpmc_pause);
}

const struct peer_mpmc peer_rte_mpmc = {
	.version = rte_version_str,
	.size = ring_size,
	.init = mpmc_init,
	.produce = mpmc_produce,
	.consume = mpmc_consume,
};

#else /* !HAVE_DPDK */

#define MISSING	"libdpdk-dev not installed (make bench installs it)"

const struct peer_spsc peer_rte_spsc = { .missing = MISSING };
const struct peer_mpmc peer_rte_mpmc = { .missing = MISSING };

#endif /* HAVE_DPDK */
