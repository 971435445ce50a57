/* SPDX-License-Identifier: MIT */
/*
 * The channel test programs' fixture: handles opened for a test (and
 * closed for it if an assert fails), frames written and read back whole,
 * the channel's shared memory found the way any process would, and
 * threads that act while a call waits.
 *
 * Included by the test_chan*.c programs only.  Its functions are static
 * inline so that each program carries just what it uses, and the other
 * test programs (which link every object of tests-common-y) none of it.
 */
#ifndef SLUICE_TESTS_CHAN_FIXTURE_H
#define SLUICE_TESTS_CHAN_FIXTURE_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sluice/cancel.h>
#include <sluice/chan.h>

#include "chan_layout.h"
#include "frames.h"
#include "harness.h"
#include "internal.h"

#define MIB		(1024ul * 1024)
#define REGION_SIZE	(16 * MIB)
#define CHILD_TIMEOUT	60	/* seconds before a hung side is killed */
#define MS		1000000ull	/* nanoseconds */
#define BATCH		8	/* frames in a batch of the concurrent tests, at most */
#define CAP		4096ull	/* the smallest channel */
/* A 40-byte frame alone in its slice takes 64 bytes, 64 slices a ring. */
#define F40		40u
#define S40		64u

#define NEED_PROCESSES							\
	"needs a process to kill: under ThreadSanitizer sides are threads"

/* ---------------------------------------------------------------- fixture */

/* cmocka setup: the test's own region (see h_fx_setup()). */
static inline int chan_setup(void **state)
{
	return h_fx_setup(state, REGION_SIZE);
}

static inline void close_chan(void *ch)
{
	sluice_chan_close(ch);
}

static inline void close_writer(void *w)
{
	sluice_chan_writer_close(w);
}

static inline void close_reader(void *r)
{
	sluice_chan_reader_close(r);
}

/* A reader the test opened itself, for the teardown to close if need be. */
static inline void track_reader(struct sluice_chan_reader *r)
{
	h_track(r, close_reader);
}

/* For struct h_later: end the channel @ch one way or the other. */
static inline int terminate_it(void *ch)
{
	return sluice_chan_terminate(ch);
}

static inline int drain_it(void *ch)
{
	return sluice_chan_drain(ch);
}

/* ---------------------------------------------------------------- handles */

static inline struct sluice_chan *mk_named(struct h_fx *f, const char *obj, uint64_t cap,
					   enum sluice_chan_policy pol,
					   const struct sluice_chan_opts *o)
{
	struct sluice_chan *ch = NULL;

	assert_int_equal(sluice_chan_create(f->r, obj, cap, pol, o, &ch), 0);
	assert_non_null(ch);
	h_track(ch, close_chan);
	return ch;
}

/* Channel "c" of @cap bytes. */
static inline struct sluice_chan *mk(struct h_fx *f, uint64_t cap, enum sluice_chan_policy pol,
				     const struct sluice_chan_opts *o)
{
	return mk_named(f, "c", cap, pol, o);
}

/* Another handle on "c", as another process would open it. */
static inline struct sluice_chan *join(struct h_fx *f, const struct sluice_chan_opts *o)
{
	struct sluice_chan *ch = NULL;

	assert_int_equal(sluice_chan_attach(f->r, "c", o, &ch), 0);
	assert_non_null(ch);
	h_track(ch, close_chan);
	return ch;
}

/*
 * Endpoints, opened with either options struct (@o: NULL, struct
 * sluice_chan_end_opts, or 0.4's struct sluice_chan_opts).
 */
static inline struct sluice_chan_writer *wr(struct sluice_chan *ch, enum sluice_chan_kind k,
					    const void *o)
{
	struct sluice_chan_writer *w = NULL;

	assert_int_equal(sluice_chan_writer_open(ch, k, o, &w), 0);
	assert_non_null(w);
	h_track(w, close_writer);
	return w;
}

static inline struct sluice_chan_reader *rd(struct sluice_chan *ch, enum sluice_chan_kind k,
					    const void *o)
{
	struct sluice_chan_reader *r = NULL;

	assert_int_equal(sluice_chan_reader_open(ch, k, o, &r), 0);
	assert_non_null(r);
	h_track(r, close_reader);
	return r;
}

static inline void wshut(struct sluice_chan_writer *w)
{
	h_untrack(w);
	sluice_chan_writer_close(w);
}

static inline void rshut(struct sluice_chan_reader *r)
{
	h_untrack(r);
	sluice_chan_reader_close(r);
}

static inline void cshut(struct sluice_chan *ch)
{
	assert_int_equal(sluice_chan_close(ch), 0);
	h_untrack(ch);
}

