// SPDX-License-Identifier: MIT
/*
 * A channel's dead peers: watching the processes in its tables with a
 * liveness monitor, and the sweep that clears what a dead one held.
 *
 * A sleeper (and a try_ caller that keeps finding nothing) looks for the
 * dead every SLUICE__CHAN_SWEEP_NS, and at once when its liveness monitor
 * saw a peer die: a writer dead with a slice reserved (its slice is sealed
 * SKIP in its place, so readers and committed move on; see claim_of() for
 * every position it can die in), a strong writer dead (its place is
 * freed, and the channel drains if no strong writer is left), a strong
 * reader dead (freed, so it holds nobody back).  Sweeps run under the
 * region lock, one at a time.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <sluice/liveness.h>

#include "chan_internal.h"
#include "internal.h"

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
 * The monitor saw a watched peer die (from its thread): the sleepers of
 * this handle sweep at once instead of at their next SLUICE__CHAN_SWEEP_NS.
 */
static void peer_died(pid_t pid, uint64_t start, void *arg)
{
	struct sluice_chan *ch = arg;

	(void)pid;
	(void)start;
	/* Before the bump: a sleeper woken by it sees the flag. */
	atomic_store_explicit(&ch->dead_seen, 1, memory_order_seq_cst);
	sluice__chan_wake_all(ch);
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
		return;		/* all alive: the sweeps still run */
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
void sluice__chan_watch_peers(struct sluice_chan *ch)
{
	uint32_t i;

	pthread_mutex_lock(&ch->watch_lock);
	/*
	 * Racy with places changing hands, and that is fine: a wrong pair
	 * only costs a watch of a process that is not there (it fires, and
	 * the sweep it causes finds nothing to do).
	 */
	for (i = 0; i < ch->writers_max; i++)
		watch_one(ch, atomic_load_explicit(&ch->m.writers[i].owner, memory_order_relaxed),
			  atomic_load_explicit(&ch->m.writers[i].start, memory_order_relaxed));
	for (i = 0; i < ch->readers_max; i++)
		watch_one(ch, atomic_load_explicit(&ch->m.readers[i].owner, memory_order_relaxed),
			  atomic_load_explicit(&ch->m.readers[i].start, memory_order_relaxed));
	pthread_mutex_unlock(&ch->watch_lock);
}

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
		struct sluice_chan_went *e = &ch->m.writers[j];

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
	uint64_t tail = tail_pos(atomic_load_explicit(&ch->m.h->tail, memory_order_seq_cst));
	uint64_t committed, end = slice_start(ch, from, len) + len, owner;
	bool tie = false, tie_confirmed = false;
	uint32_t j, st2;

	if (st == CHAN_W_CLAIMING) {
		if (tail <= from || sealed_at(ch, from))
			return CLAIM_NONE;
		committed = atomic_load_explicit(&ch->m.h->committed, memory_order_seq_cst);
		if (committed > from)
			return CLAIM_NONE;
	}
	for (j = 0; j < ch->writers_max; j++) {
		struct sluice_chan_went *e = &ch->m.writers[j];

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
	struct sluice_chan_hdr *h = ch->m.h;
	uint64_t at = slice_start(ch, from, len), v;

	/* A reservation tail has not passed is no reservation: forged. */
	if (at + len > tail_pos(atomic_load_explicit(&h->tail, memory_order_seq_cst)))
		return;
	if (at != from) {
		v = atomic_load_explicit(&slice_at(ch, from)->seal, memory_order_seq_cst);
		if (sealed(ch, v, from)) {
			if ((v & CHAN_SEAL_KIND) != CHAN_SLICE_PAD)
				return;		/* not our pad: not our reservation */
		} else if (atomic_load_explicit(&h->committed, memory_order_seq_cst) <= from) {
			sluice__chan_seal(ch, from, (uint32_t)(at - from - CHAN_SLICE_HDR), 0, CHAN_SLICE_PAD);
		}
		/* Else passed, so sealed, and its bytes are a later lap's now. */
	}
	if (sealed_at(ch, at) ||
	    atomic_load_explicit(&h->committed, memory_order_seq_cst) > at)
		return;			/* sealed before it died */
	sluice__chan_seal(ch, at, len - CHAN_SLICE_HDR, 0, CHAN_SLICE_SKIP);
	atomic_fetch_add_explicit(&h->abandoned, len, memory_order_relaxed);
}

/* Is any place held by a strong writer that is not on its way out? */
bool sluice__chan_strong_left(const struct sluice_chan *ch)
{
	uint32_t i;

	for (i = 0; i < ch->writers_max; i++)
		if (CHAN_OWNER_KIND(atomic_load_explicit(&ch->m.writers[i].owner,
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

/* Under the region lock, taken by @deadline at the latest, or skipped. */
void sluice__chan_sweep(struct sluice_chan *ch, uint64_t deadline)
{
	bool changed = false, strong_gone = false;
	uint32_t i, st, len, kind;
	uint64_t owner, from;
	enum claim claim;

	if (sluice__region_lock_until(ch->region, deadline))
		return;
	for (i = 0; i < ch->writers_max; i++) {
		struct sluice_chan_went *e = &ch->m.writers[i];

		if (!dead_owner(ch, &e->owner, &e->start, &owner))
			continue;
		st = atomic_load_explicit(&e->state, memory_order_acquire);
		from = atomic_load_explicit(&e->from, memory_order_relaxed);
		len = atomic_load_explicit(&e->len, memory_order_relaxed);
		/* A reservation a live writer could not have made: no claim. */
		claim = CLAIM_NONE;
		if ((st == CHAN_W_FILLING || st == CHAN_W_CLAIMING) &&
		    len >= CHAN_SLICE_HDR && len <= ch->m.cap / 2 && !(len % CHAN_ALIGN) &&
		    !(from % CHAN_ALIGN))
			claim = claim_of(ch, i, st, from, len);
		if (claim == CLAIM_UNSURE)
			continue;
		if (claim == CLAIM_WON)
			abandon(ch, from, len);
		atomic_store_explicit(&e->state, CHAN_W_IDLE, memory_order_relaxed);
		/* seq_cst: Dekker with a strong writer's close (sluice__chan_strong_left()). */
		atomic_store_explicit(&e->owner, 0, memory_order_seq_cst);
		kind = CHAN_OWNER_KIND(owner);
		strong_gone |= kind == SLUICE_CHAN_STRONG || kind == CHAN_KIND_CLOSING;
		changed = true;
	}
	for (i = 0; i < ch->readers_max; i++) {
		struct sluice_chan_rent *e = &ch->m.readers[i];

		if (!dead_owner(ch, &e->owner, &e->start, &owner))
			continue;
		atomic_store_explicit(&e->owner, 0, memory_order_seq_cst);
		if (CHAN_OWNER_KIND(owner) == SLUICE_CHAN_STRONG)
			atomic_fetch_add_explicit(&ch->m.h->swept, 1, memory_order_relaxed);
		changed = true;
	}
	/* The last strong writer died: the channel drains, as at its close. */
	if (strong_gone && !sluice__chan_strong_left(ch))
		sluice__chan_set_ending(ch, CHAN_TAIL_DRAIN, CHAN_CTL_DRAIN);
	sluice__region_unlock(ch->region);
	if (changed) {
		sluice__chan_advance(ch);
		sluice__chan_wake_all(ch);
	}
}

/* Drop every watch of the handle: peer_died() runs no more once this returns. */
void sluice__chan_unwatch_all(struct sluice_chan *ch)
{
	uint32_t i;

	for (i = 0; i < ch->nwatch; i++)
		sluice_liveness_unwatch(ch->live, ch->watches[i].id);
	ch->nwatch = 0;
}
