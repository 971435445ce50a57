/* SPDX-License-Identifier: MIT */
/*
 * SPSC rings: one producer process, one consumer process, fixed-size slots.
 *
 * A ring lives in a region under a name.  Each slot carries one packet of
 * up to slot_size bytes and its length.  The producer copies packets in
 * (send, send_batch) or fills slots in place (reserve, commit); the consumer
 * copies them out (recv, recv_batch) or reads them in place (peek, release).
 * No system call on the data path: a side makes one only to sleep, and the
 * other side only to wake a sleeper.
 *
 * Errors common to the data calls:
 *   -EAGAIN     try_ call: ring full (producer) or empty (consumer)
 *   -ETIMEDOUT  blocking call: its deadline passed, the handle's timeout
 *               (default 5 s) after it first waited; one deadline for the
 *               whole call, however many times it waits
 *   -ECANCELED  (or the token's own reason) the handle's cancellation token
 *               was triggered
 *   -EPIPE      producer: the consumer closed or died.
 *               consumer: the producer closed or died and every packet it
 *               committed has been read (end of stream).
 *               A death is seen at once with a liveness monitor; without
 *               one, by the first blocking call to reach its deadline,
 *               which then returns -EPIPE (or a batch its count so far),
 *               and every call after it at once
 *   -EBADMSG    the peer wrote something impossible into shared memory
 *               (an index out of range or moved backwards, a length out of
 *               range); nothing is consumed
 *   -EINVAL     the call does not belong to this side (recv on a producer)
 *   -EBUSY      a reservation or a peek is outstanding
 * A packet is committed when send, send_batch or commit returns it as sent;
 * a committed packet is delivered exactly once, and a closed or dead
 * producer's committed packets are still delivered.
 */
#ifndef SLUICE_SPSC_H
#define SLUICE_SPSC_H

#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#include <sluice/cancel.h>
#include <sluice/copy.h>
#include <sluice/liveness.h>
#include <sluice/opts.h>
#include <sluice/region.h>
#include <sluice/spsc_core.h>

