// SPDX-License-Identifier: MIT
/*
 * The rte_ring peer: DPDK's ring as a DPDK application drives it, single
 * producer and single consumer, 64-byte elements, bursts of 1 and 32,
 * spinning with rte_pause() on a full or empty ring.  See peers.h.
 *
 * Built with -DHAVE_DPDK and DPDK's cflags when pkg-config finds libdpdk
 * (the Makefile); otherwise every call says the peer is missing.
 */
#include <errno.h>
#include <stdio.h>
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

bool peer_rte_available(char *why, size_t len)
{
	(void)why;
	(void)len;
	return true;
}

const char *peer_rte_version(void)
{
	return rte_version();
}

size_t peer_rte_ring_size(unsigned int count)
{
	ssize_t sz = rte_ring_get_memsize_elem(ESIZE, count);

	return sz < 0 ? 0 : (size_t)sz;
}

int peer_rte_ring_init(void *mem, unsigned int count)
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

int peer_rte_produce(void *mem, uint64_t n, unsigned int burst)
{
	if (burst == 1)
		produce(mem, n, 1);
	else if (burst == BURST)
		produce(mem, n, BURST);
	else
		return -EINVAL;
	return 0;
}

int peer_rte_consume(void *mem, uint64_t n, unsigned int burst, uint64_t *bad)
{
	if (burst == 1)
		*bad = consume(mem, n, 1);
	else if (burst == BURST)
		*bad = consume(mem, n, BURST);
	else
		return -EINVAL;
	return 0;
}

#else /* !HAVE_DPDK */

bool peer_rte_available(char *why, size_t len)
{
	snprintf(why, len, "libdpdk-dev not installed (make bench installs it)");
	return false;
}

const char *peer_rte_version(void)
{
	return "";
}

size_t peer_rte_ring_size(unsigned int count)
{
	(void)count;
	return 0;
}

int peer_rte_ring_init(void *mem, unsigned int count)
{
	(void)mem;
	(void)count;
	return -ENOSYS;
}

int peer_rte_produce(void *mem, uint64_t n, unsigned int burst)
{
	(void)mem;
	(void)n;
	(void)burst;
	return -ENOSYS;
}

int peer_rte_consume(void *mem, uint64_t n, unsigned int burst, uint64_t *bad)
{
	(void)mem;
	(void)n;
	(void)burst;
	*bad = 0;
	return -ENOSYS;
}

#endif /* HAVE_DPDK */
