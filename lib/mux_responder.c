// SPDX-License-Identifier: MIT
/*
 * The responder's side of a multiplexed link (mux.h).
 *
 * Any thread may receive and any may reply.  A ring end is one thread's
 * at a time, so each has a lock: a word that is 0 when free, taken by
 * compare-and-swap, slept on through the wait engine when taken.  Its
 * holder waits for the ring (a request, room for a reply) holding it:
 * every other thread would wait for the same ring anyway, and each waits
 * for the lock within its own deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sluice/copy.h>
#include <sluice/mux.h>

#include "futex.h"
#include "internal.h"
#include "mux_internal.h"
#include "spsc_internal.h"
#include "testpoint.h"
#include "wait.h"

struct end_lock {
	_Atomic uint32_t word;		/* 1: held */
	_Atomic uint32_t seq;		/* futex: bumped at release if one sleeps */
	_Atomic uint32_t nwait;
	_Atomic uintptr_t holder;	/* pthread_self() of the holder, for -EBUSY */
};

struct sluice_mux_responder {
	struct sluice_spsc *in;
	struct sluice_spsc *out;
	uint64_t timeout_ns;
	struct sluice_cancel *cancel;
	uint32_t spin_ns;
	_Alignas(64) struct end_lock rx;
	_Alignas(64) struct end_lock tx;
	/* A reply reserved in place: tx's holder's. */
	struct iovec held;
	uint64_t held_nonce;
	/*
	 * -EPIPE once a receive found the caller side gone.  Its two rings
	 * learn of it one at a time (a monitor fires a watch each); a reply
	 * after that receive must not find the other ring still open.
	 */
	_Atomic int gone;
};

/* One call: all its waits run to one deadline. */
struct rcall {
	struct sluice__wait_call c;
	struct sluice__wait w;		/* for the locks */
};

static void rcall_init(const struct sluice_mux_responder *r, struct rcall *k)
{
	memset(&k->c, 0, sizeof(k->c));
	sluice__wait_init(&k->w, &sluice__mux_wait_kind, r->timeout_ns, r->cancel, r->spin_ns);
}

static uintptr_t self(void)
{
	return (uintptr_t)pthread_self();
}

static bool lock_try(struct end_lock *l)
{
	uint32_t free_ = 0;

	if (atomic_load_explicit(&l->word, memory_order_relaxed) ||
	    !atomic_compare_exchange_strong_explicit(&l->word, &free_, 1, memory_order_acquire,
						     memory_order_relaxed))
		return false;
	atomic_store_explicit(&l->holder, self(), memory_order_relaxed);
	return true;
}

static int lock_ready(void *arg)
{
	struct end_lock *l = arg;

	return atomic_load_explicit(&l->word, memory_order_acquire) ? -EAGAIN : 0;
}

static int lock_expired(void *arg)
{
	(void)arg;
	return -ETIMEDOUT;
}

static const struct sluice__wait_ops lock_ops = {
	.ready = lock_ready,
	.expired = lock_expired,
};

/* Take @l within call @k.  -EBUSY if this thread holds it already. */
static int lock_take(struct end_lock *l, struct rcall *k)
{
	int err;

	/* Only we store our own id, and we clear it before releasing. */
	if (atomic_load_explicit(&l->holder, memory_order_relaxed) == self())
		return -EBUSY;
	while (!lock_try(l)) {
		err = sluice__wait(&k->w, &k->c, &lock_ops, l, &l->seq, &l->nwait);
		if (err)
			return err;
		k->c.stuck = 0;
	}
	return 0;
}

