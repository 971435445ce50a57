// SPDX-License-Identifier: MIT
/*
 * The wait engine's out-of-line half: options, the spin budget, and
 * sleeping.  The rules are in wait.h.
 */
#include <errno.h>
#include <stdatomic.h>

#include "cancel_internal.h"
#include "futex.h"
#include "wait.h"

void sluice__wait_init(struct sluice__wait *w, const struct sluice__wait_kind *kind,
		       uint64_t timeout_ns, struct sluice_cancel *cancel, uint32_t spin_ns)
{
	w->kind = kind;
	w->timeout_ns = timeout_ns ? timeout_ns : SLUICE__WAIT_TIMEOUT_NS;
	w->cancel = cancel;
	w->spin_fixed = spin_ns != 0;
	w->spin_max = spin_ns ? spin_ns : SLUICE__WAIT_SPIN_MAX_NS;
	w->spin_ns = w->spin_max;
	w->slip = 0;
	w->polls = UINT_MAX;
}

/*
 * Spin budget: twice what the last wait took, if it ended while spinning
 * or after a sleep shorter than the most we may spin (spinning through
 * it would have been cheaper than the sleep and the wake it cost the
 * peer); half of it after a longer sleep (an idle peer).  Never below the
 * kind's floor, nor above the most.
 */
void sluice__wait_adapt(struct sluice__wait *w, uint64_t took_ns, bool spun)
{
	uint64_t next;

	if (w->spin_fixed)
		return;
	if (spun || took_ns < w->spin_max)
		next = took_ns * 2;
	else
		next = w->spin_ns / 2;
	if (next < w->kind->spin_min_ns)
		next = w->kind->spin_min_ns;
	w->spin_ns = (uint32_t)(next < w->spin_max ? next : w->spin_max);
}

/*
 * Sleep on @seq, counted in @nwait, until ready, the token, the deadline
 * or an error.  The user's waker stores what it publishes, then loads
 * the count (or its own flag, see the ring's arming); the sleeper counts
 * itself, then re-checks with a full fence between: one of the two sees
 * the other (Dekker), so a wake is never lost.  @began: when the wait
 * began, for the budget (0: now).  @distrust: the readiness test is not
 * to be believed (wait.h): nap once, then let the call look.
 */
int sluice__wait_sleep(struct sluice__wait *w, struct sluice__wait_call *c,
		       const struct sluice__wait_ops *ops, void *arg,
		       _Atomic uint32_t *seq, _Atomic uint32_t *nwait,
		       uint64_t began, bool distrust)
{
	uint64_t slept_at = sluice__wait_clock(w, c), now, wake_at;
	struct sluice__waiter waiter;
	uint32_t val;
	int err;

	if (!began)
		began = slept_at;
	if (ops->sleep_begin)
		ops->sleep_begin(arg);
	err = sluice__cancel_arm(w->cancel, &waiter, seq);
	if (err)
		goto out;
	atomic_fetch_add_explicit(nwait, 1, memory_order_seq_cst);
	for (;;) {
		/* Read seq before the re-check: a wake after it changes seq. */
		val = atomic_load_explicit(seq, memory_order_acquire);
		/* Dekker's sleeper: the count before the re-check. */
		atomic_thread_fence(memory_order_seq_cst);
		err = distrust ? -EAGAIN : ops->ready(arg);
		if (err != -EAGAIN)
			break;
		err = sluice_cancel_reason(w->cancel);
		if (err)
			break;
		/*
		 * The clock on every pass: a peer that keeps bumping seq must
		 * not keep us past the deadline.
		 */
		now = sluice__now_ns(CLOCK_MONOTONIC);
		if (now >= c->deadline) {
			err = ops->expired(arg);
			break;
		}
		wake_at = c->deadline;
		if (ops->tick && ops->tick(arg, c, now, &wake_at))
			continue;
		if (distrust && now + SLUICE__WAIT_NAP_NS < wake_at)
			wake_at = now + SLUICE__WAIT_NAP_NS;
		sluice__futex_wait(seq, val, wake_at == UINT64_MAX ? 0 : wake_at);
		if (distrust) {
			err = 0;	/* napped: let the call look again */
			break;
		}
	}
	/* Relaxed: a waker that still sees us makes one useless wake. */
	atomic_fetch_sub_explicit(nwait, 1, memory_order_relaxed);
	sluice__cancel_disarm(w->cancel, &waiter);
out:
	now = sluice__now_ns(CLOCK_MONOTONIC);
	if (ops->sleep_end)
		ops->sleep_end(arg, now - slept_at);
	if (!err)
		sluice__wait_adapt(w, now - began, false);
	return err;
}
