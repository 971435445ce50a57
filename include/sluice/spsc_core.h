/* SPDX-License-Identifier: MIT */
/*
 * What the inline fast path of spsc.h reads and writes, exposed only so
 * that it can be inline.  Nothing here is API: use the functions in
 * spsc.h.  Two ABIs meet here:
 *
 *  - between processes (SLUICE_SPSC_ABI; the rest of the layout is
 *    private to the library): a slot's tag, a side's ctl bits and the
 *    consumer's head, which the inline calls read and write in shared
 *    memory;
 *  - of libsluice.so.0: struct sluice_spsc, the part of a ring handle the
 *    inline calls use, pinned by the asserts below.  The rest of the
 *    handle is the library's own.
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
#include <stddef.h>
#include <stdint.h>

/* Bits of a side's ctl word. */
#define SLUICE_SPSC_ATTACHED	(1u << 0)	/* a process holds this side */
#define SLUICE_SPSC_CLOSED	(1u << 1)	/* it closed: no more from it */
#define SLUICE_SPSC_ARMED	(1u << 2)	/* it may sleep: peer must check waiting */
#define SLUICE_SPSC_STICKY	(1u << 3)	/* ARMED for good (no membarrier) */
#define SLUICE_SPSC_DEAD	(1u << 4)	/* its process died (liveness) */

#define SLUICE_SPSC_TAG(idx, len) \
	((uint64_t)(uint32_t)((idx) + 1) << 32 | (uint32_t)(len))
/* Does @tag publish the packet of index @idx? */
#define SLUICE_SPSC_TAG_IS(tag, idx) \
	((uint32_t)((tag) >> 32) == (uint32_t)((idx) + 1))

/*
 * The part of a ring handle the inline calls use.  Fields are private.
 * Every field 0.4's inline calls read stays where it was, so programs
 * built against 0.4 keep working: they loaded head through @ring (at its
 * offset 128) and the peer's ctl through the pointer at 16 (ctl is the
 * first word of a side).
 */
struct sluice_spsc {
	void *ring;			/* the ring, for 0.4's inline calls */
	void *unused;
	_Atomic uint32_t *peer_ctl;	/* the other side's ctl word, shared */
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
	_Atomic uint64_t *head;		/* the consumer's index, shared */
};

/* Compiled into every program that inlined a call: pinned. */
_Static_assert(offsetof(struct sluice_spsc, ring) == 0, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, peer_ctl) == 16, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, tags) == 24, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, slots) == 32, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, mask) == 40, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, slot_size) == 44, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, stride) == 48, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, pos) == 56, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, limit) == 64, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, held) == 72, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, role) == 76, "spsc handle changed");
_Static_assert(offsetof(struct sluice_spsc, head) == 80, "spsc handle changed");
_Static_assert(sizeof(struct sluice_spsc) == 88, "spsc handle changed");

#endif /* SLUICE_SPSC_CORE_H */
