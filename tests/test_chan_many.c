// SPDX-License-Identifier: MIT
/*
 * Channels with many processes at once: many writers and many readers,
 * strong and weak, through a big ring and the smallest, spinning or
 * sleeping; weak readers that doze and are overrun on purpose; readers
 * and writers that come and go while frames flow.  A strong reader sees
 * every frame of every writer once, in each writer's order; a weak one
 * never a torn, repeated or reordered frame, and what it read plus what
 * sluice_chan_lost() says it lost is exactly what was written.
 *
 * Every frame is tagged (frames.h): it names its writer and its number in
 * that writer's sequence, its length follows from those two numbers, and
 * it carries a checksum of its bytes.  Under ThreadSanitizer the
 * processes are threads of one process (h_run_sides()); frame counts
 * shrink under the sanitizers.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>

#include <sluice/chan.h>

#include "chan_fixture.h"
#include "frames.h"
#include "harness.h"
#include "internal.h"

/* ---------------------------------------------------------------- build */

#if defined(H_TSAN)
#define STREAM_N	3000u	/* frames per writer, many-to-many */
#define WEAK_N		20000u	/* frames per writer, weak readers */
#define JOIN_N		4000u	/* frames of the writer that stays */
#elif defined(H_ASAN)
#define STREAM_N	20000u
#define WEAK_N		100000u
#define JOIN_N		20000u
#else
#define STREAM_N	200000u
#define WEAK_N		400000u
#define JOIN_N		100000u
#endif

#define WRITERS_MAX	4	/* writers of a stream, at most */

/* ---------------------------------------------------------------- many to many */

struct stream {
	struct sluice_region *r;
	struct h_sync *sy;
	unsigned int writers;
	unsigned int strong;	/* readers 0 .. strong - 1 */
	unsigned int weak;	/* then these */
	uint32_t n;		/* frames per writer */
	size_t max;		/* longest frame */
	uint32_t spin_ns;
};

struct side_arg {
	struct stream *s;
	unsigned int id;
};

static void stream_opts(const struct stream *s, struct sluice_chan_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->timeout_ns = 20000 * MS;
	o->spin_ns = s->spin_ns;
}

/*
 * A strong writer: every call there is, at random, batches of up to eight,
 * and now and then a slice filled with a lie and aborted.
 */
