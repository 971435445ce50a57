/* SPDX-License-Identifier: MIT */
/*
 * Peers that sluice-bench measures sluice against, built from other
 * projects' headers in files of their own, so that their compiler flags stay
 * apart (the Makefile gives peer_rte.o DPDK's).  Each peer builds without its
 * package too: then it says so, and the suite skips its column.
 *
 * The loops live here rather than behind a call per packet, so that the
 * peer's inline fast path is inlined into its loop, as in a real user.
 */
#ifndef SLUICE_BENCH_PEERS_H
#define SLUICE_BENCH_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * DPDK's rte_ring, single producer and single consumer, 64-byte elements
 * (rte_ring_*_elem), in memory the caller maps shared before forking.
 * No EAL: rte_ring_init() on our own memory needs none.
 */

/* Is the rte_ring peer built in?  If not, @why says why. */
bool peer_rte_available(char *why, size_t len);
/* "DPDK 22.11.11", or "" without DPDK. */
const char *peer_rte_version(void);
/* Bytes a ring of @count 64-byte elements takes, 0 without DPDK. */
size_t peer_rte_ring_size(unsigned int count);
/*
 * Make an empty SP/SC ring of @count (a power of two; @count - 1 usable)
 * 64-byte elements at @mem, 64-byte aligned.  Returns 0 or a negative errno.
 */
int peer_rte_ring_init(void *mem, unsigned int count);
/*
 * Producer: enqueue @n 64-byte packets, numbered from 0 in their first
 * eight bytes, in bursts of @burst (1 or 32; rte_ring_sp_enqueue_burst_elem),
 * spinning with rte_pause() while the ring is full.  Returns 0 or -EINVAL.
 */
int peer_rte_produce(void *mem, uint64_t n, unsigned int burst);
/*
 * Consumer: dequeue @n packets in bursts of up to @burst
 * (rte_ring_sc_dequeue_burst_elem), spinning with rte_pause() while the ring
 * is empty, and count in @bad those whose number is not the next one.
 */
int peer_rte_consume(void *mem, uint64_t n, unsigned int burst, uint64_t *bad);

#endif /* SLUICE_BENCH_PEERS_H */
