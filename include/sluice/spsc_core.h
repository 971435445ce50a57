/* SPDX-License-Identifier: MIT */
/*
 * SPSC ring internals, exposed only so that the fast path in spsc.h can be
 * inline.  Nothing here is API: use the functions in spsc.h.  The shared
 * layout is an ABI between processes (SLUICE_SPSC_ABI); the handle layout
 * is an ABI of libsluice.so.0.
 *
 * Who writes what in shared memory:
 *   config      the creator, once, before the ring is named in the region
 *   slot i      the producer: the packet's bytes
 *   tags[i]     the producer, after the bytes: publishes slot i
 *   tail        the producer: packets published (monotonic, never wraps),
 *               stored (release) after the tags; the consumer never polls
 *               it, only the eventfd bridge and tools read it
 *   head        the consumer: packets released (monotonic)
 *   prod.*      the producer, except seq (anyone, to wake it)
 *   cons.*      the consumer, except seq (anyone, to wake it)
 * Every value read from the other side is loaded once and checked.
 *
 * A packet is published by its slot's tag, (index + 1) << 32 | length,
 * stored with release after the bytes.  The consumer polls the tag of the
 * one slot it wants next, never an index the producer bumps per packet.
 * Tags sit in their own array, eight to a line, so that a 64-byte packet
 * fills exactly one line of its own (FastForward, PPoPP 2008, with the
 * tags moved out of the slots).
 */
#ifndef SLUICE_SPSC_CORE_H
#define SLUICE_SPSC_CORE_H

#include <stdatomic.h>
#include <stdint.h>

#define SLUICE_SPSC_MAGIC	0x3143535053534c53ull	/* "SLSSPSC1" in memory */
#define SLUICE_SPSC_ABI		1u

/* Bits of a side's ctl word. */
#define SLUICE_SPSC_ATTACHED	(1u << 0)	/* a process holds this side */
#define SLUICE_SPSC_CLOSED	(1u << 1)	/* it closed: no more from it */
#define SLUICE_SPSC_ARMED	(1u << 2)	/* it may sleep: peer must check waiting */
#define SLUICE_SPSC_STICKY	(1u << 3)	/* ARMED for good (no membarrier) */
#define SLUICE_SPSC_DEAD	(1u << 4)	/* its process died (liveness) */

/*
 * One side's control line: written rarely by its owner (attach, close,
 * going to sleep), read by the peer on every operation, so it stays in the
 * peer's cache.
 */
struct sluice_spsc_side {
	_Atomic uint32_t ctl;		/* SLUICE_SPSC_* */
	_Atomic uint32_t waiting;	/* threads of this side asleep or about to */
	_Atomic uint32_t seq;		/* futex word: bumped to wake this side */
	_Atomic int32_t pid;
	_Atomic uint64_t start;		/* pid's start time (pid reuse) */
};

struct sluice_spsc_ring {
	/* Configuration, immutable once the ring has a name. */
	uint64_t magic;
	uint32_t abi;
	uint32_t slot_count;		/* power of two */
	uint32_t slot_size;		/* largest packet */
	uint32_t stride;		/* bytes from slot to slot, multiple of 64 */
	uint64_t tags_off;		/* from the ring's start */
	uint64_t slots_off;		/* from the ring's start */
	uint64_t size;			/* the whole object */
	uint64_t csum;			/* FNV-1a of the fields above */

	/* Hot: each on its own line, written by one side only. */
	_Alignas(64) _Atomic uint64_t tail;
	_Alignas(64) _Atomic uint64_t head;

	_Alignas(64) struct sluice_spsc_side prod;
	_Alignas(64) struct sluice_spsc_side cons;
	/* slot_count tags at tags_off, slot_count slots of stride bytes at slots_off */
};

#define SLUICE_SPSC_TAG(idx, len) \
	((uint64_t)(uint32_t)((idx) + 1) << 32 | (uint32_t)(len))
/* Does @tag publish the packet of index @idx? */
#define SLUICE_SPSC_TAG_IS(tag, idx) \
	((uint32_t)((tag) >> 32) == (uint32_t)((idx) + 1))

#define SLUICE_SPSC_CSUM_LEN	__builtin_offsetof(struct sluice_spsc_ring, csum)

/* The layout is an ABI between processes: pin it. */
_Static_assert(__builtin_offsetof(struct sluice_spsc_ring, csum) == 48,
	       "spsc config moved");
_Static_assert(__builtin_offsetof(struct sluice_spsc_ring, tail) == 64,
	       "spsc tail moved");
_Static_assert(__builtin_offsetof(struct sluice_spsc_ring, head) == 128,
	       "spsc head moved");
_Static_assert(__builtin_offsetof(struct sluice_spsc_ring, prod) == 192,
	       "spsc producer line moved");
_Static_assert(__builtin_offsetof(struct sluice_spsc_ring, cons) == 256,
	       "spsc consumer line moved");
_Static_assert(sizeof(struct sluice_spsc_side) == 24, "spsc side changed");

/* The process-local handle.  Fields are private. */
struct sluice_spsc {
	struct sluice_spsc_ring *ring;
	struct sluice_spsc_side *self;	/* our side's control line */
	struct sluice_spsc_side *peer;	/* the other side's */
	_Atomic uint64_t *tags;		/* (index + 1) << 32 | length */
	unsigned char *slots;
	uint32_t mask;
	uint32_t slot_size;
	uint32_t stride;
	uint32_t count;
	/* Producer: next index to publish; consumer: next index to read. */
	uint64_t pos;
	/* Producer: head + count as last seen (room until there). */
	uint64_t limit;
	uint32_t held;			/* reserved (producer) or peeked (consumer) */
	uint32_t role;
	/* Waiting. */
	uint64_t timeout_ns;
	struct sluice_cancel *cancel;
	uint32_t spin_ns;		/* current spin budget */
	uint32_t spin_max_ns;
	uint32_t spin_fixed;		/* budget set by the user: do not adapt */
	uint32_t slip;			/* pauses before polling a busy frontier */
	struct sluice_region *region;
	void *ev;			/* eventfd bridge, if any */
	/* Liveness: the peer we watch, if a monitor was given. */
	struct sluice_liveness *live;
	uint64_t watch_id;
	int32_t watch_pid;		/* 0: not watching */
	uint64_t watch_start;
	/* A death the monitor could not mark (region lock busy): ours to. */
	_Atomic int32_t dead_pid;
	_Atomic uint64_t dead_start;
	/*
	 * The last sluice_spsc_wait() that ended ready: pos + 1 then (0:
	 * none since), its clock, and whether a try_ call found nothing
	 * after it, in which case the next wait carries on with that clock.
	 */
	uint64_t ready_pos;
	uint64_t ready_start;
	uint64_t ready_deadline;
	uint32_t ready_denied;
};

#endif /* SLUICE_SPSC_CORE_H */
