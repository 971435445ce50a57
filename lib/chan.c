// SPDX-License-Identifier: MIT
/*
 * Channels: a many-to-many byte ring.  The layout is lib/chan_layout.h.
 *
 * Reserving.  tail counts the bytes reserved since the channel was made.
 * A writer reserves a slice with one CAS on tail, after writing its intent
 * (where it reserves from, how many bytes) into its place in the writer
 * table; the CAS (release) publishes the intent with the reservation, so
 * anyone who sees tail past a position can find out who holds it.  A slice
 * that would cross the end of the ring is preceded by a pad slice filling
 * the rest of the lap, reserved by the same CAS.  Writers then fill their
 * slices at the same time; none waits for another.
 *
 * Committing.  A slice is published by its seal, chan_seal(salt, position,
 * kind), stored last (seq_cst, see below).  A seal names one position of
 * one channel, so bytes left from an earlier lap, or a payload that happens
 * to hold a seal-like word, never pass for a slice.  After sealing, a
 * writer wakes sleepers if any are counted (see Sleeping).
 *
 * committed is a position below which every slice is sealed.  Anyone may
 * walk it forward over the sealed slices it finds (helping: nobody waits
 * for a slow writer to do it).  It is walked lazily, as a CAS per commit
 * on a line every writer shares would cost more than the rest of a batch:
 * by the writer whose slice crosses an eighth of the ring, by a writer
 * short of room before it recomputes its limit, and by a reader joining.
 * Two walkers racing with a committer: the committer stores its seal
 * before loading committed, the walker loads the seal after its CAS, all
 * seq_cst, so one of them sees the other's store (the total order rules
 * out store buffering); and a walker that stops short is no harm, as the
 * next one carries on.
 *
 * Room.  A writer may reserve up to limit = min(committed, the strong
 * readers' cursors) + capacity: never over bytes a strong reader has not
 * read, and never a lap past a slice still being filled (that writer's
 * bytes would be clobbered).  Writers cache limit and recompute it only
 * when it says full.  A reader joining publishes its place, then reads
 * committed again and starts there: a writer that scanned the table before
 * the place appeared loaded committed before that, so its limit is no more
 * than the new reader's start plus the capacity.
 *
 * Reading.  A reader polls the seal of the slice at its position, then
 * takes the frames; a strong reader publishes its cursor after each call.
 * A weak reader may be overtaken: it copies first, then loads tail; if tail
 * has passed its start plus the capacity, some of what it copied may be
 * new bytes, so the copy is thrown away and the reader jumps to the oldest
 * slice still intact, found through the chunk index (a word per 1/64 of
 * the ring, holding where the first slice at or after that chunk starts,
 * stored by whoever reserves across the chunk's start).  That copy races
 * with writers by design (it is the seqlock pattern: read, then validate)
 * and is kept out of ThreadSanitizer's sight, and only there.
 *
 * Slipping.  A reader that polls the seal a writer is about to store, or
 * reads lines right behind the writer (its hardware prefetcher running
 * ahead onto lines still being written), takes them from the writer as it
 * writes, and both crawl.  So when a reader's wait ends at once and the
 * read after it finds a stream (more than one frame), the next wait
 * pauses first, longer each time, up to SLIP_MAX pauses; a lone frame (a
 * request, a reply) sets the pause back to none, a longer wait halves it,
 * and so does finding the writers half a ring ahead (slip_adapt(),
 * sluice__slip_next()).  The reader then reads a few slices at a time,
 * lines the writers are done with.
 *
 * Sleeping.  Readers sleep on rseq, writers on wseq, each counting itself
 * in rwait or wwait first.  The waker's side is Dekker's: seal or cursor
 * stored seq_cst, then rwait or wwait loaded seq_cst; the sleeper counts
 * itself seq_cst, then re-checks with seq_cst loads.  One of the two sees
 * the other.
 *
 * Waiting.  Every wait of a blocking call checks the call's one deadline
 * and the token on every pass, whatever its readiness test says, and a
 * readiness test answers the question its call asks (frame_ready() and
 * the read share why_nothing(); room_ready() and reserve() look at the
 * same bits), so "ready" means the call makes progress or fails.  Should
 * they still disagree (a peer rewriting shared words between the two
 * looks), a call that keeps waking to find nothing stops trusting the
 * test after STUCK_MAX passes and naps on the futex between tries,
 * sweeping as a sleeper does.
 *
 * Dead peers.  A sleeper looks for the dead every SWEEP_NS, and at once
 * when its liveness monitor saw a peer die: a writer dead with a slice
 * reserved (its slice is sealed SKIP in its place, so readers and
 * committed move on; see abandon() for every position it can die in), a
 * strong writer dead (its place is freed, and the channel drains if no
 * strong writer is left), a strong reader dead (freed, so it holds nobody
 * back).  Sweeps run under the region lock.
 *
 * Bounds.  A peer can make one call do only so much: a read passes at
 * most SKIPS_MAX empty slices (pads, skips) before it returns, a walk of
 * committed at most one lap, a sweep one look at each place.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <sys/random.h>

#include <sluice/chan.h>

#include "cancel_internal.h"
#include "chan_layout.h"
#include "futex.h"
#include "internal.h"
#include "introspect.h"
#include "testpoint.h"

#define DEFAULT_TIMEOUT_NS	(5 * 1000000000ull)
#define SPIN_MAX_NS		50000u
#define SPIN_MIN_NS		20000u
#define CLOCK_EVERY		64u		/* polls between clock reads */
#define POLL_NS			32u		/* about one poll and pause */
#define YIELD_NS		2000u		/* spin this long before yielding */
#define IDLE_EVERY		1024u		/* try_ -EAGAINs between clock reads */
#define SWEEP_NS		(20 * 1000000ull)
#define BATCH_MAX		65535u
#define SKIPS_MAX		64u		/* empty slices a read passes */
#define CAS_TRIES		256u		/* lost reservations, then -EAGAIN */
#define STUCK_MAX		4u		/* passes that found nothing, trusted */
#define NAP_NS			(1000000ull)	/* a distrusted pass's sleep, at most */
#define LOCK_TRY_NS		(1000000ull)	/* a try_ call's wait for the lock */
#define OWN_AHEAD_MAX		4096u		/* bytes owned ahead of the next batch */
#define SLIP_MAX		256u		/* a reader's pauses: about 6 us */

struct sluice_chan {
	struct sluice_region *region;
	struct sluice_chan_hdr *h;
	_Atomic uint64_t *index;
	struct sluice_chan_rent *readers;
	struct sluice_chan_went *writers;
	unsigned char *data;
	uint64_t cap;
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

/* How an endpoint waits. */
struct waiting {
	uint64_t timeout_ns;
	struct sluice_cancel *cancel;
	uint32_t spin_ns;		/* current budget */
	uint32_t spin_max;
	bool spin_fixed;
	uint32_t idle;			/* try_ calls that said -EAGAIN */
	uint64_t swept_at;		/* when one of them last swept */
	uint32_t slip;			/* pauses before a wait's first poll */
	unsigned int polls;		/* the last wait's; UINT_MAX: it slept */
};

/* One blocking call's waits: the deadline and the sweeps span them all. */
struct wait_call {
	uint64_t deadline;		/* 0 until a wait reads the clock */
	uint64_t next_sweep;		/* 0 until a wait sleeps */
	unsigned int passes;		/* waits so far */
	unsigned int stuck;		/* of them, in a row without progress */
};

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
	struct waiting w;
};

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
	struct waiting w;
};

/* ------------------------------------------------------------- helpers */

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static struct sluice_chan_slice *slice_at(const struct sluice_chan *ch, uint64_t pos)
{
	return (struct sluice_chan_slice *)(ch->data + (pos & ch->mask));
}

static unsigned char *bytes_at(const struct sluice_chan *ch, uint64_t pos)
{
	return ch->data + (pos & ch->mask);
}

/*
 * Copy a frame.  Short frames, the common case, move in 16- or 32-byte
 * pieces the compiler inlines, the last overlapping the one before; a
 * call into memcpy costs more than the copy.
 */
