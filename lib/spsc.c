// SPDX-License-Identifier: MIT
/*
 * SPSC rings: everything but the inline fast path of include/sluice/spsc.h.
 *
 * Indices.  tail (producer) and head (consumer) count packets since the
 * ring was made and never wrap (2^64 packets is centuries); slot i is
 * index & mask.  Each side keeps its own index in its handle and never
 * reads it back from shared memory.
 *
 * Publication.  A packet is published by its slot's tag, (index + 1) << 32
 * | length, stored with release after the bytes.  The consumer polls the tag
 * of the next slot, the line it has to fetch anyway; it never polls an
 * index the producer writes on every packet, which would drag that line
 * back and forth once per packet (spsc.md says by how much).  The producer caches
 * head + count and reloads head only when that says full.  tail is not
 * stored on the data path at all, only announced: when the producer wakes
 * its peer (for the eventfd bridge, which follows it) and when it closes.
 * So tail is a lower bound of what was published, often behind head; the
 * tags say the rest (a takeover walks them), and end of stream is CLOSED
 * plus the tags.  Whatever is loaded from the other side is checked: a
 * head outside [pos - count, pos] or behind one seen before, a tail more
 * than count ahead of head, or a length over the slot size, is -EBADMSG;
 * a tag that does not match just means "not published yet".
 *
 * Sleeping without losing a wakeup.  A side that found nothing to do spins
 * for a while, then sleeps on its futex word (side.seq).  The classic
 * protocol is Dekker's:
 *
 *	sleeper                            waker
 *	waiting++                          publish (tag or head, release)
 *	full fence                         full fence
 *	re-check: nothing? sleep           load waiting: set? bump seq, wake
 *
 * and one of the two always sees the other's store.  But a full fence on
 * every send drains the store buffer behind the data just written, which
 * costs more than the whole rest of a send.  So the waker's fence is
 * conditional: the sleeper first sets ARMED in its ctl word, which the
 * waker reads after each index store (a relaxed load of a line that stays
 * in its cache); only when ARMED is set does the waker fence and check
 * waiting.  Arming is made safe by membarrier(GLOBAL_EXPEDITED), which runs
 * a full barrier on every CPU running a registered process: after it, a
 * waker whose load saw ARMED clear had made its publishing store visible
 * before that barrier, so the sleeper's re-check sees the index; any later waker
 * sees ARMED and takes the Dekker path.  A side stays armed while it keeps
 * sleeping and disarms when a wait ends while spinning, so a busy ring runs
 * fence-free and an idle one pays one fence per operation, next to a futex
 * system call.  Where membarrier is unavailable, both sides are armed for
 * good (STICKY) and every operation fences.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#include <sluice/spsc.h>

#include "cancel_internal.h"
#include "futex.h"
#include "internal.h"
#include "introspect.h"
#include "spsc_internal.h"
#include "spsc_layout.h"
#include "testpoint.h"

#define ARM_KEEP_NS		100000u	/* a sleep longer than this disarms */
#define WATCH_RETRY_NS		(50 * 1000000ull)	/* no peer to watch: look again */
#define LOCK_TRY_NS		(1000000ull)	/* past its deadline, a wait for the lock */

/* How ring handles wait (wait.h says why each differs from a channel's). */
static const struct sluice__wait_kind spsc_wait_kind = {
	.spin_min_ns = 1000,
	.yield_after_ns = UINT32_MAX,
	.slip_max = SLUICE__SPSC_SLIP_MAX,
};

/* ------------------------------------------------------------- membarrier */

/*
 * Register this process as a target of other processes' membarriers.  Per
 * process, not per program run: a forked child is a new process that must
 * register itself, so the check is by pid rather than pthread_once (whose
 * state a child inherits).  Registering twice is harmless.
 */
static bool mb_register(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static pid_t pid;
	static bool ok;
	long cmds;

	pthread_mutex_lock(&lock);
	if (pid != getpid()) {
		cmds = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
		ok = cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
		     !syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0);
		pid = getpid();
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

/* Full barrier on every CPU running a process that registered. */
static void mb_global(void)
{
	syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0);
}

/* ------------------------------------------------------------- layout */

static uint64_t align64(uint64_t v)
{
	return (v + 63) & ~63ull;
}

/* Lay out a ring of @c's slot count and size: its stride, offsets, size. */
static void geometry_of(struct sluice_spsc_ring *c)
{
	c->stride = (uint32_t)align64(c->slot_size);
	c->tags_off = align64(sizeof(struct sluice_spsc_ring));
	c->slots_off = align64(c->tags_off + (uint64_t)c->slot_count * sizeof(uint64_t));
	c->size = c->slots_off + (uint64_t)c->slot_count * c->stride;
}

/* The slot counts and sizes a ring may have, asked for or found. */
static bool geometry_ok(uint32_t count, uint32_t slot_size)
{
	return sluice__is_pow2(count) && count >= 2 && count <= SLUICE_SPSC_SLOTS_MAX &&
	       slot_size && slot_size <= SLUICE_SPSC_SLOT_SIZE_MAX;
}

/*
 * Check a private copy of a ring's configuration (ABI and checksum
 * checked) against the object it lives in.  Counts and sizes are bounded
 * first, so no sum below overflows.
 */
static int config_check(const void *cfg, uint64_t obj_size)
{
	const struct sluice_spsc_ring *c = cfg;
	struct sluice_spsc_ring g;

	if (!geometry_ok(c->slot_count, c->slot_size))
		return -EBADMSG;
	/* Laid out again from its sizes, it must come out the same. */
	g.slot_count = c->slot_count;
	g.slot_size = c->slot_size;
	geometry_of(&g);
	if (c->stride != g.stride || c->tags_off != g.tags_off ||
	    c->slots_off != g.slots_off || c->size != g.size ||
	    c->size > obj_size)
		return -EBADMSG;
	return 0;
}

uint64_t sluice__spsc_csum(const struct sluice_spsc_ring *cfg)
{
	return sluice__obj_csum(&sluice__spsc_obj, cfg);
}

/* How attach and introspection read a ring. */
const struct sluice__obj_kind sluice__spsc_obj =
	SLUICE__OBJ_KIND(SLUICE_OBJ_SPSC, struct sluice_spsc_ring, SLUICE_SPSC_ABI,
			 SLUICE_SPSC_MAGIC, config_check);

