/* SPDX-License-Identifier: MIT */
/*
 * The wait engine: how every blocking call of sluice waits for a peer.
 *
 * A wait spins first, polling what would end it, then sleeps on a futex
 * word of the shared memory until a peer bumps it, the call's deadline,
 * the cancellation token, or a dead peer found.  What each user of the
 * engine supplies is in struct sluice__wait_ops; what differs between
 * users, with the reason, in struct sluice__wait_kind.
 *
 * The rules every user gets:
 *
 * - One deadline a call.  A blocking call may wait several times (a
 *   batch that gets part of what it wants, a writer that finds the room
 *   taken by another); all its waits share one struct sluice__wait_call
 *   and so one deadline, set when its first wait first reads the clock.
 * - The deadline and the token on every pass.  Every wait of a call
 *   after its first checks both before it looks at anything, whatever
 *   its readiness test says; the first reads the clock once it has
 *   lasted CLOCK_EVERY polls (a clock read costs as much as a message in
 *   a VM, and a short wait, the common case on a busy ring, reads none).
 * - Distrust.  A call whose waits keep ending at once ("ready") and then
 *   finds nothing to do is told so by its caller (it does not zero
 *   c->stuck); after STUCK_MAX such passes its waits stop trusting the
 *   readiness test and nap on the futex between tries, sweeping as any
 *   sleeper does.  Honest peers never cause it; a peer rewriting what
 *   the test and the call look at can.
 * - Spinning adapts: the budget grows toward twice what waits take and
 *   halves when a sleep lasted longer than the most it may be.
 * - Slipping: a wait that ended at once and found a stream (more than
 *   one message) pauses before its next first poll, longer each time
 *   (sluice__slip_next(), util.c): a reader polling right behind a writer
 *   takes the writer's lines as they are written, and both crawl.  The
 *   user says what it found after the wait (it knows its messages).
 *
 * The spin is inline, so that each user's readiness test is inlined into
 * it; sleeping is out of line (wait.c).
 */
#ifndef SLUICE_WAIT_H
#define SLUICE_WAIT_H

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <sluice/cancel.h>

#include "internal.h"

#define SLUICE__WAIT_CLOCK_EVERY	64u	/* polls between clock reads */
#define SLUICE__WAIT_POLL_NS		32u	/* about one poll and pause */
#define SLUICE__WAIT_SPIN_MAX_NS	50000u	/* the adaptive budget's most */
#define SLUICE__WAIT_STUCK_MAX		4u	/* passes with nothing done, trusted */
#define SLUICE__WAIT_NAP_NS		1000000ull	/* a distrusted pass's sleep, at most */
#define SLUICE__WAIT_TIMEOUT_NS		(5 * 1000000000ull)	/* the default timeout */

/* What differs between the users of the engine; each field says why. */
struct sluice__wait_kind {
	/*
	 * The adaptive budget's floor.  A ring's waits are for one peer and
	 * often a few hundred nanoseconds; a channel's are for any of many
	 * writers or readers, whose turns come in bursts, and a budget
	 * below 20 us sent readers to sleep between two bursts.
	 */
	uint32_t spin_min_ns;
	/*
	 * Spin this long pausing, then yield the CPU between polls.  With
	 * more endpoints than CPUs, the one a channel waits for may be
	 * queued behind it on its own CPU: yielding hands it the CPU, where
	 * sleeping would cost it a wake as well.  A ring's two sides are
	 * two processes that sleep on each other cheaply (the futex is
	 * armed only while one sleeps): UINT32_MAX, never.
	 */
	uint32_t yield_after_ns;
	/* The longest slip, in pauses; see the users' top comments. */
	uint32_t slip_max;
};

/* How an endpoint waits: its options, and what its waits have learnt. */
struct sluice__wait {
	const struct sluice__wait_kind *kind;
	uint64_t timeout_ns;		/* a call's deadline is this after it starts */
	struct sluice_cancel *cancel;
	uint32_t spin_ns;		/* the budget now */
	uint32_t spin_max;		/* the most; UINT32_MAX: never sleep */
	bool spin_fixed;		/* set by the user: do not adapt */
	uint32_t slip;			/* pauses before a wait's first poll */
	unsigned int polls;		/* the last wait's; UINT_MAX: it slept */
};

/* One blocking call: every wait it makes runs to one deadline. */
struct sluice__wait_call {
	uint64_t start;			/* 0 until the clock is read */
	uint64_t deadline;
	uint64_t next_sweep;		/* 0 until a wait sleeps */
	unsigned int passes;		/* waits so far */
	unsigned int stuck;		/* of them in a row that got nowhere */
};