static int stream_writer(void *p)
{
	struct side_arg *a = p;
	struct stream *s = a->s;
	struct sluice_chan_writer *w;
	struct sluice_chan_opts o;
	struct iovec iov[BATCH];
	struct sluice_chan *ch;
	uint64_t rng = 0x1234567 + a->id * 7919;
	uint32_t seq = 0, wid = a->id;
	unsigned int k, i;
	unsigned char *buf;
	size_t len;
	int ret;

	stream_opts(s, &o);
	CK_EQ(h_wait_for(&s->sy->ready, s->strong + s->weak, 10000), 0);
	CK_EQ(sluice_chan_attach(s->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
	/* Nobody writes before all are open: the first to close would drain. */
	atomic_fetch_add(&s->sy->wopen, 1);
	CK_EQ(h_wait_for(&s->sy->wopen, s->writers, 10000), 0);
	buf = malloc(BATCH * s->max);
	CK(buf);
	while (seq < s->n) {
		k = 1 + (unsigned int)(h_rng_next(&rng) % BATCH);
		if (k > s->n - seq)
			k = s->n - seq;
		for (i = 0; i < k; i++) {
			len = h_tag_len(wid, seq + i, s->max);
			iov[i] = (struct iovec){ buf + i * s->max, len };
			h_tag_make(iov[i].iov_base, wid, seq + i, len);
		}
		switch (h_rng_next(&rng) % 8) {
		case 0:
			CK_EQ(sluice_chan_write(w, iov[0].iov_base, iov[0].iov_len), 0);
			k = 1;
			break;
		case 1:
			ret = sluice_chan_try_write(w, iov[0].iov_base, iov[0].iov_len);
			if (ret == -EAGAIN)
				ret = sluice_chan_write(w, iov[0].iov_base, iov[0].iov_len);
			CK_EQ(ret, 0);
			k = 1;
			break;
		case 2:
		case 3:
			CK_EQ(sluice_chan_write_batch(w, iov, k), k);
			break;
		case 4:
			ret = sluice_chan_try_write_batch(w, iov, k);
			if (ret == -EAGAIN)
				ret = sluice_chan_write_batch(w, iov, k);
			CK_EQ(ret, k);
			break;
		case 5:
		case 6:
			for (i = 0; i < k; i++)
				iov[i].iov_base = NULL;
			CK_EQ(sluice_chan_reserve_slice(w, iov, k), k);
			for (i = 0; i < k; i++) {
				CK((uintptr_t)iov[i].iov_base % 8 == 0);
				h_tag_make(iov[i].iov_base, wid, seq + i, iov[i].iov_len);
			}
			CK_EQ(sluice_chan_commit(w), 0);
			break;
		default:
			/* A lie no reader may ever see. */
			ret = sluice_chan_try_reserve_slice(w, iov, 1);
			if (ret == -EAGAIN)
				continue;
			CK_EQ(ret, 1);
			CK(iov[0].iov_len >= H_TAG_SZ);
			h_tag_make(iov[0].iov_base, wid, seq, iov[0].iov_len);
			((struct h_tag *)iov[0].iov_base)->sum ^= 1;
			CK_EQ(sluice_chan_abort(w), 0);
			k = 0;
			break;
		}
		seq += k;
	}
	free(buf);
	sluice_chan_writer_close(w);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

/*
 * A reader: strong ones must see every frame of every writer once, in
 * each writer's order; weak ones may skip but never reorder, repeat, or
 * hand out a torn frame, and must account for what they skipped.
 */
static int stream_reader(void *p)
{
	struct side_arg *a = p;
	struct stream *s = a->s;
	bool weak = a->id >= s->strong;
	uint32_t next[WRITERS_MAX] = { 0 };
	uint64_t rng = 0x7654321 + a->id * 104729, frames = 0, lost = 0, l;
	struct sluice_chan_reader *r;
	struct sluice_chan_opts o;
	struct iovec iov[BATCH];
	struct sluice_chan *ch;
	unsigned int k, i, w;
	unsigned char *buf;
	struct h_tag t;
	int ret;

	stream_opts(s, &o);
	CK_EQ(sluice_chan_attach(s->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, weak ? SLUICE_CHAN_WEAK : SLUICE_CHAN_STRONG,
				      NULL, &r), 0);
	atomic_fetch_add(&s->sy->ready, 1);
	buf = malloc(BATCH * s->max);
	CK(buf);
	for (;;) {
		k = 1 + (unsigned int)(h_rng_next(&rng) % BATCH);
		for (i = 0; i < k; i++)
			iov[i] = (struct iovec){ buf + i * s->max, s->max };
		switch (h_rng_next(&rng) % 4) {
		case 0:
			ret = sluice_chan_read(r, buf, s->max);
			if (ret >= 0) {
				iov[0].iov_len = (size_t)ret;
				ret = 1;
			}
			break;
		case 1:
			ret = sluice_chan_read_batch(r, iov, k);
			break;
		case 2:
			ret = sluice_chan_try_read(r, buf, s->max);
			if (ret >= 0) {
				iov[0].iov_len = (size_t)ret;
				ret = 1;
			}
			break;
		default:
			ret = sluice_chan_try_read_batch(r, iov, k);
			break;
		}
		if (ret == -EAGAIN)
			continue;
		if (ret == -EPIPE)
			break;
		if (ret == -EOVERFLOW && weak) {
			/* From a frame part way through a slice, maybe. */
			l = sluice_chan_lost(r);
			CK(l > 0 && l % 8 == 0);
			lost += l;
			continue;
		}
		CK(ret >= 1 && ret <= (int)k);
		for (i = 0; i < (unsigned int)ret; i++) {
			CK_EQ(h_tag_check(iov[i].iov_base, iov[i].iov_len, s->max, 0, &t), 0);
			CK(t.wid < s->writers);
			if (weak)
				CK(t.seq >= next[t.wid]);
			else
				CK_EQ(t.seq, next[t.wid]);
			next[t.wid] = t.seq + 1;
			frames++;
		}
	}
	for (w = 0; w < s->writers; w++) {
		if (weak)
			CK(next[w] <= s->n);
		else
			CK_EQ(next[w], s->n);
	}
	if (weak)
		CK_EQ(sluice_chan_lost_total(r), lost);
	else
		CK_EQ(frames, (uint64_t)s->writers * s->n);
	/* End of channel is sticky. */
	CK_EQ(sluice_chan_try_read(r, buf, s->max), -EPIPE);
	CK_EQ(sluice_chan_read(r, buf, s->max), -EPIPE);
	atomic_store(&s->sy->count[a->id], frames);
	free(buf);
	sluice_chan_reader_close(r);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

static void run_stream(struct h_fx *f, unsigned int writers, unsigned int strong,
		       unsigned int weak, uint32_t n, size_t max, uint64_t cap,
		       uint32_t spin_ns)
{
	struct stream s = {
		.r = f->r, .sy = h_sync_of(f->r), .writers = writers, .strong = strong,
		.weak = weak, .n = n, .max = max, .spin_ns = spin_ns,
	};
	struct side_arg args[16];
	struct h_side sides[16];
	struct sluice_chan *ch;
	struct sluice_chan_info i;
	unsigned int k, nr = strong + weak;
	int64_t t0, ms;

	assert_non_null(s.sy);
	assert_true(writers <= WRITERS_MAX && writers + nr <= 16);
	ch = mk(f, cap, SLUICE_CHAN_BLOCK, NULL);
	for (k = 0; k < nr; k++) {
		args[k] = (struct side_arg){ &s, k };
		sides[k] = (struct h_side){ stream_reader, &args[k] };
	}
	for (k = 0; k < writers; k++) {
		args[nr + k] = (struct side_arg){ &s, k };
		sides[nr + k] = (struct h_side){ stream_writer, &args[nr + k] };
	}
	t0 = h_now_ms();
	h_run_sides(sides, nr + writers, CHILD_TIMEOUT);
	ms = h_now_ms() - t0;
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(i.weak_readers, 0);
	assert_committed_below(i, i.tail);
	assert_int_equal(i.abandoned, 0);
	assert_true(i.tail >= (uint64_t)writers * n * slice1(H_TAG_SZ) / BATCH);
	print_message("    %u writers x %u frames to %u strong + %u weak readers in %"
		      PRId64 " ms; %" PRIu64 " MiB through the ring",
		      writers, n, strong, weak, ms, i.tail >> 20);
	for (k = strong; k < nr; k++)
		print_message("; weak reader %u read %" PRIu64, k,
			      atomic_load(&s.sy->count[k]));
	print_message("\n");
	cshut(ch);
}

static void test_many_writers_and_readers_see_every_frame_once_in_order(void **state)
{
	run_stream(*state, 3, 3, 1, STREAM_N, 600, 65536, 0);
}

static void test_many_to_many_through_a_small_ring_while_sleeping(void **state)
{
	/* The smallest ring and no spinning: nearly every call waits. */
	run_stream(*state, 2, 2, 0, STREAM_N / 5, 240, CAP, 1);
}

/* ---------------------------------------------------------------- weak, concurrent */

struct weak_run {
	struct sluice_region *r;
	struct h_sync *sy;
	unsigned int writers;	/* 1: the loss is checked per overrun */
	unsigned int strong;	/* strong readers besides the weak one */
	uint32_t n;		/* frames per writer */
	enum sluice_chan_policy policy;
};

struct weak_arg {
	struct weak_run *w;
	unsigned int id;
};

/* Writes 40-byte frames only, so that every slice is 64 bytes. */
static int weak_writer(void *p)
{
	struct weak_arg *a = p;
	struct weak_run *wr_ = a->w;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan_writer *w;
	struct sluice_chan *ch;
	struct iovec iov[1];
	unsigned char b[F40];
	uint64_t rng = 0x51 + a->id;
	uint32_t seq;

	CK_EQ(h_wait_for(&wr_->sy->ready, 1 + wr_->strong, 10000), 0);
	CK_EQ(sluice_chan_attach(wr_->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
	atomic_fetch_add(&wr_->sy->wopen, 1);
	CK_EQ(h_wait_for(&wr_->sy->wopen, wr_->writers, 10000), 0);
	for (seq = 0; seq < wr_->n; seq++) {
		h_tag_make(b, a->id, seq, F40);
		switch (h_rng_next(&rng) % 3) {
		case 0:
			CK_EQ(sluice_chan_write(w, b, F40), 0);
			break;
		case 1:
			iov[0] = (struct iovec){ b, F40 };
			CK_EQ(sluice_chan_write_batch(w, iov, 1), 1);
			break;
		default:
			iov[0] = (struct iovec){ NULL, F40 };
			CK_EQ(sluice_chan_reserve_slice(w, iov, 1), 1);
			h_tag_make(iov[0].iov_base, a->id, seq, F40);
			CK_EQ(sluice_chan_commit(w), 0);
			break;
		}
	}
	sluice_chan_writer_close(w);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

static void doze_us(uint64_t us)
{
	uint64_t t0 = sluice__now_ns(CLOCK_MONOTONIC);

	while (sluice__now_ns(CLOCK_MONOTONIC) - t0 < us * 1000)
		;
}

/*
 * A weak reader that dozes off now and then while the writers go on.
 * With one writer, each frame's number says where it stood, so every
 * overrun is checked: the next frame read must be exactly lost() / 64
 * frames on.  With more, the whole is: frames read and frames lost add up
 * to frames written.
 */
static int weak_reader(void *p)
{
	struct weak_arg *a = p;
	struct weak_run *wr_ = a->w;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	uint64_t rng = 0x99, frames = 0, lost = 0, overruns = 0, l, expect = 0;
	uint32_t next[WRITERS_MAX] = { 0 };
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct iovec iov[BATCH];
	unsigned char buf[BATCH][64];
	unsigned int k, i;
	struct h_tag t;
	int ret;

	CK_EQ(sluice_chan_attach(wr_->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_WEAK, NULL, &r), 0);
	atomic_fetch_add(&wr_->sy->ready, 1);
	for (;;) {
		k = 1 + (unsigned int)(h_rng_next(&rng) % BATCH);
		for (i = 0; i < k; i++)
			iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		if (h_rng_next(&rng) % 2) {
			ret = sluice_chan_read(r, buf[0], sizeof(buf[0]));
			if (ret >= 0) {
				iov[0].iov_len = (size_t)ret;
				ret = 1;
			}
		} else {
			ret = sluice_chan_read_batch(r, iov, k);
		}
		if (ret == -EPIPE)
			break;
		if (ret == -EOVERFLOW) {
			l = sluice_chan_lost(r);
			CK(l > 0);
			CK_EQ(l % S40, 0);
			lost += l;
			expect += l / S40;
			overruns++;
			continue;
		}
		CK(ret >= 1 && ret <= (int)k);
		for (i = 0; i < (unsigned int)ret; i++) {
			CK_EQ(iov[i].iov_len, F40);
			CK_EQ(h_tag_check(iov[i].iov_base, F40, 0, F40, &t), 0);
			CK(t.wid < wr_->writers);
			if (wr_->writers == 1)
				CK_EQ(t.seq, expect);
			CK(t.seq >= next[t.wid]);
			next[t.wid] = t.seq + 1;
			expect++;
			frames++;
		}
		/*
		 * Doze now and then, briefly: the writers run a ring or more
		 * ahead meanwhile, and after each overrun the reader resumes
		 * right at the edge they are overwriting, where a torn frame
		 * would show.
		 */
		if (h_rng_next(&rng) % 16 == 0)
			doze_us(20 + h_rng_next(&rng) % 200);
	}
	CK_EQ(sluice_chan_lost_total(r), lost);
	/* Every frame written was read or lost, none twice. */
	CK_EQ(frames + lost / S40, (uint64_t)wr_->writers * wr_->n);
	CK_EQ(expect, (uint64_t)wr_->writers * wr_->n);
	CK(overruns > 0);
	CK(frames > 0);
	atomic_store(&wr_->sy->count[0], frames);
	atomic_store(&wr_->sy->count[1], overruns);
	sluice_chan_reader_close(r);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

/* A strong reader alongside: it must see every frame. */
static int weak_run_strong_reader(void *p)
{
	struct weak_arg *a = p;
	struct weak_run *wr_ = a->w;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	uint32_t next[WRITERS_MAX] = { 0 };
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	unsigned char b[64];
	unsigned int w;
	struct h_tag t;
	int ret;

	CK_EQ(sluice_chan_attach(wr_->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), 0);
	atomic_fetch_add(&wr_->sy->ready, 1);
	while ((ret = sluice_chan_read(r, b, sizeof(b))) != -EPIPE) {
		CK_EQ(ret, F40);
		CK_EQ(h_tag_check(b, F40, 0, F40, &t), 0);
		CK(t.wid < wr_->writers);
		CK_EQ(t.seq, next[t.wid]);
		next[t.wid]++;
	}
	for (w = 0; w < wr_->writers; w++)
		CK_EQ(next[w], wr_->n);
	sluice_chan_reader_close(r);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

static void run_weak(struct h_fx *f, unsigned int writers, unsigned int strong,
		     enum sluice_chan_policy policy)
{
	struct weak_run wr_ = {
		.r = f->r, .sy = h_sync_of(f->r), .writers = writers, .strong = strong,
		.n = WEAK_N / writers, .policy = policy,
	};
	struct weak_arg args[8];
	struct h_side sides[8];
	struct sluice_chan *ch;
	unsigned int k, n = 0;
	int64_t t0, ms;

	assert_non_null(wr_.sy);
	ch = mk(f, CAP, policy, NULL);
	args[n] = (struct weak_arg){ &wr_, 0 };
	sides[n] = (struct h_side){ weak_reader, &args[n] };
	n++;
	for (k = 0; k < strong; k++, n++) {
		args[n] = (struct weak_arg){ &wr_, k };
		sides[n] = (struct h_side){ weak_run_strong_reader, &args[n] };
	}
	for (k = 0; k < writers; k++, n++) {
		args[n] = (struct weak_arg){ &wr_, k };
		sides[n] = (struct h_side){ weak_writer, &args[n] };
	}
	t0 = h_now_ms();
	h_run_sides(sides, n, CHILD_TIMEOUT);
	ms = h_now_ms() - t0;
	print_message("    %u frames in %" PRId64 " ms: the weak reader read %" PRIu64
		      " and was overrun %" PRIu64 " times\n", writers * wr_.n, ms,
		      atomic_load(&wr_.sy->count[0]), atomic_load(&wr_.sy->count[1]));
	assert_int_equal(info_of(ch).tail, (uint64_t)writers * wr_.n * S40);
	cshut(ch);
}

static void test_a_dozing_weak_reader_never_sees_a_torn_frame_and_counts_each_loss(void **state)
{
	run_weak(*state, 1, 0, SLUICE_CHAN_OVERWRITE);
}

static void test_a_dozing_weak_reader_beside_a_strong_one_counts_each_loss(void **state)
{
	run_weak(*state, 1, 1, SLUICE_CHAN_BLOCK);
}

static void test_a_dozing_weak_reader_of_two_writers_accounts_for_every_byte(void **state)
{
	run_weak(*state, 2, 1, SLUICE_CHAN_BLOCK);
}

/* ---------------------------------------------------------------- joining, concurrent */

struct joining {
	struct sluice_region *r;
	struct h_sync *sy;
	uint32_t na;		/* frames of writer 0, open throughout */
	uint32_t rounds, per;	/* writer 1: rounds of @per frames */
};

#define JOIN_MAX	200	/* longest frame */

/* Writer 0: strong, open from the start until writer 1 is done. */
static int join_writer_a(void *p)
{
	struct joining *j = p;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan_writer *w;
	struct sluice_chan *ch;
	unsigned char b[JOIN_MAX];
	uint32_t seq;
	size_t len;

	CK_EQ(h_wait_for(&j->sy->ready, 1, 10000), 0);
	CK_EQ(sluice_chan_attach(j->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
	atomic_store(&j->sy->wopen, 1);
	for (seq = 0; seq < j->na; seq++) {
		len = h_tag_len(0, seq, JOIN_MAX);
		h_tag_make(b, 0, seq, len);
		CK_EQ(sluice_chan_write(w, b, len), 0);
		/* Frames below this are committed: a reader opening now is past them. */
		atomic_store_explicit(&j->sy->last[0], seq + 1, memory_order_release);
	}
	/*
	 * Closing first would drain the channel under writer 1, and the
	 * reader that comes and goes must have come a few times.
	 */
	CK_EQ(h_wait_for(&j->sy->done, 1, 30000), 0);
	CK_EQ(h_wait_for(&j->sy->stage, 3, 30000), 0);
	sluice_chan_writer_close(w);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

/* Writer 1: opens (strong, then weak, ...), writes a while, closes, again. */
static int join_writer_b(void *p)
{
	struct joining *j = p;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan_writer *w;
	struct sluice_chan *ch;
	unsigned char b[JOIN_MAX];
	uint32_t seq = 0, round, i;
	size_t len;

	CK_EQ(h_wait_for(&j->sy->wopen, 1, 10000), 0);
	CK_EQ(sluice_chan_attach(j->r, "c", &o, &ch), 0);
	for (round = 0; round < j->rounds; round++) {
		CK_EQ(sluice_chan_writer_open(ch, round % 2 ? SLUICE_CHAN_WEAK :
					      SLUICE_CHAN_STRONG, NULL, &w), 0);
		for (i = 0; i < j->per; i++, seq++) {
			len = h_tag_len(1, seq, JOIN_MAX);
			h_tag_make(b, 1, seq, len);
			CK_EQ(sluice_chan_write(w, b, len), 0);
		}
		sluice_chan_writer_close(w);
		h_sleep_ms(round % 3);
	}
	atomic_store(&j->sy->done, 1);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

/* The reader there from the start: every frame of both, in order. */
static int join_reader_all(void *p)
{
	struct joining *j = p;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	uint32_t next[2] = { 0 };
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	unsigned char b[JOIN_MAX];
	struct h_tag t;
	int ret;

	CK_EQ(sluice_chan_attach(j->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), 0);
	atomic_store(&j->sy->ready, 1);
	while ((ret = sluice_chan_read(r, b, sizeof(b))) != -EPIPE) {
		CK(ret >= 0);
		CK_EQ(h_tag_check(b, (size_t)ret, JOIN_MAX, 0, &t), 0);
		CK(t.wid < 2);
		CK_EQ(t.seq, next[t.wid]);
		next[t.wid]++;
	}
	CK_EQ(next[0], j->na);
	CK_EQ(next[1], j->rounds * j->per);
	sluice_chan_reader_close(r);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

/*
 * A reader that comes and goes, strong and weak by turns, until the end
 * of the channel.  Opening, it starts after the newest committed slice:
 * never at a frame of writer 0 committed before it opened.  Strong, it
 * sees each writer's frames without a gap from there on.
 */
static int join_reader_comes_and_goes(void *p)
{
	struct joining *j = p;
	/* A round also ends when nothing comes for a while. */
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 100 * MS);
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	unsigned char b[JOIN_MAX];
	uint32_t next[2], round, i;
	bool seen[2], weak, end = false;
	uint64_t before;
	struct h_tag t;
	int ret;

	CK_EQ(h_wait_for(&j->sy->wopen, 1, 10000), 0);
	CK_EQ(sluice_chan_attach(j->r, "c", &o, &ch), 0);
	for (round = 0; !end; round++) {
		weak = round % 2;
		before = atomic_load_explicit(&j->sy->last[0], memory_order_acquire);
		CK_EQ(sluice_chan_reader_open(ch, weak ? SLUICE_CHAN_WEAK :
					      SLUICE_CHAN_STRONG, NULL, &r), 0);
		seen[0] = seen[1] = false;
		for (i = 0; i < 300; i++) {
			ret = sluice_chan_read(r, b, sizeof(b));
			if (ret == -EPIPE) {
				end = true;
				break;
			}
			if (ret == -ETIMEDOUT)
				break;
			if (ret == -EOVERFLOW && weak) {
				seen[0] = seen[1] = false;
				continue;
			}
			CK(ret >= 0);
			CK_EQ(h_tag_check(b, (size_t)ret, JOIN_MAX, 0, &t), 0);
			CK(t.wid < 2);
			if (t.wid == 0)
				CK(t.seq >= before);
			if (seen[t.wid] && !weak)
				CK_EQ(t.seq, next[t.wid]);
			else if (seen[t.wid])
				CK(t.seq >= next[t.wid]);
			seen[t.wid] = true;
			next[t.wid] = t.seq + 1;
		}
		sluice_chan_reader_close(r);
		atomic_fetch_add(&j->sy->stage, 1);
	}
	CK(round >= 3);
	atomic_store(&j->sy->count[0], round);
	CK_EQ(sluice_chan_close(ch), 0);
	return 0;
}

static void test_readers_and_writers_come_and_go_while_frames_flow(void **state)
{
	struct h_fx *f = *state;
	struct joining j = {
		.r = f->r, .sy = h_sync_of(f->r), .na = JOIN_N,
		.rounds = 40, .per = JOIN_N / 80,
	};
	struct h_side sides[4] = {
		{ join_reader_all, &j }, { join_writer_a, &j },
		{ join_writer_b, &j }, { join_reader_comes_and_goes, &j },
	};
	struct sluice_chan *ch;
	struct sluice_chan_info i;
	int64_t t0;

	assert_non_null(j.sy);
	ch = mk(f, 16384, SLUICE_CHAN_BLOCK, NULL);
	t0 = h_now_ms();
	h_run_sides(sides, 4, CHILD_TIMEOUT);
	print_message("    %u + %u frames in %" PRId64 " ms; a reader came and went %"
		      PRIu64 " times\n", j.na, j.rounds * j.per, h_now_ms() - t0,
		      atomic_load(&j.sy->count[0]));
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.strong_readers + i.weak_readers, 0);
	assert_int_equal(i.strong_writers, 0);
	cshut(ch);
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, chan_setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* many processes */
		T(test_many_writers_and_readers_see_every_frame_once_in_order),
		T(test_many_to_many_through_a_small_ring_while_sleeping),
		T(test_a_dozing_weak_reader_never_sees_a_torn_frame_and_counts_each_loss),
		T(test_a_dozing_weak_reader_beside_a_strong_one_counts_each_loss),
		T(test_a_dozing_weak_reader_of_two_writers_accounts_for_every_byte),
		T(test_readers_and_writers_come_and_go_while_frames_flow),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("chan_many", tests, NULL, NULL);
}