/* ------------------------------------------------------------- attaching */

static struct sluice_spsc_side *side_of(struct sluice_spsc_ring *ring,
					enum sluice_spsc_role role)
{
	return role == SLUICE_SPSC_PRODUCER ? &ring->prod : &ring->cons;
}

/*
 * Take @role's side under the region lock: free, or held by a process that
 * has died (its committed packets stay; what it had reserved is dropped).
 */
static int side_claim(struct sluice_region *r, struct sluice_spsc_ring *ring,
		      enum sluice_spsc_role role)
{
	struct sluice_spsc_side *s = side_of(ring, role);
	uint32_t ctl, keep;
	uint64_t start = 0;
	int err;

	err = sluice__region_lock(r);
	if (err)
		return err;
	ctl = atomic_load_explicit(&s->ctl, memory_order_relaxed);
	if (ctl & SLUICE_SPSC_CLOSED) {
		err = -EPIPE;
		goto out;
	}
	if ((ctl & SLUICE_SPSC_ATTACHED) && !(ctl & SLUICE_SPSC_DEAD) &&
	    sluice__proc_alive(atomic_load_explicit(&s->pid, memory_order_relaxed),
			       atomic_load_explicit(&s->start, memory_order_relaxed))) {
		err = -EBUSY;
		goto out;
	}
	(void)sluice__proc_start_time(getpid(), &start);
	atomic_store_explicit(&s->pid, getpid(), memory_order_relaxed);
	atomic_store_explicit(&s->start, start, memory_order_relaxed);
	keep = ctl & SLUICE_SPSC_STICKY ? SLUICE_SPSC_STICKY | SLUICE_SPSC_ARMED : 0;
	atomic_store_explicit(&s->waiting, 0, memory_order_relaxed);
	/* Pairs with the peer's acquire loads of ctl: it sees pid and start. */
	atomic_store_explicit(&s->ctl, keep | SLUICE_SPSC_ATTACHED, memory_order_release);
out:
	sluice__region_unlock(r);
	return err;
}

/* No membarrier here: arm both sides for good, so every wake fences. */
static void sides_make_sticky(struct sluice_spsc_ring *ring)
{
	const uint32_t bits = SLUICE_SPSC_STICKY | SLUICE_SPSC_ARMED;

	atomic_fetch_or_explicit(&ring->prod.ctl, bits, memory_order_seq_cst);
	atomic_fetch_or_explicit(&ring->cons.ctl, bits, memory_order_seq_cst);
}


/*
 * Mark the peer's side DEAD if it still names the process (@pid, @start)
 * that died, so our calls say -EPIPE (a consumer's after the last
 * published packet).  Under the region lock, as side_claim() is, which
 * orders the loads of pid and start: the side may have been taken over by
 * a new process since, and that one is alive.  A side whose holder could
 * not read its start time (0) names the pid alone.  Returns -ETIMEDOUT if
 * the lock was held past @deadline (0: the usual 2 s; nothing marked).
 */
static int mark_dead(struct sluice__spsc *q, pid_t pid, uint64_t start,
		     uint64_t deadline)
{
	uint64_t held;
	int err;

	err = sluice__region_lock_until(q->region, deadline);
	if (err)
		return err;
	held = atomic_load_explicit(&q->peer->start, memory_order_relaxed);
	if (atomic_load_explicit(&q->peer->pid, memory_order_relaxed) == pid &&
	    (held == start || !held))
		/* Pairs with the acquire load of ctl in refill(). */
		atomic_fetch_or_explicit(&q->peer->ctl, SLUICE_SPSC_DEAD, memory_order_seq_cst);
	sluice__region_unlock(q->region);
	return 0;
}

/*
 * The monitor saw the peer die (from its thread): mark it and wake us.
 * Should the lock be held too long, leave the death to our own thread,
 * which marks it when it wakes (see sleep_wait()).
 */
static void peer_died(pid_t pid, uint64_t start, void *arg)
{
	struct sluice__spsc *q = arg;

	if (mark_dead(q, pid, start, 0)) {
		atomic_store_explicit(&q->dead_start, start, memory_order_relaxed);
		/* Release: whoever takes the pid sees the start. */
		atomic_store_explicit(&q->dead_pid, pid, memory_order_release);
	}
	sluice__spsc_wake_side(q->self);
}

/*
 * Watch whoever holds the peer's side now, if anyone: at attach, and before
 * each sleep, as the peer may attach, or be replaced, later.  Returns
 * whether a watch is on.
 */
static bool watch_peer(struct sluice__spsc *q)
{
	uint32_t ctl = atomic_load_explicit(&q->peer->ctl, memory_order_acquire);
	int32_t pid;
	uint64_t start;

	if (ctl & (SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD))
		return true;	/* over: our calls say so without a watch */
	if (!(ctl & SLUICE_SPSC_ATTACHED))
		return false;	/* nobody yet, or a failed attach: look again */
	/* Stored before ATTACHED (release, in side_claim()): seen with it. */
	pid = atomic_load_explicit(&q->peer->pid, memory_order_relaxed);
	start = atomic_load_explicit(&q->peer->start, memory_order_relaxed);
	if (pid == q->watch_pid && start == q->watch_start)
		return true;
	if (q->watch_pid)
		sluice_liveness_unwatch(q->live, q->watch_id);
	q->watch_pid = 0;
	if (pid <= 0 || sluice_liveness_watch_fn(q->live, pid, start, peer_died, q,
						 &q->watch_id))
		return false;
	q->watch_pid = pid;
	q->watch_start = start;
	return true;
}

/* Does tag word @t publish packet @idx?  The tag, loaded once, in @tag. */
static inline bool tag_publishes(_Atomic uint64_t *t, uint64_t idx, uint64_t *tag)
{
	/* Pairs with the producer's release store of the tag. */
	*tag = atomic_load_explicit(t, memory_order_acquire);
	return SLUICE_SPSC_TAG_IS(*tag, idx);
}

/* Is packet @idx published?  Its tag, if so, in @tag. */
bool sluice__spsc_published(const struct sluice__spsc *q, uint64_t idx, uint64_t *tag)
{
	return tag_publishes(sluice__spsc_tag(&q->pub, idx), idx, tag);
}

