// SPDX-License-Identifier: MIT
/*
 * Channels whose writers and readers die, by SIGKILL, with no chance to
 * clean up: mid-slice; at each instant inside a call where a death leaves
 * something different behind (a test point of lib/testpoint.h stops the
 * child exactly there); or at random, for a while, many of them, across
 * processes.  A dead writer's slice is skipped unseen (or delivered, if
 * it was sealed), a dead reader holds nobody back once swept, the death
 * of the last strong writer drains the channel, and no committed frame is
 * ever lost or reordered.
 *
 * Every test here needs a process to kill: under ThreadSanitizer, whose
 * sides are threads, each skips, saying so.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching
 * tests; SLUICE_TEST_CHAOS_SECONDS runs the chaos longer, SLUICE_TEST_SEED
 * another way.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/uio.h>

#include <sluice/chan.h>
#include <sluice/liveness.h>

#include "chan_fixture.h"
#include "chan_layout.h"
#include "frames.h"
#include "harness.h"
#include "testpoint.h"

/* ---------------------------------------------------------------- dead processes */

#if !H_SIDES_ARE_THREADS
struct dead {
	const char *region;	/* opened anew: see child_dies_at_a_point() */
	enum sluice_chan_kind kind;
	unsigned int frames;	/* committed before dying */
	size_t len;		/* then a slice of one frame this long, or 0 */
	_Atomic uint32_t *stage;
};

/*
 * In a child: write, reserve a slice and fill it, say so, and die by
 * SIGKILL when told, with the slice outstanding: no close, no commit.
 */
static int child_writer_dies(void *p)
{
	struct dead *d = p;
	struct sluice_chan_writer *w;
	struct sluice_region *r;
	struct iovec iov[1];
	struct sluice_chan *ch;
	unsigned char b[64];
	unsigned int i;

	CK_EQ(sluice_region_open(d->region, NULL, &r), 0);
	CK_EQ(sluice_chan_attach(r, "c", NULL, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, d->kind, NULL, &w), 0);
	for (i = 0; i < d->frames; i++) {
		h_fill(b, 100 + i, F40);
		CK_EQ(sluice_chan_try_write(w, b, F40), 0);
	}
	if (d->len) {
		iov[0] = (struct iovec){ NULL, d->len };
		CK_EQ(sluice_chan_try_reserve_slice(w, iov, 1), 1);
		memset(iov[0].iov_base, 0xee, d->len);
	}
	atomic_store(d->stage, 1);
	CK_EQ(h_wait_for(d->stage, 2, 20000), 0);
	raise(SIGKILL);
	return 99;
}

/* In a child: open a strong reader, read nothing, die when told. */
static int child_reader_dies(void *p)
{
	struct dead *d = p;
	struct sluice_chan_reader *reader;
	struct sluice_region *r;
	struct sluice_chan *ch;

	CK_EQ(sluice_region_open(d->region, NULL, &r), 0);
	CK_EQ(sluice_chan_attach(r, "c", NULL, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &reader), 0);
	atomic_store(d->stage, 1);
	CK_EQ(h_wait_for(d->stage, 2, 20000), 0);
	raise(SIGKILL);
	return 99;
}