/* What a user gives a wait.  @arg is the user's. */
struct sluice__wait_ops {
	/* 0 or an error: the wait is over (go and look); -EAGAIN: not yet. */
	int (*ready)(void *arg);
	/* The call's deadline came: what it returns (never 0 or -EAGAIN). */
	int (*expired)(void *arg);
	/* About to sleep: make sure wakers will look (optional). */
	void (*sleep_begin)(void *arg);
	/* Woke, having slept for @ns (optional). */
	void (*sleep_end)(void *arg, uint64_t ns);
	/*
	 * Each time a sleeper is about to sleep (optional): look for the
	 * dead, watch peers.  @now is the time; lower *@wake_at to be woken
	 * sooner.  Returns true if it changed something: look again at once.
	 */
	bool (*tick)(void *arg, struct sluice__wait_call *c, uint64_t now,
		     uint64_t *wake_at);
};

/*
 * Set up @w for @kind from the options given: @timeout_ns (0: the
 * default), @cancel, @spin_ns (0: adapt; UINT32_MAX: never sleep).
 */
void sluice__wait_init(struct sluice__wait *w, const struct sluice__wait_kind *kind,
		       uint64_t timeout_ns, struct sluice_cancel *cancel, uint32_t spin_ns);

/* A deadline @timeout_ns after @now; one too far to add is none at all. */
static inline uint64_t sluice__wait_deadline(uint64_t timeout_ns, uint64_t now)
{
	return timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + timeout_ns;
}

/* The time now; the first read of a call starts its clock. */
static inline uint64_t sluice__wait_clock(const struct sluice__wait *w,
					  struct sluice__wait_call *c)
{
	uint64_t now = sluice__now_ns(CLOCK_MONOTONIC);

	if (!c->start) {
		c->start = now;
		c->deadline = sluice__wait_deadline(w->timeout_ns, now);
	}
	return now;
}

/* The budget after a wait that took @took_ns, ending while it @spun or not. */
void sluice__wait_adapt(struct sluice__wait *w, uint64_t took_ns, bool spun);

/* The sleeping half of sluice__wait() (wait.c). */
int sluice__wait_sleep(struct sluice__wait *w, struct sluice__wait_call *c,
		       const struct sluice__wait_ops *ops, void *arg,
		       _Atomic uint32_t *seq, _Atomic uint32_t *nwait,
		       uint64_t began, bool distrust);

/*
 * Wait until @ops->ready says something other than -EAGAIN, within call
 * @c, sleeping on futex @seq counted in @nwait (the waker's protocol is
 * the user's: see each user's top comment).  Returns 0 (go and look), or
 * an error: the token's reason, or what ops->expired says at the deadline.
 */
static inline __attribute__((always_inline)) int
sluice__wait(struct sluice__wait *w, struct sluice__wait_call *c,
	     const struct sluice__wait_ops *ops, void *arg,
	     _Atomic uint32_t *seq, _Atomic uint32_t *nwait)
{
	/* A budget shorter than CLOCK_EVERY polls is checked every poll. */
	const unsigned int every = w->spin_ns < SLUICE__WAIT_CLOCK_EVERY * SLUICE__WAIT_POLL_NS ?
				   1 : SLUICE__WAIT_CLOCK_EVERY;
	const uint32_t yield_after = w->kind->yield_after_ns;
	uint64_t now, began = 0;
	bool yielding = false, distrust = false;
	unsigned int i;
	int err;

	err = sluice_cancel_reason(w->cancel);
	if (err)
		return err;
	if (c->passes++) {
		if (sluice__wait_clock(w, c) >= c->deadline)
			return ops->expired(arg);
		/* "Ready" led nowhere, time and again: sleep between tries. */
		distrust = c->stuck > SLUICE__WAIT_STUCK_MAX;
	}
	c->stuck++;		/* the caller zeroes it when it gets somewhere */
	w->polls = UINT_MAX;
	if (distrust)
		return sluice__wait_sleep(w, c, ops, arg, seq, nwait, 0, true);

	/* Let the peer get ahead first (the slip; see the top). */
	for (i = 0; i < w->slip; i++)
		sluice__cpu_relax();
	for (i = 1;; i++) {
		err = ops->ready(arg);
		if (err != -EAGAIN) {
			sluice__wait_adapt(w, began ? sluice__now_ns(CLOCK_MONOTONIC) - began :
					   (uint64_t)i * SLUICE__WAIT_POLL_NS, true);
			w->polls = i;
			return err;
		}
		if (yielding) {
			sched_yield();
		} else {
			sluice__cpu_relax();
			if (i % every)
				continue;
		}
		err = sluice_cancel_reason(w->cancel);
		if (err)
			return err;
		now = sluice__wait_clock(w, c);
		if (!began)
			began = now;	/* the wait began a few polls ago */
		if (now >= c->deadline)
			return ops->expired(arg);
		yielding = now - began >= yield_after;
		if (w->spin_max != UINT32_MAX && now - began >= w->spin_ns)
			return sluice__wait_sleep(w, c, ops, arg, seq, nwait, began, false);
	}
}

#endif /* SLUICE_WAIT_H */