/*
 * A producer's announcement of how far it got, after its tags (see the
 * top): pairs with the acquire loads of tail in ev_news(), sluice_spsc_fd()
 * and handle_init().
 */
static void announce(struct sluice__spsc *q)
{
	if (q->pub.role == SLUICE_SPSC_PRODUCER)
		atomic_store_explicit(&q->ring->tail, q->pub.pos, memory_order_release);
}

static int handle_init(struct sluice_region *r, struct sluice_spsc_ring *ring,
		       const struct sluice_spsc_ring *cfg,
		       enum sluice_spsc_role role,
		       const struct sluice_spsc_opts *opts,
		       struct sluice_spsc **out)
{
	struct sluice__spsc *q;
	uint64_t head, tail, tag;
	int err;

	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->ring = ring;
	q->pub.role = role;
	q->self = side_of(ring, role);
	q->peer = side_of(ring, role == SLUICE_SPSC_PRODUCER ?
			  SLUICE_SPSC_CONSUMER : SLUICE_SPSC_PRODUCER);
	q->pub.tags = (_Atomic uint64_t *)((unsigned char *)ring + cfg->tags_off);
	q->pub.slots = (unsigned char *)ring + cfg->slots_off;
	q->pub.count = cfg->slot_count;
	q->pub.mask = cfg->slot_count - 1;
	q->pub.slot_size = cfg->slot_size;
	q->pub.stride = cfg->stride;
	q->region = r;
	q->pub.ring = ring;
	q->pub.head = &ring->head;
	q->pub.peer_ctl = &q->peer->ctl;
	sluice__wait_init(&q->w, &spsc_wait_kind,
			  SLUICE_OPT(opts, sluice_spsc_opts, timeout_ns, 0),
			  SLUICE_OPT(opts, sluice_spsc_opts, cancel, NULL),
			  SLUICE_OPT(opts, sluice_spsc_opts, spin_ns, 0));
	q->live = SLUICE_OPT(opts, sluice_spsc_opts, liveness, NULL);

	if (!mb_register())
		sides_make_sticky(ring);

	err = side_claim(r, ring, role);
	if (err)
		goto err_free;

	/*
	 * Our index from shared memory, once; then it lives in the handle.
	 * The acquires pair with the release stores of head (a consumer's
	 * reads of slots below it are done) and of tail (the tags below it
	 * are visible), whoever held the sides before us.
	 */
	head = atomic_load_explicit(&ring->head, memory_order_acquire);
	tail = atomic_load_explicit(&ring->tail, memory_order_acquire);
	/* tail lags (it is announced, not kept), but never leads by a lap. */
	if ((int64_t)(tail - head) > (int64_t)q->pub.count) {
		err = -EBADMSG;
		goto err_release;
	}
	if (role == SLUICE_SPSC_PRODUCER) {
		/*
		 * What the last producer published runs from the later of
		 * head and tail to the first slot without its tag: carry on
		 * there.  At most a ring's worth of tags to look at.
		 */
		if ((int64_t)(tail - head) < 0)
			tail = head;
		while (tail - head < q->pub.count && sluice__spsc_published(q, tail, &tag))
			tail++;
		q->pub.pos = tail;
		q->pub.limit = head + q->pub.count;
	} else {
		q->pub.pos = head;
	}
	if (q->live)
		watch_peer(q);
	*out = &q->pub;
	return 0;

err_release:
	atomic_fetch_and_explicit(&q->self->ctl, ~SLUICE_SPSC_ATTACHED, memory_order_release);
err_free:
	free(q);
	return err;
}

static bool opts_ok(const struct sluice_spsc_opts *opts)
{
	return SLUICE_OPTS_VALID(opts, sluice_spsc_opts, liveness) &&
	       !SLUICE_OPT(opts, sluice_spsc_opts, flags, 0);
}

static bool role_ok(enum sluice_spsc_role role)
{
	return role == SLUICE_SPSC_PRODUCER || role == SLUICE_SPSC_CONSUMER;
}

int sluice_spsc_create(struct sluice_region *r, const char *name,
		       uint32_t slot_count, uint32_t slot_size,
		       enum sluice_spsc_role role,
		       const struct sluice_spsc_opts *opts,
		       struct sluice_spsc **out)
{
	struct sluice_spsc_ring *ring, cfg;
	int err;

	if (!r || !out || !role_ok(role) || !opts_ok(opts) ||
	    !geometry_ok(slot_count, slot_size))
		return -EINVAL;
	/* Made privately, copied out: our handle never reads shared config. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.slot_count = slot_count;
	cfg.slot_size = slot_size;
	geometry_of(&cfg);
	err = sluice__obj_create(r, name, &sluice__spsc_obj, &cfg, cfg.size, (void **)&ring);
	return err ? err : handle_init(r, ring, &cfg, role, opts, out);
}

int sluice_spsc_attach(struct sluice_region *r, const char *name,
		       enum sluice_spsc_role role,
		       const struct sluice_spsc_opts *opts,
		       struct sluice_spsc **out)
{
	struct sluice_spsc_ring *ring, cfg;
	int err;

	if (!r || !out || !role_ok(role) || !opts_ok(opts))
		return -EINVAL;
	err = sluice__obj_find(r, name, &sluice__spsc_obj, &cfg, (void **)&ring);
	if (err)
		return err;
	return handle_init(r, ring, &cfg, role, opts, out);
}

void sluice__spsc_wake_side(struct sluice_spsc_side *s)
{
	sluice__futex_bump_wake(&s->seq);
}

void sluice_spsc_close(struct sluice_spsc *pq)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	if (!q)
		return;
	/* First: once unwatch returns, peer_died() is not running on q. */
	if (q->watch_pid)
		sluice_liveness_unwatch(q->live, q->watch_id);
	if (q->ev)
		sluice__spsc_fd_stop(q);
	announce(q);	/* our last */
	/*
	 * Pairs with the acquire load of ctl in refill(): a peer that sees
	 * CLOSED sees every packet we published before it.
	 */
	atomic_fetch_or_explicit(&q->self->ctl, SLUICE_SPSC_CLOSED, memory_order_seq_cst);
	sluice__spsc_wake_side(q->peer);
	free(q);
}