static void writer_dies_mid_slice(struct h_fx *f, enum sluice_chan_kind kind)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct dead d = { .region = f->name, .kind = kind, .frames = 1, .len = 100 };
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *rm, *rt;
	struct sluice_chan_info i;
	struct rloop rl;
	unsigned char b[F40];
	int pid;
	int64_t t0;

	d.stage = &h_sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	rm = rd(ch, SLUICE_CHAN_STRONG, NULL);
	rt = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* One reader blocked in a read all along, from before the child. */
	rloop_start(&rl, rt, 2);
	pid = h_spawn(child_writer_dies, &d, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait_for(d.stage, 1, 10000), 0);
	/* A frame committed behind the child's slice. */
	put40(w, 200);
	/* While the child lives, its slice holds the readers back. */
	get40(rm, 100);
	none(rm);
	h_sleep_ms(100);
	none(rm);
	assert_int_equal(rloop_count(&rl), 1);
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 2);
	assert_int_equal(i.strong_writers, kind == SLUICE_CHAN_STRONG ? 2 : 1);

	atomic_store(d.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	/* Dead: its slice is skipped, unseen, and the readers go on. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(rm, b, sizeof(b)), F40);
	assert_true(h_intact(b, 200, F40));
	print_message("    a reader got past the dead writer's slice in %" PRId64 " ms\n",
		      h_now_ms() - t0);
	assert_int_equal(pthread_join(rl.t, NULL), 0);
	assert_int_equal(rl.err, 0);
	assert_int_equal(rl.seq[0], 100);
	assert_int_equal(rl.seq[1], 200);
	i = info_of(ch);
	assert_int_equal(i.abandoned, slice1(100));
	assert_committed_below(i, i.tail);
	assert_int_equal(i.tail, slice1(F40) + slice1(100) + slice1(F40));
	assert_int_equal(i.writers_busy, 1);
	assert_int_equal(i.strong_writers, 1);
	assert_int_equal(i.draining, 0);
	none(rm);
	put40(w, 201);
	get40(rm, 201);
	get40(rt, 201);
	rshut(rt);
	rshut(rm);
	wshut(w);
	cshut(ch);
}

#endif

static void test_a_strong_writer_killed_mid_slice_is_skipped(void **state)
{
#if H_SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	writer_dies_mid_slice(*state, SLUICE_CHAN_STRONG);
#endif
}

static void test_a_weak_writer_killed_mid_slice_is_skipped(void **state)
{
#if H_SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	writer_dies_mid_slice(*state, SLUICE_CHAN_WEAK);
#endif
}

static void test_a_killed_last_strong_writer_drains_the_channel(void **state)
{
#if H_SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct dead d = { .region = f->name, .kind = SLUICE_CHAN_STRONG, .frames = 3 };
	struct sluice_chan *ch;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	unsigned char b[F40];
	unsigned int k;
	int pid;
	int64_t t0;

	d.stage = &h_sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	pid = h_spawn(child_writer_dies, &d, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait_for(d.stage, 1, 10000), 0);
	assert_int_equal(info_of(ch).strong_writers, 1);
	atomic_store(d.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	for (k = 0; k < 3; k++) {
		assert_int_equal(sluice_chan_read(r, b, sizeof(b)), F40);
		assert_true(h_intact(b, 100 + k, F40));
	}
	/* End of channel, not a timeout: the dead writer counted as closed. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, b, sizeof(b)), -EPIPE);
	print_message("    the reader saw the end %" PRId64 " ms after the last frame\n",
		      h_now_ms() - t0);
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	assert_int_equal(i.abandoned, 0);
	rshut(r);
	cshut(ch);
#endif
}

static void test_a_killed_strong_reader_is_swept(void **state)
{
#if H_SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct dead d = { .region = f->name };
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *weak;
	struct sluice_chan_info i;
	unsigned char b[F40];
	unsigned int n, k;
	int pid;
	int64_t t0;

	d.stage = &h_sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	weak = rd(ch, SLUICE_CHAN_WEAK, NULL);
	pid = h_spawn(child_reader_dies, &d, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait_for(d.stage, 1, 10000), 0);
	assert_int_equal(info_of(ch).strong_readers, 1);
	/* Alive, it holds the writer a ring ahead of where it opened. */
	n = fill_up(w, 0);
	assert_int_equal(n, CAP / S40);
	atomic_store(d.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	/* Dead, it holds nobody back, once swept. */
	h_fill(b, n, F40);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write(w, b, F40), 0);
	print_message("    the writer got past the dead reader in %" PRId64 " ms\n",
		      h_now_ms() - t0);
	i = info_of(ch);
	assert_int_equal(i.swept, 1);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(i.weak_readers, 1);
	for (k = n + 1; k < n + 1 + 3 * CAP / S40; k++)
		put40(w, k);
	rshut(weak);
	wshut(w);
	cshut(ch);
#endif
}

/* ---------------------------------------------------------------- killed at each point */

/*
 * How a test wants its writer to die: at @point, its slice of one frame
 * of @len bytes reserved with the tail @at_end bytes before the ring's
 * end (so that a slice longer than that wraps, after a pad), and, if
 * @join, with a reader joining after the death and before any sweep (a
 * join walks committed forward, over a pad the dead writer sealed).
 */
struct kill_case {
	enum sluice__tp point;
	enum sluice_chan_kind kind;
	size_t len;
	uint64_t at_end;
	bool join;
	bool won;		/* it won its reservation and did not seal it */
	bool delivered;		/* its frame is read */
};

#define NO_WRAP		(CAP / 2)	/* the tail far from the end */

#if !H_SIDES_ARE_THREADS
/*
 * A writer killed at a chosen instant inside a call: a test point
 * (lib/testpoint.h) in the child says "here", waits for the word, and
 * the child dies of SIGKILL there, as if killed from outside at exactly
 * that instruction.  Point 0: dies holding its reserved slice, between
 * calls.
 */
struct point_kill {
	const char *region;	/* opened anew: the parent's handle may be mid-call */
	enum sluice__tp point;
	enum sluice_chan_kind kind;
	size_t len;		/* the one frame of its slice */
	_Atomic uint32_t *stage;
};

