// SPDX-License-Identifier: MIT
/*
 * Channel readers: joining, reading strong and weak, resuming after an
 * overrun, slipping.  The protocol is told at the top of chan.c.
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

#define SKIPS_MAX		64u		/* empty slices a read passes */

/* Our place in the reader table, given back. */
static void place_give(struct sluice_chan *ch, uint32_t i)
{
	struct sluice_chan_rent *e = &ch->m.readers[i];

	atomic_store_explicit(&e->start, 0, memory_order_relaxed);
	/* seq_cst: a writer looking for the slowest cursor after this passes ours by. */
	atomic_store_explicit(&e->owner, 0, memory_order_seq_cst);
}

struct sluice_chan_reader {
	struct sluice_chan *ch;
	uint32_t kind;
	uint32_t ent;
	uint64_t owner;			/* our place's owner word */
	uint64_t cursor;		/* strong: the cursor we published last */
	uint64_t pos;			/* next byte to read */
	uint64_t end;			/* end of the slice being read */
	uint32_t left;			/* frames left in it */
	uint64_t lost;
	uint64_t lost_total;
	struct sluice__wait w;
	struct sluice__chan_trying t;
};
/* sluice__chan_tick() finds our channel first in us. */
_Static_assert(__builtin_offsetof(struct sluice_chan_reader, ch) == 0, "ch moved");

/* Parenthesised: the header's macro of this name takes old options too. */
int (sluice_chan_reader_open)(struct sluice_chan *ch, enum sluice_chan_kind kind,
			      const struct sluice_chan_end_opts *opts,
			      struct sluice_chan_reader **out)
{
	struct sluice_chan_end_opts o;
	uint64_t want, free_, c;
	struct sluice_chan_reader *r;
	struct sluice_chan_rent *e;
	uint32_t i;

	if (!ch || !out || sluice__chan_end_opts_read(opts, &o) ||
	    (kind != SLUICE_CHAN_STRONG && kind != SLUICE_CHAN_WEAK) ||
	    (kind == SLUICE_CHAN_STRONG && ch->policy == SLUICE_CHAN_OVERWRITE))
		return -EINVAL;
	if (atomic_load_explicit(&ch->m.h->ctl, memory_order_acquire) & CHAN_CTL_TERM)
		return -ECONNABORTED;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	want = CHAN_OWNER(ch->pid, kind);
	for (i = 0; i < ch->readers_max; i++) {
		e = &ch->m.readers[i];
		free_ = 0;
		/* A cursor no writer can hold against us before the place is ours. */
		if (!atomic_load_explicit(&e->owner, memory_order_relaxed) &&
		    atomic_compare_exchange_strong_explicit(&e->owner, &free_, CHAN_OWNER(ch->pid, 0),
							    memory_order_seq_cst,
							    memory_order_relaxed))
			break;
	}
	if (i == ch->readers_max) {
		free(r);
		return -EUSERS;
	}
	/*
	 * Join (see the top): a cursor no later than where we start, the
	 * place published, then committed again (seq_cst) for the start.
	 */
	sluice__chan_advance(ch);
	c = atomic_load_explicit(&ch->m.h->committed, memory_order_seq_cst);
	atomic_store_explicit(&e->cursor, c, memory_order_relaxed);
	atomic_store_explicit(&e->start, ch->start, memory_order_relaxed);
	atomic_store_explicit(&e->owner, want, memory_order_seq_cst);
	c = atomic_load_explicit(&ch->m.h->committed, memory_order_seq_cst);
	if (c % CHAN_ALIGN ||
	    c > tail_pos(atomic_load_explicit(&ch->m.h->tail, memory_order_acquire))) {
		/* Not a position writers made: refuse rather than read there. */
		place_give(ch, i);
		free(r);
		return -EBADMSG;
	}
	atomic_store_explicit(&e->cursor, c, memory_order_seq_cst);
	r->ch = ch;
	r->kind = kind;
	r->ent = i;
	r->owner = want;
	r->cursor = c;
	r->pos = r->end = c;
	sluice__chan_waiting_init(&r->w, ch, &o);
	sluice__chan_end_get(ch);
	*out = r;
	return 0;
}