#ifdef __cplusplus
extern "C" {
#endif

enum sluice_spsc_role {
	SLUICE_SPSC_PRODUCER = 1,
	SLUICE_SPSC_CONSUMER = 2,
};

/* Largest slot count and slot size. */
#define SLUICE_SPSC_SLOTS_MAX		(1u << 24)
#define SLUICE_SPSC_SLOT_SIZE_MAX	(1u << 24)

/* Options for sluice_spsc_create() and sluice_spsc_attach(); NULL: defaults. */
struct sluice_spsc_opts {
	size_t sz;			/* sizeof(struct sluice_spsc_opts) */
	uint64_t timeout_ns;		/* blocking calls give up after this; 0: 5 s */
	struct sluice_cancel *cancel;	/* waits end when it is triggered */
	uint32_t spin_ns;		/* spin this long before sleeping; 0: adapt
					 * between 1 and 50 us; UINT32_MAX: never
					 * sleep (spin until the deadline) */
	uint32_t flags;			/* none yet; must be 0 */
	struct sluice_liveness *liveness; /* watch the peer with this monitor:
					 * its death ends waits at once
					 * (liveness.h); NULL: at the first
					 * deadline a blocking call reaches.
					 * The peer is (re)watched at attach
					 * and before each sleep: a handle
					 * used only through try_ calls sees
					 * only the peer it attached with */
};

/**
 * sluice_spsc_create() - make a ring in a region and attach to one side.
 * @r:          the region.
 * @name:       object name in the region (SLUICE_OBJ_NAME_MAX characters).
 * @slot_count: slots, a power of two from 2 to SLUICE_SPSC_SLOTS_MAX.
 * @slot_size:  largest packet, 1 to SLUICE_SPSC_SLOT_SIZE_MAX bytes.
 * @role:       the side this process takes.
 * @opts:       options, or NULL.
 * @out:        receives the handle.
 *
 * Return: 0, or -EINVAL (bad argument), -EEXIST (the name is taken),
 * -ENOSPC (no room in the region), -ENOMEM, or another error of
 * sluice_region_alloc() (-ENAMETOOLONG, -ETIMEDOUT, -EBADMSG).
 */
int sluice_spsc_create(struct sluice_region *r, const char *name,
		       uint32_t slot_count, uint32_t slot_size,
		       enum sluice_spsc_role role,
		       const struct sluice_spsc_opts *opts,
		       struct sluice_spsc **out);

/**
 * sluice_spsc_attach() - take one side of an existing ring.
 *
 * A side held by a live process cannot be taken (-EBUSY); a side whose
 * process died can be, and the ring carries on from the last committed
 * packet.  A side that was closed stays closed (-EPIPE).
 *
 * Return: 0, or -ENOENT (no such ring), -EPROTO (not a ring, or another
 * ABI), -EBADMSG (the ring is corrupted), -EBUSY, -EPIPE, -EINVAL,
 * -ENAMETOOLONG, -EAGAIN (its creator has not finished making it),
 * -ETIMEDOUT (the region's directory lock was held too long), -ENOMEM.
 */
int sluice_spsc_attach(struct sluice_region *r, const char *name,
		       enum sluice_spsc_role role,
		       const struct sluice_spsc_opts *opts,
		       struct sluice_spsc **out);

/**
 * sluice_spsc_close() - leave the ring and free the handle.
 *
 * A closing producer's committed packets stay readable; the consumer gets
 * -EPIPE after the last one.  A closing consumer makes the producer's calls
 * fail with -EPIPE.  Either way the peer is woken.  An outstanding
 * reservation is dropped.  NULL is a no-op.
 */
void sluice_spsc_close(struct sluice_spsc *q);

/*
 * The one-packet calls are inline, for speed; each is also exported out of
 * line under its own name (lib/spsc_ffi.c), for callers that cannot use a
 * C inline function.  The library defines SLUICE_SPSC_INLINE to nothing to
 * compile those; users leave it alone.
 */
#ifndef SLUICE_SPSC_INLINE
#define SLUICE_SPSC_INLINE static inline
#endif

/**
 * sluice_spsc_try_send() - copy one packet in, or fail at once.
 * Return: 0, -EMSGSIZE if @len exceeds the slot size, -EAGAIN if full, or
 * a common error.
 */
SLUICE_SPSC_INLINE int sluice_spsc_try_send(struct sluice_spsc *q, const void *buf,
				       size_t len);

/** sluice_spsc_send() - as try_send, but wait for room (one deadline). */
SLUICE_SPSC_INLINE int sluice_spsc_send(struct sluice_spsc *q, const void *buf,
				   size_t len);

/**
 * sluice_spsc_try_recv() - copy one packet out, or fail at once.
 * @cap: room in @buf.
 * Return: the packet's length, -ENOBUFS if it is longer than @cap (it stays
 * in the ring), -EAGAIN if the ring is empty, or a common error.
 */
SLUICE_SPSC_INLINE int sluice_spsc_try_recv(struct sluice_spsc *q, void *buf,
				       size_t cap);

/** sluice_spsc_recv() - as try_recv, but wait for a packet (one deadline). */
SLUICE_SPSC_INLINE int sluice_spsc_recv(struct sluice_spsc *q, void *buf, size_t cap);

/**
 * sluice_spsc_send_batch() - copy packets in, publishing them together.
 * @iov: the packets; @n: how many.
 *
 * If any packet is longer than the slot size, returns -EMSGSIZE and sends
 * nothing.  Otherwise sends all @n, waiting for room as needed; every group
 * that fits is published with one index store and at most one wakeup.
 * All the waits of one call run to one deadline.
 *
 * Return: @n, or if an error stops it part way the number sent so far (the
 * error comes back from the next call if it persists: a consumer found
 * dead at the deadline, at once), or the error if none was sent.
 */
int sluice_spsc_send_batch(struct sluice_spsc *q, const struct iovec *iov,
			   unsigned int n);

/**
 * sluice_spsc_try_send_batch() - send as many of @iov as fit now, with one
 * index store and at most one wakeup.
 * Return: how many (1 to @n), -EAGAIN if none fit, -EMSGSIZE as above.
 */
int sluice_spsc_try_send_batch(struct sluice_spsc *q, const struct iovec *iov,
			       unsigned int n);

/**
 * sluice_spsc_recv_batch() - copy out up to @n packets, waiting for one.
 * @iov: buffers; on return iov[i].iov_len is packet i's length.
 *
 * Takes packets while they fit their buffers: a packet longer than its
 * buffer stays in the ring (and is -ENOBUFS if it is the first).
 *
 * Return: how many (at least 1), or an error.
 */
int sluice_spsc_recv_batch(struct sluice_spsc *q, struct iovec *iov,
			   unsigned int n);

/** sluice_spsc_try_recv_batch() - as recv_batch, -EAGAIN when empty. */
int sluice_spsc_try_recv_batch(struct sluice_spsc *q, struct iovec *iov,
			       unsigned int n);

/**
 * sluice_spsc_reserve() - claim up to @n free slots to fill in place,
 * waiting for at least one.
 * @iov: receives each slot's address, with iov_len the slot size.  The
 *       slots come in ring order; a run that wraps is still one call.
 *
 * Write the packets, set each iov_len to its packet's length, then
 * sluice_spsc_commit().  Nothing is visible to the consumer before that.
 *
 * Return: how many slots (1 to @n), or an error (-EBUSY if a reservation
 * is already outstanding).
 */
int sluice_spsc_reserve(struct sluice_spsc *q, struct iovec *iov,
			unsigned int n);

/** sluice_spsc_try_reserve() - as reserve, -EAGAIN when full. */
int sluice_spsc_try_reserve(struct sluice_spsc *q, struct iovec *iov,
			    unsigned int n);

/**
 * sluice_spsc_commit() - publish the first @n reserved slots.
 * @iov: as filled by reserve, with iov_len set to each packet's length.
 *
 * Slots reserved but not committed are given back.  @n may be 0.
 *
 * Return: @n, -EMSGSIZE if a length exceeds the slot size, -EINVAL if @n
 * exceeds the reservation or an address is not the reserved slot's (both
 * before publishing anything), -EPIPE if the consumer has closed or died
 * (nothing is published and the reservation is dropped: nobody would read
 * it).
 */
int sluice_spsc_commit(struct sluice_spsc *q, const struct iovec *iov,
		       unsigned int n);

/**
 * sluice_spsc_peek() - look at up to @n packets in place, waiting for one.
 * @iov: receives each packet's address and length (checked against the
 *       slot size).  The memory is the producer's too: a misbehaving
 *       producer could change it while you read.
 *
 * Return: how many (1 to @n), or an error (-EBUSY if a peek is already
 * outstanding).
 */
int sluice_spsc_peek(struct sluice_spsc *q, struct iovec *iov, unsigned int n);

/** sluice_spsc_try_peek() - as peek, -EAGAIN when empty. */
int sluice_spsc_try_peek(struct sluice_spsc *q, struct iovec *iov,
			 unsigned int n);

/**
 * sluice_spsc_release() - hand the first @n peeked slots back to the
 * producer; the rest stay unread.
 * Return: @n, or -EINVAL if more than were peeked.
 */
int sluice_spsc_release(struct sluice_spsc *q, unsigned int n);

/**
 * sluice_spsc_wait() - wait until the next try_ call on this side would not
 * return -EAGAIN: spin for the spin budget, then sleep on a futex.
 *
 * A triggered token ends waits, not calls that need no wait: a recv with a
 * packet there, or a send with room, still succeeds.  So a survivor can
 * read what a dead peer committed after its waits were cancelled.
 *
 * Each call has its own deadline, the handle's timeout from its start,
 * but one: if the last wait said ready and the try_ call after it still
 * found nothing (a hostile peer took back what the wait saw), this wait
 * carries on with that wait's deadline, so that a loop of try_ calls and
 * waits, as send and recv are, ends by one deadline.  At the deadline the
 * wait looks at the peer's process: if that is gone, the peer's side is
 * marked dead and the wait says -EPIPE (a consumer's once every packet is
 * read).
 *
 * Return: 0, -ETIMEDOUT, the cancellation reason, -EPIPE, -EBADMSG,
 * -EBUSY (a reservation or peek is outstanding), -EINVAL.
 */
int sluice_spsc_wait(struct sluice_spsc *q);

/**
 * sluice_spsc_set_timeout() - timeout of blocking calls; 0: 5 s.  A
 * timeout too large to add to the clock waits for ever.
 */
void sluice_spsc_set_timeout(struct sluice_spsc *q, uint64_t timeout_ns);

/** sluice_spsc_set_cancel() - tie the handle's waits to @c (NULL: none). */
void sluice_spsc_set_cancel(struct sluice_spsc *q, struct sluice_cancel *c);

/**
 * sluice_spsc_fd() - an eventfd for poll(2) and epoll(7) that becomes
 * readable when packets arrive or the stream ends.  It is edge-triggered:
 * read it to clear it, then drain with the try_ calls until -EAGAIN.
 * Consumer only; made on the first call (it starts a helper thread that
 * sleeps on the ring's futex); owned and closed by the handle.
 *
 * Return: the descriptor, -EINVAL on a producer, or a negative errno.
 */
int sluice_spsc_fd(struct sluice_spsc *q);

/* Ring geometry. */
uint32_t sluice_spsc_slot_count(const struct sluice_spsc *q);
uint32_t sluice_spsc_slot_size(const struct sluice_spsc *q);

/* ---------------------------------------------------------------------
 * The inline fast path.  Everything rare is out of line in lib/spsc.c.
 */

/* Out of line: not API, called only from the functions below. */
int sluice__spsc_refill(struct sluice_spsc *q);
void sluice__spsc_wake(struct sluice_spsc *q);

static inline _Atomic uint64_t *sluice__spsc_tag(const struct sluice_spsc *q,
						 uint64_t idx)
{
	return &q->tags[(uint32_t)idx & q->mask];
}

static inline unsigned char *sluice__spsc_data(const struct sluice_spsc *q,
					       uint64_t idx)
{
	return q->slots + (size_t)((uint32_t)idx & q->mask) * q->stride;
}

/*
 * After publishing, wake the peer if it may be asleep.  The ARMED bit is
 * read after our publishing store; lib/spsc.c explains why that, plus the
 * peer's membarrier when it arms, is enough for a wakeup never to be lost.
 * A producer's wake also stores tail, which the eventfd bridge follows.
 */
static inline void sluice__spsc_kick(struct sluice_spsc *q)
{
	if (__builtin_expect(atomic_load_explicit(q->peer_ctl,
						  memory_order_relaxed) &
			     SLUICE_SPSC_ARMED, 0))
		sluice__spsc_wake(q);
}

SLUICE_SPSC_INLINE int sluice_spsc_try_send(struct sluice_spsc *q, const void *buf,
				       size_t len)
{
	uint64_t pos = q->pos;
	int err;

	if (__builtin_expect(q->role != SLUICE_SPSC_PRODUCER, 0))
		return -EINVAL;
	if (__builtin_expect(len > q->slot_size, 0))
		return -EMSGSIZE;
	if (__builtin_expect(pos == q->limit || q->held ||
			     (atomic_load_explicit(q->peer_ctl, memory_order_relaxed) &
			      (SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD)), 0)) {
		err = sluice__spsc_refill(q);
		if (err)
			return err;
	}
	sluice__copy(sluice__spsc_data(q, pos), buf, len, SLUICE__COPY_FRESH);
	/*
	 * Publish.  Pairs with the consumer's acquire load of the tag: seeing
	 * it, the consumer sees the bytes.
	 */
	atomic_store_explicit(sluice__spsc_tag(q, pos), SLUICE_SPSC_TAG(pos, len),
			      memory_order_release);
	q->pos = pos + 1;
	/*
	 * No tail store: the consumer finds packets by their tags, and tail
	 * is announced only when the peer may be asleep (in the kick) or we
	 * close: a store per packet here would queue behind the slot's line.
	 */
	sluice__spsc_kick(q);
	return 0;
}

SLUICE_SPSC_INLINE int sluice_spsc_try_recv(struct sluice_spsc *q, void *buf,
				       size_t cap)
{
	uint64_t pos = q->pos, tag;
	uint32_t len;
	int err;

	if (__builtin_expect(q->role != SLUICE_SPSC_CONSUMER, 0))
		return -EINVAL;
	if (__builtin_expect(q->held, 0))
		return -EBUSY;
	/* Pairs with the producer's release store of the tag. */
	tag = atomic_load_explicit(sluice__spsc_tag(q, pos), memory_order_acquire);
	if (__builtin_expect(!SLUICE_SPSC_TAG_IS(tag, pos), 0)) {
		err = sluice__spsc_refill(q);
		if (err)
			return err;
		/* Loaded again, so checked again: a peer may have changed it. */
		tag = atomic_load_explicit(sluice__spsc_tag(q, pos), memory_order_acquire);
		if (__builtin_expect(!SLUICE_SPSC_TAG_IS(tag, pos), 0))
			return -EAGAIN;
	}
	/* Loaded once: the producer's word, checked before use. */
	len = (uint32_t)tag;
	if (__builtin_expect(len > q->slot_size, 0))
		return -EBADMSG;
	if (__builtin_expect(len > cap, 0))
		return -ENOBUFS;
	sluice__copy(buf, sluice__spsc_data(q, pos), len, SLUICE__COPY_FRESH);
	q->pos = pos + 1;
	/*
	 * Give the slot back.  Pairs with the producer's acquire load of head
	 * in sluice__spsc_refill(): it reuses the slot only after our copy.
	 */
	atomic_store_explicit(q->head, pos + 1, memory_order_release);
	sluice__spsc_kick(q);
	return (int)len;
}

SLUICE_SPSC_INLINE int sluice_spsc_send(struct sluice_spsc *q, const void *buf,
				   size_t len)
{
	int err;

	while ((err = sluice_spsc_try_send(q, buf, len)) == -EAGAIN) {
		err = sluice_spsc_wait(q);
		if (err)
			return err;
	}
	return err;
}

SLUICE_SPSC_INLINE int sluice_spsc_recv(struct sluice_spsc *q, void *buf, size_t cap)
{
	int ret;

	while ((ret = sluice_spsc_try_recv(q, buf, cap)) == -EAGAIN) {
		ret = sluice_spsc_wait(q);
		if (ret)
			return ret;
	}
	return ret;
}

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_SPSC_H */