static struct point_kill *pk_now;

static void pk_die(void)
{
	atomic_store(pk_now->stage, 1);
	if (h_wait_for(pk_now->stage, 2, 20000) == 0)
		raise(SIGKILL);
	_exit(98);
}

static void pk_hook(enum sluice__tp point, void *obj)
{
	(void)obj;
	if (point == pk_now->point)
		pk_die();
}

static int child_dies_at_a_point(void *p)
{
	struct point_kill *k = p;
	struct sluice_chan_writer *w;
	struct sluice_region *r;
	struct iovec iov[1];
	struct sluice_chan *ch;
	int ret;

	/*
	 * Our own handles: a parent's thread may have held its handle's lock
	 * at the fork, which nobody in this process would ever release.
	 */
	CK_EQ(sluice_region_open(k->region, NULL, &r), 0);
	CK_EQ(sluice_chan_attach(r, "c", NULL, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, k->kind, NULL, &w), 0);
	pk_now = k;
	sluice__tp_hook = pk_hook;
	if (k->point == SLUICE__TP_CHAN_CLOSING) {
		sluice_chan_writer_close(w);
		return 97;
	}
	iov[0] = (struct iovec){ NULL, k->len };
	CK_EQ(sluice_chan_try_reserve_slice(w, iov, 1), 1);
	h_fill(iov[0].iov_base, 100, k->len);
	if (!k->point)
		pk_die();
	ret = sluice_chan_commit(w);
	fprintf(stderr, "commit returned %d without reaching point %d\n", ret, k->point);
	return 96;
}


static void writer_killed_at(struct h_fx *f, const struct kill_case *kc)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	SLUICE_OPTS(sluice_chan_opts, quick, .timeout_ns = 60 * MS);
	struct point_kill k = { .region = f->name, .point = kc->point, .len = kc->len,
				.kind = kc->kind ? kc->kind : SLUICE_CHAN_STRONG };
	struct sluice_chan_reader *ra, *rb, *rj = NULL, *rs;
	struct sluice_chan_writer *w;
	struct sluice_chan_info i;
	struct sluice_chan *ch;
	uint64_t want_tail;
	unsigned int n, j;
	struct rloop rl;
	int pid, st, ret;

	k.stage = &h_sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ra = rd(ch, SLUICE_CHAN_STRONG, NULL);
	rb = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* Bring the tail to where the case wants it, and read it all. */
	n = (unsigned int)((CAP - kc->at_end) / S40);
	for (j = 0; j < n; j++)
		put40(w, j);
	for (j = 0; j < n; j++) {
		get40(ra, j);
		get40(rb, j);
	}
	want_tail = info_of(ch).tail;
	assert_int_equal(want_tail % CAP, CAP - kc->at_end);
	/* One reader blocked in a read all along, from before the child. */
	rloop_start(&rl, rb, kc->delivered ? 3 : 2);
	pid = h_spawn(child_dies_at_a_point, &k, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait_for(k.stage, 1, 10000), 0);
	/* A frame committed behind the child's reservation, if it made one. */
	put40(w, 200);
	/*
	 * The join must come before any sweep: the blocked reader's wait
	 * sweeps every 20 ms, under the region lock, held here from before
	 * the death until the reader has joined (a join does not take it).
	 */
	if (kc->join)
		assert_int_equal(sluice__region_lock(f->r), 0);
	atomic_store(k.stage, 2);
	st = h_wait(pid);
	if (kc->join) {
		ret = sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &rj);
		sluice__region_unlock(f->r);
		assert_int_equal(ret, 0);
		track_reader(rj);
	}
	assert_int_equal(st, H_SIGNALED + SIGKILL);
	if (kc->join) {
		/* It joined where the committed slices end: before the 200. */
		if (kc->won) {
			assert_int_equal(sluice_chan_read(rj, scratch, F40), F40);
			assert_true(h_intact(scratch, 200, F40));
		}
	}

	/* Readers get past it, at once or after the child's frame. */
	if (kc->delivered) {
		assert_int_equal(sluice_chan_read(ra, scratch, sizeof(scratch)), (int)kc->len);
		assert_true(h_intact(scratch, 100, kc->len));
	}
	assert_int_equal(sluice_chan_read(ra, scratch, F40), F40);
	assert_true(h_intact(scratch, 200, F40));
	/* The survivor goes on writing, laps and all; every reader gets it. */
	for (j = 0; j < 3 * CAP / S40; j++) {
		put40(w, 300 + j);
		get40(ra, 300 + j);
		if (rj)
			get40(rj, 300 + j);
		if (j) {
			get40(rb, 300 + j);
			continue;
		}
		/* The blocked reader got everything up to here. */
		assert_int_equal(pthread_join(rl.t, NULL), 0);
		assert_int_equal(rl.err, 0);
		n = 0;
		if (kc->delivered)
			assert_int_equal(rl.seq[n++], 100);
		assert_int_equal(rl.seq[n++], 200);
		assert_int_equal(rl.seq[n], 300);
	}
	/* A wait long enough to sweep: the dead writer's place is freed. */
	rs = rd(ch, SLUICE_CHAN_STRONG, &quick);
	assert_int_equal(sluice_chan_read(rs, scratch, sizeof(scratch)), -ETIMEDOUT);
	rshut(rs);
	i = info_of(ch);
	assert_int_equal(i.abandoned, kc->won ? slice1(kc->len) : 0);
	if (kc->point != SLUICE__TP_CHAN_INTENT)
		want_tail = pos_after(want_tail, slice1(kc->len), CAP);
	for (j = 0; j < 1 + 3 * CAP / S40; j++)
		want_tail = pos_after(want_tail, S40, CAP);
	assert_int_equal(i.tail, want_tail);
	assert_int_equal(i.committed, want_tail);
	assert_int_equal(i.writers_busy, 1);
	assert_int_equal(i.strong_writers, 1);
	assert_int_equal(i.draining, 0);
	if (rj)
		rshut(rj);
	rshut(rb);
	rshut(ra);
	wshut(w);
	cshut(ch);
}

