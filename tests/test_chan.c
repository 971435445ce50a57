// SPDX-License-Identifier: MIT
/*
 * Channels: every promise of include/sluice/chan.h, with real shared memory
 * and, for everything concurrent, real processes: many writers and many
 * readers at once, readers and writers that come and go mid-stream, weak
 * readers that fall behind on purpose, and processes killed half way
 * through a slice.
 *
 * Under ThreadSanitizer the processes become threads of one process (TSan
 * does not follow fork well); run_sides() hides the difference.  The tests
 * that kill a process need a process to kill and skip under TSan, saying
 * so.  Frame counts shrink under the sanitizers.
 *
 * Every frame of the concurrent tests names its writer and its number in
 * that writer's sequence, its length follows from those two numbers, and
 * it carries a checksum of its bytes: a frame lost, repeated, reordered,
 * torn or cut short fails the test.  Weak readers account for every byte
 * they skip: what they read plus what sluice_chan_lost() says they lost
 * must be exactly what was written.
 *
 * Corruption is done the way a buggy or hostile peer would: by writing into
 * the channel's shared memory, located with sluice_region_find() and the
 * layout in chan_layout.h.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests;
 * SLUICE_TEST_FUZZ_ROUNDS and SLUICE_TEST_FUZZ_SEED make the garbage test
 * run longer or differently.
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
#include <sys/mman.h>
#include <sys/uio.h>

#include <sluice/cancel.h>
#include <sluice/chan.h>
#include <sluice/spsc.h>

#include "chan_layout.h"
#include "harness.h"
#include "internal.h"
#include "testpoint.h"

/* ---------------------------------------------------------------- build */

#if defined(H_TSAN)
#define SIDES_ARE_THREADS	1
#define STREAM_N	3000u	/* frames per writer, many-to-many */
#define WEAK_N		20000u	/* frames per writer, weak readers */
#define JOIN_N		4000u	/* frames of the writer that stays */
#define FUZZ_ROUNDS	40u
#elif defined(H_ASAN)
#define SIDES_ARE_THREADS	0
#define STREAM_N	20000u
#define WEAK_N		100000u
#define JOIN_N		20000u
#define FUZZ_ROUNDS	100u
#else
#define SIDES_ARE_THREADS	0
#define STREAM_N	200000u
#define WEAK_N		400000u
#define JOIN_N		100000u
#define FUZZ_ROUNDS	300u
#endif

#define MIB		(1024ul * 1024)
#define REGION_SIZE	(16 * MIB)
#define CHILD_TIMEOUT	60	/* seconds before a hung side is killed */
#define MS		1000000ull	/* nanoseconds */
#define BATCH		8
#define CAP		4096ull	/* the smallest channel */
/* A 40-byte frame alone in its slice takes 64 bytes, 64 slices a ring. */
#define F40		40u
#define S40		64u

/* ---------------------------------------------------------------- fixture */

enum h_type { H_CHAN = 1, H_WRITER, H_READER };

/* Handles the test body opened and has not closed yet. */
static struct {
	enum h_type type;
	void *p;
} opened[64];

static void track(enum h_type type, void *p)
{
	unsigned int i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(opened); i++) {
		if (!opened[i].p) {
			opened[i].type = type;
			opened[i].p = p;
			return;
		}
	}
	fail_msg("more than %zu handles open", SLUICE_ARRAY_SIZE(opened));
}

static void untrack(void *p)
{
	unsigned int i;

	for (i = 0; p && i < SLUICE_ARRAY_SIZE(opened); i++)
		if (opened[i].p == p)
			opened[i].p = NULL;
}

/* Close what an assert left open, endpoints before their channels. */
static void close_all(void)
{
	enum h_type order[] = { H_READER, H_WRITER, H_CHAN };
	unsigned int i, k;

	for (k = 0; k < SLUICE_ARRAY_SIZE(order); k++) {
		for (i = 0; i < SLUICE_ARRAY_SIZE(opened); i++) {
			if (!opened[i].p || opened[i].type != order[k])
				continue;
			if (order[k] == H_READER)
				sluice_chan_reader_close(opened[i].p);
			else if (order[k] == H_WRITER)
				sluice_chan_writer_close(opened[i].p);
			else
				sluice_chan_close(opened[i].p);
			opened[i].p = NULL;
		}
	}
}

struct fx {
	char name[H_NAME_SZ];
	struct sluice_region *r;
};

/*
 * What the sides of a concurrent test tell each other outside the
 * channel, in a raw object of every test's region: who is ready, how far
 * a writer got, what a side counted.
 */
struct sync {
	_Atomic uint32_t ready;		/* readers open */
	_Atomic uint32_t wopen;		/* writers open */
	_Atomic uint32_t stage;
	_Atomic uint32_t done;
	_Atomic uint64_t last[4];	/* a writer's frames below this are committed */
	_Atomic uint64_t count[16];	/* what a side counted, for the report */
};

static int setup(void **state)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_NO_HUGE);
	struct fx *f = calloc(1, sizeof(*f));
	uint64_t off;

	if (!f)
		return -1;
	h_name(f->name);
	if (sluice_region_create(f->name, REGION_SIZE, &opts, &f->r)) {
		free(f);
		return -1;
	}
	if (sluice_region_alloc(f->r, "sync", SLUICE_OBJ_RAW, sizeof(struct sync), 64, &off)) {
		sluice_region_destroy(f->r);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	/* A test point a failed test left set must not act in the next. */
	sluice__tp_hook = NULL;
	close_all();
	if (f) {
		sluice_region_destroy(f->r);
		free(f);
	}
	h_unlink_all();
	return 0;
}

static struct sync *sync_of(struct sluice_region *r)
{
	struct sluice_obj_info info;

	if (sluice_region_find(r, "sync", &info))
		return NULL;
	return sluice_region_at(r, info.offset, sizeof(struct sync));
}

/* ---------------------------------------------------------------- handles */

static struct sluice_chan *mk_named(struct fx *f, const char *obj, uint64_t cap,
				    enum sluice_chan_policy pol,
				    const struct sluice_chan_opts *o)
{
	struct sluice_chan *ch = NULL;

	assert_int_equal(sluice_chan_create(f->r, obj, cap, pol, o, &ch), 0);
	assert_non_null(ch);
	track(H_CHAN, ch);
	return ch;
}

/* Channel "c" of @cap bytes. */
static struct sluice_chan *mk(struct fx *f, uint64_t cap, enum sluice_chan_policy pol,
			      const struct sluice_chan_opts *o)
{
	return mk_named(f, "c", cap, pol, o);
}

/* Another handle on "c", as another process would open it. */
static struct sluice_chan *join(struct fx *f, const struct sluice_chan_opts *o)
{
	struct sluice_chan *ch = NULL;

	assert_int_equal(sluice_chan_attach(f->r, "c", o, &ch), 0);
	assert_non_null(ch);
	track(H_CHAN, ch);
	return ch;
}

/*
 * Endpoints, opened with either options struct (@o: NULL, struct
 * sluice_chan_end_opts, or 0.4's struct sluice_chan_opts).
 */
static struct sluice_chan_writer *wr(struct sluice_chan *ch, enum sluice_chan_kind k,
				     const void *o)
{
	struct sluice_chan_writer *w = NULL;

	assert_int_equal(sluice_chan_writer_open(ch, k, o, &w), 0);
	assert_non_null(w);
	track(H_WRITER, w);
	return w;
}

static struct sluice_chan_reader *rd(struct sluice_chan *ch, enum sluice_chan_kind k,
				     const void *o)
{
	struct sluice_chan_reader *r = NULL;

	assert_int_equal(sluice_chan_reader_open(ch, k, o, &r), 0);
	assert_non_null(r);
	track(H_READER, r);
	return r;
}

static void wshut(struct sluice_chan_writer *w)
{
	untrack(w);
	sluice_chan_writer_close(w);
}

static void rshut(struct sluice_chan_reader *r)
{
	untrack(r);
	sluice_chan_reader_close(r);
}

static void cshut(struct sluice_chan *ch)
{
	assert_int_equal(sluice_chan_close(ch), 0);
	untrack(ch);
}

static struct sluice_chan_info info_of(struct sluice_chan *ch)
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

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * The bytes frame @seq carries: its number first, then words that differ
 * from every other frame's and from each other.
 */
static void fill(unsigned char *b, uint64_t seq, size_t len)
{
	uint64_t w, k = mix(seq) | 1;
	size_t i;

	for (i = 0; i < len; i += 8) {
		w = i ? k * (i + 1) : seq;
		memcpy(b + i, &w, len - i < 8 ? len - i : 8);
	}
}

static bool intact(const unsigned char *b, uint64_t seq, size_t len)
{
	uint64_t w, k = mix(seq) | 1;
	size_t i;

	for (i = 0; i < len; i += 8) {
		w = i ? k * (i + 1) : seq;
		if (memcmp(b + i, &w, len - i < 8 ? len - i : 8))
			return false;
	}
	return true;
}

/* Bytes a slice of frames of these lengths takes in the ring. */
static uint64_t slice_of(const size_t *lens, unsigned int n)
{
	uint64_t b = CHAN_SLICE_HDR;
	unsigned int i;

	for (i = 0; i < n; i++)
		b += CHAN_FRAME_HDR + ((lens[i] + 7) & ~7ull);
	return (b + 15) & ~15ull;
}

static uint64_t slice1(size_t len)
{
	return slice_of(&len, 1);
}

/*
 * Where the ring's tail goes when a slice of @bytes is reserved at @pos: a
 * slice never splits at the end of the ring, so one that does not fit
 * before the end goes after a pad that fills the rest.
 */
static uint64_t pos_after(uint64_t pos, uint64_t bytes, uint64_t cap)
{
	uint64_t room = cap - (pos & (cap - 1));

	if (bytes > room)
		pos += room;
	return pos + bytes;
}

/* Write frame @seq of @len bytes, without waiting. */
static void put(struct sluice_chan_writer *w, uint64_t seq, size_t len)
{
	unsigned char *b = malloc(len + 1);

	assert_non_null(b);
	fill(b, seq, len);
	assert_int_equal(sluice_chan_try_write(w, b, len), 0);
	free(b);
}

/*
 * Read one frame, which must be number @seq of @len bytes, into a buffer of
 * exactly that size (so that AddressSanitizer sees a byte too many).
 */
static void get(struct sluice_chan_reader *r, uint64_t seq, size_t len)
{
	unsigned char *b = malloc(len ? len : 1);
	int ret;

	assert_non_null(b);
	ret = sluice_chan_try_read(r, b, len);
	if (ret != (int)len) {
		free(b);
		fail_msg("frame %" PRIu64 ": read returned %d, want %zu", seq, ret, len);
	}
	if (!intact(b, seq, len)) {
		free(b);
		fail_msg("frame %" PRIu64 " of %zu bytes is not what was written", seq, len);
	}
	free(b);
}

/* Nothing to read. */
static void none(struct sluice_chan_reader *r)
{
	unsigned char b[4096];

	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), -EAGAIN);
}

/* Somewhere to put what a test reads and does not look at. */
static unsigned char scratch[65536];

static void assert_took(int64_t t0, int64_t at_least_ms, int64_t below_ms)
{
	int64_t ms = h_now_ms() - t0;

	if (ms < at_least_ms || ms >= below_ms)
		fail_msg("took %" PRId64 " ms, want [%" PRId64 ", %" PRId64 ")",
			 ms, at_least_ms, below_ms);
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
static struct lay lay_in(struct sluice_region *r, const char *obj)
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

static struct lay lay_named(struct fx *f, const char *obj)
{
	struct lay l = lay_in(f->r, obj);

	assert_non_null(l.h);
	return l;
}

static struct lay lay_of(struct fx *f)
{
	return lay_named(f, "c");
}

static struct sluice_chan_slice *slice_at(const struct lay *l, uint64_t pos)
{
	return (struct sluice_chan_slice *)(l->data + (pos & (l->cap - 1)));
}

/* The first frame header of the slice at @pos. */
static struct sluice_chan_frame *frame_at(const struct lay *l, uint64_t pos)
{
	return (struct sluice_chan_frame *)(l->data + ((pos + CHAN_SLICE_HDR) & (l->cap - 1)));
}

/* The reader table entry this process holds (the test holds one). */
static struct sluice_chan_rent *my_rent(const struct lay *l)
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

static uint64_t config_csum(const struct sluice_chan_hdr *h)
{
	return sluice__fnv1a((const unsigned char *)h + CHAN_CSUM_FROM,
			     CHAN_CSUM_TO - CHAN_CSUM_FROM);
}

/* ---------------------------------------------------------------- sides */

struct side {
	int (*fn)(void *arg);
	void *arg;
};

#if SIDES_ARE_THREADS
struct job {
	int (*fn)(void *arg);
	void *arg;
	int ret;
	pthread_t thread;
};

static void *job_thread(void *p)
{
	struct job *j = p;

	j->ret = j->fn(j->arg);
	return NULL;
}
#endif

/*
 * Run every side at once, each in a process of its own (or a thread under
 * TSan), and fail unless all of them return 0 within @timeout_s.
 */
static void run_sides(const struct side *s, unsigned int n, unsigned int timeout_s)
{
#if SIDES_ARE_THREADS
	struct job *j[16];
	struct timespec dl;
	unsigned int i;
	bool late = false;
	int ret[16];

	assert_true(n <= SLUICE_ARRAY_SIZE(j));
	for (i = 0; i < n; i++) {
		j[i] = calloc(1, sizeof(*j[i]));
		assert_non_null(j[i]);
		j[i]->fn = s[i].fn;
		j[i]->arg = s[i].arg;
		j[i]->ret = -1;
		assert_int_equal(pthread_create(&j[i]->thread, NULL, job_thread, j[i]), 0);
	}
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_s;
	for (i = 0; i < n; i++) {
		/* Still running at the deadline: stuck for good, leaked. */
		if (pthread_timedjoin_np(j[i]->thread, NULL, &dl)) {
			pthread_detach(j[i]->thread);
			late = true;
			ret[i] = -ETIMEDOUT;
			continue;
		}
		ret[i] = j[i]->ret;
		free(j[i]);
	}
	if (late)
		fail_msg("a side did not finish in %u s", timeout_s);
	for (i = 0; i < n; i++)
		if (ret[i])
			fail_msg("side %u returned %d", i, ret[i]);
#else
	int pid[16], st[16];
	unsigned int i;

	assert_true(n <= SLUICE_ARRAY_SIZE(pid));
	for (i = 0; i < n; i++) {
		pid[i] = h_spawn(s[i].fn, s[i].arg, timeout_s);
		if (pid[i] < 0) {
			int err = pid[i];

			while (i--) {
				kill(pid[i], SIGKILL);
				h_wait(pid[i]);
			}
			fail_msg("fork: %s", strerror(-err));
		}
	}
	/* All reaped before judging: no side may outlive its test. */
	for (i = 0; i < n; i++)
		st[i] = h_wait(pid[i]);
	for (i = 0; i < n; i++)
		if (st[i])
			fail_msg("side %u exited with %d", i, st[i]);
#endif
}

/* Wait until *@v is at least @want; 0, or -ETIMEDOUT after @ms. */
static int wait_for(_Atomic uint32_t *v, uint32_t want, int64_t ms)
{
	int64_t t0 = h_now_ms();

	while (atomic_load_explicit(v, memory_order_acquire) < want) {
		if (h_now_ms() - t0 > ms)
			return -ETIMEDOUT;
		h_sleep_ms(1);
	}
	return 0;
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

static void *rloop_fn(void *p)
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
		l->seq[n] = intact(buf, seq, (size_t)ret) ? seq : ~0ull;
		l->len[n] = (size_t)ret;
		atomic_store_explicit(&l->n, n + 1, memory_order_release);
	}
	return NULL;
}

static void rloop_start(struct rloop *l, struct sluice_chan_reader *r, unsigned int max)
{
	memset(l, 0, sizeof(*l));
	l->r = r;
	l->max = max;
	assert_int_equal(pthread_create(&l->t, NULL, rloop_fn, l), 0);
}

static unsigned int rloop_count(struct rloop *l)
{
	return atomic_load_explicit(&l->n, memory_order_acquire);
}

/* Something done to a channel from another thread, @ms from now. */
struct later {
	int (*fn)(struct sluice_chan *ch);
	struct sluice_chan *ch;
	struct sluice_cancel *tok;
	int reason;
	unsigned int ms;
	int ret;
	pthread_t t;
};

static void *later_fn(void *p)
{
	struct later *l = p;

	h_sleep_ms(l->ms);
	if (l->tok)
		l->ret = sluice_cancel_trigger(l->tok, l->reason);
	else
		l->ret = l->fn(l->ch);
	return NULL;
}

static void later_start(struct later *l)
{
	assert_int_equal(pthread_create(&l->t, NULL, later_fn, l), 0);
}

static void later_join(struct later *l)
{
	assert_int_equal(pthread_join(l->t, NULL), 0);
	assert_int_equal(l->ret, 0);
}

/* Fill the ring with 40-byte frames until a writer must wait; how many. */
static unsigned int fill_up(struct sluice_chan_writer *w, uint64_t first)
{
	unsigned char b[F40];
	unsigned int n = 0;
	int ret;

	for (;;) {
		fill(b, first + n, F40);
		ret = sluice_chan_try_write(w, b, F40);
		if (ret == -EAGAIN)
			return n;
		assert_int_equal(ret, 0);
		assert_true(++n <= 1u << 20);
	}
}

/* ---------------------------------------------------------------- create, attach */

static void test_create_and_attach_by_name_share_one_channel(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch, *ch2, *x = NULL;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info a, b;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	ch2 = join(f, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch2, SLUICE_CHAN_STRONG, NULL);
	put(w, 1, 100);
	get(r, 1, 100);
	/* One channel: both handles see the same shared state. */
	a = info_of(ch);
	b = info_of(ch2);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(a.capacity, CAP);
	assert_int_equal(a.strong_writers, 1);
	assert_int_equal(a.strong_readers, 1);
	assert_int_equal(a.tail, slice1(100));
	assert_int_equal(sluice_chan_frame_max(ch2), CAP / 2 - 24);
	/* The name is taken; another name is not there. */
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, SLUICE_CHAN_BLOCK, NULL, &x), -EEXIST);
	assert_int_equal(sluice_chan_attach(f->r, "nope", NULL, &x), -ENOENT);
	assert_null(x);
	rshut(r);
	wshut(w);
	cshut(ch2);
	cshut(ch);
}

static void test_close_refuses_a_channel_with_open_endpoints(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_close(ch), -EBUSY);
	/* Nothing was freed: the endpoints still work. */
	put(w, 3, 30);
	get(r, 3, 30);
	wshut(w);
	assert_int_equal(sluice_chan_close(ch), -EBUSY);
	rshut(r);
	cshut(ch);
	assert_int_equal(sluice_chan_close(NULL), 0);
	sluice_chan_writer_close(NULL);
	sluice_chan_reader_close(NULL);
}

