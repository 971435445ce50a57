// SPDX-License-Identifier: MIT
/*
 * The caller's side of a multiplexed link (mux.h).  Documentation/mux.md
 * tells the design at length; the rules in force are here.
 *
 * Entries.  Each request in flight holds an entry of a table made at
 * create.  An entry's state word is its generation (the nonce's upper
 * bits) above one of the states below, and every change is a store or a
 * compare-and-swap of the whole word, so a thread acting on an entry acts
 * on the use of it it means, never on a later one:
 *
 *	FREE -> QUEUED		taken by a sender, its request in its memory
 *	QUEUED -> SENDING	the combiner copies it into the ring
 *	SENDING -> PENDING	copied; published with the batch
 *	PENDING -> DELIVERING	the dispatcher took its reply
 *	DELIVERING -> DONE	the outcome is in; its owner collects it
 *	DONE -> FREE		collected
 *	QUEUED -> WITHDRAWN	its sender gave up before it went; the
 *				combiner frees it
 *	PENDING -> FREE		its waiter gave up, or forgot it
 *	PENDING -> REGISTERING -> PENDING	sluice_mux_register()
 *	DELIVERING -> FREE	a callback took the outcome
 *
 * The one that makes a change owns what the new state gives: a SENDING
 * entry's request is the combiner's to read, a DELIVERING entry's room
 * the dispatcher's to write.  A thread that finds an entry in one of the
 * short states (SENDING, DELIVERING, REGISTERING) while it wants to give
 * up waits for it to end: another thread of ours is copying, and it
 * sleeps rather than spins, so a preempted copier costs no CPU.
 *
 * Sending: combining.  A sender pushes its entry onto a stack and tries to
 * take the right to send (tx_lock).  Who holds it takes the whole stack,
 * copies every request that fits into the ring, and publishes them with
 * one commit: one index store and at most one wakeup for them all.  What
 * does not fit (the ring is full) waits in the backlog, in order; the
 * holder whose own request is among them keeps the right and waits for
 * room, and one whose request went hands the right on to the backlog's
 * first sender.  A push and a release are Dekker's pair (seq_cst both):
 * a request pushed while the right is held is either taken by the holder
 * on its way out or by its own sender.
 *
 * Dispatching: one thread at a time (rx_lead) takes replies off the
 * inbound ring and delivers them.  A thread in sluice_mux_dispatch(), or
 * else a caller waiting for its reply: the caller leads until its own
 * comes, and then passes the lead on, to a dispatching thread waiting for
 * it if there is one, else to a caller waiting (the want bitmap).  Setting
 * a want bit and releasing the lead are again Dekker's pair.
 *
 * Waking.  A thread waits on its entry with the wait engine (wait.h):
 * whoever changes what the waiter's readiness test looks at stores first,
 * then fences and looks at the entry's sleeper count (sluice__mux_entry_wake()).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/random.h>

#include <sluice/copy.h>
#include <sluice/mux.h>

#include "futex.h"
#include "internal.h"
#include "mux_caller.h"
#include "spsc_internal.h"
#include "testpoint.h"
#include "wait.h"

#define BATCH		32u	/* messages one pass sends or delivers at most */
#define NAP_NS		1000000ull	/* a wait for another thread's short state */

/*
 * A caller waits for a reply a round trip away, a few microseconds when
 * the responder is awake: spin from 1 us, as a ring does.  But a process
 * has more callers than CPUs often, and the thread that would end the
 * wait (the dispatcher, the responder) may be queued behind us: after
 * 2 us, yield between polls, as a channel's endpoints do.
 */
const struct sluice__wait_kind sluice__mux_wait_kind = {
	.spin_min_ns = 1000,
	.yield_after_ns = 2000,
	.slip_max = 0,
};


/* ------------------------------------------------------------- waking */

/* After a change @e's waiter must see: Dekker's waker (wait.c). */
void sluice__mux_entry_wake(struct entry *e)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&e->nwait, memory_order_relaxed))
		sluice__futex_bump_wake(&e->seq);
}

/*
 * Wait while @e is in state @s, one of the short ones another thread of
 * ours ends (SENDING, DELIVERING, REGISTERING): every change out of them
 * wakes (sluice__mux_entry_wake()).  In naps, so that a wake missed costs a nap.
 */