/*
 * The last strong writer killed in its close, after counting itself out
 * and before deciding on the drain: the sweep decides it.
 */
static void last_strong_writer_killed_closing(struct h_fx *f)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct point_kill k = { .region = f->name, .point = SLUICE__TP_CHAN_CLOSING,
				.kind = SLUICE_CHAN_STRONG };
	struct sluice_chan_writer *ww;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	struct sluice_chan *ch;
	int pid;

	k.stage = &h_sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	pid = h_spawn(child_dies_at_a_point, &k, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait_for(k.stage, 1, 10000), 0);
	put40(ww, 200);
	atomic_store(k.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	get40(r, 200);
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -EPIPE);
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	rshut(r);
	wshut(ww);
	cshut(ch);
}
#endif

static void test_a_last_strong_writer_killed_while_closing_drains_the_channel(void **state)
{
#if H_SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	last_strong_writer_killed_closing(*state);
#endif
}

#if !H_SIDES_ARE_THREADS
/*
 * Killed holding a wrapped slice, after which readers pass the pad,
 * committed walks over it and writers fill the next lap over its bytes,
 * all before any sweep: the sweep must still seal the slice.
 */
static void wrapped_slice_pad_written_over(struct h_fx *f)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct point_kill k = { .region = f->name, .kind = SLUICE_CHAN_STRONG, .len = 100 };
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	unsigned int n, j;
	uint64_t tail0;
	int pid;

	k.stage = &h_sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	n = (unsigned int)((CAP - S40) / S40);
	for (j = 0; j < n; j++) {
		put40(w, j);
		get40(r, j);
	}
	tail0 = info_of(ch).tail;
	pid = h_spawn(child_dies_at_a_point, &k, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait_for(k.stage, 1, 10000), 0);
	atomic_store(k.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	/* The reader passes the pad; the writer's room then covers its bytes. */
	none(r);
	n = fill_up(w, 1000);
	assert_true(info_of(ch).tail > tail0 + CAP);
	for (j = 0; j < n; j++) {
		assert_int_equal(sluice_chan_read(r, scratch, F40), F40);
		assert_true(h_intact(scratch, 1000 + j, F40));
	}
	assert_int_equal(info_of(ch).abandoned, slice1(k.len));
	rshut(r);
	wshut(w);
	cshut(ch);
}
#endif

static void test_a_writer_killed_holding_a_wrapped_slice_is_skipped_after_its_pad_is_reused(void **state)
{
#if H_SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	wrapped_slice_pad_written_over(*state);
#endif
}

#define KILL_TEST(name, ...)						\
	static void name(void **state)					\
	{								\
		const struct kill_case kc = { __VA_ARGS__ };		\
		if (H_SIDES_ARE_THREADS)					\
			h_skip(NEED_PROCESSES);				\
		else							\
			KILL_RUN(*state, &kc);				\
	}
#if H_SIDES_ARE_THREADS
#define KILL_RUN(f, kc)	((void)(f), (void)(kc))
#else
#define KILL_RUN(f, kc)	writer_killed_at(f, kc)
#endif