/* ------------------------------------------------------------- slow path */

static void disarm(struct sluice__spsc *q);

/*
 * A try_ call found nothing.  If a wait has just said ready, with no
 * progress since, the peer took back what the wait saw: the next wait is
 * the same call's, on the same clock (sluice_spsc_wait()).
 */
static void deny_ready(struct sluice__spsc *q)
{
	if (q->ready_pos == q->pub.pos + 1)
		q->ready_denied = 1;
}

/*
 * Look again at what the peer did.  Returns 0 when there is room
 * (producer) or a packet (consumer), else why not.
 */
int sluice__spsc_refill(struct sluice_spsc *pq)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	uint64_t idx, tag;
	uint32_t ctl;

	if (q->pub.held)
		return -EBUSY;
	/*
	 * Peer state first: a producer publishes its last packets before
	 * setting CLOSED (seq_cst), so after seeing CLOSED (acquire) the tag
	 * loads below see them all.
	 */
	ctl = atomic_load_explicit(&q->peer->ctl, memory_order_acquire);
	if (q->pub.role == SLUICE_SPSC_PRODUCER) {
		if (ctl & (SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD))
			return -EPIPE;
		/* Pairs with the consumer's release store of head. */
		idx = atomic_load_explicit(&q->ring->head, memory_order_acquire);
		if (q->pub.pos - idx > q->pub.count)
			return -EBADMSG;
		/*
		 * head only grows.  Behind what we saw before, it would take
		 * back room a wait has already reported: the call it woke
		 * would find none, and the two must agree.
		 */
		if (idx + q->pub.count < q->pub.limit)
			return -EBADMSG;
		q->pub.limit = idx + q->pub.count;
		if (q->pub.limit == q->pub.pos) {
			deny_ready(q);
			return -EAGAIN;
		}
		/* Room: whatever made us sleep on a full ring is over. */
		disarm(q);
		return 0;
	}
	if (sluice__spsc_published(q, q->pub.pos, &tag))
		return 0;
	if (ctl & (SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD))
		return -EPIPE;
	if (q->ev)
		sluice__spsc_fd_drained(q->ev);	/* drained: the bridge may signal again */
	deny_ready(q);
	return -EAGAIN;
}

/* The peer armed itself: Dekker's side of the waker (see the top). */
void sluice__spsc_wake(struct sluice_spsc *pq)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	announce(q);	/* the eventfd bridge's index in the Dekker protocol */
	/* Orders our index store (tag, tail or head) before the load of waiting. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&q->peer->waiting, memory_order_relaxed))
		sluice__spsc_wake_side(q->peer);
}

void sluice__spsc_arm(struct sluice__spsc *q)
{
	uint32_t ctl = atomic_load_explicit(&q->self->ctl, memory_order_relaxed);

	if (ctl & SLUICE_SPSC_ARMED)
		return;
	atomic_fetch_or_explicit(&q->self->ctl, SLUICE_SPSC_ARMED, memory_order_seq_cst);
	/* Every peer store before its next ARMED check is now visible. */
	mb_global();
}

