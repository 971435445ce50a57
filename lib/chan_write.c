// SPDX-License-Identifier: MIT
/*
 * Channel writers: places, reserving, filling, committing.  The protocol
 * is told at the top of chan.c.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <sluice/chan.h>
#include <sluice/copy.h>

#include "chan_internal.h"
#include "futex.h"
#include "internal.h"
#include "testpoint.h"
#include "wait.h"

#define BATCH_MAX		65535u
#define CAS_TRIES		256u		/* lost reservations, then -EAGAIN */
#define OWN_AHEAD_MAX		4096u		/* bytes owned ahead of the next batch */

struct sluice_chan_writer {
	struct sluice_chan *ch;
	uint32_t kind;
	int32_t ent;			/* our place, -1: none (weak, idle) */
	uint32_t hint;			/* weak: the place we took last */
	uint64_t limit;			/* may reserve below this (cached) */
	uint64_t committed;		/* the latest committed seen: it only grows */
	/* The outstanding slice. */
	bool held;
	uint64_t from;			/* reservation (pad included) */
	uint64_t at;			/* the slice */
	uint32_t len;			/* the slice's bytes */
	uint32_t frames;
	uint32_t want;			/* bytes a blocked reserve waits for */
	bool alone;			/* the slice began where our last one ended */
	struct sluice__wait w;
	struct sluice__chan_trying t;
};
/* sluice__chan_tick() finds our channel first in us. */
_Static_assert(__builtin_offsetof(struct sluice_chan_writer, ch) == 0, "ch moved");

/* What a tail word says to a writer: 0 (reserve on), or why not. */
static int tail_verdict(uint64_t t)
{
	if (t & CHAN_TAIL_TERM)
		return -ECONNABORTED;
	if (t & CHAN_TAIL_DRAIN)
		return -EPIPE;
	if (t % CHAN_ALIGN)	/* slices start on the grid: not a tail we made */
		return -EBADMSG;
	return 0;
}

/*
 * The bytes, in @bytes, a slice of these frames takes (@bases: their
 * buffers are input, so none may be NULL with a length).  Returns 0,
 * -EMSGSIZE (over half the ring: nothing can hold it) or -EINVAL.
 */
static int slice_bytes(const struct sluice_chan *ch, const struct iovec *iov,
		       unsigned int n, bool bases, uint64_t *bytes)
{
	uint64_t sum = CHAN_SLICE_HDR, half = ch->m.cap / 2;
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (iov[i].iov_len > half)
			return -EMSGSIZE;
		if (bases && !iov[i].iov_base && iov[i].iov_len)
			return -EINVAL;
		sum += CHAN_FRAME_HDR + align_up(iov[i].iov_len, CHAN_FRAME_ALIGN);
	}
	/* n is at most BATCH_MAX: the sum of n lengths under half cannot wrap. */
	sum = align_up(sum, CHAN_ALIGN);
	if (sum > half)
		return -EMSGSIZE;
	*bytes = sum;
	return 0;
}