/* A slice of 100 bytes takes 128; 64 before the end, it wraps. */
KILL_TEST(test_a_writer_killed_holding_a_wrapped_slice_is_skipped,
	  .len = 100, .at_end = 64, .won = true)
KILL_TEST(test_a_writer_killed_holding_a_wrapped_slice_is_skipped_past_a_joining_reader,
	  .len = 100, .at_end = 64, .join = true, .won = true)
KILL_TEST(test_a_weak_writer_killed_holding_a_wrapped_slice_is_skipped,
	  .kind = SLUICE_CHAN_WEAK, .len = 100, .at_end = 64, .won = true)
KILL_TEST(test_a_writer_killed_before_sealing_its_pad_is_skipped,
	  .point = SLUICE__TP_CHAN_FILLING, .len = 100, .at_end = 64, .won = true)
KILL_TEST(test_a_writer_killed_before_sealing_its_pad_is_skipped_past_a_joining_reader,
	  .point = SLUICE__TP_CHAN_FILLING, .len = 100, .at_end = 64, .join = true, .won = true)
KILL_TEST(test_a_writer_killed_right_after_winning_a_wrapping_reservation_is_skipped,
	  .point = SLUICE__TP_CHAN_CLAIMED, .len = 100, .at_end = 64, .won = true)
KILL_TEST(test_a_writer_killed_right_after_winning_its_reservation_is_skipped,
	  .point = SLUICE__TP_CHAN_CLAIMED, .len = 100, .at_end = NO_WRAP, .won = true)
KILL_TEST(test_a_writer_killed_before_reserving_leaves_nothing_behind,
	  .point = SLUICE__TP_CHAN_INTENT, .len = 100, .at_end = 64)
KILL_TEST(test_a_writer_killed_between_sealing_and_idling_is_delivered,
	  .point = SLUICE__TP_CHAN_SEALED, .len = 100, .at_end = NO_WRAP, .delivered = true)
KILL_TEST(test_a_weak_writer_killed_between_sealing_and_giving_its_place_is_delivered,
	  .point = SLUICE__TP_CHAN_SEALED, .kind = SLUICE_CHAN_WEAK, .len = 100, .at_end = 64,
	  .delivered = true)

/* ---------------------------------------------------------------- chaos */

/*
 * Writers and readers killed at random instants, for a while, across
 * processes: every frame a writer committed is read once, in its order,
 * by each strong reader that lives throughout, and nothing stalls (every
 * blocking call has a deadline, and a timeout fails the side).  Writers
 * come back under new ids; killed readers come back as new readers.
 *
 * SLUICE_TEST_CHAOS_SECONDS runs it longer, SLUICE_TEST_SEED another way.
 */
#if defined(H_ASAN)
#define CHAOS_SECONDS	10u
#else
#define CHAOS_SECONDS	20u
#endif
#define CHAOS_IDS	65536u	/* writer ids in a run, replacements included */
#define CHAOS_CHECKERS	2u	/* strong readers never killed */
#define CHAOS_WRITERS	3u
#define CHAOS_VICTIMS	2u	/* strong readers that are killed */
#define CHAOS_LEN	900u	/* a frame's bytes, at most: slices wrap often */
#define CHAOS_CAP	(16 * 1024ull)
#define CHAOS_WAIT_MS	10000u	/* a wait this long is a stall */

struct chaos {
	const char *region;
	uint64_t seed;
	_Atomic uint32_t stop;			/* writers: finish and close */
	_Atomic uint32_t ready;			/* checkers open */
	_Atomic uint64_t read;			/* frames the checkers read */
	/* Per writer id: frames it knows it committed, the commit under way. */
	_Atomic uint32_t last[CHAOS_IDS];
	_Atomic uint16_t inflight[CHAOS_IDS];
	_Atomic uint8_t closed[CHAOS_IDS];
	_Atomic uint32_t seen[CHAOS_CHECKERS][CHAOS_IDS];
};

struct chaos_arg {
	struct chaos *c;
	uint32_t id;			/* a writer's id, a reader's number */
};