static void disarm(struct sluice__spsc *q)
{
	uint32_t ctl = atomic_load_explicit(&q->self->ctl, memory_order_relaxed);

	if (q->ev)
		return;		/* the eventfd bridge sleeps on our arming */
	while ((ctl & SLUICE_SPSC_ARMED) && !(ctl & SLUICE_SPSC_STICKY) &&
	       !atomic_compare_exchange_weak_explicit(&q->self->ctl, &ctl,
						      ctl & ~SLUICE_SPSC_ARMED,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/*
 * What is ready now: packets (consumer) or free slots (producer).  A
 * consumer looks at two tags at most: the producer stores tags in order,
 * each with release, so a later one published means every earlier one is.
 */
static enum sluice__slip_found found_now(struct sluice__spsc *q)
{
	uint32_t far = q->pub.count / 2 > 2 ? q->pub.count / 2 : 2;
	uint64_t tag;

	if (q->pub.role == SLUICE_SPSC_PRODUCER)
		return q->pub.limit - q->pub.pos >= far ? SLUICE__SLIP_FAR :
		       q->pub.limit - q->pub.pos >= 2 ? SLUICE__SLIP_BURST : SLUICE__SLIP_LONE;
	if (sluice__spsc_published(q, q->pub.pos + far - 1, &tag))
		return SLUICE__SLIP_FAR;
	return sluice__spsc_published(q, q->pub.pos + 1, &tag) ? SLUICE__SLIP_BURST : SLUICE__SLIP_LONE;
}

static void slip_adapt(struct sluice__spsc *q, unsigned int polls)
{
	q->w.slip = sluice__slip_next(q->w.slip, polls,
				      polls <= 2 ? found_now(q) : SLUICE__SLIP_LONE,
				      q->w.kind->slip_max);
}



/*
 * Has the process @pid, started at @start, gone?  Only a definite answer
 * counts: no such process (or every thread of it exiting), or another one
 * under that pid.  A /proc we cannot read says nothing.  A holder that
 * could not read its own start time (0) is judged by its pid alone.
 */
static bool holder_gone(pid_t pid, uint64_t start)
{
	uint64_t now;
	int err = sluice__proc_start_time(pid, &now);

	return err == -ESRCH || (!err && start && now != start);
}

/*
 * A wait reached the call's deadline.  Without a monitor, a dead peer
 * looks just like a slow one, and each later call would wait a whole
 * timeout to learn nothing more; so look at the peer's process now, and
 * if its side still names a process that is gone, mark it DEAD as the
 * monitor would.  The call then ends as on a close: -EPIPE, for a consumer
 * once nothing is left to read.  Otherwise -ETIMEDOUT, even if the ring is
 * ready by now: a peer that keeps it just ready must not keep the call.
 * Marking takes the region lock, which an honest process holds for
 * microseconds; held longer (by a peer, say), we give up after
 * LOCK_TRY_NS and it stays a timeout.  Never 0 nor -EAGAIN.
 */
static int deadline_passed(struct sluice__spsc *q)
{
	uint32_t ctl = atomic_load_explicit(&q->peer->ctl, memory_order_acquire);
	uint64_t start;
	int32_t pid;
	int err;

	if ((ctl & (SLUICE_SPSC_ATTACHED | SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD)) ==
	    SLUICE_SPSC_ATTACHED) {
		/* Stored before ATTACHED (release, in side_claim()): seen with it. */
		pid = atomic_load_explicit(&q->peer->pid, memory_order_relaxed);
		start = atomic_load_explicit(&q->peer->start, memory_order_relaxed);
		/* Lock held too long: nothing marked, and a timeout it stays. */
		if (pid > 0 && holder_gone(pid, start))
			(void)mark_dead(q, pid, start, sluice__now_ns(CLOCK_MONOTONIC) +
						      LOCK_TRY_NS);
	}
	err = sluice__spsc_refill(&q->pub);
	return err && err != -EAGAIN ? err : -ETIMEDOUT;
}

/*
 * What a wait on the ring is about: the ring, and for a layer above
 * (sluice__spsc_wait_in()) a test of its own, looked at first.
 */
struct wait_arg {
	struct sluice__spsc *q;
	int (*also)(void *arg);		/* NULL: the ring alone */
	void *arg;
};

/* The readiness test of a wait: refill() says what a try_ call would. */
static int spsc_ready(void *arg)
{
	const struct wait_arg *x = arg;
	struct sluice__spsc *q = x->q;
	int err;

	if (x->also) {
		err = x->also(x->arg);
		if (err != -EAGAIN)
			return err;
	}
	/* Fetch the slot's bytes while waiting for its tag. */
	if (q->pub.role == SLUICE_SPSC_CONSUMER)
		__builtin_prefetch(sluice__spsc_data(&q->pub, q->pub.pos), 0, 3);
	return sluice__spsc_refill(&q->pub);
}

static int spsc_expired(void *arg)
{
	return deadline_passed(((struct wait_arg *)arg)->q);
}

/* Arming makes the peer fence and look at waiting: see the top. */
static void spsc_sleep_begin(void *arg)
{
	sluice__spsc_arm(((struct wait_arg *)arg)->q);
}

/*
 * Stay armed across short sleeps (a blocking ping-pong would pay a
 * membarrier per message); after a long one, re-arming is noise, and
 * staying armed would cost the peer a fence per packet.
 */
static void spsc_sleep_end(void *arg, uint64_t ns)
{
	if (ns > ARM_KEEP_NS)
		disarm(((struct wait_arg *)arg)->q);
}

/*
 * A sleeper's look around: a death the monitor could not mark (the lock
 * was busy) is marked now; with a monitor, the peer is watched before we
 * sleep, and while there is none to watch yet (not attached) we wake now
 * and then to look again, as one that attaches and dies would otherwise
 * go unseen until the deadline.
 */
static bool spsc_tick(void *arg, struct sluice__wait_call *c, uint64_t now,
		      uint64_t *wake_at)
{
	struct sluice__spsc *q = ((struct wait_arg *)arg)->q;
	int32_t pid;

	if (!q->live)
		return false;
	if (atomic_load_explicit(&q->dead_pid, memory_order_relaxed)) {
		pid = atomic_exchange_explicit(&q->dead_pid, 0, memory_order_acquire);
		if (!pid || !mark_dead(q, pid, atomic_load_explicit(&q->dead_start,
								    memory_order_relaxed),
				       c->deadline))
			return true;	/* marked: refill() sees it */
		/* Still held: try again after a sleep, deadline and all. */
		atomic_store_explicit(&q->dead_pid, pid, memory_order_release);
	}
	if (!watch_peer(q) && now + WATCH_RETRY_NS < *wake_at)
		*wake_at = now + WATCH_RETRY_NS;
	return false;
}

static const struct sluice__wait_ops spsc_wait = {
	.ready = spsc_ready,
	.expired = spsc_expired,
	.sleep_begin = spsc_sleep_begin,
	.sleep_end = spsc_sleep_end,
	.tick = spsc_tick,
};

/*
 * One wait of a blocking call @c: until the next try_ call would not say
 * -EAGAIN, the deadline, the token, or an error.
 *
 * The readiness test (refill()) and the try_ calls agree while the peer
 * behaves: what refill() saw (a tag, room below head) stays until this
 * side acts, so a call told "ready" makes progress or fails.  Room stays
 * even against a hostile consumer (head moving back is -EBADMSG), but a
 * hostile producer can take a tag back in between; the engine checks the
 * token and the deadline on every pass after a call's first, so such a
 * peer can hold a call no longer than either.
 */
static int wait_pass(struct sluice__spsc *q, struct sluice__wait_call *c)
{
	struct wait_arg x = { q, NULL, NULL };
	int err;

	sluice__tp(SLUICE__TP_SPSC_WAIT, q);
	err = sluice__wait(&q->w, c, &spsc_wait, &x, &q->self->seq, &q->self->waiting);
	if (err)
		return err;
	/* Ended while spinning: the ring is busy, a fence per op is waste. */
	if (q->w.polls != UINT_MAX) {
		slip_adapt(q, q->w.polls);
		disarm(q);
	}
	sluice__tp(SLUICE__TP_SPSC_READY, q);
	return 0;
}

/*
 * A wait of its own, as a call of its own, unless the last wait said
 * ready and the try_ call after it found nothing (deny_ready()), which
 * only a hostile peer can make happen: then this wait is that call's next
 * pass, and carries on with its clock.  So a loop of try_ calls and waits,
 * as the inline send and recv are, runs to one deadline.
 */
int sluice_spsc_wait(struct sluice_spsc *pq)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	struct sluice__wait_call c = { 0 };
	int err;

	if (!q)
		return -EINVAL;
	if (q->ready_denied && q->ready_pos == q->pub.pos + 1)
		c = q->ready_call;
	q->ready_pos = 0;
	q->ready_denied = false;
	err = wait_pass(q, &c);
	if (!err) {
		q->ready_pos = q->pub.pos + 1;
		q->ready_call = c;
	}
	return err;
}

int sluice__spsc_wait_in(struct sluice_spsc *pq, struct sluice__wait_call *c,
			 const struct sluice__wait_kind *kind, uint64_t timeout_ns,
			 struct sluice_cancel *cancel, int (*also)(void *arg), void *arg)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	struct wait_arg x = { q, also, arg };
	const struct sluice__wait_kind *own_kind = q->w.kind;
	struct sluice_cancel *own_cancel = q->w.cancel;
	uint64_t own_timeout = q->w.timeout_ns;
	int err;

	q->w.kind = kind;
	q->w.timeout_ns = timeout_ns;
	q->w.cancel = cancel;
	err = sluice__wait(&q->w, c, &spsc_wait, &x, &q->self->seq, &q->self->waiting);
	q->w.kind = own_kind;
	q->w.timeout_ns = own_timeout;
	q->w.cancel = own_cancel;
	/* The handle's own calls start afresh (sluice_spsc_wait()). */
	q->ready_pos = 0;
	q->ready_denied = false;
	if (!err && q->w.polls != UINT_MAX) {
		slip_adapt(q, q->w.polls);
		disarm(q);
	}
	return err;
}

void sluice__spsc_wake_self(struct sluice_spsc *pq)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);

	/* Pairs with the sleeper's increment of waiting before it re-checks. */
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&q->self->waiting, memory_order_relaxed))
		sluice__spsc_wake_side(q->self);
}