static void lock_give(struct end_lock *l)
{
	atomic_store_explicit(&l->holder, 0, memory_order_relaxed);
	atomic_store_explicit(&l->word, 0, memory_order_release);
	/* Dekker's waker (wait.c): the release, then the count. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&l->nwait, memory_order_relaxed))
		sluice__futex_bump_wake(&l->seq);
}

static int never(void *arg)
{
	(void)arg;
	return -EAGAIN;
}

/* Wait for ring @q, its end held, within @k. */
static int ring_wait(struct sluice_mux_responder *r, struct sluice_spsc *q, struct rcall *k)
{
	int err = sluice__spsc_wait_in(q, &k->c, &sluice__mux_wait_kind, r->timeout_ns,
				       r->cancel, never, NULL);

	k->c.stuck = 0;
	return err;
}

/* ------------------------------------------------------------- requests */

/*
 * Take up to @n requests off the ring, holding rx: the first waited for
 * when @block.  A request with a header that cannot be is dropped and
 * said (-EBADMSG) when it comes first; after others it stays for the
 * next call.
 */
static int take(struct sluice_mux_responder *r, uint64_t *nonce, struct iovec *iov,
		unsigned int n, bool block, struct rcall *k)
{
	struct sluice__mux_hdr h;
	struct iovec v[32];
	unsigned int i, want = n < 32 ? n : 32;
	size_t len;
	int got, err = 0;

	for (;;) {
		got = sluice_spsc_try_peek(r->in, v, want);
		if (got != -EAGAIN || !block)
			break;
		err = ring_wait(r, r->in, k);
		if (err)
			return err;
	}
	if (got < 0)
		return got;
	for (i = 0; i < (unsigned int)got; i++) {
		if (!sluice__mux_hdr_read(v[i].iov_base, v[i].iov_len, false, &h)) {
			if (!i) {
				i = 1;
				err = -EBADMSG;
			}
			break;
		}
		len = v[i].iov_len - sizeof(h);
		if (len > iov[i].iov_len) {
			if (!i)
				err = -ENOBUFS;
			break;
		}
		sluice__copy(iov[i].iov_base, (const char *)v[i].iov_base + sizeof(h), len,
			     SLUICE__COPY_FRESH);
		iov[i].iov_len = len;
		nonce[i] = h.nonce;
	}
	sluice_spsc_release(r->in, i);
	return err ? err : (int)i;
}

static int recv_batch(struct sluice_mux_responder *r, uint64_t *nonce, struct iovec *iov,
		      unsigned int n, bool block)
{
	struct rcall k;
	int ret;

	if (!r || !nonce || !iov || !n)
		return -EINVAL;
	rcall_init(r, &k);
	ret = block ? lock_take(&r->rx, &k) : (lock_try(&r->rx) ? 0 : -EAGAIN);
	if (ret)
		return ret;
	ret = take(r, nonce, iov, n, block, &k);
	lock_give(&r->rx);
	if (ret == -EPIPE)	/* the caller side is gone: for replies too */
		atomic_store_explicit(&r->gone, ret, memory_order_release);
	return ret;
}

int sluice_mux_recv_batch(struct sluice_mux_responder *r, uint64_t *nonce, struct iovec *iov,
			  unsigned int n)
{
	return recv_batch(r, nonce, iov, n, true);
}

static int recv_one(struct sluice_mux_responder *r, uint64_t *nonce, void *buf, size_t cap,
		    bool block)
{
	struct iovec iov = { buf, cap };
	int ret;

	if (cap && !buf)
		return -EINVAL;
	ret = recv_batch(r, nonce, &iov, 1, block);
	return ret < 0 ? ret : (int)iov.iov_len;
}

int sluice_mux_recv(struct sluice_mux_responder *r, uint64_t *nonce, void *buf, size_t cap)
{
	return recv_one(r, nonce, buf, cap, true);
}

int sluice_mux_try_recv(struct sluice_mux_responder *r, uint64_t *nonce, void *buf, size_t cap)
{
	return recv_one(r, nonce, buf, cap, false);
}

/* ------------------------------------------------------------- replies */

/* Room for up to @n replies, holding tx, waiting within @k. */
static int room(struct sluice_mux_responder *r, struct iovec *v, unsigned int n,
		struct rcall *k)
{
	int got, err;

	err = atomic_load_explicit(&r->gone, memory_order_acquire);
	if (err)
		return err;
	while ((got = sluice_spsc_try_reserve(r->out, v, n)) == -EAGAIN) {
		err = ring_wait(r, r->out, k);
		if (err)
			return err;
	}
	return got;
}

static void put(const struct iovec *slot, uint64_t nonce, int status, const void *buf,
		size_t len, struct iovec *out)
{
	struct sluice__mux_hdr h = { .nonce = nonce, .status = status };

	memcpy(slot->iov_base, &h, sizeof(h));
	sluice__copy((char *)slot->iov_base + sizeof(h), buf, len, SLUICE__COPY_FRESH);
	out->iov_base = slot->iov_base;
	out->iov_len = sizeof(h) + len;
}

/* Send @n replies; @status[i] (or 0) each, held tx or not. */
static int replies(struct sluice_mux_responder *r, const uint64_t *nonce,
		   const struct iovec *iov, const int *status, unsigned int n)
{
	size_t max = sluice_spsc_slot_size(r->out) - SLUICE_MUX_HDR;
	struct iovec v[32];
	struct rcall k;
	unsigned int i, done = 0;
	int got, err;

	if (!r || !nonce || (n && !status && !iov))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (!nonce[i] || (!status && iov[i].iov_len && !iov[i].iov_base))
			return -EINVAL;
		if (!status && iov[i].iov_len > max)
			return -EMSGSIZE;
	}
	rcall_init(r, &k);
	err = lock_take(&r->tx, &k);
	if (err)
		return err;
	while (done < n) {
		got = room(r, v, n - done < 32 ? n - done : 32, &k);
		if (got < 0) {
			err = got;
			break;
		}
		for (i = 0; i < (unsigned int)got; i++) {
			if (status)
				put(&v[i], nonce[done + i], status[done + i], NULL, 0, &v[i]);
			else
				put(&v[i], nonce[done + i], 0, iov[done + i].iov_base,
				    iov[done + i].iov_len, &v[i]);
		}
		err = sluice_spsc_commit(r->out, v, (unsigned int)got);
		if (err < 0)
			break;
		err = 0;
		done += (unsigned int)got;
	}
	lock_give(&r->tx);
	return done ? (int)done : err;
}