void sluice_chan_reader_close(struct sluice_chan_reader *r)
{
	if (!r)
		return;
	place_give(r->ch, r->ent);
	/* Writers held back by us may go on. */
	if (r->kind == SLUICE_CHAN_STRONG &&
	    atomic_load_explicit(&r->ch->m.h->wwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&r->ch->m.h->wseq);
	sluice__chan_end_put(r->ch);
	free(r);
}

uint64_t sluice_chan_lost(const struct sluice_chan_reader *r)
{
	return r ? r->lost : 0;
}

uint64_t sluice_chan_lost_total(const struct sluice_chan_reader *r)
{
	return r ? r->lost_total : 0;
}

/* Has a writer overtaken a weak reader that reads from @from? */
static bool overrun(const struct sluice_chan_reader *r, uint64_t from)
{
	/* After the copies: pairs with the CAS that reserved over them. */
	atomic_thread_fence(memory_order_acquire);
	return tail_pos(atomic_load_explicit(&r->ch->m.h->tail, memory_order_relaxed)) >
	       from + r->ch->m.cap;
}

/*
 * An overtaken weak reader jumps to the oldest slice still intact: the
 * first that the chunk index says starts at or after tail - capacity.
 */
static int resume(struct sluice_chan_reader *r)
{
	struct sluice_chan *ch = r->ch;
	uint64_t t, b, v, to;
	uint32_t k;

	t = tail_pos(atomic_load_explicit(&ch->m.h->tail, memory_order_acquire));
	if (t % CHAN_ALIGN)
		return -EBADMSG;
	to = t;
	b = align_up(t - ch->m.cap, ch->chunk);
	for (k = 0; k < CHAN_INDEX_N && b < t; k++, b += ch->chunk) {
		v = atomic_load_explicit(&ch->m.index[(b / ch->chunk) % CHAN_INDEX_N],
					 memory_order_acquire);
		/*
		 * Stale (an earlier lap), the next lap's (b is exactly
		 * tail - capacity), or not stored yet: try the next chunk.
		 */
		if (v >= b && v < b + ch->m.cap && v <= t && !(v % CHAN_ALIGN)) {
			to = v;
			break;
		}
	}
	r->lost = to - r->pos;
	r->lost_total += r->lost;
	r->pos = r->end = to;
	r->left = 0;
	return -EOVERFLOW;
}

/*
 * Nothing at r->pos: why?  -EAGAIN (wait), -EOVERFLOW (a weak reader was
 * overtaken: resume()), or an end.  It only looks, so frame_ready() asks
 * it too, and a wait and the read it guards give the same answer.  tail
 * is where writers fight; a strong reader looks at it only once ctl says
 * the channel is ending (ctl's bit is set after tail's, both waking every
 * sleeper).  What ctl says, tail must back (see sluice__chan_term_verdict()).
 */
static int why_nothing(const struct sluice_chan_reader *r)
{
	const struct sluice_chan *ch = r->ch;
	uint32_t ctl = atomic_load_explicit(&ch->m.h->ctl, memory_order_seq_cst);
	uint64_t t, pos;

	if (!(ctl & (CHAN_CTL_TERM | CHAN_CTL_DRAIN)) && r->kind == SLUICE_CHAN_STRONG)
		return -EAGAIN;
	t = atomic_load_explicit(&ch->m.h->tail, memory_order_seq_cst);
	if (((ctl & CHAN_CTL_TERM) && !(t & CHAN_TAIL_TERM)) ||
	    ((ctl & CHAN_CTL_DRAIN) && !(t & CHAN_TAIL_DRAIN)))
		return -EBADMSG;
	if (t & CHAN_TAIL_TERM)
		return -ECONNABORTED;
	pos = tail_pos(t);
	if (pos > r->pos + ch->m.cap)
		/* Nobody laps a strong reader: its bytes were not its own. */
		return r->kind == SLUICE_CHAN_WEAK ? -EOVERFLOW : -EBADMSG;
	if (pos < r->pos)
		return -EBADMSG;
	if ((t & CHAN_TAIL_DRAIN) && pos == r->pos)
		return -EPIPE;
	return -EAGAIN;
}

static int resume(struct sluice_chan_reader *r);

static int nothing(struct sluice_chan_reader *r)
{
	int err = why_nothing(r);

	return err == -EOVERFLOW ? resume(r) : err;
}

/* Impossible bytes at r->pos: a weak reader's were overwritten, maybe. */
static int bad(struct sluice_chan_reader *r, uint64_t from)
{
	if (r->kind == SLUICE_CHAN_WEAK && overrun(r, from))
		return resume(r);
	return -EBADMSG;
}

/*
 * A strong reader read up to @p: writers held back by it may go on.
 * Returns 0, or -EBADMSG if our place is not as we left it: a peer moved
 * our cursor or took our place, so writers may have reused bytes we had
 * not read, and what this read took cannot be trusted.
 */
static int publish_cursor(struct sluice_chan_reader *r, uint64_t p)
{
	struct sluice_chan *ch = r->ch;
	struct sluice_chan_rent *e = &ch->m.readers[r->ent];

	/* Relaxed: the line is ours, and its values are all we ask about. */
	if (atomic_load_explicit(&e->cursor, memory_order_relaxed) != r->cursor ||
	    atomic_load_explicit(&e->owner, memory_order_relaxed) != r->owner)
		return -EBADMSG;
	/* Dekker's waker (the top): the cursor, then the sleepers' count. */
	atomic_store_explicit(&e->cursor, p, memory_order_seq_cst);
	r->cursor = p;
	if (atomic_load_explicit(&ch->m.h->wwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&ch->m.h->wseq);
	return 0;
}

/* Where the next call goes on: at @p, in a slice that ends at @end, @left frames on. */
static inline void park(struct sluice_chan_reader *r, uint64_t p, uint64_t end, uint32_t left)
{
	r->pos = p;
	r->end = end;
	r->left = left;
}

/*
 * The body of try_read(), inlined twice so that a strong reader's loop
 * carries no test of @weak.  Within a slice the frames are walked with a
 * pointer: a slice never crosses the ring's end (slice_fits()).
 */
static inline __attribute__((always_inline)) int
try_read_as(struct sluice_chan_reader *r, struct iovec *iov, unsigned int n,
	    const bool weak)
{
	struct sluice_chan *ch = r->ch;
	/*
	 * In locals: read through ch, they were loaded again for every frame,
	 * since each copy out might (for all the compiler knows) change *ch.
	 */
	unsigned char *const data = ch->m.data;
	const uint64_t mask = ch->mask;
	uint64_t p = r->pos, end = r->end, from = r->pos, seal_v, want, room, step;
	struct sluice_chan_slice *s;
	uint32_t left = r->left, bytes, frames, len, kind;
	unsigned int i = 0, skips = 0;
	const unsigned char *at;
	int err;

	/* Acquire: what was terminated is seen whole; nothing else rides on it. */
	if (atomic_load_explicit(&ch->m.h->ctl, memory_order_acquire) & CHAN_CTL_TERM)
		return sluice__chan_term_verdict(ch);
	while (i < n) {
		if (!left) {
			/* The next slice's header. */
			p = end;
			s = slice_at(ch, p);
			/*
			 * Pairs with the seal's store: the slice is complete.
			 * A weak reader's bytes may be a later lap's by now:
			 * its loads are the racy kind, checked after copying.
			 */
			if (weak) {
				seal_v = racy_load64(&s->seal);
				atomic_thread_fence(memory_order_acquire);
				bytes = racy_load32(&s->bytes);
				frames = racy_load32(&s->frames);
			} else {
				seal_v = atomic_load_explicit(&s->seal, memory_order_acquire);
				bytes = atomic_load_explicit(&s->bytes, memory_order_relaxed);
				frames = atomic_load_explicit(&s->frames, memory_order_relaxed);
			}
			want = chan_seal(ch->salt, p, 0);
			if ((seal_v & ~CHAN_SEAL_KIND) != (want & ~CHAN_SEAL_KIND))
				break;
			kind = (uint32_t)(seal_v & CHAN_SEAL_KIND);
			if (!slice_ok(ch, p, kind, bytes, frames)) {
				if (!i)
					return bad(r, from);
				break;	/* what we took first is checked below */
			}
			end = p + CHAN_SLICE_HDR + bytes;
			if (kind != CHAN_SLICE_DATA) {
				p = end;	/* nothing to take: pass it */
				if (++skips == SKIPS_MAX) {
					sluice__tp(SLUICE__TP_CHAN_SKIPS, NULL);
					break;	/* enough for one call */
				}
				continue;
			}
			p += CHAN_SLICE_HDR;
			left = frames;
		}
		/* Frames: each length, checked against the slice, then its bytes. */
		at = data + (p & mask);
		room = end - p;
		do {
			/* Loaded once (volatile), then checked and used. */
			len = weak ? racy_load32(at) : *(const volatile uint32_t *)at;
			/* len < 2^32, so step cannot wrap; nor room, kept >= 0. */
			step = CHAN_FRAME_HDR + align_up(len, CHAN_FRAME_ALIGN);
			if (step > room || len > iov[i].iov_len)
				goto stop;
			if (weak)
				racy_copy(iov[i].iov_base, at + CHAN_FRAME_HDR, len);
			else
				sluice__copy(iov[i].iov_base, at + CHAN_FRAME_HDR, len,
					     SLUICE__COPY_SETTLED);
			iov[i].iov_len = len;
			at += step;
			room -= step;
			i++;
		} while (--left && i < n);
		p = left ? end - room : end;
	}
	if (!i) {
		if (p != r->pos && !weak) {
			err = publish_cursor(r, p);	/* passed pads or skips */
			if (err)
				return err;
		}
		park(r, p, end, left);
		/* Stopped at SKIPS_MAX: more to pass, the wait will say so. */
		return skips == SKIPS_MAX ? -EAGAIN : nothing(r);
	}
	goto took;

stop:
	/* A frame we cannot take: past its slice, or bigger than its iovec. */
	p = end - room;
	if (i)
		goto took;	/* what we took first is checked below */
	if (step > room)
		return bad(r, from);
	if (weak && overrun(r, from))
		return resume(r);
	park(r, p, end, left);
	return -ENOBUFS;

took:
	if (weak && overrun(r, from))
		return resume(r);
	if (!weak) {
		err = publish_cursor(r, p);
		if (err)
			return err;
	}
	park(r, p, end, left);
	return (int)i;
}

static int try_read(struct sluice_chan_reader *r, struct iovec *iov, unsigned int n)
{
	return r->kind == SLUICE_CHAN_WEAK ? try_read_as(r, iov, n, true) :
					     try_read_as(r, iov, n, false);
}

/* Readers' readiness for a wait: a slice, or a reason not to wait. */
static int frame_ready(void *arg)
{
	struct sluice_chan_reader *r = arg;
	struct sluice_chan *ch = r->ch;
	uint64_t seal_v;

	if (r->left)
		return 0;
	/* seq_cst for a strong reader: Dekker's sleeper re-checks (the top). */
	if (r->kind == SLUICE_CHAN_WEAK)
		seal_v = racy_load64(&slice_at(ch, r->end)->seal);
	else
		seal_v = atomic_load_explicit(&slice_at(ch, r->end)->seal, memory_order_seq_cst);
	if (sealed(ch, seal_v, r->end))
		return 0;
	/* The read's own question: what it would say, it says. */
	return why_nothing(r) == -EAGAIN ? -EAGAIN : 0;
}

/*
 * Set the next wait's slip (see Slipping at the top) after a wait and the
 * call that followed it, which began at @from and took @took frames (or
 * failed).  One frame with no more in its slice is a request, a reply,
 * sparse traffic; more is a stream.  What the call took is known and
 * checked: the slice's header is not read again, since a wait also ends
 * at a drain or an overrun, where no slice of ours is there (a weak
 * reader's may be a later lap's, being written).  tail, which writers
 * fight over, is looked at only when the slip would grow, and only as a
 * hint: the worst it can do is make a pause too long or too short.
 */
static void slip_adapt(struct sluice_chan_reader *r, uint64_t from, int took)
{
	const struct sluice_chan *ch = r->ch;
	enum sluice__slip_found found = SLUICE__SLIP_LONE;
	uint64_t t;

	if (r->w.polls <= 2 && took > 0 && (uint64_t)took + r->left > 1) {
		t = tail_pos(atomic_load_explicit(&ch->m.h->tail, memory_order_relaxed));
		found = t > from && t - from >= ch->m.cap / 2 ? SLUICE__SLIP_FAR :
							      SLUICE__SLIP_BURST;
	}
	r->w.slip = sluice__slip_next(r->w.slip, r->w.polls, found, r->w.kind->slip_max);
}

static const struct sluice__wait_ops reader_wait = {
	.ready = frame_ready,
	.expired = sluice__chan_expired,
	.tick = sluice__chan_tick,
};

static int read_batch(struct sluice_chan_reader *r, struct iovec *iov,
		      unsigned int n, bool block)
{
	struct sluice__wait_call c = { 0 };
	bool waited = false;
	unsigned int i;
	uint64_t from;
	int ret;

	if (!r || !iov || !n)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!iov[i].iov_base && iov[i].iov_len)
			return -EINVAL;
	for (;;) {
		from = r->pos;
		ret = try_read(r, iov, n);
		if (waited && ret != -EAGAIN)
			slip_adapt(r, from, ret);
		if (ret != -EAGAIN)
			return ret;
		if (!block) {
			sluice__chan_idle(r->ch, &r->t);
			return ret;
		}
		if (r->pos != from)
			c.stuck = 0;	/* it passed empty slices: getting somewhere */
		ret = sluice__wait(&r->w, &c, &reader_wait, r, &r->ch->m.h->rseq,
				   &r->ch->m.h->rwait);
		if (ret)
			return ret;
		waited = true;
	}
}

int sluice_chan_read_batch(struct sluice_chan_reader *r, struct iovec *iov,
			   unsigned int n)
{
	return read_batch(r, iov, n, true);
}

int sluice_chan_try_read_batch(struct sluice_chan_reader *r, struct iovec *iov,
			       unsigned int n)
{
	return read_batch(r, iov, n, false);
}

/* One frame into @buf: its length, or an error. */
static int read_one(struct sluice_chan_reader *r, void *buf, size_t cap, bool block)
{
	struct iovec v = { buf, cap };
	int ret;

	if (!buf && cap)
		return -EINVAL;
	ret = read_batch(r, &v, 1, block);
	return ret < 0 ? ret : (int)v.iov_len;
}

int sluice_chan_read(struct sluice_chan_reader *r, void *buf, size_t cap)
{
	return read_one(r, buf, cap, true);
}

int sluice_chan_try_read(struct sluice_chan_reader *r, void *buf, size_t cap)
{
	return read_one(r, buf, cap, false);
}