void sluice_spsc_set_timeout(struct sluice_spsc *pq, uint64_t timeout_ns)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);

	q->w.timeout_ns = timeout_ns ? timeout_ns : SLUICE__WAIT_TIMEOUT_NS;
}

void sluice_spsc_set_cancel(struct sluice_spsc *pq, struct sluice_cancel *c)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);

	q->w.cancel = c;
}

uint32_t sluice_spsc_slot_count(const struct sluice_spsc *pq)
{
	const struct sluice__spsc *q = (const struct sluice__spsc *)pq;
	return q->pub.count;
}

uint32_t sluice_spsc_slot_size(const struct sluice_spsc *pq)
{
	const struct sluice__spsc *q = (const struct sluice__spsc *)pq;
	return q->pub.slot_size;
}

/* ------------------------------------------------------------- batches */

/*
 * Where cache lines travel slowly between the two cores, batches are
 * bound by the producer's stores (where the CPU runs slow, by
 * instructions: see struct view; spsc.md's "Where a batch's time goes"
 * has the host's states and the measurements).  Each slot's line is
 * still in the consumer's cache from the last lap, so every store waits
 * for the line's ownership, and the store buffer fills.  What keeps more
 * lines in flight:
 *
 * - wide moves (sluice__copy(), SLUICE__COPY_SETTLED): half the
 *   store-buffer entries of 8-byte words per line;
 * - the consumer prefetching a few slots ahead inside its copy loop;
 * - own_ahead(): after a batch, the producer asks to own the lines of the
 *   free slots the next batch will fill, so that ownership crosses over
 *   while the caller prepares that batch, not while its stores wait.  The
 *   prefetch must be one for writing, sluice__prefetch_own(): a plain one
 *   brings the line over shared, and the store must then ask again.
 *
 * The producer's copy loop prefetches nothing: a read request for a line
 * own_ahead() has asked to own only asks again, and costs.
 */
#define BATCH_PREFETCH	4	/* slots ahead, the consumer's */
#define OWN_AHEAD_MAX	64	/* slots */

/*
 * The ring's geometry and our index, copied into locals for the batch
 * loops.  Read through the handle, they were loaded again for every
 * packet: each store into a slot might, for all the compiler knows, have
 * changed the handle.
 */
struct view {
	unsigned char *slots;
	_Atomic uint64_t *tags;
	uint64_t pos;
	uint32_t mask;
	uint32_t stride;
	uint32_t slot_size;
	uint32_t first;		/* pos's slot */
};

static inline struct view view_of(const struct sluice__spsc *q)
{
	return (struct view){
		q->pub.slots, q->pub.tags, q->pub.pos, q->pub.mask, q->pub.stride, q->pub.slot_size,
		(uint32_t)q->pub.pos & q->pub.mask,
	};
}

/* The bytes of slot @i of the batch at the view's pos. */
static inline unsigned char *view_data(const struct view *v, uint32_t i)
{
	return v->slots + (size_t)((v->first + i) & v->mask) * v->stride;
}

/* Of @n slots from pos, how many come before the ring wraps. */
static inline uint32_t view_run(const struct view *v, uint32_t n)
{
	uint32_t left = v->mask + 1 - v->first;

	return n < left ? n : left;
}

/* Room for up to @n packets now (producer). */
static int room(struct sluice__spsc *q, unsigned int n, uint32_t *k)
{
	uint64_t have = q->pub.limit - q->pub.pos;
	int err;

	if (have < n || (atomic_load_explicit(&q->peer->ctl, memory_order_relaxed) &
			 (SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD))) {
		err = sluice__spsc_refill(&q->pub);
		if (err && err != -EAGAIN)
			return err;
		have = q->pub.limit - q->pub.pos;
		if (!have)
			return -EAGAIN;
	}
	*k = have < n ? (uint32_t)have : n;
	return 0;
}

/*
 * The consumer took nothing at pos: say why, from one fresh look.  0 means
 * the packet is there after all (published meanwhile): take it.  That is
 * so once at most: an honest producer never takes a tag back.
 */
static int nothing_taken(struct sluice__spsc *q, size_t cap)
{
	uint64_t tag;

	if (!sluice__spsc_published(q, q->pub.pos, &tag))
		return sluice__spsc_refill(&q->pub);	/* -EAGAIN, -EPIPE, or 0 */
	if ((uint32_t)tag > q->pub.slot_size)
		return -EBADMSG;
	return (uint32_t)tag > cap ? -ENOBUFS : 0;
}

/*
 * Make our new index visible and wake the peer if it sleeps.  A producer's
 * tags, already stored, are its publication: tail waits for the kick.
 */
static void publish(struct sluice__spsc *q, uint64_t pos)
{
	q->pub.pos = pos;
	if (q->pub.role == SLUICE_SPSC_CONSUMER)
		/* Pairs with the producer's acquire load of head in refill. */
		atomic_store_explicit(&q->ring->head, pos, memory_order_release);
	sluice__spsc_kick(&q->pub);
}

/*
 * Copy @iov[0, n) into @n consecutive slots from @d.  -EMSGSIZE at the
 * first packet longer than @cap, leaving the slots before it written but
 * untagged, which no consumer can see.
 */
