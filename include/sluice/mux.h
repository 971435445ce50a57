/* SPDX-License-Identifier: MIT */
/*
 * Multiplexing: many requests in flight over one pair of SPSC rings, each
 * reply routed to whoever waits for it by a nonce.
 *
 * A link between two processes is two rings, one each way.  On one side a
 * multiplexer (struct sluice_mux) owns the outbound ring's producer and
 * the inbound ring's consumer; on the other a responder (struct
 * sluice_mux_responder) owns the other two ends.  Every message carries a
 * SLUICE_MUX_HDR-byte header with its nonce; a reply carries its request's.
 *
 * The caller side.  Any number of threads of the process call at once on
 * one multiplexer.  sluice_mux_call() sends a request and waits for its
 * reply; sluice_mux_send() sends one and returns its nonce, whose reply is
 * then waited for, polled, handed to a callback or signalled on an fd
 * (sluice_mux_register()).  Requests of threads that send at once reach
 * the ring together: one of them copies them all in and publishes them
 * with one index store and at most one wakeup.  Replies are taken off the
 * inbound ring by whichever thread dispatches: a thread running
 * sluice_mux_dispatch() in a loop, or else one of the callers waiting for
 * a reply, which hands the job on when its own reply has come.  A
 * single-threaded user needs no thread of its own.
 *
 * Nonces.  A nonce names one entry of a table of SLUICE_MUX_INFLIGHT_MAX
 * at most (the inflight option) and one use of it: a generation, which
 * starts at a random value for each multiplexer and grows with each use.
 * A reply whose nonce does not name a request that still waits (never
 * sent, timed out, cancelled, forgotten, or of an earlier multiplexer on
 * the same rings) is dropped and counted, never delivered to another.
 *
 * Failure.  When the link fails, every request waiting and every call
 * after returns at once with why: -EPIPE when the responder closed its
 * end or died (at once with a liveness monitor on the rings, else by the
 * first deadline a dispatcher reaches), -EBADMSG when the peer wrote
 * something impossible (a ring's checks, or a header that cannot be).  A
 * caller's timeout or cancellation frees its own entry and nobody else's.
 *
 * Errors common to the caller's calls:
 *   -ETIMEDOUT    the call's deadline passed: its timeout (the call's
 *                 option, else the multiplexer's, else 5 s) after it began
 *   -ECANCELED    (or the token's own reason) its token was triggered
 *   -EPIPE        the responder closed or died
 *   -EBADMSG      the peer wrote something impossible into the link
 *   -ESHUTDOWN    sluice_mux_shutdown() was called
 *   -EMSGSIZE     a request longer than sluice_mux_payload_max(); or a
 *                 reply longer than the room given for it (it is dropped)
 *   -EAGAIN       try_ call: as many requests are in flight as allowed
 *   -EINVAL       a bad argument
 * and a responder's own error, sent with sluice_mux_reply_error().
 */
#ifndef SLUICE_MUX_H
#define SLUICE_MUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include <sluice/cancel.h>
#include <sluice/opts.h>
#include <sluice/spsc.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sluice_mux;
struct sluice_mux_responder;

/* Bytes of each ring slot the header takes: a payload is the rest. */
#define SLUICE_MUX_HDR			16u
/* Requests in flight on one multiplexer, at most; and by default. */
#define SLUICE_MUX_INFLIGHT_MAX		(1u << 16)
#define SLUICE_MUX_INFLIGHT_DEFAULT	64u

/* Options of sluice_mux_create(); NULL: every default. */
struct sluice_mux_opts {
	size_t sz;			/* sizeof(struct sluice_mux_opts) */
	uint32_t inflight;		/* requests in flight at most; 0: 64 */
	uint32_t spin_ns;		/* a wait spins this long, then sleeps;
					 * 0: adapt; UINT32_MAX: never sleep */
	uint64_t timeout_ns;		/* a call's timeout; 0: 5 s */
	struct sluice_cancel *cancel;	/* every call ends when it triggers, unless
					 * the call gives its own (make that a
					 * child of this one to have both) */
	uint32_t flags;			/* none yet; must be 0 */
};

/* Per call: 0 or NULL fields take the multiplexer's; NULL: all of them. */
struct sluice_mux_call_opts {
	size_t sz;			/* sizeof(struct sluice_mux_call_opts) */
	uint64_t timeout_ns;
	struct sluice_cancel *cancel;
};

