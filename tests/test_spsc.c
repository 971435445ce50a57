// SPDX-License-Identifier: MIT
/*
 * SPSC rings: every promise of include/sluice/spsc.h, with real shared
 * memory and, for everything concurrent, two real processes.
 *
 * Under ThreadSanitizer the two sides run as two threads of one process
 * instead (TSan does not follow fork well); run_pair() hides the
 * difference.  Packet counts shrink under the sanitizers.
 *
 * Every packet of the streaming tests is checked byte for byte against what
 * its sequence number says it must hold, and the whole stream against a
 * checksum the producer leaves in the region before it closes, so a packet
 * lost, repeated, reordered, torn or cut short fails the test.
 *
 * Corruption is done the way a buggy or hostile peer would: by writing into
 * the ring's shared memory, located with sluice_region_find() and the layout
 * in spsc_core.h.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include <sluice/cancel.h>
#include <sluice/spsc.h>

#include "futex.h"
#include "harness.h"
#include "internal.h"
#include "spsc_internal.h"
#include "testpoint.h"

/* ---------------------------------------------------------------- build */

#if defined(H_TSAN)
#define SIDES_ARE_THREADS	1
#define BIG		200000ull	/* packets of a streaming test */
#define MIXED		100000ull
#define ROUND_TRIPS	2000u
#elif defined(H_ASAN)
#define SIDES_ARE_THREADS	0
#define BIG		1000000ull
#define MIXED		500000ull
#define ROUND_TRIPS	5000u
#else
#define SIDES_ARE_THREADS	0
#define BIG		20000000ull
#define MIXED		5000000ull
#define ROUND_TRIPS	20000u
#endif

#define MIB		(1024ul * 1024)
#define REGION_SIZE	(8 * MIB)
#define CHILD_TIMEOUT	60	/* seconds before a hung side is killed */
#define MS		1000000ull	/* nanoseconds */
#define BATCH		32

/* ---------------------------------------------------------------- fixture */

/* Handles the test body opened and has not closed yet. */
static struct sluice_spsc *opened[16];

static void track(struct sluice_spsc *q)
{
	unsigned int i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(opened); i++) {
		if (!opened[i]) {
			opened[i] = q;
			return;
		}
	}
}

/* sluice_spsc_close(), and forget the handle. */
static void shut(struct sluice_spsc *q)
{
	unsigned int i;

	for (i = 0; q && i < SLUICE_ARRAY_SIZE(opened); i++)
		if (opened[i] == q)
			opened[i] = NULL;
	sluice_spsc_close(q);
}

struct fx {
	char name[H_NAME_SZ];
	struct sluice_region *r;
};

/*
 * What the two sides of a concurrent test tell each other outside the
 * rings, in a raw object of every test's region: the producer's stream
 * checksum, and which rings have been made (so that a side attaches only
 * to a finished ring; racing the creation is a test of its own).
 */
struct sync {
	_Atomic uint64_t sum;
	_Atomic uint32_t made[4];
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
	unsigned int i;

	/* A test point a failed test left set must not act in the next. */
	sluice__tp_hook = NULL;
	/* Whatever an assert left open, so that a failure does not leak too. */
	for (i = 0; i < SLUICE_ARRAY_SIZE(opened); i++) {
		sluice_spsc_close(opened[i]);
		opened[i] = NULL;
	}
	if (f) {
		sluice_region_destroy(f->r);
		free(f);
	}
	h_unlink_all();
	return 0;
}

/* ---------------------------------------------------------------- helpers */

static struct sluice_spsc *make(struct fx *f, const char *obj, uint32_t count,
				uint32_t size, enum sluice_spsc_role role,
				const struct sluice_spsc_opts *opts)
{
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_create(f->r, obj, count, size, role, opts, &q), 0);
	assert_non_null(q);
	track(q);
	return q;
}

static struct sluice_spsc *join(struct fx *f, const char *obj,
				enum sluice_spsc_role role,
				const struct sluice_spsc_opts *opts)
{
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_attach(f->r, obj, role, opts, &q), 0);
	assert_non_null(q);
	track(q);
	return q;
}

/* A ring "q" of @count slots of @size bytes: producer made, consumer attached. */
static void make_pair(struct fx *f, uint32_t count, uint32_t size,
		      const struct sluice_spsc_opts *opts,
		      struct sluice_spsc **p, struct sluice_spsc **c)
{
	*p = make(f, "q", count, size, SLUICE_SPSC_PRODUCER, opts);
	*c = join(f, "q", SLUICE_SPSC_CONSUMER, opts);
}

/* The ring's shared memory, found the way any process would. */
static struct sluice_spsc_ring *ring_of(struct fx *f, const char *obj)
{
	struct sluice_obj_info info;
	struct sluice_spsc_ring *ring;

	assert_int_equal(sluice_region_find(f->r, obj, &info), 0);
	assert_int_equal(info.type, SLUICE_OBJ_SPSC);
	ring = sluice_region_at(f->r, info.offset, info.size);
	assert_non_null(ring);
	return ring;
}

static _Atomic uint64_t *tag_at(struct sluice_spsc_ring *ring, uint64_t idx)
{
	return (_Atomic uint64_t *)((unsigned char *)ring + ring->tags_off) +
	       (idx & (ring->slot_count - 1));
}

static unsigned char *slot_at(struct sluice_spsc_ring *ring, uint64_t idx)
{
	return (unsigned char *)ring + ring->slots_off +
	       (size_t)(idx & (ring->slot_count - 1)) * ring->stride;
}

static uint64_t csum_of(const struct sluice_spsc_ring *ring)
{
	size_t from = offsetof(struct sluice_spsc_ring, abi);

	return sluice__fnv1a((const unsigned char *)ring + from,
			     SLUICE_SPSC_CSUM_LEN - from);
}

static uint64_t load64(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

static void store64(_Atomic uint64_t *p, uint64_t v)
{
	atomic_store_explicit(p, v, memory_order_release);
}

/*
 * Packets published from @idx on, counted as a takeover counts them: over
 * the tags.  tail is no count, only the producer's last announcement.
 */
static uint64_t published_from(struct sluice_spsc_ring *ring, uint64_t idx)
{
	uint64_t from = idx;

	while (idx - from < ring->slot_count &&
	       SLUICE_SPSC_TAG_IS(load64(tag_at(ring, idx)), idx))
		idx++;
	return idx;
}

/* The producer's position: packets published since the ring was made. */
static uint64_t published(struct sluice_spsc_ring *ring)
{
	return published_from(ring, load64(&ring->head));
}

static uint32_t ctl_of(struct sluice_spsc_side *s)
{
	return atomic_load_explicit(&s->ctl, memory_order_acquire);
}

/* ---------------------------------------------------------------- packets */

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finaliser */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/*
 * The bytes packet @seq carries: its number first, then words that differ
 * from every other packet's and from each other (cheap: the streaming
 * tests make tens of millions of these).
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
	unsigned char want[4096];

	if (len > sizeof(want))
		return false;
	fill(want, seq, len);
	return !memcmp(b, want, len);
}

/* Length of packet @seq: @max, or anything from 0 to @max when @random. */
static size_t len_of(uint64_t seq, size_t max, bool random)
{
	return random ? mix(seq ^ 0x5eed) % (max + 1) : max;
}

/* A stream checksum both sides compute, over lengths and every byte. */
static uint64_t csum_add(uint64_t sum, const unsigned char *b, size_t len)
{
	uint64_t w;
	size_t i;

	sum = (sum ^ len) * 0x100000001b3ull;
	for (i = 0; i < len; i += 8) {
		w = 0;
		memcpy(&w, b + i, len - i < 8 ? len - i : 8);
		sum = (sum ^ w) * 0x100000001b3ull;
	}
	return sum;
}

static void put(struct sluice_spsc *p, uint64_t seq, size_t len)
{
	unsigned char buf[4096];

	assert_true(len <= sizeof(buf));
	fill(buf, seq, len);
	assert_int_equal(sluice_spsc_try_send(p, buf, len), 0);
}

/* Receive one packet, which must be number @seq of @len bytes. */
static void get(struct sluice_spsc *c, uint64_t seq, size_t len)
{
	unsigned char buf[4096];

	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), (int)len);
	assert_true(intact(buf, seq, len));
}

/* Somewhere to put what a test receives and does not look at. */
static unsigned char scratch[4096];

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* ---------------------------------------------------------------- two sides */

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

/* Start @fn(@arg) in a thread; the job lives on the heap (see job_join). */
static struct job *job_start(int (*fn)(void *), void *arg)
{
	struct job *j = calloc(1, sizeof(*j));

	assert_non_null(j);
	j->fn = fn;
	j->arg = arg;
	j->ret = -1;
	assert_int_equal(pthread_create(&j->thread, NULL, job_thread, j), 0);
	return j;
}

/*
 * What @j returned, or -ETIMEDOUT if it is still running at @dl: then it
 * is stuck for good (a hang is the bug being reported), so it is detached
 * and its job leaked rather than freed under it.
 */
static int job_join(struct job *j, const struct timespec *dl)
{
	int ret;

	if (pthread_timedjoin_np(j->thread, NULL, dl)) {
		pthread_detach(j->thread);
		return -ETIMEDOUT;
	}
	ret = j->ret;
	free(j);
	return ret;
}

static void deadline_in(struct timespec *dl, unsigned int s)
{
	clock_gettime(CLOCK_REALTIME, dl);
	dl->tv_sec += s;
}
#endif

/*
 * Run @a and @b at once, in two processes (or two threads under TSan), and
 * fail unless both return 0 within @timeout_s.
 */
static void run_pair(int (*a)(void *), int (*b)(void *), void *arg,
		     unsigned int timeout_s)
{
#if SIDES_ARE_THREADS
	struct job *ja = job_start(a, arg), *jb = job_start(b, arg);
	struct timespec dl;
	int ra, rb;

	deadline_in(&dl, timeout_s);
	ra = job_join(ja, &dl);
	rb = job_join(jb, &dl);
	if (ra == -ETIMEDOUT || rb == -ETIMEDOUT)
		fail_msg("a side did not finish in %u s", timeout_s);
	assert_int_equal(ra, 0);
	assert_int_equal(rb, 0);
#else
	int pa, pb, sa, sb;

	pa = h_spawn(a, arg, timeout_s);
	assert_true(pa > 0);
	pb = h_spawn(b, arg, timeout_s);
	if (pb < 0)
		kill(pa, SIGKILL);
	sa = h_wait(pa);
	/* Both reaped before judging: no side may outlive its test. */
	sb = pb > 0 ? h_wait(pb) : pb;
	assert_int_equal(sa, 0);
	assert_int_equal(sb, 0);
#endif
}

static struct sync *sync_of(struct sluice_region *r)
{
	struct sluice_obj_info info;

	if (sluice_region_find(r, "sync", &info))
		return NULL;
	return sluice_region_at(r, info.offset, sizeof(struct sync));
}

static _Atomic uint32_t *made_flag(struct sluice_region *r, const char *obj)
{
	static const char *const names[] = { "stream", "ping", "pong", "q" };
	struct sync *sy = sync_of(r);
	unsigned int i;

	for (i = 0; sy && i < 4; i++)
		if (!strcmp(obj, names[i]))
			return &sy->made[i];
	return NULL;
}

/* Create @obj as one side and tell the other side it is there. */
static int make_and_tell(struct sluice_region *r, const char *obj, uint32_t count,
			 uint32_t size, enum sluice_spsc_role role,
			 const struct sluice_spsc_opts *opts, struct sluice_spsc **q)
{
	_Atomic uint32_t *made = made_flag(r, obj);
	int err;

	if (!made)
		return -ENOENT;
	err = sluice_spsc_create(r, obj, count, size, role, opts, q);
	/* Pairs with the acquire in attach_when_made(). */
	if (!err)
		atomic_store_explicit(made, 1, memory_order_release);
	return err;
}

/* Wait for the other side to have made @obj, then attach to it. */
static int attach_when_made(struct sluice_region *r, const char *obj,
			    enum sluice_spsc_role role,
			    const struct sluice_spsc_opts *opts,
			    struct sluice_spsc **q)
{
	_Atomic uint32_t *made = made_flag(r, obj);
	int64_t t0 = h_now_ms();

	if (!made)
		return -ENOENT;
	while (!atomic_load_explicit(made, memory_order_acquire)) {
		if (h_now_ms() - t0 > 10000)
			return -ETIMEDOUT;
		h_sleep_ms(1);
	}
	return sluice_spsc_attach(r, obj, role, opts, q);
}

static struct sluice_spsc_ring *ring_in(struct sluice_region *r, const char *obj)
{
	struct sluice_obj_info info;

	if (sluice_region_find(r, obj, &info))
		return NULL;
	return sluice_region_at(r, info.offset, info.size);
}

/* ---------------------------------------------------------------- streaming */

enum api {
	API_COPY,		/* send / recv */
	API_BATCH,		/* send_batch / recv_batch */
	API_ZERO_COPY,		/* reserve, commit / peek, release */
	API_TRY,		/* try_ calls, with sluice_spsc_wait() by hand */
	API_MIXED,		/* any of the above, chosen at random per call */
	API_POLL,		/* send / sluice_spsc_fd, poll, try_recv */
};

struct stream {
	struct sluice_region *r;
	enum api api;
	uint64_t n;		/* packets */
	uint32_t count, size;
	bool random_len;
	uint32_t spin_ns;
	_Atomic uint64_t *sum;	/* the producer's checksum, in struct sync */
};

static void stream_opts(const struct stream *s, struct sluice_spsc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->timeout_ns = 20000 * MS;
	o->spin_ns = s->spin_ns;
}