static inline void copy_frame(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (n == 64) {
		memcpy(d, s, 64);	/* a full line, the common case: no offsets */
	} else if (n >= 32 && n < 64) {
		memcpy(d, s, 32);
		memcpy(d + n - 32, s + n - 32, 32);
	} else if (n >= 16 && n < 32) {
		memcpy(d, s, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8 && n < 16) {
		memcpy(d, s, 8);
		memcpy(d + n - 8, s + n - 8, 8);
	} else if (n) {		/* memcpy wants real pointers even for 0 bytes */
		memcpy(d, s, n);
	}
}

static uint64_t tail_pos(uint64_t t)
{
	return t & CHAN_TAIL_POS;
}

/* What a tail word says to a writer: 0 (reserve on), or why not. */
static int tail_verdict(uint64_t t)
{
	if (t & CHAN_TAIL_TERM)
		return -ECONNABORTED;
	if (t & CHAN_TAIL_DRAIN)
		return -EPIPE;
	if (t % 16)		/* slices start on 16: not a tail we made */
		return -EBADMSG;
	return 0;
}

/*
 * ctl says terminated: -ECONNABORTED if tail says so too.  Whoever ends a
 * channel sets tail's bit before ctl's (set_ending(), both seq_cst), so
 * once ctl's is seen (acquire), tail's shows: a bit in ctl alone was
 * written by a peer, not by a channel call.
 */
static int term_verdict(const struct sluice_chan *ch)
{
	return atomic_load_explicit(&ch->h->tail, memory_order_seq_cst) & CHAN_TAIL_TERM ?
	       -ECONNABORTED : -EBADMSG;
}

/*
 * Does a data or skip slice of @bytes after its header fit at @pos: at most
 * half the ring, and not across its end?
 */
static bool slice_fits(const struct sluice_chan *ch, uint64_t pos, uint32_t bytes)
{
	return CHAN_SLICE_HDR + (uint64_t)bytes <= ch->cap / 2 &&
	       (pos & ch->mask) + CHAN_SLICE_HDR + bytes <= ch->cap;
}

/* Is @v a seal of position @pos, of any kind? */
static bool sealed(const struct sluice_chan *ch, uint64_t v, uint64_t pos)
{
	return (v & ~3ull) == (chan_seal(ch->salt, pos, 0) & ~3ull) &&
	       (v & 3) <= CHAN_SLICE_SKIP;
}

static bool owner_alive(uint64_t owner, uint64_t start)
{
	pid_t pid = CHAN_OWNER_PID(owner);
	uint64_t now;

	if (sluice__proc_start_time(pid, &now))
		return false;
	/* 0: the owner took the place and has not written its start yet. */
	return !start || now == start;
}

/*
 * Bytes a slice of these frames takes: 0 if it is too big, 1 (not a
 * multiple of 16) if a frame has no buffer.
 */
static uint64_t slice_bytes(const struct sluice_chan *ch, const struct iovec *iov,
			    unsigned int n, bool bases)
{
	uint64_t sum = CHAN_SLICE_HDR, half = ch->cap / 2;
	unsigned int i;

	for (i = 0; i < n; i++) {
		if (iov[i].iov_len > half)
			return 0;
		if (bases && !iov[i].iov_base && iov[i].iov_len)
			return 1;
		sum += CHAN_FRAME_HDR + align_up(iov[i].iov_len, 8);
	}
	/* n is at most BATCH_MAX: the sum of n lengths under half cannot wrap. */
	sum = align_up(sum, 16);
	return sum > half ? 0 : sum;
}

/*
 * Loads and copies of a weak reader: they may race with a writer reusing
 * the bytes, and are validated afterwards (see the top).  Hidden from
 * ThreadSanitizer, which would rightly call them races.
 */
#if defined(__SANITIZE_THREAD__)
#define RACY __attribute__((no_sanitize("thread"), noinline))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RACY __attribute__((no_sanitize("thread"), noinline))
#endif
#endif
#ifndef RACY
#define RACY
#endif

static RACY uint32_t racy_load32(const void *p)
{
	return *(const volatile uint32_t *)p;
}

static RACY uint64_t racy_load64(const void *p)
{
	return *(const volatile uint64_t *)p;
}

static RACY void racy_copy(void *dst, const void *src, size_t n)
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

/* ------------------------------------------------------------- waking */

static void wake_all(struct sluice_chan *ch)
{
	sluice__futex_bump_wake(&ch->h->rseq);
	sluice__futex_bump_wake(&ch->h->wseq);
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
static void advance(struct sluice_chan *ch)
{
	struct sluice_chan_hdr *h = ch->h;
	uint64_t c, next, seal, tail, steps;
	struct sluice_chan_slice *s;
	uint32_t bytes;

	c = atomic_load_explicit(&h->committed, memory_order_seq_cst);
	for (steps = 0; steps < ch->cap / 16; steps++) {
		tail = tail_pos(atomic_load_explicit(&h->tail, memory_order_acquire));
		if (c >= tail || c % 16)
			break;
		s = slice_at(ch, c);
		seal = racy_load64(&s->seal);
		/* The slice's header after its seal (pairs with seal()'s store). */
		atomic_thread_fence(memory_order_acquire);
		if (!sealed(ch, seal, c))
			break;
		bytes = racy_load32(&s->bytes);
		next = c + CHAN_SLICE_HDR + bytes;
		if (bytes % 16 || next > tail ||
		    ((seal & 3) == CHAN_SLICE_PAD ? next & ch->mask :
		     !slice_fits(ch, c, bytes)))
			break;		/* not ours to judge: readers say -EBADMSG */
		if (atomic_compare_exchange_strong_explicit(&h->committed, &c, next,
							    memory_order_seq_cst,
							    memory_order_seq_cst)) {
			c = next;
		}
	}
}

/* Dekker's waker: after a seal or a cursor stored seq_cst, the counts. */
static void wake_sleepers(struct sluice_chan_hdr *h)
{
	if (atomic_load_explicit(&h->rwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&h->rseq);
	if (atomic_load_explicit(&h->wwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&h->wseq);
}

/* Seal the slice at @at as @kind, @bytes after its header, and tell. */
static void seal(struct sluice_chan *ch, uint64_t at, uint32_t bytes,
		 uint32_t frames, uint32_t kind)
{
	struct sluice_chan_slice *s = slice_at(ch, at);

	atomic_store_explicit(&s->bytes, bytes, memory_order_relaxed);
	atomic_store_explicit(&s->frames, frames, memory_order_relaxed);
	/*
	 * seq_cst: a release for readers (the frames before it), and a store
	 * in the total order for advance() and sleeping readers (the top).
	 */
	atomic_store_explicit(&s->seal, chan_seal(ch->salt, at, kind), memory_order_seq_cst);
}

/* ------------------------------------------------------------- waiting */

static void waiting_init(struct waiting *w, const struct sluice_chan *ch,
			 const struct sluice_chan_opts *opts)
{
	uint32_t spin;

	w->timeout_ns = SLUICE_OPT(opts, sluice_chan_opts, timeout_ns, 0);
	if (!opts)
		w->timeout_ns = ch->timeout_ns;
	if (!w->timeout_ns)
		w->timeout_ns = DEFAULT_TIMEOUT_NS;
	w->cancel = opts ? SLUICE_OPT(opts, sluice_chan_opts, cancel, NULL) : ch->cancel;
	spin = opts ? SLUICE_OPT(opts, sluice_chan_opts, spin_ns, 0) : ch->spin_ns;
	w->spin_fixed = spin != 0;
	w->spin_max = spin ? spin : SPIN_MAX_NS;
	w->spin_ns = w->spin_max;
}

/*
 * Spin budget: enough for twice what waits take, up to the most we may
 * spin; only a sleep longer than that (an idle channel) halves it.  A
 * wait ended by a short sleep grows it too: with more endpoints than CPUs
 * the peer was queued behind us, and yielding through its turn is cheaper
 * than a sleep and the wake it costs the peer.
 */
static void spin_adapt(struct waiting *w, uint64_t took, bool spun)
{
	uint64_t next;

	if (w->spin_fixed)
		return;
	if (spun || took < w->spin_max)
		next = took * 2 > w->spin_ns ? took * 2 : w->spin_ns;
	else
		next = w->spin_ns / 2;
	if (next < SPIN_MIN_NS)
		next = SPIN_MIN_NS;
	w->spin_ns = (uint32_t)(next < w->spin_max ? next : w->spin_max);
}

static void sweep(struct sluice_chan *ch, uint64_t deadline);

/*
 * A try_ call said -EAGAIN.  Callers that never block never sleep, so
 * they look for the dead here instead, as a sleeper would: every SWEEP_NS
 * of trying, checked every IDLE_EVERY tries.
 */
static void idle(struct sluice_chan *ch, struct waiting *w)
{
	uint64_t now;

	if (++w->idle % IDLE_EVERY)
		return;
	now = sluice__now_ns(CLOCK_MONOTONIC);
	if (now - w->swept_at < SWEEP_NS)
		return;
	w->swept_at = now;
	/* A try_ call waits for the region lock no more than LOCK_TRY_NS. */
	if (w->idle > IDLE_EVERY)	/* not the first round: we have waited */
		sweep(ch, now + LOCK_TRY_NS);
}

/*
 * The monitor saw a watched peer die (from its thread): the sleepers of
 * this handle sweep at once instead of at their next SWEEP_NS.
 */
static void peer_died(pid_t pid, uint64_t start, void *arg)
{
	struct sluice_chan *ch = arg;

	(void)pid;
	(void)start;
	/* Before the bump: a sleeper woken by it sees the flag. */
	atomic_store_explicit(&ch->dead_seen, 1, memory_order_seq_cst);
	wake_all(ch);
}

/* Forget the watches of processes that have died (their watch fired). */
static void watches_reap(struct sluice_chan *ch)
{
	uint32_t i, k = 0;

	for (i = 0; i < ch->nwatch; i++) {
		if (sluice__proc_alive(ch->watches[i].pid, ch->watches[i].start)) {
			ch->watches[k++] = ch->watches[i];
			continue;
		}
		sluice_liveness_unwatch(ch->live, ch->watches[i].id);
	}
	ch->nwatch = k;
}

/*
 * Watch the owner of a table place, unless it is us or watched already.
 * A place whose start is not written yet (0) waits for the next look:
 * watched by pid alone, it would be watched again once the start shows.
 */
static void watch_one(struct sluice_chan *ch, uint64_t owner, uint64_t start)
{
	int32_t pid = CHAN_OWNER_PID(owner);
	struct chan_watch *w;
	uint32_t i;

	if (!owner || !start || pid <= 0 || pid == ch->pid)
		return;
	for (i = 0; i < ch->nwatch; i++)
		if (ch->watches[i].pid == pid && ch->watches[i].start == start)
			return;
	if (ch->nwatch == ch->readers_max + ch->writers_max)
		watches_reap(ch);
	if (ch->nwatch == ch->readers_max + ch->writers_max)
		return;		/* all alive: the sweep every SWEEP_NS still runs */
	w = &ch->watches[ch->nwatch];
	if (sluice_liveness_watch_fn(ch->live, pid, start, peer_died, ch, &w->id))
		return;
	w->pid = pid;
	w->start = start;
	ch->nwatch++;
}

/*
 * Before sleeping, watch every process in the tables: one of them (a
 * writer mid-slice, a strong reader behind) may be what we wait for.
 * Each is watched once per handle, for as long as the handle lives.
 */
static void watch_peers(struct sluice_chan *ch)
{
	uint32_t i;

	pthread_mutex_lock(&ch->watch_lock);
	/*
	 * Racy with places changing hands, and that is fine: a wrong pair
	 * only costs a watch of a process that is not there (it fires, and
	 * the sweep it causes finds nothing to do).
	 */
	for (i = 0; i < ch->writers_max; i++)
		watch_one(ch, atomic_load_explicit(&ch->writers[i].owner, memory_order_relaxed),
			  atomic_load_explicit(&ch->writers[i].start, memory_order_relaxed));
	for (i = 0; i < ch->readers_max; i++)
		watch_one(ch, atomic_load_explicit(&ch->readers[i].owner, memory_order_relaxed),
			  atomic_load_explicit(&ch->readers[i].start, memory_order_relaxed));
	pthread_mutex_unlock(&ch->watch_lock);
}

/* A deadline @timeout_ns after @now, saturated. */
static uint64_t deadline_of(const struct waiting *w, uint64_t now)
{
	return w->timeout_ns > UINT64_MAX - now ? UINT64_MAX : now + w->timeout_ns;
}

/*
 * Wait until @ready says something other than -EAGAIN, on futex @seq,
 * counted in @nwait, within call @c's deadline.  The first wait of a call
 * reads the clock only once it has lasted CLOCK_EVERY polls (a clock read
 * costs as much as a frame in a VM); every later one reads it at once, as
 * the call went round without getting anywhere.  Returns 0 (go and look),
 * or an error.
 */
static int wait_for(struct sluice_chan *ch, struct waiting *w,
		    _Atomic uint32_t *seq, _Atomic uint32_t *nwait,
		    int (*ready)(void *), void *arg, struct wait_call *c)
{
	/* A budget shorter than CLOCK_EVERY polls is checked every poll. */
	unsigned int every = w->spin_ns < CLOCK_EVERY * POLL_NS ? 1 : CLOCK_EVERY;
	uint64_t now, start = 0, sleep_start, wake_at;
	struct sluice__waiter waiter;
	bool yielding = false, distrust = false;
	unsigned int i;
	uint32_t val;
	int err;

	err = sluice_cancel_reason(w->cancel);
	if (err)
		return err;
	if (c->passes++) {
		now = sluice__now_ns(CLOCK_MONOTONIC);
		if (!c->deadline)
			c->deadline = deadline_of(w, now);
		if (now >= c->deadline)
			return -ETIMEDOUT;
		/* "Ready" led nowhere, time and again: sleep between tries. */
		distrust = c->stuck > STUCK_MAX;
	}
	c->stuck++;		/* the caller zeroes it when it gets somewhere */
	w->polls = UINT_MAX;
	if (distrust)
		goto sleep;
	/* Let the peer get ahead first (a reader's slip; see the top). */
	for (i = 0; i < w->slip; i++)
		sluice__cpu_relax();

	/*
	 * Spin for the budget: pause first; past YIELD_NS, yield the CPU on
	 * every poll instead.  With more endpoints than CPUs, the one we wait
	 * for may be queued behind us on our own CPU: yielding hands it the
	 * CPU for a system call, where sleeping would cost it a wake as well.
	 * Alone on the CPU, a yield returns at once and we just poll slower.
	 */
	for (i = 1;; i++) {
		err = ready(arg);
		if (err != -EAGAIN) {
			spin_adapt(w, start ? sluice__now_ns(CLOCK_MONOTONIC) - start :
				   (uint64_t)i * POLL_NS, true);
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
		now = sluice__now_ns(CLOCK_MONOTONIC);
		if (!start)
			start = now;
		yielding = now - start >= YIELD_NS;
		if (!c->deadline)
			c->deadline = deadline_of(w, now);
		if (now >= c->deadline)
			return -ETIMEDOUT;
		err = sluice_cancel_reason(w->cancel);
		if (err)
			return err;
		if (w->spin_max != UINT32_MAX && now - start >= w->spin_ns)
			break;
	}

sleep:
	sleep_start = sluice__now_ns(CLOCK_MONOTONIC);
	if (!c->deadline)
		c->deadline = deadline_of(w, sleep_start);
	if (!c->next_sweep)
		c->next_sweep = sleep_start + SWEEP_NS;
	err = sluice__cancel_arm(w->cancel, &waiter, seq);
	if (err)
		return err;
	atomic_fetch_add_explicit(nwait, 1, memory_order_seq_cst);
	for (;;) {
		val = atomic_load_explicit(seq, memory_order_acquire);
		/* Dekker's sleeper: the count before the re-check. */
		atomic_thread_fence(memory_order_seq_cst);
		err = distrust ? -EAGAIN : ready(arg);
		if (err != -EAGAIN)
			break;
		err = sluice_cancel_reason(w->cancel);
		if (err)
			break;
		now = sluice__now_ns(CLOCK_MONOTONIC);
		if (now >= c->deadline) {
			err = -ETIMEDOUT;
			break;
		}
		/*
		 * A death the monitor saw, or a while without news: sweep.
		 * The flag was stored before the wake that woke us (seq_cst
		 * both), so a wake for a death always finds it.
		 */
		if ((ch->live && atomic_exchange_explicit(&ch->dead_seen, 0,
							  memory_order_seq_cst)) ||
		    now >= c->next_sweep) {
			sweep(ch, c->deadline);
			c->next_sweep = now + SWEEP_NS;
			continue;
		}
		/* Peers that joined since we last looked, too. */
		if (ch->live)
			watch_peers(ch);
		wake_at = c->next_sweep < c->deadline ? c->next_sweep : c->deadline;
		if (distrust && now + NAP_NS < wake_at)
			wake_at = now + NAP_NS;
		sluice__futex_wait(seq, val, wake_at);
		if (distrust) {
			err = 0;	/* napped: let the call look again */
			break;
		}
	}
	atomic_fetch_sub_explicit(nwait, 1, memory_order_relaxed);
	sluice__cancel_disarm(w->cancel, &waiter);
	spin_adapt(w, sluice__now_ns(CLOCK_MONOTONIC) - (start ? start : sleep_start), false);
	return err;
}

/* ------------------------------------------------------------- sweeping */

/*
 * Dead writers.  A sweep must seal SKIP every slice a dead writer won and
 * did not seal, wherever it died, and touch nothing else.  What it rests on:
 *
 *  (1) Reservations tile the positions: each CAS moves tail from one
 *      writer's @from to its end, so exactly one writer wins each @from.
 *  (2) A writer stores its intent (from, len, CLAIMING) before its CAS,
 *      FILLING after winning it, then seals its pad (a wrap's), then its
 *      slice, and only then goes IDLE or gives its place back.
 *  (3) committed passes only sealed slices, and nobody reserves a lap
 *      past committed: bytes at or above committed are this lap's, and
 *      an unsealed slice at p keeps committed at or below p.
 *  (4) The dead store nothing more, and sweeps run one at a time, under
 *      the region lock; the living never seal at another's position.
 *
 * A dead place says which reservation it held, if any (claim_of()):
 *
 *  - IDLE: none; whatever it won is sealed (2).
 *  - FILLING: it won @from (2), unless another place says FILLING from
 *    @from too, which no honest pair can: then one is forged, and we
 *    seal nothing.
 *  - CLAIMING: it died before or after its CAS.  It lost if tail has not
 *    passed @from, or if committed passed @from or a seal of @from is
 *    there (a winner that died CLAIMING had sealed nothing yet, and its
 *    unsealed bytes hold committed back: (3)); or if another place says
 *    FILLING from @from (1).  A live place CLAIMING from @from may be
 *    the loser or the winner about to say so: unsure, look again at the
 *    next sweep (it says FILLING or moves on within instructions).  A
 *    dead one CLAIMING from @from is a tie between two dead, and the
 *    winner's reservation ends where the next begins: at tail, at a
 *    seal, or at some place's @from (confirmed()).  Two that confirm
 *    have the same end, so the same reservation.  Nobody else claiming
 *    @from: it won.
 *
 * abandon() then seals, for the winner, what it left unsealed: its pad
 * at @from (on a wrap) unless sealed, then its slice at @at unless
 * sealed.  Each part is judged on its own: the pad may be sealed and
 * passed by committed (a reader joining walks it) while the slice is not,
 * and once passed, its bytes may already hold the next lap's slices.
 * A seal word is read before committed: if committed is still at or
 * below the part's position after the read, the read was of this lap (3),
 * and nobody else can seal there until we do (4).
 */
enum claim {
	CLAIM_NONE,		/* holds no unsealed reservation */
	CLAIM_WON,		/* won @from: seal what it left */
	CLAIM_UNSURE,		/* look again at the next sweep */
};

/* Where a reservation of @len bytes from @from puts its slice. */
static uint64_t slice_start(const struct sluice_chan *ch, uint64_t from, uint32_t len)
{
	uint64_t off = from & ch->mask;

	return off + len > ch->cap ? from + (ch->cap - off) : from;
}

static bool sealed_at(const struct sluice_chan *ch, uint64_t pos)
{
	return sealed(ch, atomic_load_explicit(&slice_at(ch, pos)->seal,
					       memory_order_seq_cst), pos);
}

/* Does something begin at @end: tail, a seal, a place's reservation? */
static bool confirmed(struct sluice_chan *ch, uint64_t tail, uint64_t end)
{
	uint32_t j;

	if (tail == end || sealed_at(ch, end))
		return true;
	for (j = 0; j < ch->writers_max; j++) {
		struct sluice_chan_went *e = &ch->writers[j];

		if (atomic_load_explicit(&e->owner, memory_order_acquire) &&
		    atomic_load_explicit(&e->state, memory_order_acquire) != CHAN_W_IDLE &&
		    atomic_load_explicit(&e->from, memory_order_relaxed) == end)
			return true;
	}
	return false;
}

/* The dead writer at place @i, in state @st: see the top of this section. */
static enum claim claim_of(struct sluice_chan *ch, uint32_t i, uint32_t st,
			   uint64_t from, uint32_t len)
{
	uint64_t tail = tail_pos(atomic_load_explicit(&ch->h->tail, memory_order_seq_cst));
	uint64_t committed, end = slice_start(ch, from, len) + len, owner;
	bool tie = false, tie_confirmed = false;
	uint32_t j, st2;

	if (st == CHAN_W_CLAIMING) {
		if (tail <= from || sealed_at(ch, from))
			return CLAIM_NONE;
		committed = atomic_load_explicit(&ch->h->committed, memory_order_seq_cst);
		if (committed > from)
			return CLAIM_NONE;
	}
	for (j = 0; j < ch->writers_max; j++) {
		struct sluice_chan_went *e = &ch->writers[j];

		owner = atomic_load_explicit(&e->owner, memory_order_acquire);
		if (j == i || !owner)
			continue;
		st2 = atomic_load_explicit(&e->state, memory_order_acquire);
		if (st2 == CHAN_W_IDLE || atomic_load_explicit(&e->from, memory_order_relaxed) != from)
			continue;
		if (st2 == CHAN_W_FILLING)
			return CLAIM_NONE;	/* it won @from, or one of us is forged */
		if (st == CHAN_W_FILLING)
			continue;		/* a loser on its way to its next try */
		if (owner_alive(owner, atomic_load_explicit(&e->start, memory_order_relaxed)))
			return CLAIM_UNSURE;
		tie = true;
		if (confirmed(ch, tail, slice_start(ch, from,
						    atomic_load_explicit(&e->len, memory_order_relaxed)) +
					 atomic_load_explicit(&e->len, memory_order_relaxed)))
			tie_confirmed = true;
	}
	if (!tie || confirmed(ch, tail, end))
		return CLAIM_WON;
	return tie_confirmed ? CLAIM_NONE : CLAIM_UNSURE;
}

/*
 * Seal what the dead winner of @from, @len bytes, left unsealed: see the
 * top of this section.  Under the region lock.
 */
static void abandon(struct sluice_chan *ch, uint64_t from, uint32_t len)
{
	struct sluice_chan_hdr *h = ch->h;
	uint64_t at = slice_start(ch, from, len), v;

	/* A reservation tail has not passed is no reservation: forged. */
	if (at + len > tail_pos(atomic_load_explicit(&h->tail, memory_order_seq_cst)))
		return;
	if (at != from) {
		v = atomic_load_explicit(&slice_at(ch, from)->seal, memory_order_seq_cst);
		if (sealed(ch, v, from)) {
			if ((v & 3) != CHAN_SLICE_PAD)
				return;		/* not our pad: not our reservation */
		} else if (atomic_load_explicit(&h->committed, memory_order_seq_cst) <= from) {
			seal(ch, from, (uint32_t)(at - from - CHAN_SLICE_HDR), 0, CHAN_SLICE_PAD);
		}
		/* Else passed, so sealed, and its bytes are a later lap's now. */
	}
	if (sealed_at(ch, at) ||
	    atomic_load_explicit(&h->committed, memory_order_seq_cst) > at)
		return;			/* sealed before it died */
	seal(ch, at, len - CHAN_SLICE_HDR, 0, CHAN_SLICE_SKIP);
	atomic_fetch_add_explicit(&h->abandoned, len, memory_order_relaxed);
}

/* Is any place held by a strong writer that is not on its way out? */
static bool strong_left(const struct sluice_chan *ch)
{
	uint32_t i;

	for (i = 0; i < ch->writers_max; i++)
		if (CHAN_OWNER_KIND(atomic_load_explicit(&ch->writers[i].owner,
							 memory_order_seq_cst)) == SLUICE_CHAN_STRONG)
			return true;
	return false;
}

/*
 * Is the place with these owner and start words held by a dead process
 * (not ours)?  Its owner, when it is, in @owner.
 *
 * The owner is loaded again after the verdict.  One that closed and
 * exited between the first load and the verdict gave the place back
 * itself, and another may hold the place now: clearing it again would
 * put a live end out.  Once its owner is dead, only a sweep (under the
 * region lock) changes a place that is not free, so the answer holds
 * until the sweep clears it.
 */
static bool dead_owner(const struct sluice_chan *ch, _Atomic uint64_t *place,
		       _Atomic uint64_t *start_word, uint64_t *owner)
{
	uint64_t start;

	*owner = atomic_load_explicit(place, memory_order_acquire);
	if (!*owner || CHAN_OWNER_PID(*owner) == ch->pid)
		return false;
	start = atomic_load_explicit(start_word, memory_order_relaxed);
	return !owner_alive(*owner, start) &&
	       atomic_load_explicit(place, memory_order_acquire) == *owner;
}

static int set_ending(struct sluice_chan *ch, uint64_t tail_bit, uint32_t ctl_bit);

/* Under the region lock, taken by @deadline at the latest, or skipped. */
static void sweep(struct sluice_chan *ch, uint64_t deadline)
{
	bool changed = false, strong_gone = false;
	uint32_t i, st, len, kind;
	uint64_t owner, from;
	enum claim claim;

	if (sluice__region_lock_until(ch->region, deadline))
		return;
	for (i = 0; i < ch->writers_max; i++) {
		struct sluice_chan_went *e = &ch->writers[i];

		if (!dead_owner(ch, &e->owner, &e->start, &owner))
			continue;
		st = atomic_load_explicit(&e->state, memory_order_acquire);
		from = atomic_load_explicit(&e->from, memory_order_relaxed);
		len = atomic_load_explicit(&e->len, memory_order_relaxed);
		/* A reservation a live writer could not have made: no claim. */
		claim = CLAIM_NONE;
		if ((st == CHAN_W_FILLING || st == CHAN_W_CLAIMING) &&
		    len >= CHAN_SLICE_HDR && len <= ch->cap / 2 && !(len % 16) && !(from % 16))
			claim = claim_of(ch, i, st, from, len);
		if (claim == CLAIM_UNSURE)
			continue;
		if (claim == CLAIM_WON)
			abandon(ch, from, len);
		atomic_store_explicit(&e->state, CHAN_W_IDLE, memory_order_relaxed);
		/* seq_cst: Dekker with a strong writer's close (strong_left()). */
		atomic_store_explicit(&e->owner, 0, memory_order_seq_cst);
		kind = CHAN_OWNER_KIND(owner);
		strong_gone |= kind == SLUICE_CHAN_STRONG || kind == CHAN_KIND_CLOSING;
		changed = true;
	}
	for (i = 0; i < ch->readers_max; i++) {
		struct sluice_chan_rent *e = &ch->readers[i];

		if (!dead_owner(ch, &e->owner, &e->start, &owner))
			continue;
		atomic_store_explicit(&e->owner, 0, memory_order_seq_cst);
		if (CHAN_OWNER_KIND(owner) == SLUICE_CHAN_STRONG)
			atomic_fetch_add_explicit(&ch->h->swept, 1, memory_order_relaxed);
		changed = true;
	}
	/* The last strong writer died: the channel drains, as at its close. */
	if (strong_gone && !strong_left(ch))
		set_ending(ch, CHAN_TAIL_DRAIN, CHAN_CTL_DRAIN);
	sluice__region_unlock(ch->region);
	if (changed) {
		advance(ch);
		wake_all(ch);
	}
}

/* ------------------------------------------------------------- channels */

struct geometry {
	uint64_t index_off, readers_off, writers_off, data_off, size;
};

static void geometry_of(uint64_t cap, uint32_t rmax, uint32_t wmax, struct geometry *g)
{
	g->index_off = align_up(sizeof(struct sluice_chan_hdr), 64);
	g->readers_off = g->index_off + CHAN_INDEX_N * sizeof(uint64_t);
	g->writers_off = g->readers_off + (uint64_t)rmax * sizeof(struct sluice_chan_rent);
	g->data_off = align_up(g->writers_off + (uint64_t)wmax * sizeof(struct sluice_chan_went), 64);
	g->size = g->data_off + cap;
}

static uint64_t config_csum(const struct sluice_chan_hdr *c)
{
	return sluice__fnv1a((const unsigned char *)c + CHAN_CSUM_FROM,
			     CHAN_CSUM_TO - CHAN_CSUM_FROM);
}

static bool capacity_ok(uint64_t cap)
{
	return sluice__is_pow2(cap) && cap >= SLUICE_CHAN_CAPACITY_MIN &&
	       cap <= SLUICE_CHAN_CAPACITY_MAX;
}

static bool ends_ok(uint32_t n)
{
	return n >= 1 && n <= SLUICE_CHAN_ENDS_MAX;
}

/* Check a private copy of the configuration against its object. */
static int config_check(const struct sluice_chan_hdr *c, uint64_t obj_size)
{
	struct geometry g;

	if (c->abi != SLUICE_CHAN_ABI)
		return -EPROTO;
	if (c->csum != config_csum(c) || !capacity_ok(c->capacity) ||
	    c->policy > SLUICE_CHAN_OVERWRITE ||
	    !ends_ok(c->readers_max) || !ends_ok(c->writers_max))
		return -EBADMSG;
	geometry_of(c->capacity, c->readers_max, c->writers_max, &g);
	if (c->index_off != g.index_off || c->readers_off != g.readers_off ||
	    c->writers_off != g.writers_off || c->data_off != g.data_off ||
	    c->size != g.size || c->size > obj_size)
		return -EBADMSG;
	return 0;
}

static bool opts_ok(const struct sluice_chan_opts *opts, bool create)
{
	if (!sluice__opts_valid(opts, sizeof(*opts)) ||
	    SLUICE_OPT(opts, sluice_chan_opts, flags, 0))
		return false;
	if (create)
		return true;
	return !SLUICE_OPT(opts, sluice_chan_opts, readers_max, 0) &&
	       !SLUICE_OPT(opts, sluice_chan_opts, writers_max, 0) &&
	       !SLUICE_OPT(opts, sluice_chan_opts, liveness, NULL);
}

static int handle_init(struct sluice_region *r, struct sluice_chan_hdr *h,
		       const struct sluice_chan_hdr *cfg,
		       const struct sluice_chan_opts *opts, struct sluice_chan **out)
{
	struct sluice_chan *ch;

	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return -ENOMEM;
	ch->region = r;
	ch->h = h;
	ch->index = (_Atomic uint64_t *)((unsigned char *)h + cfg->index_off);
	ch->readers = (struct sluice_chan_rent *)((unsigned char *)h + cfg->readers_off);
	ch->writers = (struct sluice_chan_went *)((unsigned char *)h + cfg->writers_off);
	ch->data = (unsigned char *)h + cfg->data_off;
	ch->cap = cfg->capacity;
	ch->mask = cfg->capacity - 1;
	ch->chunk = cfg->capacity / CHAN_INDEX_N;
	ch->salt = cfg->salt;
	ch->readers_max = cfg->readers_max;
	ch->writers_max = cfg->writers_max;
	ch->policy = cfg->policy;
	ch->timeout_ns = SLUICE_OPT(opts, sluice_chan_opts, timeout_ns, 0);
	ch->cancel = SLUICE_OPT(opts, sluice_chan_opts, cancel, NULL);
	ch->spin_ns = SLUICE_OPT(opts, sluice_chan_opts, spin_ns, 0);
	ch->live = SLUICE_OPT(opts, sluice_chan_opts, liveness, NULL);
	if (ch->live) {
		ch->watches = calloc((size_t)ch->readers_max + ch->writers_max,
				     sizeof(*ch->watches));
		if (!ch->watches) {
			free(ch);
			return -ENOMEM;
		}
		pthread_mutex_init(&ch->watch_lock, NULL);
	}
	ch->pid = getpid();
	(void)sluice__proc_start_time(ch->pid, &ch->start);
	*out = ch;
	return 0;
}

int sluice_chan_create(struct sluice_region *r, const char *name,
		       uint64_t capacity, enum sluice_chan_policy policy,
		       const struct sluice_chan_opts *opts,
		       struct sluice_chan **out)
{
	struct sluice_chan_hdr *h, cfg;
	struct geometry g;
	uint64_t off;
	int err;

	if (!r || !out || !opts_ok(opts, true) || !capacity_ok(capacity) ||
	    (policy != SLUICE_CHAN_BLOCK && policy != SLUICE_CHAN_OVERWRITE))
		return -EINVAL;
	memset(&cfg, 0, sizeof(cfg));
	cfg.readers_max = SLUICE_OPT(opts, sluice_chan_opts, readers_max, 0);
	cfg.writers_max = SLUICE_OPT(opts, sluice_chan_opts, writers_max, 0);
	if (!cfg.readers_max)
		cfg.readers_max = SLUICE_CHAN_ENDS_DEFAULT;
	if (!cfg.writers_max)
		cfg.writers_max = SLUICE_CHAN_ENDS_DEFAULT;
	if (!ends_ok(cfg.readers_max) || !ends_ok(cfg.writers_max))
		return -EINVAL;
	if (getrandom(&cfg.salt, sizeof(cfg.salt), GRND_NONBLOCK) != sizeof(cfg.salt))
		cfg.salt = sluice__now_ns(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 32);

	geometry_of(capacity, cfg.readers_max, cfg.writers_max, &g);
	err = sluice_region_alloc(r, name, SLUICE_OBJ_CHAN, g.size, 64, &off);
	if (err)
		return err;
	h = sluice_region_at(r, off, g.size);

	/* Made privately, copied out (the region zeroed the rest). */
	cfg.abi = SLUICE_CHAN_ABI;
	cfg.policy = policy;
	cfg.capacity = capacity;
	cfg.index_off = g.index_off;
	cfg.readers_off = g.readers_off;
	cfg.writers_off = g.writers_off;
	cfg.data_off = g.data_off;
	cfg.size = g.size;
	cfg.csum = config_csum(&cfg);
	memcpy((char *)h + CHAN_CSUM_FROM, (char *)&cfg + CHAN_CSUM_FROM,
	       sizeof(cfg.csum) + CHAN_CSUM_TO - CHAN_CSUM_FROM);
	/* The magic last: an attacher that sees it sees the rest. */
	atomic_store_explicit((_Atomic uint64_t *)&h->magic, SLUICE_CHAN_MAGIC,
			      memory_order_release);
	return handle_init(r, h, &cfg, opts, out);
}

uint64_t sluice__chan_csum(const struct sluice_chan_hdr *cfg)
{
	return config_csum(cfg);
}

int sluice__chan_config_read(const struct sluice_chan_hdr *h, uint64_t size,
			     struct sluice_chan_hdr *cfg)
{
	uint64_t magic;

	if (size < sizeof(*h))
		return -EPROTO;
	/* Pairs with the release store of the magic that ends create. */
	magic = atomic_load_explicit((_Atomic uint64_t *)&h->magic, memory_order_acquire);
	if (!magic)
		return -EAGAIN;		/* its creator is still at it */
	if (magic != SLUICE_CHAN_MAGIC)
		return -EPROTO;
	/* Read once, check the copy, use the copy. */
	memcpy(cfg, h, sizeof(cfg->csum) + CHAN_CSUM_TO);
	return config_check(cfg, size);
}

int sluice_chan_attach(struct sluice_region *r, const char *name,
		       const struct sluice_chan_opts *opts,
		       struct sluice_chan **out)
{
	struct sluice_chan_hdr *h, cfg;
	struct sluice_obj_info obj;
	int err;

	if (!r || !out || !opts_ok(opts, true))
		return -EINVAL;
	if (SLUICE_OPT(opts, sluice_chan_opts, readers_max, 0) ||
	    SLUICE_OPT(opts, sluice_chan_opts, writers_max, 0))
		return -EINVAL;
	err = sluice_region_find(r, name, &obj);
	if (err)
		return err;
	h = sluice__obj_at(r, &obj, SLUICE_OBJ_CHAN, sizeof(*h), &err);
	if (!h)
		return err;
	err = sluice__chan_config_read(h, obj.size, &cfg);
	if (err)
		return err;
	return handle_init(r, h, &cfg, opts, out);
}

int sluice_chan_close(struct sluice_chan *ch)
{
	uint32_t i;

	if (!ch)
		return 0;
	if (atomic_load_explicit(&ch->ends, memory_order_acquire))
		return -EBUSY;
	if (ch->live) {
		/* Once each returns, peer_died() is not running on ch. */
		for (i = 0; i < ch->nwatch; i++)
			sluice_liveness_unwatch(ch->live, ch->watches[i].id);
		pthread_mutex_destroy(&ch->watch_lock);
		free(ch->watches);
	}
	free(ch);
	return 0;
}

static int set_ending(struct sluice_chan *ch, uint64_t tail_bit, uint32_t ctl_bit)
{
	if (!ch)
		return -EINVAL;
	atomic_fetch_or_explicit(&ch->h->tail, tail_bit, memory_order_seq_cst);
	atomic_fetch_or_explicit(&ch->h->ctl, ctl_bit, memory_order_seq_cst);
	wake_all(ch);
	return 0;
}

int sluice_chan_drain(struct sluice_chan *ch)
{
	return set_ending(ch, CHAN_TAIL_DRAIN, CHAN_CTL_DRAIN);
}

int sluice_chan_terminate(struct sluice_chan *ch)
{
	return set_ending(ch, CHAN_TAIL_TERM, CHAN_CTL_TERM);
}

int sluice_chan_info(struct sluice_chan *ch, struct sluice_chan_info *info)
{
	struct sluice_chan_hdr *h;
	uint64_t owner, tail;
	uint32_t i, ctl;

	if (!ch || !info)
		return -EINVAL;
	h = ch->h;
	memset(info, 0, sizeof(*info));
	info->capacity = ch->cap;
	info->policy = ch->policy;
	info->readers_max = ch->readers_max;
	info->writers_max = ch->writers_max;
	for (i = 0; i < ch->readers_max; i++) {
		owner = atomic_load_explicit(&ch->readers[i].owner, memory_order_acquire);
		if (CHAN_OWNER_KIND(owner) == SLUICE_CHAN_STRONG)
			info->strong_readers++;
		else if (CHAN_OWNER_KIND(owner) == SLUICE_CHAN_WEAK)
			info->weak_readers++;
	}
	for (i = 0; i < ch->writers_max; i++) {
		owner = atomic_load_explicit(&ch->writers[i].owner, memory_order_acquire);
		if (owner)
			info->writers_busy++;
		if (CHAN_OWNER_KIND(owner) == SLUICE_CHAN_STRONG)
			info->strong_writers++;
	}
	ctl = atomic_load_explicit(&h->ctl, memory_order_acquire);
	/* committed before tail: both only grow, so honest ones compare right. */
	info->committed = atomic_load_explicit(&h->committed, memory_order_acquire);
	tail = atomic_load_explicit(&h->tail, memory_order_acquire);
	info->draining = !!(ctl & CHAN_CTL_DRAIN) || !!(tail & CHAN_TAIL_DRAIN);
	info->terminated = !!(ctl & CHAN_CTL_TERM) || !!(tail & CHAN_TAIL_TERM);
	info->tail = tail_pos(tail);
	info->abandoned = atomic_load_explicit(&h->abandoned, memory_order_relaxed);
	info->swept = atomic_load_explicit(&h->swept, memory_order_relaxed);
	if (info->committed > info->tail)
		return -EBADMSG;
	return 0;
}

size_t sluice_chan_frame_max(const struct sluice_chan *ch)
{
	if (!ch)
		return 0;
	/* Half the ring (a multiple of 16), less the two headers. */
	return (size_t)(ch->cap / 2 - CHAN_SLICE_HDR - CHAN_FRAME_HDR);
}

/* ------------------------------------------------------------- writers */

/* Take a free place in the writer table; -EUSERS if there is none. */
static int place_take(struct sluice_chan *ch, uint32_t kind, uint32_t hint, uint32_t *out)
{
	uint64_t want = CHAN_OWNER(ch->pid, kind), free_ = 0;
	uint32_t i, j;

	for (j = 0; j < ch->writers_max; j++) {
		struct sluice_chan_went *e;

		i = (hint + j) % ch->writers_max;
		e = &ch->writers[i];
		free_ = 0;
		/*
		 * A plain look first (no line taken for a busy place), then
		 * the CAS: it acquires the last owner's stores (pairs with
		 * the release or seq_cst store that freed it), and is in the
		 * total order for strong_left() (a closing writer's Dekker).
		 */
		if (atomic_load_explicit(&e->owner, memory_order_relaxed) ||
		    !atomic_compare_exchange_strong_explicit(&e->owner, &free_, want,
							     memory_order_seq_cst,
							     memory_order_relaxed))
			continue;
		/* Sweepers and watch_peers() read these; start 0 means unknown. */
		atomic_store_explicit(&e->state, CHAN_W_IDLE, memory_order_relaxed);
		atomic_store_explicit(&e->start, ch->start, memory_order_release);
		*out = i;
		return 0;
	}
	return -EUSERS;
}

static void place_give(struct sluice_chan *ch, uint32_t i)
{
	struct sluice_chan_went *e = &ch->writers[i];

	atomic_store_explicit(&e->state, CHAN_W_IDLE, memory_order_relaxed);
	atomic_store_explicit(&e->start, 0, memory_order_relaxed);
	/* Pairs with readers' acquire of owner: our seals come before. */
	atomic_store_explicit(&e->owner, 0, memory_order_release);
}

int sluice_chan_writer_open(struct sluice_chan *ch, enum sluice_chan_kind kind,
			    const struct sluice_chan_opts *opts,
			    struct sluice_chan_writer **out)
{
	struct sluice_chan_writer *w;
	uint64_t tail;
	uint32_t ent;
	int err;

	if (!ch || !out || !opts_ok(opts, false) ||
	    (kind != SLUICE_CHAN_STRONG && kind != SLUICE_CHAN_WEAK))
		return -EINVAL;
	tail = atomic_load_explicit(&ch->h->tail, memory_order_acquire);
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
	waiting_init(&w->w, ch, opts);
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
		tail = atomic_load_explicit(&ch->h->tail, memory_order_seq_cst);
		if (tail & (CHAN_TAIL_TERM | CHAN_TAIL_DRAIN)) {
			place_give(ch, ent);
			free(w);
			return tail & CHAN_TAIL_TERM ? -ECONNABORTED : -EPIPE;
		}
	}
	atomic_fetch_add_explicit(&ch->ends, 1, memory_order_relaxed);
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
	advance(ch);
	min = atomic_load_explicit(&ch->h->committed, memory_order_seq_cst);
	if (min < w->committed)
		return -EBADMSG;	/* it only grows: a peer moved it back */
	w->committed = min;
	max = min;
	for (i = 0; i < ch->readers_max; i++) {
		struct sluice_chan_rent *e = &ch->readers[i];

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
	if (max > tail_pos(atomic_load_explicit(&ch->h->tail, memory_order_seq_cst)))
		return -EBADMSG;
	w->limit = min + ch->cap;
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
		atomic_store_explicit(&ch->index[(b / ch->chunk) % CHAN_INDEX_N],
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
	t = atomic_load_explicit(&ch->h->tail, memory_order_acquire);
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
	e = &ch->writers[w->ent];
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
		if (atomic_compare_exchange_weak_explicit(&ch->h->tail, &t, end,
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
		seal(ch, from, (uint32_t)(at - from - CHAN_SLICE_HDR), 0, CHAN_SLICE_PAD);
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

	seal(ch, w->at, w->len - CHAN_SLICE_HDR,
	     kind == CHAN_SLICE_DATA ? w->frames : 0, kind);
	sluice__tp(SLUICE__TP_CHAN_SEALED, NULL);
	if (w->kind == SLUICE_CHAN_WEAK) {
		place_give(ch, (uint32_t)w->ent);
		w->ent = -1;
	} else {
		/* Release: a sweeper that sees IDLE sees the seal. */
		atomic_store_explicit(&ch->writers[w->ent].state, CHAN_W_IDLE,
				      memory_order_release);
	}
	w->held = false;
	if (w->from / (ch->cap / 8) != (w->at + w->len) / (ch->cap / 8))
		advance(ch);
	wake_sleepers(ch->h);
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
		p += CHAN_FRAME_HDR + align_up(f.len, 8);
	}
}

/* @bases: the frames' buffers are input (write), not output (reserve). */
static int frames_ok(struct sluice_chan_writer *w, const struct iovec *iov,
		     unsigned int n, bool bases, uint64_t *len)
{
	if (!w || !iov || !n || n > BATCH_MAX)
		return -EINVAL;
	*len = slice_bytes(w->ch, iov, n, bases);
	return !*len ? -EMSGSIZE : *len == 1 ? -EINVAL : 0;
}

/* Writers' readiness for wait_for(): room, or a reason not to wait. */
static int room_ready(void *arg)
{
	struct sluice_chan_writer *w = arg;
	struct sluice_chan *ch = w->ch;
	uint64_t t = atomic_load_explicit(&ch->h->tail, memory_order_seq_cst), at;
	uint32_t i;

	/* What reserve() looks at first, in the same order. */
	if (tail_verdict(t))
		return 0;
	if (w->ent < 0) {
		/* A weak writer waiting for a place: any free one will do. */
		for (i = 0; i < ch->writers_max; i++)
			if (!atomic_load_explicit(&ch->writers[i].owner, memory_order_seq_cst))
				break;
		if (i == ch->writers_max)
			return -EAGAIN;
	}
	if (refresh_limit(w))
		return 0;	/* the caller meets the error */
	at = slice_start(ch, tail_pos(t), w->want);
	return at + w->want <= w->limit ? 0 : -EAGAIN;
}

/* reserve(), waiting for room or a place while it says -EAGAIN. */
static int reserve_wait(struct sluice_chan_writer *w, uint32_t len, uint32_t frames)
{
	struct wait_call c = { 0 };
	int err;

	for (;;) {
		err = reserve(w, len, frames);
		if (err != -EAGAIN)
			return err;
		w->want = len;
		err = wait_for(w->ch, &w->w, &w->ch->h->wseq, &w->ch->h->wwait,
			       room_ready, w, &c);
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
		idle(w->ch, &w->w);
	return err;
}

/*
 * After a slice: ask to own the lines of as many bytes again past its end
 * (at most OWN_AHEAD_MAX), those below our limit, which no strong reader
 * needs any more.  A writer that has the channel to itself writes its next
 * slice there, and finds the lines ready instead of waiting for each
 * (see own_ahead() in spsc.c).  Where other writers write between our
 * slices, the bytes are likely theirs: taking their lines would slow them
 * (2 writers, 1 reader: 117 -> 83 M frames/s when done regardless).
 *
 * The copy loop prefetches nothing.  It used to ask for the lines 256
 * bytes ahead of its stores, but as on the SPSC ring that did harm once
 * this was here: without it, paired runs gave 1w1r 155 -> 162 and 2w1r
 * 152 -> 161 M frames/s (with 2 writers neither owns ahead, and they
 * still gained).
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
		copy_frame(base + off + CHAN_FRAME_HDR, iov[i].iov_base, f.len);
		off += CHAN_FRAME_HDR + align_up(f.len, 8);
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

int sluice_chan_write(struct sluice_chan_writer *w, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };
	int ret;

	if (!buf && len)
		return -EINVAL;
	ret = write_batch(w, &v, 1, true);
	return ret < 0 ? ret : 0;
}

int sluice_chan_try_write(struct sluice_chan_writer *w, const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };
	int ret;

	if (!buf && len)
		return -EINVAL;
	ret = write_batch(w, &v, 1, false);
	return ret < 0 ? ret : 0;
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
	if (atomic_load_explicit(&w->ch->h->ctl, memory_order_acquire) & CHAN_CTL_TERM) {
		finish(w, CHAN_SLICE_SKIP);
		return term_verdict(w->ch);
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
	if (atomic_load_explicit(&w->ch->h->ctl, memory_order_acquire) & CHAN_CTL_TERM)
		return term_verdict(w->ch);
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
		atomic_store_explicit(&ch->writers[w->ent].owner,
				      CHAN_OWNER(ch->pid, CHAN_KIND_CLOSING), memory_order_seq_cst);
		sluice__tp(SLUICE__TP_CHAN_CLOSING, NULL);
		/* The last strong writer: the channel drains, as a pipe does. */
		if (!strong_left(ch))
			sluice_chan_drain(ch);
	}
	if (w->ent >= 0)
		place_give(ch, (uint32_t)w->ent);
	/* Release: pairs with sluice_chan_close()'s acquire; we are done. */
	atomic_fetch_sub_explicit(&ch->ends, 1, memory_order_release);
	free(w);
}

/* ------------------------------------------------------------- readers */

int sluice_chan_reader_open(struct sluice_chan *ch, enum sluice_chan_kind kind,
			    const struct sluice_chan_opts *opts,
			    struct sluice_chan_reader **out)
{
	uint64_t want, free_, c;
	struct sluice_chan_reader *r;
	struct sluice_chan_rent *e;
	uint32_t i;

	if (!ch || !out || !opts_ok(opts, false) ||
	    (kind != SLUICE_CHAN_STRONG && kind != SLUICE_CHAN_WEAK) ||
	    (kind == SLUICE_CHAN_STRONG && ch->policy == SLUICE_CHAN_OVERWRITE))
		return -EINVAL;
	if (atomic_load_explicit(&ch->h->ctl, memory_order_acquire) & CHAN_CTL_TERM)
		return -ECONNABORTED;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	want = CHAN_OWNER(ch->pid, kind);
	for (i = 0; i < ch->readers_max; i++) {
		e = &ch->readers[i];
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
	advance(ch);
	c = atomic_load_explicit(&ch->h->committed, memory_order_seq_cst);
	atomic_store_explicit(&e->cursor, c, memory_order_relaxed);
	atomic_store_explicit(&e->start, ch->start, memory_order_relaxed);
	atomic_store_explicit(&e->owner, want, memory_order_seq_cst);
	c = atomic_load_explicit(&ch->h->committed, memory_order_seq_cst);
	if (c % 16 ||
	    c > tail_pos(atomic_load_explicit(&ch->h->tail, memory_order_acquire))) {
		/* Not a position writers made: refuse rather than read there. */
		atomic_store_explicit(&e->owner, 0, memory_order_seq_cst);
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
	waiting_init(&r->w, ch, opts);
	atomic_fetch_add_explicit(&ch->ends, 1, memory_order_relaxed);
	*out = r;
	return 0;
}

void sluice_chan_reader_close(struct sluice_chan_reader *r)
{
	struct sluice_chan *ch;

	if (!r)
		return;
	ch = r->ch;
	atomic_store_explicit(&ch->readers[r->ent].start, 0, memory_order_relaxed);
	atomic_store_explicit(&ch->readers[r->ent].owner, 0, memory_order_seq_cst);
	/* Writers held back by us may go on. */
	if (r->kind == SLUICE_CHAN_STRONG &&
	    atomic_load_explicit(&ch->h->wwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&ch->h->wseq);
	/* Release: pairs with sluice_chan_close()'s acquire; we are done. */
	atomic_fetch_sub_explicit(&ch->ends, 1, memory_order_release);
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
	return tail_pos(atomic_load_explicit(&r->ch->h->tail, memory_order_relaxed)) >
	       from + r->ch->cap;
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

	t = tail_pos(atomic_load_explicit(&ch->h->tail, memory_order_acquire));
	if (t % 16)
		return -EBADMSG;
	to = t;
	b = align_up(t - ch->cap, ch->chunk);
	for (k = 0; k < CHAN_INDEX_N && b < t; k++, b += ch->chunk) {
		v = atomic_load_explicit(&ch->index[(b / ch->chunk) % CHAN_INDEX_N],
					 memory_order_acquire);
		/*
		 * Stale (an earlier lap), the next lap's (b is exactly
		 * tail - capacity), or not stored yet: try the next chunk.
		 */
		if (v >= b && v < b + ch->cap && v <= t && !(v % 16)) {
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
 * sleeper).  What ctl says, tail must back (see term_verdict()).
 */
static int why_nothing(const struct sluice_chan_reader *r)
{
	const struct sluice_chan *ch = r->ch;
	uint32_t ctl = atomic_load_explicit(&ch->h->ctl, memory_order_seq_cst);
	uint64_t t, pos;

	if (!(ctl & (CHAN_CTL_TERM | CHAN_CTL_DRAIN)) && r->kind == SLUICE_CHAN_STRONG)
		return -EAGAIN;
	t = atomic_load_explicit(&ch->h->tail, memory_order_seq_cst);
	if (((ctl & CHAN_CTL_TERM) && !(t & CHAN_TAIL_TERM)) ||
	    ((ctl & CHAN_CTL_DRAIN) && !(t & CHAN_TAIL_DRAIN)))
		return -EBADMSG;
	if (t & CHAN_TAIL_TERM)
		return -ECONNABORTED;
	pos = tail_pos(t);
	if (pos > r->pos + ch->cap)
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
	struct sluice_chan_rent *e = &ch->readers[r->ent];

	/* Relaxed: the line is ours, and its values are all we ask about. */
	if (atomic_load_explicit(&e->cursor, memory_order_relaxed) != r->cursor ||
	    atomic_load_explicit(&e->owner, memory_order_relaxed) != r->owner)
		return -EBADMSG;
	/* Dekker's waker (the top): the cursor, then the sleepers' count. */
	atomic_store_explicit(&e->cursor, p, memory_order_seq_cst);
	r->cursor = p;
	if (atomic_load_explicit(&ch->h->wwait, memory_order_seq_cst))
		sluice__futex_bump_wake(&ch->h->wseq);
	return 0;
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
	unsigned char *const data = ch->data;
	const uint64_t mask = ch->mask;
	uint64_t p = r->pos, end = r->end, from = r->pos, seal_v, want, room, step;
	struct sluice_chan_slice *s;
	uint32_t left = r->left, bytes, frames, len, kind;
	unsigned int i = 0, skips = 0;
	const unsigned char *at;
	int err;

	/* Acquire: what was terminated is seen whole; nothing else rides on it. */
	if (atomic_load_explicit(&ch->h->ctl, memory_order_acquire) & CHAN_CTL_TERM)
		return term_verdict(ch);
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
			if ((seal_v & ~3ull) != (want & ~3ull))
				break;
			kind = (uint32_t)(seal_v & 3);
			if (kind > CHAN_SLICE_SKIP || bytes % 16 ||
			    (kind == CHAN_SLICE_PAD ?
			     ((p + CHAN_SLICE_HDR + bytes) & ch->mask) != 0 :
			     !slice_fits(ch, p, bytes)) ||
			    (kind == CHAN_SLICE_DATA) != (frames != 0) ||
			    (uint64_t)frames * CHAN_FRAME_HDR > bytes) {
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
			step = CHAN_FRAME_HDR + align_up(len, 8);
			if (step > room || len > iov[i].iov_len)
				goto stop;
			if (weak)
				racy_copy(iov[i].iov_base, at + CHAN_FRAME_HDR, len);
			else
				copy_frame(iov[i].iov_base, at + CHAN_FRAME_HDR, len);
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
		r->pos = p;
		r->end = end;
		r->left = left;
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
	r->pos = p;
	r->end = end;
	r->left = left;
	return -ENOBUFS;

took:
	if (weak && overrun(r, from))
		return resume(r);
	if (!weak) {
		err = publish_cursor(r, p);
		if (err)
			return err;
	}
	r->pos = p;
	r->end = end;
	r->left = left;
	return (int)i;
}

static int try_read(struct sluice_chan_reader *r, struct iovec *iov, unsigned int n)
{
	return r->kind == SLUICE_CHAN_WEAK ? try_read_as(r, iov, n, true) :
					     try_read_as(r, iov, n, false);
}

/* Readers' readiness for wait_for(): a slice, or a reason not to wait. */
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
		t = tail_pos(atomic_load_explicit(&ch->h->tail, memory_order_relaxed));
		found = t > from && t - from >= ch->cap / 2 ? SLUICE__SLIP_FAR :
							      SLUICE__SLIP_BURST;
	}
	r->w.slip = sluice__slip_next(r->w.slip, r->w.polls, found, SLIP_MAX);
}

static int read_batch(struct sluice_chan_reader *r, struct iovec *iov,
		      unsigned int n, bool block)
{
	struct wait_call c = { 0 };
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
			idle(r->ch, &r->w);
			return ret;
		}
		if (r->pos != from)
			c.stuck = 0;	/* it passed empty slices: getting somewhere */
		ret = wait_for(r->ch, &r->w, &r->ch->h->rseq, &r->ch->h->rwait,
			       frame_ready, r, &c);
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

int sluice_chan_read(struct sluice_chan_reader *r, void *buf, size_t cap)
{
	struct iovec v = { buf, cap };
	int ret;

	if (!buf && cap)
		return -EINVAL;
	ret = read_batch(r, &v, 1, true);
	return ret < 0 ? ret : (int)v.iov_len;
}

int sluice_chan_try_read(struct sluice_chan_reader *r, void *buf, size_t cap)
{
	struct iovec v = { buf, cap };
	int ret;

	if (!buf && cap)
		return -EINVAL;
	ret = read_batch(r, &v, 1, false);
	return ret < 0 ? ret : (int)v.iov_len;
}