static void test_create_rejects_bad_arguments(void **state)
{
	struct fx *f = *state;
	static const uint64_t bad_caps[] = {
		0, 1, 2048, CAP - 1, CAP + 1, 3 * CAP, CAP * 5,
		SLUICE_CHAN_CAPACITY_MAX * 2, SLUICE_CHAN_CAPACITY_MAX + CAP,
		1ull << 40, UINT64_MAX,
	};
	SLUICE_OPTS(sluice_chan_opts, flags, .flags = 1);
	SLUICE_OPTS(sluice_chan_opts, rmax, .readers_max = SLUICE_CHAN_ENDS_MAX + 1);
	SLUICE_OPTS(sluice_chan_opts, wmax, .writers_max = SLUICE_CHAN_ENDS_MAX + 1);
	SLUICE_OPTS(sluice_chan_opts, ok, .readers_max = SLUICE_CHAN_ENDS_MAX, .writers_max = 1);
	struct sluice_chan_opts tiny = { .sz = 4 };
	struct {
		struct sluice_chan_opts o;
		uint64_t future;
	} newer = { .o = { .sz = sizeof(newer) }, .future = 1 };
	const enum sluice_chan_policy B = SLUICE_CHAN_BLOCK;
	struct sluice_obj_info oi;
	struct sluice_chan *ch = NULL;
	struct sluice_chan_info i;
	unsigned int k;

	for (k = 0; k < SLUICE_ARRAY_SIZE(bad_caps); k++)
		if (sluice_chan_create(f->r, "c", bad_caps[k], B, NULL, &ch) != -EINVAL)
			fail_msg("capacity %" PRIu64 " was not -EINVAL", bad_caps[k]);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, 2, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, (enum sluice_chan_policy)-1, NULL, &ch),
			 -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &flags, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &rmax, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &wmax, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &tiny, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &newer.o, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(NULL, "c", CAP, B, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, NULL, CAP, B, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "bad/name", CAP, B, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "0123456789012345678901234567890123456789",
					    CAP, B, NULL, &ch), -ENAMETOOLONG);
	/* Good arguments, but a gibibyte does not fit a 16 MiB region. */
	assert_int_equal(sluice_chan_create(f->r, "c", SLUICE_CHAN_CAPACITY_MAX, B, NULL, &ch), -ENOSPC);
	assert_null(ch);
	/* None of them left anything behind. */
	assert_int_equal(sluice_region_find(f->r, "c", &oi), -ENOENT);
	/* A newer caller's zero tail is fine; so are the extreme table sizes. */
	newer.future = 0;
	ch = mk(f, CAP, SLUICE_CHAN_OVERWRITE, &newer.o);
	cshut(ch);
	ch = mk_named(f, "d", CAP * 2, B, &ok);
	i = info_of(ch);
	assert_int_equal(i.capacity, CAP * 2);
	assert_int_equal(i.readers_max, SLUICE_CHAN_ENDS_MAX);
	assert_int_equal(i.writers_max, 1);
	cshut(ch);
}

static void test_endpoint_opens_reject_bad_arguments(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, flags, .flags = 1);
	SLUICE_OPTS(sluice_chan_opts, rmax, .readers_max = 1);
	SLUICE_OPTS(sluice_chan_opts, wmax, .writers_max = 1);
	const enum sluice_chan_kind S = SLUICE_CHAN_STRONG;
	struct sluice_chan_writer *w = NULL;
	struct sluice_chan_reader *r = NULL;
	struct sluice_chan *ch, *ov;
	struct sluice_chan_info i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	assert_int_equal(sluice_chan_writer_open(NULL, S, NULL, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, 0, NULL, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, 3, NULL, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, &flags, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, &rmax, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, &wmax, &w), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(NULL, S, NULL, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, 0, NULL, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, 3, NULL, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, &flags, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, &rmax, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, &wmax, &r), -EINVAL);
	assert_null(w);
	assert_null(r);
	/* None of that took a place in a table. */
	i = info_of(ch);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(i.weak_readers, 0);

	/* Nobody holds writers back on an overwriting channel. */
	ov = mk_named(f, "ov", CAP, SLUICE_CHAN_OVERWRITE, NULL);
	assert_int_equal(sluice_chan_reader_open(ov, S, NULL, &r), -EINVAL);
	assert_null(r);
	assert_int_equal(info_of(ov).strong_readers, 0);
	r = rd(ov, SLUICE_CHAN_WEAK, NULL);
	w = wr(ov, SLUICE_CHAN_WEAK, NULL);
	put(w, 1, 1);
	get(r, 1, 1);
	wshut(w);
	w = wr(ov, S, NULL);
	put(w, 2, 2);
	get(r, 2, 2);
	wshut(w);
	rshut(r);
	cshut(ov);
	cshut(ch);
}

static void test_data_calls_reject_bad_arguments(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	unsigned char buf[64] = { 0 };
	struct iovec iov[2] = { { buf, 8 }, { buf, 8 } };
	struct iovec *many;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* 65536 frames of nothing: -EINVAL for the count, before any size. */
	many = calloc(65536, sizeof(*many));
	assert_non_null(many);

	assert_int_equal(sluice_chan_write(NULL, buf, 8), -EINVAL);
	assert_int_equal(sluice_chan_try_write(NULL, buf, 8), -EINVAL);
	assert_int_equal(sluice_chan_write(w, NULL, 8), -EINVAL);
	assert_int_equal(sluice_chan_try_write(w, NULL, 8), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(NULL, iov, 2), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(w, NULL, 2), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(w, many, 65536), -EINVAL);
	assert_int_equal(sluice_chan_try_write_batch(w, many, 65536), -EINVAL);
	assert_int_equal(sluice_chan_reserve_slice(NULL, iov, 1), -EINVAL);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_reserve_slice(w, NULL, 1), -EINVAL);
	assert_int_equal(sluice_chan_reserve_slice(w, many, 65536), -EINVAL);
	assert_int_equal(sluice_chan_commit(NULL), -EINVAL);
	assert_int_equal(sluice_chan_abort(NULL), -EINVAL);
	/* Nothing reserved. */
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(sluice_chan_abort(w), -EINVAL);
	free(many);
	/* None of it reached the ring. */
	i = info_of(ch);
	assert_int_equal(i.tail, 0);
	assert_int_equal(i.writers_busy, 1);

	put(w, 9, 8);
	assert_int_equal(sluice_chan_read(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_try_read(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_read(r, NULL, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_try_read(r, NULL, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_read_batch(NULL, iov, 2), -EINVAL);
	assert_int_equal(sluice_chan_read_batch(r, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_read_batch(r, NULL, 2), -EINVAL);
	assert_int_equal(sluice_chan_try_read_batch(r, NULL, 2), -EINVAL);
	assert_int_equal(sluice_chan_info(NULL, &i), -EINVAL);
	assert_int_equal(sluice_chan_info(ch, NULL), -EINVAL);
	assert_int_equal(sluice_chan_drain(NULL), -EINVAL);
	assert_int_equal(sluice_chan_terminate(NULL), -EINVAL);
	/* The frame is still there, whole. */
	get(r, 9, 8);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- frames */

static void test_frames_are_read_back_byte_exact_and_in_order(void **state)
{
	struct fx *f = *state;
	const uint64_t cap = 65536;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	unsigned char out[1024], *in;
	struct iovec iov[1];
	uint64_t seq, rseq = 0, pos = 0;
	size_t len;
	int ret;

	ch = mk(f, cap, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (seq = 0; seq < 600; seq++) {
		/* Every length from 0 to 999 turns up, odd ones included. */
		len = (seq * 37) % 1000;
		fill(out, seq, len);
		switch (seq % 3) {
		case 0:
			assert_int_equal(sluice_chan_write(w, out, len), 0);
			break;
		case 1:
			assert_int_equal(sluice_chan_try_write(w, out, len), 0);
			break;
		default:
			iov[0] = (struct iovec){ out, len };
			assert_int_equal(sluice_chan_write_batch(w, iov, 1), 1);
			break;
		}
		pos = pos_after(pos, slice1(len), cap);
		/* Read in bursts, so that the ring fills part way and wraps. */
		if (seq % 40 != 39)
			continue;
		for (; rseq <= seq; rseq++) {
			len = (rseq * 37) % 1000;
			in = malloc(len ? len : 1);
			assert_non_null(in);
			if (rseq % 2) {
				ret = sluice_chan_read(r, in, len);
			} else {
				iov[0] = (struct iovec){ in, len };
				ret = sluice_chan_read_batch(r, iov, 1);
				assert_int_equal(ret, 1);
				ret = (int)iov[0].iov_len;
			}
			assert_int_equal(ret, (int)len);
			assert_true(intact(in, rseq, len));
			free(in);
		}
		none(r);
		i = info_of(ch);
		assert_int_equal(i.tail, pos);
		assert_committed_below(i, pos);
	}
	assert_true(pos > 4 * cap);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_frame_max_is_half_the_capacity_less_the_headers(void **state)
{
	struct fx *f = *state;
	static const uint64_t caps[] = { CAP, 65536, 1 << 20 };
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct iovec iov[1];
	unsigned char *b;
	char name[16];
	size_t fm;
	unsigned int k;

	for (k = 0; k < SLUICE_ARRAY_SIZE(caps); k++) {
		snprintf(name, sizeof(name), "c%u", k);
		ch = mk_named(f, name, caps[k], SLUICE_CHAN_BLOCK, NULL);
		fm = sluice_chan_frame_max(ch);
		/* A slice header, a frame header, the frame: half the ring. */
		assert_int_equal(fm, caps[k] / 2 - CHAN_SLICE_HDR - CHAN_FRAME_HDR);
		w = wr(ch, SLUICE_CHAN_STRONG, NULL);
		r = rd(ch, SLUICE_CHAN_STRONG, NULL);
		b = malloc(fm + 1);
		assert_non_null(b);
		fill(b, 7, fm + 1);
		assert_int_equal(sluice_chan_try_write(w, b, fm + 1), -EMSGSIZE);
		assert_int_equal(sluice_chan_write(w, b, fm + 1), -EMSGSIZE);
		assert_int_equal(sluice_chan_write(w, b, SIZE_MAX), -EMSGSIZE);
		assert_int_equal(sluice_chan_write(w, b, (size_t)UINT32_MAX + 1), -EMSGSIZE);
		iov[0] = (struct iovec){ NULL, fm + 1 };
		assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), -EMSGSIZE);
		assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), -EMSGSIZE);
		/* Nothing was written or left reserved. */
		assert_int_equal(info_of(ch).tail, 0);
		assert_int_equal(sluice_chan_commit(w), -EINVAL);
		none(r);
		/* Exactly the largest fits. */
		assert_int_equal(sluice_chan_write(w, b, fm), 0);
		assert_int_equal(info_of(ch).tail, caps[k] / 2);
		assert_int_equal(sluice_chan_read(r, b, fm + 1), (int)fm);
		assert_true(intact(b, 7, fm));
		free(b);
		rshut(r);
		wshut(w);
		cshut(ch);
	}
}

static void test_a_batch_over_half_the_capacity_is_emsgsize_and_writes_nothing(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char b[3][1008], in[3][1008];
	struct iovec iov[3], io[3];
	struct iovec *many;
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w, 1, 8);
	/* 665 rounds up to 672: 16 + 3 * (8 + 672) = 2056, over 2048. */
	for (k = 0; k < 3; k++) {
		fill(b[k], 10 + k, 665);
		iov[k] = (struct iovec){ b[k], 665 };
	}
	assert_int_equal(sluice_chan_write_batch(w, iov, 3), -EMSGSIZE);
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 3), -EMSGSIZE);
	for (k = 0; k < 3; k++)
		io[k] = (struct iovec){ NULL, 665 };
	assert_int_equal(sluice_chan_reserve_slice(w, io, 3), -EMSGSIZE);
	assert_int_equal(sluice_chan_try_reserve_slice(w, io, 3), -EMSGSIZE);
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	/* 65535 empty frames: a legal count, far too big a slice. */
	many = calloc(65535, sizeof(*many));
	assert_non_null(many);
	assert_int_equal(sluice_chan_write_batch(w, many, 65535), -EMSGSIZE);
	free(many);
	assert_int_equal(info_of(ch).tail, slice1(8));
	get(r, 1, 8);
	none(r);
	/* 664: 16 + 3 * 672 = 2032 fits. */
	for (k = 0; k < 3; k++)
		iov[k].iov_len = 664;
	assert_int_equal(sluice_chan_write_batch(w, iov, 3), 3);
	assert_int_equal(info_of(ch).tail, 32 + 2032);
	for (k = 0; k < 3; k++)
		io[k] = (struct iovec){ in[k], sizeof(in[k]) };
	assert_int_equal(sluice_chan_try_read_batch(r, io, 3), 3);
	for (k = 0; k < 3; k++) {
		assert_int_equal(io[k].iov_len, 664);
		assert_true(intact(in[k], 10 + k, 664));
	}
	/*
	 * Two of 1008: exactly half the ring, which does not fit before the
	 * end at 2064, so it goes after a pad of 2032 bytes, at 4096.
	 */
	for (k = 0; k < 2; k++) {
		fill(b[k], 20 + k, 1008);
		iov[k] = (struct iovec){ b[k], 1008 };
	}
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 2), 2);
	assert_int_equal(info_of(ch).tail, 4096 + 2048);
	for (k = 0; k < 2; k++)
		io[k] = (struct iovec){ in[k], sizeof(in[k]) };
	assert_int_equal(sluice_chan_read_batch(r, io, 2), 2);
	for (k = 0; k < 2; k++) {
		assert_int_equal(io[k].iov_len, 1008);
		assert_true(intact(in[k], 20 + k, 1008));
	}
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_a_frame_longer_than_the_buffer_is_enobufs_and_stays(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 10000 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r[2];
	unsigned char buf[64];
	struct iovec iov[1];
	unsigned int k;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r[0] = rd(ch, SLUICE_CHAN_STRONG, NULL);
	r[1] = rd(ch, SLUICE_CHAN_WEAK, NULL);
	put(w, 5, 20);
	for (k = 0; k < 2; k++) {
		t0 = h_now_ms();
		assert_int_equal(sluice_chan_try_read(r[k], buf, 19), -ENOBUFS);
		assert_int_equal(sluice_chan_read(r[k], buf, 19), -ENOBUFS);
		assert_int_equal(sluice_chan_read(r[k], buf, 0), -ENOBUFS);
		iov[0] = (struct iovec){ buf, 19 };
		assert_int_equal(sluice_chan_read_batch(r[k], iov, 1), -ENOBUFS);
		assert_int_equal(sluice_chan_try_read_batch(r[k], iov, 1), -ENOBUFS);
		/* None of them waited. */
		assert_took(t0, 0, 5000);
		get(r[k], 5, 20);
		none(r[k]);
	}
	rshut(r[0]);
	rshut(r[1]);
	wshut(w);
	cshut(ch);
}

static void test_read_batch_stops_before_a_frame_longer_than_its_buffer(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char out[3][64], in[3][64];
	struct iovec oi[3], ii[3];
	static const size_t lens[3] = { 5, 30, 5 };
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (k = 0; k < 3; k++) {
		fill(out[k], k, lens[k]);
		oi[k] = (struct iovec){ out[k], lens[k] };
	}
	assert_int_equal(sluice_chan_write_batch(w, oi, 3), 3);
	ii[0] = (struct iovec){ in[0], 64 };
	ii[1] = (struct iovec){ in[1], 10 };
	ii[2] = (struct iovec){ in[2], 64 };
	assert_int_equal(sluice_chan_try_read_batch(r, ii, 3), 1);
	assert_int_equal(ii[0].iov_len, 5);
	assert_true(intact(in[0], 0, 5));
	get(r, 1, 30);
	get(r, 2, 5);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_read_batch_can_take_a_slice_a_few_frames_at_a_time(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char out[5][64], in[8][64];
	struct iovec oi[5], ii[8];
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (k = 0; k < 5; k++) {
		fill(out[k], 10 + k, 10 + k);
		oi[k] = (struct iovec){ out[k], 10 + k };
	}
	assert_int_equal(sluice_chan_write_batch(w, oi, 5), 5);
	for (k = 0; k < 8; k++)
		ii[k] = (struct iovec){ in[k], 64 };
	assert_int_equal(sluice_chan_read_batch(r, ii, 2), 2);
	assert_int_equal(ii[0].iov_len, 10);
	assert_int_equal(ii[1].iov_len, 11);
	assert_true(intact(in[0], 10, 10) && intact(in[1], 11, 11));
	get(r, 12, 12);
	for (k = 0; k < 8; k++)
		ii[k] = (struct iovec){ in[k], 64 };
	assert_int_equal(sluice_chan_read_batch(r, ii, 8), 2);
	assert_true(intact(in[0], 13, 13) && intact(in[1], 14, 14));
	assert_int_equal(ii[2].iov_len, 64);	/* untouched */
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_zero_length_frames_are_delivered(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[8] = { 1, 2, 3 };
	struct iovec iov[3] = { { buf, 0 }, { buf, 3 }, { buf, 0 } };
	struct iovec in[3] = { { buf, 8 }, { buf, 8 }, { buf, 8 } };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_try_write(w, buf, 0), 0);
	assert_int_equal(sluice_chan_try_write(w, NULL, 0), 0);
	assert_int_equal(info_of(ch).tail, 2 * slice1(0));
	assert_int_equal(sluice_chan_try_read(r, buf, 0), 0);
	/* No buffer is needed for nothing. */
	assert_int_equal(sluice_chan_try_read(r, NULL, 0), 0);
	assert_int_equal(sluice_chan_write_batch(w, iov, 3), 3);
	assert_int_equal(sluice_chan_read_batch(r, in, 3), 3);
	assert_int_equal(in[0].iov_len, 0);
	assert_int_equal(in[1].iov_len, 3);
	assert_int_equal(in[2].iov_len, 0);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- full, empty */

static void test_try_calls_are_eagain_on_empty_and_full(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, sizeof(buf) } };
	unsigned int i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_try_read(r, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 1), -EAGAIN);
	/* 64 slices of 64 bytes fill the ring exactly. */
	assert_int_equal(fill_up(w, 0), CAP / S40);
	assert_int_equal(info_of(ch).tail, CAP);
	assert_int_equal(sluice_chan_try_write(w, buf, F40), -EAGAIN);
	assert_int_equal(sluice_chan_try_write(w, buf, 0), -EAGAIN);
	iov[0].iov_len = 1;
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 1), -EAGAIN);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), -EAGAIN);
	/* A failed reservation leaves nothing outstanding. */
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(info_of(ch).tail, CAP);
	/* One slice read, one slice of room, and no more. */
	get(r, 0, F40);
	put(w, CAP / S40, F40);
	assert_int_equal(sluice_chan_try_write(w, buf, 0), -EAGAIN);
	for (i = 1; i <= CAP / S40; i++)
		get(r, i, F40);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_only_strong_readers_hold_writers_back(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *weak, *strong;
	unsigned int i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	weak = rd(ch, SLUICE_CHAN_WEAK, NULL);
	/* Five rings' worth past a weak reader that reads nothing. */
	for (i = 0; i < 5 * CAP / S40; i++)
		put(w, i, F40);
	/* A strong reader starts here, and holds writers a ring ahead. */
	strong = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(fill_up(w, i), CAP / S40);
	/* Gone, it holds nobody back. */
	rshut(strong);
	assert_int_equal(info_of(ch).strong_readers, 0);
	put(w, 9999, F40);
	rshut(weak);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- slices */

static void test_reserve_slice_hands_out_frames_in_place(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	struct iovec iov[3] = { { NULL, 10 }, { NULL, 0 }, { NULL, 33 } };
	size_t lens[3] = { 10, 0, 33 };
	struct lay l;
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_of(f);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w, 1, 8);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 3), 3);
	/* After the first slice (32 bytes): a slice header, a frame header. */
	assert_ptr_equal(iov[0].iov_base, l.data + 32 + 16 + 8);
	assert_ptr_equal(iov[1].iov_base, l.data + 32 + 16 + 8 + 16 + 8);
	assert_ptr_equal(iov[2].iov_base, l.data + 32 + 16 + 8 + 16 + 8 + 0 + 8);
	for (k = 0; k < 3; k++) {
		assert_int_equal(iov[k].iov_len, lens[k]);
		assert_int_equal((uintptr_t)iov[k].iov_base % 8, 0);
		fill(iov[k].iov_base, 40 + k, lens[k]);
	}
	/* Reserved, not committed: nothing to read yet. */
	i = info_of(ch);
	assert_int_equal(i.tail, 32 + slice_of(lens, 3));
	assert_committed_below(i, 32);
	assert_int_equal(i.writers_busy, 1);
	get(r, 1, 8);
	none(r);
	assert_int_equal(sluice_chan_commit(w), 0);
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	i = info_of(ch);
	assert_committed_below(i, i.tail);
	for (k = 0; k < 3; k++)
		get(r, 40 + k, lens[k]);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_an_aborted_or_abandoned_slice_is_skipped(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w, *ww, *w3;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	struct iovec iov[2] = { { NULL, 24 }, { NULL, 40 } };
	size_t lens[2] = { 24, 40 };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w, 0, 16);
	assert_int_equal(sluice_chan_reserve_slice(ww, iov, 2), 2);
	memset(iov[0].iov_base, 0xee, 24);
	memset(iov[1].iov_base, 0xee, 40);
	assert_int_equal(info_of(ch).writers_busy, 2);
	assert_int_equal(sluice_chan_abort(ww), 0);
	assert_int_equal(sluice_chan_abort(ww), -EINVAL);
	assert_int_equal(sluice_chan_commit(ww), -EINVAL);
	/* The weak writer gave its place back with the slice. */
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 1);
	/* The aborted slice still took its room: readers step over it. */
	assert_int_equal(i.tail, slice1(16) + slice_of(lens, 2));
	assert_committed_below(i, i.tail);
	/* An abort is not a death. */
	assert_int_equal(i.abandoned, 0);
	put(ww, 1, 16);
	get(r, 0, 16);
	get(r, 1, 16);
	none(r);

	/* A writer closed with a slice outstanding abandons it. */
	w3 = wr(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_reserve_slice(w3, iov, 1), 1);
	memset(iov[0].iov_base, 0xee, 24);
	put(w, 2, 16);
	none(r);	/* behind the outstanding slice */
	wshut(w3);
	get(r, 2, 16);
	none(r);
	i = info_of(ch);
	assert_committed_below(i, i.tail);
	assert_int_equal(i.writers_busy, 1);
	assert_int_equal(i.draining, 0);
	rshut(r);
	wshut(ww);
	wshut(w);
	cshut(ch);
}

