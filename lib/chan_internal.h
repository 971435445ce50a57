/* SPDX-License-Identifier: MIT */
/*
 * Channel internals shared by lib/chan.c (the channel, waiting),
 * chan_write.c, chan_read.c and chan_sweep.c (dead peers): the handle, and
 * how a position turns into memory.  The layout in shared memory is chan_layout.h.
 */
#ifndef SLUICE_CHAN_INTERNAL_H
#define SLUICE_CHAN_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sluice/chan.h>

#include "chan_layout.h"
#include "introspect.h"
#include "wait.h"

/* How often sleepers (and try_ callers) look for dead peers. */
#define SLUICE__CHAN_SWEEP_NS	(20 * 1000000ull)

struct sluice_chan {
	struct sluice_region *region;
	struct sluice__chan_map m;	/* where its parts lie */
	uint64_t mask;
	uint64_t chunk;			/* cap / CHAN_INDEX_N */
	uint64_t salt;
	uint32_t readers_max;
	uint32_t writers_max;
	uint32_t policy;
	_Atomic uint32_t ends;		/* endpoints open on this handle */
	uint64_t timeout_ns;
	struct sluice_cancel *cancel;
	uint32_t spin_ns;
	pid_t pid;
	uint64_t start;			/* our start time */
	/* Liveness: peers watched for the endpoints that wait (see watch_peers()). */
	struct sluice_liveness *live;
	pthread_mutex_t watch_lock;
	struct chan_watch *watches;
	uint32_t nwatch;
	_Atomic uint32_t dead_seen;	/* a watched peer died: sweep now */
};

struct chan_watch {
	int32_t pid;
	uint64_t start;
	uint64_t id;
};

static inline uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline struct sluice_chan_slice *slice_at(const struct sluice_chan *ch, uint64_t pos)
{
	return (struct sluice_chan_slice *)(ch->m.data + (pos & ch->mask));
}

static inline unsigned char *bytes_at(const struct sluice_chan *ch, uint64_t pos)
{
	return ch->m.data + (pos & ch->mask);
}

static inline uint64_t tail_pos(uint64_t t)
{
	return t & CHAN_TAIL_POS;
}

/* Where a reservation of @len bytes from @from puts its slice. */
static inline uint64_t slice_start(const struct sluice_chan *ch, uint64_t from, uint32_t len)
{
	uint64_t off = from & ch->mask;

	return off + len > ch->m.cap ? from + (ch->m.cap - off) : from;
}

/*
 * Does a data or skip slice of @bytes after its header fit at @pos: at most
 * half the ring, and not across its end?
 */
static inline bool slice_fits(const struct sluice_chan *ch, uint64_t pos, uint32_t bytes)
{
	return CHAN_SLICE_HDR + (uint64_t)bytes <= ch->m.cap / 2 &&
	       (pos & ch->mask) + CHAN_SLICE_HDR + bytes <= ch->m.cap;
}

/*
 * Is a slice header one a writer could have written at @pos: sealed as
 * @kind, with @bytes after it and @frames frames?  A known kind; bytes on
 * the grid; a pad that ends exactly where the lap does; a data or skip
 * slice of at most half the ring, not across its end; frames exactly
 * when data, and no more than its bytes can hold.  Every reader of a
 * header asks this, and nothing else.
 */
static inline bool slice_ok(const struct sluice_chan *ch, uint64_t pos, uint32_t kind,
		     uint32_t bytes, uint32_t frames)
{
	if (kind > CHAN_SLICE_SKIP || bytes % CHAN_ALIGN)
		return false;
	if (kind == CHAN_SLICE_PAD)
		return (pos & ch->mask) + CHAN_SLICE_HDR + (uint64_t)bytes == ch->m.cap && !frames;
	return slice_fits(ch, pos, bytes) && (kind == CHAN_SLICE_DATA) == (frames != 0) &&
	       (uint64_t)frames * CHAN_FRAME_HDR <= bytes;
}

/* Is @v a seal of position @pos, of any kind? */
static inline bool sealed(const struct sluice_chan *ch, uint64_t v, uint64_t pos)
{
	return (v & ~CHAN_SEAL_KIND) == (chan_seal(ch->salt, pos, 0) & ~CHAN_SEAL_KIND) &&
	       (v & CHAN_SEAL_KIND) <= CHAN_SLICE_SKIP;
}

/* An endpoint's try_ calls that found nothing: they sweep too (sluice__chan_idle()). */
struct sluice__chan_trying {
	uint32_t idle;			/* try_ calls that said -EAGAIN */
	uint64_t swept_at;		/* when one of them last swept */
};

/*
 * Loads and copies of a weak reader: they may race with a writer reusing
 * the bytes, and are validated afterwards (see the top).  Hidden from
 * ThreadSanitizer, which would rightly call them races.
 */
#if defined(__SANITIZE_THREAD__)
#define RACY static __attribute__((no_sanitize("thread"), noinline, unused))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RACY static __attribute__((no_sanitize("thread"), noinline, unused))
#endif
#endif
#ifndef RACY
#define RACY static inline
#endif

RACY uint32_t racy_load32(const void *p)
{
	return *(const volatile uint32_t *)p;
}