static int stream_producer(void *arg)
{
	struct stream *s = arg;
	struct sluice_spsc_opts o;
	struct iovec iov[BATCH];
	struct sluice_spsc *q;
	unsigned char *buf;
	uint64_t seq = 0, sum = 0, rng = 0x1234567;
	unsigned int k, m, i, want;
	enum api api;
	size_t len;
	int ret;

	stream_opts(s, &o);
	CK_EQ(make_and_tell(s->r, "stream", s->count, s->size,
			    SLUICE_SPSC_PRODUCER, &o, &q), 0);
	buf = malloc((size_t)BATCH * s->size + 1);
	CK(buf);
	while (seq < s->n) {
		api = s->api == API_MIXED ? rng_next(&rng) % API_MIXED : s->api;
		want = s->n - seq < BATCH ? (unsigned int)(s->n - seq) : BATCH;
		if (s->api == API_MIXED)
			want = 1 + rng_next(&rng) % want;
		switch (api) {
		case API_COPY:
		case API_POLL:
			len = len_of(seq, s->size, s->random_len);
			fill(buf, seq, len);
			CK_EQ(sluice_spsc_send(q, buf, len), 0);
			sum = csum_add(sum, buf, len);
			seq++;
			break;
		case API_BATCH:
			for (i = 0; i < want; i++) {
				iov[i].iov_base = buf + (size_t)i * s->size;
				iov[i].iov_len = len_of(seq + i, s->size, s->random_len);
				fill(iov[i].iov_base, seq + i, iov[i].iov_len);
				sum = csum_add(sum, iov[i].iov_base, iov[i].iov_len);
			}
			CK_EQ(sluice_spsc_send_batch(q, iov, want), want);
			seq += want;
			break;
		case API_ZERO_COPY:
			ret = sluice_spsc_reserve(q, iov, want);
			CK(ret >= 1 && ret <= (int)want);
			k = (unsigned int)ret;
			/* Mixed: commit only some, giving the rest back. */
			m = s->api == API_MIXED ? rng_next(&rng) % (k + 1) : k;
			for (i = 0; i < k; i++) {
				CK_EQ(iov[i].iov_len, s->size);
				len = len_of(seq + i, s->size, s->random_len);
				/* Slots past m are scribbled on and given back. */
				fill(iov[i].iov_base, i < m ? seq + i : ~0ull, len);
				iov[i].iov_len = len;
				if (i < m)
					sum = csum_add(sum, iov[i].iov_base, len);
			}
			CK_EQ(sluice_spsc_commit(q, iov, m), m);
			seq += m;
			break;
		default:	/* API_TRY */
			for (i = 0; i < want; i++) {
				iov[i].iov_base = buf + (size_t)i * s->size;
				iov[i].iov_len = len_of(seq + i, s->size, s->random_len);
				fill(iov[i].iov_base, seq + i, iov[i].iov_len);
			}
			while ((ret = sluice_spsc_try_send_batch(q, iov, want)) == -EAGAIN)
				CK_EQ(sluice_spsc_wait(q), 0);
			CK(ret >= 1 && ret <= (int)want);
			for (i = 0; i < (unsigned int)ret; i++)
				sum = csum_add(sum, iov[i].iov_base, iov[i].iov_len);
			seq += (unsigned int)ret;
			break;
		}
	}
	/* Before closing: the consumer reads it after end of stream. */
	atomic_store_explicit(s->sum, sum, memory_order_relaxed);
	shut(q);
	free(buf);
	return 0;
}

/* Check one received packet against its sequence number. */
static int check_packet(const struct stream *s, uint64_t seq,
			const unsigned char *b, size_t len)
{
	size_t want = len_of(seq, s->size, s->random_len);

	if (len != want || !intact(b, seq, len)) {
		fprintf(stderr, "packet %" PRIu64 ": %zu bytes (want %zu), %s\n",
			seq, len, want, len == want ? "corrupt" : "");
		return 1;
	}
	return 0;
}

static int wait_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	uint64_t v;

	if (poll(&p, 1, 20000) != 1)
		return -ETIMEDOUT;
	if (read(fd, &v, sizeof(v)) != sizeof(v))
		return -EIO;
	return 0;
}

static int stream_consumer(void *arg)
{
	struct stream *s = arg;
	struct sluice_spsc_opts o;
	struct iovec iov[BATCH];
	struct sluice_spsc *q;
	unsigned char *buf;
	uint64_t seq = 0, sum = 0, rng = 0x7654321;
	unsigned int k, m, i, want;
	enum api api;
	int ret, fd = -1;

	stream_opts(s, &o);
	CK_EQ(attach_when_made(s->r, "stream", SLUICE_SPSC_CONSUMER, &o, &q), 0);
	if (s->api == API_POLL) {
		fd = sluice_spsc_fd(q);
		CK(fd >= 0);
	}
	buf = malloc((size_t)BATCH * s->size + 1);
	CK(buf);
	for (;;) {
		api = s->api == API_MIXED ? rng_next(&rng) % API_MIXED : s->api;
		want = s->api == API_MIXED ? 1 + rng_next(&rng) % BATCH : BATCH;
		switch (api) {
		case API_COPY:
			ret = sluice_spsc_recv(q, buf, s->size);
			if (ret == -EPIPE)
				goto eos;
			CK(ret >= 0);
			CK_EQ(check_packet(s, seq, buf, (size_t)ret), 0);
			sum = csum_add(sum, buf, (size_t)ret);
			seq++;
			break;
		case API_POLL:
			ret = sluice_spsc_try_recv(q, buf, s->size);
			if (ret == -EAGAIN) {
				CK_EQ(wait_readable(fd), 0);
				break;
			}
			if (ret == -EPIPE)
				goto eos;
			CK(ret >= 0);
			CK_EQ(check_packet(s, seq, buf, (size_t)ret), 0);
			sum = csum_add(sum, buf, (size_t)ret);
			seq++;
			break;
		case API_BATCH:
			for (i = 0; i < want; i++) {
				iov[i].iov_base = buf + (size_t)i * s->size;
				iov[i].iov_len = s->size;
			}
			ret = sluice_spsc_recv_batch(q, iov, want);
			if (ret == -EPIPE)
				goto eos;
			CK(ret >= 1 && ret <= (int)want);
			for (i = 0; i < (unsigned int)ret; i++) {
				CK_EQ(check_packet(s, seq, iov[i].iov_base, iov[i].iov_len), 0);
				sum = csum_add(sum, iov[i].iov_base, iov[i].iov_len);
				seq++;
			}
			break;
		case API_ZERO_COPY:
			ret = sluice_spsc_peek(q, iov, want);
			if (ret == -EPIPE)
				goto eos;
			CK(ret >= 1 && ret <= (int)want);
			k = (unsigned int)ret;
			/* Mixed: release only some; the rest come back next time. */
			m = s->api == API_MIXED ? rng_next(&rng) % (k + 1) : k;
			for (i = 0; i < k; i++)
				CK_EQ(check_packet(s, seq + i, iov[i].iov_base, iov[i].iov_len), 0);
			for (i = 0; i < m; i++)
				sum = csum_add(sum, iov[i].iov_base, iov[i].iov_len);
			CK_EQ(sluice_spsc_release(q, m), m);
			seq += m;
			break;
		default:	/* API_TRY */
			ret = sluice_spsc_try_recv(q, buf, s->size);
			if (ret == -EAGAIN) {
				ret = sluice_spsc_wait(q);
				if (ret == -EPIPE)
					goto eos;
				CK_EQ(ret, 0);
				break;
			}
			if (ret == -EPIPE)
				goto eos;
			CK(ret >= 0);
			CK_EQ(check_packet(s, seq, buf, (size_t)ret), 0);
			sum = csum_add(sum, buf, (size_t)ret);
			seq++;
			break;
		}
	}
eos:
	CK_EQ(seq, s->n);
	/* End of stream is sticky. */
	CK_EQ(sluice_spsc_try_recv(q, buf, s->size), -EPIPE);
	CK_EQ(sluice_spsc_recv(q, buf, s->size), -EPIPE);
	CK(atomic_load_explicit(s->sum, memory_order_relaxed) == sum);
	shut(q);
	free(buf);
	return 0;
}

static void run_stream(struct fx *f, enum api api, uint64_t n, uint32_t count,
		   uint32_t size, bool random_len, uint32_t spin_ns)
{
	struct stream s = {
		.r = f->r, .api = api, .n = n, .count = count, .size = size,
		.random_len = random_len, .spin_ns = spin_ns,
	};
	int64_t t0, ms;

	assert_non_null(sync_of(f->r));
	s.sum = &sync_of(f->r)->sum;
	*s.sum = 0xdeadbeef;
	t0 = h_now_ms();
	run_pair(stream_producer, stream_consumer, &s, CHILD_TIMEOUT);
	ms = h_now_ms() - t0;
	print_message("    %" PRIu64 " packets in %" PRId64 " ms (%.1f M/s)\n",
		      n, ms, ms ? (double)n / (double)ms / 1000.0 : 0.0);
}

static void test_two_processes_stream_packets_with_send_and_recv(void **state)
{
	run_stream(*state, API_COPY, BIG, 1024, 64, false, 0);
}

static void test_two_processes_stream_packets_with_batches(void **state)
{
	run_stream(*state, API_BATCH, BIG, 1024, 64, false, 0);
}

static void test_two_processes_stream_packets_zero_copy(void **state)
{
	run_stream(*state, API_ZERO_COPY, BIG, 1024, 64, false, 0);
}

static void test_two_processes_stream_random_sizes_through_every_call(void **state)
{
	run_stream(*state, API_MIXED, MIXED, 256, 200, true, 0);
}

static void test_two_processes_stream_random_sizes_one_at_a_time(void **state)
{
	run_stream(*state, API_COPY, MIXED / 5, 64, 1000, true, 0);
}

static void test_two_processes_stream_through_a_tiny_ring_while_sleeping(void **state)
{
	/* Two slots and no spinning: nearly every call sleeps or wakes. */
	run_stream(*state, API_MIXED, MIXED / 50, 2, 16, true, 1);
}

static void test_two_processes_stream_to_a_consumer_polling_the_fd(void **state)
{
	run_stream(*state, API_POLL, MIXED / 10, 64, 64, true, 0);
}

/* ---------------------------------------------------------------- ping-pong */

struct pingpong {
	struct sluice_region *r;
	uint32_t spin_ns;
	unsigned int n;
	bool must_sleep;
};