/*
 * A strong reader that steps over skipped slices alone, taking no frame,
 * still moves its cursor: the room those slices took is the writers' again.
 */
static void test_a_reader_stepping_over_skipped_slices_frees_their_room(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct iovec iov = { NULL, F40 };
	unsigned int n = 0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	while (sluice_chan_try_reserve_slice(w, &iov, 1) == 1) {
		assert_int_equal(sluice_chan_abort(w), 0);
		n++;
	}
	assert_int_equal(n, CAP / S40);
	assert_int_equal(sluice_chan_try_reserve_slice(w, &iov, 1), -EAGAIN);
	none(r);
	put(w, 7, F40);
	get(r, 7, F40);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_writer_calls_are_ebusy_while_a_slice_is_outstanding(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[8] = { 0 };
	struct iovec iov[1] = { { NULL, 8 } }, one[1] = { { buf, 1 } };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), 1);
	fill(iov[0].iov_base, 1, 8);
	assert_int_equal(sluice_chan_write(w, buf, 1), -EBUSY);
	assert_int_equal(sluice_chan_try_write(w, buf, 1), -EBUSY);
	assert_int_equal(sluice_chan_write_batch(w, one, 1), -EBUSY);
	assert_int_equal(sluice_chan_try_write_batch(w, one, 1), -EBUSY);
	assert_int_equal(sluice_chan_reserve_slice(w, one, 1), -EBUSY);
	assert_int_equal(sluice_chan_try_reserve_slice(w, one, 1), -EBUSY);
	/* Nothing else was reserved by them. */
	assert_int_equal(info_of(ch).tail, slice1(8));
	assert_int_equal(sluice_chan_commit(w), 0);
	/* Free again. */
	put(w, 2, 2);
	get(r, 1, 8);
	get(r, 2, 2);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_batches_wrap_around_the_ring_end(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char out[6][300], in[8][300];
	struct iovec oi[6], ii[8];
	size_t lens[6];
	uint64_t rng = 0xabcdef, seq = 0, rseq = 0, pos = 0, before, s;
	unsigned int round, k, n, got, pads = 0;
	unsigned char *lo, *hi;
	struct lay l;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_of(f);
	lo = l.data;
	hi = l.data + CAP;
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (round = 0; round < 400; round++) {
		n = 1 + rng_next(&rng) % 6;
		for (k = 0; k < n; k++)
			lens[k] = rng_next(&rng) % 300;
		s = slice_of(lens, n);
		before = pos;
		pos = pos_after(pos, s, CAP);
		if (pos - before != s)
			pads++;
		if (round % 2) {
			for (k = 0; k < n; k++) {
				fill(out[k], seq + k, lens[k]);
				oi[k] = (struct iovec){ out[k], lens[k] };
			}
			assert_int_equal(sluice_chan_write_batch(w, oi, n), (int)n);
		} else {
			for (k = 0; k < n; k++)
				oi[k] = (struct iovec){ NULL, lens[k] };
			assert_int_equal(sluice_chan_reserve_slice(w, oi, n), (int)n);
			for (k = 0; k < n; k++) {
				/* In the ring, whole, never split at its end. */
				assert_true((unsigned char *)oi[k].iov_base >= lo);
				assert_true((unsigned char *)oi[k].iov_base + lens[k] <= hi);
				if (!k)
					assert_ptr_equal(oi[0].iov_base,
							 lo + ((pos - s) & (CAP - 1)) + 24);
				else
					assert_ptr_equal(oi[k].iov_base,
							 (unsigned char *)oi[k - 1].iov_base +
							 ((lens[k - 1] + 7) & ~7ull) + 8);
				fill(oi[k].iov_base, seq + k, lens[k]);
			}
			assert_int_equal(sluice_chan_commit(w), 0);
		}
		seq += n;
		assert_int_equal(info_of(ch).tail, pos);
		for (got = 0; got < n; got += (unsigned int)ret) {
			for (k = 0; k < 8; k++)
				ii[k] = (struct iovec){ in[k], sizeof(in[k]) };
			ret = sluice_chan_read_batch(r, ii, 8);
			assert_true(ret >= 1 && ret <= (int)(n - got));
			for (k = 0; k < (unsigned int)ret; k++) {
				assert_int_equal(ii[k].iov_len, lens[got + k]);
				assert_true(intact(in[k], rseq, lens[got + k]));
				rseq++;
			}
		}
		none(r);
	}
	/* Many laps, many of them ending in a pad. */
	assert_true(pos > 20 * CAP);
	assert_true(pads > 10);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- info, tables */

static void test_info_reports_the_channel(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .readers_max = 8, .writers_max = 4);
	struct sluice_chan *ch, *dflt;
	struct sluice_chan_writer *ws, *ww;
	struct sluice_chan_reader *r1, *r2, *rs;
	struct sluice_chan_info i;
	struct iovec iov[1] = { { NULL, 100 } };

	ch = mk(f, 2 * CAP, SLUICE_CHAN_OVERWRITE, &o);
	i = info_of(ch);
	assert_int_equal(i.capacity, 2 * CAP);
	assert_int_equal(i.policy, SLUICE_CHAN_OVERWRITE);
	assert_int_equal(i.readers_max, 8);
	assert_int_equal(i.writers_max, 4);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(i.weak_readers, 0);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	assert_int_equal(i.draining, 0);
	assert_int_equal(i.terminated, 0);
	assert_int_equal(i.tail, 0);
	assert_int_equal(i.committed, 0);
	assert_int_equal(i.abandoned, 0);
	assert_int_equal(i.swept, 0);
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r1 = rd(ch, SLUICE_CHAN_WEAK, NULL);
	r2 = rd(ch, SLUICE_CHAN_WEAK, NULL);
	i = info_of(ch);
	assert_int_equal(i.strong_writers, 1);
	assert_int_equal(i.writers_busy, 1);	/* the weak one holds none yet */
	assert_int_equal(i.weak_readers, 2);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(sluice_chan_reserve_slice(ww, iov, 1), 1);
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 2);
	assert_int_equal(i.tail, 128);
	assert_int_equal(i.committed, 0);
	assert_int_equal(sluice_chan_commit(ww), 0);
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 1);
	assert_int_equal(i.tail, 128);
	assert_committed_below(i, 128);
	rshut(r1);
	assert_int_equal(info_of(ch).weak_readers, 1);
	assert_int_equal(sluice_chan_drain(ch), 0);
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.terminated, 0);
	assert_int_equal(sluice_chan_terminate(ch), 0);
	assert_int_equal(info_of(ch).terminated, 1);
	rshut(r2);
	wshut(ww);
	wshut(ws);
	cshut(ch);

	/* The defaults. */
	dflt = mk_named(f, "d", CAP, SLUICE_CHAN_BLOCK, NULL);
	rs = rd(dflt, SLUICE_CHAN_STRONG, NULL);
	i = info_of(dflt);
	assert_int_equal(i.policy, SLUICE_CHAN_BLOCK);
	assert_int_equal(i.readers_max, SLUICE_CHAN_ENDS_DEFAULT);
	assert_int_equal(i.writers_max, SLUICE_CHAN_ENDS_DEFAULT);
	assert_int_equal(i.strong_readers, 1);
	assert_int_equal(i.weak_readers, 0);
	rshut(rs);
	cshut(dflt);
}

static void test_full_tables_are_eusers(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .readers_max = 2, .writers_max = 2);
	struct sluice_chan *ch, *ch2;
	struct sluice_chan_writer *w1, *w2, *ww, *w = NULL;
	struct sluice_chan_reader *r1, *r2, *r = NULL;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	ch2 = join(f, NULL);
	r1 = rd(ch, SLUICE_CHAN_STRONG, NULL);
	r2 = rd(ch2, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), -EUSERS);
	assert_int_equal(sluice_chan_reader_open(ch2, SLUICE_CHAN_WEAK, NULL, &r), -EUSERS);
	assert_null(r);
	rshut(r1);
	r1 = rd(ch2, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(info_of(ch).weak_readers, 2);

	w1 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	w2 = wr(ch2, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), -EUSERS);
	assert_null(w);
	/* A weak writer takes a place only per slice: it opens. */
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(info_of(ch).writers_busy, 2);
	wshut(ww);
	wshut(w1);
	w1 = wr(ch2, SLUICE_CHAN_STRONG, NULL);
	put(w1, 1, 1);
	get(r1, 1, 1);
	get(r2, 1, 1);
	rshut(r1);
	rshut(r2);
	wshut(w1);
	wshut(w2);
	cshut(ch2);
	cshut(ch);
}

/* ---------------------------------------------------------------- attach */

static void test_attach_to_an_object_of_another_type_is_eproto(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch = NULL;
	struct sluice_spsc *q;
	uint64_t off;

	assert_int_equal(sluice_region_alloc(f->r, "raw", SLUICE_OBJ_RAW, 65536, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "raw", NULL, &ch), -EPROTO);
	assert_int_equal(sluice_region_alloc(f->r, "user", SLUICE_OBJ_USER, 65536, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "user", NULL, &ch), -EPROTO);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL, &q), 0);
	assert_int_equal(sluice_chan_attach(f->r, "q", NULL, &ch), -EPROTO);
	sluice_spsc_close(q);
	/* A "channel" too small to hold a channel's header. */
	assert_int_equal(sluice_region_alloc(f->r, "tiny", SLUICE_OBJ_CHAN, 64, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "tiny", NULL, &ch), -EPROTO);
	/* Big enough, still all zeros: its creator has not finished. */
	assert_int_equal(sluice_region_alloc(f->r, "young", SLUICE_OBJ_CHAN, 65536, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "young", NULL, &ch), -EAGAIN);
	assert_null(ch);
	/* And the arguments. */
	assert_int_equal(sluice_chan_attach(NULL, "c", NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, NULL, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, "raw", NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, "bad/name", NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, "0123456789012345678901234567890123456789",
					    NULL, &ch), -ENAMETOOLONG);
	assert_null(ch);
}

/* Corrupt the config with @poke (and forge its checksum), attach, restore. */
static int attach_with_config(struct fx *f, void (*poke)(struct sluice_chan_hdr *),
			      bool fix_csum)
{
	struct lay l = lay_of(f);
	struct sluice_chan_hdr saved;
	struct sluice_chan *ch = NULL;
	int err;

	memcpy(&saved, l.h, offsetof(struct sluice_chan_hdr, tail));
	poke(l.h);
	if (fix_csum)
		l.h->csum = config_csum(l.h);
	err = sluice_chan_attach(f->r, "c", NULL, &ch);
	memcpy(l.h, &saved, offsetof(struct sluice_chan_hdr, tail));
	if (!err)
		assert_int_equal(sluice_chan_close(ch), 0);
	else
		assert_null(ch);
	return err;
}

static void poke_cap_3(struct sluice_chan_hdr *h) { h->capacity = 3 * CAP; }
static void poke_cap_small(struct sluice_chan_hdr *h) { h->capacity = 2048; }
static void poke_cap_big(struct sluice_chan_hdr *h) { h->capacity *= 2; }
static void poke_cap_huge(struct sluice_chan_hdr *h) { h->capacity = 1ull << 62; }
static void poke_policy(struct sluice_chan_hdr *h) { h->policy = 7; }
static void poke_rmax_0(struct sluice_chan_hdr *h) { h->readers_max = 0; }
static void poke_rmax_big(struct sluice_chan_hdr *h) { h->readers_max = 1u << 30; }
static void poke_wmax_0(struct sluice_chan_hdr *h) { h->writers_max = 0; }
static void poke_wmax_big(struct sluice_chan_hdr *h) { h->writers_max = SLUICE_CHAN_ENDS_MAX + 1; }
static void poke_index_off(struct sluice_chan_hdr *h) { h->index_off = 8; }
static void poke_readers_off(struct sluice_chan_hdr *h) { h->readers_off = h->size; }
static void poke_writers_off(struct sluice_chan_hdr *h) { h->writers_off = h->readers_off; }
static void poke_data_off(struct sluice_chan_hdr *h) { h->data_off = h->size - 64; }
static void poke_data_odd(struct sluice_chan_hdr *h) { h->data_off += 4; }
static void poke_size(struct sluice_chan_hdr *h) { h->size *= 2; }
static void poke_csum(struct sluice_chan_hdr *h) { h->csum ^= 1; }
static void poke_salt(struct sluice_chan_hdr *h) { h->salt ^= 1; }
static void poke_abi(struct sluice_chan_hdr *h) { h->abi = SLUICE_CHAN_ABI + 1; }
static void poke_magic(struct sluice_chan_hdr *h) { h->magic ^= 0x100; }
static void poke_magic_0(struct sluice_chan_hdr *h) { h->magic = 0; }
static void poke_nothing(struct sluice_chan_hdr *h) { (void)h; }

static void test_attach_rejects_a_corrupted_config(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	/* Checksum left stale. */
	assert_int_equal(attach_with_config(f, poke_cap_big, false), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_csum, false), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_salt, false), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_rmax_0, false), -EBADMSG);
	/* Checksum forged to match: the values themselves are checked. */
	assert_int_equal(attach_with_config(f, poke_cap_3, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_cap_small, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_cap_big, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_cap_huge, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_policy, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_rmax_0, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_rmax_big, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_wmax_0, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_wmax_big, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_index_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_readers_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_writers_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_data_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_data_odd, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size, true), -EBADMSG);
	/* Another ABI or no channel at all. */
	assert_int_equal(attach_with_config(f, poke_abi, true), -EPROTO);
	assert_int_equal(attach_with_config(f, poke_abi, false), -EPROTO);
	assert_int_equal(attach_with_config(f, poke_magic, false), -EPROTO);
	/* No magic yet: its creator is still at it. */
	assert_int_equal(attach_with_config(f, poke_magic_0, false), -EAGAIN);
	/* And the untouched config attaches. */
	assert_int_equal(attach_with_config(f, poke_nothing, false), 0);
	cshut(ch);
}

/* ---------------------------------------------------------------- joining mid-stream */

static void test_readers_and_writers_join_and_leave_mid_stream(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *ws, *ww, *w2;
	struct sluice_chan_reader *r1, *r2, *r3;
	struct iovec iov[1] = { { NULL, 16 } };
	struct sluice_chan_info i;
	uint64_t s;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	/* Open throughout, so that the channel does not drain. */
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);
	for (s = 0; s < 5; s++)
		put(ws, s, 16);
	/* A reader starts after the newest committed slice. */
	r1 = rd(ch, SLUICE_CHAN_STRONG, NULL);
	none(r1);
	for (; s < 8; s++)
		put(ws, s, 16);
	for (s = 5; s < 8; s++)
		get(r1, s, 16);
	none(r1);

	/* Frame 8 is reserved, not committed, when the next reader opens. */
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_reserve_slice(ww, iov, 1), 1);
	fill(iov[0].iov_base, 8, 16);
	r2 = rd(ch, SLUICE_CHAN_WEAK, NULL);
	put(ws, 9, 16);
	none(r1);
	none(r2);
	assert_int_equal(sluice_chan_commit(ww), 0);
	get(r1, 8, 16);
	get(r1, 9, 16);
	get(r2, 8, 16);
	get(r2, 9, 16);

	/* A second strong writer comes and goes: no drain, ws is still open. */
	w2 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(info_of(ch).strong_writers, 2);
	put(w2, 10, 16);
	wshut(w2);
	i = info_of(ch);
	assert_int_equal(i.strong_writers, 1);
	assert_int_equal(i.draining, 0);
	get(r1, 10, 16);
	get(r2, 10, 16);

	r3 = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(ww, 11, 16);
	wshut(ww);
	assert_int_equal(info_of(ch).draining, 0);
	get(r3, 11, 16);
	none(r3);
	get(r1, 11, 16);
	rshut(r2);
	put(ws, 12, 16);
	get(r1, 12, 16);
	get(r3, 12, 16);

	/* The last strong writer leaves: the readers end after frame 13. */
	put(ws, 13, 16);
	wshut(ws);
	assert_int_equal(info_of(ch).draining, 1);
	get(r1, 13, 16);
	get(r3, 13, 16);
	assert_int_equal(sluice_chan_try_read(r1, scratch, 64), -EPIPE);
	assert_int_equal(sluice_chan_read(r3, scratch, 64), -EPIPE);
	rshut(r1);
	rshut(r3);
	cshut(ch);
}

/* ---------------------------------------------------------------- deadlines */

enum via { VIA_ENDPOINT, VIA_CHANNEL };

static void timeouts(struct fx *f, uint32_t spin_ns, enum via via)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 50 * MS, .spin_ns = spin_ns);
	SLUICE_OPTS(sluice_chan_opts, slow, .timeout_ns = 20000 * MS);
	const struct sluice_chan_opts *co = via == VIA_CHANNEL ? &o : &slow;
	const struct sluice_chan_opts *eo = via == VIA_CHANNEL ? NULL : &o;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64] = { 0 };
	struct iovec iov[2] = { { buf, 64 }, { buf, 1 } };
	unsigned int i;
	int64_t t0;

	/* The channel's 20 s stands unless the endpoint says 50 ms. */
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, co);
	w = wr(ch, SLUICE_CHAN_STRONG, eo);
	r = rd(ch, SLUICE_CHAN_STRONG, eo);
	/* Empty: every reader call that waits gives up after 50 ms. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read_batch(r, iov, 2), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	/* Full, held back by a strong reader that reads nothing. */
	assert_int_equal(fill_up(w, 0), CAP / S40);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write(w, buf, 1), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	iov[0].iov_len = 1;
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write_batch(w, iov, 2), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 2), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	/* Nothing lost, added or left reserved by all that. */
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(info_of(ch).tail, CAP);
	for (i = 0; i < CAP / S40; i++)
		get(r, i, F40);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_blocking_calls_time_out_on_empty_and_full(void **state)
{
	timeouts(*state, 0, VIA_ENDPOINT);
}

static void test_endpoints_take_the_channel_handles_timeout(void **state)
{
	timeouts(*state, 0, VIA_CHANNEL);
}

static void test_blocking_calls_time_out_while_sleeping(void **state)
{
	timeouts(*state, 1, VIA_ENDPOINT);
}

static void test_blocking_calls_time_out_while_spinning_only(void **state)
{
	timeouts(*state, UINT32_MAX, VIA_ENDPOINT);
}

/* ---------------------------------------------------------------- cancel */

enum blocked_in { IN_WRITE, IN_READ };

/*
 * Block in a write on a full channel or a read on an empty one, tied to a
 * token (through the endpoint's options or the channel handle's); another
 * thread triggers @fire (the token or its parent) after 100 ms.  The call
 * must return the token's reason then, and later calls that would wait
 * must return it at once.
 */
