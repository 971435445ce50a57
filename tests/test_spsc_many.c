// SPDX-License-Identifier: MIT
/*
 * SPSC rings between two processes at full speed: tens of millions of
 * packets streamed through every call there is (copies, batches, zero
 * copy, try_ calls and waits, a polled eventfd), of fixed and random
 * sizes, through big rings and a two-slot one that sleeps on every call;
 * ping-pong with no wakeup lost, sleeping, spinning or both; and rings
 * made by two processes at once, or attached while they are being made.
 *
 * Every packet is checked byte for byte against what its sequence number
 * says it must hold (frames.h), and the whole stream against a checksum
 * the producer leaves in the region before it closes: a packet lost,
 * repeated, reordered, torn or cut short fails the test.  Under
 * ThreadSanitizer the two sides are two threads of one process
 * (h_run_sides()); packet counts shrink under the sanitizers.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/uio.h>

#include <sluice/spsc.h>

#include "frames.h"
#include "harness.h"
#include "internal.h"
#include "spsc_fixture.h"

/* ---------------------------------------------------------------- build */

#if defined(H_TSAN)
#define BIG		200000ull	/* packets of a streaming test */
#define MIXED		100000ull
#define ROUND_TRIPS	2000u
#elif defined(H_ASAN)
#define BIG		1000000ull
#define MIXED		500000ull
#define ROUND_TRIPS	5000u
#else
#define BIG		20000000ull
#define MIXED		5000000ull
#define ROUND_TRIPS	20000u
#endif

#define BATCH		32

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
	_Atomic uint64_t *sum;	/* the producer's checksum, in struct h_sync */
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
		api = s->api == API_MIXED ? h_rng_next(&rng) % API_MIXED : s->api;
		want = s->n - seq < BATCH ? (unsigned int)(s->n - seq) : BATCH;
		if (s->api == API_MIXED)
			want = 1 + h_rng_next(&rng) % want;
		switch (api) {
		case API_COPY:
		case API_POLL:
			len = len_of(seq, s->size, s->random_len);
			h_fill(buf, seq, len);
			CK_EQ(sluice_spsc_send(q, buf, len), 0);
			sum = h_csum_add(sum, buf, len);
			seq++;
			break;
		case API_BATCH:
			for (i = 0; i < want; i++) {
				iov[i].iov_base = buf + (size_t)i * s->size;
				iov[i].iov_len = len_of(seq + i, s->size, s->random_len);
				h_fill(iov[i].iov_base, seq + i, iov[i].iov_len);
				sum = h_csum_add(sum, iov[i].iov_base, iov[i].iov_len);
			}
			CK_EQ(sluice_spsc_send_batch(q, iov, want), want);
			seq += want;
			break;
		case API_ZERO_COPY:
			ret = sluice_spsc_reserve(q, iov, want);
			CK(ret >= 1 && ret <= (int)want);
			k = (unsigned int)ret;
			/* Mixed: commit only some, giving the rest back. */
			m = s->api == API_MIXED ? h_rng_next(&rng) % (k + 1) : k;
			for (i = 0; i < k; i++) {
				CK_EQ(iov[i].iov_len, s->size);
				len = len_of(seq + i, s->size, s->random_len);
				/* Slots past m are scribbled on and given back. */
				h_fill(iov[i].iov_base, i < m ? seq + i : ~0ull, len);
				iov[i].iov_len = len;
				if (i < m)
					sum = h_csum_add(sum, iov[i].iov_base, len);
			}
			CK_EQ(sluice_spsc_commit(q, iov, m), m);
			seq += m;
			break;
		default:	/* API_TRY */
			for (i = 0; i < want; i++) {
				iov[i].iov_base = buf + (size_t)i * s->size;
				iov[i].iov_len = len_of(seq + i, s->size, s->random_len);
				h_fill(iov[i].iov_base, seq + i, iov[i].iov_len);
			}
			while ((ret = sluice_spsc_try_send_batch(q, iov, want)) == -EAGAIN)
				CK_EQ(sluice_spsc_wait(q), 0);
			CK(ret >= 1 && ret <= (int)want);
			for (i = 0; i < (unsigned int)ret; i++)
				sum = h_csum_add(sum, iov[i].iov_base, iov[i].iov_len);
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

	if (len != want || !h_intact(b, seq, len)) {
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
		api = s->api == API_MIXED ? h_rng_next(&rng) % API_MIXED : s->api;
		want = s->api == API_MIXED ? 1 + h_rng_next(&rng) % BATCH : BATCH;
		switch (api) {
		case API_COPY:
			ret = sluice_spsc_recv(q, buf, s->size);
			if (ret == -EPIPE)
				goto eos;
			CK(ret >= 0);
			CK_EQ(check_packet(s, seq, buf, (size_t)ret), 0);
			sum = h_csum_add(sum, buf, (size_t)ret);
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
			sum = h_csum_add(sum, buf, (size_t)ret);
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
				sum = h_csum_add(sum, iov[i].iov_base, iov[i].iov_len);
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
			m = s->api == API_MIXED ? h_rng_next(&rng) % (k + 1) : k;
			for (i = 0; i < k; i++)
				CK_EQ(check_packet(s, seq + i, iov[i].iov_base, iov[i].iov_len), 0);
			for (i = 0; i < m; i++)
				sum = h_csum_add(sum, iov[i].iov_base, iov[i].iov_len);
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
			sum = h_csum_add(sum, buf, (size_t)ret);
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

static void run_stream(struct h_fx *f, enum api api, uint64_t n, uint32_t count,
		   uint32_t size, bool random_len, uint32_t spin_ns)
{
	struct stream s = {
		.r = f->r, .api = api, .n = n, .count = count, .size = size,
		.random_len = random_len, .spin_ns = spin_ns,
	};
	int64_t t0, ms;

	assert_non_null(h_sync_of(f->r));
	s.sum = &h_sync_of(f->r)->sum;
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
	uint64_t ns = h_rng_next(rng) % 8000, t0 = sluice__now_ns(CLOCK_MONOTONIC);

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

static void pingpong(struct h_fx *f, uint32_t spin_ns, bool must_sleep)
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
	struct h_fx *f = *state;
	struct makers *m;
	struct sluice_region_info info = { .sz = sizeof(info) };
	uint64_t off;

	/* The start flag lives in the region: both sides see one flag. */
	assert_int_equal(sluice_region_alloc(f->r, "go", SLUICE_OBJ_RAW, sizeof(*m), 64, &off), 0);
	m = sluice_region_at(f->r, off, sizeof(*m));
	assert_non_null(m);
	m->r = f->r;
	atomic_store(&m->go, 0);
#if H_SIDES_ARE_THREADS
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
	struct h_fx *f = *state;
	struct race ra = { .r = f->r };

	run_pair(race_creator, race_attacher, &ra, CHILD_TIMEOUT);
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, spsc_setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
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
		/* last: under TSan a report here stops the run */
		T(test_attach_racing_the_creation_sees_the_ring_whole_or_not_at_all),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("spsc_many", tests, NULL, NULL);
}