static inline int copy_in(unsigned char *d, uint32_t stride, size_t cap,
			  const struct iovec *iov, uint32_t n)
{
	uint32_t i;
	size_t len;

	for (i = 0; i < n; i++, d += stride) {
		len = iov[i].iov_len;
		if (len > cap)
			return -EMSGSIZE;
		sluice__copy(d, iov[i].iov_base, len, SLUICE__COPY_SETTLED);
	}
	return 0;
}

/* Publish @n packets from index @idx, whose tags start at @t. */
static inline void tag_run(_Atomic uint64_t *t, uint64_t idx,
			   const struct iovec *iov, uint32_t n)
{
	uint32_t i;

	for (i = 0; i < n; i++)
		/* Pairs with the consumer's acquire load of the tag. */
		atomic_store_explicit(&t[i], SLUICE_SPSC_TAG(idx + i, iov[i].iov_len),
				      memory_order_release);
}

/* Tag the @n slots from pos: they become the consumer's. */
static inline void tag_slots(const struct view *v, const struct iovec *iov,
			     uint32_t n)
{
	uint32_t run = view_run(v, n);

	tag_run(v->tags + v->first, v->pos, iov, run);
	tag_run(v->tags, v->pos + run, iov + run, n - run);
}

/* Ask for the first line of @n slots from @d, @stride bytes apart. */
static inline void own_lines(unsigned char *d, uint32_t stride, uint32_t n)
{
	for (; n; n--, d += stride)
		sluice__prefetch_own(d);
}

/*
 * After a batch of @k, published: ask for the first line of each of the
 * next @k slots (at most OWN_AHEAD_MAX) that are free, those below the
 * limit.  Free slots are the consumer's no more, so taking their lines
 * away costs it nothing, and a caller that sends batches of one size
 * finds the next batch's lines ready.  A wrong guess costs a few
 * prefetches.
 */
static void own_ahead(const struct sluice__spsc *q, uint32_t k)
{
	struct view v = view_of(q);	/* at the next batch */
	uint64_t avail = q->pub.limit - v.pos;
	uint32_t n, run;

	n = k < OWN_AHEAD_MAX ? k : OWN_AHEAD_MAX;
	if (avail < n)
		n = (uint32_t)avail;
	run = view_run(&v, n);
	own_lines(view_data(&v, 0), v.stride, run);
	own_lines(v.slots, v.stride, n - run);
}

/* Is any of @iov[from, n) longer than a slot? */
static bool oversize(const struct sluice__spsc *q, const struct iovec *iov,
		     uint32_t from, unsigned int n)
{
	for (; from < n; from++)
		if (iov[from].iov_len > q->pub.slot_size)
			return true;
	return false;
}

/*
 * Lengths are checked as the packets are copied, not in a pass of their
 * own: an over-size packet found midway leaves copies in slots nobody
 * can see until they are tagged, which is nothing lost, and one pass over
 * the iovecs costs less than two (spsc.md, Batches).
 */
int sluice_spsc_try_send_batch(struct sluice_spsc *pq, const struct iovec *iov,
			       unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	struct view v;
	uint32_t k, run;
	int err;

	if (!q || q->pub.role != SLUICE_SPSC_PRODUCER || (n && !iov))
		return -EINVAL;
	if (q->pub.held)
		return -EBUSY;
	if (!n)
		return 0;
	err = room(q, n, &k);
	if (err)
		return oversize(q, iov, 0, n) ? -EMSGSIZE : err;
	v = view_of(q);
	run = view_run(&v, k);
	if (copy_in(v.slots + (size_t)v.first * v.stride, v.stride, v.slot_size, iov, run) ||
	    copy_in(v.slots, v.stride, v.slot_size, iov + run, k - run))
		return -EMSGSIZE;
	/* All or nothing: the packets that did not fit are checked too. */
	if (oversize(q, iov, k, n))
		return -EMSGSIZE;
	tag_slots(&v, iov, k);
	publish(q, v.pos + k);
	own_ahead(q, k);
	return (int)k;
}

/*
 * The rest of a send_batch that found the ring full after @sent packets:
 * wait for room and send more, as often as it takes, on one clock.
 */
static __attribute__((noinline)) int
send_batch_wait(struct sluice__spsc *q, const struct iovec *iov, unsigned int n,
		unsigned int sent)
{
	struct sluice__wait_call c = { 0 };
	int ret;

	do {
		ret = wait_pass(q, &c);
		if (!ret)
			ret = sluice_spsc_try_send_batch(&q->pub, iov + sent, n - sent);
		if (ret > 0)
			sent += (unsigned int)ret;
		else if (ret != -EAGAIN)
			return sent ? (int)sent : ret;
	} while (sent < n);
	return (int)sent;
}

int sluice_spsc_send_batch(struct sluice_spsc *pq, const struct iovec *iov,
			   unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	int ret = sluice_spsc_try_send_batch(&q->pub, iov, n);

	/* A batch that fits at once pays nothing for waiting. */
	if (ret == -EAGAIN)
		return send_batch_wait(q, iov, n, 0);
	if (ret >= 0 && (unsigned int)ret < n)
		return send_batch_wait(q, iov, n, (unsigned int)ret);
	return ret;
}

/*
 * The arguments of a call that takes or hands out @n slots: a handle of
 * @role with none outstanding.  0, -EINVAL or -EBUSY.
 */
static int zero_copy_args(const struct sluice__spsc *q, uint32_t role,
			  const struct iovec *iov, unsigned int n)
{
	if (!q || q->pub.role != role || !iov || !n)
		return -EINVAL;
	return q->pub.held ? -EBUSY : 0;
}

/*
 * Take up to @n published packets from @n consecutive slots, the first of
 * index @idx, with tags from @t and bytes from @d: copied out into @iov
 * (recv) or pointed at where they lie (peek).  Returns how many.
 */