static void cancel_blocked(struct fx *f, enum blocked_in where, uint32_t spin_ns,
			   int reason, enum via via, bool via_parent)
{
	struct sluice_cancel *parent, *tok;
	struct sluice_chan_opts o = {
		.sz = sizeof(o), .spin_ns = spin_ns, .timeout_ns = 20000 * MS,
	};
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	int want = reason ? reason : -ECANCELED;
	struct later l = { .ms = 100, .reason = reason };
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &parent), 0);
	assert_int_equal(sluice_cancel_create(parent, &tok), 0);
	o.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, via == VIA_CHANNEL ? &o : NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, via == VIA_CHANNEL ? NULL : &o);
	r = rd(ch, SLUICE_CHAN_STRONG, via == VIA_CHANNEL ? NULL : &o);
	if (where == IN_WRITE)
		assert_int_equal(fill_up(w, 0), CAP / S40);
	l.tok = via_parent ? parent : tok;
	later_start(&l);
	t0 = h_now_ms();
	if (where == IN_WRITE)
		assert_int_equal(sluice_chan_write(w, buf, 1), want);
	else
		assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), want);
	assert_took(t0, 90, 10000);
	later_join(&l);

	/* Later: at once, every call that would wait. */
	t0 = h_now_ms();
	if (where == IN_WRITE) {
		assert_int_equal(sluice_chan_write(w, buf, 1), want);
		assert_int_equal(sluice_chan_write_batch(w, iov, 1), want);
		assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), want);
		assert_int_equal(sluice_chan_commit(w), -EINVAL);
	} else {
		assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), want);
		iov[0].iov_len = sizeof(buf);
		assert_int_equal(sluice_chan_read_batch(r, iov, 1), want);
	}
	assert_took(t0, 0, 2000);
	/* The channel itself is intact. */
	if (where == IN_WRITE) {
		assert_int_equal(info_of(ch).tail, CAP);
		get(r, 0, F40);
	} else {
		put(w, 1, 1);
		get(r, 1, 1);
	}
	rshut(r);
	wshut(w);
	cshut(ch);
	sluice_cancel_destroy(tok);
	sluice_cancel_destroy(parent);
}

static void test_cancel_wakes_a_write_blocked_on_a_full_channel(void **state)
{
	cancel_blocked(*state, IN_WRITE, 0, 0, VIA_ENDPOINT, false);
}

static void test_cancel_wakes_a_read_blocked_on_an_empty_channel(void **state)
{
	cancel_blocked(*state, IN_READ, 0, 0, VIA_ENDPOINT, false);
}

static void test_cancel_wakes_a_write_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_WRITE, 1, 0, VIA_ENDPOINT, false);
}

static void test_cancel_wakes_a_read_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_READ, 1, 0, VIA_ENDPOINT, false);
}

static void test_cancel_stops_a_read_that_only_spins(void **state)
{
	cancel_blocked(*state, IN_READ, UINT32_MAX, 0, VIA_ENDPOINT, false);
}

static void test_cancel_of_a_write_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_WRITE, 0, -ESHUTDOWN, VIA_ENDPOINT, false);
}

static void test_cancel_of_a_read_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_READ, 1, -ENOTCONN, VIA_ENDPOINT, false);
}

static void test_endpoints_take_the_channel_handles_token(void **state)
{
	cancel_blocked(*state, IN_READ, 0, 0, VIA_CHANNEL, false);
}

static void test_cancel_of_a_parent_token_wakes_a_wait_on_its_child(void **state)
{
	cancel_blocked(*state, IN_WRITE, 0, 0, VIA_CHANNEL, true);
}

/*
 * An endpoint's own options override its handle's field by field: one
 * that sets only its spin keeps the handle's token and timeout.
 */
static void test_an_endpoint_that_sets_only_its_spin_keeps_its_handles_token_and_timeout(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, co, .timeout_ns = 150 * MS);
	SLUICE_OPTS(sluice_chan_end_opts, eo, .spin_ns = 1);
	struct later l = { .ms = 100 };
	struct sluice_chan_reader *r;
	struct sluice_cancel *tok;
	struct sluice_chan *ch;
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	co.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &co);
	r = rd(ch, SLUICE_CHAN_STRONG, &eo);
	/* The handle's timeout: 150 ms, not the default 5 s. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	assert_took(t0, 150, 1000);
	/* The handle's token. */
	l.tok = tok;
	later_start(&l);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ECANCELED);
	assert_took(t0, 90, 150);
	later_join(&l);
	rshut(r);
	cshut(ch);
	sluice_cancel_destroy(tok);
}

/* Until 0.6 the endpoint opens still take 0.4's struct, as 0.4 did. */
static void test_the_endpoint_opens_still_take_the_channel_options_struct(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, old, .timeout_ns = 100 * MS);
	struct sluice_chan_writer *w = NULL;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, &old);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	assert_took(t0, 100, 1000);
	/* Its create-only fields must be 0, as before. */
	old.readers_max = 4;
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, &old, &w), -EINVAL);
	assert_null(w);
	rshut(r);
	cshut(ch);
}

static void test_a_triggered_token_fails_only_calls_that_would_wait(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_cancel *tok;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64];
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	assert_int_equal(sluice_cancel_trigger(tok, 0), 0);
	o.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* Room, and a frame: neither call needs to wait. */
	fill(buf, 1, 20);
	assert_int_equal(sluice_chan_write(w, buf, 20), 0);
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), 20);
	assert_true(intact(buf, 1, 20));
	/* Empty: this one would. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ECANCELED);
	assert_took(t0, 0, 2000);
	rshut(r);
	wshut(w);
	cshut(ch);
	sluice_cancel_destroy(tok);
}

static void test_a_huge_timeout_does_not_expire_at_once(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = UINT64_MAX);
	struct sluice_cancel *tok;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct later l = { .ms = 100 };
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	o.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	/* "Practically forever": must not wrap around to the past. */
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	l.tok = tok;
	later_start(&l);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, 64), -ECANCELED);
	assert_took(t0, 90, 10000);
	later_join(&l);
	rshut(r);
	wshut(w);
	cshut(ch);
	sluice_cancel_destroy(tok);
}

/* ---------------------------------------------------------------- terminate */

static void terminate_blocked(struct fx *f, enum blocked_in where)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan *ch, *other;
	struct sluice_chan_writer *w, *w2 = NULL;
	struct sluice_chan_reader *r, *r2 = NULL;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	struct later l = { .fn = sluice_chan_terminate, .ms = 100 };
	struct sluice_chan_info i;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	/* Terminated from another handle, as another process would. */
	other = join(f, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	if (where == IN_WRITE)
		assert_int_equal(fill_up(w, 0), CAP / S40);
	l.ch = other;
	later_start(&l);
	t0 = h_now_ms();
	if (where == IN_WRITE)
		assert_int_equal(sluice_chan_write(w, buf, 1), -ECONNABORTED);
	else
		assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ECONNABORTED);
	assert_took(t0, 90, 10000);
	later_join(&l);

	/* From then on, every call, blocking or not, frames left or not. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write(w, buf, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_write(w, buf, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_write_batch(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_read(r, buf, sizeof(buf)), -ECONNABORTED);
	iov[0].iov_len = sizeof(buf);
	assert_int_equal(sluice_chan_read_batch(r, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_WEAK, NULL, &w2), -ECONNABORTED);
	assert_int_equal(sluice_chan_writer_open(other, SLUICE_CHAN_STRONG, NULL, &w2), -ECONNABORTED);
	assert_int_equal(sluice_chan_reader_open(ch, SLUICE_CHAN_WEAK, NULL, &r2), -ECONNABORTED);
	assert_null(w2);
	assert_null(r2);
	assert_took(t0, 0, 2000);
	i = info_of(ch);
	assert_int_equal(i.terminated, 1);
	rshut(r);
	wshut(w);
	cshut(other);
	cshut(ch);
}

static void test_terminate_wakes_a_blocked_reader_and_fails_every_later_call(void **state)
{
	terminate_blocked(*state, IN_READ);
}

static void test_terminate_wakes_a_blocked_writer_and_fails_every_later_call(void **state)
{
	terminate_blocked(*state, IN_WRITE);
}

static void test_commit_after_terminate_is_econnaborted_and_drops_the_slice(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct iovec iov[1] = { { NULL, 8 } };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), 1);
	fill(iov[0].iov_base, 1, 8);
	assert_int_equal(sluice_chan_terminate(ch), 0);
	assert_int_equal(sluice_chan_commit(w), -ECONNABORTED);
	/* Dropped: nothing is reserved any more. */
	assert_int_equal(sluice_chan_abort(w), -EINVAL);
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(sluice_chan_try_read(r, scratch, 64), -ECONNABORTED);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- drain */

static void test_drain_lets_a_blocked_reader_read_what_was_committed_then_epipe(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan *ch, *other;
	struct sluice_chan_writer *ws, *ww, *w2 = NULL;
	struct sluice_chan_reader *r;
	struct iovec iov[2] = { { NULL, 20 }, { NULL, 30 } };
	unsigned char buf[64] = { 0 };
	struct iovec one[1] = { { buf, 1 } };
	struct rloop rl;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	other = join(f, NULL);
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	rloop_start(&rl, r, 16);
	h_sleep_ms(50);
	/* A slice reserved before the drain, a frame committed behind it. */
	assert_int_equal(sluice_chan_reserve_slice(ws, iov, 2), 2);
	put(ww, 3, 40);
	h_sleep_ms(50);
	assert_int_equal(rloop_count(&rl), 0);

	assert_int_equal(sluice_chan_drain(other), 0);
	assert_int_equal(info_of(ch).draining, 1);
	/* No new writes, from any writer, by any call. */
	assert_int_equal(sluice_chan_write(ww, buf, 1), -EPIPE);
	assert_int_equal(sluice_chan_try_write(ww, buf, 1), -EPIPE);
	assert_int_equal(sluice_chan_write_batch(ww, one, 1), -EPIPE);
	assert_int_equal(sluice_chan_try_reserve_slice(ww, one, 1), -EPIPE);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w2), -EPIPE);
	assert_int_equal(sluice_chan_writer_open(other, SLUICE_CHAN_WEAK, NULL, &w2), -EPIPE);
	assert_null(w2);
	h_sleep_ms(50);
	/* The reader still waits for the reserved slice. */
	assert_int_equal(rloop_count(&rl), 0);
	fill(iov[0].iov_base, 1, 20);
	fill(iov[1].iov_base, 2, 30);
	assert_int_equal(sluice_chan_commit(ws), 0);
	assert_int_equal(sluice_chan_write(ws, buf, 1), -EPIPE);
	assert_int_equal(pthread_join(rl.t, NULL), 0);
	assert_int_equal(rloop_count(&rl), 3);
	assert_int_equal(rl.seq[0], 1);
	assert_int_equal(rl.len[0], 20);
	assert_int_equal(rl.seq[1], 2);
	assert_int_equal(rl.len[1], 30);
	assert_int_equal(rl.seq[2], 3);
	assert_int_equal(rl.len[2], 40);
	assert_int_equal(rl.err, -EPIPE);
	/* End of channel is sticky and never waits. */
	assert_int_equal(sluice_chan_try_read(r, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -EPIPE);
	one[0].iov_len = sizeof(buf);
	assert_int_equal(sluice_chan_read_batch(r, one, 1), -EPIPE);
	rshut(r);
	wshut(ww);
	wshut(ws);
	cshut(other);
	cshut(ch);
}

static void test_drain_wakes_a_reader_blocked_on_an_empty_channel(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS, .spin_ns = 1);
	struct sluice_chan *ch, *other;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct later l = { .fn = sluice_chan_drain, .ms = 100 };
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	other = join(f, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	l.ch = other;
	later_start(&l);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, 64), -EPIPE);
	assert_took(t0, 90, 10000);
	later_join(&l);
	rshut(r);
	wshut(w);
	cshut(other);
	cshut(ch);
}

static void test_the_last_strong_writer_closing_drains_the_channel(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w1, *w2, *ww, *w = NULL;
	struct sluice_chan_reader *r;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w1 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	w2 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w1, 0, 8);
	wshut(w1);
	assert_int_equal(info_of(ch).draining, 0);
	put(ww, 1, 8);
	wshut(ww);
	assert_int_equal(info_of(ch).draining, 0);
	put(w2, 2, 8);
	wshut(w2);
	assert_int_equal(info_of(ch).draining, 1);
	assert_int_equal(info_of(ch).strong_writers, 0);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_WEAK, NULL, &w), -EPIPE);
	assert_null(w);
	get(r, 0, 8);
	get(r, 1, 8);
	get(r, 2, 8);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, 64), -EPIPE);
	assert_took(t0, 0, 2000);
	rshut(r);
	cshut(ch);
}

static void test_weak_writers_alone_never_drain_the_channel(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 50 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	w = wr(ch, SLUICE_CHAN_WEAK, NULL);
	put(w, 0, 8);
	wshut(w);
	w = wr(ch, SLUICE_CHAN_WEAK, NULL);
	put(w, 1, 8);
	wshut(w);
	i = info_of(ch);
	assert_int_equal(i.draining, 0);
	assert_int_equal(i.strong_writers, 0);
	get(r, 0, 8);
	get(r, 1, 8);
	assert_int_equal(sluice_chan_read(r, scratch, 64), -ETIMEDOUT);
	rshut(r);
	cshut(ch);
}

/* ---------------------------------------------------------------- weak readers */

/* Write 40-byte frame @seq: a 64-byte slice of its own. */
static void put40(struct sluice_chan_writer *w, uint64_t seq)
{
	put(w, seq, F40);
}

static void get40(struct sluice_chan_reader *r, uint64_t seq)
{
	get(r, seq, F40);
}

/*
 * The frame an overtaken weak reader resumes at, when the writers have
 * written up to frame @end - 1 (40-byte frames, 64-byte slices): whole,
 * and still in the ring, so no older than @end less a ring.  The library
 * may find it through an index of CHAN_INDEX_N chunks a ring, so it may
 * land up to a chunk later than the oldest; never further, or the reader
 * would throw away frames it could have read.
 */
static uint64_t resumed_at(struct sluice_chan_reader *r, uint64_t end)
{
	const uint64_t ring = CAP / S40, slack = CAP / CHAN_INDEX_N / S40;
	unsigned char b[F40];
	uint64_t s;

	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), F40);
	memcpy(&s, b, sizeof(s));
	assert_true(intact(b, s, F40));
	if (s < end - ring || s > end - ring + (slack ? slack : 1))
		fail_msg("resumed at frame %" PRIu64 "; the oldest intact is %" PRIu64,
			 s, end - ring);
	return s;
}

/*
 * A weak reader overtaken says by how much, exactly: with every slice 64
 * bytes, what it lost is 64 bytes for each frame between the one it was
 * due to read and the one it resumes at.
 */
static void overrun(struct fx *f, enum sluice_chan_policy pol)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 10000 * MS);
	const uint64_t ring = CAP / S40;	/* slices in a ring */
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char b[F40];
	struct iovec iov[4];
	uint64_t s, k, at, total;
	int64_t t0;

	ch = mk(f, CAP, pol, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_WEAK, NULL);
	for (s = 0; s < 10; s++)
		put40(w, s);
	get40(r, 0);
	get40(r, 1);
	assert_int_equal(sluice_chan_lost(r), 0);
	assert_int_equal(sluice_chan_lost_total(r), 0);

	/* Exactly a ring ahead of the reader: nothing it has not read is gone. */
	for (; s < 2 + ring; s++)
		put40(w, s);
	for (k = 2; k < 2 + ring; k++)
		get40(r, k);
	none(r);

	/* One slice more than a ring: the one it was due to read is gone. */
	for (; s < 2 + 2 * ring + 1; s++)
		put40(w, s);
	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), -EOVERFLOW);
	at = resumed_at(r, s);
	assert_int_equal(sluice_chan_lost(r), (at - (2 + ring)) * S40);
	assert_int_equal(sluice_chan_lost_total(r), sluice_chan_lost(r));
	total = sluice_chan_lost(r);
	for (k = at + 1; k < s; k++)
		get40(r, k);
	none(r);

	/* Asleep while writers write five rings. */
	k = s;
	for (; s < k + 5 * ring; s++)
		put40(w, s);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, b, sizeof(b)), -EOVERFLOW);
	assert_took(t0, 0, 5000);
	at = resumed_at(r, s);
	assert_int_equal(sluice_chan_lost(r), (at - k) * S40);
	total += (at - k) * S40;
	assert_int_equal(sluice_chan_lost_total(r), total);
	for (k = at + 1; k < s; k++)
		get40(r, k);
	none(r);

	/* Through a batch read too, and the loss adds up. */
	k = s;
	for (; s < k + ring + 10; s++)
		put40(w, s);
	iov[0] = (struct iovec){ b, sizeof(b) };
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 1), -EOVERFLOW);
	at = resumed_at(r, s);
	assert_int_equal(sluice_chan_lost(r), (at - k) * S40);
	assert_int_equal(sluice_chan_lost_total(r), total + (at - k) * S40);
	/* A frame read is not a loss: lost() still tells the last overrun. */
	get40(r, at + 1);
	assert_int_equal(sluice_chan_lost(r), (at - k) * S40);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_a_weak_reader_overrun_is_eoverflow_and_lost_is_exact(void **state)
{
	overrun(*state, SLUICE_CHAN_BLOCK);
}

static void test_a_weak_reader_on_an_overwriting_channel_is_overrun_alike(void **state)
{
	overrun(*state, SLUICE_CHAN_OVERWRITE);
}

static void test_a_weak_reader_is_overrun_while_a_strong_one_holds_writers(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *weak, *strong;
	const uint64_t ring = CAP / S40;
	unsigned char b[F40];
	uint64_t s;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	weak = rd(ch, SLUICE_CHAN_WEAK, NULL);
	strong = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* The strong reader keeps up; the weak one reads nothing. */
	for (s = 0; s < 3 * ring; s++) {
		put40(w, s);
		get40(strong, s);
	}
	assert_int_equal(sluice_chan_try_read(weak, b, sizeof(b)), -EOVERFLOW);
	s = resumed_at(weak, s);
	assert_int_equal(sluice_chan_lost(weak), s * S40);
	get40(weak, s + 1);
	rshut(strong);
	rshut(weak);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- dead processes */

#define NEED_PROCESSES							\
	"needs a process to kill: under ThreadSanitizer sides are threads"

#if !SIDES_ARE_THREADS
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
		fill(b, 100 + i, F40);
		CK_EQ(sluice_chan_try_write(w, b, F40), 0);
	}
	if (d->len) {
		iov[0] = (struct iovec){ NULL, d->len };
		CK_EQ(sluice_chan_try_reserve_slice(w, iov, 1), 1);
		memset(iov[0].iov_base, 0xee, d->len);
	}
	atomic_store(d->stage, 1);
	CK_EQ(wait_for(d->stage, 2, 20000), 0);
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
	CK_EQ(wait_for(d->stage, 2, 20000), 0);
	raise(SIGKILL);
	return 99;
}

static void writer_dies_mid_slice(struct fx *f, enum sluice_chan_kind kind)
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

	d.stage = &sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	rm = rd(ch, SLUICE_CHAN_STRONG, NULL);
	rt = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* One reader blocked in a read all along, from before the child. */
	rloop_start(&rl, rt, 2);
	pid = h_spawn(child_writer_dies, &d, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(wait_for(d.stage, 1, 10000), 0);
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
	assert_true(intact(b, 200, F40));
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
#if SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	writer_dies_mid_slice(*state, SLUICE_CHAN_STRONG);
#endif
}

static void test_a_weak_writer_killed_mid_slice_is_skipped(void **state)
{
#if SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	writer_dies_mid_slice(*state, SLUICE_CHAN_WEAK);
#endif
}