#if !H_SIDES_ARE_THREADS
/* What a stalled channel looks like, for the report of a failing side. */
static void chaos_dump(const char *region, const char *who)
{
	struct sluice_region *r;
	struct sluice_chan_slice *sl;
	uint64_t o, c, t, v;
	struct lay l;
	uint32_t i;

	if (sluice_region_open(region, NULL, &r))
		return;
	l = lay_in(r, "c");
	if (!l.h)
		return;
	c = atomic_load(&l.h->committed);
	t = atomic_load(&l.h->tail);
	sl = slice_at(&l, c);
	v = atomic_load(&sl->seal);
	fprintf(stderr, "%s: tail %#" PRIx64 " committed %#" PRIx64 " seal there %s kind %u bytes %u\n",
		who, t, c, (v & ~3ull) == (chan_seal(l.h->salt, c, 0) & ~3ull) ? "ok" : "none",
		(unsigned int)(v & 3), atomic_load(&sl->bytes));
	for (i = 0; i < l.h->writers_max; i++) {
		o = atomic_load(&l.went[i].owner);
		if (o)
			fprintf(stderr, "  writer %u: pid %d kind %u %s state %u from %#" PRIx64
				" len %u\n", i, CHAN_OWNER_PID(o), CHAN_OWNER_KIND(o),
				kill(CHAN_OWNER_PID(o), 0) ? "dead" : "alive",
				atomic_load(&l.went[i].state), atomic_load(&l.went[i].from),
				atomic_load(&l.went[i].len));
	}
	for (i = 0; i < l.h->readers_max; i++) {
		o = atomic_load(&l.rent[i].owner);
		if (o)
			fprintf(stderr, "  reader %u: pid %d kind %u %s cursor %#" PRIx64 "\n", i,
				CHAN_OWNER_PID(o), CHAN_OWNER_KIND(o),
				kill(CHAN_OWNER_PID(o), 0) ? "dead" : "alive",
				atomic_load(&l.rent[i].cursor));
	}
}

static struct sluice_chan *chaos_attach(struct chaos *c, uint64_t rng,
					struct sluice_liveness **live)
{
	SLUICE_OPTS(sluice_liveness_opts, lo, .backend = SLUICE_LIVENESS_PIDFD);
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = CHAOS_WAIT_MS * MS);
	struct sluice_region *r;
	struct sluice_chan *ch;

	/* Half of them see deaths through a monitor, half by sweeping. */
	*live = NULL;
	if (rng & 1 && !sluice_liveness_create(&lo, live))
		o.liveness = *live;
	if (sluice_region_open(c->region, NULL, &r) ||
	    sluice_chan_attach(r, "c", &o, &ch))
		return NULL;
	return ch;
}

static int chaos_writer(void *p)
{
	struct chaos_arg *a = p;
	struct chaos *c = a->c;
	uint64_t rng = h_mix(c->seed ^ a->id) | 1;
	unsigned char buf[BATCH * CHAOS_LEN];
	struct sluice_chan_writer *w;
	struct sluice_liveness *live;
	struct iovec iov[BATCH];
	struct sluice_chan *ch;
	uint32_t seq = 0, id = a->id;
	unsigned int k, i;
	size_t len;

	ch = chaos_attach(c, h_rng_next(&rng), &live);
	CK(ch);
	CK_EQ(sluice_chan_writer_open(ch, h_rng_next(&rng) & 1 ? SLUICE_CHAN_STRONG :
				      SLUICE_CHAN_WEAK, NULL, &w), 0);
	while (!atomic_load(&c->stop)) {
		k = 1 + (unsigned int)(h_rng_next(&rng) % BATCH);
		for (i = 0; i < k; i++) {
			len = h_tag_len(id, seq + i, CHAOS_LEN);
			iov[i] = (struct iovec){ buf + i * CHAOS_LEN, len };
			h_tag_make(iov[i].iov_base, id, seq + i, len);
		}
		atomic_store(&c->inflight[id], (uint16_t)k);
		switch (h_rng_next(&rng) % 4) {
		case 0:
			CK_EQ(sluice_chan_write(w, iov[0].iov_base, iov[0].iov_len), 0);
			k = 1;
			break;
		case 1:
			CK_EQ(sluice_chan_write_batch(w, iov, k), k);
			break;
		case 2:
			for (i = 0; i < k; i++)
				iov[i].iov_base = NULL;
			CK_EQ(sluice_chan_reserve_slice(w, iov, k), k);
			/* A slow writer, now and then: kills land while it holds. */
			if (h_rng_next(&rng) % 2)
				usleep((useconds_t)(h_rng_next(&rng) % 500));
			for (i = 0; i < k; i++)
				h_tag_make(iov[i].iov_base, id, seq + i, iov[i].iov_len);
			CK_EQ(sluice_chan_commit(w), 0);
			break;
		default:
			/* A slice abandoned on purpose: nobody may read it. */
			CK_EQ(sluice_chan_reserve_slice(w, iov, 1), 1);
			memset(iov[0].iov_base, 0xa5, iov[0].iov_len);
			CK_EQ(sluice_chan_abort(w), 0);
			k = 0;
			break;
		}
		seq += k;
		atomic_store(&c->last[id], seq);
		atomic_store(&c->inflight[id], 0);
	}
	sluice_chan_writer_close(w);
	atomic_store(&c->closed[id], 1);
	return 0;
}