static inline struct sluice_chan_info info_of(struct sluice_chan *ch)
{
	struct sluice_chan_info i;

	memset(&i, 0xa5, sizeof(i));
	assert_int_equal(sluice_chan_info(ch, &i), 0);
	return i;
}

/*
 * info.committed is a bound: every slice below it is committed.  It may
 * trail the newest commit (who walks it forward, and when, is the
 * library's business), but never passes a slice still outstanding.
 */
#define assert_committed_below(i, bound)				\
	do {								\
		assert_true((i).committed <= (bound));			\
		assert_true((i).committed % 16 == 0);			\
	} while (0)

/* ---------------------------------------------------------------- frames */

/* Bytes a slice of frames of these lengths takes in the ring. */
static inline uint64_t slice_of(const size_t *lens, unsigned int n)
{
	uint64_t b = CHAN_SLICE_HDR;
	unsigned int i;

	for (i = 0; i < n; i++)
		b += CHAN_FRAME_HDR + ((lens[i] + 7) & ~7ull);
	return (b + 15) & ~15ull;
}

static inline uint64_t slice1(size_t len)
{
	return slice_of(&len, 1);
}

/*
 * Where the ring's tail goes when a slice of @bytes is reserved at @pos: a
 * slice never splits at the end of the ring, so one that does not fit
 * before the end goes after a pad that fills the rest.
 */
static inline uint64_t pos_after(uint64_t pos, uint64_t bytes, uint64_t cap)
{
	uint64_t room = cap - (pos & (cap - 1));

	if (bytes > room)
		pos += room;
	return pos + bytes;
}

/* Write frame @seq of @len bytes, without waiting. */
static inline void put(struct sluice_chan_writer *w, uint64_t seq, size_t len)
{
	unsigned char *b = malloc(len + 1);

	assert_non_null(b);
	h_fill(b, seq, len);
	assert_int_equal(sluice_chan_try_write(w, b, len), 0);
	free(b);
}

/*
 * Read one frame, which must be number @seq of @len bytes, into a buffer of
 * exactly that size (so that AddressSanitizer sees a byte too many).
 */
static inline void get(struct sluice_chan_reader *r, uint64_t seq, size_t len)
{
	unsigned char *b = malloc(len ? len : 1);
	int ret;

	assert_non_null(b);
	ret = sluice_chan_try_read(r, b, len);
	if (ret != (int)len) {
		free(b);
		fail_msg("frame %" PRIu64 ": read returned %d, want %zu", seq, ret, len);
	}
	if (!h_intact(b, seq, len)) {
		free(b);
		fail_msg("frame %" PRIu64 " of %zu bytes is not what was written", seq, len);
	}
	free(b);
}

/* Nothing to read. */
static inline void none(struct sluice_chan_reader *r)
{
	unsigned char b[4096];

	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), -EAGAIN);
}

/* Somewhere to put what a test reads and does not look at. */
static unsigned char scratch[65536] __attribute__((unused));

/* Write 40-byte frame @seq: a 64-byte slice of its own. */
static inline void put40(struct sluice_chan_writer *w, uint64_t seq)
{
	put(w, seq, F40);
}

static inline void get40(struct sluice_chan_reader *r, uint64_t seq)
{
	get(r, seq, F40);
}

/* Fill the ring with 40-byte frames until a writer must wait; how many. */
static inline unsigned int fill_up(struct sluice_chan_writer *w, uint64_t first)
{
	unsigned char b[F40];
	unsigned int n = 0;
	int ret;

	for (;;) {
		h_fill(b, first + n, F40);
		ret = sluice_chan_try_write(w, b, F40);
		if (ret == -EAGAIN)
			return n;
		assert_int_equal(ret, 0);
		assert_true(++n <= 1u << 20);
	}
}

/* ---------------------------------------------------------------- layout */

/* The channel's shared memory, found the way any process would. */
struct lay {
	struct sluice_chan_hdr *h;
	_Atomic uint64_t *index;
	struct sluice_chan_rent *rent;
	struct sluice_chan_went *went;
	unsigned char *data;
	uint64_t cap;
};

