// SPDX-License-Identifier: MIT
/*
 * Channels: a many-to-many byte ring.  The layout is lib/chan_layout.h.
 * This file has the channel (create, attach, ending, info), committed's
 * walk and how endpoints wait; writers are chan_write.c, readers
 * chan_read.c, dead peers chan_sweep.c.  The protocol, for all of them:
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
 * pauses first, longer each time, up to the kind's slip_max; a lone frame (a
 * request, a reply) sets the pause back to none, a longer wait halves it,
 * and so does finding the writers half a ring ahead (slip_adapt(),
 * sluice__slip_next()).  The reader then reads a few slices at a time,
 * lines the writers are done with.
 *
 * Waiting is the engine's (wait.h): one deadline a call, checked with the
 * token on every pass, spinning, then sleeping.  Readers sleep on rseq,
 * writers on wseq, each counting itself in rwait or wwait first.  The
 * waker's side is Dekker's: seal or cursor stored seq_cst, then rwait or
 * wwait loaded seq_cst; the sleeper counts itself seq_cst, then re-checks
 * with seq_cst loads.  One of the two sees the other.  A readiness test
 * answers the question its call asks (frame_ready() and the read share
 * why_nothing(); room_ready() and reserve() look at the same bits), so
 * "ready" means the call makes progress or fails; a call that still
 * keeps waking to find nothing (a peer rewriting words between the two
 * looks) is distrusted by the engine and naps between tries.  A sleeper
 * sweeps (chan_tick()).
 *
 * Dead peers are chan_sweep.c's: watched with a liveness monitor, swept
 * by sleepers and by try_ callers that keep finding nothing.
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
#include <unistd.h>
#include <sys/random.h>

#include <sluice/chan.h>
#include <sluice/copy.h>

#include "cancel_internal.h"
#include "chan_internal.h"
#include "futex.h"
#include "internal.h"
#include "introspect.h"
#include "testpoint.h"
#include "wait.h"

#define IDLE_EVERY		1024u		/* try_ -EAGAINs between clock reads */
#define LOCK_TRY_NS		(1000000ull)	/* a try_ call's wait for the lock */

/* How channel endpoints wait (wait.h says why each differs from a ring's). */
static const struct sluice__wait_kind chan_wait_kind = {
	.spin_min_ns = 20000,
	.yield_after_ns = 2000,
	.slip_max = 256,		/* about 6 us of pauses */
};

/* ------------------------------------------------------------- helpers */

/*
 * ctl says terminated: -ECONNABORTED if tail says so too.  Whoever ends a
 * channel sets tail's bit before ctl's (sluice__chan_set_ending(), both seq_cst), so
 * once ctl's is seen (acquire), tail's shows: a bit in ctl alone was
 * written by a peer, not by a channel call.
 */
int sluice__chan_term_verdict(const struct sluice_chan *ch)
{
	return atomic_load_explicit(&ch->m.h->tail, memory_order_seq_cst) & CHAN_TAIL_TERM ?
	       -ECONNABORTED : -EBADMSG;
}

/* ------------------------------------------------------------- waking */

void sluice__chan_wake_all(struct sluice_chan *ch)
{
	sluice__futex_bump_wake(&ch->m.h->rseq);
	sluice__futex_bump_wake(&ch->m.h->wseq);
}

/* ------------------------------------------------------------- waiting */

/*
 * An endpoint's options, read into @out: 0.4's channel options struct is
 * still taken (told apart by its size, its create-only fields 0), and
 * means what the endpoint options do.  0 or -EINVAL.
 */
int sluice__chan_end_opts_read(const struct sluice_chan_end_opts *opts,
				struct sluice_chan_end_opts *out)
{
	const struct sluice_chan_opts *old = (const void *)opts;

	memset(out, 0, sizeof(*out));
	if (!opts)
		return 0;
	if (opts->sz == sizeof(struct sluice_chan_opts)) {
		if (!SLUICE_OPTS_VALID(old, sluice_chan_opts, liveness) || old->flags ||
		    old->readers_max || old->writers_max || old->liveness)
			return -EINVAL;
		out->timeout_ns = old->timeout_ns;
		out->cancel = old->cancel;
		out->spin_ns = old->spin_ns;
		return 0;
	}
	if (!SLUICE_OPTS_VALID(opts, sluice_chan_end_opts, flags) ||
	    SLUICE_OPT(opts, sluice_chan_end_opts, flags, 0))
		return -EINVAL;
	out->timeout_ns = SLUICE_OPT(opts, sluice_chan_end_opts, timeout_ns, 0);
	out->cancel = SLUICE_OPT(opts, sluice_chan_end_opts, cancel, NULL);
	out->spin_ns = SLUICE_OPT(opts, sluice_chan_end_opts, spin_ns, 0);
	return 0;
}