int sluice_mux_reply_batch(struct sluice_mux_responder *r, const uint64_t *nonce,
			   const struct iovec *iov, unsigned int n)
{
	return iov || !n ? replies(r, nonce, iov, NULL, n) : -EINVAL;
}

int sluice_mux_reply(struct sluice_mux_responder *r, uint64_t nonce, const void *buf, size_t len)
{
	struct iovec iov = { (void *)buf, len };
	int ret = replies(r, &nonce, &iov, NULL, 1);

	return ret < 0 ? ret : 0;
}

int sluice_mux_reply_error(struct sluice_mux_responder *r, uint64_t nonce, int err)
{
	int ret;

	if (err >= 0 || err < -SLUICE__MUX_ERRNO_MAX)
		return -EINVAL;
	ret = replies(r, &nonce, NULL, &err, 1);
	return ret < 0 ? ret : 0;
}

int sluice_mux_reply_reserve(struct sluice_mux_responder *r, uint64_t nonce, struct iovec *iov)
{
	struct rcall k;
	struct iovec v;
	int err;

	if (!r || !nonce || !iov)
		return -EINVAL;
	rcall_init(r, &k);
	err = lock_take(&r->tx, &k);
	if (err)
		return err;
	err = room(r, &v, 1, &k);
	if (err < 0) {
		lock_give(&r->tx);
		return err;
	}
	/* tx stays ours until commit or abort. */
	sluice__tp(SLUICE__TP_MUX_RESERVED, r);
	r->held = v;
	r->held_nonce = nonce;
	iov->iov_base = (char *)v.iov_base + SLUICE_MUX_HDR;
	iov->iov_len = v.iov_len - SLUICE_MUX_HDR;
	return 0;
}

int sluice_mux_reply_commit(struct sluice_mux_responder *r, size_t len)
{
	struct sluice__mux_hdr h = { 0 };
	struct iovec v;
	int err;

	if (!r || atomic_load_explicit(&r->tx.holder, memory_order_relaxed) != self())
		return -EINVAL;
	if (len > r->held.iov_len - SLUICE_MUX_HDR)
		return -EMSGSIZE;
	h.nonce = r->held_nonce;
	memcpy(r->held.iov_base, &h, sizeof(h));
	v.iov_base = r->held.iov_base;
	v.iov_len = sizeof(h) + len;
	err = sluice_spsc_commit(r->out, &v, 1);
	lock_give(&r->tx);
	return err < 0 ? err : 0;
}

void sluice_mux_reply_abort(struct sluice_mux_responder *r)
{
	if (!r || atomic_load_explicit(&r->tx.holder, memory_order_relaxed) != self())
		return;
	(void)sluice_spsc_commit(r->out, NULL, 0);
	lock_give(&r->tx);
}

/* ------------------------------------------------------------- the responder */

int sluice_mux_responder_fd(struct sluice_mux_responder *r)
{
	return r ? sluice_spsc_fd(r->in) : -EINVAL;
}

static bool opts_ok(const struct sluice_mux_responder_opts *o)
{
	return SLUICE_OPTS_VALID(o, sluice_mux_responder_opts, flags) &&
	       !SLUICE_OPT(o, sluice_mux_responder_opts, flags, 0);
}

int sluice_mux_responder_create(struct sluice_spsc *in, struct sluice_spsc *out,
				const struct sluice_mux_responder_opts *opts,
				struct sluice_mux_responder **rp)
{
	struct sluice_mux_responder *r;
	uint64_t t;

	if (!in || !out || !rp || in == out || in->role != SLUICE_SPSC_CONSUMER ||
	    out->role != SLUICE_SPSC_PRODUCER || in->slot_size < SLUICE_MUX_HDR ||
	    out->slot_size < SLUICE_MUX_HDR || !opts_ok(opts))
		return -EINVAL;
	r = aligned_alloc(64, sizeof(*r));
	if (!r)
		return -ENOMEM;
	memset(r, 0, sizeof(*r));
	r->in = in;
	r->out = out;
	t = SLUICE_OPT(opts, sluice_mux_responder_opts, timeout_ns, 0);
	r->timeout_ns = t ? t : SLUICE__WAIT_TIMEOUT_NS;
	r->cancel = SLUICE_OPT(opts, sluice_mux_responder_opts, cancel, NULL);
	r->spin_ns = SLUICE_OPT(opts, sluice_mux_responder_opts, spin_ns, 0);
	*rp = r;
	return 0;
}

void sluice_mux_responder_close(struct sluice_mux_responder *r)
{
	if (!r)
		return;
	sluice_spsc_close(r->in);
	sluice_spsc_close(r->out);
	free(r);
}