/* Dekker's waker: after a seal or a cursor stored seq_cst, the counts. */
static void wake_sleepers(struct sluice_chan_hdr *h)
{
	if (atomic_load_explicit(&h->rwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&h->rseq);
	if (atomic_load_explicit(&h->wwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&h->wseq);
}

/* Take a free place in the writer table; -EUSERS if there is none. */
static int place_take(struct sluice_chan *ch, uint32_t kind, uint32_t hint, uint32_t *out)
{
	uint64_t want = CHAN_OWNER(ch->pid, kind), free_ = 0;
	uint32_t i, j;

	for (j = 0; j < ch->writers_max; j++) {
		struct sluice_chan_went *e;

		i = (hint + j) % ch->writers_max;
		e = &ch->m.writers[i];
		free_ = 0;
		/*
		 * A plain look first (no line taken for a busy place), then
		 * the CAS: it acquires the last owner's stores (pairs with
		 * the release or seq_cst store that freed it), and is in the
		 * total order for sluice__chan_strong_left() (a closing writer's Dekker).
		 */
		if (atomic_load_explicit(&e->owner, memory_order_relaxed) ||
		    !atomic_compare_exchange_strong_explicit(&e->owner, &free_, want,
							     memory_order_seq_cst,
							     memory_order_relaxed))
			continue;
		/* Sweepers and sluice__chan_watch_peers() read these; start 0 means unknown. */
		atomic_store_explicit(&e->state, CHAN_W_IDLE, memory_order_relaxed);
		atomic_store_explicit(&e->start, ch->start, memory_order_release);
		*out = i;
		return 0;
	}
	return -EUSERS;
}

static void place_give(struct sluice_chan *ch, uint32_t i)
{
	struct sluice_chan_went *e = &ch->m.writers[i];

	atomic_store_explicit(&e->state, CHAN_W_IDLE, memory_order_relaxed);
	atomic_store_explicit(&e->start, 0, memory_order_relaxed);
	/* Pairs with readers' acquire of owner: our seals come before. */
	atomic_store_explicit(&e->owner, 0, memory_order_release);
}

/* Parenthesised: the header's macro of this name takes old options too. */
int (sluice_chan_writer_open)(struct sluice_chan *ch, enum sluice_chan_kind kind,
			      const struct sluice_chan_end_opts *opts,
			      struct sluice_chan_writer **out)
{
	struct sluice_chan_end_opts o;
	struct sluice_chan_writer *w;
	uint64_t tail;
	uint32_t ent;
	int err;

	if (!ch || !out || sluice__chan_end_opts_read(opts, &o) ||
	    (kind != SLUICE_CHAN_STRONG && kind != SLUICE_CHAN_WEAK))
		return -EINVAL;
	tail = atomic_load_explicit(&ch->m.h->tail, memory_order_acquire);
	if (tail & CHAN_TAIL_TERM)
		return -ECONNABORTED;
	if (tail & CHAN_TAIL_DRAIN)
		return -EPIPE;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->ch = ch;
	w->kind = kind;
	w->ent = -1;
	w->hint = (uint32_t)ch->pid;
	sluice__chan_waiting_init(&w->w, ch, &o);
	if (kind == SLUICE_CHAN_STRONG) {
		err = place_take(ch, kind, w->hint, &ent);
		if (err) {
			free(w);
			return err;
		}
		w->ent = (int32_t)ent;
		/*
		 * Placed, look again: the last strong writer may have closed
		 * before it could see us.  (One closing right as we look can
		 * still drain; our first write then says -EPIPE.)
		 */
		tail = atomic_load_explicit(&ch->m.h->tail, memory_order_seq_cst);
		if (tail & (CHAN_TAIL_TERM | CHAN_TAIL_DRAIN)) {
			place_give(ch, ent);
			free(w);
			return tail & CHAN_TAIL_TERM ? -ECONNABORTED : -EPIPE;
		}
	}
	sluice__chan_end_get(ch);
	*out = w;
	return 0;
}

/*
 * Recompute how far we may reserve.  Returns 0, or -EBADMSG if committed
 * or a strong reader's cursor is past tail, or committed went back.
 */
static int refresh_limit(struct sluice_chan_writer *w)
{
	struct sluice_chan *ch = w->ch;
	uint64_t min, cur, owner, max = 0;
	uint32_t i;

	/* committed first, then the places (seq_cst): see the top. */
	sluice__chan_advance(ch);
	min = atomic_load_explicit(&ch->m.h->committed, memory_order_seq_cst);
	if (min < w->committed)
		return -EBADMSG;	/* it only grows: a peer moved it back */
	w->committed = min;
	max = min;
	for (i = 0; i < ch->readers_max; i++) {
		struct sluice_chan_rent *e = &ch->m.readers[i];

		owner = atomic_load_explicit(&e->owner, memory_order_seq_cst);
		if (CHAN_OWNER_KIND(owner) != SLUICE_CHAN_STRONG)
			continue;
		cur = atomic_load_explicit(&e->cursor, memory_order_seq_cst);
		if (cur < min)
			min = cur;
		if (cur > max)
			max = cur;
	}
	/* tail last: it only grows, so nothing honest is past it. */
	if (max > tail_pos(atomic_load_explicit(&ch->m.h->tail, memory_order_seq_cst)))
		return -EBADMSG;
	w->limit = min + ch->m.cap;
	return 0;
}

/* Store where each chunk at or after a boundary of ours starts. */
static void index_mark(struct sluice_chan *ch, uint64_t from, uint64_t at, uint64_t end)
{
	uint64_t b = align_up(from + 1, ch->chunk);

	/*
	 * Release, though a weak reader checks what it finds there against
	 * tail anyway: the word is a hint, and a wrong one costs a retry.
	 */
	for (; b <= end; b += ch->chunk)
		atomic_store_explicit(&ch->m.index[(b / ch->chunk) % CHAN_INDEX_N],
				      b <= at ? at : end, memory_order_release);
}

/*
 * Reserve @len bytes.  On success the slice is ours at w->at, its pad (if
 * any) sealed, and w->held set.
 */
static int reserve(struct sluice_chan_writer *w, uint32_t len, uint32_t frames)
{
	struct sluice_chan *ch = w->ch;
	struct sluice_chan_went *e;
	uint64_t t, from, at, end;
	uint32_t ent, tries = 0;
	int err;

	if (w->held)
		return -EBUSY;
	/*
	 * Acquire: pairs with the CAS that made t (its writer's intent).
	 * The ends are looked at before a place: a channel that is over is
	 * over for a weak writer that finds no free place, too.
	 */
	t = atomic_load_explicit(&ch->m.h->tail, memory_order_acquire);
	err = tail_verdict(t);
	if (err)
		return err;
	if (w->ent < 0) {
		err = place_take(ch, SLUICE_CHAN_WEAK, w->hint, &ent);
		if (err)
			return err == -EUSERS ? -EAGAIN : err;
		w->ent = (int32_t)ent;
		w->hint = ent;
	}
	e = &ch->m.writers[w->ent];
	for (;;) {
		err = tail_verdict(t);
		if (err)
			goto out_idle;
		from = t;
		at = slice_start(ch, from, len);
		end = at + len;
		if (end > w->limit) {
			err = refresh_limit(w);
			if (err)
				goto out_idle;
			if (end > w->limit) {
				err = -EAGAIN;
				goto out_idle;
			}
		}
		/*
		 * The intent, published by the CAS (seq_cst, so a release):
		 * whoever acquires tail past @from finds it.  A failed CAS
		 * reloads t with acquire, as above.
		 */
		atomic_store_explicit(&e->from, from, memory_order_relaxed);
		atomic_store_explicit(&e->len, len, memory_order_relaxed);
		atomic_store_explicit(&e->state, CHAN_W_CLAIMING, memory_order_relaxed);
		sluice__tp(SLUICE__TP_CHAN_INTENT, NULL);
		if (atomic_compare_exchange_weak_explicit(&ch->m.h->tail, &t, end,
							  memory_order_seq_cst,
							  memory_order_acquire))
			break;
		/* Lost to others (or a peer rewriting tail): the wait decides. */
		if (++tries == CAS_TRIES) {
			err = -EAGAIN;
			goto out_idle;
		}
	}
	sluice__tp(SLUICE__TP_CHAN_CLAIMED, NULL);
	/*
	 * Relaxed: FILLING only tells a sweeper the CAS won, which it can
	 * also work out (claim_of()); nothing is published by it.
	 */
	atomic_store_explicit(&e->state, CHAN_W_FILLING, memory_order_relaxed);
	index_mark(ch, from, at, end);
	if (at != from) {
		sluice__tp(SLUICE__TP_CHAN_FILLING, NULL);
		sluice__chan_seal(ch, from, (uint32_t)(at - from - CHAN_SLICE_HDR), 0, CHAN_SLICE_PAD);
	}
	w->held = true;
	w->alone = from == w->at + w->len;
	w->from = from;
	w->at = at;
	w->len = len;
	w->frames = frames;
	return 0;

out_idle:
	atomic_store_explicit(&e->state, CHAN_W_IDLE, memory_order_relaxed);
	if (w->kind == SLUICE_CHAN_WEAK) {
		place_give(ch, (uint32_t)w->ent);
		w->ent = -1;
	}
	return err;
}

/* Seal the held slice as @kind and let the place go. */
static void finish(struct sluice_chan_writer *w, uint32_t kind)
{
	struct sluice_chan *ch = w->ch;

	sluice__chan_seal(ch, w->at, w->len - CHAN_SLICE_HDR,
	     kind == CHAN_SLICE_DATA ? w->frames : 0, kind);
	sluice__tp(SLUICE__TP_CHAN_SEALED, NULL);
	if (w->kind == SLUICE_CHAN_WEAK) {
		place_give(ch, (uint32_t)w->ent);
		w->ent = -1;
	} else {
		/* Release: a sweeper that sees IDLE sees the seal. */
		atomic_store_explicit(&ch->m.writers[w->ent].state, CHAN_W_IDLE,
				      memory_order_release);
	}
	w->held = false;
	if (w->from / (ch->m.cap / 8) != (w->at + w->len) / (ch->m.cap / 8))
		sluice__chan_advance(ch);
	wake_sleepers(ch->m.h);
}

/* Write the frame headers of the held slice; point @iov at the frames. */
static void lay_frames(struct sluice_chan_writer *w, struct iovec *iov, unsigned int n)
{
	uint64_t p = w->at + CHAN_SLICE_HDR;
	struct sluice_chan_frame f = { 0, 0 };
	unsigned int i;

	for (i = 0; i < n; i++) {
		f.len = (uint32_t)iov[i].iov_len;
		memcpy(bytes_at(w->ch, p), &f, sizeof(f));
		iov[i].iov_base = bytes_at(w->ch, p + CHAN_FRAME_HDR);
		p += CHAN_FRAME_HDR + align_up(f.len, CHAN_FRAME_ALIGN);
	}
}

/* @bases: the frames' buffers are input (write), not output (reserve). */
static int frames_ok(struct sluice_chan_writer *w, const struct iovec *iov,
		     unsigned int n, bool bases, uint64_t *len)
{
	if (!w || !iov || !n || n > BATCH_MAX)
		return -EINVAL;
	return slice_bytes(w->ch, iov, n, bases, len);
}

/* Writers' readiness for a wait: room, or a reason not to wait. */
static int room_ready(void *arg)
{
	struct sluice_chan_writer *w = arg;
	struct sluice_chan *ch = w->ch;
	uint64_t t = atomic_load_explicit(&ch->m.h->tail, memory_order_seq_cst), at;
	uint32_t i;

	/* What reserve() looks at first, in the same order. */
	if (tail_verdict(t))
		return 0;
	if (w->ent < 0) {
		/* A weak writer waiting for a place: any free one will do. */
		for (i = 0; i < ch->writers_max; i++)
			if (!atomic_load_explicit(&ch->m.writers[i].owner, memory_order_seq_cst))
				break;
		if (i == ch->writers_max)
			return -EAGAIN;
	}
	if (refresh_limit(w))
		return 0;	/* the caller meets the error */
	at = slice_start(ch, tail_pos(t), w->want);
	return at + w->want <= w->limit ? 0 : -EAGAIN;
}

static const struct sluice__wait_ops writer_wait = {
	.ready = room_ready,
	.expired = sluice__chan_expired,
	.tick = sluice__chan_tick,
};

/* reserve(), waiting for room or a place while it says -EAGAIN. */
static int reserve_wait(struct sluice_chan_writer *w, uint32_t len, uint32_t frames)
{
	struct sluice__wait_call c = { 0 };
	int err;

	for (;;) {
		err = reserve(w, len, frames);
		if (err != -EAGAIN)
			return err;
		w->want = len;
		err = sluice__wait(&w->w, &c, &writer_wait, w, &w->ch->m.h->wseq,
				   &w->ch->m.h->wwait);
		if (err)
			return err;
	}
}

/*
 * Reserve a slice for these frames (@bases: their buffers are input),
 * waiting for room if @block; its size in @len.
 */
static int reserve_frames(struct sluice_chan_writer *w, const struct iovec *iov,
			  unsigned int n, bool bases, bool block, uint64_t *len)
{
	int err;

	err = frames_ok(w, iov, n, bases, len);
	if (err)
		return err;
	err = block ? reserve_wait(w, (uint32_t)*len, n) : reserve(w, (uint32_t)*len, n);
	if (err == -EAGAIN)
		sluice__chan_idle(w->ch, &w->t);
	return err;
}

/*
 * After a slice: ask to own the lines of as many bytes again past its end
 * (at most OWN_AHEAD_MAX), those below our limit, which no strong reader
 * needs any more.  A writer that has the channel to itself writes its next
 * slice there, and finds the lines ready instead of waiting for each
 * (see own_ahead() in spsc.c).  Where other writers write between our
 * slices, the bytes are likely theirs: taking their lines would slow them.
 *
 * The copy loop prefetches nothing: a read prefetch of a line we have
 * asked to own, or will ask for with a store, only asks again (as on the
 * SPSC ring; chan.md's Benchmarks has the measurements).
 */
static void own_ahead(const struct sluice_chan_writer *w)
{
	uint64_t from = w->at + w->len, n = w->len, off;

	if (!w->alone)
		return;
	if (n > OWN_AHEAD_MAX)
		n = OWN_AHEAD_MAX;
	if (from + n > w->limit)
		n = w->limit > from ? w->limit - from : 0;
	for (off = 0; off < n; off += 64)
		sluice__prefetch_own(bytes_at(w->ch, from + off));
}

static int write_batch(struct sluice_chan_writer *w, const struct iovec *iov,
		       unsigned int n, bool block)
{
	struct sluice_chan_frame f = { 0, 0 };
	unsigned char *base;
	uint64_t len, off;
	unsigned int i;
	int err;

	err = reserve_frames(w, iov, n, true, block, &len);
	if (err)
		return err;
	/*
	 * One pass, header and bytes together: a line is taken over once.
	 * No prefetches (see own_ahead()).
	 */
	base = bytes_at(w->ch, w->at);
	off = CHAN_SLICE_HDR;
	for (i = 0; i < n; i++) {
		f.len = (uint32_t)iov[i].iov_len;
		memcpy(base + off, &f, sizeof(f));
		sluice__copy(base + off + CHAN_FRAME_HDR, iov[i].iov_base, f.len,
			     SLUICE__COPY_SETTLED);
		off += CHAN_FRAME_HDR + align_up(f.len, CHAN_FRAME_ALIGN);
	}
	err = sluice_chan_commit(w);
	if (err)
		return err;
	own_ahead(w);
	return (int)n;
}

int sluice_chan_write_batch(struct sluice_chan_writer *w, const struct iovec *iov,
			    unsigned int n)
{
	return write_batch(w, iov, n, true);
}

int sluice_chan_try_write_batch(struct sluice_chan_writer *w,
				const struct iovec *iov, unsigned int n)
{
	return write_batch(w, iov, n, false);
}

/* One frame from @buf: 0, or an error. */
static int write_one(struct sluice_chan_writer *w, const void *buf, size_t len, bool block)
{
	struct iovec v = { (void *)buf, len };
	int ret;

	if (!buf && len)
		return -EINVAL;
	ret = write_batch(w, &v, 1, block);
	return ret < 0 ? ret : 0;
}

int sluice_chan_write(struct sluice_chan_writer *w, const void *buf, size_t len)
{
	return write_one(w, buf, len, true);
}

int sluice_chan_try_write(struct sluice_chan_writer *w, const void *buf, size_t len)
{
	return write_one(w, buf, len, false);
}

static int reserve_slice(struct sluice_chan_writer *w, struct iovec *iov,
			 unsigned int n, bool block)
{
	uint64_t len;
	int err;

	err = reserve_frames(w, iov, n, false, block, &len);
	if (err)
		return err;
	lay_frames(w, iov, n);
	return (int)n;
}

int sluice_chan_reserve_slice(struct sluice_chan_writer *w, struct iovec *iov,
			      unsigned int n)
{
	return reserve_slice(w, iov, n, true);
}

int sluice_chan_try_reserve_slice(struct sluice_chan_writer *w,
				  struct iovec *iov, unsigned int n)
{
	return reserve_slice(w, iov, n, false);
}

int sluice_chan_commit(struct sluice_chan_writer *w)
{
	if (!w || !w->held)
		return -EINVAL;
	/* A slice committed after terminate is dropped: readers are gone. */
	if (atomic_load_explicit(&w->ch->m.h->ctl, memory_order_acquire) & CHAN_CTL_TERM) {
		finish(w, CHAN_SLICE_SKIP);
		return sluice__chan_term_verdict(w->ch);
	}
	finish(w, CHAN_SLICE_DATA);
	return 0;
}

int sluice_chan_abort(struct sluice_chan_writer *w)
{
	if (!w || !w->held)
		return -EINVAL;
	finish(w, CHAN_SLICE_SKIP);
	/* Dropped either way; say so as every other call does. */
	if (atomic_load_explicit(&w->ch->m.h->ctl, memory_order_acquire) & CHAN_CTL_TERM)
		return sluice__chan_term_verdict(w->ch);
	return 0;
}

void sluice_chan_writer_close(struct sluice_chan_writer *w)
{
	struct sluice_chan *ch;

	if (!w)
		return;
	ch = w->ch;
	if (w->held)
		finish(w, CHAN_SLICE_SKIP);
	if (w->kind == SLUICE_CHAN_STRONG) {
		/*
		 * Counted out first (seq_cst), then the others looked at: of
		 * two last writers closing at once, at least one sees the
		 * other out, and drains.  Killed in between, we leave a
		 * CLOSING place, which a sweep treats as a strong one's.
		 */
		atomic_store_explicit(&ch->m.writers[w->ent].owner,
				      CHAN_OWNER(ch->pid, CHAN_KIND_CLOSING), memory_order_seq_cst);
		sluice__tp(SLUICE__TP_CHAN_CLOSING, NULL);
		/* The last strong writer: the channel drains, as a pipe does. */
		if (!sluice__chan_strong_left(ch))
			sluice_chan_drain(ch);
	}
	if (w->ent >= 0)
		place_give(ch, (uint32_t)w->ent);
	sluice__chan_end_put(ch);
	free(w);
}