/* Times this thread went to sleep of its own accord, from the kernel's count. */
static long sleeps(void)
{
	char line[128];
	long v = -1;
	FILE *f;

	f = fopen("/proc/thread-self/status", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/*
 * With no spinning and a peer that dawdles, many waits of a ping-pong must
 * end in the futex: the kernel's count of voluntary sleeps proves that the
 * sleep path, not spinning, carried the round trips.
 */
static int check_slept(const struct pingpong *pp, long before, const char *who)
{
	long n = sleeps() - before;

	if (pp->must_sleep && n < (long)pp->n / 10) {
		fprintf(stderr, "%s slept only %ld times in %u round trips\n",
			who, n, pp->n);
		return 1;
	}
	return 0;
}

/*
 * Busy for 0 to 8 us before answering, so that the answer lands before,
 * while and after the waiting side arms itself and goes to sleep: the
 * windows where a wakeup could be lost.
 */
static void dawdle(const struct pingpong *pp, uint64_t *rng)
{
	uint64_t ns = rng_next(rng) % 8000, t0 = sluice__now_ns(CLOCK_MONOTONIC);

	if (pp->spin_ns == UINT32_MAX)
		return;		/* nothing to prove with sleeps there */
	while (sluice__now_ns(CLOCK_MONOTONIC) - t0 < ns)
		;
}

static void pp_opts(const struct pingpong *pp, struct sluice_spsc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->spin_ns = pp->spin_ns;
	/* A lost wakeup shows as -ETIMEDOUT, well before the child's alarm. */
	o->timeout_ns = 5000 * MS;
}

static int pp_ping(void *arg)
{
	struct pingpong *pp = arg;
	struct sluice_spsc *out, *in;
	struct sluice_spsc_opts o;
	uint64_t v;
	unsigned int i;
	long before;
	uint64_t rng = 0x9e3779b9;

	pp_opts(pp, &o);
	CK_EQ(make_and_tell(pp->r, "ping", 4, 8, SLUICE_SPSC_PRODUCER, &o, &out), 0);
	CK_EQ(attach_when_made(pp->r, "pong", SLUICE_SPSC_CONSUMER, &o, &in), 0);
	before = sleeps();
	for (i = 0; i < pp->n; i++) {
		dawdle(pp, &rng);
		v = i;
		CK_EQ(sluice_spsc_send(out, &v, sizeof(v)), 0);
		CK_EQ(sluice_spsc_recv(in, &v, sizeof(v)), sizeof(v));
		CK_EQ(v, 3ull * i + 1);
	}
	CK_EQ(check_slept(pp, before, "ping"), 0);
	shut(out);
	CK_EQ(sluice_spsc_recv(in, &v, sizeof(v)), -EPIPE);
	shut(in);
	return 0;
}

static int pp_pong(void *arg)
{
	struct pingpong *pp = arg;
	struct sluice_spsc *out, *in;
	struct sluice_spsc_opts o;
	uint64_t v;
	unsigned int i;
	long before;
	uint64_t rng = 0x9e3779b9;

	pp_opts(pp, &o);
	CK_EQ(make_and_tell(pp->r, "pong", 4, 8, SLUICE_SPSC_PRODUCER, &o, &out), 0);
	CK_EQ(attach_when_made(pp->r, "ping", SLUICE_SPSC_CONSUMER, &o, &in), 0);
	before = sleeps();
	for (i = 0; i < pp->n; i++) {
		CK_EQ(sluice_spsc_recv(in, &v, sizeof(v)), sizeof(v));
		CK_EQ(v, i);
		dawdle(pp, &rng);
		v = 3 * v + 1;
		CK_EQ(sluice_spsc_send(out, &v, sizeof(v)), 0);
	}
	CK_EQ(check_slept(pp, before, "pong"), 0);
	CK_EQ(sluice_spsc_recv(in, &v, sizeof(v)), -EPIPE);
	shut(in);
	shut(out);
	return 0;
}

static void pingpong(struct fx *f, uint32_t spin_ns, bool must_sleep)
{
	struct pingpong pp = {
		.r = f->r, .spin_ns = spin_ns, .n = ROUND_TRIPS, .must_sleep = must_sleep,
	};
	int64_t t0, ms;

	t0 = h_now_ms();
	run_pair(pp_ping, pp_pong, &pp, CHILD_TIMEOUT);
	ms = h_now_ms() - t0;
	print_message("    %u round trips in %" PRId64 " ms\n", pp.n, ms);
}

static void test_ping_pong_between_processes_loses_no_wakeup_when_sleeping(void **state)
{
	pingpong(*state, 1, true);
}

static void test_ping_pong_between_processes_with_adaptive_spinning(void **state)
{
	pingpong(*state, 0, false);
}

static void test_ping_pong_between_processes_spinning_only(void **state)
{
	pingpong(*state, UINT32_MAX, false);
}

/* ---------------------------------------------------------------- slipping */

/* sluice__slip_next(slip, polls, found, max): the policy, case by case. */
#define NEXT(slip, polls, found) \
	sluice__slip_next(slip, polls, found, SLUICE__SPSC_SLIP_MAX)
#define LONE	SLUICE__SLIP_LONE
#define BURST	SLUICE__SLIP_BURST
#define FAR	SLUICE__SLIP_FAR

static void test_slip_grows_while_quick_waits_find_a_burst(void **state)
{
	(void)state;
	/* From no slip, a quick wait alone is enough to try a little. */
	assert_int_equal(NEXT(0, 1, LONE), 1);
	assert_int_equal(NEXT(1, 1, BURST), 3);
	assert_int_equal(NEXT(3, 2, BURST), 7);
	assert_int_equal(NEXT(SLUICE__SPSC_SLIP_MAX - 1, 1, BURST),
			 SLUICE__SPSC_SLIP_MAX);
	assert_int_equal(NEXT(SLUICE__SPSC_SLIP_MAX, 1, BURST),
			 SLUICE__SPSC_SLIP_MAX);
	/* Another most is kept to, also one that is not a power of two less one. */
	assert_int_equal(sluice__slip_next(127, 1, BURST, 256), 255);
	assert_int_equal(sluice__slip_next(255, 1, BURST, 256), 256);
	assert_int_equal(sluice__slip_next(256, 2, BURST, 256), 256);
}

static void test_slip_stops_at_a_lone_packet_and_halves_on_a_long_wait(void **state)
{
	(void)state;
	/* A ping-pong: the pause was only latency. */
	assert_int_equal(NEXT(7, 1, LONE), 0);
	/* The wait went on after the pause: the pause was not what it waited for. */
	assert_int_equal(NEXT(40, 3, LONE), 20);
	assert_int_equal(NEXT(40, 3, FAR), 20);
	assert_int_equal(NEXT(1, 100, BURST), 0);
}

static void test_slip_halves_when_the_peer_got_half_a_ring_ahead(void **state)
{
	(void)state;
	assert_int_equal(NEXT(SLUICE__SPSC_SLIP_MAX, 1, FAR),
			 SLUICE__SPSC_SLIP_MAX / 2);
	assert_int_equal(NEXT(9, 2, FAR), 4);
	/* No slip yet: far ahead is still a reason to try one. */
	assert_int_equal(NEXT(0, 1, FAR), 1);
}

/*
 * A small ring, streaming: the peer gets a slot further ahead for every
 * two pauses, a second packet is always waiting, and half the ring is 16
 * slots.  The slip must settle between none and the most, not ratchet up
 * to the most (with which the peer filled or drained the ring during
 * every pause).
 */
static void test_slip_settles_below_the_most_on_a_small_ring(void **state)
{
	uint32_t slip = 0, ahead, lo = UINT32_MAX, hi = 0;
	int i;

	(void)state;
	for (i = 0; i < 1000; i++) {
		ahead = 2 + slip / 2;
		slip = NEXT(slip, 1, ahead >= 16 ? FAR : BURST);
		if (i >= 900) {
			lo = slip < lo ? slip : lo;
			hi = slip > hi ? slip : hi;
		}
	}
	print_message("    slip settles between %u and %u pauses\n", lo, hi);
	assert_true(lo > 0);
	assert_true(hi < SLUICE__SPSC_SLIP_MAX);
}

#undef NEXT
#undef LONE
#undef BURST
#undef FAR

/* ---------------------------------------------------------------- roles */

static void test_create_and_attach_take_the_two_sides(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 10);
	get(c, 1, 10);
	shut(p);
	shut(c);
}

static void test_the_creator_may_take_the_consumer_side(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	put(p, 7, 64);
	get(c, 7, 64);
	assert_true(ctl_of(&ring_of(f, "q")->prod) & SLUICE_SPSC_ATTACHED);
	assert_true(ctl_of(&ring_of(f, "q")->cons) & SLUICE_SPSC_ATTACHED);
	shut(p);
	shut(c);
}

static void test_getters_report_the_geometry_on_both_sides(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;

	make_pair(f, 16, 100, NULL, &p, &c);
	assert_int_equal(sluice_spsc_slot_count(p), 16);
	assert_int_equal(sluice_spsc_slot_size(p), 100);
	assert_int_equal(sluice_spsc_slot_count(c), 16);
	assert_int_equal(sluice_spsc_slot_size(c), 100);
	shut(p);
	shut(c);
}

static void test_producer_calls_on_a_consumer_are_einval(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[2] = { { buf, 8 }, { buf, 8 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_send(c, buf, 8), -EINVAL);
	assert_int_equal(sluice_spsc_send(c, buf, 8), -EINVAL);
	assert_int_equal(sluice_spsc_send_batch(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_send_batch(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_reserve(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_reserve(c, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_commit(c, iov, 0), -EINVAL);
	/* Nothing reached the ring. */
	assert_int_equal(published(ring_of(f, "q")), 0);
	shut(p);
	shut(c);
}

static void test_consumer_calls_on_a_producer_are_einval(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[2] = { { buf, 64 }, { buf, 64 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 5);
	assert_int_equal(sluice_spsc_try_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_recv_batch(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_recv_batch(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_peek(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_try_peek(p, iov, 2), -EINVAL);
	assert_int_equal(sluice_spsc_release(p, 0), -EINVAL);
	assert_int_equal(sluice_spsc_fd(p), -EINVAL);
	/* The packet is still there for the consumer. */
	get(c, 1, 5);
	shut(p);
	shut(c);
}

static void test_a_consumer_call_on_a_producer_holding_a_reservation_is_einval(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[1];

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), 1);
	/* The wrong side, whatever it holds: -EINVAL, not -EBUSY. */
	assert_int_equal(sluice_spsc_try_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_recv(p, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_spsc_try_peek(p, iov, 1), -EINVAL);
	assert_int_equal(sluice_spsc_commit(p, iov, 0), 0);
	shut(p);
	shut(c);
}

static void test_a_producer_call_on_a_consumer_holding_a_peek_is_einval(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1];

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 5);
	assert_int_equal(sluice_spsc_try_peek(c, iov, 1), 1);
	assert_int_equal(sluice_spsc_try_send(c, buf, 5), -EINVAL);
	assert_int_equal(sluice_spsc_try_reserve(c, iov, 1), -EINVAL);
	assert_int_equal(sluice_spsc_release(c, 1), 1);
	shut(p);
	shut(c);
}

static void test_attaching_a_side_held_by_this_live_process_is_ebusy(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c, *q = NULL;

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q), -EBUSY);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q), -EBUSY);
	assert_null(q);
	/* The holders are undisturbed. */
	put(p, 3, 30);
	get(c, 3, 30);
	shut(p);
	shut(c);
}

struct attach_arg {
	struct sluice_region *r;
	const char *obj;
	enum sluice_spsc_role role;
};

/* In a child: attach; exit with the positive errno, or 0. */
static int child_attach(void *p)
{
	struct attach_arg *a = p;
	struct sluice_spsc *q;
	int err;

	err = sluice_spsc_attach(a->r, a->obj, a->role, NULL, &q);
	if (err)
		return -err;
	shut(q);
	return 0;
}

static void test_attaching_a_side_held_by_another_live_process_is_ebusy(void **state)
{
	struct fx *f = *state;
	struct attach_arg a = { f->r, "q", SLUICE_SPSC_PRODUCER };
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(h_fork(child_attach, &a, CHILD_TIMEOUT), EBUSY);
	/* The free side is there for the taking. */
	a.role = SLUICE_SPSC_CONSUMER;
	assert_int_equal(h_fork(child_attach, &a, CHILD_TIMEOUT), 0);
	shut(p);
}

/* A thread that outlives its process's main thread, then ends the process. */
static void *outlive_main(void *arg)
{
	(void)arg;
	usleep(300 * 1000);
	_exit(0);
}

/*
 * A process whose main thread has exited lives on in its other threads:
 * /proc shows its leader as a zombie, yet its side is still held.
 */
static void test_a_side_held_by_a_process_whose_main_thread_ended_is_ebusy(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	pthread_t t;
	int pipefd[2], status;
	char ok;
	pid_t pid;

#if defined(H_TSAN)
	h_skip("forks a process that runs a thread: not under ThreadSanitizer");
#endif
	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		if (sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &p) ||
		    pthread_create(&t, NULL, outlive_main, NULL))
			_exit(1);
		ok = 'y';
		if (write(pipefd[1], &ok, 1) != 1)
			_exit(1);
		pthread_exit(NULL);	/* the main thread goes; the process stays */
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &ok, 1), 1);
	close(pipefd[0]);
	usleep(50 * 1000);	/* the main thread is gone by now */
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &p), -EBUSY);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* Now it is gone for good: the side is free. */
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	shut(p);
	shut(c);
}

static void test_attaching_a_closed_side_is_epipe(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c, *q = NULL;

	make_pair(f, 8, 64, NULL, &p, &c);
	shut(p);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q), -EPIPE);
	shut(c);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q), -EPIPE);
	assert_null(q);
}

static void test_attaching_a_missing_ring_is_enoent(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_attach(f->r, "nope", SLUICE_SPSC_CONSUMER, NULL, &q), -ENOENT);
	assert_null(q);
}

static void test_attach_rejects_bad_arguments(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_spsc_opts, flags, .flags = 1);
	struct sluice_spsc_opts tiny = { .sz = 4 };
	struct sluice_spsc *p, *q = NULL;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(sluice_spsc_attach(NULL, "q", SLUICE_SPSC_CONSUMER, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", 0, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", 3, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, &flags, &q), -EINVAL);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, &tiny, &q), -EINVAL);
	assert_null(q);
	/* None of that took the side. */
	assert_false(ctl_of(&ring_of(f, "q")->cons) & SLUICE_SPSC_ATTACHED);
	q = join(f, "q", SLUICE_SPSC_CONSUMER, NULL);
	shut(q);
	shut(p);
}

static void test_create_rejects_bad_arguments(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_spsc_opts, flags, .flags = 1);
	struct sluice_spsc_opts tiny = { .sz = 4 };
	struct {
		struct sluice_spsc_opts o;
		uint64_t future;
	} newer = { .o = { .sz = sizeof(newer) }, .future = 1 };
	const enum sluice_spsc_role P = SLUICE_SPSC_PRODUCER;
	struct sluice_obj_info info;
	struct sluice_spsc *q = NULL;

	assert_int_equal(sluice_spsc_create(f->r, "q", 0, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 1, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 3, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 12, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", SLUICE_SPSC_SLOTS_MAX * 2u, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", UINT32_MAX, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 1u << 31, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 0, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, SLUICE_SPSC_SLOT_SIZE_MAX + 1, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, UINT32_MAX, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, 0, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, 3, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, &flags, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, &tiny, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, &newer.o, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(NULL, "q", 8, 64, P, NULL, &q), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, P, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_spsc_create(f->r, "bad/name", 8, 64, P, NULL, &q), -EINVAL);
	assert_null(q);
	/* Nothing was allocated by any of them. */
	assert_int_equal(sluice_region_find(f->r, "q", &info), -ENOENT);
	/* A newer caller's zero tail is fine; the smallest ring is fine. */
	newer.future = 0;
	q = make(f, "q", 2, 1, P, &newer.o);
	shut(q);
}

static void test_create_of_a_taken_name_is_eexist(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *q = NULL;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL, &q), -EEXIST);
	assert_null(q);
	shut(p);
}

static void test_create_of_a_ring_too_big_for_the_region_is_enospc(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *q = NULL;

	/* 2^20 slots of 4 KiB: 4 GiB in an 8 MiB region. */
	assert_int_equal(sluice_spsc_create(f->r, "q", 1u << 20, 4096,
					    SLUICE_SPSC_PRODUCER, NULL, &q), -ENOSPC);
	assert_null(q);
}

static void test_close_of_null_is_a_no_op(void **state)
{
	(void)state;
	sluice_spsc_close(NULL);
}

/* ---------------------------------------------------------------- takeover */

struct dead_arg {
	struct sluice_region *r;
	unsigned int sent;	/* packets committed before dying */
	unsigned int reserved;	/* then reserved, written, never committed */
	unsigned int taken;	/* consumer: packets received before dying */
	unsigned int peeked;	/* then peeked, never released */
};

/* In a child: attach as producer, send, reserve, die without closing. */
static int child_producer_dies(void *p)
{
	struct dead_arg *a = p;
	struct sluice_spsc *q;
	struct iovec iov[8];
	unsigned char buf[64];
	unsigned int i;

	if (sluice_spsc_attach(a->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q))
		return 1;
	for (i = 0; i < a->sent; i++) {
		fill(buf, 100 + i, 40);
		if (sluice_spsc_try_send(q, buf, 40))
			return 2;
	}
	if (a->reserved) {
		if (sluice_spsc_try_reserve(q, iov, a->reserved) != (int)a->reserved)
			return 3;
		for (i = 0; i < a->reserved; i++)
			memset(iov[i].iov_base, 0xee, iov[i].iov_len);
	}
	_exit(0);	/* no close: the process just dies */
}

/* In a child: attach as consumer, take some, peek some, die. */
static int child_consumer_dies(void *p)
{
	struct dead_arg *a = p;
	struct sluice_spsc *q;
	struct iovec iov[8];
	unsigned char buf[64];
	unsigned int i;

	if (sluice_spsc_attach(a->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q))
		return 1;
	for (i = 0; i < a->taken; i++)
		if (sluice_spsc_try_recv(q, buf, sizeof(buf)) != 40 || !intact(buf, 100 + i, 40))
			return 2;
	if (a->peeked && sluice_spsc_try_peek(q, iov, a->peeked) != (int)a->peeked)
		return 3;
	_exit(0);
}

static void test_a_dead_producers_side_can_be_taken_over(void **state)
{
	struct fx *f = *state;
	struct dead_arg a = { .r = f->r, .sent = 5, .reserved = 2 };
	struct sluice_spsc *p, *c;
	unsigned int i;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	assert_int_equal(h_fork(child_producer_dies, &a, CHILD_TIMEOUT), 0);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	/* The new producer carries on after the last committed packet... */
	for (i = 0; i < 3; i++)
		put(p, 200 + i, 40);
	/* ...so the consumer gets exactly the dead one's, then the new one's. */
	for (i = 0; i < 5; i++)
		get(c, 100 + i, 40);
	for (i = 0; i < 3; i++)
		get(c, 200 + i, 40);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	shut(p);
	shut(c);
}