/**
 * sluice_mux_create() - a multiplexer over a link.
 * @out: producer of the ring that carries requests; its slot size bounds
 *       a request (sluice_mux_payload_max()).
 * @in:  consumer of the ring that carries replies.
 * @opts: options, or NULL.
 * @m:   receives the multiplexer.
 *
 * On success the multiplexer owns both handles (sluice_mux_close() closes
 * them); nothing else may use them.  The rings' own timeouts and tokens
 * no longer apply: calls take the multiplexer's.  Their liveness monitors
 * do: a dead responder fails the link at once.
 *
 * Return: 0, -EINVAL (a handle of the wrong side, a slot smaller than
 * SLUICE_MUX_HDR, inflight over the maximum, unknown option fields) or
 * -ENOMEM.
 */
int sluice_mux_create(struct sluice_spsc *out, struct sluice_spsc *in,
		      const struct sluice_mux_opts *opts, struct sluice_mux **m);

/**
 * sluice_mux_shutdown() - fail every request in flight, and every call
 * from now on, with -ESHUTDOWN (or with the link's error, if it failed
 * already: the first error stays); wake every thread waiting.  For
 * stopping a thread that dispatches.  Idempotent.
 */
void sluice_mux_shutdown(struct sluice_mux *m);

/**
 * sluice_mux_close() - close the rings and free the multiplexer.  No call
 * may be running on it, nor start after.  NULL is a no-op.
 */
void sluice_mux_close(struct sluice_mux *m);

/*
 * The longest request payload: the outbound ring's slot size less the
 * header.  A reply's is the inbound ring's slot size less the header.
 */
size_t sluice_mux_payload_max(const struct sluice_mux *m);

/**
 * sluice_mux_call() - send a request and wait for its reply.
 * @req, @len: the request's payload.
 * @rep, @cap: room for the reply's payload.
 * @o:   the call's timeout and token, or NULL.
 *
 * Waits for an entry if as many requests are in flight as allowed, all
 * within the call's one deadline.
 *
 * Return: the reply's length, or a negative errno (see the top).
 */
int sluice_mux_call(struct sluice_mux *m, const void *req, size_t len,
		    void *rep, size_t cap, const struct sluice_mux_call_opts *o);

/**
 * sluice_mux_try_call() - as call, but -EAGAIN at once if no entry is free
 * (as many requests are in flight as allowed).  A full ring is waited for
 * as by call.
 */
int sluice_mux_try_call(struct sluice_mux *m, const void *req, size_t len,
			void *rep, size_t cap, const struct sluice_mux_call_opts *o);

/*
 * Called once for a request's outcome, by the thread that delivers it
 * (dispatching, or failing the link): @result is the reply's length or a
 * negative errno; @rep its payload, in the room registered or, without
 * one, in place in the ring (valid only during the call; NULL on error).
 * It must not wait on this multiplexer.
 */
typedef void sluice_mux_fn(void *arg, uint64_t nonce, int result, const void *rep);

/* How a request's reply is taken: for sluice_mux_send() and _register(). */
struct sluice_mux_reg {
	size_t sz;			/* sizeof(struct sluice_mux_reg) */
	void *rep;			/* room for the reply's payload; NULL: the
					 * multiplexer keeps it for wait and poll */
	size_t cap;
	sluice_mux_fn *fn;		/* called with the outcome, after which the
					 * nonce is done with; NULL: none */
	void *arg;
};

/**
 * sluice_mux_send() - send a request; its reply is waited for later.
 * @reg:   how its reply is taken, or NULL (kept for sluice_mux_wait()).
 * @nonce: receives the request's nonce.
 *
 * Waits for an entry as sluice_mux_call() does, under @o, and returns
 * once the request is in the ring (it copies the request; @req is the
 * caller's again).  A deadline or token that comes after that is too late
 * to stop it: the send succeeded.
 *
 * Return: 0, -ENOMEM (no memory to keep the reply in), or a negative
 * errno (see the top).
 */
int sluice_mux_send(struct sluice_mux *m, const void *req, size_t len,
		    const struct sluice_mux_reg *reg, const struct sluice_mux_call_opts *o,
		    uint64_t *nonce);

/** sluice_mux_try_send() - as send, but -EAGAIN at once if no entry is
 * free; a full ring is waited for, to the multiplexer's timeout. */