static inline __attribute__((always_inline)) uint32_t
take_run(_Atomic uint64_t *t, unsigned char *d, uint32_t stride, uint32_t cap,
	 uint64_t idx, struct iovec *iov, uint32_t n, bool copy)
{
	const size_t ahead = (size_t)BATCH_PREFETCH * stride;
	uint64_t tag;
	uint32_t i, len;

	for (i = 0; i < n; i++, d += stride) {
		if (!tag_publishes(&t[i], idx + i, &tag))
			break;
		len = (uint32_t)tag;	/* loaded once, checked, used */
		if (len > cap || (copy && len > iov[i].iov_len))
			break;
		if (copy) {
			if (i + BATCH_PREFETCH < n)
				__builtin_prefetch(d + ahead, 0, 3);
			sluice__copy(iov[i].iov_base, d, len, SLUICE__COPY_SETTLED);
		} else {
			iov[i].iov_base = d;
		}
		iov[i].iov_len = len;
	}
	return i;
}

/*
 * Take up to @n published packets at pos, in at most two runs (the second
 * after the wrap).  Inlined into recv and peek with @copy a constant, so
 * neither pays for the other's branches.
 */
static inline __attribute__((always_inline)) int
take(struct sluice__spsc *q, struct iovec *iov, unsigned int n, bool copy)
{
	bool looked = false;
	struct view v;
	uint32_t i, run;
	int err;

	err = zero_copy_args(q, SLUICE_SPSC_CONSUMER, iov, n);
	if (err)
		return err;
again:
	v = view_of(q);
	run = view_run(&v, n);
	i = take_run(v.tags + v.first, v.slots + (size_t)v.first * v.stride, v.stride,
		     v.slot_size, v.pos, iov, run, copy);
	if (i == run && run < n)
		i += take_run(v.tags, v.slots, v.stride, v.slot_size, v.pos + run,
			      iov + run, n - run, copy);
	if (!i) {
		err = nothing_taken(q, copy ? iov[0].iov_len : SIZE_MAX);
		if (err)
			return err;
		/*
		 * Published meanwhile: look once more.  Missed twice, the
		 * peer is flipping the tag; a loop here would be its to hold.
		 */
		if (looked) {
			deny_ready(q);
			return -EAGAIN;
		}
		looked = true;
		goto again;
	}
	if (copy)
		publish(q, v.pos + i);
	else
		q->pub.held = i;
	return (int)i;
}

static int try_recv_batch(struct sluice__spsc *q, struct iovec *iov,
			  unsigned int n)
{
	return take(q, iov, n, true);
}

int sluice_spsc_try_recv_batch(struct sluice_spsc *pq, struct iovec *iov,
			       unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	return try_recv_batch(q, iov, n);
}

typedef int try_fn_t(struct sluice__spsc *q, struct iovec *iov, unsigned int n);

/* A blocking call whose try_ call said -EAGAIN: one clock for its waits. */
static __attribute__((noinline)) int
blocking_wait(try_fn_t *try_fn, struct sluice__spsc *q, struct iovec *iov,
	      unsigned int n)
{
	struct sluice__wait_call c = { 0 };
	int ret;

	do {
		ret = wait_pass(q, &c);
		if (ret)
			return ret;
	} while ((ret = try_fn(q, iov, n)) == -EAGAIN);
	return ret;
}

/* The blocking form of a try_ call: wait while it says -EAGAIN. */
static int blocking(try_fn_t *try_fn, struct sluice__spsc *q, struct iovec *iov,
		    unsigned int n)
{
	int ret = try_fn(q, iov, n);

	/* A call that need not wait pays nothing for waiting. */
	return ret == -EAGAIN ? blocking_wait(try_fn, q, iov, n) : ret;
}

int sluice_spsc_recv_batch(struct sluice_spsc *pq, struct iovec *iov,
			   unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	return blocking(try_recv_batch, q, iov, n);
}

/* ------------------------------------------------------------- zero copy */

static int try_reserve(struct sluice__spsc *q, struct iovec *iov, unsigned int n)
{
	uint32_t i, k;
	struct view v;
	int err;

	err = zero_copy_args(q, SLUICE_SPSC_PRODUCER, iov, n);
	if (err)
		return err;
	err = room(q, n, &k);
	if (err)
		return err;
	v = view_of(q);
	for (i = 0; i < k; i++) {
		iov[i].iov_base = view_data(&v, i);
		iov[i].iov_len = v.slot_size;
	}
	q->pub.held = k;
	return (int)k;
}

int sluice_spsc_try_reserve(struct sluice_spsc *pq, struct iovec *iov,
			    unsigned int n)
{
	return try_reserve(sluice__spsc_of(pq), iov, n);
}

int sluice_spsc_reserve(struct sluice_spsc *pq, struct iovec *iov,
			unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	return blocking(try_reserve, q, iov, n);
}

int sluice_spsc_commit(struct sluice_spsc *pq, const struct iovec *iov,
		       unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	struct view v;
	uint32_t i;

	if (!q || q->pub.role != SLUICE_SPSC_PRODUCER || n > q->pub.held || (n && !iov))
		return -EINVAL;
	v = view_of(q);
	for (i = 0; i < n; i++) {
		if (iov[i].iov_base != view_data(&v, i))
			return -EINVAL;
		if (iov[i].iov_len > v.slot_size)
			return -EMSGSIZE;
	}
	q->pub.held = 0;
	if (atomic_load_explicit(&q->peer->ctl, memory_order_relaxed) &
	    (SLUICE_SPSC_CLOSED | SLUICE_SPSC_DEAD))
		return -EPIPE;
	if (n) {
		tag_slots(&v, iov, n);
		publish(q, v.pos + n);
	}
	return (int)n;
}

static int try_peek(struct sluice__spsc *q, struct iovec *iov, unsigned int n)
{
	return take(q, iov, n, false);
}

int sluice_spsc_try_peek(struct sluice_spsc *pq, struct iovec *iov,
			 unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	return try_peek(q, iov, n);
}

int sluice_spsc_peek(struct sluice_spsc *pq, struct iovec *iov, unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	return blocking(try_peek, q, iov, n);
}

int sluice_spsc_release(struct sluice_spsc *pq, unsigned int n)
{
	struct sluice__spsc *q = sluice__spsc_of(pq);
	if (!q || q->pub.role != SLUICE_SPSC_CONSUMER || n > q->pub.held)
		return -EINVAL;
	q->pub.held = 0;
	if (n)
		publish(q, q->pub.pos + n);
	return (int)n;
}