/*
 * A producer dies having published four packets, of which the consumer
 * takes @taken; tail says @tail.  tail is only an announcement and may lag,
 * even behind head, which is no corruption: the new producer carries on
 * after the last tag, never inside what the consumer has freed.
 */
static void takeover_with_tail(struct fx *f, unsigned int taken, uint64_t tail)
{
	struct dead_arg a = { .r = f->r, .sent = 4 };
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned int i;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	assert_int_equal(h_fork(child_producer_dies, &a, CHILD_TIMEOUT), 0);
	ring = ring_of(f, "q");
	assert_int_equal(published(ring), 4);
	for (i = 0; i < taken; i++)
		get(c, 100 + i, 40);
	store64(&ring->tail, tail);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	put(p, 200, 40);
	for (i = taken; i < 4; i++)
		get(c, 100 + i, 40);
	get(c, 200, 40);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	shut(p);
	shut(c);
}

static void test_a_takeover_goes_by_the_tags_not_by_tail(void **state)
{
	takeover_with_tail(*state, 0, 2);
}

static void test_a_takeover_with_tail_behind_head_carries_on_after_head(void **state)
{
	takeover_with_tail(*state, 4, 1);
}

static void test_a_dead_consumers_side_can_be_taken_over(void **state)
{
	struct fx *f = *state;
	struct dead_arg a = { .r = f->r, .taken = 2, .peeked = 1 };
	struct sluice_spsc *p, *c;
	unsigned int i;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	for (i = 0; i < 5; i++)
		put(p, 100 + i, 40);
	assert_int_equal(h_fork(child_consumer_dies, &a, CHILD_TIMEOUT), 0);
	c = join(f, "q", SLUICE_SPSC_CONSUMER, NULL);
	/* What it took is gone; what it only peeked at comes again. */
	for (i = 2; i < 5; i++)
		get(c, 100 + i, 40);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	put(p, 300, 1);
	get(c, 300, 1);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- full, empty, sizes */

static void test_try_send_on_a_full_ring_is_eagain(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 8; i++)
		put(p, i, 64);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EAGAIN);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 1), -EAGAIN);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), -EAGAIN);
	assert_int_equal(published(ring_of(f, "q")), 8);
	/* One slot freed, one packet fits, and no more. */
	get(c, 0, 64);
	put(p, 8, 64);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EAGAIN);
	for (i = 1; i < 9; i++)
		get(c, i, 64);
	shut(p);
	shut(c);
}

static void test_try_recv_on_an_empty_ring_is_eagain(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[1] = { { buf, sizeof(buf) } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 1), -EAGAIN);
	assert_int_equal(sluice_spsc_try_peek(c, iov, 1), -EAGAIN);
	put(p, 1, 2);
	get(c, 1, 2);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	shut(p);
	shut(c);
}

static void test_recv_into_a_small_buffer_is_enobufs_and_keeps_the_packet(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 10000 * MS };
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[1] = { { buf, 19 } };
	int64_t t0;

	make_pair(f, 8, 64, &o, &p, &c);
	put(p, 5, 20);
	assert_int_equal(sluice_spsc_try_recv(c, buf, 19), -ENOBUFS);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, 19), -ENOBUFS);
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 1), -ENOBUFS);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 1), -ENOBUFS);
	assert_true(h_now_ms() - t0 < 5000);	/* did not wait */
	assert_int_equal(load64(&ring_of(f, "q")->head), 0);
	get(c, 5, 20);
	shut(p);
	shut(c);
}

static void test_recv_batch_stops_before_a_packet_longer_than_its_buffer(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[3][64];
	struct iovec iov[3] = { { b[0], 64 }, { b[1], 10 }, { b[2], 64 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 5);
	put(p, 2, 30);
	put(p, 3, 5);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 3), 1);
	assert_int_equal(iov[0].iov_len, 5);
	assert_true(intact(b[0], 1, 5));
	get(c, 2, 30);
	get(c, 3, 5);
	shut(p);
	shut(c);
}

static void test_send_rejects_oversize_packets_with_emsgsize(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[65];

	make_pair(f, 8, 64, NULL, &p, &c);
	fill(buf, 9, sizeof(buf));
	assert_int_equal(sluice_spsc_try_send(p, buf, 65), -EMSGSIZE);
	assert_int_equal(sluice_spsc_send(p, buf, 65), -EMSGSIZE);
	assert_int_equal(sluice_spsc_send(p, buf, SIZE_MAX), -EMSGSIZE);
	assert_int_equal(published(ring_of(f, "q")), 0);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	/* Exactly the slot size fits. */
	put(p, 9, 64);
	get(c, 9, 64);
	shut(p);
	shut(c);
}

static void test_send_batch_rejects_oversize_atomically(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[4][65];
	struct iovec iov[4];
	unsigned int i, bad;

	make_pair(f, 8, 64, NULL, &p, &c);
	/* Six taken: room for two, so a partial send would show. */
	for (i = 0; i < 6; i++)
		put(p, i, 8);
	for (i = 0; i < 4; i++) {
		fill(b[i], 10 + i, 64);
		iov[i] = (struct iovec){ b[i], 64 };
	}
	/* Found while copying (0, 1) or among those that would not fit (2, 3). */
	for (bad = 0; bad < 4; bad++) {
		iov[bad].iov_len = 65;
		assert_int_equal(sluice_spsc_send_batch(p, iov, 4), -EMSGSIZE);
		assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), -EMSGSIZE);
		iov[bad].iov_len = 64;
	}
	/* And on a full ring, where room is what the call looks at first. */
	put(p, 6, 8);
	put(p, 7, 8);
	iov[1].iov_len = 65;
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), -EMSGSIZE);
	assert_int_equal(published(ring_of(f, "q")), 8);
	for (i = 0; i < 8; i++)
		get(c, i, 8);
	assert_int_equal(sluice_spsc_try_recv(c, b[0], 64), -EAGAIN);
	/* The same batch without the oversize packet goes through whole. */
	iov[1].iov_len = 64;
	assert_int_equal(sluice_spsc_send_batch(p, iov, 4), 4);
	for (i = 0; i < 4; i++)
		get(c, 10 + i, 64);
	shut(p);
	shut(c);
}

static void test_zero_length_packets_are_delivered(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 1 };
	struct iovec iov[3] = { { buf, 0 }, { buf, 3 }, { buf, 0 } };
	struct iovec in[3] = { { buf, 8 }, { buf, 8 }, { buf, 8 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_try_send(p, buf, 0), 0);
	assert_int_equal(sluice_spsc_try_recv(c, buf, 0), 0);
	assert_int_equal(sluice_spsc_try_send(p, buf, 0), 0);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), 0);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 3), 3);
	assert_int_equal(sluice_spsc_recv_batch(c, in, 3), 3);
	assert_int_equal(in[0].iov_len, 0);
	assert_int_equal(in[1].iov_len, 3);
	assert_int_equal(in[2].iov_len, 0);
	/* Zero copy: a zero-length commit, a zero-length peek. */
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), 1);
	iov[0].iov_len = 0;
	assert_int_equal(sluice_spsc_commit(p, iov, 1), 1);
	in[0].iov_len = 99;
	assert_int_equal(sluice_spsc_peek(c, in, 1), 1);
	assert_int_equal(in[0].iov_len, 0);
	assert_int_equal(sluice_spsc_release(c, 1), 1);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- batches */

static void test_batches_wrap_around_the_ring(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char out[5][64], in[5][64];
	struct iovec oi[5], ii[5];
	uint64_t seq = 0, rseq = 0;
	unsigned int round, i;

	make_pair(f, 8, 64, NULL, &p, &c);
	/* Batches of 5 in 8 slots: every other batch straddles the wrap. */
	for (round = 0; round < 40; round++) {
		for (i = 0; i < 5; i++) {
			oi[i] = (struct iovec){ out[i], len_of(seq + i, 64, true) };
			fill(out[i], seq + i, oi[i].iov_len);
		}
		assert_int_equal(sluice_spsc_send_batch(p, oi, 5), 5);
		seq += 5;
		for (i = 0; i < 5; i++)
			ii[i] = (struct iovec){ in[i], 64 };
		assert_int_equal(sluice_spsc_recv_batch(c, ii, 5), 5);
		for (i = 0; i < 5; i++) {
			assert_int_equal(ii[i].iov_len, len_of(rseq, 64, true));
			assert_true(intact(in[i], rseq, ii[i].iov_len));
			rseq++;
		}
	}
	assert_int_equal(published(ring_of(f, "q")), 200);
	assert_int_equal(load64(&ring_of(f, "q")->head), 200);
	shut(p);
	shut(c);
}

/*
 * Batches that straddle the wrap are moved in two runs: a bad packet in
 * the second run must stop them exactly as one in the first does.
 */
static void test_a_bad_packet_after_the_wrap_stops_a_batch_as_before_it(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char out[5][65] = { { 0 } }, in[5][64];
	struct iovec oi[5], ii[5];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	/* Move both sides to slot 6: a batch of 5 takes slots 6, 7, 0, 1, 2. */
	for (i = 0; i < 6; i++) {
		assert_int_equal(sluice_spsc_send(p, out[0], 8), 0);
		assert_int_equal(sluice_spsc_recv(c, in[0], 64), 8);
	}
	for (i = 0; i < 5; i++) {
		fill(out[i], 6 + i, 16);
		oi[i] = (struct iovec){ out[i], 16 };
	}
	/* Over-size in the second run: nothing is sent. */
	oi[3].iov_len = 65;
	assert_int_equal(sluice_spsc_send_batch(p, oi, 5), -EMSGSIZE);
	assert_int_equal(published(ring_of(f, "q")), 6);
	assert_int_equal(sluice_spsc_try_recv_batch(c, ii, 1), -EAGAIN);

	/* A packet in the second run too long for its buffer ends the batch before it. */
	fill(out[3], 9, 64);
	oi[3].iov_len = 64;
	assert_int_equal(sluice_spsc_send_batch(p, oi, 5), 5);
	for (i = 0; i < 5; i++)
		ii[i] = (struct iovec){ in[i], 16 };
	assert_int_equal(sluice_spsc_recv_batch(c, ii, 5), 3);
	for (i = 0; i < 3; i++)
		assert_true(intact(in[i], 6 + i, ii[i].iov_len));
	for (i = 0; i < 2; i++)
		ii[i] = (struct iovec){ in[i], 64 };
	assert_int_equal(sluice_spsc_recv_batch(c, ii, 5), 2);
	assert_int_equal(ii[0].iov_len, 64);
	assert_true(intact(in[0], 9, 64));
	assert_true(intact(in[1], 10, 16));
	assert_int_equal(load64(&ring_of(f, "q")->head), 11);
	shut(p);
	shut(c);
}

static void test_try_send_batch_sends_what_fits(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[5][16];
	struct iovec iov[5];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 5; i++) {
		put(p, i, 1);
		fill(b[i], 50 + i, 16);
		iov[i] = (struct iovec){ b[i], 16 };
	}
	/* Three free: three go, in one publication. */
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 5), 3);
	assert_int_equal(published(ring_of(f, "q")), 8);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov + 3, 2), -EAGAIN);
	for (i = 0; i < 5; i++)
		get(c, i, 1);
	for (i = 0; i < 3; i++)
		get(c, 50 + i, 16);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 0), 0);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 0), 0);
	shut(p);
	shut(c);
}

static void test_recv_batch_takes_what_is_there(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char b[8][64];
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 3; i++)
		put(p, i, 20);
	for (i = 0; i < 8; i++)
		iov[i] = (struct iovec){ b[i], 64 };
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 8), 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(iov[i].iov_len, 20);
		assert_true(intact(b[i], i, 20));
	}
	assert_int_equal(iov[3].iov_len, 64);	/* untouched */
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 0), -EINVAL);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- zero copy */

/* Move both sides to index @n of an empty ring. */
static void advance(struct sluice_spsc *p, struct sluice_spsc *c, unsigned int n)
{
	unsigned char buf[64];
	unsigned int i;

	for (i = 0; i < n; i++) {
		assert_int_equal(sluice_spsc_try_send(p, buf, 0), 0);
		assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), 0);
	}
}

static void test_reserve_hands_out_a_run_that_wraps_in_ring_order(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 100, NULL, &p, &c);
	ring = ring_of(f, "q");
	advance(p, c, 6);
	/* Slots 6, 7, 0, 1, 2: one run, in order, across the wrap. */
	assert_int_equal(sluice_spsc_reserve(p, iov, 5), 5);
	for (i = 0; i < 5; i++) {
		assert_ptr_equal(iov[i].iov_base, slot_at(ring, 6 + i));
		assert_int_equal(iov[i].iov_len, 100);
		fill(iov[i].iov_base, 40 + i, 100 - i);
		iov[i].iov_len = 100 - i;
	}
	/* Nothing is visible before the commit. */
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	assert_int_equal(sluice_spsc_commit(p, iov, 5), 5);
	for (i = 0; i < 5; i++)
		get(c, 40 + i, 100 - i);
	shut(p);
	shut(c);
}

static void test_reserve_gives_no_more_than_is_free(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 5; i++)
		put(p, i, 1);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 8), 3);
	assert_int_equal(sluice_spsc_commit(p, iov, 0), 0);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 0), -EINVAL);
	shut(p);
	shut(c);
}

static void test_commit_of_fewer_than_reserved_gives_the_rest_back(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[4], again[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_reserve(p, iov, 4), 4);
	for (i = 0; i < 4; i++) {
		fill(iov[i].iov_base, 60 + i, 33);
		iov[i].iov_len = 33;
	}
	assert_int_equal(sluice_spsc_commit(p, iov, 2), 2);
	assert_int_equal(published(ring_of(f, "q")), 2);
	get(c, 60, 33);
	get(c, 61, 33);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	/* The two given back are the next ones handed out. */
	assert_int_equal(sluice_spsc_reserve(p, again, 1), 1);
	assert_ptr_equal(again[0].iov_base, iov[2].iov_base);
	assert_int_equal(sluice_spsc_commit(p, again, 0), 0);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	put(p, 70, 3);
	get(c, 70, 3);
	shut(p);
	shut(c);
}