void sluice__mux_entry_wait_change(struct entry *e, uint64_t s)
{
	uint32_t val;

	atomic_fetch_add_explicit(&e->nwait, 1, memory_order_seq_cst);
	for (;;) {
		val = atomic_load_explicit(&e->seq, memory_order_acquire);
		atomic_thread_fence(memory_order_seq_cst);
		if (load_state(e) != s)
			break;
		sluice__futex_wait(&e->seq, val, sluice__now_ns(CLOCK_MONOTONIC) + NAP_NS);
	}
	atomic_fetch_sub_explicit(&e->nwait, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------- entries */

static struct entry *free_pop(struct sluice_mux *m)
{
	uint64_t h = atomic_load_explicit(&m->free_head, memory_order_acquire), nh;
	uint32_t i, next;

	for (;;) {
		i = (uint32_t)h;
		if (!i)
			return NULL;
		/* Another thread may pop it first: then the tag fails our CAS. */
		next = atomic_load_explicit(&m->e[i - 1].free_next, memory_order_relaxed);
		nh = ((h >> 32) + 1) << 32 | next;
		if (atomic_compare_exchange_weak_explicit(&m->free_head, &h, nh,
							  memory_order_acquire,
							  memory_order_acquire))
			return &m->e[i - 1];
	}
}

void sluice__mux_free_push(struct sluice_mux *m, struct entry *e)
{
	uint64_t h = atomic_load_explicit(&m->free_head, memory_order_relaxed), nh;

	do {
		atomic_store_explicit(&e->free_next, (uint32_t)h, memory_order_relaxed);
		nh = ((h >> 32) + 1) << 32 | (idx_of(m, e) + 1);
		/* Release: whoever pops it sees it FREE and cleared. */
	} while (!atomic_compare_exchange_weak_explicit(&m->free_head, &h, nh,
							memory_order_seq_cst,
							memory_order_relaxed));
	/* Dekker's waker, the CAS its store: a waiter counts itself, then looks. */
	if (atomic_load_explicit(&m->f_nwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&m->f_seq);
}

/* Onto the free stack, ready for its next use. */
static void entry_recycle(struct sluice_mux *m, struct entry *e)
{
	uint64_t v;

	atomic_store_explicit(&e->busy, 0, memory_order_relaxed);
	/* A signal for an outcome nobody read must not greet the next use. */
	if (e->efd >= 0 && read(e->efd, &v, sizeof(v)) < 0)
		v = 0;
	sluice__mux_free_push(m, e);
}

/*
 * Back to the free stack: @e is FREE already, by its owner's hand.  Its
 * waiter, if one is still in it, recycles it as it leaves (busy).
 */
void sluice__mux_entry_free(struct sluice_mux *m, struct entry *e)
{
	if (atomic_fetch_or_explicit(&e->busy, BUSY_FREED, memory_order_acq_rel) & BUSY_HELD)
		return;
	entry_recycle(m, e);
}

/* FREE @e from state @s, which we own; then free it. */
static void entry_put(struct sluice_mux *m, struct entry *e, uint64_t s)
{
	atomic_store_explicit(&e->state, st_make(gen_of(s), E_FREE), memory_order_release);
	sluice__mux_entry_free(m, e);
}

static int free_ready(void *arg)
{
	struct sluice_mux *m = arg;

	if (atomic_load_explicit(&m->failed, memory_order_acquire))
		return 0;
	return (uint32_t)atomic_load_explicit(&m->free_head, memory_order_seq_cst) ? 0 : -EAGAIN;
}

int sluice__mux_timed_out(void *arg)
{
	(void)arg;
	return -ETIMEDOUT;
}

static const struct sluice__wait_ops free_ops = {
	.ready = free_ready,
	.expired = sluice__mux_timed_out,
};

/* An entry, waiting for one if @block; NULL with the reason. */
static struct entry *entry_get(struct sluice_mux *m, bool block, struct call *k, int *err)
{
	struct sluice__wait w;
	struct entry *e = free_pop(m);

	if (e)
		return e;
	if (!block) {
		*err = -EAGAIN;
		return NULL;
	}
	sluice__wait_init(&w, &sluice__mux_wait_kind, k->timeout_ns, k->cancel, m->spin_ns);
	for (;;) {
		*err = atomic_load_explicit(&m->failed, memory_order_acquire);
		if (*err)
			return NULL;
		*err = sluice__wait(&w, &k->c, &free_ops, m, &m->f_seq, &m->f_nwait);
		if (*err)
			return NULL;
		k->c.stuck = 0;
		e = free_pop(m);
		if (e)
			return e;
	}
}

/* How the reply to @e is taken, from a registration; @e unchanged on error. */
int sluice__mux_entry_reg(struct sluice_mux *m, struct entry *e, const struct sluice_mux_reg *reg)
{
	void *rep = SLUICE_OPT(reg, sluice_mux_reg, rep, NULL);
	sluice_mux_fn *fn = SLUICE_OPT(reg, sluice_mux_reg, fn, NULL);

	if (!rep && !fn && !e->own) {
		e->own = malloc(m->rep_max ? m->rep_max : 1);
		if (!e->own)
			return -ENOMEM;
	}
	e->rep = rep;
	e->cap = SLUICE_OPT(reg, sluice_mux_reg, cap, 0);
	e->fn = fn;
	e->arg = SLUICE_OPT(reg, sluice_mux_reg, arg, NULL);
	e->keep = !rep && !fn;
	return 0;
}

/* ------------------------------------------------------------- outcomes */

/*
 * Deliver @result (a length, or an error) to @e, which we hold
 * DELIVERING at @gen; the reply's payload at @at.  Calls its callback and
 * frees it (false), or makes it DONE (true): then its waiter is to be
 * woken, by done_wake(), after a fence that may serve a whole batch.
 */
static bool finish(struct sluice_mux *m, struct entry *e, uint64_t gen, int result,
		   const void *at)
{
	sluice_mux_fn *fn = e->fn;
	void *arg = e->arg;
	const void *rep = NULL;

	if (result >= 0) {
		/* @at is the room already when a registration delivers late. */
		if (e->keep) {
			if (at != e->own)
				sluice__copy(e->own, at, (size_t)result, SLUICE__COPY_FRESH);
		} else if (fn && !e->rep) {
			rep = at;	/* a callback reads it in place */
		} else if ((size_t)result > e->cap) {
			result = -EMSGSIZE;	/* no room (none at all: a call's cap 0) */
		} else {
			if (result && at != e->rep)
				sluice__copy(e->rep, at, (size_t)result, SLUICE__COPY_FRESH);
			rep = e->rep;
		}
	}
	if (fn) {
		/*
		 * Freed first: the callback may use the multiplexer, its own
		 * nonce included (it is done with: -ENOENT), and the entry.
		 */
		entry_put(m, e, st_make(gen, E_DELIVERING));
		sluice__mux_entry_wake(e);	/* one that waited out DELIVERING */
		fn(arg, (gen << SLUICE__MUX_IDX_BITS) | idx_of(m, e), result, rep);
		return false;
	}
	e->result = result;
	/* Release: whoever sees DONE sees the result and the bytes. */
	atomic_store_explicit(&e->state, st_make(gen, E_DONE), memory_order_release);
	return true;
}

/* Wake the waiter of @e, made DONE, once a fence has followed the store. */
static void done_wake(struct entry *e)
{
	uint64_t one = 1;

	if (atomic_load_explicit(&e->nwait, memory_order_relaxed))
		sluice__futex_bump_wake(&e->seq);
	if (e->efd >= 0 && write(e->efd, &one, sizeof(one)) < 0)
		one = 0;	/* a full eventfd is signalled enough */
}

void sluice__mux_complete(struct sluice_mux *m, struct entry *e, uint64_t gen, int result,
			  const void *at)
{
	if (finish(m, e, gen, result, at)) {
		/* Dekker's waker (wait.c): the store, then the count. */
		atomic_thread_fence(memory_order_seq_cst);
		done_wake(e);
	}
}

/*
 * @e, made PENDING at @gen (a release store) by a thread that then
 * fenced: a link that failed before the fence did not see it waiting
 * (sluice__mux_link_fail() looks for PENDING after setting its error),
 * so it gets the link's error now.  Dekker's pair with link_fail(); a CAS
 * decides who completes it when both see.
 */
static void pending_check(struct sluice_mux *m, struct entry *e, uint64_t gen, int err)
{
	uint64_t s = st_make(gen, E_PENDING);

	if (err && atomic_compare_exchange_strong_explicit(&e->state, &s,
							   st_make(gen, E_DELIVERING),
							   memory_order_acquire,
							   memory_order_relaxed)) {
		count(&m->failed_n);
		sluice__mux_complete(m, e, gen, err, NULL);
	}
}

/* Make @e, which we hold at @gen in a short state, PENDING (see above). */
void sluice__mux_entry_pending(struct sluice_mux *m, struct entry *e, uint64_t gen)
{
	atomic_store_explicit(&e->state, st_make(gen, E_PENDING), memory_order_seq_cst);
	pending_check(m, e, gen, atomic_load_explicit(&m->failed, memory_order_seq_cst));
}

/*
 * The link failed with @err: every request waiting gets it, every waiter
 * looks, and every call from now on returns it.  The first error stays.
 */
void sluice__mux_link_fail(struct sluice_mux *m, int err)
{
	struct entry *e;
	int none = 0;
	uint64_t s;
	uint32_t i;

	if (!atomic_compare_exchange_strong_explicit(&m->failed, &none, err,
						     memory_order_seq_cst, memory_order_relaxed))
		return;
	for (i = 0; i < m->n; i++) {
		e = &m->e[i];
		s = load_state(e);
		while (st_of(s) == E_PENDING) {
			if (atomic_compare_exchange_weak_explicit(&e->state, &s,
								  st_make(gen_of(s), E_DELIVERING),
								  memory_order_acquire,
								  memory_order_acquire)) {
				count(&m->failed_n);
				sluice__mux_complete(m, e, gen_of(s), err, NULL);
				break;
			}
		}
		sluice__mux_entry_wake(e);
	}
	/* Those waiting for an entry, for the lead, for a ring. */
	sluice__futex_bump_wake(&m->f_seq);
	sluice__futex_bump_wake(&m->d_seq);
	sluice__spsc_wake_self(m->in);
	sluice__spsc_wake_self(m->out);
}

/* ------------------------------------------------------------- sending */

static void tx_push(struct sluice_mux *m, struct entry *e)
{
	uint32_t h = atomic_load_explicit(&m->tx_head, memory_order_relaxed);

	do {
		atomic_store_explicit(&e->tx_next, h, memory_order_relaxed);
		/* seq_cst: Dekker's pair with tx_release()'s store and load. */
	} while (!atomic_compare_exchange_weak_explicit(&m->tx_head, &h, idx_of(m, e) + 1,
							memory_order_seq_cst,
							memory_order_relaxed));
}

static bool tx_trylock(struct sluice_mux *m)
{
	return flag_take(&m->tx_lock);
}

/* Move what was pushed to the backlog's end, oldest first. */
static void tx_collect(struct sluice_mux *m)
{
	uint32_t from = m->nbacklog, h, i, j, t;

	/* A look first: an exchange of an empty stack would still take its line. */
	if (!atomic_load_explicit(&m->tx_head, memory_order_relaxed))
		return;
	h = atomic_exchange_explicit(&m->tx_head, 0, memory_order_acquire);

	/* Each entry is in the stack or the backlog once at most: n fits. */
	for (; h && m->nbacklog < m->n; h = atomic_load_explicit(&m->e[h - 1].tx_next,
								memory_order_relaxed))
		m->backlog[m->nbacklog++] = h - 1;
	for (i = from, j = m->nbacklog; i + 1 < j; i++, j--) {
		t = m->backlog[i];
		m->backlog[i] = m->backlog[j - 1];
		m->backlog[j - 1] = t;
	}
}

/*
 * Copy the backlog's requests into the ring, as many as it has room for,
 * and publish them with one commit.  Frees the withdrawn.  Holding
 * tx_lock.  Returns 0, or the link's error.
 */
static int tx_send(struct sluice_mux *m)
{
	struct sluice__mux_hdr h = { 0 };
	struct entry *sent[BATCH], *e;
	struct iovec iov[BATCH];
	uint32_t r = 0, keep, k, got;
	uint64_t s, gen[BATCH];
	int n, f, err = 0;

	tx_collect(m);
	while (r < m->nbacklog && !err) {
		if (atomic_load_explicit(&m->failed, memory_order_relaxed))
			break;
		n = sluice_spsc_try_reserve(m->out, iov, m->nbacklog - r < BATCH ?
							m->nbacklog - r : BATCH);
		if (n == -EAGAIN)
			break;		/* full: the rest wait in the backlog */
		if (n < 0)
			return n;
		for (got = 0; got < (uint32_t)n && r < m->nbacklog; r++) {
			e = &m->e[m->backlog[r]];
			s = load_state(e);
			if (st_of(s) == E_QUEUED &&
			    atomic_compare_exchange_strong_explicit(&e->state, &s,
								    st_make(gen_of(s), E_SENDING),
								    memory_order_acquire,
								    memory_order_acquire)) {
				sluice__tp(SLUICE__TP_MUX_SENDING, m);
				h.nonce = nonce_of(m, e, gen_of(s));
				memcpy(iov[got].iov_base, &h, sizeof(h));
				sluice__copy((char *)iov[got].iov_base + sizeof(h), e->req, e->len,
					     SLUICE__COPY_FRESH);
				iov[got].iov_len = sizeof(h) + e->len;
				/*
				 * PENDING before the commit publishes it: a
				 * reply may come at once.  Its sender may give
				 * up from here; its bytes are in the ring.
				 */
				atomic_store_explicit(&e->state, st_make(gen_of(s), E_PENDING),
						      memory_order_release);
				sent[got] = e;
				gen[got++] = gen_of(s);
			} else if (st_of(s) == E_WITHDRAWN) {
				entry_put(m, e, s);	/* its sender is gone */
			}
		}
		err = sluice_spsc_commit(m->out, iov, got);
		if (err >= 0) {
			atomic_store_explicit(&m->sent, atomic_load_explicit(&m->sent,
						memory_order_relaxed) + got, memory_order_relaxed);
			err = 0;
		}
		/*
		 * One fence for the batch's PENDING stores, then the link's
		 * error (pending_check()) and the senders' sleeper counts
		 * (Dekker's waker, wait.c).
		 */
		atomic_thread_fence(memory_order_seq_cst);
		f = atomic_load_explicit(&m->failed, memory_order_relaxed);
		for (k = 0; k < got; k++) {
			pending_check(m, sent[k], gen[k], f);
			if (atomic_load_explicit(&sent[k]->nwait, memory_order_relaxed))
				sluice__futex_bump_wake(&sent[k]->seq);
		}
	}
	/* The backlog: what did not go, withdrawn ones freed on the way. */
	for (keep = 0, k = r; k < m->nbacklog; k++) {
		e = &m->e[m->backlog[k]];
		s = load_state(e);
		if (st_of(s) == E_WITHDRAWN)
			entry_put(m, e, s);
		else
			m->backlog[keep++] = m->backlog[k];
	}
	m->nbacklog = keep;
	return err;
}

/*
 * Give the right to send up.  The backlog's first sender, if any, takes
 * it on to wait for room; a push made while we held it is sent now, by us
 * or by its sender (Dekker's pair with tx_push()), and so is a withdrawal
 * (tx_kick()): the first we woke may have been the one withdrawn.
 */
static void tx_release(struct sluice_mux *m)
{
	uint32_t first;
	int err;

	for (;;) {
		first = m->nbacklog ? m->backlog[0] + 1 : 0;
		sluice__tp(SLUICE__TP_MUX_RELEASING, m);
		atomic_store_explicit(&m->tx_lock, 0, memory_order_seq_cst);
		if (first)
			sluice__mux_entry_wake(&m->e[first - 1]);
		if ((!atomic_load_explicit(&m->tx_head, memory_order_seq_cst) &&
		     !atomic_load_explicit(&m->tx_kick, memory_order_seq_cst)) || !tx_trylock(m))
			return;
		atomic_store_explicit(&m->tx_kick, 0, memory_order_relaxed);
		err = tx_send(m);
		if (err)
			sluice__mux_link_fail(m, err);
	}
}

/* Send what waits, if nobody else is. */
static void tx_run(struct sluice_mux *m)
{
	int err;

	if (!tx_trylock(m))
		return;
	atomic_store_explicit(&m->tx_kick, 0, memory_order_relaxed);
	err = tx_send(m);
	if (err)
		sluice__mux_link_fail(m, err);
	tx_release(m);
}

/*
 * A QUEUED entry was withdrawn.  Whoever holds the right to send frees
 * it, and may have just handed the right to it, asleep in nobody: make it
 * look again (Dekker's pair with tx_release(): the kick stored, then the
 * lock loaded, each seq_cst), or send ourselves if the right is free.
 */
static void tx_kick(struct sluice_mux *m)
{
	atomic_store_explicit(&m->tx_kick, 1, memory_order_seq_cst);
	if (!atomic_load_explicit(&m->tx_lock, memory_order_seq_cst))
		tx_run(m);
}

/*
 * Send @e, QUEUED: at once if the right to send is free (after what was
 * pushed before it), else pushed for its holder, or for our own later try.
 */
static void tx_submit(struct sluice_mux *m, struct entry *e)
{
	int err;

	if (tx_trylock(m)) {
		tx_collect(m);
		m->backlog[m->nbacklog++] = idx_of(m, e);
		err = tx_send(m);
		if (err)
			sluice__mux_link_fail(m, err);
		tx_release(m);
		return;
	}
	tx_push(m, e);
	tx_run(m);
}

/*
 * Wait on ring @q for call @k, with @also(@arg) as the rest of the test.
 * Returns true: look again.  Else *@err is why the call must give up, or
 * 0 where the link failed (the ring said the peer is gone or the ring
 * damaged): every waiter sees that in m->failed.
 */
bool sluice__mux_link_wait(struct sluice_mux *m, struct sluice_spsc *q, struct call *k,
			   int (*also)(void *), void *arg, int *err)
{
	*err = sluice__spsc_wait_in(q, &k->c, &sluice__mux_wait_kind, k->timeout_ns, k->cancel,
				    also, arg);
	if (*err == -EPIPE || *err == -EBADMSG) {
		sluice__mux_link_fail(m, *err);
		*err = 0;
		return false;
	}
	if (*err)
		return false;
	k->c.stuck = 0;		/* the ring or @also had news */
	return true;
}

static int room_also(void *arg)
{
	struct sluice_mux *m = arg;

	return atomic_load_explicit(&m->failed, memory_order_acquire) ? 0 : -EAGAIN;
}

/*
 * Holding the right to send, with @e still QUEUED (as @s): send, and
 * while the ring is full wait for room, to @k's deadline.  Returns 0 or
 * why @e's sender must give up; the right is given up either way.
 */
static int tx_hold(struct sluice_mux *m, struct entry *e, uint64_t s, struct call *k)
{
	int err;

	for (;;) {
		err = tx_send(m);
		if (err) {
			sluice__mux_link_fail(m, err);
			err = 0;	/* the sender sees it failed */
			break;
		}
		if (load_state(e) != s || atomic_load_explicit(&m->failed, memory_order_acquire))
			break;
		if (!sluice__mux_link_wait(m, m->out, k, room_also, m, &err))
			break;
	}
	tx_release(m);
	return err;
}

/* ------------------------------------------------------------- dispatching */

bool sluice__mux_rx_trylead(struct sluice_mux *m)
{
	return flag_take(&m->rx_lead);
}

/*
 * Nobody leads: wake one that would, a dispatching thread first.  Dekker's
 * pair with want_set() (and d_want): the lead released, then the wants
 * loaded, each seq_cst; the waiter sets its want, then loads the lead.
 */
static void rx_pass(struct sluice_mux *m)
{
	uint64_t v;
	uint32_t w;

	if (atomic_load_explicit(&m->rx_lead, memory_order_seq_cst))
		return;
	if (atomic_load_explicit(&m->d_want, memory_order_seq_cst)) {
		sluice__futex_bump_wake(&m->d_seq);
		return;
	}
	for (w = 0; w < m->nwant; w++) {
		v = atomic_load_explicit(&m->want[w], memory_order_seq_cst);
		if (v) {
			sluice__mux_entry_wake(&m->e[w * 64 + (uint32_t)__builtin_ctzll(v)]);
			return;
		}
	}
}

void sluice__mux_rx_unlead(struct sluice_mux *m)
{
	atomic_store_explicit(&m->rx_lead, 0, memory_order_seq_cst);
	rx_pass(m);
}

static void want_set(struct sluice_mux *m, struct entry *e, bool on)
{
	uint32_t i = idx_of(m, e);
	uint64_t bit = 1ull << (i % 64);

	if (on)
		atomic_fetch_or_explicit(&m->want[i / 64], bit, memory_order_seq_cst);
	else
		/* seq_cst: ordered before sluice__mux_leave()'s look at the lead. */
		atomic_fetch_and_explicit(&m->want[i / 64], ~bit, memory_order_seq_cst);
}

/*
 * One reply of @len bytes at @p, in the ring: to its entry, or dropped.
 * An entry made DONE goes in *@woken, for the caller to wake.
 */
static int deliver(struct sluice_mux *m, const unsigned char *p, size_t len,
		   struct entry **woken)
{
	struct sluice__mux_hdr h;
	uint64_t gen, s;
	struct entry *e;
	uint32_t idx;

	if (!sluice__mux_hdr_read(p, len, true, &h))
		return -EBADMSG;
	idx = (uint32_t)(h.nonce & SLUICE__MUX_IDX_MASK);
	gen = h.nonce >> SLUICE__MUX_IDX_BITS;
	if (idx >= m->n) {
		count(&m->dropped);
		return 0;
	}
	e = &m->e[idx];
	for (;;) {
		s = st_make(gen, E_PENDING);
		if (atomic_compare_exchange_strong_explicit(&e->state, &s,
							    st_make(gen, E_DELIVERING),
							    memory_order_acquire,
							    memory_order_acquire))
			break;
		if (s != st_make(gen, E_REGISTERING)) {
			count(&m->dropped);	/* nobody waits for it */
			return 0;
		}
		sluice__mux_entry_wait_change(e, s);
	}
	sluice__tp(SLUICE__TP_MUX_DELIVERING, m);
	atomic_store_explicit(&m->replied, atomic_load_explicit(&m->replied,
			      memory_order_relaxed) + 1, memory_order_relaxed);
	if (finish(m, e, gen, h.status ? h.status : (int)(len - sizeof(h)), p + sizeof(h)))
		*woken = e;
	return 0;
}

/*
 * Deliver what the inbound ring holds, a batch at a time, up to a
 * ringful.  Holding the lead.  Returns how many, or the link's error.
 */
int sluice__mux_rx_drain(struct sluice_mux *m)
{
	uint32_t most = sluice_spsc_slot_count(m->in);
	struct entry *woken[BATCH];
	struct iovec iov[BATCH];
	int k, i, nw, err = 0;
	uint32_t total = 0;

	while (total < most) {
		k = sluice_spsc_try_peek(m->in, iov, BATCH);
		if (k == -EAGAIN)
			break;
		if (k < 0)
			return k;
		for (i = nw = 0; i < k && !err; i++) {
			woken[nw] = NULL;
			err = deliver(m, iov[i].iov_base, iov[i].iov_len, &woken[nw]);
			nw += woken[nw] != NULL;
		}
		sluice_spsc_release(m->in, (unsigned int)k);
		/* One fence for the batch's DONE stores: Dekker's waker (wait.c). */
		if (nw)
			atomic_thread_fence(memory_order_seq_cst);
		for (i = 0; i < nw; i++)
			done_wake(woken[i]);
		if (err)
			return err;
		total += (uint32_t)k;
	}
	return (int)total;
}

int sluice__mux_lead_also(void *arg)
{
	struct lead_arg *x = arg;

	if (atomic_load_explicit(&x->m->failed, memory_order_acquire))
		return 0;
	if (x->e && (load_state(x->e) != x->s ||
		     atomic_load_explicit(&x->e->reg, memory_order_acquire) != x->reg))
		return 0;
	return -EAGAIN;
}

/*
 * Lead until @x's entry leaves state x->s (its reply came), it is
 * registered anew, the link fails, or the call's deadline or token.
 * Returns 0, or why its waiter must give up.
 */
static int rx_lead_for(struct lead_arg *x, struct call *k)
{
	struct sluice_mux *m = x->m;
	int n, err = 0;

	for (;;) {
		n = sluice__mux_rx_drain(m);
		if (n < 0) {
			sluice__mux_link_fail(m, n);
			break;
		}
		if (!sluice__mux_lead_also(x))
			break;
		if (n)
			continue;
		if (!sluice__mux_link_wait(m, m->in, k, sluice__mux_lead_also, x, &err))
			break;
	}
	sluice__mux_rx_unlead(m);
	return err;
}

/* ------------------------------------------------------------- waiting */

static void give_up_count(struct sluice_mux *m, int why)
{
	if (why == -ETIMEDOUT)
		count(&m->timed_out);
	else if (why == atomic_load_explicit(&m->failed, memory_order_relaxed))
		count(&m->failed_n);
	else
		count(&m->cancelled);
}

/* Be done with @e, DONE at @gen: its outcome, the reply copied if kept. */
int sluice__mux_collect(struct sluice_mux *m, struct entry *e, uint64_t gen, void *rep, size_t cap)
{
	uint64_t s = st_make(gen, E_DONE);
	int result = e->result;

	if (result >= 0 && e->keep) {
		if ((size_t)result > cap)
			result = -EMSGSIZE;
		else if (result)
			memcpy(rep, e->own, (size_t)result);
	}
	/* Two threads may collect one nonce: one gets it. */
	if (!state_move(e, &s, gen, E_FREE))
		return -ENOENT;
	sluice__mux_entry_free(m, e);
	return result;
}

/*
 * Stop waiting for @e at @gen for reason @why.  Returns what the waiter
 * returns: @why, or the outcome if it came meanwhile.
 */
int sluice__mux_give_up(struct sluice_mux *m, struct entry *e, uint64_t gen, int why,
		   void *rep, size_t cap)
{
	uint64_t s;

	for (;;) {
		if (!state_at(e, gen, &s))
			return -ENOENT;
		switch (st_of(s)) {
		case E_QUEUED:
			if (!state_move(e, &s, gen, E_WITHDRAWN))
				continue;
			give_up_count(m, why);
			tx_kick(m);	/* frees it, unless the holder will */
			return why;
		case E_PENDING:
			if (!state_move(e, &s, gen, E_FREE))
				continue;
			give_up_count(m, why);
			sluice__mux_entry_free(m, e);
			return why;
		case E_DONE:
			return sluice__mux_collect(m, e, gen, rep, cap);
		case E_SENDING:
		case E_DELIVERING:
		case E_REGISTERING:
			sluice__mux_entry_wait_change(e, s);
			continue;
		default:
			return -ENOENT;
		}
	}
}

/* What a waiter on its entry waits for. */
struct own_arg {
	struct sluice_mux *m;
	struct entry *e;
	uint64_t s;
	uint32_t reg;
};

static int own_ready(void *arg)
{
	struct own_arg *x = arg;
	struct sluice_mux *m = x->m;
	unsigned int st = st_of(x->s);

	if (load_state(x->e) != x->s ||
	    atomic_load_explicit(&x->e->reg, memory_order_acquire) != x->reg ||
	    atomic_load_explicit(&m->failed, memory_order_acquire))
		return 0;
	if (st == E_PENDING && !atomic_load_explicit(&m->rx_lead, memory_order_seq_cst))
		return 0;
	if (st == E_QUEUED && !atomic_load_explicit(&m->tx_lock, memory_order_acquire))
		return 0;
	return -EAGAIN;
}

static const struct sluice__wait_ops own_ops = {
	.ready = own_ready,
	.expired = sluice__mux_timed_out,
};

/*
 * Wait on @e, at @gen, for its outcome, sending and dispatching when it
 * falls to us; with @sent_only, only until its request is in the ring.
 * Returns the outcome (or 0, @sent_only), having freed @e, or an error.
 */
/*
 * A sender stops waiting for its request to go, for reason @why: unless
 * it went meanwhile (then 0: it is in the ring, and the send succeeded).
 */
static int give_up_send(struct sluice_mux *m, struct entry *e, uint64_t gen, int why)
{
	uint64_t s;

	for (;;) {
		s = load_state(e);
		if (gen_of(s) != gen || (st_of(s) != E_QUEUED && st_of(s) != E_SENDING))
			return 0;
		if (st_of(s) == E_SENDING) {
			sluice__mux_entry_wait_change(e, s);
			continue;
		}
		if (state_move(e, &s, gen, E_WITHDRAWN)) {
			give_up_count(m, why);
			tx_kick(m);	/* frees it, unless the holder will */
			return why;
		}
	}
}

static int quit(struct sluice_mux *m, struct entry *e, uint64_t gen, int why, bool sent_only,
		void *rep, size_t cap)
{
	return sent_only ? give_up_send(m, e, gen, why) : sluice__mux_give_up(m, e, gen, why, rep, cap);
}

static int await(struct sluice_mux *m, struct entry *e, uint64_t gen, struct call *k,
		 bool sent_only, void *rep, size_t cap)
{
	struct own_arg x = { m, e, 0, atomic_load_explicit(&e->reg, memory_order_acquire) };
	struct lead_arg l;
	unsigned int st;
	int err;

	e->w.timeout_ns = k->timeout_ns;
	e->w.cancel = k->cancel;
	for (;;) {
		x.s = load_state(e);
		st = st_of(x.s);
		/* Gone on (even answered, to a callback, and freed): it went. */
		if (sent_only && (gen_of(x.s) != gen || (st != E_QUEUED && st != E_SENDING)))
			return 0;
		if (gen_of(x.s) != gen)
			return -ENOENT;
		if (atomic_load_explicit(&e->reg, memory_order_acquire) != x.reg)
			return -ESTALE;
		err = atomic_load_explicit(&m->failed, memory_order_acquire);
		if (err && st != E_DONE)
			return quit(m, e, gen, err, sent_only, rep, cap);
		switch (st) {
		case E_DONE:
			return sluice__mux_collect(m, e, gen, rep, cap);
		case E_QUEUED:
			if (!tx_trylock(m))
				break;
			err = tx_hold(m, e, x.s, k);
			if (err)
				return quit(m, e, gen, err, sent_only, rep, cap);
			continue;
		case E_PENDING:
			if (!sluice__mux_rx_trylead(m))
				break;
			l = (struct lead_arg){ m, e, x.s, x.reg };
			err = rx_lead_for(&l, k);
			if (err)
				return quit(m, e, gen, err, sent_only, rep, cap);
			continue;
		case E_SENDING:
		case E_DELIVERING:
		case E_REGISTERING:
			break;
		default:
			return -ENOENT;		/* forgotten by another thread */
		}
		if (st == E_PENDING)
			want_set(m, e, true);
		err = sluice__wait(&e->w, &k->c, &own_ops, &x, &e->seq, &e->nwait);
		if (st == E_PENDING)
			want_set(m, e, false);
		if (err)
			return quit(m, e, gen, err, sent_only, rep, cap);
		/* Each look makes progress or ends; our entries are ours. */
		k->c.stuck = 0;
	}
}

/* Leaving a wait: if the lead fell to us, it must not stay unled. */
int sluice__mux_leave(struct sluice_mux *m, int ret)
{
	if (!atomic_load_explicit(&m->rx_lead, memory_order_seq_cst))
		rx_pass(m);
	return ret;
}

/*
 * Leave @e's busy; freed while we held it, it is ours to put back.  The
 * exchange pairs with sluice__mux_entry_free()'s fetch_or: one of the two
 * sees the other, so exactly one of them recycles the entry.
 */
static void busy_leave(struct sluice_mux *m, struct entry *e)
{
	if (atomic_exchange_explicit(&e->busy, 0, memory_order_acq_rel) & BUSY_FREED)
		entry_recycle(m, e);
}

struct busy_arg {
	struct entry *e;
	uint32_t holder;	/* the busy word that kept us out */
};

static int busy_ready(void *arg)
{
	struct busy_arg *x = arg;

	return atomic_load_explicit(&x->e->busy, memory_order_acquire) != x->holder ? 0 : -EAGAIN;
}

static const struct sluice__wait_ops busy_ops = {
	.ready = busy_ready,
	.expired = sluice__mux_timed_out,
};

/*
 * Take @e's busy for @gen.  A waiter of another generation in it came
 * with a stale nonce, between its look at the generation and its take,
 * and leaves as soon as it looks again (below): wait for that, to @k's
 * deadline.  Returns 0, -EBUSY (a waiter for @gen is in it), -ENOENT
 * (@gen's use is over), or why the wait ended.
 */
static int busy_take(struct sluice_mux *m, struct entry *e, uint64_t gen, struct call *k)
{
	struct busy_arg x = { e, 0 };
	struct sluice__wait w;
	bool waited = false;
	uint64_t s;
	int err;

	sluice__tp(SLUICE__TP_MUX_TAKING, m);
	for (;;) {
		x.holder = 0;
		if (atomic_compare_exchange_strong_explicit(&e->busy, &x.holder, busy_mine(gen),
							    memory_order_acquire,
							    memory_order_acquire))
			break;
		if (!use_on(e, gen, &s))
			return -ENOENT;
		if ((x.holder & ~BUSY_FREED) == busy_mine(gen))
			return -EBUSY;
		if (!waited)
			sluice__wait_init(&w, &sluice__mux_wait_kind, k->timeout_ns, k->cancel,
					  m->spin_ns);
		waited = true;
		err = sluice__wait(&w, &k->c, &busy_ops, &x, &e->seq, &e->nwait);
		if (err)
			return err;
		k->c.stuck = 0;
	}
	sluice__tp(SLUICE__TP_MUX_HELD, m);
	/* Our generation may have gone between our look and our take. */
	if (!use_on(e, gen, &s)) {
		busy_leave(m, e);
		sluice__mux_entry_wake(e);	/* one of its own may wait for us to go */
		return -ENOENT;
	}
	return 0;
}

int sluice__mux_wait_entry(struct sluice_mux *m, struct entry *e, uint64_t gen, struct call *k,
		      bool sent_only, void *rep, size_t cap)
{
	int ret;

	/* One waiter a nonce: its wait state is the entry's. */
	ret = busy_take(m, e, gen, k);
	if (ret == -ENOENT)
		return sent_only ? 0 : ret;	/* a send whose use is over went */
	if (ret == -EBUSY)
		return ret;
	if (ret)	/* the deadline or the token, waiting for a stale waiter to go */
		return sluice__mux_leave(m, quit(m, e, gen, ret, sent_only, rep, cap));
	ret = await(m, e, gen, k, sent_only, rep, cap);
	sluice__tp(SLUICE__TP_MUX_LEAVING, m);
	busy_leave(m, e);
	return sluice__mux_leave(m, ret);
}

/* ------------------------------------------------------------- calls */

/* How a new request's reply is taken, as sluice__mux_entry_reg() reads it. */
struct how {
	void *rep;
	size_t cap;
	const struct sluice_mux_reg *reg;	/* instead, if set */
};

/* Queue a request on a new entry, and send it if nobody else is. */
static int start(struct sluice_mux *m, const void *req, size_t len, bool block,
		 const struct how *how, struct call *k, struct entry **ep, uint64_t *genp)
{
	struct entry *e;
	uint64_t gen;
	int err;

	if (len > m->req_max)
		return -EMSGSIZE;
	err = atomic_load_explicit(&m->failed, memory_order_acquire);
	if (err)
		return err;
	e = entry_get(m, block, k, &err);
	if (!e)
		return err;
	if (how->reg) {
		err = sluice__mux_entry_reg(m, e, how->reg);
		if (err) {
			sluice__mux_entry_free(m, e);
			return err;
		}
	} else {
		e->rep = how->rep;
		e->cap = how->cap;
		e->fn = NULL;
		e->keep = false;
	}
	gen = (gen_of(atomic_load_explicit(&e->state, memory_order_relaxed)) + 1) &
	      SLUICE__MUX_GEN_MASK;
	if (!gen)
		gen = 1;
	e->req = req;
	e->len = (uint32_t)len;
	/* Release: the combiner's acquire of QUEUED sees the request and the rest. */
	atomic_store_explicit(&e->state, st_make(gen, E_QUEUED), memory_order_release);
	tx_submit(m, e);
	*ep = e;
	*genp = gen;
	return 0;
}

static int call(struct sluice_mux *m, const void *req, size_t len, void *rep, size_t cap,
		const struct sluice_mux_call_opts *o, bool block)
{
	const struct how how = { rep, cap, NULL };
	struct entry *e;
	struct call k;
	uint64_t gen;
	int err;

	if (!m || (len && !req) || (cap && !rep) || !call_opts_ok(o))
		return -EINVAL;
	call_init(m, o, &k);
	err = start(m, req, len, block, &how, &k, &e, &gen);
	if (err)
		return sluice__mux_leave(m, err);
	return sluice__mux_wait_entry(m, e, gen, &k, false, rep, cap);
}

int sluice_mux_call(struct sluice_mux *m, const void *req, size_t len, void *rep, size_t cap,
		    const struct sluice_mux_call_opts *o)
{
	return call(m, req, len, rep, cap, o, true);
}

int sluice_mux_try_call(struct sluice_mux *m, const void *req, size_t len, void *rep,
			size_t cap, const struct sluice_mux_call_opts *o)
{
	return call(m, req, len, rep, cap, o, false);
}

bool sluice__mux_reg_ok(const struct sluice_mux_reg *reg)
{
	return SLUICE_OPTS_VALID(reg, sluice_mux_reg, arg) &&
	       !(SLUICE_OPT(reg, sluice_mux_reg, cap, 0) &&
		 !SLUICE_OPT(reg, sluice_mux_reg, rep, NULL));
}

static int send_req(struct sluice_mux *m, const void *req, size_t len,
		const struct sluice_mux_reg *reg, const struct sluice_mux_call_opts *o,
		bool block, uint64_t *nonce)
{
	static const struct sluice_mux_reg kept = { .sz = sizeof(kept) };
	const struct how how = { NULL, 0, reg ? reg : &kept };
	struct entry *e;
	struct call k;
	uint64_t gen;
	int err;

	if (!m || (len && !req) || !nonce || !call_opts_ok(o) || !sluice__mux_reg_ok(reg))
		return -EINVAL;
	call_init(m, o, &k);
	err = start(m, req, len, block, &how, &k, &e, &gen);
	if (err)
		return sluice__mux_leave(m, err);
	/* Ours until it is in the ring: the request is in our caller's memory. */
	err = sluice__mux_wait_entry(m, e, gen, &k, true, NULL, 0);
	if (err)
		return err;
	*nonce = nonce_of(m, e, gen);
	return 0;
}

int sluice_mux_send(struct sluice_mux *m, const void *req, size_t len,
		    const struct sluice_mux_reg *reg, const struct sluice_mux_call_opts *o,
		    uint64_t *nonce)
{
	return send_req(m, req, len, reg, o, true, nonce);
}

int sluice_mux_try_send(struct sluice_mux *m, const void *req, size_t len,
			const struct sluice_mux_reg *reg, uint64_t *nonce)
{
	return send_req(m, req, len, reg, NULL, false, nonce);
}