/* An endpoint's waiting: each option its own, or if 0 its handle's. */
void sluice__chan_waiting_init(struct sluice__wait *w, const struct sluice_chan *ch,
				const struct sluice_chan_end_opts *o)
{
	sluice__wait_init(w, &chan_wait_kind, o->timeout_ns ? o->timeout_ns : ch->timeout_ns,
			  o->cancel ? o->cancel : ch->cancel,
			  o->spin_ns ? o->spin_ns : ch->spin_ns);
}


/*
 * A try_ call said -EAGAIN.  Callers that never block never sleep, so
 * they look for the dead here instead, as a sleeper would: every SLUICE__CHAN_SWEEP_NS
 * of trying, checked every IDLE_EVERY tries.
 */
void sluice__chan_idle(struct sluice_chan *ch, struct sluice__chan_trying *t)
{
	uint64_t now;

	if (++t->idle % IDLE_EVERY)
		return;
	now = sluice__now_ns(CLOCK_MONOTONIC);
	if (now - t->swept_at < SLUICE__CHAN_SWEEP_NS)
		return;
	t->swept_at = now;
	/* A try_ call waits for the region lock no more than LOCK_TRY_NS. */
	if (t->idle > IDLE_EVERY)	/* not the first round: we have waited */
		sluice__chan_sweep(ch, now + LOCK_TRY_NS);
}

/*
 * A sleeper's look around (struct sluice__wait_ops' tick): a death the
 * monitor saw, or a while without news, and it sweeps; the flag was
 * stored before the wake that woke us (seq_cst both), so a wake for a
 * death always finds it.  Peers that joined since it last looked are
 * watched.
 */
bool sluice__chan_tick(void *end, struct sluice__wait_call *c, uint64_t now,
		       uint64_t *wake_at)
{
	struct sluice_chan *ch = *(struct sluice_chan **)end;

	if (!c->next_sweep)
		c->next_sweep = now + SLUICE__CHAN_SWEEP_NS;
	if ((ch->live && atomic_exchange_explicit(&ch->dead_seen, 0, memory_order_seq_cst)) ||
	    now >= c->next_sweep) {
		sluice__chan_sweep(ch, c->deadline);
		c->next_sweep = now + SLUICE__CHAN_SWEEP_NS;
		return true;
	}
	if (ch->live)
		sluice__chan_watch_peers(ch);
	if (c->next_sweep < *wake_at)
		*wake_at = c->next_sweep;
	return false;
}

int sluice__chan_expired(void *arg)
{
	(void)arg;
	return -ETIMEDOUT;
}

/* ------------------------------------------------------------- channels */