static void test_commit_rejects_a_wrong_address_or_too_many_before_publishing(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[4];
	void *keep;
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	advance(p, c, 6);
	assert_int_equal(sluice_spsc_reserve(p, iov, 3), 3);
	for (i = 0; i < 3; i++) {
		fill(iov[i].iov_base, 80 + i, 64);
		iov[i].iov_len = 64;
	}
	iov[3] = iov[2];
	/* More than reserved. */
	assert_int_equal(sluice_spsc_commit(p, iov, 4), -EINVAL);
	/* A wrong address in the middle: the slot after the wrap swapped. */
	keep = iov[1].iov_base;
	iov[1].iov_base = iov[2].iov_base;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), -EINVAL);
	iov[1].iov_base = (unsigned char *)keep + 1;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), -EINVAL);
	iov[1].iov_base = keep;
	/* Too long. */
	iov[2].iov_len = 65;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), -EMSGSIZE);
	iov[2].iov_len = 64;
	assert_int_equal(sluice_spsc_commit(p, iov, 3), 3);
	/* Nothing was published by the failures; the reservation survived them. */
	for (i = 0; i < 3; i++)
		get(c, 80 + i, 64);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EAGAIN);
	shut(p);
	shut(c);
}

static void test_commit_after_the_consumer_closed_is_epipe_and_drops_the_reservation(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[2];

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), 2);
	iov[0].iov_len = iov[1].iov_len = 1;
	shut(c);
	assert_int_equal(sluice_spsc_commit(p, iov, 2), -EPIPE);
	assert_int_equal(published(ring_of(f, "q")), 0);
	/* Dropped: the next call says -EPIPE, not -EBUSY. */
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_send(p, iov[0].iov_base, 1), -EPIPE);
	shut(p);
}

static void test_commit_without_a_reservation_is_einval(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[1];

	make_pair(f, 8, 64, NULL, &p, &c);
	iov[0] = (struct iovec){ slot_at(ring_of(f, "q"), 0), 1 };
	assert_int_equal(sluice_spsc_commit(p, iov, 1), -EINVAL);
	assert_int_equal(sluice_spsc_commit(p, NULL, 0), 0);
	assert_int_equal(published(ring_of(f, "q")), 0);
	shut(p);
	shut(c);
}

static void test_producer_calls_are_ebusy_while_a_reservation_is_outstanding(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[2], one[1] = { { buf, 1 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), 2);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EBUSY);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EBUSY);
	assert_int_equal(sluice_spsc_try_send_batch(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_send_batch(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_try_reserve(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_reserve(p, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_wait(p), -EBUSY);
	iov[0].iov_len = 1;
	assert_int_equal(sluice_spsc_commit(p, iov, 1), 1);
	/* Free again. */
	put(p, 2, 2);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), 1);
	get(c, 2, 2);
	shut(p);
	shut(c);
}

static void test_consumer_calls_are_ebusy_while_a_peek_is_outstanding(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[2], one[1] = { { buf, 64 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 10);
	put(p, 2, 10);
	assert_int_equal(sluice_spsc_peek(c, iov, 1), 1);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EBUSY);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EBUSY);
	assert_int_equal(sluice_spsc_try_recv_batch(c, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_recv_batch(c, one, 1), -EBUSY);
	assert_int_equal(sluice_spsc_try_peek(c, iov, 1), -EBUSY);
	assert_int_equal(sluice_spsc_peek(c, iov, 1), -EBUSY);
	assert_int_equal(sluice_spsc_wait(c), -EBUSY);
	assert_int_equal(sluice_spsc_release(c, 1), 1);
	get(c, 2, 10);
	shut(p);
	shut(c);
}

static void test_peek_shows_packets_in_place_and_release_may_be_partial(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	struct iovec iov[8];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	advance(p, c, 5);
	for (i = 0; i < 5; i++)
		put(p, 90 + i, 10 + i);
	/* Slots 5, 6, 7, 0, 1: one run across the wrap. */
	assert_int_equal(sluice_spsc_peek(c, iov, 8), 5);
	for (i = 0; i < 5; i++) {
		assert_ptr_equal(iov[i].iov_base, slot_at(ring, 5 + i));
		assert_int_equal(iov[i].iov_len, 10 + i);
		assert_true(intact(iov[i].iov_base, 90 + i, 10 + i));
	}
	assert_int_equal(sluice_spsc_release(c, 6), -EINVAL);
	assert_int_equal(sluice_spsc_release(c, 2), 2);
	assert_int_equal(load64(&ring->head), 7);
	/* The rest were not read: they come again. */
	assert_int_equal(sluice_spsc_peek(c, iov, 2), 2);
	assert_true(intact(iov[0].iov_base, 92, 12));
	assert_true(intact(iov[1].iov_base, 93, 13));
	assert_int_equal(sluice_spsc_release(c, 0), 0);
	get(c, 92, 12);
	get(c, 93, 13);
	get(c, 94, 14);
	shut(p);
	shut(c);
}

static void test_release_without_a_peek_is_einval(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 1);
	assert_int_equal(sluice_spsc_release(c, 1), -EINVAL);
	assert_int_equal(sluice_spsc_release(c, 0), 0);
	assert_int_equal(load64(&ring_of(f, "q")->head), 0);
	get(c, 1, 1);
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- deadlines */

static void assert_ms(int64_t ms, int64_t at_least_ms, int64_t below_ms)
{
	if (ms < at_least_ms || ms >= below_ms)
		fail_msg("took %" PRId64 " ms, want [%" PRId64 ", %" PRId64 ")",
			 ms, at_least_ms, below_ms);
}

static void assert_took(int64_t t0, int64_t at_least_ms, int64_t below_ms)
{
	assert_ms(h_now_ms() - t0, at_least_ms, below_ms);
}

static void fill_up(struct sluice_spsc *p)
{
	uint32_t i;

	for (i = 0; i < sluice_spsc_slot_count(p); i++)
		put(p, i, 1);
}

static void timeouts(struct fx *f, uint32_t spin_ns, bool by_opts)
{
	struct sluice_spsc_opts o = { .sz = sizeof(o), .spin_ns = spin_ns };
	struct sluice_spsc *p, *c;
	unsigned char buf[64] = { 0 };
	struct iovec iov[2] = { { buf, 1 }, { buf, 1 } };
	int64_t t0;

	if (by_opts)
		o.timeout_ns = 50 * MS;
	make_pair(f, 8, 64, &o, &p, &c);
	if (!by_opts) {
		sluice_spsc_set_timeout(p, 50 * MS);
		sluice_spsc_set_timeout(c, 50 * MS);
	}
	/* Empty: every consumer call that waits gives up after 50 ms. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 2), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_peek(c, iov, 2), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_wait(c), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	/* Full: every producer call that waits too. */
	fill_up(p);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send(p, buf, 1), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send_batch(p, iov, 2), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), -ETIMEDOUT);
	assert_took(t0, 50, 3000);
	/* Nothing was lost or added by all that. */
	assert_int_equal(published(ring_of(f, "q")), 8);
	get(c, 0, 1);
	shut(p);
	shut(c);
}

static void test_blocking_calls_time_out_on_empty_and_full_rings(void **state)
{
	timeouts(*state, 0, false);
}

static void test_the_timeout_can_be_set_in_the_options(void **state)
{
	timeouts(*state, 0, true);
}

static void test_blocking_calls_time_out_while_sleeping(void **state)
{
	timeouts(*state, 1, false);
}

static void test_blocking_calls_time_out_while_spinning_only(void **state)
{
	timeouts(*state, UINT32_MAX, false);
}

static void test_the_default_timeout_is_five_seconds(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	int64_t t0;

	make_pair(f, 8, 64, NULL, &p, &c);
	sluice_spsc_set_timeout(c, 10 * MS);
	sluice_spsc_set_timeout(c, 0);	/* back to the default */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -ETIMEDOUT);
	assert_took(t0, 5000, 15000);
	shut(p);
	shut(c);
}

struct trickle {
	struct sluice_spsc *c;
	unsigned int every_ms;
	unsigned int most;
	_Atomic bool stop;
};

/* A slow consumer: one packet every @every_ms, @most in all, until stopped. */
static void *trickle(void *p)
{
	struct trickle *t = p;
	unsigned char buf[64];
	unsigned int taken = 0;

	while (!atomic_load(&t->stop) && taken < t->most) {
		h_sleep_ms(t->every_ms);
		if (sluice_spsc_try_recv(t->c, buf, sizeof(buf)) >= 0)
			taken++;
	}
	return NULL;
}

static void test_send_batch_ends_by_one_deadline_though_each_wait_gains_a_slot(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct trickle t = { .every_ms = 80, .most = 8 };
	struct sluice_spsc *p;
	unsigned char buf[8] = { 0 };
	struct iovec iov[8];
	pthread_t th;
	unsigned int i;
	int64_t t0, ms;
	int ret;

	make_pair(f, 4, 64, &o, &p, &t.c);
	fill_up(p);
	for (i = 0; i < 8; i++)
		iov[i] = (struct iovec){ buf, 1 };
	assert_int_equal(pthread_create(&th, NULL, trickle, &t), 0);
	/*
	 * Each wait gains one slot 80 ms in, before a 100 ms deadline of its
	 * own would pass: the call has one deadline, not one per wait, or
	 * its 8 packets would take 8 waits.
	 */
	t0 = h_now_ms();
	ret = sluice_spsc_send_batch(p, iov, 8);
	ms = h_now_ms() - t0;
	atomic_store(&t.stop, true);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_ms(ms, 100, 400);
	/* One slot came before the deadline, unless the consumer ran late. */
	assert_true(ret == 1 || ret == -ETIMEDOUT);
	shut(p);
	shut(t.c);
}

/* ---------------------------------------------------------------- cancel */

struct delayed {
	struct sluice_cancel *c;
	unsigned int ms;
	int reason;
};

static void *trigger_later(void *p)
{
	struct delayed *d = p;

	h_sleep_ms(d->ms);
	sluice_cancel_trigger(d->c, d->reason);
	return NULL;
}

enum blocked_in { IN_SEND, IN_RECV };

/*
 * Block in a send on a full ring or a recv on an empty one, tied to a
 * token; another thread triggers @fire (the token or an ancestor) with
 * @reason after 100 ms.  The call must return @want then, and every later
 * call that would wait must return it at once.
 */
static void cancel_blocked(struct fx *f, enum blocked_in where, uint32_t spin_ns,
			   int reason, bool via_parent)
{
	struct sluice_spsc_opts o = {
		.sz = sizeof(o), .spin_ns = spin_ns, .timeout_ns = 20000 * MS,
	};
	struct sluice_cancel *parent, *tok;
	struct sluice_spsc *p, *c, *q;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	struct delayed d;
	int want = reason ? reason : -ECANCELED;
	pthread_t t;
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &parent), 0);
	assert_int_equal(sluice_cancel_create(parent, &tok), 0);
	make_pair(f, 8, 64, &o, &p, &c);
	q = where == IN_SEND ? p : c;
	sluice_spsc_set_cancel(q, tok);
	if (where == IN_SEND)
		fill_up(p);
	d = (struct delayed){ via_parent ? parent : tok, 100, reason };
	assert_int_equal(pthread_create(&t, NULL, trigger_later, &d), 0);
	t0 = h_now_ms();
	if (where == IN_SEND)
		assert_int_equal(sluice_spsc_send(q, buf, 1), want);
	else
		assert_int_equal(sluice_spsc_recv(q, buf, sizeof(buf)), want);
	assert_took(t0, 90, 10000);
	assert_int_equal(pthread_join(t, NULL), 0);

	/* Later: at once, every call that would wait. */
	t0 = h_now_ms();
	if (where == IN_SEND) {
		assert_int_equal(sluice_spsc_send(q, buf, 1), want);
		assert_int_equal(sluice_spsc_send_batch(q, iov, 1), want);
		assert_int_equal(sluice_spsc_reserve(q, iov, 1), want);
	} else {
		assert_int_equal(sluice_spsc_recv(q, buf, sizeof(buf)), want);
		assert_int_equal(sluice_spsc_recv_batch(q, iov, 1), want);
		assert_int_equal(sluice_spsc_peek(q, iov, 1), want);
	}
	assert_int_equal(sluice_spsc_wait(q), want);
	assert_took(t0, 0, 2000);
	/* The ring itself is intact: the peer still works. */
	if (where == IN_SEND) {
		get(c, 0, 1);
		assert_int_equal(published(ring_of(f, "q")), 8);
	} else {
		put(p, 1, 1);
		assert_int_equal(load64(&ring_of(f, "q")->head), 0);
	}
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
	sluice_cancel_destroy(parent);
}

static void test_cancel_wakes_a_send_blocked_on_a_full_ring(void **state)
{
	cancel_blocked(*state, IN_SEND, 0, 0, false);
}

static void test_cancel_wakes_a_recv_blocked_on_an_empty_ring(void **state)
{
	cancel_blocked(*state, IN_RECV, 0, 0, false);
}

static void test_cancel_wakes_a_send_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_SEND, 1, 0, false);
}

static void test_cancel_wakes_a_recv_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_RECV, 1, 0, false);
}

static void test_cancel_stops_a_recv_that_only_spins(void **state)
{
	cancel_blocked(*state, IN_RECV, UINT32_MAX, 0, false);
}

static void test_cancel_of_a_recv_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_RECV, 1, -ESHUTDOWN, false);
}

static void test_cancel_of_a_send_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_SEND, 0, -ENOTCONN, false);
}

static void test_cancel_of_a_parent_token_wakes_a_wait_on_its_child(void **state)
{
	cancel_blocked(*state, IN_RECV, 1, -EHOSTDOWN, true);
}

static void test_a_token_triggered_before_the_call_fails_it_at_once(void **state)
{
	struct fx *f = *state;
	struct sluice_cancel *tok;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 20000 * MS };
	struct sluice_spsc *p, *c;
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	assert_int_equal(sluice_cancel_trigger(tok, -EIO), 0);
	o.cancel = tok;		/* through the options this time */
	make_pair(f, 8, 64, &o, &p, &c);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -EIO);
	assert_took(t0, 0, 2000);
	/* Detached from the token, the wait is an ordinary one again. */
	sluice_spsc_set_cancel(c, NULL);
	sluice_spsc_set_timeout(c, 30 * MS);
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -ETIMEDOUT);
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
}

static void test_a_triggered_token_fails_only_calls_that_would_wait(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 20000 * MS };
	struct sluice_cancel *tok;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	o.cancel = tok;
	make_pair(f, 2, 64, &o, &p, &c);
	assert_int_equal(sluice_cancel_trigger(tok, 0), 0);
	/* Room: the send needs no wait and goes through; so does the recv. */
	fill(buf, 1, 20);
	assert_int_equal(sluice_spsc_send(p, buf, 20), 0);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), 20);
	assert_true(intact(buf, 1, 20));
	/* Empty: this one would wait. */
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -ECANCELED);
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
}

