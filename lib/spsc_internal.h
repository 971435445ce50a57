/* SPDX-License-Identifier: MIT */
/*
 * SPSC ring internals shared by lib/spsc.c, lib/spsc_fd.c and the tests:
 * the library's own part of a ring handle.  The layout in shared memory is
 * spsc_layout.h; the part of the handle the inline calls use is struct
 * sluice_spsc (include/sluice/spsc_core.h).
 */
#ifndef SLUICE_SPSC_INTERNAL_H
#define SLUICE_SPSC_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <sluice/spsc.h>

#include "spsc_layout.h"
#include "wait.h"

/* Temporal slipping's most (sluice__slip_next()): about 1.5 us of pauses. */
#define SLUICE__SPSC_SLIP_MAX	64u

struct sluice__spsc_fd;

/*
 * A ring handle: what the inline calls use first, so that the handle the
 * caller holds is &q->pub, then the library's own fields.
 */
struct sluice__spsc {
	struct sluice_spsc pub;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc_side *self;	/* our side's control line */
	struct sluice_spsc_side *peer;	/* the other side's */
	struct sluice__wait w;
	struct sluice_region *region;
	struct sluice__spsc_fd *ev;	/* eventfd bridge, if any */
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
	 * none since), its call, and whether a try_ call found nothing
	 * after it, in which case the next wait carries on with that call.
	 */
	uint64_t ready_pos;
	struct sluice__wait_call ready_call;
	bool ready_denied;
};

static inline struct sluice__spsc *sluice__spsc_of(struct sluice_spsc *q)
{
	return (struct sluice__spsc *)q;	/* pub is the first member */
}

/* Is packet @idx published?  Its tag, if so, in @tag. */
bool sluice__spsc_published(const struct sluice__spsc *q, uint64_t idx, uint64_t *tag);
/* Set ARMED on our side: wakers now check whether we sleep. */
void sluice__spsc_arm(struct sluice__spsc *q);
/* Bump a side's futex word and wake its sleepers. */
void sluice__spsc_wake_side(struct sluice_spsc_side *s);

/*
 * One wait of call @c of a layer above the ring (the multiplexer): as
 * sluice_spsc_wait(), but as a wait of @kind (the layer's threads share
 * CPUs: it may yield), with the call's own timeout and token, and ending
 * also when @also(@arg) says something other than -EAGAIN, which the
 * caller makes true before waking this side with sluice__spsc_wake_self().
 * Only the thread that uses the handle may call it.
 */
int sluice__spsc_wait_in(struct sluice_spsc *q, struct sluice__wait_call *c,
			 const struct sluice__wait_kind *kind, uint64_t timeout_ns,
			 struct sluice_cancel *cancel, int (*also)(void *arg), void *arg);
/* Wake this side's own sleeper, if one sleeps; any thread may. */
void sluice__spsc_wake_self(struct sluice_spsc *q);

/* The eventfd bridge (spsc_fd.c): the consumer drained the ring; stop it. */
void sluice__spsc_fd_drained(struct sluice__spsc_fd *ev);
void sluice__spsc_fd_stop(struct sluice__spsc *q);

#endif /* SLUICE_SPSC_INTERNAL_H */
