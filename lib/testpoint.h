/* SPDX-License-Identifier: MIT */
/*
 * Test points: named instants inside a call at which a test can stop or
 * kill the process, to prove what a death at exactly that instant leaves
 * in shared memory.  Only tests set the hook (they link libsluice.a); it
 * is not exported from libsluice.so.  Unset, a point costs a load and a
 * branch predicted not taken, on paths that already store to shared
 * lines.
 */
#ifndef SLUICE_TESTPOINT_H
#define SLUICE_TESTPOINT_H

enum sluice__tp {
	/* Channel writer: intent stored (CLAIMING), tail not yet moved. */
	SLUICE__TP_CHAN_INTENT = 1,
	/* Channel writer: tail moved, the place still says CLAIMING. */
	SLUICE__TP_CHAN_CLAIMED,
	/* Channel writer: the place says FILLING, a wrap's pad not sealed. */
	SLUICE__TP_CHAN_FILLING,
	/* Channel writer: its slice sealed, its place not yet idle. */
	SLUICE__TP_CHAN_SEALED,
	/* Strong channel writer closing: counted out, drain not decided. */
	SLUICE__TP_CHAN_CLOSING,
	/* Channel reader: stopped after SKIPS_MAX empty slices. */
	SLUICE__TP_CHAN_SKIPS,
	/* SPSC ring (@obj the handle): a wait begins, before it looks. */
	SLUICE__TP_SPSC_WAIT,
	/* SPSC ring: a wait ended ready; the call looks next. */
	SLUICE__TP_SPSC_READY,
	/* Multiplexer (@obj it): a request SENDING, not yet copied. */
	SLUICE__TP_MUX_SENDING,
	/* Multiplexer: a reply DELIVERING, not yet copied. */
	SLUICE__TP_MUX_DELIVERING,
	/* Multiplexer: a waiter has looked at its nonce, not yet taken the entry. */
	SLUICE__TP_MUX_TAKING,
	/* Multiplexer: a waiter has taken its entry, not yet looked again. */
	SLUICE__TP_MUX_HELD,
	/* Multiplexer: a waiter done with its entry (maybe freed), still in it. */
	SLUICE__TP_MUX_LEAVING,
	/* Multiplexer: the sender about to give up the right to send, its
	 * backlog's first chosen to be woken. */
	SLUICE__TP_MUX_RELEASING,
	/* Responder (@obj it): a reply reserved in place, not committed. */
	SLUICE__TP_MUX_RESERVED,
};

/* @obj: the handle the point is in (a ring's), or NULL. */
extern void (*sluice__tp_hook)(enum sluice__tp point, void *obj);

static inline void sluice__tp(enum sluice__tp point, void *obj)
{
	if (__builtin_expect(sluice__tp_hook != 0, 0))
		sluice__tp_hook(point, obj);
}

#endif /* SLUICE_TESTPOINT_H */