struct nagger {
	_Atomic uint32_t *word;
	_Atomic bool stop;
	unsigned long bumps;
};

/* A peer gone wrong: bump and wake the futex word as fast as it can. */
static void *nag(void *p)
{
	struct nagger *n = p;
	int64_t t0 = h_now_ms();

	/* Give up after 3 s, so that a wait it holds fails the test, not hangs it. */
	while (!atomic_load(&n->stop) && h_now_ms() - t0 < 3000) {
		atomic_fetch_add(n->word, 1);
		if (!(++n->bumps % 256))
			sluice__futex_wake(n->word);
	}
	return NULL;
}

static void test_a_peer_that_keeps_waking_us_cannot_hold_us_past_the_deadline(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .spin_ns = 1, .timeout_ns = 100 * MS };
	struct sluice_spsc *p, *c;
	struct nagger n = { 0 };
	unsigned char buf[8];
	pthread_t t;
	int64_t t0;
	int ret;

	make_pair(f, 8, 8, &o, &p, &c);
	n.word = &ring_of(f, "q")->cons.seq;
	assert_int_equal(pthread_create(&t, NULL, nag, &n), 0);
	t0 = h_now_ms();
	ret = sluice_spsc_recv(c, buf, sizeof(buf));
	atomic_store(&n.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(ret, -ETIMEDOUT);
	assert_took(t0, 100, 2000);
	assert_true(n.bumps > 0);
	shut(p);
	shut(c);
}

static void test_a_huge_timeout_does_not_expire_at_once(void **state)
{
	struct fx *f = *state;
	struct sluice_cancel *tok;
	struct sluice_spsc *p, *c;
	struct delayed d;
	pthread_t t;
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	make_pair(f, 8, 64, NULL, &p, &c);
	sluice_spsc_set_cancel(c, tok);
	/* "Practically forever": must not wrap around to the past. */
	sluice_spsc_set_timeout(c, UINT64_MAX);
	d = (struct delayed){ tok, 100, 0 };
	assert_int_equal(pthread_create(&t, NULL, trigger_later, &d), 0);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, scratch, sizeof(scratch)), -ECANCELED);
	assert_took(t0, 90, 10000);
	assert_int_equal(pthread_join(t, NULL), 0);
	shut(p);
	shut(c);
	sluice_cancel_destroy(tok);
}

/*
 * A producer gone wrong, acting at the library's test points: as each
 * wait of the consumer begins it shows the packet waited for, and as the
 * wait ends ready it takes it back, before the call can look.  So every
 * wait ends at its first look, reading no clock, and every call after it
 * finds nothing.  It stops at @until_ms, when a call it still holds has
 * failed its test.
 */
static struct {
	struct sluice_spsc *c;
	_Atomic uint64_t *tag;		/* of packet 0 */
	struct sluice_cancel *tok;	/* triggered after @cancel_after readies */
	unsigned long readies, cancel_after;
	int64_t until_ms;
} liar;

static void liar_acts(enum sluice__tp point, void *q)
{
	if (q != liar.c || h_now_ms() >= liar.until_ms)
		return;
	if (point == SLUICE__TP_SPSC_WAIT) {
		store64(liar.tag, SLUICE_SPSC_TAG(0, 8));
		return;
	}
	store64(liar.tag, 0);
	if (liar.tok && ++liar.readies == liar.cancel_after)
		sluice_cancel_trigger(liar.tok, 0);
}

enum consumer_call { CALL_RECV, CALL_RECV_BATCH, CALL_PEEK, CALLS };

static int consumer_call(struct sluice_spsc *c, enum consumer_call which)
{
	struct iovec iov[2] = { { scratch, 64 }, { scratch, 64 } };

	switch (which) {
	case CALL_RECV:
		return sluice_spsc_recv(c, scratch, sizeof(scratch));
	case CALL_RECV_BATCH:
		return sluice_spsc_recv_batch(c, iov, 2);
	default:
		return sluice_spsc_peek(c, iov, 2);
	}
}

static void lie_to(struct fx *f, struct sluice_spsc *c, int64_t for_ms)
{
	liar.c = c;
	liar.tag = tag_at(ring_of(f, "q"), 0);
	liar.until_ms = h_now_ms() + for_ms;
	liar.readies = 0;
	store64(liar.tag, 0);
	sluice__tp_hook = liar_acts;
}

static void test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_deadline(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *p, *c;
	enum consumer_call call;
	int64_t t0;

	make_pair(f, 8, 64, &o, &p, &c);
	for (call = 0; call < CALLS; call++) {
		lie_to(f, c, 3000);
		t0 = h_now_ms();
		assert_int_equal(consumer_call(c, call), -ETIMEDOUT);
		assert_took(t0, 100, 2000);
	}
	sluice__tp_hook = NULL;
	shut(p);
	shut(c);
}

static void test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_token(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 20000 * MS };
	struct sluice_spsc *p, *c;
	enum consumer_call call;
	int64_t t0;

	make_pair(f, 8, 64, &o, &p, &c);
	for (call = 0; call < CALLS; call++) {
		assert_int_equal(sluice_cancel_create(NULL, &liar.tok), 0);
		sluice_spsc_set_cancel(c, liar.tok);
		lie_to(f, c, 3000);
		liar.cancel_after = 100;
		t0 = h_now_ms();
		assert_int_equal(consumer_call(c, call), -ECANCELED);
		assert_took(t0, 0, 2000);
		assert_true(liar.readies >= 100);
		sluice__tp_hook = NULL;
		sluice_spsc_set_cancel(c, NULL);
		sluice_cancel_destroy(liar.tok);
		liar.tok = NULL;
	}
	shut(p);
	shut(c);
}

/* ---------------------------------------------------------------- close */

static void test_after_the_producer_closes_the_consumer_reads_all_then_epipe(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 8; i++)
		put(p, i, 8 * i);
	shut(p);
	assert_true(ctl_of(&ring_of(f, "q")->prod) & SLUICE_SPSC_CLOSED);
	get(c, 0, 0);
	get(c, 1, 8);
	assert_int_equal(sluice_spsc_peek(c, iov, 2), 2);
	assert_int_equal(sluice_spsc_release(c, 2), 2);
	for (i = 0; i < 4; i++)
		iov[i] = (struct iovec){ buf, 64 };
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 1), 1);
	get(c, 5, 40);
	get(c, 6, 48);
	get(c, 7, 56);
	/* End of stream, from every call, every time, without waiting. */
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 4), -EPIPE);
	assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 4), -EPIPE);
	assert_int_equal(sluice_spsc_peek(c, iov, 4), -EPIPE);
	assert_int_equal(sluice_spsc_wait(c), -EPIPE);
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	shut(c);
}

static void test_after_the_consumer_closes_the_producer_gets_epipe(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 1);
	shut(c);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EPIPE);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_wait(p), -EPIPE);
	assert_int_equal(published(ring_of(f, "q")), 1);
	shut(p);
}

struct closer {
	struct sluice_region *r;
	uint32_t spin_ns;
	int64_t waited_ms;
};

/* Fill the ring, then block in send until the consumer closes. */
static int blocked_producer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_opts o = {
		.sz = sizeof(o), .spin_ns = cl->spin_ns, .timeout_ns = 30000 * MS,
	};
	unsigned char buf[8] = { 0 };
	struct sluice_spsc *p;
	int64_t t0;
	int i;

	CK_EQ(make_and_tell(cl->r, "q", 4, 8, SLUICE_SPSC_PRODUCER, &o, &p), 0);
	for (i = 0; i < 4; i++)
		CK_EQ(sluice_spsc_try_send(p, buf, 8), 0);
	t0 = h_now_ms();
	CK_EQ(sluice_spsc_send(p, buf, 8), -EPIPE);
	/* Woken by the close, not by its 30 s deadline. */
	CK(h_now_ms() - t0 >= 50);
	CK(h_now_ms() - t0 < 10000);
	CK_EQ(sluice_spsc_send(p, buf, 8), -EPIPE);
	shut(p);
	return 0;
}

/* Attach, wait until the producer is stuck on the full ring, close. */
static int closing_consumer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *c;

	CK_EQ(attach_when_made(cl->r, "q", SLUICE_SPSC_CONSUMER, NULL, &c), 0);
	ring = ring_in(cl->r, "q");
	CK(ring);
	while (published(ring) < 4)
		h_sleep_ms(1);
	h_sleep_ms(150);
	shut(c);
	return 0;
}

static void test_a_consumer_closing_wakes_a_producer_blocked_on_a_full_ring(void **state)
{
	struct fx *f = *state;
	struct closer cl = { .r = f->r };

	run_pair(blocked_producer, closing_consumer, &cl, CHILD_TIMEOUT);
}

static void test_a_consumer_closing_wakes_a_producer_asleep_on_a_full_ring(void **state)
{
	struct fx *f = *state;
	struct closer cl = { .r = f->r, .spin_ns = 1 };

	run_pair(blocked_producer, closing_consumer, &cl, CHILD_TIMEOUT);
}

/* Block in recv on an empty ring until the producer closes. */
static int blocked_consumer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_opts o = {
		.sz = sizeof(o), .spin_ns = cl->spin_ns, .timeout_ns = 30000 * MS,
	};
	unsigned char buf[8];
	struct sluice_spsc *c;
	int64_t t0;

	CK_EQ(attach_when_made(cl->r, "q", SLUICE_SPSC_CONSUMER, &o, &c), 0);
	CK_EQ(sluice_spsc_recv(c, buf, sizeof(buf)), 3);
	t0 = h_now_ms();
	CK_EQ(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	CK(h_now_ms() - t0 >= 50);
	CK(h_now_ms() - t0 < 10000);
	shut(c);
	return 0;
}

static int closing_producer(void *arg)
{
	struct closer *cl = arg;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p;

	CK_EQ(make_and_tell(cl->r, "q", 4, 8, SLUICE_SPSC_PRODUCER, NULL, &p), 0);
	CK_EQ(sluice_spsc_send(p, "abc", 3), 0);
	ring = ring_in(cl->r, "q");
	CK(ring);
	/* Once the packet is taken, the consumer is on its way to block. */
	while (load64(&ring->head) < 1)
		h_sleep_ms(1);
	h_sleep_ms(150);
	shut(p);
	return 0;
}

static void test_a_producer_closing_wakes_a_consumer_blocked_on_an_empty_ring(void **state)
{
	struct fx *f = *state;
	struct closer cl = { .r = f->r };

	run_pair(closing_producer, blocked_consumer, &cl, CHILD_TIMEOUT);
}

static void test_a_producer_closing_wakes_a_consumer_asleep_on_an_empty_ring(void **state)
{
	struct fx *f = *state;
	struct closer cl = { .r = f->r, .spin_ns = 1 };

	run_pair(closing_producer, blocked_consumer, &cl, CHILD_TIMEOUT);
}

static void test_close_drops_an_outstanding_reservation(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	struct iovec iov[2];

	make_pair(f, 8, 64, NULL, &p, &c);
	put(p, 1, 4);
	assert_int_equal(sluice_spsc_reserve(p, iov, 2), 2);
	memset(iov[0].iov_base, 0xab, 64);
	shut(p);
	get(c, 1, 4);
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EPIPE);
	shut(c);
}

/* ---------------------------------------------------------------- a dead peer */

struct sitter {
	struct sluice_region *r;
	enum sluice_spsc_role role;
	unsigned int sent;	/* a producer's packets, 100 on, 40 bytes */
};

/* In a child: take a side of "q", send if a producer, sit until killed. */
static int sit(void *p)
{
	struct sitter *s = p;
	struct sluice_spsc *q;
	unsigned char buf[64];
	unsigned int i;

	if (sluice_spsc_attach(s->r, "q", s->role, NULL, &q))
		return 1;
	for (i = 0; i < s->sent; i++) {
		fill(buf, 100 + i, 40);
		if (sluice_spsc_try_send(q, buf, 40))
			return 2;
	}
	for (;;)
		pause();
}

/*
 * A process takes @role's side of ring "q" (sending @sent packets if it
 * is the producer) and is killed with SIGKILL: no close, and no monitor
 * to see it die.  Returns once it is reaped.
 */
static void kill_a_peer(struct fx *f, enum sluice_spsc_role role, unsigned int sent)
{
	struct sitter s = { f->r, role, sent };
	struct sluice_spsc_ring *ring = ring_of(f, "q");
	struct sluice_spsc_side *side = role == SLUICE_SPSC_PRODUCER ? &ring->prod : &ring->cons;
	int64_t t0 = h_now_ms();
	int pid;

	pid = h_spawn(sit, &s, CHILD_TIMEOUT);
	assert_true(pid > 0);
	/* ATTACHED is stored (release) after pid. */
	while (!(ctl_of(side) & SLUICE_SPSC_ATTACHED) ||
	       atomic_load_explicit(&side->pid, memory_order_relaxed) != pid ||
	       published(ring) < sent) {
		if (h_now_ms() - t0 > 10000) {
			kill(pid, SIGKILL);
			fail_msg("the peer exited with %d before it was ready", h_wait(pid));
		}
		h_sleep_ms(1);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
}

static void test_a_producer_whose_consumer_was_killed_gets_epipe_from_its_first_deadline(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *p;
	unsigned char buf[8] = { 0 };
	struct iovec iov[12];
	unsigned int i;
	int64_t t0;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, &o);
	kill_a_peer(f, SLUICE_SPSC_CONSUMER, 0);
	for (i = 0; i < 12; i++)
		iov[i] = (struct iovec){ buf, 1 };
	/* What fits goes; the wait for the rest ends at the deadline, dead. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send_batch(p, iov, 12), 8);
	assert_took(t0, 100, 2000);
	/* So the next calls say so at once, without a wait of their own. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_send_batch(p, iov + 8, 4), -EPIPE);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EPIPE);
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_wait(p), -EPIPE);
	assert_took(t0, 0, 50);
	assert_true(ctl_of(&ring_of(f, "q")->cons) & SLUICE_SPSC_DEAD);
	shut(p);
}

static void test_a_consumer_whose_producer_was_killed_reads_all_then_gets_epipe_from_its_first_deadline(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *c;
	unsigned char buf[64];
	struct iovec iov[1] = { { buf, sizeof(buf) } };
	unsigned int i;
	int64_t t0;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, &o);
	kill_a_peer(f, SLUICE_SPSC_PRODUCER, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), 40);
		assert_true(intact(buf, 100 + i, 40));
	}
	/* Nothing more: the wait ends at its deadline, which finds it dead. */
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_took(t0, 100, 2000);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_peek(c, iov, 1), -EPIPE);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_took(t0, 0, 50);
	assert_true(ctl_of(&ring_of(f, "q")->prod) & SLUICE_SPSC_DEAD);
	shut(c);
}