/* Lay out a channel of @c's capacity and tables: its offsets and size. */
static void geometry_of(struct sluice_chan_hdr *c)
{
	c->index_off = align_up(sizeof(struct sluice_chan_hdr), 64);
	c->readers_off = c->index_off + CHAN_INDEX_N * sizeof(uint64_t);
	c->writers_off = c->readers_off + (uint64_t)c->readers_max * sizeof(struct sluice_chan_rent);
	c->data_off = align_up(c->writers_off +
			       (uint64_t)c->writers_max * sizeof(struct sluice_chan_went), 64);
	c->size = c->data_off + c->capacity;
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

/* Check a private copy of the configuration (ABI and checksum checked) against its object. */
static int config_check(const void *cfg, uint64_t obj_size)
{
	const struct sluice_chan_hdr *c = cfg;
	struct sluice_chan_hdr g;

	if (!capacity_ok(c->capacity) || c->policy > SLUICE_CHAN_OVERWRITE ||
	    !ends_ok(c->readers_max) || !ends_ok(c->writers_max))
		return -EBADMSG;
	/* Laid out again from its sizes, it must come out the same. */
	memcpy(&g, c, CHAN_CSUM_TO);
	geometry_of(&g);
	if (c->index_off != g.index_off || c->readers_off != g.readers_off ||
	    c->writers_off != g.writers_off || c->data_off != g.data_off ||
	    c->size != g.size || c->size > obj_size)
		return -EBADMSG;
	return 0;
}

/* How attach and introspection read a channel. */
const struct sluice__obj_kind sluice__chan_obj =
	SLUICE__OBJ_KIND(SLUICE_OBJ_CHAN, struct sluice_chan_hdr, SLUICE_CHAN_ABI,
			 SLUICE_CHAN_MAGIC, config_check);

static bool opts_ok(const struct sluice_chan_opts *opts)
{
	return SLUICE_OPTS_VALID(opts, sluice_chan_opts, liveness) &&
	       !SLUICE_OPT(opts, sluice_chan_opts, flags, 0);
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
	sluice__chan_map_of(h, cfg, &ch->m);
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
	int err;

	if (!r || !out || !opts_ok(opts) || !capacity_ok(capacity) ||
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

	/* Made privately, copied out (the region zeroed the rest). */
	cfg.policy = policy;
	cfg.capacity = capacity;
	geometry_of(&cfg);
	err = sluice__obj_create(r, name, &sluice__chan_obj, &cfg, cfg.size, (void **)&h);
	return err ? err : handle_init(r, h, &cfg, opts, out);
}

void sluice__chan_map_of(struct sluice_chan_hdr *h, const struct sluice_chan_hdr *cfg,
			 struct sluice__chan_map *m)
{
	m->h = h;
	m->index = (_Atomic uint64_t *)((unsigned char *)h + cfg->index_off);
	m->readers = (struct sluice_chan_rent *)((unsigned char *)h + cfg->readers_off);
	m->writers = (struct sluice_chan_went *)((unsigned char *)h + cfg->writers_off);
	m->data = (unsigned char *)h + cfg->data_off;
	m->cap = cfg->capacity;
}

uint64_t sluice__chan_csum(const struct sluice_chan_hdr *cfg)
{
	return sluice__obj_csum(&sluice__chan_obj, cfg);
}

int sluice_chan_attach(struct sluice_region *r, const char *name,
		       const struct sluice_chan_opts *opts,
		       struct sluice_chan **out)
{
	struct sluice_chan_hdr *h, cfg;
	int err;

	if (!r || !out || !opts_ok(opts))
		return -EINVAL;
	if (SLUICE_OPT(opts, sluice_chan_opts, readers_max, 0) ||
	    SLUICE_OPT(opts, sluice_chan_opts, writers_max, 0))
		return -EINVAL;
	err = sluice__obj_find(r, name, &sluice__chan_obj, &cfg, (void **)&h);
	if (err)
		return err;
	return handle_init(r, h, &cfg, opts, out);
}

int sluice_chan_close(struct sluice_chan *ch)
{
	if (!ch)
		return 0;
	if (atomic_load_explicit(&ch->ends, memory_order_acquire))
		return -EBUSY;
	if (ch->live) {
		sluice__chan_unwatch_all(ch);
		pthread_mutex_destroy(&ch->watch_lock);
		free(ch->watches);
	}
	free(ch);
	return 0;
}

int sluice__chan_set_ending(struct sluice_chan *ch, uint64_t tail_bit, uint32_t ctl_bit)
{
	if (!ch)
		return -EINVAL;
	atomic_fetch_or_explicit(&ch->m.h->tail, tail_bit, memory_order_seq_cst);
	atomic_fetch_or_explicit(&ch->m.h->ctl, ctl_bit, memory_order_seq_cst);
	sluice__chan_wake_all(ch);
	return 0;
}

int sluice_chan_drain(struct sluice_chan *ch)
{
	return sluice__chan_set_ending(ch, CHAN_TAIL_DRAIN, CHAN_CTL_DRAIN);
}

int sluice_chan_terminate(struct sluice_chan *ch)
{
	return sluice__chan_set_ending(ch, CHAN_TAIL_TERM, CHAN_CTL_TERM);
}

int sluice_chan_info(struct sluice_chan *ch, struct sluice_chan_info *info)
{
	struct sluice_chan_hdr *h;
	uint64_t owner, tail;
	uint32_t i, ctl;

	if (!ch || !info)
		return -EINVAL;
	h = ch->m.h;
	memset(info, 0, sizeof(*info));
	info->capacity = ch->m.cap;
	info->policy = ch->policy;
	info->readers_max = ch->readers_max;
	info->writers_max = ch->writers_max;
	for (i = 0; i < ch->readers_max; i++) {
		owner = atomic_load_explicit(&ch->m.readers[i].owner, memory_order_acquire);
		if (CHAN_OWNER_KIND(owner) == SLUICE_CHAN_STRONG)
			info->strong_readers++;
		else if (CHAN_OWNER_KIND(owner) == SLUICE_CHAN_WEAK)
			info->weak_readers++;
	}
	for (i = 0; i < ch->writers_max; i++) {
		owner = atomic_load_explicit(&ch->m.writers[i].owner, memory_order_acquire);
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
	return (size_t)(ch->m.cap / 2 - CHAN_SLICE_HDR - CHAN_FRAME_HDR);
}

