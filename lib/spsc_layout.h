/* SPDX-License-Identifier: MIT */
/*
 * An SPSC ring's layout in shared memory: an ABI between processes
 * (SLUICE_SPSC_ABI).  Private to the library and its tests; what the
 * inline fast path touches (a slot's tag, a side's ctl bits, head) is in
 * include/sluice/spsc_core.h.
 *
 * Who writes what in shared memory:
 *   config      the creator, once, before the ring is named in the region
 *   slot i      the producer: the packet's bytes
 *   tags[i]     the producer, after the bytes: publishes slot i
 *   tail        the producer: packets published (monotonic, never wraps),
 *               announced (release) after the tags, when its peer may be
 *               asleep and at close; the consumer never polls it, only
 *               the eventfd bridge and tools read it
 *   head        the consumer: packets released (monotonic)
 *   prod.*      the producer, except seq (anyone, to wake it)
 *   cons.*      the consumer, except seq (anyone, to wake it)
 * Every value read from the other side is loaded once and checked.
 */
#ifndef SLUICE_SPSC_LAYOUT_H
#define SLUICE_SPSC_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#include <sluice/spsc_core.h>

#define SLUICE_SPSC_MAGIC	0x3143535053534c53ull	/* "SLSSPSC1" in memory */
#define SLUICE_SPSC_ABI		1u

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

#define SLUICE_SPSC_CSUM_LEN	__builtin_offsetof(struct sluice_spsc_ring, csum)

/* Pinned: processes of other builds share it; the magic first, where
 * sluice__obj_config() reads it for every kind. */
#define SPSC_AT(f, off)	(__builtin_offsetof(struct sluice_spsc_ring, f) == (off))
_Static_assert(SPSC_AT(magic, 0) && SPSC_AT(csum, 48), "spsc configuration moved");
_Static_assert(SPSC_AT(tail, 64) && SPSC_AT(head, 128) && SPSC_AT(prod, 192) &&
	       SPSC_AT(cons, 256), "spsc hot lines moved");
#undef SPSC_AT
_Static_assert(sizeof(struct sluice_spsc_side) == 24, "spsc side changed");

#endif /* SLUICE_SPSC_LAYOUT_H */