/*
 * Marking the dead peer takes the region's lock: a peer holding it for
 * good costs the call no more than a moment past its deadline, and the
 * death is marked by a later call once the lock is free.
 */
static void test_a_peer_holding_the_region_lock_delays_no_call_past_its_deadline(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_opts o = { .sz = sizeof(o), .timeout_ns = 100 * MS };
	struct sluice_spsc *c;
	unsigned char buf[64];
	int64_t t0;
	int pid;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, &o);
	kill_a_peer(f, SLUICE_SPSC_PRODUCER, 0);
	pid = h_hold_region_lock(f->name);
	assert_true(pid > 0);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -ETIMEDOUT);
	assert_took(t0, 100, 500);
	kill(pid, SIGKILL);
	h_wait(pid);
	t0 = h_now_ms();
	assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EPIPE);
	assert_took(t0, 100, 500);
	shut(c);
}

/* ---------------------------------------------------------------- eventfd */

static bool fd_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n = poll(&p, 1, ms);

	assert_true(n >= 0);
	return n == 1 && (p.revents & POLLIN);
}

/* Read the eventfd until it stays quiet: the bridge has reported everything. */
static void settle(int fd)
{
	uint64_t v;
	int i;

	for (i = 0; i < 100; i++) {
		while (read(fd, &v, sizeof(v)) == sizeof(v))
			;
		if (!fd_readable(fd, 20))
			return;
	}
	fail_msg("eventfd %d never went quiet", fd);
}

static void test_fd_is_readable_after_a_send_and_again_after_more(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	int fd, i;

	make_pair(f, 8, 64, NULL, &p, &c);
	fd = sluice_spsc_fd(c);
	assert_true(fd >= 0);
	assert_int_equal(sluice_spsc_fd(c), fd);
	assert_false(fd_readable(fd, 50));
	for (i = 0; i < 3; i++)
		put(p, i, 10);
	assert_true(fd_readable(fd, 5000));
	settle(fd);
	for (i = 0; i < 3; i++)
		get(c, i, 10);
	/*
	 * Drained: -EAGAIN tells the bridge so.  It may still report packets
	 * we have already read (harmless); once that has settled, the fd
	 * stays quiet while nothing arrives.
	 */
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	settle(fd);
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	assert_false(fd_readable(fd, 50));
	/* More: readable again. */
	put(p, 3, 11);
	assert_true(fd_readable(fd, 5000));
	settle(fd);
	get(c, 3, 11);
	shut(p);
	shut(c);
}

static void test_fd_is_readable_at_end_of_stream(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	int fd;

	make_pair(f, 8, 64, NULL, &p, &c);
	fd = sluice_spsc_fd(c);
	assert_true(fd >= 0);
	assert_false(fd_readable(fd, 50));
	shut(p);
	assert_true(fd_readable(fd, 5000));
	assert_int_equal(sluice_spsc_try_recv(c, scratch, sizeof(scratch)), -EPIPE);
	shut(c);
}

static void test_fd_made_while_packets_wait_is_readable_and_drains_at_once(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	int fd, i;

	make_pair(f, 8, 64, NULL, &p, &c);
	for (i = 0; i < 4; i++)
		put(p, i, 4);
	fd = sluice_spsc_fd(c);
	assert_true(fd >= 0);
	/* The consumer goes on using the handle while the bridge starts. */
	for (i = 0; i < 4; i++)
		get(c, i, 4);
	assert_true(fd_readable(fd, 5000));
	shut(p);
	shut(c);
}

static void test_close_frees_the_fd(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p, *c;
	int before;

	before = h_count_fds();
	make_pair(f, 8, 64, NULL, &p, &c);
	assert_true(sluice_spsc_fd(c) >= 0);
	assert_int_equal(h_count_fds(), before + 1);
	shut(c);
	assert_int_equal(h_count_fds(), before);
	shut(p);
}

struct fd_churn {
	struct sluice_region *r;
	unsigned int rounds;
};

/*
 * Make a consumer's eventfd and close the consumer at once, many times:
 * the close must stop the bridge thread however far it got.  The side is
 * reset by hand between rounds, as a fresh ring would have it.
 */
static int fd_churn(void *arg)
{
	struct fd_churn *fc = arg;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *c;
	uint64_t t0, rng = 42;
	unsigned int i;

	ring = ring_in(fc->r, "q");
	CK(ring);
	for (i = 0; i < fc->rounds; i++) {
		atomic_store(&ring->cons.ctl, 0);
		CK_EQ(sluice_spsc_attach(fc->r, "q", SLUICE_SPSC_CONSUMER, NULL, &c), 0);
		CK(sluice_spsc_fd(c) >= 0);
		/* Close at every point of the bridge's start, 0 to 20 us in. */
		t0 = sluice__now_ns(CLOCK_MONOTONIC);
		while (sluice__now_ns(CLOCK_MONOTONIC) - t0 < rng_next(&rng) % 20000)
			;
		shut(c);
	}
	return 0;
}

static void test_closing_a_consumer_right_after_making_its_fd_never_hangs(void **state)
{
	struct fx *f = *state;
	struct fd_churn fc = { .r = f->r, .rounds = 3000 };
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
#if SIDES_ARE_THREADS
	{
		struct timespec dl;
		int ret;

		fc.rounds = 300;
		deadline_in(&dl, CHILD_TIMEOUT);
		ret = job_join(job_start(fd_churn, &fc), &dl);
		if (ret == -ETIMEDOUT)
			fail_msg("close hung in its eventfd bridge");
		assert_int_equal(ret, 0);
	}
#else
	assert_int_equal(h_fork(fd_churn, &fc, 30), 0);
#endif
	shut(p);
}

/* ---------------------------------------------------------------- corruption */

static void test_a_head_far_ahead_of_tail_makes_producer_calls_ebadmsg(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	fill_up(p);
	store64(&ring->head, 1000);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_send(p, buf, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_reserve(p, iov, 1), -EBADMSG);
	assert_int_equal(sluice_spsc_wait(p), -EBADMSG);
	/* Far behind is as bad. */
	store64(&ring->head, UINT64_MAX - 3);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EBADMSG);
	/* Repaired, the ring is as it was: full, every packet intact. */
	store64(&ring->head, 0);
	assert_int_equal(sluice_spsc_try_send(p, buf, 1), -EAGAIN);
	assert_int_equal(published(ring), 8);
	get(c, 0, 1);
	shut(p);
	shut(c);
}

static void test_a_garbage_head_is_caught_when_the_producer_next_looks(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	unsigned int i;
	int err = 0;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	put(p, 0, 1);
	store64(&ring->head, 0x8000000000000000ull);
	/* Within a ring's worth of sends the producer reloads head and stops. */
	for (i = 0; i < 9 && !err; i++)
		err = sluice_spsc_try_send(p, buf, 1);
	assert_int_equal(err, -EBADMSG);
	assert_true(published_from(ring, 0) <= 8);
	shut(p);
	shut(c);
}

static void test_a_head_moved_backwards_is_ebadmsg_not_a_full_ring(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[8] = { 0 };
	struct iovec iov[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	fill_up(p);
	get(c, 0, 1);
	get(c, 1, 1);
	put(p, 8, 1);	/* the producer has seen head at 2: one slot left */
	for (i = 0; i < 4; i++)
		iov[i] = (struct iovec){ buf, 1 };
	/* head at 1 takes that slot back: a look for more room must not. */
	store64(&ring->head, 1);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), -EBADMSG);
	assert_int_equal(sluice_spsc_send_batch(p, iov, 4), -EBADMSG);
	assert_int_equal(sluice_spsc_reserve(p, iov, 4), -EBADMSG);
	assert_int_equal(sluice_spsc_wait(p), -EBADMSG);
	/* Repaired, the slot is there again. */
	store64(&ring->head, 2);
	assert_int_equal(sluice_spsc_try_send_batch(p, iov, 4), 1);
	assert_int_equal(published(ring), 10);
	shut(p);
	shut(c);
}

static void test_attach_rejects_indices_more_than_a_ring_apart(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *c, *p = NULL;

	c = make(f, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL);
	ring = ring_of(f, "q");
	store64(&ring->tail, 9);
	assert_int_equal(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &p), -EBADMSG);
	assert_null(p);
	/* The failed attach let go of the side. */
	store64(&ring->tail, 0);
	p = join(f, "q", SLUICE_SPSC_PRODUCER, NULL);
	put(p, 1, 1);
	get(c, 1, 1);
	shut(p);
	shut(c);
}

static void test_a_tag_longer_than_a_slot_is_ebadmsg_and_consumes_nothing(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];
	struct iovec iov[2] = { { buf, 64 }, { buf, 64 } };
	static const uint32_t bad[] = { 65, 4096, UINT32_MAX };
	int64_t t0;
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	put(p, 0, 10);
	for (i = 0; i < 3; i++) {
		store64(tag_at(ring, 0), SLUICE_SPSC_TAG(0, bad[i]));
		t0 = h_now_ms();
		assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EBADMSG);
		assert_int_equal(sluice_spsc_recv(c, buf, sizeof(buf)), -EBADMSG);
		assert_int_equal(sluice_spsc_try_recv_batch(c, iov, 2), -EBADMSG);
		assert_int_equal(sluice_spsc_recv_batch(c, iov, 2), -EBADMSG);
		assert_int_equal(sluice_spsc_try_peek(c, iov, 2), -EBADMSG);
		assert_int_equal(sluice_spsc_peek(c, iov, 2), -EBADMSG);
		assert_took(t0, 0, 2000);	/* none of them waited */
		assert_int_equal(load64(&ring->head), 0);
	}
	/* Repaired: the packet was never consumed. */
	store64(tag_at(ring, 0), SLUICE_SPSC_TAG(0, 10));
	get(c, 0, 10);
	shut(p);
	shut(c);
}

static void test_a_bad_tag_inside_a_batch_ends_the_batch_before_it(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char b[4][64];
	struct iovec iov[4];
	unsigned int i;

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	for (i = 0; i < 4; i++) {
		put(p, i, 20);
		iov[i] = (struct iovec){ b[i], 64 };
	}
	store64(tag_at(ring, 2), SLUICE_SPSC_TAG(2, 1000));
	assert_int_equal(sluice_spsc_recv_batch(c, iov, 4), 2);
	assert_true(intact(b[0], 0, 20) && intact(b[1], 1, 20));
	assert_int_equal(sluice_spsc_try_recv(c, b[0], 64), -EBADMSG);
	assert_int_equal(load64(&ring->head), 2);
	shut(p);
	shut(c);
}

static void test_a_tag_of_another_lap_is_not_a_packet(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc_ring *ring;
	struct sluice_spsc *p, *c;
	unsigned char buf[64];

	make_pair(f, 8, 64, NULL, &p, &c);
	ring = ring_of(f, "q");
	/* Slot 0 claims index 8 (next lap) or 0xffffffff: neither is index 0. */
	store64(tag_at(ring, 0), SLUICE_SPSC_TAG(8, 5));
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	store64(tag_at(ring, 0), SLUICE_SPSC_TAG(0xffffffffull, 5));
	assert_int_equal(sluice_spsc_try_recv(c, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(load64(&ring->head), 0);
	put(p, 3, 5);
	get(c, 3, 5);
	shut(p);
	shut(c);
}

/* Corrupt a copy of the config with @poke, attach, restore. */
static int attach_with_config(struct fx *f, void (*poke)(struct sluice_spsc_ring *),
			      bool fix_csum)
{
	struct sluice_spsc_ring *ring = ring_of(f, "q"), saved;
	struct sluice_spsc *q = NULL;
	int err;

	memcpy(&saved, ring, offsetof(struct sluice_spsc_ring, tail));
	poke(ring);
	if (fix_csum)
		ring->csum = csum_of(ring);
	err = sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q);
	memcpy(ring, &saved, offsetof(struct sluice_spsc_ring, tail));
	if (!err)
		shut(q);
	assert_true(err || q);
	return err;
}

static void poke_count_3(struct sluice_spsc_ring *r) { r->slot_count = 3; }
static void poke_count_0(struct sluice_spsc_ring *r) { r->slot_count = 0; }
static void poke_count_big(struct sluice_spsc_ring *r) { r->slot_count = 1u << 31; }
static void poke_size_0(struct sluice_spsc_ring *r) { r->slot_size = 0; }
static void poke_size_big(struct sluice_spsc_ring *r) { r->slot_size = 128; }
static void poke_stride(struct sluice_spsc_ring *r) { r->stride = 32; }
static void poke_tags_off(struct sluice_spsc_ring *r) { r->tags_off += 64; }
static void poke_slots_off(struct sluice_spsc_ring *r) { r->slots_off = 1ull << 40; }
static void poke_size(struct sluice_spsc_ring *r) { r->size *= 2; }
static void poke_csum(struct sluice_spsc_ring *r) { r->csum ^= 1; }
static void poke_abi(struct sluice_spsc_ring *r) { r->abi = SLUICE_SPSC_ABI + 1; }
static void poke_magic(struct sluice_spsc_ring *r) { r->magic ^= 0x100; }
static void poke_magic_0(struct sluice_spsc_ring *r) { r->magic = 0; }
static void poke_nothing(struct sluice_spsc_ring *r) { (void)r; }

/* A whole consistent geometry, checksum and all, for 16 slots: too big. */
static void poke_bigger_ring(struct sluice_spsc_ring *r)
{
	uint64_t tags = (r->tags_off + 16 * 8 + 63) & ~63ull;

	r->slot_count = 16;
	r->slots_off = tags;
	r->size = tags + 16ull * r->stride;
}

static void test_attach_rejects_a_corrupted_config(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	/* Checksum left stale. */
	assert_int_equal(attach_with_config(f, poke_count_3, false), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size_big, false), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_csum, false), -EBADMSG);
	/* Checksum forged to match: the values themselves are checked. */
	assert_int_equal(attach_with_config(f, poke_count_3, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_count_0, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_count_big, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size_0, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size_big, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_stride, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_tags_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_slots_off, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_size, true), -EBADMSG);
	assert_int_equal(attach_with_config(f, poke_bigger_ring, true), -EBADMSG);
	/* And the untouched config attaches. */
	assert_int_equal(attach_with_config(f, poke_nothing, false), 0);
	shut(p);
}