/* For sides too: l.h is NULL if @obj is not a whole channel. */
static inline struct lay lay_in(struct sluice_region *r, const char *obj)
{
	struct sluice_obj_info oi;
	struct lay l = { 0 };

	if (sluice_region_find(r, obj, &oi) || oi.type != SLUICE_OBJ_CHAN)
		return l;
	l.h = sluice_region_at(r, oi.offset, oi.size);
	if (!l.h || l.h->magic != SLUICE_CHAN_MAGIC ||
	    l.h->data_off + l.h->capacity > oi.size) {
		l.h = NULL;
		return l;
	}
	l.cap = l.h->capacity;
	l.index = (_Atomic uint64_t *)((unsigned char *)l.h + l.h->index_off);
	l.rent = (struct sluice_chan_rent *)((unsigned char *)l.h + l.h->readers_off);
	l.went = (struct sluice_chan_went *)((unsigned char *)l.h + l.h->writers_off);
	l.data = (unsigned char *)l.h + l.h->data_off;
	return l;
}

static inline struct lay lay_named(struct h_fx *f, const char *obj)
{
	struct lay l = lay_in(f->r, obj);

	assert_non_null(l.h);
	return l;
}

static inline struct lay lay_of(struct h_fx *f)
{
	return lay_named(f, "c");
}

static inline struct sluice_chan_slice *slice_at(const struct lay *l, uint64_t pos)
{
	return (struct sluice_chan_slice *)(l->data + (pos & (l->cap - 1)));
}

/* The first frame header of the slice at @pos. */
static inline struct sluice_chan_frame *frame_at(const struct lay *l, uint64_t pos)
{
	return (struct sluice_chan_frame *)(l->data + ((pos + CHAN_SLICE_HDR) & (l->cap - 1)));
}

/* The reader table entry this process holds (the test holds one). */
static inline struct sluice_chan_rent *my_rent(const struct lay *l)
{
	uint32_t i;
	uint64_t o;

	for (i = 0; i < l->h->readers_max; i++) {
		o = atomic_load(&l->rent[i].owner);
		if (o && CHAN_OWNER_PID(o) == getpid())
			return &l->rent[i];
	}
	fail_msg("no reader entry of this process");
	return NULL;
}

/* ---------------------------------------------------------------- threads */

/* A reader thread: read frames until an error or @max of them. */
struct rloop {
	struct sluice_chan_reader *r;
	unsigned int max;
	_Atomic unsigned int n;
	uint64_t seq[16];
	size_t len[16];
	int err;		/* what ended it; 0 when @max were read */
	pthread_t t;
};

static inline void *rloop_fn(void *p)
{
	struct rloop *l = p;
	unsigned char buf[4096];
	unsigned int n;
	uint64_t seq;
	int ret;

	l->err = 0;
	for (n = 0; n < l->max && n < SLUICE_ARRAY_SIZE(l->seq); n++) {
		ret = sluice_chan_read(l->r, buf, sizeof(buf));
		if (ret < 0) {
			l->err = ret;
			break;
		}
		seq = 0;
		memcpy(&seq, buf, ret < 8 ? (size_t)ret : 8);
		l->seq[n] = h_intact(buf, seq, (size_t)ret) ? seq : ~0ull;
		l->len[n] = (size_t)ret;
		atomic_store_explicit(&l->n, n + 1, memory_order_release);
	}
	return NULL;
}

static inline void rloop_start(struct rloop *l, struct sluice_chan_reader *r, unsigned int max)
{
	memset(l, 0, sizeof(*l));
	l->r = r;
	l->max = max;
	assert_int_equal(pthread_create(&l->t, NULL, rloop_fn, l), 0);
}

static inline unsigned int rloop_count(struct rloop *l)
{
	return atomic_load_explicit(&l->n, memory_order_acquire);
}

/*
 * A guard for a call that might never return: it triggers @tok after
 * @ms unless stopped first, so that such a call fails its test (with
 * -ECANCELED, which no test here expects) instead of hanging it.
 */
struct guard {
	struct sluice_cancel *tok;
	unsigned int ms;
	_Atomic bool done;
	pthread_t t;
};

static inline void *guard_fn(void *p)
{
	struct guard *g = p;
	int64_t t0 = h_now_ms();

	while (!atomic_load(&g->done) && h_now_ms() - t0 < g->ms)
		h_sleep_ms(5);
	if (!atomic_load(&g->done))
		sluice_cancel_trigger(g->tok, 0);	/* -ECANCELED */
	return NULL;
}

static inline struct sluice_cancel *guard_start(struct guard *g, unsigned int ms)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(sluice_cancel_create(NULL, &g->tok), 0);
	g->ms = ms;
	assert_int_equal(pthread_create(&g->t, NULL, guard_fn, g), 0);
	return g->tok;
}

static inline void guard_stop(struct guard *g)
{
	atomic_store(&g->done, true);
	assert_int_equal(pthread_join(g->t, NULL), 0);
	sluice_cancel_destroy(g->tok);
}

#endif /* SLUICE_TESTS_CHAN_FIXTURE_H */