/*
 * A strong reader.  A checker (a->id < CHAOS_CHECKERS) was open before
 * any writer and must see every writer's frames from its first; a victim
 * joined late and may see any writer from any frame on, but then each
 * next one.  Both read until the channel drains.
 */
static int chaos_reader(void *p)
{
	struct chaos_arg *a = p;
	struct chaos *c = a->c;
	bool checker = a->id < CHAOS_CHECKERS;
	uint64_t rng = h_mix(c->seed ^ 0x7eade5 ^ a->id) | 1;
	static uint32_t next[CHAOS_IDS];	/* per child: its own copy */
	static unsigned char buf[16][CHAOS_LEN];
	struct sluice_liveness *live;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct iovec iov[16];
	struct h_tag t;
	unsigned int i;
	int ret;

	memset(next, 0, sizeof(next));
	ch = chaos_attach(c, h_rng_next(&rng), &live);
	CK(ch);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), 0);
	if (checker)
		atomic_fetch_add(&c->ready, 1);
	for (;;) {
		for (i = 0; i < 16; i++)
			iov[i] = (struct iovec){ buf[i], CHAOS_LEN };
		ret = sluice_chan_read_batch(r, iov, 1 + (unsigned int)(h_rng_next(&rng) % 16));
		if (ret == -EPIPE)
			break;
		if (ret < 0) {
			fprintf(stderr, "reader %u: read_batch: %s\n", a->id, strerror(-ret));
			if (checker)
				chaos_dump(c->region, "stalled");
			return 1;
		}
		for (i = 0; i < (unsigned int)ret; i++) {
			memcpy(&t, buf[i], H_TAG_SZ < iov[i].iov_len ? H_TAG_SZ : iov[i].iov_len);
			CK(iov[i].iov_len >= H_TAG_SZ && t.wid < CHAOS_IDS);
			CK(iov[i].iov_len == h_tag_len(t.wid, t.seq, CHAOS_LEN));
			CK(t.sum == h_tag_sum(t.wid, t.seq, buf[i] + H_TAG_SZ,
					      iov[i].iov_len - H_TAG_SZ));
			if (!checker && !next[t.wid])
				next[t.wid] = t.seq;	/* a victim joins anywhere */
			if (t.seq != next[t.wid]) {
				fprintf(stderr, "reader %u: writer %u's frame %u, want %u\n",
					a->id, t.wid, t.seq, next[t.wid]);
				return 1;
			}
			next[t.wid]++;
		}
		if (checker)
			atomic_fetch_add(&c->read, (uint64_t)ret);
	}
	if (checker)
		for (i = 0; i < CHAOS_IDS; i++)
			atomic_store(&c->seen[a->id][i], next[i]);
	return 0;
}

struct chaos_proc {
	int pid;
	bool writer;
	struct chaos_arg arg;
};

static void chaos_start(struct chaos_proc *p, struct chaos *c, bool writer, uint32_t id)
{
	p->writer = writer;
	p->arg = (struct chaos_arg){ .c = c, .id = id };
	p->pid = h_spawn(writer ? chaos_writer : chaos_reader, &p->arg, 0);
	assert_true(p->pid > 0);
}

#endif

