// SPDX-License-Identifier: MIT
/*
 * The eventfd bridge of an SPSC ring (sluice_spsc_fd()): a descriptor an
 * event loop can poll for a consumer's packets.
 *
 * The bridge is a thread of the consumer's process that sleeps on the
 * ring's futex like a blocked recv would, and writes the eventfd when the
 * producer publishes or closes.  It is edge-triggered: after writing, it
 * parks until the consumer has drained the ring (a try_ call said -EAGAIN,
 * which refill() reports through sluice__spsc_fd_drained()), so a busy ring costs the
 * producer nothing and the consumer one eventfd read per burst.  The bridge
 * touches only shared atomics and its own fields, never the handle's
 * private ones, and the consumer stays armed while it exists.
 *
 * Parking is Dekker again, on @drained and @parked:
 *	bridge: parked = 1; fence; drained changed? go : sleep on drained
 *	consumer: drained++; fence; parked? wake
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <sluice/spsc.h>

#include "futex.h"
#include "spsc_internal.h"

struct sluice__spsc_fd {
	struct sluice__spsc *q;		/* only its immutable and shared parts */
	uint64_t seen;			/* tail when the bridge began */
	pthread_t thread;
	int efd;
	_Atomic bool stop;
	_Atomic uint32_t drained;	/* bumped by the consumer at -EAGAIN */
	_Atomic uint32_t parked;	/* the bridge sleeps on drained */
};

void sluice__spsc_fd_drained(struct sluice__spsc_fd *ev)
{
	atomic_fetch_add_explicit(&ev->drained, 1, memory_order_seq_cst);
	if (atomic_load_explicit(&ev->parked, memory_order_seq_cst))
		sluice__futex_wake(&ev->drained);
}

/*
 * The bridge follows tail, not the tags: it may fall a whole lap behind
 * while the consumer reads, and tail still tells it something happened.
 */
static bool ev_news(struct sluice__spsc_fd *ev, uint64_t *seen, bool *eos)
{
	struct sluice__spsc *q = ev->q;
	uint32_t ctl = atomic_load_explicit(&q->peer->ctl, memory_order_acquire);
	/* Pairs with the producer's release store of tail, after the tags. */
	uint64_t tail = atomic_load_explicit(&q->ring->tail, memory_order_acquire);

	if (tail != *seen) {
		*seen = tail;
		return true;
	}
	if ((ctl & (SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD)) && !*eos) {
		*eos = true;
		return true;
	}
	return false;
}

static bool ev_stopping(struct sluice__spsc_fd *ev)
{
	return atomic_load_explicit(&ev->stop, memory_order_acquire);
}

/* Sleep until the producer has news for the consumer (or we stop). */
static bool ev_wait_news(struct sluice__spsc_fd *ev, uint64_t *seen, bool *eos)
{
	struct sluice_spsc_side *self = ev->q->self;
	bool news = false;
	uint32_t seq;

	atomic_fetch_add_explicit(&self->waiting, 1, memory_order_seq_cst);
	for (;;) {
		/*
		 * seq before stop: sluice__spsc_fd_stop() sets stop, then bumps seq, so
		 * either we see stop here or our futex_wait sees a new seq.
		 */
		seq = atomic_load_explicit(&self->seq, memory_order_acquire);
		/* Dekker, as a sleeping wait: waiting++ before the tail load. */
		atomic_thread_fence(memory_order_seq_cst);
		if (ev_stopping(ev))
			break;
		news = ev_news(ev, seen, eos);
		if (news)
			break;
		sluice__futex_wait(&self->seq, seq, 0);
	}
	atomic_fetch_sub_explicit(&self->waiting, 1, memory_order_relaxed);
	return news;
}

/* Park until the consumer drains (or we stop); @since: drained before. */
static void ev_park(struct sluice__spsc_fd *ev, uint32_t since)
{
	atomic_store_explicit(&ev->parked, 1, memory_order_seq_cst);
	while (!ev_stopping(ev) &&
	       atomic_load_explicit(&ev->drained, memory_order_seq_cst) == since)
		sluice__futex_wait(&ev->drained, since, 0);
	atomic_store_explicit(&ev->parked, 0, memory_order_relaxed);
}

/* Make the eventfd readable. */
static void ev_signal(struct sluice__spsc_fd *ev)
{
	uint64_t one = 1;

	if (write(ev->efd, &one, sizeof(one)) < 0) {
		/* Counter full: the reader is far behind anyway. */
	}
}

static void *ev_thread(void *arg)
{
	struct sluice__spsc_fd *ev = arg;
	uint64_t seen = ev->seen;
	uint32_t since;
	bool eos = false;

	while (!ev_stopping(ev)) {
		since = atomic_load_explicit(&ev->drained, memory_order_seq_cst);
		if (!ev_wait_news(ev, &seen, &eos))
			break;
		ev_signal(ev);
		ev_park(ev, since);
	}
	return NULL;
}

int sluice_spsc_fd(struct sluice_spsc *pq)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	struct sluice__spsc_fd *ev;
	uint64_t tag;
	int err;

	if (!q || q->pub.role != SLUICE_SPSC_CONSUMER)
		return -EINVAL;
	if (q->ev)
		return q->ev->efd;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->q = q;
	ev->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ev->efd < 0) {
		err = -errno;
		goto err_free;
	}
	q->ev = ev;
	sluice__spsc_arm(q);
	/*
	 * The bridge's news is tail moving on from here.  A send after arm()
	 * sees ARMED and announces tail; one before it stored its tag where
	 * we can see it now (membarrier), and so did one whose tail we load
	 * here (release, acquire).  Packets already waiting: readable now.
	 */
	ev->seen = atomic_load_explicit(&q->ring->tail, memory_order_acquire);
	if (sluice__spsc_published(q, q->pub.pos, &tag))
		ev_signal(ev);
	err = -pthread_create(&ev->thread, NULL, ev_thread, ev);
	if (err)
		goto err_close;
	return ev->efd;

err_close:
	q->ev = NULL;
	close(ev->efd);
err_free:
	free(ev);
	return err;
}

void sluice__spsc_fd_stop(struct sluice__spsc *q)
{
	struct sluice__spsc_fd *ev = q->ev;

	atomic_store_explicit(&ev->stop, true, memory_order_seq_cst);
	sluice__spsc_wake_side(q->self);
	/* Change drained too, so a bridge about to park cannot sleep on it. */
	atomic_fetch_add_explicit(&ev->drained, 1, memory_order_seq_cst);
	sluice__futex_wake(&ev->drained);
	pthread_join(ev->thread, NULL);
	close(ev->efd);
	free(ev);
	q->ev = NULL;
}