RACY uint64_t racy_load64(const void *p)
{
	return *(const volatile uint64_t *)p;
}

RACY void racy_copy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const volatile unsigned char *s = src;

	/* Words where we can, for speed; volatile so nothing is re-read. */
	while (n >= 8) {
		uint64_t v = *(const volatile uint64_t *)s;

		memcpy(d, &v, 8);
		d += 8;
		s += 8;
		n -= 8;
	}
	while (n--)
		*d++ = *s++;
}

/*
 * Shared between the files of channels; the comment of each is at its
 * definition.
 */
/* An endpoint opened on @ch: sluice_chan_close() refuses while one is. */
static inline void sluice__chan_end_get(struct sluice_chan *ch)
{
	atomic_fetch_add_explicit(&ch->ends, 1, memory_order_relaxed);
}

/* An endpoint done with @ch: release, paired with sluice_chan_close()'s acquire. */
static inline void sluice__chan_end_put(struct sluice_chan *ch)
{
	atomic_fetch_sub_explicit(&ch->ends, 1, memory_order_release);
}

/*
 * Walk committed forward over every sealed slice.  Writers do it when a
 * slice of theirs crosses an eighth of the ring, and whoever needs it up to
 * date (a writer short of room, a reader joining) does it first.
 *
 * What it reads at c is a hint: once others have moved committed past c,
 * writers may be reusing those bytes, so the loads are the racy kind and
 * the CAS, which fails unless committed is still c, is the check.  While
 * committed is c, nobody reserves a lap past it, and the bytes are c's.
 * A walk that misses a seal just stored stops short; the committer's own
 * wake (wake_sleepers()) covers anyone waiting on it.  A walk takes at
 * most a lap's worth of slices (none is under 16 bytes), more than honest
 * writers ever leave behind (an eighth of the ring): a peer rewriting
 * committed under it cannot keep it walking.
 */
static inline void sluice__chan_advance(struct sluice_chan *ch)
{
	struct sluice_chan_hdr *h = ch->m.h;
	uint64_t c, next, seal, tail, steps;
	struct sluice_chan_slice *s;
	uint32_t bytes;

	c = atomic_load_explicit(&h->committed, memory_order_seq_cst);
	for (steps = 0; steps < ch->m.cap / CHAN_ALIGN; steps++) {
		tail = tail_pos(atomic_load_explicit(&h->tail, memory_order_acquire));
		if (c >= tail || c % CHAN_ALIGN)
			break;
		s = slice_at(ch, c);
		seal = racy_load64(&s->seal);
		/* The slice's header after its seal (pairs with sluice__chan_seal()'s store). */
		atomic_thread_fence(memory_order_acquire);
		if (!sealed(ch, seal, c))
			break;
		bytes = racy_load32(&s->bytes);
		next = c + CHAN_SLICE_HDR + bytes;
		if (next > tail || !slice_ok(ch, c, (uint32_t)(seal & CHAN_SEAL_KIND), bytes,
					     racy_load32(&s->frames)))
			break;		/* not ours to judge: readers say -EBADMSG */
		if (atomic_compare_exchange_strong_explicit(&h->committed, &c, next,
							    memory_order_seq_cst,
							    memory_order_seq_cst)) {
			c = next;
		}
	}
}

/* Seal the slice at @at as @kind, @bytes after its header, and tell. */
static inline void sluice__chan_seal(struct sluice_chan *ch, uint64_t at, uint32_t bytes,
				     uint32_t frames, uint32_t kind)
{
	struct sluice_chan_slice *s = slice_at(ch, at);

	atomic_store_explicit(&s->bytes, bytes, memory_order_relaxed);
	atomic_store_explicit(&s->frames, frames, memory_order_relaxed);
	/*
	 * seq_cst: a release for readers (the frames before it), and a store
	 * in the total order for sluice__chan_advance() and sleeping readers (the top).
	 */
	atomic_store_explicit(&s->seal, chan_seal(ch->salt, at, kind), memory_order_seq_cst);
}

void sluice__chan_wake_all(struct sluice_chan *ch);
int sluice__chan_set_ending(struct sluice_chan *ch, uint64_t tail_bit, uint32_t ctl_bit);
void sluice__chan_sweep(struct sluice_chan *ch, uint64_t deadline);
bool sluice__chan_strong_left(const struct sluice_chan *ch);
void sluice__chan_watch_peers(struct sluice_chan *ch);
void sluice__chan_unwatch_all(struct sluice_chan *ch);
int sluice__chan_term_verdict(const struct sluice_chan *ch);
int sluice__chan_end_opts_read(const struct sluice_chan_end_opts *opts,
			       struct sluice_chan_end_opts *out);
void sluice__chan_waiting_init(struct sluice__wait *w, const struct sluice_chan *ch,
			       const struct sluice_chan_end_opts *o);
void sluice__chan_idle(struct sluice_chan *ch, struct sluice__chan_trying *t);
/* The tick of a reader's or writer's wait: @end is one, its channel first in it. */
bool sluice__chan_tick(void *end, struct sluice__wait_call *c, uint64_t now,
		       uint64_t *wake_at);
int sluice__chan_expired(void *arg);

#endif /* SLUICE_CHAN_INTERNAL_H */