int sluice_mux_try_send(struct sluice_mux *m, const void *req, size_t len,
			const struct sluice_mux_reg *reg, uint64_t *nonce);

/**
 * sluice_mux_register() - say anew how the reply to @nonce is taken.
 *
 * Replaces what was registered before; a thread waiting on @nonce in
 * sluice_mux_wait() returns -ESTALE at once.  If the reply has come
 * already, it is delivered now, as the dispatcher would have.
 *
 * Return: 0, -ENOENT (@nonce names no request this multiplexer waits
 * for), -ENOMEM (no memory to keep the reply in: the old registration
 * stays), -EINVAL.
 */
int sluice_mux_register(struct sluice_mux *m, uint64_t nonce,
			const struct sluice_mux_reg *reg);

/**
 * sluice_mux_wait() - wait for the reply to @nonce, and be done with it.
 * @rep, @cap: room for the reply, when the multiplexer kept it; ignored
 *             when it went to the room registered (NULL and 0 then).
 *
 * At the deadline or on cancellation the request is forgotten, as by
 * sluice_mux_forget().
 *
 * Return: the reply's length, -ESTALE (another registration replaced
 * this wait; the request still waits for its reply), -ENOENT, -EBUSY
 * (another thread waits on @nonce), or an error of the top.
 */
int sluice_mux_wait(struct sluice_mux *m, uint64_t nonce, void *rep, size_t cap,
		    const struct sluice_mux_call_opts *o);

/**
 * sluice_mux_poll() - as wait, without waiting: delivers what replies
 * have come if no thread is dispatching, then -EAGAIN if @nonce's has not.
 */
int sluice_mux_poll(struct sluice_mux *m, uint64_t nonce, void *rep, size_t cap);

/**
 * sluice_mux_nonce_fd() - an eventfd that becomes readable when @nonce's
 * outcome is in (then sluice_mux_poll() says what it is).  It is only
 * signalled by a thread that dispatches: with none, poll sluice_mux_fd()
 * too.  Owned by the multiplexer, and the same descriptor may serve a
 * later nonce once this one is done with.
 *
 * Return: the descriptor, -ENOENT, or a negative errno of eventfd(2).
 */
int sluice_mux_nonce_fd(struct sluice_mux *m, uint64_t nonce);

/**
 * sluice_mux_forget() - stop waiting for @nonce: its entry is freed and
 * its reply, if one comes, dropped and counted.  Counted as cancelled.
 * Return: 0 or -ENOENT.
 */
int sluice_mux_forget(struct sluice_mux *m, uint64_t nonce);

/**
 * sluice_mux_dispatch() - deliver replies, waiting for the first.
 *
 * Delivers every reply the inbound ring holds (at most a ring's worth)
 * and returns.  Waits, under @o, while another thread dispatches or none
 * has come.  Run in a loop on a thread of its own, this is the
 * multiplexer's dispatcher: callers leave the dispatching to it, taking it
 * up only in the moments between two of its calls.
 *
 * Return: how many replies were delivered or dropped (at least 1), or an
 * error of the top.
 */
int sluice_mux_dispatch(struct sluice_mux *m, const struct sluice_mux_call_opts *o);

/** sluice_mux_try_dispatch() - as dispatch, -EAGAIN if nothing is there or
 * another thread dispatches. */
int sluice_mux_try_dispatch(struct sluice_mux *m);

/**
 * sluice_mux_fd() - an eventfd that becomes readable when replies wait to
 * be dispatched (sluice_spsc_fd() of the inbound ring): read it, then
 * sluice_mux_try_dispatch() until -EAGAIN.
 */
int sluice_mux_fd(struct sluice_mux *m);

/* Requests sent and not yet answered, forgotten or failed. */
unsigned int sluice_mux_pending(const struct sluice_mux *m);

struct sluice_mux_stats {
	uint64_t sent;			/* requests published on the ring */
	uint64_t replied;		/* replies delivered */
	uint64_t timed_out;		/* requests whose wait ran out of time */
	uint64_t cancelled;		/* ... whose token fired, or forgotten */
	uint64_t dropped;		/* replies no request waited for */
	uint64_t failed;		/* requests failed with the link */
};

/* A snapshot of the counters, each exact, not all of one instant. */
void sluice_mux_stats(const struct sluice_mux *m, struct sluice_mux_stats *s);

/* ------------------------------------------------------------ responder */