static void test_attach_rejects_another_abi_or_magic_with_eproto(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *p;

	p = make(f, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL);
	assert_int_equal(attach_with_config(f, poke_abi, true), -EPROTO);
	assert_int_equal(attach_with_config(f, poke_abi, false), -EPROTO);
	assert_int_equal(attach_with_config(f, poke_magic, false), -EPROTO);
	/* No magic yet: its creator is still at it. */
	assert_int_equal(attach_with_config(f, poke_magic_0, false), -EAGAIN);
	shut(p);
}

static void test_attach_to_an_object_of_another_type_is_eproto(void **state)
{
	struct fx *f = *state;
	struct sluice_spsc *q = NULL;
	uint64_t off;

	assert_int_equal(sluice_region_alloc(f->r, "raw", SLUICE_OBJ_RAW, 65536, 64, &off), 0);
	assert_int_equal(sluice_spsc_attach(f->r, "raw", SLUICE_SPSC_CONSUMER, NULL, &q), -EPROTO);
	assert_int_equal(sluice_region_alloc(f->r, "user", SLUICE_OBJ_USER, 65536, 64, &off), 0);
	assert_int_equal(sluice_spsc_attach(f->r, "user", SLUICE_SPSC_PRODUCER, NULL, &q), -EPROTO);
	/* A "ring" too small to hold a ring's header. */
	assert_int_equal(sluice_region_alloc(f->r, "tiny", SLUICE_OBJ_SPSC, 64, 64, &off), 0);
	assert_int_equal(sluice_spsc_attach(f->r, "tiny", SLUICE_SPSC_PRODUCER, NULL, &q), -EPROTO);
	assert_null(q);
}

/* ---------------------------------------------------------------- creation race */

#define RACE_ROUNDS	40

struct race {
	struct sluice_region *r;
};

static void race_name(char *buf, size_t len, unsigned int i)
{
	snprintf(buf, len, "race%u", i);
}

/* Make rings one after another, at uneven intervals. */
static int race_creator(void *arg)
{
	struct race *ra = arg;
	struct sluice_spsc *q[RACE_ROUNDS];
	char name[32];
	unsigned int i;

	for (i = 0; i < RACE_ROUNDS; i++) {
		race_name(name, sizeof(name), i);
		h_sleep_ms(i % 3);
		/* 128 KiB each: the creator is a while at it. */
		CK_EQ(sluice_spsc_create(ra->r, name, 128, 1024 - i,
					 SLUICE_SPSC_PRODUCER, NULL, &q[i]), 0);
	}
	for (i = 0; i < RACE_ROUNDS; i++)
		shut(q[i]);
	return 0;
}

/* Attach to each as soon as it can: it is not there, or there whole. */
static int race_attacher(void *arg)
{
	struct race *ra = arg;
	struct sluice_spsc *q;
	char name[32];
	unsigned int i;
	int64_t t0;
	int err;

	for (i = 0; i < RACE_ROUNDS; i++) {
		race_name(name, sizeof(name), i);
		t0 = h_now_ms();
		while ((err = sluice_spsc_attach(ra->r, name, SLUICE_SPSC_CONSUMER,
						 NULL, &q)) == -ENOENT || err == -EAGAIN)
			CK(h_now_ms() - t0 < 10000);
		CK_EQ(err, 0);
		CK_EQ(sluice_spsc_slot_count(q), 128);
		CK_EQ(sluice_spsc_slot_size(q), 1024 - i);
		shut(q);
	}
	return 0;
}

#define EACH_MAKES	20

struct makers {
	struct sluice_region *r;
	_Atomic uint32_t go;
};

/* Make rings a0..a19 (or b0..b19) as fast as possible, then find all 40. */
static int make_many(struct makers *m, char mine, char theirs)
{
	struct sluice_spsc *q[EACH_MAKES];
	struct sluice_obj_info info;
	char name[16];
	unsigned int i;
	int64_t t0;

	while (!atomic_load(&m->go))
		;
	for (i = 0; i < EACH_MAKES; i++) {
		snprintf(name, sizeof(name), "%c%u", mine, i);
		CK_EQ(sluice_spsc_create(m->r, name, 8, 16, SLUICE_SPSC_PRODUCER, NULL, &q[i]), 0);
	}
	for (i = 0; i < EACH_MAKES; i++) {
		snprintf(name, sizeof(name), "%c%u", theirs, i);
		t0 = h_now_ms();
		while (sluice_region_find(m->r, name, &info) == -ENOENT)
			CK(h_now_ms() - t0 < 10000);
		snprintf(name, sizeof(name), "%c%u", mine, i);
		CK_EQ(sluice_region_find(m->r, name, &info), 0);
	}
	for (i = 0; i < EACH_MAKES; i++)
		shut(q[i]);
	return 0;
}

static int make_a(void *arg)
{
	return make_many(arg, 'a', 'b');
}

static int make_b(void *arg)
{
	return make_many(arg, 'b', 'a');
}

static void test_rings_made_at_once_by_two_processes_are_all_kept(void **state)
{
	struct fx *f = *state;
	struct makers *m;
	struct sluice_region_info info = { .sz = sizeof(info) };
	uint64_t off;

	/* The start flag lives in the region: both sides see one flag. */
	assert_int_equal(sluice_region_alloc(f->r, "go", SLUICE_OBJ_RAW, sizeof(*m), 64, &off), 0);
	m = sluice_region_at(f->r, off, sizeof(*m));
	assert_non_null(m);
	m->r = f->r;
	atomic_store(&m->go, 0);
#if SIDES_ARE_THREADS
	atomic_store(&m->go, 1);
	run_pair(make_a, make_b, m, CHILD_TIMEOUT);
#else
	{
		int pa = h_spawn(make_a, m, CHILD_TIMEOUT), pb = h_spawn(make_b, m, CHILD_TIMEOUT);

		h_sleep_ms(20);
		atomic_store(&m->go, 1);
		assert_true(pa > 0 && pb > 0);
		assert_int_equal(h_wait(pa), 0);
		assert_int_equal(h_wait(pb), 0);
	}
#endif
	/* sync, go and forty rings: no entry overwritten by the other side. */
	assert_int_equal(sluice_region_info(f->r, &info), 0);
	assert_int_equal(info.nr_objs, 2 + 2 * EACH_MAKES);
}

static void test_attach_racing_the_creation_sees_the_ring_whole_or_not_at_all(void **state)
{
	struct fx *f = *state;
	struct race ra = { .r = f->r };

	run_pair(race_creator, race_attacher, &ra, CHILD_TIMEOUT);
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* roles and arguments */
		T(test_create_and_attach_take_the_two_sides),
		T(test_the_creator_may_take_the_consumer_side),
		T(test_getters_report_the_geometry_on_both_sides),
		T(test_producer_calls_on_a_consumer_are_einval),
		T(test_consumer_calls_on_a_producer_are_einval),
		T(test_a_consumer_call_on_a_producer_holding_a_reservation_is_einval),
		T(test_a_producer_call_on_a_consumer_holding_a_peek_is_einval),
		T(test_attaching_a_side_held_by_this_live_process_is_ebusy),
		T(test_attaching_a_side_held_by_another_live_process_is_ebusy),
		T(test_a_side_held_by_a_process_whose_main_thread_ended_is_ebusy),
		T(test_attaching_a_closed_side_is_epipe),
		T(test_attaching_a_missing_ring_is_enoent),
		T(test_attach_rejects_bad_arguments),
		T(test_create_rejects_bad_arguments),
		T(test_create_of_a_taken_name_is_eexist),
		T(test_create_of_a_ring_too_big_for_the_region_is_enospc),
		T(test_close_of_null_is_a_no_op),
		/* takeover */
		T(test_a_dead_producers_side_can_be_taken_over),
		T(test_a_takeover_goes_by_the_tags_not_by_tail),
		T(test_a_takeover_with_tail_behind_head_carries_on_after_head),
		T(test_a_dead_consumers_side_can_be_taken_over),
		/* full, empty, sizes */
		T(test_try_send_on_a_full_ring_is_eagain),
		T(test_try_recv_on_an_empty_ring_is_eagain),
		T(test_recv_into_a_small_buffer_is_enobufs_and_keeps_the_packet),
		T(test_recv_batch_stops_before_a_packet_longer_than_its_buffer),
		T(test_send_rejects_oversize_packets_with_emsgsize),
		T(test_send_batch_rejects_oversize_atomically),
		T(test_zero_length_packets_are_delivered),
		/* batches */
		T(test_batches_wrap_around_the_ring),
		T(test_a_bad_packet_after_the_wrap_stops_a_batch_as_before_it),
		T(test_try_send_batch_sends_what_fits),
		T(test_recv_batch_takes_what_is_there),
		/* zero copy */
		T(test_reserve_hands_out_a_run_that_wraps_in_ring_order),
		T(test_reserve_gives_no_more_than_is_free),
		T(test_commit_of_fewer_than_reserved_gives_the_rest_back),
		T(test_commit_rejects_a_wrong_address_or_too_many_before_publishing),
		T(test_commit_without_a_reservation_is_einval),
		T(test_commit_after_the_consumer_closed_is_epipe_and_drops_the_reservation),
		T(test_producer_calls_are_ebusy_while_a_reservation_is_outstanding),
		T(test_consumer_calls_are_ebusy_while_a_peek_is_outstanding),
		T(test_peek_shows_packets_in_place_and_release_may_be_partial),
		T(test_release_without_a_peek_is_einval),
		/* deadlines */
		T(test_blocking_calls_time_out_on_empty_and_full_rings),
		T(test_the_timeout_can_be_set_in_the_options),
		T(test_blocking_calls_time_out_while_sleeping),
		T(test_blocking_calls_time_out_while_spinning_only),
		T(test_the_default_timeout_is_five_seconds),
		T(test_send_batch_ends_by_one_deadline_though_each_wait_gains_a_slot),
		T(test_a_huge_timeout_does_not_expire_at_once),
		T(test_a_triggered_token_fails_only_calls_that_would_wait),
		T(test_a_peer_that_keeps_waking_us_cannot_hold_us_past_the_deadline),
		T(test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_deadline),
		T(test_a_packet_shown_to_each_wait_and_taken_back_cannot_hold_a_call_past_its_token),
		/* cancel */
		T(test_cancel_wakes_a_send_blocked_on_a_full_ring),
		T(test_cancel_wakes_a_recv_blocked_on_an_empty_ring),
		T(test_cancel_wakes_a_send_asleep_on_the_futex),
		T(test_cancel_wakes_a_recv_asleep_on_the_futex),
		T(test_cancel_stops_a_recv_that_only_spins),
		T(test_cancel_of_a_recv_with_a_reason_returns_that_reason),
		T(test_cancel_of_a_send_with_a_reason_returns_that_reason),
		T(test_cancel_of_a_parent_token_wakes_a_wait_on_its_child),
		T(test_a_token_triggered_before_the_call_fails_it_at_once),
		/* close */
		T(test_after_the_producer_closes_the_consumer_reads_all_then_epipe),
		T(test_after_the_consumer_closes_the_producer_gets_epipe),
		T(test_a_consumer_closing_wakes_a_producer_blocked_on_a_full_ring),
		T(test_a_consumer_closing_wakes_a_producer_asleep_on_a_full_ring),
		T(test_a_producer_closing_wakes_a_consumer_blocked_on_an_empty_ring),
		T(test_a_producer_closing_wakes_a_consumer_asleep_on_an_empty_ring),
		T(test_close_drops_an_outstanding_reservation),
		/* a dead peer, no monitor */
		T(test_a_producer_whose_consumer_was_killed_gets_epipe_from_its_first_deadline),
		T(test_a_consumer_whose_producer_was_killed_reads_all_then_gets_epipe_from_its_first_deadline),
		T(test_a_peer_holding_the_region_lock_delays_no_call_past_its_deadline),
		/* eventfd */
		T(test_fd_is_readable_after_a_send_and_again_after_more),
		T(test_fd_is_readable_at_end_of_stream),
		T(test_fd_made_while_packets_wait_is_readable_and_drains_at_once),
		T(test_close_frees_the_fd),
		T(test_closing_a_consumer_right_after_making_its_fd_never_hangs),
		/* corruption */
		T(test_a_head_far_ahead_of_tail_makes_producer_calls_ebadmsg),
		T(test_a_garbage_head_is_caught_when_the_producer_next_looks),
		T(test_a_head_moved_backwards_is_ebadmsg_not_a_full_ring),
		T(test_attach_rejects_indices_more_than_a_ring_apart),
		T(test_a_tag_longer_than_a_slot_is_ebadmsg_and_consumes_nothing),
		T(test_a_bad_tag_inside_a_batch_ends_the_batch_before_it),
		T(test_a_tag_of_another_lap_is_not_a_packet),
		T(test_attach_rejects_a_corrupted_config),
		T(test_attach_rejects_another_abi_or_magic_with_eproto),
		T(test_attach_to_an_object_of_another_type_is_eproto),
		/* two processes */
		T(test_two_processes_stream_packets_with_send_and_recv),
		T(test_two_processes_stream_packets_with_batches),
		T(test_two_processes_stream_packets_zero_copy),
		T(test_two_processes_stream_random_sizes_through_every_call),
		T(test_two_processes_stream_random_sizes_one_at_a_time),
		T(test_two_processes_stream_through_a_tiny_ring_while_sleeping),
		T(test_two_processes_stream_to_a_consumer_polling_the_fd),
		T(test_ping_pong_between_processes_loses_no_wakeup_when_sleeping),
		T(test_ping_pong_between_processes_with_adaptive_spinning),
		T(test_ping_pong_between_processes_spinning_only),
		T(test_rings_made_at_once_by_two_processes_are_all_kept),
		/* slipping */
		cmocka_unit_test(test_slip_grows_while_quick_waits_find_a_burst),
		cmocka_unit_test(test_slip_stops_at_a_lone_packet_and_halves_on_a_long_wait),
		cmocka_unit_test(test_slip_halves_when_the_peer_got_half_a_ring_ahead),
		cmocka_unit_test(test_slip_settles_below_the_most_on_a_small_ring),
		/* last: under TSan a report here stops the run */
		T(test_attach_racing_the_creation_sees_the_ring_whole_or_not_at_all),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("spsc", tests, NULL, NULL);
}