static void test_writers_and_readers_killed_at_random_lose_no_committed_frame(void **state)
{
#if H_SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	struct h_fx *f = *state;
	const char *env = getenv("SLUICE_TEST_CHAOS_SECONDS");
	unsigned int seconds = env ? (unsigned int)atoi(env) : CHAOS_SECONDS;
	struct chaos_proc checker[CHAOS_CHECKERS], side[CHAOS_WRITERS + CHAOS_VICTIMS];
	unsigned int n_sides = CHAOS_WRITERS + CHAOS_VICTIMS, i, kills = 0, victims = 0;
	uint32_t ids = 0, id, k, seen;
	struct sluice_chan_writer *holder;
	struct sluice_chan *ch;
	struct chaos *c;
	uint64_t rng, off;
	int64_t t0;
	int st;

	assert_int_equal(sluice_region_alloc(f->r, "chaos", SLUICE_OBJ_RAW,
					     sizeof(*c), 64, &off), 0);
	c = sluice_region_at(f->r, off, sizeof(*c));
	c->region = f->name;
	c->seed = getenv("SLUICE_TEST_SEED") ? strtoull(getenv("SLUICE_TEST_SEED"), NULL, 0) :
					      (uint64_t)time(NULL);
	rng = h_mix(c->seed) | 1;
	print_message("    seed %" PRIu64 " (SLUICE_TEST_SEED), %u s\n", c->seed, seconds);
	ch = mk(f, CHAOS_CAP, SLUICE_CHAN_BLOCK, NULL);
	/* Held open all along: killing the last strong writer would drain it. */
	holder = wr(ch, SLUICE_CHAN_STRONG, NULL);
	for (i = 0; i < CHAOS_CHECKERS; i++)
		chaos_start(&checker[i], c, false, i);
	assert_int_equal(h_wait_for(&c->ready, CHAOS_CHECKERS, 10000), 0);
	for (i = 0; i < n_sides; i++)
		if (i < CHAOS_WRITERS)
			chaos_start(&side[i], c, true, ids++);
		else
			chaos_start(&side[i], c, false, CHAOS_CHECKERS + victims++);

	t0 = h_now_ms();
	while (h_now_ms() - t0 < (int64_t)seconds * 1000 && ids < CHAOS_IDS - n_sides) {
		usleep((useconds_t)(h_rng_next(&rng) % 8000));
		i = (unsigned int)(h_rng_next(&rng) % n_sides);
		kill(side[i].pid, SIGKILL);
		st = h_wait(side[i].pid);
		if (st != H_SIGNALED + SIGKILL)
			fail_msg("a %s exited with %d before it was killed",
				 side[i].writer ? "writer" : "reader", st);
		kills++;
		if (side[i].writer)
			chaos_start(&side[i], c, true, ids++);
		else
			chaos_start(&side[i], c, false, CHAOS_CHECKERS + victims++);
	}

	/* Writers finish; the last strong writer's close drains the channel. */
	atomic_store(&c->stop, 1);
	for (i = 0; i < n_sides; i++)
		if (side[i].writer)
			assert_int_equal(h_wait(side[i].pid), 0);
	wshut(holder);
	for (i = 0; i < n_sides; i++)
		if (!side[i].writer)
			assert_int_equal(h_wait(side[i].pid), 0);
	for (i = 0; i < CHAOS_CHECKERS; i++)
		assert_int_equal(h_wait(checker[i].pid), 0);

	/* Each writer: all it committed, and at most the commit it died in. */
	for (id = 0; id < ids; id++) {
		for (i = 0; i < CHAOS_CHECKERS; i++) {
			seen = atomic_load(&c->seen[i][id]);
			k = atomic_load(&c->closed[id]) ? 0 : atomic_load(&c->inflight[id]);
			if (seen < atomic_load(&c->last[id]) || seen > atomic_load(&c->last[id]) + k)
				fail_msg("checker %u read %u frames of writer %u, which committed "
					 "%u (+%u under way)", i, seen, id,
					 atomic_load(&c->last[id]), k);
		}
	}
	print_message("    %u kills in %" PRId64 " s (%u writers, %u readers started), %" PRIu64
		      " frames read by each checker, all in order\n",
		      kills, (h_now_ms() - t0) / 1000, ids, victims,
		      atomic_load(&c->read) / CHAOS_CHECKERS);
	cshut(ch);
#endif
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, chan_setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* dead processes */
		T(test_a_strong_writer_killed_mid_slice_is_skipped),
		T(test_a_weak_writer_killed_mid_slice_is_skipped),
		T(test_a_killed_last_strong_writer_drains_the_channel),
		T(test_a_killed_strong_reader_is_swept),
		/* killed at each point */
		T(test_a_writer_killed_holding_a_wrapped_slice_is_skipped),
		T(test_a_writer_killed_holding_a_wrapped_slice_is_skipped_past_a_joining_reader),
		T(test_a_writer_killed_holding_a_wrapped_slice_is_skipped_after_its_pad_is_reused),
		T(test_a_weak_writer_killed_holding_a_wrapped_slice_is_skipped),
		T(test_a_writer_killed_before_sealing_its_pad_is_skipped),
		T(test_a_writer_killed_before_sealing_its_pad_is_skipped_past_a_joining_reader),
		T(test_a_writer_killed_right_after_winning_a_wrapping_reservation_is_skipped),
		T(test_a_writer_killed_right_after_winning_its_reservation_is_skipped),
		T(test_a_writer_killed_before_reserving_leaves_nothing_behind),
		T(test_a_writer_killed_between_sealing_and_idling_is_delivered),
		T(test_a_weak_writer_killed_between_sealing_and_giving_its_place_is_delivered),
		T(test_a_last_strong_writer_killed_while_closing_drains_the_channel),
		/* chaos */
		T(test_writers_and_readers_killed_at_random_lose_no_committed_frame),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("chan_dead", tests, NULL, NULL);
}