/* Options of sluice_mux_responder_create(); NULL: every default. */
struct sluice_mux_responder_opts {
	size_t sz;			/* sizeof(struct sluice_mux_responder_opts) */
	uint32_t spin_ns;		/* as sluice_mux_opts */
	uint64_t timeout_ns;		/* a receive's or reply's timeout; 0: 5 s */
	struct sluice_cancel *cancel;	/* every wait ends when it triggers */
	uint32_t flags;			/* none yet; must be 0 */
};

/**
 * sluice_mux_responder_create() - the other end of a link.
 * @in:  consumer of the ring that carries requests.
 * @out: producer of the ring that carries replies.
 *
 * Owns both handles on success, as sluice_mux_create() does.
 * Return: 0, -EINVAL or -ENOMEM.
 */
int sluice_mux_responder_create(struct sluice_spsc *in, struct sluice_spsc *out,
				const struct sluice_mux_responder_opts *opts,
				struct sluice_mux_responder **r);

/** sluice_mux_responder_close() - close the rings and free it; NULL: no-op. */
void sluice_mux_responder_close(struct sluice_mux_responder *r);

/**
 * sluice_mux_recv() - take the next request; any thread may.
 * @nonce: receives its nonce, for the reply.
 * @buf, @cap: room for its payload.
 *
 * Return: the payload's length; -ENOBUFS if it is longer than @cap (it
 * stays, for a call with room); -EBADMSG for a request whose header cannot
 * be (it is dropped; the next call goes on); -EPIPE once the caller side
 * closed or died and every request it sent has been taken; -ETIMEDOUT,
 * the token's reason, -EINVAL.
 */
int sluice_mux_recv(struct sluice_mux_responder *r, uint64_t *nonce, void *buf, size_t cap);

/** sluice_mux_try_recv() - as recv, -EAGAIN if no request is there. */
int sluice_mux_try_recv(struct sluice_mux_responder *r, uint64_t *nonce, void *buf,
			size_t cap);

/**
 * sluice_mux_recv_batch() - take up to @n requests at once (32 at most),
 * waiting for the first.  iov[i] is the room for request i and gets its
 * length; nonce[i] its nonce.  Stops before a request longer than its room.
 * Return: how many (at least 1), or an error as recv.
 */
int sluice_mux_recv_batch(struct sluice_mux_responder *r, uint64_t *nonce,
			  struct iovec *iov, unsigned int n);

/**
 * sluice_mux_reply() - send the reply to @nonce; any thread may, in any
 * order.  Waits for room in the ring, within the responder's timeout.
 * Return: 0, -EMSGSIZE, -EPIPE (the caller side is gone), -ETIMEDOUT,
 * the token's reason, -EINVAL.
 */
int sluice_mux_reply(struct sluice_mux_responder *r, uint64_t nonce, const void *buf,
		     size_t len);

/**
 * sluice_mux_reply_batch() - send @n replies, published 32 at a time, each
 * group with one index store and at most one wakeup.
 * Return: @n, or how many went before an error, or the error if none did.
 */
int sluice_mux_reply_batch(struct sluice_mux_responder *r, const uint64_t *nonce,
			   const struct iovec *iov, unsigned int n);

/**
 * sluice_mux_reply_error() - answer @nonce with an error instead: its
 * caller's call returns @err, a negative errno (-4095 to -1).
 * Return: as sluice_mux_reply().
 */
int sluice_mux_reply_error(struct sluice_mux_responder *r, uint64_t nonce, int err);

/**
 * sluice_mux_reply_reserve() - reply in place: @iov gets the room for the
 * payload of @nonce's reply, in the ring.  Fill it, then
 * sluice_mux_reply_commit() or _abort().  Until then other threads'
 * replies wait: keep it short.
 * Return: 0, or an error as reply (-EBUSY: this thread holds one already).
 */
int sluice_mux_reply_reserve(struct sluice_mux_responder *r, uint64_t nonce,
			     struct iovec *iov);

/** sluice_mux_reply_commit() - send the reserved reply, @len bytes of it. */
int sluice_mux_reply_commit(struct sluice_mux_responder *r, size_t len);

/** sluice_mux_reply_abort() - give the reserved reply's room back unsent. */
void sluice_mux_reply_abort(struct sluice_mux_responder *r);

/** sluice_mux_responder_fd() - readable when requests wait (sluice_spsc_fd()). */
int sluice_mux_responder_fd(struct sluice_mux_responder *r);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_MUX_H */