static void test_a_killed_last_strong_writer_drains_the_channel(void **state)
{
#if SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct dead d = { .region = f->name, .kind = SLUICE_CHAN_STRONG, .frames = 3 };
	struct sluice_chan *ch;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	unsigned char b[F40];
	unsigned int k;
	int pid;
	int64_t t0;

	d.stage = &sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	pid = h_spawn(child_writer_dies, &d, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(wait_for(d.stage, 1, 10000), 0);
	assert_int_equal(info_of(ch).strong_writers, 1);
	atomic_store(d.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	for (k = 0; k < 3; k++) {
		assert_int_equal(sluice_chan_read(r, b, sizeof(b)), F40);
		assert_true(intact(b, 100 + k, F40));
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
#if SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	struct fx *f = *state;
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

	d.stage = &sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	weak = rd(ch, SLUICE_CHAN_WEAK, NULL);
	pid = h_spawn(child_reader_dies, &d, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(wait_for(d.stage, 1, 10000), 0);
	assert_int_equal(info_of(ch).strong_readers, 1);
	/* Alive, it holds the writer a ring ahead of where it opened. */
	n = fill_up(w, 0);
	assert_int_equal(n, CAP / S40);
	atomic_store(d.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	/* Dead, it holds nobody back, once swept. */
	fill(b, n, F40);
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

/* ---------------------------------------------------------------- corruption */

/*
 * A fresh channel @obj with frames 1 and 2 (40 bytes, at 0 and 64), a
 * strong and a weak reader; @poke damages it; every read must then fail
 * with @want (a negative errno; 0: any negative errno), the first one
 * possibly after frame 1 when @first_may_pass.
 */
static void read_after_poke(struct fx *f, const char *obj,
			    void (*poke)(struct lay *l), int want, bool first_may_pass)
{
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r[2];
	unsigned char *b = malloc(4096);
	struct iovec iov[2];
	struct lay l;
	unsigned int k;
	int ret;

	assert_non_null(b);
	ch = mk_named(f, obj, CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_named(f, obj);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r[0] = rd(ch, SLUICE_CHAN_STRONG, NULL);
	r[1] = rd(ch, SLUICE_CHAN_WEAK, NULL);
	put40(w, 1);
	put40(w, 2);
	poke(&l);
	for (k = 0; k < 2; k++) {
		ret = sluice_chan_try_read(r[k], b, 4096);
		if (first_may_pass && ret == F40) {
			assert_true(intact(b, 1, F40));
			ret = sluice_chan_try_read(r[k], b, 4096);
		}
		if (want ? ret != want : ret >= 0 || ret == -EAGAIN)
			fail_msg("%s reader: read returned %d, want %d",
				 k ? "weak" : "strong", ret, want);
		/* And it stays that way, for every call, without waiting. */
		ret = sluice_chan_read(r[k], b, 4096);
		assert_true(ret < 0 && ret != -ETIMEDOUT);
		if (want)
			assert_int_equal(ret, want);
		iov[0] = (struct iovec){ b, 2048 };
		iov[1] = (struct iovec){ b + 2048, 2048 };
		ret = sluice_chan_try_read_batch(r[k], iov, 2);
		assert_true(ret < 0);
		if (want)
			assert_int_equal(ret, want);
	}
	rshut(r[0]);
	rshut(r[1]);
	wshut(w);
	cshut(ch);
	free(b);
}

static void poke_bytes_huge(struct lay *l) { atomic_store(&slice_at(l, 0)->bytes, 0xfff0); }
static void poke_bytes_ring(struct lay *l)
{
	atomic_store(&slice_at(l, 0)->bytes, (uint32_t)l->cap);
}
static void poke_bytes_odd(struct lay *l) { atomic_store(&slice_at(l, 0)->bytes, 40); }
static void poke_bytes_0(struct lay *l) { atomic_store(&slice_at(l, 0)->bytes, 0); }
static void poke_frames_many(struct lay *l) { atomic_store(&slice_at(l, 0)->frames, 7); }
static void poke_frames_huge(struct lay *l) { atomic_store(&slice_at(l, 0)->frames, UINT32_MAX); }
static void poke_len_past_slice(struct lay *l) { frame_at(l, 0)->len = 48; }
static void poke_len_huge(struct lay *l) { frame_at(l, 0)->len = UINT32_MAX; }
static void poke_len_ring(struct lay *l) { frame_at(l, 0)->len = (uint32_t)l->cap; }

static void poke_seal_kind(struct lay *l)
{
	struct sluice_chan_slice *s = slice_at(l, 0);

	atomic_store(&s->seal, chan_seal(l->h->salt, 0, 3));
}

static void poke_seal_garbage(struct lay *l)
{
	atomic_store(&slice_at(l, 0)->seal, 0x0123456789abcdefull);
}

/* The seal of the slice at 64 placed at 0. */
static void poke_seal_elsewhere(struct lay *l)
{
	atomic_store(&slice_at(l, 0)->seal, chan_seal(l->h->salt, 64, CHAN_SLICE_DATA));
}

static void test_impossible_slice_headers_are_ebadmsg(void **state)
{
	struct fx *f = *state;

	read_after_poke(f, "a0", poke_bytes_huge, -EBADMSG, false);
	read_after_poke(f, "a1", poke_bytes_ring, -EBADMSG, false);
	read_after_poke(f, "a2", poke_bytes_odd, -EBADMSG, false);
	read_after_poke(f, "a3", poke_bytes_0, -EBADMSG, false);
	read_after_poke(f, "a4", poke_frames_many, -EBADMSG, true);
	read_after_poke(f, "a5", poke_frames_huge, -EBADMSG, true);
	read_after_poke(f, "a6", poke_seal_kind, -EBADMSG, false);
}

static void test_impossible_frame_lengths_are_ebadmsg(void **state)
{
	struct fx *f = *state;

	read_after_poke(f, "b0", poke_len_past_slice, -EBADMSG, false);
	read_after_poke(f, "b1", poke_len_huge, -EBADMSG, false);
	read_after_poke(f, "b2", poke_len_ring, -EBADMSG, false);
}

/*
 * A length gone wrong after good frames of the same slice: a batch hands
 * out the frames before it, and the next call says -EBADMSG, as does every
 * call after that.
 */
static void test_an_impossible_length_after_good_frames_ends_the_batch_there(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r[2];
	unsigned char out[3][F40], in[3][256];
	struct iovec oi[3], ii[3];
	struct sluice_chan_frame *second;
	struct lay l;
	unsigned int k, j;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_of(f);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r[0] = rd(ch, SLUICE_CHAN_STRONG, NULL);
	r[1] = rd(ch, SLUICE_CHAN_WEAK, NULL);
	for (k = 0; k < 3; k++) {
		fill(out[k], k, F40);
		oi[k] = (struct iovec){ out[k], F40 };
	}
	assert_int_equal(sluice_chan_write_batch(w, oi, 3), 3);
	/*
	 * Two frames of 48 bytes are left in the slice; claim 200, which the
	 * buffers would hold.
	 */
	second = (struct sluice_chan_frame *)((unsigned char *)frame_at(&l, 0) +
					      CHAN_FRAME_HDR + F40);
	assert_int_equal(second->len, F40);
	second->len = 200;
	for (k = 0; k < 2; k++) {
		for (j = 0; j < 3; j++)
			ii[j] = (struct iovec){ in[j], sizeof(in[j]) };
		assert_int_equal(sluice_chan_try_read_batch(r[k], ii, 3), 1);
		assert_int_equal(ii[0].iov_len, F40);
		assert_true(intact(in[0], 0, F40));
		for (j = 0; j < 2; j++) {
			ii[0] = (struct iovec){ in[0], sizeof(in[0]) };
			assert_int_equal(sluice_chan_try_read_batch(r[k], ii, 3), -EBADMSG);
		}
	}
	rshut(r[0]);
	rshut(r[1]);
	wshut(w);
	cshut(ch);
}

/*
 * A slice whose seal is not its own is, as far as anyone can tell, a slice
 * not committed yet: readers wait for it (-EAGAIN, then -ETIMEDOUT), or
 * call it impossible (-EBADMSG).  Never do they hand out its frame.
 */
static void wrong_seal(struct fx *f, const char *obj, void (*poke)(struct lay *l))
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r[2];
	unsigned char b[64];
	struct lay l;
	unsigned int k;
	int ret;

	ch = mk_named(f, obj, CAP, SLUICE_CHAN_BLOCK, &o);
	l = lay_named(f, obj);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r[0] = rd(ch, SLUICE_CHAN_STRONG, NULL);
	r[1] = rd(ch, SLUICE_CHAN_WEAK, NULL);
	put40(w, 1);
	put40(w, 2);
	poke(&l);
	for (k = 0; k < 2; k++) {
		ret = sluice_chan_try_read(r[k], b, sizeof(b));
		assert_true(ret == -EAGAIN || ret == -EBADMSG);
		ret = sluice_chan_read(r[k], b, sizeof(b));
		assert_true(ret == -ETIMEDOUT || ret == -EBADMSG);
	}
	rshut(r[0]);
	rshut(r[1]);
	wshut(w);
	cshut(ch);
}

/*
 * A slice that would run past the end of the ring is impossible: readers
 * say so rather than copy bytes from beyond the channel.
 */
static void test_a_slice_across_the_ring_end_is_ebadmsg(void **state)
{
	struct fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_slice *s;
	unsigned char b[4096];
	uint64_t seq, p;
	struct lay l;

	ch = mk_named(f, "edge", CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_named(f, "edge");
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (seq = 0; seq < CAP / S40 - 1; seq++)
		put40(w, seq);
	p = info_of(ch).tail;
	assert_int_equal(p, CAP - S40);
	/* A data slice of 96 bytes at 64 before the end: 48 past it. */
	s = slice_at(&l, p);
	atomic_store(&s->bytes, 96);
	atomic_store(&s->frames, 1);
	frame_at(&l, p)->len = 88;
	atomic_store(&l.h->tail, p + CHAN_SLICE_HDR + 96);
	atomic_store(&s->seal, chan_seal(l.h->salt, p, CHAN_SLICE_DATA));
	for (seq = 0; seq < CAP / S40 - 1; seq++)
		get40(r, seq);
	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), -EBADMSG);
	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), -EBADMSG);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_a_slice_with_a_wrong_seal_is_never_read(void **state)
{
	wrong_seal(*state, "s0", poke_seal_garbage);
	wrong_seal(*state, "s1", poke_seal_elsewhere);
}

/*
 * committed ahead of the tail: a reader opening there has nowhere to
 * start.  Never a frame; a weak reader, which looks at the tail, calls it
 * impossible; a strong one may just find nothing there.
 */
static void test_a_committed_ahead_of_the_tail_never_gives_a_new_reader_a_frame(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20 * MS);
	static const enum sluice_chan_kind kinds[2] = { SLUICE_CHAN_WEAK, SLUICE_CHAN_STRONG };
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char b[64];
	uint64_t tail;
	struct lay l;
	unsigned int k;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	l = lay_of(f);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	put40(w, 1);
	tail = atomic_load(&l.h->tail);
	atomic_store(&l.h->committed, tail + 4 * CAP);
	for (k = 0; k < 2; k++) {
		r = NULL;
		ret = sluice_chan_reader_open(ch, kinds[k], NULL, &r);
		if (ret) {
			assert_int_equal(ret, -EBADMSG);
			continue;
		}
		track(H_READER, r);
		put40(w, 2);
		ret = sluice_chan_try_read(r, b, sizeof(b));
		if (kinds[k] == SLUICE_CHAN_WEAK)
			assert_int_equal(ret, -EBADMSG);
		else
			assert_true(ret == -EBADMSG || ret == -EAGAIN);
		ret = sluice_chan_read(r, b, sizeof(b));
		if (kinds[k] == SLUICE_CHAN_WEAK)
			assert_int_equal(ret, -EBADMSG);
		else
			assert_true(ret == -EBADMSG || ret == -ETIMEDOUT);
		rshut(r);
	}
	wshut(w);
	cshut(ch);
}

static void test_impossible_positions_fail_writers(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_rent *me;
	unsigned char b[64] = { 0 };
	uint64_t tail, cur;
	struct lay l;
	unsigned int k;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	l = lay_of(f);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* Two laps written and read, so that positions behind make sense. */
	for (k = 0; k < 2 * CAP / S40; k++) {
		put40(w, k);
		get40(r, k);
	}
	tail = atomic_load(&l.h->tail);
	assert_int_equal(tail, 2 * CAP);
	me = my_rent(&l);
	cur = atomic_load(&me->cursor);
	assert_true(cur <= tail);

	/* A strong reader's cursor ahead of the tail. */
	atomic_store(&me->cursor, tail + 4096);
	assert_int_equal(sluice_chan_try_write(w, b, 8), -EBADMSG);
	assert_int_equal(sluice_chan_write(w, b, 8), -EBADMSG);
	/* More than a ring behind it: no reader can be there. */
	atomic_store(&me->cursor, tail - CAP - 64);
	ret = sluice_chan_try_write(w, b, 8);
	assert_true(ret < 0);
	ret = sluice_chan_write(w, b, 8);
	assert_true(ret < 0);
	atomic_store(&me->cursor, cur);
	assert_int_equal(atomic_load(&l.h->tail), tail);

	/* The tail behind what is committed. */
	atomic_store(&l.h->tail, tail - 64);
	assert_int_equal(sluice_chan_try_write(w, b, 8), -EBADMSG);
	ret = sluice_chan_info(ch, &(struct sluice_chan_info){ 0 });
	assert_true(ret == 0 || ret == -EBADMSG);
	/* Far ahead of everything. */
	atomic_store(&l.h->tail, tail + 64 * CAP);
	ret = sluice_chan_try_write(w, b, 8);
	assert_true(ret < 0);
	ret = sluice_chan_write(w, b, 8);
	assert_true(ret < 0);
	atomic_store(&l.h->tail, tail);
	/* Put back, it all works again. */
	put40(w, 1000);
	get40(r, 1000);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/*
 * Positions a reader takes from shared memory (where it starts: committed;
 * where an overtaken weak reader resumes: from the tail) must be checked
 * before a slice header is read there: one off the 16-byte grid near the
 * end of the ring would have it read past the ring.  To make such a read
 * fault rather than pass unseen, the ring here is the last thing in its
 * region's mapping, and the reading is done in a child, so that a fault
 * fails the test instead of ending the program.
 */
#define EDGE_CAP	CAP

static struct sluice_region *region_ending_in_a_channel(struct sluice_chan **out,
						       void **guard, size_t canary)
{
	SLUICE_OPTS(sluice_region_opts, ro, .pages = SLUICE_PAGES_NO_HUGE);
	SLUICE_OPTS(sluice_chan_opts, o, .readers_max = 2, .writers_max = 2);
	struct sluice_region_info ri = { .sz = sizeof(ri) };
	struct sluice_region *r, *probe;
	struct sluice_obj_info oi;
	char name[H_NAME_SZ];
	uint64_t size, top, off;
	struct sluice_chan *ch;

	/* How big such a channel is: make one in a scratch region. */
	assert_int_equal(sluice_region_create(h_name(name), MIB, &ro, &probe), 0);
	assert_int_equal(sluice_chan_create(probe, "e", EDGE_CAP, SLUICE_CHAN_BLOCK, &o, &ch), 0);
	assert_int_equal(sluice_region_find(probe, "e", &oi), 0);
	size = oi.size;
	assert_int_equal(sluice_chan_close(ch), 0);
	sluice_region_destroy(probe);

	/*
	 * Leave a hole of the region's size just below a page nobody may
	 * touch: the kernel maps top-down, into the highest hole that fits,
	 * so the region most likely lands there, with the page right after.
	 */
	*guard = mmap(NULL, MIB + 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(*guard != MAP_FAILED);
	assert_int_equal(munmap(*guard, MIB), 0);
	*guard = (unsigned char *)*guard + MIB;
	assert_int_equal(sluice_region_create(h_name(name), MIB, &ro, &r), 0);
	assert_int_equal(sluice_region_info(r, &ri), 0);
	top = (ri.size - ri.heap_size + ri.heap_used + 63) & ~63ull;
	assert_int_equal(sluice_region_alloc(r, "filler", SLUICE_OBJ_RAW,
					     ri.size - size - canary - top, 64, &off), 0);
	assert_int_equal(sluice_chan_create(r, "e", EDGE_CAP, SLUICE_CHAN_BLOCK, &o, &ch), 0);
	assert_int_equal(sluice_region_find(r, "e", &oi), 0);
	assert_int_equal(oi.offset + oi.size, ri.size - canary);
	/* Bytes right after the ring that nobody may write. */
	if (canary) {
		assert_int_equal(sluice_region_alloc(r, "canary", SLUICE_OBJ_RAW, canary, 64, &off), 0);
		assert_int_equal(off, oi.offset + oi.size);
		memset(sluice_region_at(r, off, canary), 0x5a, canary);
	}
	*out = ch;
	return r;
}

enum edge_poke { EDGE_TAIL, EDGE_COMMITTED, EDGE_COMMITTED_WRITER, EDGE_TAIL_WRITER };

struct edge {
	struct sluice_region *r;
	enum edge_poke poke;
};

/* In a child: 0 if every call after the poke failed with an errno. */
static int child_edge(void *p)
{
	struct edge *e = p;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *weak, *r2;
	struct sluice_chan *ch;
	unsigned char b[F40] = { 0 };
	struct lay l;
	unsigned int k;
	int ret;

	/* A fault kills the child: cmocka's handler would run tests in it. */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	CK_EQ(sluice_chan_attach(e->r, "e", NULL, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_WEAK, NULL, &weak), 0);
	for (k = 0; k < 2 * EDGE_CAP / S40; k++)
		CK_EQ(sluice_chan_try_write(w, b, F40), 0);
	l = lay_in(e->r, "e");
	CK(l.h);
	CK_EQ(atomic_load(&l.h->tail), 2 * EDGE_CAP);
	if (e->poke == EDGE_TAIL) {
		/* Overtaken, with no index to go by: it must look at the tail. */
		for (k = 0; k < CHAN_INDEX_N; k++)
			atomic_store(&l.index[k], 0);
		atomic_store(&l.h->tail, 3 * EDGE_CAP - 4);
		for (k = 0; k < 3; k++) {
			ret = sluice_chan_try_read(weak, b, sizeof(b));
			fprintf(stderr, "    weak read %u after the tail went off the grid: %d\n",
				k, ret);
			CK(ret < 0 && ret != -EAGAIN);
		}
	} else if (e->poke == EDGE_TAIL_WRITER) {
		/*
		 * 4 bytes short of the end, with committed (on the grid,
		 * behind the tail) saying there is room: a pad's header
		 * there would be 12 bytes past the ring.
		 */
		atomic_store(&l.h->committed, 2 * EDGE_CAP + 64);
		atomic_store(&l.h->tail, 3 * EDGE_CAP - 4);
		for (k = 0; k < 4; k++) {
			ret = sluice_chan_try_write(w, b, F40);
			fprintf(stderr, "    write %u after the tail went off the grid: %d\n",
				k, ret);
			CK(ret == -EBADMSG || ret == -EAGAIN);
		}
	} else if (e->poke == EDGE_COMMITTED_WRITER) {
		/* Writers walk committed forward when they look for room. */
		atomic_store(&l.h->committed, 2 * EDGE_CAP - 4);
		for (k = 0; k < 2 * EDGE_CAP / S40; k++) {
			ret = sluice_chan_try_write(w, b, F40);
			CK(ret == 0 || ret == -EBADMSG || ret == -EAGAIN);
		}
	} else {
		atomic_store(&l.h->committed, 2 * EDGE_CAP - 4);
		ret = sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r2);
		fprintf(stderr, "    reader_open after committed went off the grid: %d\n", ret);
		if (!ret) {
			ret = sluice_chan_try_read(r2, b, sizeof(b));
			fprintf(stderr, "    and its read: %d\n", ret);
			CK(ret < 0 && ret != -EAGAIN);
		}
	}
	return 0;
}

static void edge(enum edge_poke poke)
{
	struct edge e = { .poke = poke };
	const size_t canary = poke == EDGE_TAIL_WRITER ? 4096 : 0;
	struct sluice_obj_info oi;
	struct sluice_chan *ch;
	unsigned char *end, *c;
	size_t k, hit = SIZE_MAX;
	void *guard;
	int ret;

	e.r = region_ending_in_a_channel(&ch, &guard, canary);
	end = (unsigned char *)sluice_region_base(e.r) + sluice_region_size(e.r);
	if (end != guard)
		print_message("    (the region did not land before the guard page)\n");
	ret = h_fork(child_edge, &e, CHILD_TIMEOUT);
	munmap(guard, 4096);
	if (ret >= H_SIGNALED)
		print_message("    the child died of signal %d\n", ret - H_SIGNALED);
	if (canary && !sluice_region_find(e.r, "canary", &oi)) {
		c = sluice_region_at(e.r, oi.offset, canary);
		for (k = 0; c && k < canary && hit == SIZE_MAX; k++)
			if (c[k] != 0x5a)
				hit = k;
	}
	assert_int_equal(sluice_chan_close(ch), 0);
	sluice_region_destroy(e.r);
	if (hit != SIZE_MAX)
		fail_msg("byte %zu after the ring was written", hit);
	assert_int_equal(ret, 0);
}

static void test_a_tail_off_the_grid_never_leads_a_weak_reader_out_of_the_ring(void **state)
{
	(void)state;
	edge(EDGE_TAIL);
}

static void test_a_committed_off_the_grid_never_leads_a_reader_out_of_the_ring(void **state)
{
	(void)state;
	edge(EDGE_COMMITTED);
}

static void test_a_committed_off_the_grid_never_leads_a_writer_out_of_the_ring(void **state)
{
	(void)state;
	edge(EDGE_COMMITTED_WRITER);
}

static void test_a_tail_off_the_grid_never_leads_a_writer_out_of_the_ring(void **state)
{
	(void)state;
	edge(EDGE_TAIL_WRITER);
}

/*
 * Garbage anywhere a peer can write: slices, frames, the index, the hot
 * words of the header, the tables.  Whatever the damage, every call
 * returns (no call waits past its short deadline), a length it returns
 * fits the buffer (exactly sized, so AddressSanitizer sees one byte
 * more), and nothing crashes.
 */
static bool read_ok(int ret, size_t cap)
{
	return (ret >= 0 && (size_t)ret <= cap) || ret == -EBADMSG || ret == -EAGAIN ||
	       ret == -EOVERFLOW || ret == -ENOBUFS || ret == -EPIPE ||
	       ret == -ETIMEDOUT || ret == -ECONNABORTED;
}

static bool write_ok(int ret)
{
	return ret >= 0 || ret == -EBADMSG || ret == -EAGAIN || ret == -EPIPE ||
	       ret == -ETIMEDOUT || ret == -ECONNABORTED;
}

/* A random 8-byte word of @l's shared memory, or a hot header word. */
static _Atomic uint64_t *victim(const struct lay *l, uint64_t *rng)
{
	uint64_t x = rng_next(rng);
	uint32_t i;

	switch (x % 8) {
	case 0:
		return x & 8 ? &l->h->tail : &l->h->committed;
	case 1:
		return &l->index[(x >> 8) % CHAN_INDEX_N];
	case 2:
		i = (uint32_t)((x >> 8) % l->h->readers_max);
		return (_Atomic uint64_t *)&l->rent[i] + (x >> 20) % 3;
	case 3:
		i = (uint32_t)((x >> 8) % l->h->writers_max);
		return (_Atomic uint64_t *)&l->went[i] + (x >> 20) % 4;
	default:
		return (_Atomic uint64_t *)(l->data + ((x >> 8) % (l->cap / 8)) * 8);
	}
}

static uint64_t garbage(uint64_t old, uint64_t *rng)
{
	uint64_t x = rng_next(rng);

	switch (x % 6) {
	case 0:
		return x;				/* anything */
	case 1:
		return old ^ (1ull << ((x >> 8) % 64));	/* a bit flipped */
	case 2:
		return old + 16 * ((x >> 8) % 9) - 64;	/* a little off */
	case 3:
		return old + (1ull << 32);		/* the other half */
	case 4:
		return 0;
	default:
		return UINT64_MAX;
	}
}

#define FUZZ_CANARY	256u
#define FUZZ_PER_REGION	25u	/* a channel and a canary each: the directory is small */

static void fuzz_round(struct fx *f, uint64_t seed, unsigned int round)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 1 * MS, .readers_max = 4, .writers_max = 4);
	SLUICE_OPTS(sluice_chan_opts, eo, .timeout_ns = 1 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w, *ww;
	struct sluice_chan_reader *rs, *rw;
	struct sluice_chan_info info;
	struct sluice_obj_info oi;
	struct iovec iov[4];
	unsigned char *b, *canary, out[300];
	uint64_t off;
	uint64_t rng = seed, *word;
	unsigned int k, n, hits;
	size_t cap;
	char obj[16];
	struct lay l;
	int ret;

	snprintf(obj, sizeof(obj), "z%u", round);
	ch = mk_named(f, obj, CAP, round % 3 ? SLUICE_CHAN_BLOCK : SLUICE_CHAN_OVERWRITE, &o);
	l = lay_named(f, obj);
	/* Right after the channel, bytes that must stay as they are. */
	assert_int_equal(sluice_region_find(f->r, obj, &oi), 0);
	snprintf(obj, sizeof(obj), "k%u", round);
	assert_int_equal(sluice_region_alloc(f->r, obj, SLUICE_OBJ_RAW, FUZZ_CANARY, 64, &off), 0);
	assert_int_equal(off, oi.offset + oi.size);
	canary = sluice_region_at(f->r, off, FUZZ_CANARY);
	memset(canary, 0x5a, FUZZ_CANARY);
	w = wr(ch, SLUICE_CHAN_STRONG, &eo);
	ww = wr(ch, SLUICE_CHAN_WEAK, &eo);
	rs = round % 3 ? rd(ch, SLUICE_CHAN_STRONG, &eo) : NULL;
	rw = rd(ch, SLUICE_CHAN_WEAK, &eo);
	for (k = 0; k < 150; k++) {
		n = 1 + (unsigned int)(rng_next(&rng) % 3);
		for (ret = 0; ret < (int)n; ret++) {
			iov[ret].iov_base = out;
			iov[ret].iov_len = rng_next(&rng) % sizeof(out);
		}
		fill(out, k, sizeof(out));
		ret = sluice_chan_try_write_batch(k % 2 ? w : ww, iov, n);
		if (ret == -EAGAIN && rs)
			break;
		assert_int_equal(ret, (int)n);
	}
	/* Some read, some not, so that readers stand at different places. */
	for (k = 0; rs && k < 20; k++)
		(void)sluice_chan_try_read(rs, scratch, sizeof(scratch));
	hits = 1 + (unsigned int)(rng_next(&rng) % 4);
	for (k = 0; k < hits; k++) {
		word = (uint64_t *)victim(&l, &rng);
		atomic_store((_Atomic uint64_t *)word,
			     garbage(atomic_load((_Atomic uint64_t *)word), &rng));
	}
	for (k = 0; k < 40; k++) {
		cap = rng_next(&rng) % 400;
		b = malloc(cap ? cap : 1);
		assert_non_null(b);
		switch (rng_next(&rng) % 6) {
		case 0:
			ret = rs ? sluice_chan_try_read(rs, b, cap) : 0;
			break;
		case 1:
			ret = sluice_chan_try_read(rw, b, cap);
			break;
		case 2:
			ret = sluice_chan_read(rw, b, cap);
			break;
		case 3:
			iov[0] = (struct iovec){ b, cap / 2 };
			iov[1] = (struct iovec){ b + cap / 2, cap - cap / 2 };
			ret = sluice_chan_try_read_batch(rs ? rs : rw, iov, 2);
			if (ret > 0 && (iov[0].iov_len > cap / 2 ||
					(ret > 1 && iov[1].iov_len > cap - cap / 2)))
				fail_msg("a batch read longer frames than its buffers");
			if (ret > 0)
				ret = 0;
			break;
		case 4:
			ret = sluice_chan_try_write(k % 2 ? w : ww, out, rng_next(&rng) % 300);
			if (!write_ok(ret))
				fail_msg("write returned %d", ret);
			ret = 0;
			break;
		default:
			ret = sluice_chan_info(ch, &info);
			assert_true(ret == 0 || ret == -EBADMSG);
			ret = 0;
			break;
		}
		free(b);
		if (!read_ok(ret, cap))
			fail_msg("round %u call %u: %d into %zu bytes", round, k, ret, cap);
	}
	/* Reserving and giving up on damaged ground, then closing it all. */
	iov[0] = (struct iovec){ NULL, 8 };
	ret = sluice_chan_try_reserve_slice(ww, iov, 1);
	if (ret == 1)
		assert_int_equal(sluice_chan_abort(ww), 0);
	else
		assert_true(write_ok(ret));
	if (rs)
		rshut(rs);
	rshut(rw);
	wshut(ww);
	wshut(w);
	cshut(ch);
	for (k = 0; k < FUZZ_CANARY; k++)
		if (canary[k] != 0x5a)
			fail_msg("round %u: byte %u after the channel was written", round, k);
}

static void test_garbage_in_shared_memory_never_crashes_or_overruns(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_region_opts, ro, .pages = SLUICE_PAGES_NO_HUGE);
	struct sluice_region *saved = f->r;
	const char *env = getenv("SLUICE_TEST_FUZZ_ROUNDS");
	unsigned int round, rounds = env ? (unsigned int)atoi(env) : FUZZ_ROUNDS;
	uint64_t seed = getenv("SLUICE_TEST_FUZZ_SEED") ?
			strtoull(getenv("SLUICE_TEST_FUZZ_SEED"), NULL, 0) : 0;
	char name[H_NAME_SZ];

	for (round = 0; round < rounds; round++) {
		if (round % FUZZ_PER_REGION == 0) {
			if (f->r != saved)
				sluice_region_destroy(f->r);
			assert_int_equal(sluice_region_create(h_name(name), 2 * MIB, &ro, &f->r), 0);
		}
		fuzz_round(f, mix(seed + round + 1), round % FUZZ_PER_REGION);
	}
	sluice_region_destroy(f->r);
	f->r = saved;
}

/* ---------------------------------------------------------------- tagged frames */

/*
 * A frame of the concurrent tests: its writer, its number in that writer's
 * sequence, and a checksum of everything, then bytes that follow from
 * writer and number.  Its length follows from them too.
 */
struct tag {
	uint32_t wid;
	uint32_t seq;
	uint64_t sum;
};

#define TAG_SZ		sizeof(struct tag)
#define WRITERS_MAX	4

static uint64_t tag_key(uint32_t wid, uint32_t seq)
{
	return (uint64_t)wid << 32 | seq;
}

static uint64_t tag_sum(uint32_t wid, uint32_t seq, const unsigned char *body, size_t len)
{
	uint64_t sum = 0xcbf29ce484222325ull ^ tag_key(wid, seq), w;
	size_t i;

	sum = (sum ^ len) * 0x100000001b3ull;
	for (i = 0; i < len; i += 8) {
		w = 0;
		memcpy(&w, body + i, len - i < 8 ? len - i : 8);
		sum = (sum ^ w) * 0x100000001b3ull;
	}
	return sum;
}

/* Length of frame @seq of writer @wid: from TAG_SZ to @max. */
static size_t tag_len(uint32_t wid, uint32_t seq, size_t max)
{
	return max == TAG_SZ ? TAG_SZ :
	       TAG_SZ + mix(tag_key(wid, seq) ^ 0x5eed) % (max - TAG_SZ + 1);
}

static void tag_make(unsigned char *b, uint32_t wid, uint32_t seq, size_t len)
{
	struct tag t = { .wid = wid, .seq = seq };

	fill(b + TAG_SZ, tag_key(wid, seq), len - TAG_SZ);
	t.sum = tag_sum(wid, seq, b + TAG_SZ, len - TAG_SZ);
	memcpy(b, &t, TAG_SZ);
}

/*
 * Is this a whole frame, of the length its writer and number say: @max
 * for frames of tag_len(), or exactly @fixed bytes?
 */
static int tag_check(const unsigned char *b, size_t len, size_t max, size_t fixed,
		     struct tag *t)
{
	if (len < TAG_SZ) {
		fprintf(stderr, "a frame of %zu bytes\n", len);
		return 1;
	}
	memcpy(t, b, TAG_SZ);
	if (t->wid >= WRITERS_MAX ||
	    len != (fixed ? fixed : tag_len(t->wid, t->seq, max)) ||
	    t->sum != tag_sum(t->wid, t->seq, b + TAG_SZ, len - TAG_SZ)) {
		fprintf(stderr, "frame %u of writer %u (%zu bytes): torn or forged\n",
			t->seq, t->wid, len);
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- many to many */

struct stream {
	struct sluice_region *r;
	struct sync *sy;
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
	CK_EQ(wait_for(&s->sy->ready, s->strong + s->weak, 10000), 0);
	CK_EQ(sluice_chan_attach(s->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
	/* Nobody writes before all are open: the first to close would drain. */
	atomic_fetch_add(&s->sy->wopen, 1);
	CK_EQ(wait_for(&s->sy->wopen, s->writers, 10000), 0);
	buf = malloc(BATCH * s->max);
	CK(buf);
	while (seq < s->n) {
		k = 1 + (unsigned int)(rng_next(&rng) % BATCH);
		if (k > s->n - seq)
			k = s->n - seq;
		for (i = 0; i < k; i++) {
			len = tag_len(wid, seq + i, s->max);
			iov[i] = (struct iovec){ buf + i * s->max, len };
			tag_make(iov[i].iov_base, wid, seq + i, len);
		}
		switch (rng_next(&rng) % 8) {
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
				tag_make(iov[i].iov_base, wid, seq + i, iov[i].iov_len);
			}
			CK_EQ(sluice_chan_commit(w), 0);
			break;
		default:
			/* A lie no reader may ever see. */
			ret = sluice_chan_try_reserve_slice(w, iov, 1);
			if (ret == -EAGAIN)
				continue;
			CK_EQ(ret, 1);
			CK(iov[0].iov_len >= TAG_SZ);
			tag_make(iov[0].iov_base, wid, seq, iov[0].iov_len);
			((struct tag *)iov[0].iov_base)->sum ^= 1;
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
	struct tag t;
	int ret;

	stream_opts(s, &o);
	CK_EQ(sluice_chan_attach(s->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, weak ? SLUICE_CHAN_WEAK : SLUICE_CHAN_STRONG,
				      NULL, &r), 0);
	atomic_fetch_add(&s->sy->ready, 1);
	buf = malloc(BATCH * s->max);
	CK(buf);
	for (;;) {
		k = 1 + (unsigned int)(rng_next(&rng) % BATCH);
		for (i = 0; i < k; i++)
			iov[i] = (struct iovec){ buf + i * s->max, s->max };
		switch (rng_next(&rng) % 4) {
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
			CK_EQ(tag_check(iov[i].iov_base, iov[i].iov_len, s->max, 0, &t), 0);
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

static void run_stream(struct fx *f, unsigned int writers, unsigned int strong,
		       unsigned int weak, uint32_t n, size_t max, uint64_t cap,
		       uint32_t spin_ns)
{
	struct stream s = {
		.r = f->r, .sy = sync_of(f->r), .writers = writers, .strong = strong,
		.weak = weak, .n = n, .max = max, .spin_ns = spin_ns,
	};
	struct side_arg args[16];
	struct side sides[16];
	struct sluice_chan *ch;
	struct sluice_chan_info i;
	unsigned int k, nr = strong + weak;
	int64_t t0, ms;

	assert_non_null(s.sy);
	assert_true(writers <= WRITERS_MAX && writers + nr <= 16);
	ch = mk(f, cap, SLUICE_CHAN_BLOCK, NULL);
	for (k = 0; k < nr; k++) {
		args[k] = (struct side_arg){ &s, k };
		sides[k] = (struct side){ stream_reader, &args[k] };
	}
	for (k = 0; k < writers; k++) {
		args[nr + k] = (struct side_arg){ &s, k };
		sides[nr + k] = (struct side){ stream_writer, &args[nr + k] };
	}
	t0 = h_now_ms();
	run_sides(sides, nr + writers, CHILD_TIMEOUT);
	ms = h_now_ms() - t0;
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(i.weak_readers, 0);
	assert_committed_below(i, i.tail);
	assert_int_equal(i.abandoned, 0);
	assert_true(i.tail >= (uint64_t)writers * n * slice1(TAG_SZ) / BATCH);
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
	struct sync *sy;
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

	CK_EQ(wait_for(&wr_->sy->ready, 1 + wr_->strong, 10000), 0);
	CK_EQ(sluice_chan_attach(wr_->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
	atomic_fetch_add(&wr_->sy->wopen, 1);
	CK_EQ(wait_for(&wr_->sy->wopen, wr_->writers, 10000), 0);
	for (seq = 0; seq < wr_->n; seq++) {
		tag_make(b, a->id, seq, F40);
		switch (rng_next(&rng) % 3) {
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
			tag_make(iov[0].iov_base, a->id, seq, F40);
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
	struct tag t;
	int ret;

	CK_EQ(sluice_chan_attach(wr_->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_WEAK, NULL, &r), 0);
	atomic_fetch_add(&wr_->sy->ready, 1);
	for (;;) {
		k = 1 + (unsigned int)(rng_next(&rng) % BATCH);
		for (i = 0; i < k; i++)
			iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		if (rng_next(&rng) % 2) {
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
			CK_EQ(tag_check(iov[i].iov_base, F40, 0, F40, &t), 0);
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
		if (rng_next(&rng) % 16 == 0)
			doze_us(20 + rng_next(&rng) % 200);
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
	struct tag t;
	int ret;

	CK_EQ(sluice_chan_attach(wr_->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), 0);
	atomic_fetch_add(&wr_->sy->ready, 1);
	while ((ret = sluice_chan_read(r, b, sizeof(b))) != -EPIPE) {
		CK_EQ(ret, F40);
		CK_EQ(tag_check(b, F40, 0, F40, &t), 0);
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

static void run_weak(struct fx *f, unsigned int writers, unsigned int strong,
		     enum sluice_chan_policy policy)
{
	struct weak_run wr_ = {
		.r = f->r, .sy = sync_of(f->r), .writers = writers, .strong = strong,
		.n = WEAK_N / writers, .policy = policy,
	};
	struct weak_arg args[8];
	struct side sides[8];
	struct sluice_chan *ch;
	unsigned int k, n = 0;
	int64_t t0, ms;

	assert_non_null(wr_.sy);
	ch = mk(f, CAP, policy, NULL);
	args[n] = (struct weak_arg){ &wr_, 0 };
	sides[n] = (struct side){ weak_reader, &args[n] };
	n++;
	for (k = 0; k < strong; k++, n++) {
		args[n] = (struct weak_arg){ &wr_, k };
		sides[n] = (struct side){ weak_run_strong_reader, &args[n] };
	}
	for (k = 0; k < writers; k++, n++) {
		args[n] = (struct weak_arg){ &wr_, k };
		sides[n] = (struct side){ weak_writer, &args[n] };
	}
	t0 = h_now_ms();
	run_sides(sides, n, CHILD_TIMEOUT);
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
	struct sync *sy;
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

	CK_EQ(wait_for(&j->sy->ready, 1, 10000), 0);
	CK_EQ(sluice_chan_attach(j->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
	atomic_store(&j->sy->wopen, 1);
	for (seq = 0; seq < j->na; seq++) {
		len = tag_len(0, seq, JOIN_MAX);
		tag_make(b, 0, seq, len);
		CK_EQ(sluice_chan_write(w, b, len), 0);
		/* Frames below this are committed: a reader opening now is past them. */
		atomic_store_explicit(&j->sy->last[0], seq + 1, memory_order_release);
	}
	/*
	 * Closing first would drain the channel under writer 1, and the
	 * reader that comes and goes must have come a few times.
	 */
	CK_EQ(wait_for(&j->sy->done, 1, 30000), 0);
	CK_EQ(wait_for(&j->sy->stage, 3, 30000), 0);
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

	CK_EQ(wait_for(&j->sy->wopen, 1, 10000), 0);
	CK_EQ(sluice_chan_attach(j->r, "c", &o, &ch), 0);
	for (round = 0; round < j->rounds; round++) {
		CK_EQ(sluice_chan_writer_open(ch, round % 2 ? SLUICE_CHAN_WEAK :
					      SLUICE_CHAN_STRONG, NULL, &w), 0);
		for (i = 0; i < j->per; i++, seq++) {
			len = tag_len(1, seq, JOIN_MAX);
			tag_make(b, 1, seq, len);
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
	struct tag t;
	int ret;

	CK_EQ(sluice_chan_attach(j->r, "c", &o, &ch), 0);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), 0);
	atomic_store(&j->sy->ready, 1);
	while ((ret = sluice_chan_read(r, b, sizeof(b))) != -EPIPE) {
		CK(ret >= 0);
		CK_EQ(tag_check(b, (size_t)ret, JOIN_MAX, 0, &t), 0);
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
	struct tag t;
	int ret;

	CK_EQ(wait_for(&j->sy->wopen, 1, 10000), 0);
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
			CK_EQ(tag_check(b, (size_t)ret, JOIN_MAX, 0, &t), 0);
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
	struct fx *f = *state;
	struct joining j = {
		.r = f->r, .sy = sync_of(f->r), .na = JOIN_N,
		.rounds = 40, .per = JOIN_N / 80,
	};
	struct side sides[4] = {
		{ join_reader_all, &j }, { join_writer_a, &j },
		{ join_writer_b, &j }, { join_reader_comes_and_goes, &j },
	};
	struct sluice_chan *ch;
	struct sluice_chan_info i;
	int64_t t0;

	assert_non_null(j.sy);
	ch = mk(f, 16384, SLUICE_CHAN_BLOCK, NULL);
	t0 = h_now_ms();
	run_sides(sides, 4, CHILD_TIMEOUT);
	print_message("    %u + %u frames in %" PRId64 " ms; a reader came and went %"
		      PRIu64 " times\n", j.na, j.rounds * j.per, h_now_ms() - t0,
		      atomic_load(&j.sy->count[0]));
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.strong_readers + i.weak_readers, 0);
	assert_int_equal(i.strong_writers, 0);
	cshut(ch);
}

/* ---------------------------------------------------------------- every wait ends */

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

static void *guard_fn(void *p)
{
	struct guard *g = p;
	int64_t t0 = h_now_ms();

	while (!atomic_load(&g->done) && h_now_ms() - t0 < g->ms)
		h_sleep_ms(5);
	if (!atomic_load(&g->done))
		sluice_cancel_trigger(g->tok, 0);	/* -ECANCELED */
	return NULL;
}

static struct sluice_cancel *guard_start(struct guard *g, unsigned int ms)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(sluice_cancel_create(NULL, &g->tok), 0);
	g->ms = ms;
	assert_int_equal(pthread_create(&g->t, NULL, guard_fn, g), 0);
	return g->tok;
}

static void guard_stop(struct guard *g)
{
	atomic_store(&g->done, true);
	assert_int_equal(pthread_join(g->t, NULL), 0);
	sluice_cancel_destroy(g->tok);
}

static void test_a_read_behind_a_held_slice_of_a_drained_channel_ends_by_its_deadline(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 100 * MS);
	struct iovec iov[1] = { { NULL, 40 } };
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct guard g;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	o.cancel = guard_start(&g, 3000);
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), 1);
	assert_int_equal(sluice_chan_drain(ch), 0);
	/* The slice may still come: the read waits for it, until its deadline. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	assert_took(t0, 100, 1000);
	fill(iov[0].iov_base, 7, 40);
	assert_int_equal(sluice_chan_commit(w), 0);
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), 40);
	assert_true(intact(scratch, 7, 40));
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -EPIPE);
	guard_stop(&g);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* A peer sets an end in ctl that tail does not have: nobody spins on it. */
static void lone_ctl_bit(struct fx *f, uint32_t bit)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 1000 * MS);
	struct iovec iov[1] = { { NULL, 40 } };
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct guard g;
	struct lay l;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	o.cancel = guard_start(&g, 3000);
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	l = lay_of(f);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), 1);
	atomic_fetch_or(&l.h->ctl, bit);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -EBADMSG);
	assert_int_equal(sluice_chan_try_read(r, scratch, sizeof(scratch)), -EBADMSG);
	assert_took(t0, 0, 500);
	/* A commit that sees such a terminate says so too (and drops its slice). */
	assert_int_equal(sluice_chan_commit(w), bit == CHAN_CTL_TERM ? -EBADMSG : 0);
	guard_stop(&g);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_a_drain_bit_in_ctl_alone_is_ebadmsg_at_once(void **state)
{
	lone_ctl_bit(*state, CHAN_CTL_DRAIN);
}

static void test_a_terminate_bit_in_ctl_alone_is_ebadmsg_at_once(void **state)
{
	lone_ctl_bit(*state, CHAN_CTL_TERM);
}

/* A weak writer waiting for a place learns of the end at once. */
static void weak_writer_without_a_place(struct fx *f, int (*end)(struct sluice_chan *),
					int want)
{
	SLUICE_OPTS(sluice_chan_opts, co, .writers_max = 1);
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan_writer *ws, *ww;
	struct sluice_chan *ch;
	struct later l = { .fn = end, .ms = 100 };
	struct guard g;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &co);
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);	/* holds the only place */
	o.cancel = guard_start(&g, 3000);
	ww = wr(ch, SLUICE_CHAN_WEAK, &o);
	assert_int_equal(sluice_chan_try_write(ww, scratch, 8), -EAGAIN);
	l.ch = ch;
	later_start(&l);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write(ww, scratch, 8), want);
	assert_took(t0, 90, 1000);
	later_join(&l);
	/* And every later call, blocking or not, at once. */
	assert_int_equal(sluice_chan_try_write(ww, scratch, 8), want);
	assert_int_equal(sluice_chan_write(ww, scratch, 8), want);
	guard_stop(&g);
	wshut(ww);
	wshut(ws);
	cshut(ch);
}

static void test_a_weak_writer_waiting_for_a_place_sees_terminate_at_once(void **state)
{
	weak_writer_without_a_place(*state, sluice_chan_terminate, -ECONNABORTED);
}

static void test_a_weak_writer_waiting_for_a_place_sees_drain_at_once(void **state)
{
	weak_writer_without_a_place(*state, sluice_chan_drain, -EPIPE);
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

#if !SIDES_ARE_THREADS
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
	if (wait_for(pk_now->stage, 2, 20000) == 0)
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
	fill(iov[0].iov_base, 100, k->len);
	if (!k->point)
		pk_die();
	ret = sluice_chan_commit(w);
	fprintf(stderr, "commit returned %d without reaching point %d\n", ret, k->point);
	return 96;
}


static void writer_killed_at(struct fx *f, const struct kill_case *kc)
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
	int pid;

	k.stage = &sync_of(f->r)->stage;
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
	assert_int_equal(wait_for(k.stage, 1, 10000), 0);
	/* A frame committed behind the child's reservation, if it made one. */
	put40(w, 200);
	atomic_store(k.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	if (kc->join) {
		rj = rd(ch, SLUICE_CHAN_STRONG, NULL);
		/* It joined where the committed slices end: before the 200. */
		if (kc->won) {
			assert_int_equal(sluice_chan_read(rj, scratch, F40), F40);
			assert_true(intact(scratch, 200, F40));
		}
	}

	/* Readers get past it, at once or after the child's frame. */
	if (kc->delivered) {
		assert_int_equal(sluice_chan_read(ra, scratch, sizeof(scratch)), (int)kc->len);
		assert_true(intact(scratch, 100, kc->len));
	}
	assert_int_equal(sluice_chan_read(ra, scratch, F40), F40);
	assert_true(intact(scratch, 200, F40));
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
static void last_strong_writer_killed_closing(struct fx *f)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct point_kill k = { .region = f->name, .point = SLUICE__TP_CHAN_CLOSING,
				.kind = SLUICE_CHAN_STRONG };
	struct sluice_chan_writer *ww;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	struct sluice_chan *ch;
	int pid;

	k.stage = &sync_of(f->r)->stage;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	pid = h_spawn(child_dies_at_a_point, &k, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(wait_for(k.stage, 1, 10000), 0);
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
#if SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	last_strong_writer_killed_closing(*state);
#endif
}

#if !SIDES_ARE_THREADS
/*
 * Killed holding a wrapped slice, after which readers pass the pad,
 * committed walks over it and writers fill the next lap over its bytes,
 * all before any sweep: the sweep must still seal the slice.
 */
static void wrapped_slice_pad_written_over(struct fx *f)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 15000 * MS);
	struct point_kill k = { .region = f->name, .kind = SLUICE_CHAN_STRONG, .len = 100 };
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	unsigned int n, j;
	uint64_t tail0;
	int pid;

	k.stage = &sync_of(f->r)->stage;
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
	assert_int_equal(wait_for(k.stage, 1, 10000), 0);
	atomic_store(k.stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	/* The reader passes the pad; the writer's room then covers its bytes. */
	none(r);
	n = fill_up(w, 1000);
	assert_true(info_of(ch).tail > tail0 + CAP);
	for (j = 0; j < n; j++) {
		assert_int_equal(sluice_chan_read(r, scratch, F40), F40);
		assert_true(intact(scratch, 1000 + j, F40));
	}
	assert_int_equal(info_of(ch).abandoned, slice1(k.len));
	rshut(r);
	wshut(w);
	cshut(ch);
}
#endif

static void test_a_writer_killed_holding_a_wrapped_slice_is_skipped_after_its_pad_is_reused(void **state)
{
#if SIDES_ARE_THREADS
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
		if (SIDES_ARE_THREADS)					\
			h_skip(NEED_PROCESSES);				\
		else							\
			KILL_RUN(*state, &kc);				\
	}
#if SIDES_ARE_THREADS
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

/* ---------------------------------------------------------------- a hostile peer */

static void test_committed_moved_back_is_ebadmsg_to_the_writer_who_sees_it(void **state)
{
	struct fx *f = *state;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	unsigned int j, n;
	struct lay l;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	l = lay_of(f);
	/* A lap and a frame: the writer has seen committed at the lap's end. */
	for (j = 0; j <= CAP / S40; j++) {
		put40(w, j);
		get40(r, j);
	}
	assert_true(atomic_load(&l.h->committed) >= CAP);
	atomic_store(&l.h->committed, 0);
	/* Its next look at committed, when it runs out of room, says so. */
	for (n = 0; n <= CAP / S40; n++) {
		fill(scratch, 1000 + n, F40);
		ret = sluice_chan_try_write(w, scratch, F40);
		if (ret)
			break;
		get40(r, 1000 + n);
	}
	assert_int_equal(ret, -EBADMSG);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* A peer rewrites a strong reader's own place: its next read says so. */
static void place_rewritten(struct fx *f, bool owner)
{
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_rent *e;
	struct sluice_chan *ch;
	struct lay l;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	l = lay_of(f);
	e = my_rent(&l);
	put40(w, 1);
	put40(w, 2);
	get40(r, 1);
	if (owner)
		atomic_store(&e->owner, 0);	/* freed: writers no longer wait for it */
	else
		atomic_fetch_add(&e->cursor, S40);	/* moved on: its bytes are fair game */
	assert_int_equal(sluice_chan_try_read(r, scratch, sizeof(scratch)), -EBADMSG);
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -EBADMSG);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_a_strong_readers_cursor_moved_by_a_peer_is_ebadmsg(void **state)
{
	place_rewritten(*state, false);
}

static void test_a_strong_readers_place_freed_by_a_peer_is_ebadmsg(void **state)
{
	place_rewritten(*state, true);
}

static int exit_now(void *p)
{
	(void)p;
	return 0;
}

static void test_a_forged_dead_strong_writer_never_drains_a_channel_held_open(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, quick, .timeout_ns = 60 * MS);
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	struct sluice_chan *ch;
	struct lay l;
	int pid;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, &quick);
	l = lay_of(f);
	/* A pid nobody has any more, in a free place, as a strong writer. */
	pid = h_spawn(exit_now, NULL, CHILD_TIMEOUT);
	assert_true(pid > 0);
	assert_int_equal(h_wait(pid), 0);
	assert_int_equal(atomic_load(&l.went[1].owner), 0);
	atomic_store(&l.went[1].start, 12345);
	atomic_store(&l.went[1].owner, CHAN_OWNER(pid, SLUICE_CHAN_STRONG));
	assert_int_equal(info_of(ch).strong_writers, 2);
	/* A wait long enough to sweep: the forged place goes, nothing else. */
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 1);
	assert_int_equal(i.strong_writers, 1);
	assert_int_equal(i.draining, 0);
	put40(w, 1);
	get40(r, 1);
	/* The real last strong writer still drains it. */
	wshut(w);
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -EPIPE);
	rshut(r);
	cshut(ch);
}

/* Forge empty slices of @step bytes, sealed SKIP, from @from up to @to. */
static uint64_t forge_skips(const struct lay *l, uint64_t from, uint64_t to,
			    uint32_t step)
{
	struct sluice_chan_slice *s;

	for (; from + step <= to; from += step) {
		s = slice_at(l, from);
		atomic_store(&s->bytes, step - CHAN_SLICE_HDR);
		atomic_store(&s->frames, 0);
		atomic_store(&s->seal, chan_seal(l->h->salt, from, CHAN_SLICE_SKIP));
	}
	return from;
}

static void test_a_read_passes_a_bounded_number_of_empty_slices_per_call(void **state)
{
	struct fx *f = *state;
	struct sluice_chan_reader *r;
	struct sluice_chan_rent *e;
	struct sluice_chan *ch;
	struct lay l;
	uint64_t p;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	l = lay_of(f);
	e = my_rent(&l);
	p = forge_skips(&l, 0, 100 * 32, 32);
	assert_int_equal(p, 100 * 32);
	assert_int_equal(sluice_chan_try_read(r, scratch, sizeof(scratch)), -EAGAIN);
	assert_int_equal(atomic_load(&e->cursor), 64 * 32);
	assert_int_equal(sluice_chan_try_read(r, scratch, sizeof(scratch)), -EAGAIN);
	assert_int_equal(atomic_load(&e->cursor), 100 * 32);
	rshut(r);
	cshut(ch);
}

/* A peer forging empty slices ahead of a strong reader, for @ms. */
struct forger {
	struct lay l;
	struct sluice_chan_rent *e;
	unsigned int ms;
	pthread_t t;
};

static void *forger_fn(void *p)
{
	struct forger *fg = p;
	int64_t t0 = h_now_ms();
	uint64_t next = atomic_load(&fg->e->cursor);

	while (h_now_ms() - t0 < fg->ms) {
		uint64_t cur = atomic_load(&fg->e->cursor);

		if (next < cur)
			next = cur;
		/* The smallest slices: the reader pays most for each. */
		next = forge_skips(&fg->l, next, cur + fg->l.cap, CHAN_SLICE_HDR);
	}
	return NULL;
}

static void test_a_blocking_read_ends_by_its_deadline_while_a_peer_forges_slices_ahead(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 100 * MS);
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct forger fg;
	struct guard g;
	int64_t t0;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	o.cancel = guard_start(&g, 5000);
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	fg.l = lay_of(f);
	fg.e = my_rent(&fg.l);
	fg.ms = 1000;
	forge_skips(&fg.l, 0, CAP, CHAN_SLICE_HDR);
	assert_int_equal(pthread_create(&fg.t, NULL, forger_fn, &fg), 0);
	t0 = h_now_ms();
	ret = sluice_chan_read(r, scratch, sizeof(scratch));
	assert_took(t0, 100, 500);
	assert_int_equal(pthread_join(fg.t, NULL), 0);
	assert_int_equal(ret, -ETIMEDOUT);
	guard_stop(&g);
	rshut(r);
	cshut(ch);
}


/*
 * Every pass of a wait checks the deadline, whatever the readiness test
 * says.  A test point lets a peer act at exactly the wrong moment: each
 * time a read stops after passing its most of empty slices, more are
 * forged ahead of it, so every pass finds a slice "ready" and the read
 * never runs out of things to pass.
 */
static struct {
	struct lay l;
	uint64_t next;		/* forged up to here */
} ahead;

static void forge_ahead(enum sluice__tp point, void *obj)
{
	(void)obj;
	/* A read passes 64 a call: forge as many again, half a ring ahead. */
	if (point == SLUICE__TP_CHAN_SKIPS)
		ahead.next = forge_skips(&ahead.l, ahead.next, ahead.next + 64 * CHAN_SLICE_HDR,
					 CHAN_SLICE_HDR);
}

static void forged_ahead_every_pass(struct fx *f, bool cancel)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = (cancel ? 20000 : 100) * MS);
	struct later l = { .ms = 100 };
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct guard g;
	int64_t t0;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	o.cancel = guard_start(&g, 5000);
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	ahead.l = lay_of(f);
	ahead.next = forge_skips(&ahead.l, 0, 128 * CHAN_SLICE_HDR, CHAN_SLICE_HDR);
	if (cancel) {
		/* A token of its own: -ECANCELED from the guard would pass too. */
		assert_int_equal(sluice_cancel_create(g.tok, &l.tok), 0);
		l.reason = -EINTR;
		o.cancel = l.tok;
		rshut(r);
		r = rd(ch, SLUICE_CHAN_STRONG, &o);
		later_start(&l);
	}
	sluice__tp_hook = forge_ahead;
	t0 = h_now_ms();
	ret = sluice_chan_read(r, scratch, sizeof(scratch));
	sluice__tp_hook = NULL;
	assert_int_equal(ret, cancel ? -EINTR : -ETIMEDOUT);
	assert_took(t0, 90, 500);
	if (cancel) {
		later_join(&l);
		sluice_cancel_destroy(l.tok);
	}
	guard_stop(&g);
	rshut(r);
	cshut(ch);
}

static void test_a_read_that_gets_somewhere_on_every_pass_still_ends_by_its_deadline(void **state)
{
	forged_ahead_every_pass(*state, false);
}

static void test_a_read_that_gets_somewhere_on_every_pass_still_ends_when_cancelled(void **state)
{
	forged_ahead_every_pass(*state, true);
}

/*
 * A writer that finds room and then loses every reservation (a peer
 * moves tail under each CAS, and back): the wait says "ready", the write
 * says "try again", for ever.  The write stops trusting the wait and
 * naps between tries, and ends by its deadline.
 */
static struct {
	_Atomic uint64_t *tail;
	uint64_t base;
	unsigned long n;
} flip;

static void flip_tail(enum sluice__tp point, void *obj)
{
	(void)obj;
	if (point == SLUICE__TP_CHAN_INTENT)
		atomic_store(flip.tail, ++flip.n & 1 ? flip.base + 16 : flip.base);
}

static void test_a_write_that_never_wins_its_reservation_naps_and_ends_by_its_deadline(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 100 * MS);
	struct sluice_chan_writer *w;
	struct sluice_chan *ch;
	unsigned long passes;
	struct guard g;
	struct lay l;
	int64_t t0;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	o.cancel = guard_start(&g, 5000);
	w = wr(ch, SLUICE_CHAN_STRONG, &o);
	l = lay_of(f);
	flip.tail = &l.h->tail;
	flip.base = atomic_load(&l.h->tail);
	flip.n = 0;
	sluice__tp_hook = flip_tail;
	t0 = h_now_ms();
	ret = sluice_chan_write(w, scratch, 8);
	sluice__tp_hook = NULL;
	assert_int_equal(ret, -ETIMEDOUT);
	assert_took(t0, 90, 500);
	/* Each pass loses 256 times; spinning, it would make thousands. */
	passes = flip.n / 256;
	print_message("    %lu passes in 100 ms\n", passes);
	assert_true(passes >= 5 && passes < 1000);
	atomic_store(&l.h->tail, flip.base);
	guard_stop(&g);
	wshut(w);
	cshut(ch);
}


/*
 * A peer that holds the region's lock (which sweeps take) for good: a
 * blocking call still ends by its deadline, and a try_ call at once.
 */
static void test_a_peer_holding_the_region_lock_delays_no_call_past_its_deadline(void **state)
{
#if SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	struct fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 100 * MS);
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	int64_t t0, worst = 0, took;
	unsigned int i;
	int pid;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	pid = h_hold_region_lock(f->name);
	assert_true(pid > 0);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	assert_took(t0, 100, 500);
	/* try_ calls look for the dead after 20 ms of -EAGAIN: never for long. */
	t0 = h_now_ms();
	for (i = 0; h_now_ms() - t0 < 100; i++) {
		took = h_now_ms();
		assert_int_equal(sluice_chan_try_read(r, scratch, sizeof(scratch)), -EAGAIN);
		took = h_now_ms() - took;
		if (took > worst)
			worst = took;
	}
	kill(pid, SIGKILL);
	h_wait(pid);
	print_message("    %u try_ calls, the longest %" PRId64 " ms\n", i, worst);
	assert_true(worst < 50);
	rshut(r);
	cshut(ch);
#endif
}

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

#if !SIDES_ARE_THREADS
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
	uint64_t rng = mix(c->seed ^ a->id) | 1;
	unsigned char buf[BATCH * CHAOS_LEN];
	struct sluice_chan_writer *w;
	struct sluice_liveness *live;
	struct iovec iov[BATCH];
	struct sluice_chan *ch;
	uint32_t seq = 0, id = a->id;
	unsigned int k, i;
	size_t len;

	ch = chaos_attach(c, rng_next(&rng), &live);
	CK(ch);
	CK_EQ(sluice_chan_writer_open(ch, rng_next(&rng) & 1 ? SLUICE_CHAN_STRONG :
				      SLUICE_CHAN_WEAK, NULL, &w), 0);
	while (!atomic_load(&c->stop)) {
		k = 1 + (unsigned int)(rng_next(&rng) % BATCH);
		for (i = 0; i < k; i++) {
			len = tag_len(id, seq + i, CHAOS_LEN);
			iov[i] = (struct iovec){ buf + i * CHAOS_LEN, len };
			tag_make(iov[i].iov_base, id, seq + i, len);
		}
		atomic_store(&c->inflight[id], (uint16_t)k);
		switch (rng_next(&rng) % 4) {
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
			if (rng_next(&rng) % 2)
				usleep((useconds_t)(rng_next(&rng) % 500));
			for (i = 0; i < k; i++)
				tag_make(iov[i].iov_base, id, seq + i, iov[i].iov_len);
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
	uint64_t rng = mix(c->seed ^ 0x7eade5 ^ a->id) | 1;
	static uint32_t next[CHAOS_IDS];	/* per child: its own copy */
	static unsigned char buf[16][CHAOS_LEN];
	struct sluice_liveness *live;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct iovec iov[16];
	struct tag t;
	unsigned int i;
	int ret;

	memset(next, 0, sizeof(next));
	ch = chaos_attach(c, rng_next(&rng), &live);
	CK(ch);
	CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), 0);
	if (checker)
		atomic_fetch_add(&c->ready, 1);
	for (;;) {
		for (i = 0; i < 16; i++)
			iov[i] = (struct iovec){ buf[i], CHAOS_LEN };
		ret = sluice_chan_read_batch(r, iov, 1 + (unsigned int)(rng_next(&rng) % 16));
		if (ret == -EPIPE)
			break;
		if (ret < 0) {
			fprintf(stderr, "reader %u: read_batch: %s\n", a->id, strerror(-ret));
			if (checker)
				chaos_dump(c->region, "stalled");
			return 1;
		}
		for (i = 0; i < (unsigned int)ret; i++) {
			memcpy(&t, buf[i], TAG_SZ < iov[i].iov_len ? TAG_SZ : iov[i].iov_len);
			CK(iov[i].iov_len >= TAG_SZ && t.wid < CHAOS_IDS);
			CK(iov[i].iov_len == tag_len(t.wid, t.seq, CHAOS_LEN));
			CK(t.sum == tag_sum(t.wid, t.seq, buf[i] + TAG_SZ, iov[i].iov_len - TAG_SZ));
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
#if SIDES_ARE_THREADS
	(void)state;
	h_skip(NEED_PROCESSES);
#else
	struct fx *f = *state;
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
	rng = mix(c->seed) | 1;
	print_message("    seed %" PRIu64 " (SLUICE_TEST_SEED), %u s\n", c->seed, seconds);
	ch = mk(f, CHAOS_CAP, SLUICE_CHAN_BLOCK, NULL);
	/* Held open all along: killing the last strong writer would drain it. */
	holder = wr(ch, SLUICE_CHAN_STRONG, NULL);
	for (i = 0; i < CHAOS_CHECKERS; i++)
		chaos_start(&checker[i], c, false, i);
	assert_int_equal(wait_for(&c->ready, CHAOS_CHECKERS, 10000), 0);
	for (i = 0; i < n_sides; i++)
		if (i < CHAOS_WRITERS)
			chaos_start(&side[i], c, true, ids++);
		else
			chaos_start(&side[i], c, false, CHAOS_CHECKERS + victims++);

	t0 = h_now_ms();
	while (h_now_ms() - t0 < (int64_t)seconds * 1000 && ids < CHAOS_IDS - n_sides) {
		usleep((useconds_t)(rng_next(&rng) % 8000));
		i = (unsigned int)(rng_next(&rng) % n_sides);
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

/*
 * A peer scribbling over the channel's shared words while writers and
 * readers of every kind make calls: errors, yes, but every call returns,
 * the blocking ones by their deadline (plus a margin for the scheduler of
 * a busy machine), and nothing crashes or reads outside its buffers (the
 * ASan build says so).  SLUICE_TEST_SCRIBBLE_SECONDS runs it longer.
 */
#if defined(H_ASAN)
#define SCRIBBLE_SECONDS	5u
#define SCRIBBLE_MARGIN_MS	250u
#else
#define SCRIBBLE_SECONDS	10u
#define SCRIBBLE_MARGIN_MS	100u
#endif
#define SCRIBBLE_DEADLINE_MS	20u

#if !SIDES_ARE_THREADS
struct scribble {
	const char *region;
	_Atomic uint32_t stop;
	_Atomic uint32_t ready;
	_Atomic uint64_t calls;
	_Atomic uint64_t errors;
	_Atomic uint64_t worst_ns;		/* a blocking call's, past its deadline */
};

struct scribble_arg {
	struct scribble *s;
	unsigned int role;			/* 0 1: writers, 2 3: readers */
};

static bool errno_known(int ret)
{
	switch (ret) {
	case -EAGAIN: case -ETIMEDOUT: case -ECONNABORTED: case -EPIPE:
	case -EOVERFLOW: case -EBADMSG: case -ENOBUFS: case -EBUSY:
	case -EUSERS: case -EMSGSIZE:
		return true;
	}
	return false;
}

static int scribble_side(void *p)
{
	struct scribble_arg *a = p;
	struct scribble *s = a->s;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = SCRIBBLE_DEADLINE_MS * MS);
	uint64_t rng = mix(a->role + 77) | 1, t0, took, worst;
	struct sluice_chan_writer *w = NULL;
	struct sluice_chan_reader *r = NULL;
	unsigned char *buf = malloc(4096);
	struct sluice_region *reg;
	struct sluice_chan *ch;
	struct iovec iov[4];
	bool block;
	int ret = 0, i;

	CK(buf);
	CK_EQ(sluice_region_open(s->region, NULL, &reg), 0);
	CK_EQ(sluice_chan_attach(reg, "c", &o, &ch), 0);
	atomic_fetch_add(&s->ready, 1);
	while (!atomic_load(&s->stop)) {
		/* Endpoints come and go: opens meet the scribbled tables too. */
		if (a->role < 2 && !w) {
			ret = sluice_chan_writer_open(ch, a->role ? SLUICE_CHAN_WEAK :
						      SLUICE_CHAN_STRONG, NULL, &w);
		} else if (a->role >= 2 && !r) {
			ret = sluice_chan_reader_open(ch, a->role == 2 ? SLUICE_CHAN_STRONG :
						      SLUICE_CHAN_WEAK, NULL, &r);
		} else {
			block = rng_next(&rng) & 1;
			for (i = 0; i < 4; i++)
				iov[i] = (struct iovec){ buf + i * 1024, 1 + rng_next(&rng) % 1000 };
			t0 = sluice__now_ns(CLOCK_MONOTONIC);
			if (w && block)
				ret = sluice_chan_write_batch(w, iov, 4);
			else if (w)
				ret = sluice_chan_try_write_batch(w, iov, 4);
			else if (block)
				ret = sluice_chan_read_batch(r, iov, 4);
			else
				ret = sluice_chan_try_read_batch(r, iov, 4);
			took = sluice__now_ns(CLOCK_MONOTONIC) - t0;
			if (took > (block ? SCRIBBLE_DEADLINE_MS * MS : 0)) {
				took -= block ? SCRIBBLE_DEADLINE_MS * MS : 0;
				worst = atomic_load(&s->worst_ns);
				while (took > worst &&
				       !atomic_compare_exchange_weak(&s->worst_ns, &worst, took))
					;
			}
			/* What a read hands out fits what it was given. */
			for (i = 0; r && i < ret; i++)
				CK(iov[i].iov_len <= 1000);
			CK(ret <= 4);
		}
		atomic_fetch_add(&s->calls, 1);
		if (ret < 0) {
			if (!errno_known(ret)) {
				fprintf(stderr, "side %u: %s\n", a->role, strerror(-ret));
				return 1;
			}
			atomic_fetch_add(&s->errors, 1);
			/* Start again now and then, as a user who gives up would. */
			if (ret != -EAGAIN && ret != -ETIMEDOUT && rng_next(&rng) % 4 == 0) {
				sluice_chan_writer_close(w);
				sluice_chan_reader_close(r);
				w = NULL;
				r = NULL;
			}
		}
	}
	sluice_chan_writer_close(w);
	sluice_chan_reader_close(r);
	CK_EQ(sluice_chan_close(ch), 0);
	free(buf);
	return 0;
}

/* Somewhere in the channel's shared words, something else. */
static void scribble_once(const struct lay *l, uint64_t *rng)
{
	_Atomic uint64_t *w64 = NULL;
	_Atomic uint32_t *w32 = NULL;
	uint64_t v = rng_next(rng), cur, k = rng_next(rng);
	uint32_t e;

	switch (k % 12) {
	case 0: w64 = &l->h->tail; break;
	case 1: w64 = &l->h->committed; break;
	case 2: w32 = &l->h->ctl; break;
	case 3: w32 = (k >> 8) & 1 ? &l->h->rseq : &l->h->wseq; break;
	case 4: w32 = (k >> 8) & 1 ? &l->h->rwait : &l->h->wwait; break;
	case 5: w64 = &l->index[(k >> 8) % CHAN_INDEX_N]; break;
	case 6:
		e = (uint32_t)((k >> 8) % l->h->readers_max);
		w64 = (k >> 20) % 3 == 0 ? &l->rent[e].cursor :
		      (k >> 20) % 3 == 1 ? &l->rent[e].owner : &l->rent[e].start;
		break;
	case 7:
		e = (uint32_t)((k >> 8) % l->h->writers_max);
		if ((k >> 20) % 5 == 3)
			w32 = &l->went[e].len;
		else if ((k >> 20) % 5 == 4)
			w32 = &l->went[e].state;
		else
			w64 = (k >> 20) % 5 == 0 ? &l->went[e].owner :
			      (k >> 20) % 5 == 1 ? &l->went[e].start : &l->went[e].from;
		break;
	case 8: case 9:
		w64 = &slice_at(l, ((k >> 8) % l->cap) & ~15ull)->seal;
		break;
	default:
		w32 = (_Atomic uint32_t *)(l->data + (((k >> 8) % l->cap) & ~3ull));
		break;
	}
	/* Near what is there as often as anything at all: it gets further. */
	if (w64) {
		cur = atomic_load(w64);
		switch (v % 4) {
		case 0: v = cur + (v >> 8) % 64 * 16; break;
		case 1: v = cur - (v >> 8) % 64 * 16; break;
		case 2: v = cur ^ (1ull << ((v >> 8) % 64)); break;
		}
		atomic_store(w64, v);
	} else {
		cur = atomic_load(w32);
		switch (v % 4) {
		case 0: v = cur + (v >> 8) % 64; break;
		case 1: v = cur - (v >> 8) % 64; break;
		case 2: v = cur ^ (1ull << ((v >> 8) % 32)); break;
		}
		atomic_store(w32, (uint32_t)v);
	}
}

#endif

static void test_a_scribbling_peer_never_makes_a_call_crash_or_overrun_its_deadline(void **state)
{
#if SIDES_ARE_THREADS
	(void)state;
	h_skip("needs processes: the scribbler's writes race with readers' copies by design");
#else
	struct fx *f = *state;
	const char *env = getenv("SLUICE_TEST_SCRIBBLE_SECONDS");
	unsigned int seconds = env ? (unsigned int)atoi(env) : SCRIBBLE_SECONDS;
	struct scribble_arg arg[4];
	struct sluice_chan *ch;
	struct scribble *s;
	uint64_t off, rng = 0x5c1bb1e, n = 0;
	int pid[4], i;
	struct lay l;
	int64_t t0;

	assert_int_equal(sluice_region_alloc(f->r, "scribble", SLUICE_OBJ_RAW,
					     sizeof(*s), 64, &off), 0);
	s = sluice_region_at(f->r, off, sizeof(*s));
	s->region = f->name;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_of(f);
	for (i = 0; i < 4; i++) {
		arg[i] = (struct scribble_arg){ .s = s, .role = (unsigned int)i };
		pid[i] = h_spawn(scribble_side, &arg[i], seconds + 30);
		assert_true(pid[i] > 0);
	}
	assert_int_equal(wait_for(&s->ready, 4, 10000), 0);
	t0 = h_now_ms();
	while (h_now_ms() - t0 < (int64_t)seconds * 1000) {
		scribble_once(&l, &rng);
		if (++n % 64 == 0)
			usleep(100);
	}
	atomic_store(&s->stop, 1);
	for (i = 0; i < 4; i++)
		assert_int_equal(h_wait(pid[i]), 0);
	print_message("    %" PRIu64 " scribbles, %" PRIu64 " calls (%" PRIu64
		      " errors); the latest return past a deadline: %.1f ms\n",
		      n, atomic_load(&s->calls), atomic_load(&s->errors),
		      (double)atomic_load(&s->worst_ns) / 1e6);
	assert_true(atomic_load(&s->worst_ns) < SCRIBBLE_MARGIN_MS * MS);
	cshut(ch);
#endif
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* create, attach, arguments */
		T(test_create_and_attach_by_name_share_one_channel),
		T(test_close_refuses_a_channel_with_open_endpoints),
		T(test_create_rejects_bad_arguments),
		T(test_endpoint_opens_reject_bad_arguments),
		T(test_data_calls_reject_bad_arguments),
		T(test_attach_to_an_object_of_another_type_is_eproto),
		T(test_attach_rejects_a_corrupted_config),
		/* frames, sizes, slices */
		T(test_frames_are_read_back_byte_exact_and_in_order),
		T(test_frame_max_is_half_the_capacity_less_the_headers),
		T(test_a_batch_over_half_the_capacity_is_emsgsize_and_writes_nothing),
		T(test_a_frame_longer_than_the_buffer_is_enobufs_and_stays),
		T(test_read_batch_stops_before_a_frame_longer_than_its_buffer),
		T(test_read_batch_can_take_a_slice_a_few_frames_at_a_time),
		T(test_zero_length_frames_are_delivered),
		T(test_try_calls_are_eagain_on_empty_and_full),
		T(test_only_strong_readers_hold_writers_back),
		T(test_reserve_slice_hands_out_frames_in_place),
		T(test_an_aborted_or_abandoned_slice_is_skipped),
		T(test_a_reader_stepping_over_skipped_slices_frees_their_room),
		T(test_writer_calls_are_ebusy_while_a_slice_is_outstanding),
		T(test_batches_wrap_around_the_ring_end),
		/* info, tables, joining */
		T(test_info_reports_the_channel),
		T(test_full_tables_are_eusers),
		T(test_readers_and_writers_join_and_leave_mid_stream),
		/* deadlines */
		T(test_blocking_calls_time_out_on_empty_and_full),
		T(test_endpoints_take_the_channel_handles_timeout),
		T(test_blocking_calls_time_out_while_sleeping),
		T(test_blocking_calls_time_out_while_spinning_only),
		T(test_a_huge_timeout_does_not_expire_at_once),
		/* cancel */
		T(test_cancel_wakes_a_write_blocked_on_a_full_channel),
		T(test_cancel_wakes_a_read_blocked_on_an_empty_channel),
		T(test_cancel_wakes_a_write_asleep_on_the_futex),
		T(test_cancel_wakes_a_read_asleep_on_the_futex),
		T(test_cancel_stops_a_read_that_only_spins),
		T(test_cancel_of_a_write_with_a_reason_returns_that_reason),
		T(test_cancel_of_a_read_with_a_reason_returns_that_reason),
		T(test_endpoints_take_the_channel_handles_token),
		T(test_cancel_of_a_parent_token_wakes_a_wait_on_its_child),
		T(test_a_triggered_token_fails_only_calls_that_would_wait),
		T(test_an_endpoint_that_sets_only_its_spin_keeps_its_handles_token_and_timeout),
		T(test_the_endpoint_opens_still_take_the_channel_options_struct),
		/* terminate, drain */
		T(test_terminate_wakes_a_blocked_reader_and_fails_every_later_call),
		T(test_terminate_wakes_a_blocked_writer_and_fails_every_later_call),
		T(test_commit_after_terminate_is_econnaborted_and_drops_the_slice),
		T(test_drain_lets_a_blocked_reader_read_what_was_committed_then_epipe),
		T(test_drain_wakes_a_reader_blocked_on_an_empty_channel),
		T(test_the_last_strong_writer_closing_drains_the_channel),
		T(test_weak_writers_alone_never_drain_the_channel),
		/* weak readers */
		T(test_a_weak_reader_overrun_is_eoverflow_and_lost_is_exact),
		T(test_a_weak_reader_on_an_overwriting_channel_is_overrun_alike),
		T(test_a_weak_reader_is_overrun_while_a_strong_one_holds_writers),
		/* dead processes */
		T(test_a_strong_writer_killed_mid_slice_is_skipped),
		T(test_a_weak_writer_killed_mid_slice_is_skipped),
		T(test_a_killed_last_strong_writer_drains_the_channel),
		T(test_a_killed_strong_reader_is_swept),
		/* corruption */
		T(test_impossible_slice_headers_are_ebadmsg),
		T(test_impossible_frame_lengths_are_ebadmsg),
		T(test_an_impossible_length_after_good_frames_ends_the_batch_there),
		T(test_a_slice_across_the_ring_end_is_ebadmsg),
		T(test_a_slice_with_a_wrong_seal_is_never_read),
		T(test_a_committed_ahead_of_the_tail_never_gives_a_new_reader_a_frame),
		T(test_impossible_positions_fail_writers),
		T(test_a_tail_off_the_grid_never_leads_a_weak_reader_out_of_the_ring),
		T(test_a_committed_off_the_grid_never_leads_a_reader_out_of_the_ring),
		T(test_a_committed_off_the_grid_never_leads_a_writer_out_of_the_ring),
		T(test_a_tail_off_the_grid_never_leads_a_writer_out_of_the_ring),
		T(test_garbage_in_shared_memory_never_crashes_or_overruns),
		/* every wait ends */
		T(test_a_read_behind_a_held_slice_of_a_drained_channel_ends_by_its_deadline),
		T(test_a_drain_bit_in_ctl_alone_is_ebadmsg_at_once),
		T(test_a_terminate_bit_in_ctl_alone_is_ebadmsg_at_once),
		T(test_a_weak_writer_waiting_for_a_place_sees_terminate_at_once),
		T(test_a_weak_writer_waiting_for_a_place_sees_drain_at_once),
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
		/* a hostile peer */
		T(test_committed_moved_back_is_ebadmsg_to_the_writer_who_sees_it),
		T(test_a_strong_readers_cursor_moved_by_a_peer_is_ebadmsg),
		T(test_a_strong_readers_place_freed_by_a_peer_is_ebadmsg),
		T(test_a_forged_dead_strong_writer_never_drains_a_channel_held_open),
		T(test_a_read_passes_a_bounded_number_of_empty_slices_per_call),
		T(test_a_blocking_read_ends_by_its_deadline_while_a_peer_forges_slices_ahead),
		T(test_a_read_that_gets_somewhere_on_every_pass_still_ends_by_its_deadline),
		T(test_a_read_that_gets_somewhere_on_every_pass_still_ends_when_cancelled),
		T(test_a_write_that_never_wins_its_reservation_naps_and_ends_by_its_deadline),
		T(test_a_peer_holding_the_region_lock_delays_no_call_past_its_deadline),
		/* chaos */
		T(test_writers_and_readers_killed_at_random_lose_no_committed_frame),
		T(test_a_scribbling_peer_never_makes_a_call_crash_or_overrun_its_deadline),
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
	return cmocka_run_group_tests_name("chan", tests, NULL, NULL);
}
