// SPDX-License-Identifier: MIT
/*
 * Multiplexing (mux.h), across real processes: a caller's side in the
 * test's process (its threads calling at once), a responder in a child,
 * or several of each; replies checked against their requests, sent back
 * in any order, late, wrong, damaged or never; the responder killed with
 * calls in flight.  Under ThreadSanitizer the processes are threads of
 * one process (h_run_sides()), and tests that kill a process skip.
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
#include <unistd.h>
#include <sys/uio.h>

#include <sluice/cancel.h>
#include <sluice/liveness.h>
#include <sluice/mux.h>
#include <sluice/spsc.h>

#include "harness.h"
#include "testpoint.h"

#define MS		1000000ull
#define CHILD_TIMEOUT	120
#define SLOTS		64u
#define SLOT		256u
#define LINKS_MAX	4
#define THREADS		8

#if defined(H_TSAN)
#define CALLS		300u	/* per thread */
#elif defined(H_ASAN)
#define CALLS		1000u
#else
#define CALLS		3000u
#endif

static int setup(void **state)
{
	return h_fx_setup(state, 8 << 20);
}

/* ---------------------------------------------------------------- links */

/* Link @i's rings: "q<i>" carries requests, "p<i>" replies. */
static void ring_names(unsigned int i, char *q, char *p)
{
	sprintf(q, "q%u", i);
	sprintf(p, "p%u", i);
}

/*
 * The caller's ends of link @i, as a multiplexer: it makes the rings (a
 * side closed stays closed, so each end is taken once, by its user).
 */
static int caller_make(struct sluice_region *r, unsigned int i, uint32_t slots, uint32_t slot,
		       struct sluice_liveness *live, const struct sluice_mux_opts *o,
		       struct sluice_mux **m)
{
	SLUICE_OPTS(sluice_spsc_opts, so, .liveness = live);
	struct sluice_spsc *out, *in;
	char q[16], p[16];
	int err;

	ring_names(i, q, p);
	err = sluice_spsc_create(r, q, slots, slot, SLUICE_SPSC_PRODUCER, &so, &out);
	if (err)
		return err;
	err = sluice_spsc_create(r, p, slots, slot, SLUICE_SPSC_CONSUMER, &so, &in);
	if (err) {
		sluice_spsc_close(out);
		return err;
	}
	err = sluice_mux_create(out, in, o, m);
	if (err) {
		sluice_spsc_close(out);
		sluice_spsc_close(in);
	}
	return err;
}

static int attach_soon(struct sluice_region *r, const char *name, enum sluice_spsc_role role,
		       const struct sluice_spsc_opts *so, struct sluice_spsc **q)
{
	int64_t t0 = h_now_ms();
	int err;

	while ((err = sluice_spsc_attach(r, name, role, so, q)) == -ENOENT || err == -EAGAIN) {
		if (h_now_ms() - t0 > 20000)
			break;
		usleep(100);
	}
	return err;
}

static int responder_make(struct sluice_region *r, unsigned int i,
			  const struct sluice_mux_responder_opts *o,
			  struct sluice_mux_responder **rs)
{
	SLUICE_OPTS(sluice_spsc_opts, so, .timeout_ns = 20000 * MS);
	struct sluice_spsc *in, *out;
	char q[16], p[16];
	int err;

	ring_names(i, q, p);
	/* The caller makes the rings, one then the other: wait for each. */
	err = attach_soon(r, q, SLUICE_SPSC_CONSUMER, &so, &in);
	if (err)
		return err;
	err = attach_soon(r, p, SLUICE_SPSC_PRODUCER, &so, &out);
	if (err) {
		sluice_spsc_close(in);
		return err;
	}
	err = sluice_mux_responder_create(in, out, o, rs);
	if (err) {
		sluice_spsc_close(in);
		sluice_spsc_close(out);
	}
	return err;
}

/* ---------------------------------------------------------------- responders */

enum rmode {
	R_ECHO,			/* reply at once with the request's bytes */
	R_SHUFFLE,		/* take `batch` requests, reply in a random order */
	R_LATE_FIRST,		/* the first reply `delay_ms` late, the rest at once */
	R_ERROR,		/* reply with -ENOTSUP */
	R_STRANGER,		/* first a reply to a nonce nobody sent, then echo */
	R_SILENT,		/* take requests, never reply; with `batch`, take that
				 * many, then none until the sync's stage is set */
	R_IN_PLACE,		/* echo through reply_reserve/commit, every other aborted first */
	R_DIE,			/* take `batch` requests, then die (SIGKILL itself) */
	R_BATCH,		/* recv_batch and reply_batch */
	R_DIE_RESERVED,		/* take a request, reserve its reply, die there */
};

struct rsp_arg {
	struct sluice_region *r;
	unsigned int links;		/* serve links 0 .. links - 1, a thread each */
	unsigned int link;		/* this thread's */
	enum rmode mode;
	unsigned int batch;
	unsigned int delay_ms;
};

/*
 * A test point (lib/testpoint.h) at which a child stops and dies: it says
 * "here" (stage 1) in the fixture's sync, waits for the test's word
 * (stage 2), then dies of SIGKILL there, as if killed from outside at
 * exactly that instant.  Which point: die_point.
 */
static struct sluice_region *die_region;
static enum sluice__tp die_point;

static void die_at_point(enum sluice__tp point, void *obj)
{
	struct h_sync *sy = h_sync_of(die_region);

	(void)obj;
	if (point != die_point)
		return;
	atomic_store(&sy->stage, 1);
	if (h_wait_for(&sy->stage, 2, 20000) == 0)
		raise(SIGKILL);
	_exit(98);
}

static int echo_one(struct sluice_mux_responder *rs, uint64_t nonce, const void *buf, int n)
{
	return sluice_mux_reply(rs, nonce, buf, (size_t)n);
}

/* A reply the caller will not read, having closed: the end of the test. */
#define REPLIED(expr, want)						\
	do {								\
		int r_ = (expr);					\
		if (r_ == -EPIPE)					\
			goto done;					\
		CK_EQ(r_, want);					\
	} while (0)

static int serve_link(struct rsp_arg *a)
{
	struct sluice_mux_responder *rs;
	uint64_t nonce[64];
	struct iovec iov[64];
	unsigned char buf[64][SLOT];
	unsigned int i, j, k, got = 0, served = 0;
	int n;

	CK_EQ(responder_make(a->r, a->link, NULL, &rs), 0);
	h_sync_of(a->r)->ready++;
	for (;;) {
		if (a->mode == R_BATCH) {
			for (i = 0; i < 64; i++)
				iov[i] = (struct iovec){ buf[i], SLOT };
			n = sluice_mux_recv_batch(rs, nonce, iov, 64);
		} else {
			n = sluice_mux_recv(rs, &nonce[got], buf[got], SLOT);
			iov[got].iov_len = n > 0 ? (size_t)n : 0;
		}
		if (n == -EPIPE)
			break;		/* the caller closed: done */
		if (n == -ETIMEDOUT)
			continue;
		CK(n >= 0);
		served++;
		switch (a->mode) {
		case R_ECHO:
			REPLIED(echo_one(rs, nonce[0], buf[0], n), 0);
			break;
		case R_BATCH:
			REPLIED(sluice_mux_reply_batch(rs, nonce, iov, (unsigned int)n), n);
			break;
		case R_SHUFFLE:
			if (++got < a->batch)
				break;
			/* Fisher-Yates, then every reply in that order. */
			for (i = got; i > 1; i--) {
				j = (unsigned int)rand() % i;
				k = i - 1;
				uint64_t tn = nonce[k];
				struct iovec tv = iov[k];
				unsigned char tb[SLOT];

				memcpy(tb, buf[k], SLOT);
				memcpy(buf[k], buf[j], SLOT);
				memcpy(buf[j], tb, SLOT);
				nonce[k] = nonce[j];
				nonce[j] = tn;
				iov[k].iov_len = iov[j].iov_len;
				iov[j].iov_len = tv.iov_len;
			}
			for (i = 0; i < got; i++)
				REPLIED(sluice_mux_reply(rs, nonce[i], buf[i], iov[i].iov_len), 0);
			got = 0;
			break;
		case R_LATE_FIRST:
			if (served == 1)
				h_sleep_ms(a->delay_ms);
			REPLIED(echo_one(rs, nonce[0], buf[0], n), 0);
			break;
		case R_ERROR:
			REPLIED(sluice_mux_reply_error(rs, nonce[0], -ENOTSUP), 0);
			break;
		case R_STRANGER:
			if (served == 1)
				REPLIED(sluice_mux_reply(rs, nonce[0] ^ (1ull << 40), "x", 1), 0);
			REPLIED(echo_one(rs, nonce[0], buf[0], n), 0);
			break;
		case R_SILENT:
			if (a->batch && served == a->batch)
				while (!h_sync_of(a->r)->stage)
					h_sleep_ms(1);
			break;
		case R_IN_PLACE: {
			struct iovec room;

			REPLIED(sluice_mux_reply_reserve(rs, nonce[0], &room), 0);
			CK(room.iov_len >= (size_t)n);
			/* One at a time: a second reserve by this thread says so. */
			CK_EQ(sluice_mux_reply_reserve(rs, nonce[0], &room), -EBUSY);
			if (served % 2) {
				sluice_mux_reply_abort(rs);
				REPLIED(sluice_mux_reply_reserve(rs, nonce[0], &room), 0);
			}
			memcpy(room.iov_base, buf[0], (size_t)n);
			REPLIED(sluice_mux_reply_commit(rs, (size_t)n), 0);
			break;
		}
		case R_DIE_RESERVED: {
			struct iovec room;

			sluice__tp_hook = die_at_point;
			(void)sluice_mux_reply_reserve(rs, nonce[0], &room);
			return 96;	/* not reached: it dies in there */
		}
		case R_DIE:
			if (++got == a->batch) {
				h_sync_of(a->r)->stage = 1;
				kill(getpid(), SIGKILL);
			}
			break;
		}
	}
done:
	sluice_mux_responder_close(rs);
	return 0;
}

static void *serve_thread(void *arg)
{
	return (void *)(intptr_t)serve_link(arg);
}

/* A responder process: a thread for each link. */
static int responder(void *arg)
{
	struct rsp_arg *a = arg, t[LINKS_MAX];
	pthread_t th[LINKS_MAX];
	unsigned int i;
	void *ret;
	int bad = 0;

	srand((unsigned int)getpid());
	if (a->links <= 1) {
		t[0] = *a;
		t[0].link = 0;
		return serve_link(&t[0]);
	}
	for (i = 0; i < a->links; i++) {
		t[i] = *a;
		t[i].link = i;
		CK_EQ(pthread_create(&th[i], NULL, serve_thread, &t[i]), 0);
	}
	for (i = 0; i < a->links; i++) {
		pthread_join(th[i], &ret);
		bad |= (int)(intptr_t)ret;
	}
	return bad;
}

/* ---------------------------------------------------------------- callers */

struct caller_arg {
	struct sluice_mux *m;
	unsigned int id;
	unsigned int calls;
	unsigned int depth;		/* async: requests each thread keeps in flight */
	int bad;
};

/* A request's bytes: who sent it and which, then filler of that. */
static size_t req_fill(unsigned char *b, unsigned int who, unsigned int seq)
{
	size_t len = 8 + (seq * 7 + who) % (SLOT - SLUICE_MUX_HDR - 8);
	size_t i;

	memcpy(b, &who, 4);
	memcpy(b + 4, &seq, 4);
	for (i = 8; i < len; i++)
		b[i] = (unsigned char)(who * 31 + seq + i);
	return len;
}

static void *caller_thread(void *arg)
{
	struct caller_arg *a = arg;
	unsigned char req[SLOT], rep[SLOT];
	unsigned int i;
	size_t len;
	int n;

	for (i = 0; i < a->calls; i++) {
		len = req_fill(req, a->id, i);
		n = sluice_mux_call(a->m, req, len, rep, sizeof(rep), NULL);
		if (n != (int)len || memcmp(req, rep, len)) {
			fprintf(stderr, "caller %u call %u: %d (%s), want %zu\n", a->id, i, n,
				n < 0 ? strerror(-n) : "bytes", len);
			a->bad = 1;
			return NULL;
		}
	}
	return NULL;
}

/* Async: @depth requests in flight, each waited for in turn. */
static void *sender_thread(void *arg)
{
	struct caller_arg *a = arg;
	unsigned char req[64][SLOT], rep[SLOT];
	uint64_t nonce[64];
	size_t len[64];
	unsigned int sent = 0, done = 0, d;
	int n;

	while (done < a->calls) {
		while (sent < a->calls && sent - done < a->depth) {
			d = sent % a->depth;
			len[d] = req_fill(req[d], a->id, sent);
			n = sluice_mux_send(a->m, req[d], len[d], NULL, NULL, &nonce[d]);
			if (n) {
				fprintf(stderr, "sender %u: send %s\n", a->id, strerror(-n));
				a->bad = 1;
				return NULL;
			}
			sent++;
		}
		d = done % a->depth;
		n = sluice_mux_wait(a->m, nonce[d], rep, sizeof(rep), NULL);
		if (n != (int)len[d] || memcmp(req[d], rep, len[d])) {
			fprintf(stderr, "sender %u wait %u: %d\n", a->id, done, n);
			a->bad = 1;
			return NULL;
		}
		done++;
	}
	return NULL;
}

/* @threads threads on @m, calling (depth 0) or sending @depth ahead. */
static int run_callers(struct sluice_mux *m, unsigned int base, unsigned int threads,
		       unsigned int calls, unsigned int depth)
{
	struct caller_arg a[THREADS];
	pthread_t th[THREADS];
	unsigned int i;
	int bad = 0;

	for (i = 0; i < threads; i++) {
		a[i] = (struct caller_arg){ m, base + i, calls, depth, 0 };
		CK_EQ(pthread_create(&th[i], NULL, depth ? sender_thread : caller_thread, &a[i]), 0);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		bad |= a[i].bad;
	}
	return bad;
}

/* A caller process (or thread): link @id, THREADS threads. */
struct proc_arg {
	struct sluice_region *r;
	unsigned int id;
	unsigned int depth;
};

static int caller_proc(void *arg)
{
	struct proc_arg *a = arg;
	struct sluice_mux_stats st;
	struct sluice_mux *m;

	CK_EQ(caller_make(a->r, a->id, SLOTS, SLOT, NULL, NULL, &m), 0);
	CK_EQ(run_callers(m, a->id * 100, THREADS, CALLS, a->depth), 0);
	sluice_mux_stats(m, &st);
	CK_EQ(st.sent, THREADS * CALLS);
	CK_EQ(st.replied, THREADS * CALLS);
	CK_EQ(st.dropped, 0);
	CK_EQ(sluice_mux_pending(m), 0);
	sluice_mux_close(m);
	return 0;
}

/* ---------------------------------------------------------------- fixture */

/*
 * A responder for link 0 in a child (or thread), in @mode, and the
 * caller's multiplexer over it here.
 */
struct pair {
	struct h_fx *fx;
	struct sluice_mux *m;
	struct rsp_arg ra;
	int pid;
	pthread_t th;
	bool thread;
};

static void pair_open(struct pair *p, struct h_fx *fx, enum rmode mode, unsigned int batch,
		      const struct sluice_mux_opts *o, struct sluice_liveness *live,
		      uint32_t slots)
{
	memset(p, 0, sizeof(*p));
	p->fx = fx;
	p->ra = (struct rsp_arg){ fx->r, 1, 0, mode, batch, 200 };
	assert_int_equal(caller_make(fx->r, 0, slots, SLOT, live, o, &p->m), 0);
	p->thread = H_SIDES_ARE_THREADS;
	if (p->thread) {
		assert_int_equal(pthread_create(&p->th, NULL, serve_thread, &p->ra), 0);
	} else {
		p->pid = h_spawn(responder, &p->ra, CHILD_TIMEOUT);
		assert_true(p->pid > 0);
	}
}

/* Close the caller's side; the responder sees -EPIPE and returns 0. */
static void pair_close(struct pair *p)
{
	void *ret;

	sluice_mux_close(p->m);
	p->m = NULL;
	if (p->thread) {
		pthread_join(p->th, &ret);
		assert_int_equal((int)(intptr_t)ret, 0);
	} else {
		assert_int_equal(h_wait(p->pid), 0);
	}
}

static struct sluice_mux_call_opts call_ms(uint64_t ms, struct sluice_cancel *c)
{
	return (struct sluice_mux_call_opts){ .sz = sizeof(struct sluice_mux_call_opts),
					      .timeout_ns = ms * MS, .cancel = c };
}

/* ---------------------------------------------------------------- arguments */

static void test_create_checks_its_arguments(void **state)
{
	struct h_fx *fx = *state;
	struct sluice_spsc *out, *in, *tiny;
	struct sluice_mux_opts o;
	struct sluice_mux *m;
	unsigned char big[sizeof(o) + 8];

	assert_int_equal(sluice_spsc_create(fx->r, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL, &out), 0);
	assert_int_equal(sluice_spsc_create(fx->r, "p", 8, 64, SLUICE_SPSC_CONSUMER, NULL, &in), 0);
	assert_int_equal(sluice_spsc_create(fx->r, "t", 8, 8, SLUICE_SPSC_PRODUCER, NULL, &tiny), 0);
	assert_int_equal(sluice_mux_create(NULL, in, NULL, &m), -EINVAL);
	assert_int_equal(sluice_mux_create(out, NULL, NULL, &m), -EINVAL);
	assert_int_equal(sluice_mux_create(out, in, NULL, NULL), -EINVAL);
	/* Each end on its side: out produces, in consumes. */
	assert_int_equal(sluice_mux_create(in, out, NULL, &m), -EINVAL);
	assert_int_equal(sluice_mux_create(out, out, NULL, &m), -EINVAL);
	/* A slot too small for the header. */
	assert_int_equal(sluice_mux_create(tiny, in, NULL, &m), -EINVAL);
	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.inflight = SLUICE_MUX_INFLIGHT_MAX + 1;
	assert_int_equal(sluice_mux_create(out, in, &o, &m), -EINVAL);
	o.inflight = 0;
	o.flags = 1;
	assert_int_equal(sluice_mux_create(out, in, &o, &m), -EINVAL);
	/* A newer caller's field this library does not know. */
	memset(big, 0, sizeof(big));
	memcpy(big, &o, sizeof(o));
	((struct sluice_mux_opts *)big)->flags = 0;
	((struct sluice_mux_opts *)big)->sz = sizeof(big);
	big[sizeof(o) + 3] = 1;
	assert_int_equal(sluice_mux_create(out, in, (void *)big, &m), -EINVAL);
	/* Failing, it took nothing: the handles still work and are ours. */
	assert_int_equal(sluice_spsc_try_send(out, "x", 1), 0);
	assert_int_equal(sluice_mux_create(out, in, NULL, &m), 0);
	assert_int_equal(sluice_mux_payload_max(m), 64 - SLUICE_MUX_HDR);
	sluice_mux_close(m);
	sluice_spsc_close(tiny);
}

static void test_calls_check_their_arguments(void **state)
{
	struct h_fx *fx = *state;
	struct sluice_mux_reg reg = { .sz = sizeof(reg), .cap = 4 };
	unsigned char big[SLOT];
	struct sluice_mux_call_opts o;
	struct pair p;
	uint64_t nonce;
	char rep[8];

	pair_open(&p, fx, R_ECHO, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_mux_call(NULL, "a", 1, rep, sizeof(rep), NULL), -EINVAL);
	assert_int_equal(sluice_mux_call(p.m, NULL, 1, rep, sizeof(rep), NULL), -EINVAL);
	assert_int_equal(sluice_mux_call(p.m, "a", 1, NULL, 8, NULL), -EINVAL);
	/* Longer than a slot less the header. */
	memset(big, 0, sizeof(big));
	assert_int_equal(sluice_mux_call(p.m, big, SLOT - SLUICE_MUX_HDR + 1, rep, 8, NULL),
			 -EMSGSIZE);
	/* Room for the reply too small: the reply is dropped, said so. */
	assert_int_equal(sluice_mux_call(p.m, big, 20, rep, sizeof(rep), NULL), -EMSGSIZE);
	/* A registration with room of a size and no room. */
	assert_int_equal(sluice_mux_send(p.m, "a", 1, &reg, NULL, &nonce), -EINVAL);
	/* A newer caller's option this library does not know. */
	o = call_ms(10, NULL);
	memset(big, 0, sizeof(big));
	memcpy(big, &o, sizeof(o));
	((struct sluice_mux_call_opts *)big)->sz = sizeof(o) + 8;
	big[sizeof(o) + 2] = 1;
	assert_int_equal(sluice_mux_call(p.m, "a", 1, rep, sizeof(rep), (void *)big), -EINVAL);
	/* Nonces that name nothing. */
	assert_int_equal(sluice_mux_wait(p.m, 0, rep, sizeof(rep), NULL), -ENOENT);
	assert_int_equal(sluice_mux_wait(p.m, ~0ull, rep, sizeof(rep), NULL), -ENOENT);
	assert_int_equal(sluice_mux_poll(p.m, 12345, rep, sizeof(rep)), -ENOENT);
	assert_int_equal(sluice_mux_forget(p.m, 12345), -ENOENT);
	assert_int_equal(sluice_mux_register(p.m, 12345, NULL), -ENOENT);
	assert_int_equal(sluice_mux_nonce_fd(p.m, 12345), -ENOENT);
	/* And the link still works. */
	assert_int_equal(sluice_mux_call(p.m, "abc", 3, rep, sizeof(rep), NULL), 3);
	assert_memory_equal(rep, "abc", 3);
	pair_close(&p);
}

static void test_responder_checks_its_arguments(void **state)
{
	struct h_fx *fx = *state;
	struct sluice_spsc *in, *out;
	struct sluice_mux_responder *rs;
	uint64_t nonce = 1;
	struct iovec room;
	char buf[8];

	assert_int_equal(sluice_spsc_create(fx->r, "q", 8, 64, SLUICE_SPSC_CONSUMER, NULL, &in), 0);
	assert_int_equal(sluice_spsc_create(fx->r, "p", 8, 64, SLUICE_SPSC_PRODUCER, NULL, &out), 0);
	assert_int_equal(sluice_mux_responder_create(out, in, NULL, &rs), -EINVAL);
	assert_int_equal(sluice_mux_responder_create(in, out, NULL, &rs), 0);
	assert_int_equal(sluice_mux_recv(rs, NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_mux_try_recv(rs, &nonce, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(sluice_mux_reply(rs, 0, "a", 1), -EINVAL);
	assert_int_equal(sluice_mux_reply_error(rs, nonce, 0), -EINVAL);
	assert_int_equal(sluice_mux_reply_error(rs, nonce, 1), -EINVAL);
	assert_int_equal(sluice_mux_reply_error(rs, nonce, -5000), -EINVAL);
	assert_int_equal(sluice_mux_reply(rs, nonce, buf, 64), -EMSGSIZE);
	assert_int_equal(sluice_mux_reply_commit(rs, 1), -EINVAL);	/* nothing reserved */
	assert_int_equal(sluice_mux_reply_reserve(rs, nonce, &room), 0);
	assert_int_equal(room.iov_len, 64 - SLUICE_MUX_HDR);
	assert_int_equal(sluice_mux_reply_commit(rs, 64), -EMSGSIZE);
	assert_int_equal(sluice_mux_reply_commit(rs, 1), 0);
	sluice_mux_responder_close(rs);
}

/* ---------------------------------------------------------------- replies */

static void test_a_call_gets_its_reply(void **state)
{
	struct pair p;
	struct sluice_mux_stats st;
	char rep[SLOT];

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_mux_call(p.m, "hello", 5, rep, sizeof(rep), NULL), 5);
	assert_memory_equal(rep, "hello", 5);
	/* An empty request and reply are messages too. */
	assert_int_equal(sluice_mux_call(p.m, NULL, 0, NULL, 0, NULL), 0);
	sluice_mux_stats(p.m, &st);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.replied, 2);
	assert_int_equal(sluice_mux_pending(p.m), 0);
	pair_close(&p);
}

static void test_many_threads_in_many_processes_each_get_their_replies(void **state)
{
	struct h_fx *fx = *state;
	struct rsp_arg ra = { fx->r, LINKS_MAX, 0, R_ECHO, 0, 0 };
	struct proc_arg pa[LINKS_MAX];
	struct h_side s[LINKS_MAX + 1];
	unsigned int i;

	s[0] = (struct h_side){ responder, &ra };
	for (i = 0; i < LINKS_MAX; i++) {
		pa[i] = (struct proc_arg){ fx->r, i, 0 };
		s[i + 1] = (struct h_side){ caller_proc, &pa[i] };
	}
	h_run_sides(s, LINKS_MAX + 1, CHILD_TIMEOUT);
}

static void test_many_threads_each_with_many_in_flight(void **state)
{
	struct h_fx *fx = *state;
	struct rsp_arg ra = { fx->r, 2, 0, R_BATCH, 0, 0 };
	struct proc_arg pa[2] = { { fx->r, 0, 8 }, { fx->r, 1, 3 } };
	struct h_side s[3] = {
		{ responder, &ra }, { caller_proc, &pa[0] }, { caller_proc, &pa[1] },
	};

	h_run_sides(s, 3, CHILD_TIMEOUT);
}

static void test_replies_in_any_order_reach_their_callers(void **state)
{
	struct sluice_mux_stats st;
	struct pair p;

	/* Replies come back shuffled, eight at a time. */
	pair_open(&p, *state, R_SHUFFLE, THREADS, NULL, NULL, SLOTS);
	assert_int_equal(run_callers(p.m, 0, THREADS, CALLS / 4, 0), 0);
	sluice_mux_stats(p.m, &st);
	assert_int_equal(st.replied, THREADS * (CALLS / 4));
	assert_int_equal(st.dropped, 0);
	pair_close(&p);
}

static void test_async_sends_shuffled_replies(void **state)
{
	struct pair p;

	/* One thread, 16 in flight, replies shuffled 16 at a time. */
	pair_open(&p, *state, R_SHUFFLE, 16, NULL, NULL, SLOTS);
	assert_int_equal(run_callers(p.m, 0, 1, 16 * 50, 16), 0);
	pair_close(&p);
}

static void test_replies_in_place(void **state)
{
	struct pair p;

	pair_open(&p, *state, R_IN_PLACE, 0, NULL, NULL, SLOTS);
	assert_int_equal(run_callers(p.m, 0, 4, CALLS / 10, 0), 0);
	pair_close(&p);
}

static void test_requests_and_replies_in_batches(void **state)
{
	struct pair p;

	pair_open(&p, *state, R_BATCH, 0, NULL, NULL, SLOTS);
	assert_int_equal(run_callers(p.m, 0, 4, CALLS / 10, 4), 0);
	pair_close(&p);
}

static void test_a_responders_error_is_the_calls(void **state)
{
	struct pair p;
	uint64_t nonce;
	char rep[8];

	pair_open(&p, *state, R_ERROR, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_mux_call(p.m, "a", 1, rep, sizeof(rep), NULL), -ENOTSUP);
	assert_int_equal(sluice_mux_send(p.m, "b", 1, NULL, NULL, &nonce), 0);
	assert_int_equal(sluice_mux_wait(p.m, nonce, rep, sizeof(rep), NULL), -ENOTSUP);
	assert_int_equal(sluice_mux_pending(p.m), 0);
	pair_close(&p);
}

static void test_a_reply_nobody_asked_for_is_dropped_and_counted(void **state)
{
	struct sluice_mux_stats st;
	struct pair p;
	char rep[8];

	pair_open(&p, *state, R_STRANGER, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_mux_call(p.m, "a", 1, rep, sizeof(rep), NULL), 1);
	assert_int_equal(rep[0], 'a');
	sluice_mux_stats(p.m, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.replied, 1);
	pair_close(&p);
}

/* ---------------------------------------------------------------- deadlines */

static void test_a_timed_out_call_frees_its_entry_and_its_late_reply_is_dropped(void **state)
{
	SLUICE_OPTS(sluice_mux_opts, mo, .inflight = 1);
	struct sluice_mux_call_opts o = call_ms(30, NULL);
	struct sluice_mux_stats st;
	struct pair p;
	char rep[8];
	int64_t t0;

	/* One entry: the next call reuses the timed-out one's. */
	pair_open(&p, *state, R_LATE_FIRST, 0, &mo, NULL, SLOTS);
	t0 = h_now_ms();
	assert_int_equal(sluice_mux_call(p.m, "1", 1, rep, sizeof(rep), &o), -ETIMEDOUT);
	h_assert_took(t0, 30, 180);
	assert_int_equal(sluice_mux_pending(p.m), 0);
	/* The late reply ("1") arrives while this call waits: its own is "2". */
	assert_int_equal(sluice_mux_call(p.m, "2", 1, rep, sizeof(rep), NULL), 1);
	assert_int_equal(rep[0], '2');
	sluice_mux_stats(p.m, &st);
	assert_int_equal(st.timed_out, 1);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.replied, 1);
	pair_close(&p);
}

static void test_at_the_inflight_limit_try_fails_and_call_waits_to_its_deadline(void **state)
{
	SLUICE_OPTS(sluice_mux_opts, mo, .inflight = 2);
	struct sluice_mux_call_opts o = call_ms(40, NULL);
	struct pair p;
	uint64_t n1, n2, n3;
	char rep[8];
	int64_t t0;

	pair_open(&p, *state, R_SILENT, 0, &mo, NULL, SLOTS);
	assert_int_equal(sluice_mux_send(p.m, "a", 1, NULL, NULL, &n1), 0);
	assert_int_equal(sluice_mux_send(p.m, "b", 1, NULL, NULL, &n2), 0);
	assert_true(n1 != n2);
	assert_int_equal(sluice_mux_pending(p.m), 2);
	assert_int_equal(sluice_mux_try_send(p.m, "c", 1, NULL, &n3), -EAGAIN);
	assert_int_equal(sluice_mux_try_call(p.m, "c", 1, rep, sizeof(rep), &o), -EAGAIN);
	t0 = h_now_ms();
	assert_int_equal(sluice_mux_send(p.m, "c", 1, NULL, &o, &n3), -ETIMEDOUT);
	h_assert_took(t0, 40, 190);
	/* Forgotten, an entry is free again, and a new nonce names it. */
	assert_int_equal(sluice_mux_forget(p.m, n1), 0);
	assert_int_equal(sluice_mux_forget(p.m, n1), -ENOENT);
	assert_int_equal(sluice_mux_poll(p.m, n1, rep, sizeof(rep)), -ENOENT);
	assert_int_equal(sluice_mux_send(p.m, "c", 1, NULL, NULL, &n3), 0);
	assert_true(n3 != n1 && n3 != n2);
	assert_int_equal(sluice_mux_poll(p.m, n3, rep, sizeof(rep)), -EAGAIN);
	assert_int_equal(sluice_mux_wait(p.m, n2, rep, sizeof(rep), &o), -ETIMEDOUT);
	assert_int_equal(sluice_mux_wait(p.m, n2, rep, sizeof(rep), &o), -ENOENT);
	pair_close(&p);
}

static void test_a_full_ring_holds_calls_to_their_deadlines_only(void **state)
{
	SLUICE_OPTS(sluice_mux_opts, mo, .inflight = 16);
	struct sluice_mux_call_opts o = call_ms(50, NULL);
	struct h_fx *fx = *state;
	struct pair p;
	uint64_t nonce;
	char rep[8];
	int64_t t0;
	unsigned int i;

	/* A ring of 4 slots; the responder takes 4 requests, then stops. */
	pair_open(&p, fx, R_SILENT, 4, &mo, NULL, 4);
	for (i = 0; i < 8; i++)
		assert_int_equal(sluice_mux_send(p.m, "a", 1, NULL, NULL, &nonce), 0);
	t0 = h_now_ms();
	assert_int_equal(sluice_mux_send(p.m, "b", 1, NULL, &o, &nonce), -ETIMEDOUT);
	h_assert_took(t0, 50, 200);
	/* An entry is free, the ring is not: try_ waits for the ring. */
	assert_int_equal(sluice_mux_try_call(p.m, "c", 1, rep, sizeof(rep), &o), -ETIMEDOUT);
	assert_int_equal(sluice_mux_pending(p.m), 8);
	/* The responder goes on: so do sends. */
	h_sync_of(fx->r)->stage = 1;
	assert_int_equal(sluice_mux_send(p.m, "d", 1, NULL, NULL, &nonce), 0);
	pair_close(&p);
}

/* ---------------------------------------------------------------- cancellation */

struct waiter_arg {
	struct sluice_mux *m;
	uint64_t nonce;
	struct sluice_cancel *tok;
	int ret;
	int64_t took;
};

static void *call_waiter(void *arg)
{
	struct waiter_arg *w = arg;
	struct sluice_mux_call_opts o = call_ms(5000, w->tok);
	int64_t t0 = h_now_ms();
	char rep[8];

	w->ret = sluice_mux_call(w->m, "x", 1, rep, sizeof(rep), &o);
	w->took = h_now_ms() - t0;
	return NULL;
}

static void test_cancelling_one_call_leaves_the_others(void **state)
{
	struct sluice_cancel *tok;
	struct waiter_arg w[3];
	pthread_t th[3];
	struct pair p;
	struct sluice_mux_stats st;
	unsigned int i;

	pair_open(&p, *state, R_SILENT, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	for (i = 0; i < 3; i++) {
		w[i] = (struct waiter_arg){ p.m, 0, i == 1 ? tok : NULL, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, call_waiter, &w[i]), 0);
	}
	while (sluice_mux_pending(p.m) < 3)
		h_sleep_ms(1);
	assert_int_equal(sluice_cancel_trigger(tok, -ECONNRESET), 0);
	pthread_join(th[1], NULL);
	assert_int_equal(w[1].ret, -ECONNRESET);
	assert_true(w[1].took < 1000);
	assert_int_equal(sluice_mux_pending(p.m), 2);
	/* The rest still wait, and end with the link. */
	sluice_mux_shutdown(p.m);
	for (i = 0; i < 3; i += 2) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ret, -ESHUTDOWN);
	}
	sluice_mux_stats(p.m, &st);
	assert_int_equal(st.cancelled, 1);
	assert_int_equal(st.failed, 2);
	assert_int_equal(sluice_mux_call(p.m, "x", 1, NULL, 0, NULL), -ESHUTDOWN);
	sluice_cancel_destroy(tok);
	pair_close(&p);
}

static void test_cancelling_a_tree_ends_every_call_under_it(void **state)
{
	struct sluice_cancel *root, *kid[4];
	struct waiter_arg w[4];
	pthread_t th[4];
	struct pair p;
	unsigned int i;

	pair_open(&p, *state, R_SILENT, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_cancel_create(NULL, &root), 0);
	for (i = 0; i < 4; i++) {
		assert_int_equal(sluice_cancel_create(i < 2 ? root : kid[0], &kid[i]), 0);
		w[i] = (struct waiter_arg){ p.m, 0, kid[i], 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, call_waiter, &w[i]), 0);
	}
	while (sluice_mux_pending(p.m) < 4)
		h_sleep_ms(1);
	assert_int_equal(sluice_cancel_trigger(root, 0), 0);
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ret, -ECANCELED);
		assert_true(w[i].took < 1000);
	}
	assert_int_equal(sluice_mux_pending(p.m), 0);
	for (i = 4; i-- > 0;)
		sluice_cancel_destroy(kid[i]);
	sluice_cancel_destroy(root);
	pair_close(&p);
}

/* ---------------------------------------------------------------- registration */

static void *nonce_waiter(void *arg)
{
	struct waiter_arg *w = arg;
	struct sluice_mux_call_opts o = call_ms(5000, NULL);
	int64_t t0 = h_now_ms();
	char rep[8];

	w->ret = sluice_mux_wait(w->m, w->nonce, rep, sizeof(rep), &o);
	w->took = h_now_ms() - t0;
	return NULL;
}

struct heard {
	_Atomic uint32_t calls;
	uint64_t nonce;
	int result;
	char rep[8];
};

static void hear(void *arg, uint64_t nonce, int result, const void *rep)
{
	struct heard *h = arg;

	h->nonce = nonce;
	h->result = result;
	if (result > 0)
		memcpy(h->rep, rep, (size_t)result < sizeof(h->rep) ? (size_t)result : 8);
	atomic_fetch_add(&h->calls, 1);
}

static void test_registering_anew_tells_the_old_waiter_at_once(void **state)
{
	struct sluice_mux_reg reg = { .sz = sizeof(reg) };
	struct heard h = { 0 };
	struct waiter_arg w;
	struct pair p;
	pthread_t th;
	char rep[8];

	/* The responder replies to the first request 200 ms late. */
	pair_open(&p, *state, R_LATE_FIRST, 0, NULL, NULL, SLOTS);
	w = (struct waiter_arg){ p.m, 0, NULL, 0, 0 };
	assert_int_equal(sluice_mux_send(p.m, "r", 1, NULL, NULL, &w.nonce), 0);
	assert_int_equal(pthread_create(&th, NULL, nonce_waiter, &w), 0);
	h_sleep_ms(30);
	/* A second waiter on one nonce is refused. */
	assert_int_equal(sluice_mux_wait(p.m, w.nonce, rep, sizeof(rep), NULL), -EBUSY);
	reg.fn = hear;
	reg.arg = &h;
	assert_int_equal(sluice_mux_register(p.m, w.nonce, &reg), 0);
	pthread_join(th, NULL);
	assert_int_equal(w.ret, -ESTALE);
	assert_true(w.took < 150);
	/* The reply goes to the new registration; someone must dispatch. */
	while (!atomic_load(&h.calls))
		assert_true(sluice_mux_dispatch(p.m, NULL) >= 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.nonce, w.nonce);
	assert_int_equal(h.result, 1);
	assert_int_equal(h.rep[0], 'r');
	/* Delivered to a callback, the nonce is done with. */
	assert_int_equal(sluice_mux_poll(p.m, w.nonce, rep, sizeof(rep)), -ENOENT);
	pair_close(&p);
}

static void test_registering_after_the_reply_came_delivers_it_now(void **state)
{
	struct sluice_mux_reg reg = { .sz = sizeof(reg) };
	char room[8] = { 0 }, rep[8];
	struct pair p;
	uint64_t nonce;
	int fd;

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_mux_send(p.m, "late", 4, NULL, NULL, &nonce), 0);
	fd = sluice_mux_nonce_fd(p.m, nonce);
	assert_true(fd >= 0);
	/* No thread dispatches: nothing signals until one does. */
	assert_int_equal(poll(&(struct pollfd){ fd, POLLIN, 0 }, 1, 20), 0);
	while (sluice_mux_try_dispatch(p.m) == -EAGAIN)
		h_sleep_ms(1);
	assert_int_equal(poll(&(struct pollfd){ fd, POLLIN, 0 }, 1, 0), 1);
	/* Kept by the multiplexer; now asked into a room of our own. */
	reg.rep = room;
	reg.cap = sizeof(room);
	assert_int_equal(sluice_mux_register(p.m, nonce, &reg), 0);
	assert_memory_equal(room, "late", 4);
	assert_int_equal(sluice_mux_wait(p.m, nonce, NULL, 0, NULL), 4);
	assert_int_equal(sluice_mux_wait(p.m, nonce, rep, sizeof(rep), NULL), -ENOENT);
	/* The fd was cleared for the entry's next use. */
	assert_int_equal(poll(&(struct pollfd){ fd, POLLIN, 0 }, 1, 0), 0);
	pair_close(&p);
}

/* ---------------------------------------------------------------- dispatching */

struct dispatcher {
	struct sluice_mux *m;
	_Atomic bool stop;
	int err;
	unsigned long delivered;
};

static void *dispatch_loop(void *arg)
{
	struct dispatcher *d = arg;
	struct sluice_mux_call_opts o = call_ms(20, NULL);
	int n;

	while (!atomic_load(&d->stop)) {
		n = sluice_mux_dispatch(d->m, &o);
		if (n > 0)
			d->delivered += (unsigned long)n;
		else if (n != -ETIMEDOUT) {
			d->err = n;
			break;
		}
	}
	return NULL;
}

static void test_a_dispatching_thread_serves_every_caller(void **state)
{
	struct dispatcher d;
	struct pair p;
	pthread_t th;

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	d = (struct dispatcher){ p.m, false, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, dispatch_loop, &d), 0);
	assert_int_equal(run_callers(p.m, 0, 4, CALLS / 4, 2), 0);
	atomic_store(&d.stop, true);
	pthread_join(th, NULL);
	assert_int_equal(d.err, 0);
	assert_true(d.delivered > 0);
	pair_close(&p);
}

static void test_shutdown_wakes_a_dispatching_thread(void **state)
{
	struct dispatcher d;
	struct pair p;
	pthread_t th;

	pair_open(&p, *state, R_SILENT, 0, NULL, NULL, SLOTS);
	d = (struct dispatcher){ p.m, false, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, dispatch_loop, &d), 0);
	h_sleep_ms(30);
	sluice_mux_shutdown(p.m);
	pthread_join(th, NULL);
	assert_int_equal(d.err, -ESHUTDOWN);
	pair_close(&p);
}

/* ---------------------------------------------------------------- failure */

static void test_a_killed_responder_fails_every_call_at_once(void **state)
{
	struct sluice_liveness *live;
	struct waiter_arg w[THREADS];
	pthread_t th[THREADS];
	struct sluice_mux_stats st;
	struct pair p;
	unsigned int i;
	int64_t t0;

	if (H_SIDES_ARE_THREADS)
		h_skip("the responder must be a process to be killed");
	assert_int_equal(sluice_liveness_create(NULL, &live), 0);
	/* It takes THREADS requests, then kills itself: all of them in flight. */
	pair_open(&p, *state, R_DIE, THREADS, NULL, live, SLOTS);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct waiter_arg){ p.m, 0, NULL, 0, 0 };
		assert_int_equal(pthread_create(&th[i], NULL, call_waiter, &w[i]), 0);
	}
	assert_int_equal(h_wait(p.pid), H_SIGNALED + SIGKILL);
	t0 = h_now_ms();
	for (i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].ret, -EPIPE);
	}
	/* Each waited 5 s at most; the monitor ends them all at once. */
	h_assert_took(t0, 0, 500);
	sluice_mux_stats(p.m, &st);
	assert_int_equal(st.failed, THREADS);
	assert_int_equal(sluice_mux_call(p.m, "x", 1, NULL, 0, NULL), -EPIPE);
	sluice_mux_close(p.m);
	sluice_liveness_destroy(live);
}

static void test_a_killed_responder_without_a_monitor_fails_calls_by_their_deadline(void **state)
{
	struct sluice_mux_call_opts o = call_ms(100, NULL);
	struct pair p;
	char rep[8];
	int64_t t0;

	if (H_SIDES_ARE_THREADS)
		h_skip("the responder must be a process to be killed");
	pair_open(&p, *state, R_DIE, 1, NULL, NULL, SLOTS);
	t0 = h_now_ms();
	assert_int_equal(sluice_mux_call(p.m, "x", 1, rep, sizeof(rep), &o), -EPIPE);
	h_assert_took(t0, 100, 400);
	assert_int_equal(h_wait(p.pid), H_SIGNALED + SIGKILL);
	/* Seen dead once, at once from then on. */
	t0 = h_now_ms();
	assert_int_equal(sluice_mux_call(p.m, "x", 1, rep, sizeof(rep), &o), -EPIPE);
	h_assert_took(t0, 0, 50);
	sluice_mux_close(p.m);
}

/* The responder's end of link 0, faked: raw rings, whatever we write. */
struct raw {
	struct sluice_spsc *in, *out;
};

static void raw_open(struct h_fx *fx, unsigned int link, struct raw *w)
{
	char q[16], p[16];

	ring_names(link, q, p);
	assert_int_equal(sluice_spsc_attach(fx->r, q, SLUICE_SPSC_CONSUMER, NULL, &w->in), 0);
	assert_int_equal(sluice_spsc_attach(fx->r, p, SLUICE_SPSC_PRODUCER, NULL, &w->out), 0);
}

static void raw_close(struct raw *w)
{
	sluice_spsc_close(w->in);
	sluice_spsc_close(w->out);
}

static void test_a_damaged_reply_header_fails_the_link(void **state)
{
	static const struct {
		uint32_t len;		/* bytes of the message */
		int32_t status;
		uint32_t flags;
	} bad[] = {
		{ 8, 0, 0 },		/* shorter than a header */
		{ 20, 0, 1 },		/* a flag nobody knows */
		{ 20, 5, 0 },		/* a positive status */
		{ 16, -5000, 0 },	/* not an errno */
		{ 20, -EIO, 0 },	/* an error with a payload */
	};
	struct h_fx *fx = *state;
	unsigned char msg[32];
	struct waiter_arg w;
	struct sluice_mux *m;
	struct raw raw;
	pthread_t th;
	unsigned int i;
	uint64_t nonce;
	char req[8];

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(caller_make(fx->r, i, 8, 64, NULL, NULL, &m), 0);
		raw_open(fx, i, &raw);
		w = (struct waiter_arg){ m, 0, NULL, 0, 0 };
		assert_int_equal(pthread_create(&th, NULL, call_waiter, &w), 0);
		/* Take the request as a responder would, for its nonce. */
		assert_int_equal(sluice_spsc_recv(raw.in, msg, sizeof(msg)), SLUICE_MUX_HDR + 1);
		memcpy(&nonce, msg, 8);
		memset(msg, 0, sizeof(msg));
		memcpy(msg, &nonce, 8);
		memcpy(msg + 8, &bad[i].status, 4);
		memcpy(msg + 12, &bad[i].flags, 4);
		assert_int_equal(sluice_spsc_send(raw.out, msg, bad[i].len), 0);
		pthread_join(th, NULL);
		assert_int_equal(w.ret, -EBADMSG);
		assert_true(w.took < 1000);
		assert_int_equal(sluice_mux_call(m, "x", 1, req, sizeof(req), NULL), -EBADMSG);
		sluice_mux_close(m);
		raw_close(&raw);
	}
}

static void test_a_damaged_request_header_is_refused_and_skipped(void **state)
{
	struct h_fx *fx = *state;
	struct sluice_mux_responder *rs;
	struct sluice_spsc *out, *in;
	unsigned char msg[32] = { 0 };
	uint64_t nonce = 0x1234;
	char buf[16];

	assert_int_equal(sluice_spsc_create(fx->r, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL, &out), 0);
	assert_int_equal(sluice_spsc_create(fx->r, "p", 8, 64, SLUICE_SPSC_CONSUMER, NULL, &in), 0);
	{
		struct sluice_spsc *rin, *rout;

		assert_int_equal(sluice_spsc_attach(fx->r, "q", SLUICE_SPSC_CONSUMER, NULL, &rin), 0);
		assert_int_equal(sluice_spsc_attach(fx->r, "p", SLUICE_SPSC_PRODUCER, NULL, &rout), 0);
		assert_int_equal(sluice_mux_responder_create(rin, rout, NULL, &rs), 0);
	}
	/* Short; a nonce of 0; a status on a request; then a good one. */
	assert_int_equal(sluice_spsc_send(out, msg, 4), 0);
	assert_int_equal(sluice_spsc_send(out, msg, 16), 0);
	memcpy(msg, &nonce, 8);
	msg[8] = 1;
	assert_int_equal(sluice_spsc_send(out, msg, 16), 0);
	msg[8] = 0;
	memcpy(msg + 16, "ok", 2);
	assert_int_equal(sluice_spsc_send(out, msg, 18), 0);
	assert_int_equal(sluice_mux_recv(rs, &nonce, buf, sizeof(buf)), -EBADMSG);
	assert_int_equal(sluice_mux_recv(rs, &nonce, buf, sizeof(buf)), -EBADMSG);
	assert_int_equal(sluice_mux_recv(rs, &nonce, buf, sizeof(buf)), -EBADMSG);
	/* Too long for the room: it stays, for a call with room. */
	assert_int_equal(sluice_mux_recv(rs, &nonce, buf, 1), -ENOBUFS);
	assert_int_equal(sluice_mux_recv(rs, &nonce, buf, sizeof(buf)), 2);
	assert_int_equal(nonce, 0x1234);
	assert_memory_equal(buf, "ok", 2);
	sluice_mux_responder_close(rs);
	sluice_spsc_close(out);
	sluice_spsc_close(in);
}

static void test_a_closed_caller_ends_the_responders_receive(void **state)
{
	struct pair p;
	char rep[8];

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_mux_call(p.m, "a", 1, rep, sizeof(rep), NULL), 1);
	pair_close(&p);	/* fails unless the responder saw -EPIPE and returned 0 */
}

/* ---------------------------------------------------------------- rooms and callbacks */

static void test_a_reply_with_no_room_for_it_is_emsgsize(void **state)
{
	struct pair p;

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	assert_int_equal(sluice_mux_call(p.m, "abc", 3, NULL, 0, NULL), -EMSGSIZE);
	/* An empty reply fits no room. */
	assert_int_equal(sluice_mux_call(p.m, NULL, 0, NULL, 0, NULL), 0);
	pair_close(&p);
}

struct self_cb {
	struct sluice_mux *m;
	_Atomic uint32_t calls;
	int result, forget, reg;
};

/* A callback that uses its own nonce: done with, it is -ENOENT. */
static void self_hear(void *arg, uint64_t nonce, int result, const void *rep)
{
	struct sluice_mux_reg reg = { .sz = sizeof(reg) };
	struct self_cb *c = arg;

	(void)rep;
	c->result = result;
	c->forget = sluice_mux_forget(c->m, nonce);
	c->reg = sluice_mux_register(c->m, nonce, &reg);
	atomic_fetch_add(&c->calls, 1);
}

static void test_a_callback_may_use_its_own_nonce(void **state)
{
	struct self_cb c = { 0 };
	struct sluice_mux_reg reg = { .sz = sizeof(reg), .fn = self_hear, .arg = &c };
	struct pair p;
	uint64_t nonce;

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	c.m = p.m;
	assert_int_equal(sluice_mux_send(p.m, "cb", 2, &reg, NULL, &nonce), 0);
	while (!atomic_load(&c.calls))
		assert_true(sluice_mux_dispatch(p.m, NULL) > 0);
	assert_int_equal(c.result, 2);
	assert_int_equal(c.forget, -ENOENT);
	assert_int_equal(c.reg, -ENOENT);
	assert_int_equal(sluice_mux_pending(p.m), 0);
	pair_close(&p);
}

/* ---------------------------------------------------------------- at test points */

static struct sluice_mux *tp_mux;
static _Atomic uint32_t tp_once;

static void shutdown_while_sending(enum sluice__tp point, void *obj)
{
	if (point == SLUICE__TP_MUX_SENDING && obj == tp_mux && !atomic_exchange(&tp_once, 1))
		sluice_mux_shutdown(tp_mux);
}

static void test_a_link_failing_while_a_request_is_copied_still_tells_its_callback(void **state)
{
	struct heard h = { 0 };
	struct sluice_mux_reg reg = { .sz = sizeof(reg), .fn = hear, .arg = &h };
	struct sluice_mux_stats st;
	struct pair p;
	uint64_t nonce;

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	tp_mux = p.m;
	atomic_store(&tp_once, 0);
	sluice__tp_hook = shutdown_while_sending;
	/* It went into the ring: the send succeeded; its outcome is the link's. */
	assert_int_equal(sluice_mux_send(p.m, "s", 1, &reg, NULL, &nonce), 0);
	sluice__tp_hook = NULL;
	assert_int_equal(atomic_load(&h.calls), 1);
	assert_int_equal(h.result, -ESHUTDOWN);
	assert_int_equal(h.nonce, nonce);
	assert_int_equal(sluice_mux_pending(p.m), 0);
	sluice_mux_stats(p.m, &st);
	assert_int_equal(st.failed, 1);
	pair_close(&p);
}

static void test_a_call_failing_with_the_link_while_copied_returns_the_error(void **state)
{
	struct pair p;
	char rep[8];

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	tp_mux = p.m;
	atomic_store(&tp_once, 0);
	sluice__tp_hook = shutdown_while_sending;
	assert_int_equal(sluice_mux_call(p.m, "s", 1, rep, sizeof(rep), NULL), -ESHUTDOWN);
	sluice__tp_hook = NULL;
	assert_int_equal(sluice_mux_pending(p.m), 0);
	pair_close(&p);
}

static _Atomic uint32_t tp_leaving;

static void slow_leaving(enum sluice__tp point, void *obj)
{
	if (point == SLUICE__TP_MUX_LEAVING && obj == tp_mux && !atomic_exchange(&tp_once, 1)) {
		atomic_store(&tp_leaving, 1);
		h_sleep_ms(50);
	}
}

struct second_call {
	struct sluice_mux *m;
	int n;
	char rep[8];
};

static void *call_when_leaving(void *arg)
{
	struct second_call *c = arg;

	while (!atomic_load(&tp_leaving))
		h_sleep_ms(1);
	c->n = sluice_mux_call(c->m, "2", 1, c->rep, sizeof(c->rep), NULL);
	return NULL;
}

static void test_an_entry_is_reused_only_once_its_waiter_has_left(void **state)
{
	SLUICE_OPTS(sluice_mux_opts, mo, .inflight = 1);
	struct second_call c = { 0 };
	struct pair p;
	pthread_t th;
	char rep[8];

	/*
	 * One entry.  Its first caller has its reply and is slow to leave the
	 * entry; a second call meanwhile gets the entry only after that (it
	 * used to get it at once, and -EBUSY from its own wait).
	 */
	pair_open(&p, *state, R_ECHO, 0, &mo, NULL, SLOTS);
	tp_mux = p.m;
	atomic_store(&tp_once, 0);
	atomic_store(&tp_leaving, 0);
	c.m = p.m;
	assert_int_equal(pthread_create(&th, NULL, call_when_leaving, &c), 0);
	sluice__tp_hook = slow_leaving;
	assert_int_equal(sluice_mux_call(p.m, "1", 1, rep, sizeof(rep), NULL), 1);
	pthread_join(th, NULL);
	sluice__tp_hook = NULL;
	assert_int_equal(rep[0], '1');
	assert_int_equal(c.n, 1);
	assert_int_equal(c.rep[0], '2');
	pair_close(&p);
}

static _Atomic uint32_t tp_at, tp_go;

/*
 * The stale waiter: stops after its look at the nonce (1) and again
 * holding the entry (2), each time until told to go on.
 */
static void stop_taking_and_held(enum sluice__tp point, void *obj)
{
	uint32_t at = point == SLUICE__TP_MUX_TAKING ? 1 : point == SLUICE__TP_MUX_HELD ? 2 : 0;

	if (!at || obj != tp_mux || atomic_load(&tp_at) != at - 1)
		return;
	atomic_store(&tp_at, at);
	while (atomic_load(&tp_go) < at)
		h_sleep_ms(1);
}

struct stale_wait {
	struct sluice_mux *m;
	uint64_t nonce;
	int n;
};

static void *wait_stale(void *arg)
{
	struct stale_wait *w = arg;
	char rep[8];

	w->n = sluice_mux_wait(w->m, w->nonce, rep, sizeof(rep), NULL);
	return NULL;
}

static void *release_later(void *arg)
{
	(void)arg;
	h_sleep_ms(50);
	atomic_store(&tp_go, 2);
	return NULL;
}

static void test_a_waiter_with_a_stale_nonce_never_keeps_the_entrys_next_call_out(void **state)
{
	SLUICE_OPTS(sluice_mux_opts, mo, .inflight = 1);
	struct sluice_mux_reg reg = { .sz = sizeof(reg) };
	struct stale_wait w = { 0 };
	struct pair p;
	pthread_t th, go;
	char rep[8], room[8];
	uint64_t nonce;

	/*
	 * One entry.  A thread waits on a nonce that is forgotten and whose
	 * entry goes to a new call between its look and its take: it holds
	 * the entry, stale, at HELD.  The new call's wait must not fail for
	 * it (it used to, -EBUSY, with its request still out).
	 */
	pair_open(&p, *state, R_ECHO, 0, &mo, NULL, SLOTS);
	tp_mux = p.m;
	atomic_store(&tp_at, 0);
	atomic_store(&tp_go, 0);
	reg.rep = room;
	reg.cap = sizeof(room);
	assert_int_equal(sluice_mux_send(p.m, "1", 1, &reg, NULL, &nonce), 0);
	w = (struct stale_wait){ p.m, nonce, 0 };
	sluice__tp_hook = stop_taking_and_held;
	assert_int_equal(pthread_create(&th, NULL, wait_stale, &w), 0);
	while (atomic_load(&tp_at) < 1)
		h_sleep_ms(1);
	/* It has looked; the nonce is forgotten and the entry free again. */
	assert_int_equal(sluice_mux_forget(p.m, nonce), 0);
	atomic_store(&tp_go, 1);
	while (atomic_load(&tp_at) < 2)
		h_sleep_ms(1);
	/* It holds the entry, stale; the next call takes the entry. */
	assert_int_equal(pthread_create(&go, NULL, release_later, NULL), 0);
	assert_int_equal(sluice_mux_call(p.m, "2", 1, rep, sizeof(rep), NULL), 1);
	pthread_join(go, NULL);
	pthread_join(th, NULL);
	sluice__tp_hook = NULL;
	assert_int_equal(rep[0], '2');
	assert_int_equal(w.n, -ENOENT);
	assert_int_equal(sluice_mux_pending(p.m), 0);
	pair_close(&p);
}

static struct sluice_cancel *tp_tok;

/* Once one send has given up, cancel the next as the right to send is given up. */
static void cancel_the_first_at_release(enum sluice__tp point, void *obj)
{
	struct sluice_mux_stats st;

	if (point != SLUICE__TP_MUX_RELEASING || obj != tp_mux)
		return;
	sluice_mux_stats(tp_mux, &st);
	if (st.cancelled != 1 || atomic_exchange(&tp_once, 1))
		return;
	sluice_cancel_trigger(tp_tok, -ECANCELED);
	/* Its sender withdraws it while we still hold the right. */
	while (sluice_mux_pending(tp_mux) > 9)
		h_sleep_ms(1);
	h_sleep_ms(10);
}

struct sender {
	struct sluice_mux *m;
	const char *what;
	struct sluice_cancel *tok;
	int ret;
};

static void *send_one(void *arg)
{
	struct sender *x = arg;
	struct sluice_mux_call_opts o = call_ms(10000, x->tok);
	uint64_t nonce;

	x->ret = sluice_mux_send(x->m, x->what, 1, NULL, &o, &nonce);
	return NULL;
}

static void start_sender(pthread_t *th, struct sender *x, struct sluice_mux *m, const char *what,
			 struct sluice_cancel *tok, unsigned int pending)
{
	*x = (struct sender){ m, what, tok, 1 };
	assert_int_equal(pthread_create(th, NULL, send_one, x), 0);
	while (sluice_mux_pending(m) < pending)
		h_sleep_ms(1);
	h_sleep_ms(10);		/* asleep on its entry */
}

static void test_a_send_withdrawn_as_it_is_handed_the_right_to_send_hands_it_on(void **state)
{
	SLUICE_OPTS(sluice_mux_opts, mo, .inflight = 16);
	struct sluice_cancel *tx, *ta;
	struct sender x, a, b;
	pthread_t thx, tha, thb;
	struct h_fx *fx = *state;
	struct pair p;
	uint64_t nonce;
	unsigned int i;
	int64_t t0;

	/*
	 * A full ring (4 slots, the responder stopped after 4) and three sends
	 * waiting, x holding the right to send.  x gives up, frees itself,
	 * and hands the right to a, which gives up at that moment.  b must
	 * still be woken to send when room comes (it used to sleep to its
	 * deadline).
	 */
	pair_open(&p, fx, R_SILENT, 4, &mo, NULL, 4);
	for (i = 0; i < 8; i++)
		assert_int_equal(sluice_mux_send(p.m, "f", 1, NULL, NULL, &nonce), 0);
	assert_int_equal(sluice_cancel_create(NULL, &tx), 0);
	assert_int_equal(sluice_cancel_create(NULL, &ta), 0);
	/* The hook waits for x's withdrawal (cancelled 1) to act. */
	tp_mux = p.m;
	tp_tok = ta;
	atomic_store(&tp_once, 0);
	sluice__tp_hook = cancel_the_first_at_release;
	start_sender(&thx, &x, p.m, "x", tx, 9);
	start_sender(&tha, &a, p.m, "a", ta, 10);
	start_sender(&thb, &b, p.m, "b", NULL, 11);
	assert_int_equal(sluice_cancel_trigger(tx, -ECANCELED), 0);
	pthread_join(thx, NULL);
	pthread_join(tha, NULL);
	assert_int_equal(x.ret, -ECANCELED);
	assert_int_equal(a.ret, -ECANCELED);
	/* Room comes: b goes. */
	t0 = h_now_ms();
	h_sync_of(fx->r)->stage = 1;
	pthread_join(thb, NULL);
	sluice__tp_hook = NULL;
	assert_int_equal(b.ret, 0);
	/* At once, not at its deadline (10 s) nor at a stranger's wake. */
	h_assert_took(t0, 0, 1000);
	assert_int_equal(atomic_load(&tp_once), 1);
	sluice_cancel_destroy(tx);
	sluice_cancel_destroy(ta);
	pair_close(&p);
}

static void slow_delivery(enum sluice__tp point, void *obj)
{
	if (point == SLUICE__TP_MUX_DELIVERING && obj == tp_mux && !atomic_exchange(&tp_once, 1))
		h_sleep_ms(80);
}

static void test_a_reply_delivered_across_the_deadline_is_returned(void **state)
{
	struct sluice_mux_call_opts o = call_ms(20, NULL);
	struct dispatcher d;
	struct pair p;
	pthread_t th;
	char rep[8];

	pair_open(&p, *state, R_ECHO, 0, NULL, NULL, SLOTS);
	/* A thread dispatches; it is slow to copy the first reply. */
	tp_mux = p.m;
	atomic_store(&tp_once, 0);
	sluice__tp_hook = slow_delivery;
	d = (struct dispatcher){ p.m, false, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, dispatch_loop, &d), 0);
	/* Its deadline passes mid-copy: the reply it waited for is its. */
	assert_int_equal(sluice_mux_call(p.m, "d", 1, rep, sizeof(rep), &o), 1);
	assert_int_equal(rep[0], 'd');
	atomic_store(&d.stop, true);
	pthread_join(th, NULL);
	sluice__tp_hook = NULL;
	assert_int_equal(d.err, 0);
	pair_close(&p);
}

static int caller_dies_sending(void *arg)
{
	struct h_fx *fx = arg;
	struct sluice_mux *m;
	char rep[8];

	CK_EQ(caller_make(fx->r, 0, SLOTS, SLOT, NULL, NULL, &m), 0);
	CK_EQ(sluice_mux_call(m, "1", 1, rep, sizeof(rep), NULL), 1);
	die_region = fx->r;
	die_point = SLUICE__TP_MUX_SENDING;
	sluice__tp_hook = die_at_point;
	(void)sluice_mux_call(m, "2", 1, rep, sizeof(rep), NULL);
	return 97;	/* not reached */
}

static void test_a_caller_killed_while_sending_ends_the_responders_receive(void **state)
{
	SLUICE_OPTS(sluice_mux_responder_opts, ro, .timeout_ns = 5000 * MS);
	struct h_fx *fx = *state;
	struct sluice_mux_responder *rs;
	struct sluice_liveness *live;
	struct sluice_spsc *in, *out;
	uint64_t nonce;
	char buf[8];
	int64_t t0;
	int pid;

	if (H_SIDES_ARE_THREADS)
		h_skip("the caller must be a process to be killed");
	assert_int_equal(sluice_liveness_create(NULL, &live), 0);
	pid = h_spawn(caller_dies_sending, fx, CHILD_TIMEOUT);
	assert_true(pid > 0);
	{
		SLUICE_OPTS(sluice_spsc_opts, so, .liveness = live);

		assert_int_equal(attach_soon(fx->r, "q0", SLUICE_SPSC_CONSUMER, &so, &in), 0);
		assert_int_equal(attach_soon(fx->r, "p0", SLUICE_SPSC_PRODUCER, &so, &out), 0);
	}
	assert_int_equal(sluice_mux_responder_create(in, out, &ro, &rs), 0);
	assert_int_equal(sluice_mux_recv(rs, &nonce, buf, sizeof(buf)), 1);
	assert_int_equal(sluice_mux_reply(rs, nonce, buf, 1), 0);
	/* It dies holding the right to send, its request half copied. */
	assert_int_equal(h_wait_for(&h_sync_of(fx->r)->stage, 1, 20000), 0);
	atomic_store(&h_sync_of(fx->r)->stage, 2);
	assert_int_equal(h_wait(pid), H_SIGNALED + SIGKILL);
	t0 = h_now_ms();
	assert_int_equal(sluice_mux_recv(rs, &nonce, buf, sizeof(buf)), -EPIPE);
	h_assert_took(t0, 0, 500);
	assert_int_equal(sluice_mux_reply(rs, nonce, "x", 1), -EPIPE);
	sluice_mux_responder_close(rs);
	sluice_liveness_destroy(live);
}

static void test_a_responder_killed_holding_a_reply_fails_the_call(void **state)
{
	struct h_fx *fx = *state;
	struct sluice_liveness *live;
	struct waiter_arg w;
	struct pair p;
	pthread_t th;

	if (H_SIDES_ARE_THREADS)
		h_skip("the responder must be a process to be killed");
	assert_int_equal(sluice_liveness_create(NULL, &live), 0);
	die_region = fx->r;
	die_point = SLUICE__TP_MUX_RESERVED;
	pair_open(&p, fx, R_DIE_RESERVED, 0, NULL, live, SLOTS);
	w = (struct waiter_arg){ p.m, 0, NULL, 0, 0 };
	assert_int_equal(pthread_create(&th, NULL, call_waiter, &w), 0);
	assert_int_equal(h_wait_for(&h_sync_of(fx->r)->stage, 1, 20000), 0);
	atomic_store(&h_sync_of(fx->r)->stage, 2);
	assert_int_equal(h_wait(p.pid), H_SIGNALED + SIGKILL);
	pthread_join(th, NULL);
	assert_int_equal(w.ret, -EPIPE);
	assert_true(w.took < 2000);
	sluice_mux_close(p.m);
	sluice_liveness_destroy(live);
}

#define T(f)	cmocka_unit_test_setup_teardown(f, setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* arguments */
		T(test_create_checks_its_arguments),
		T(test_calls_check_their_arguments),
		T(test_responder_checks_its_arguments),
		/* replies */
		T(test_a_call_gets_its_reply),
		T(test_many_threads_in_many_processes_each_get_their_replies),
		T(test_many_threads_each_with_many_in_flight),
		T(test_replies_in_any_order_reach_their_callers),
		T(test_async_sends_shuffled_replies),
		T(test_replies_in_place),
		T(test_requests_and_replies_in_batches),
		T(test_a_responders_error_is_the_calls),
		T(test_a_reply_nobody_asked_for_is_dropped_and_counted),
		/* deadlines */
		T(test_a_timed_out_call_frees_its_entry_and_its_late_reply_is_dropped),
		T(test_at_the_inflight_limit_try_fails_and_call_waits_to_its_deadline),
		T(test_a_full_ring_holds_calls_to_their_deadlines_only),
		/* cancellation */
		T(test_cancelling_one_call_leaves_the_others),
		T(test_cancelling_a_tree_ends_every_call_under_it),
		/* registration */
		T(test_registering_anew_tells_the_old_waiter_at_once),
		T(test_registering_after_the_reply_came_delivers_it_now),
		/* dispatching */
		T(test_a_dispatching_thread_serves_every_caller),
		T(test_shutdown_wakes_a_dispatching_thread),
		/* failure */
		T(test_a_killed_responder_fails_every_call_at_once),
		T(test_a_killed_responder_without_a_monitor_fails_calls_by_their_deadline),
		T(test_a_damaged_reply_header_fails_the_link),
		T(test_a_damaged_request_header_is_refused_and_skipped),
		T(test_a_closed_caller_ends_the_responders_receive),
		/* rooms and callbacks */
		T(test_a_reply_with_no_room_for_it_is_emsgsize),
		T(test_a_callback_may_use_its_own_nonce),
		/* at test points */
		T(test_a_link_failing_while_a_request_is_copied_still_tells_its_callback),
		T(test_a_call_failing_with_the_link_while_copied_returns_the_error),
		T(test_a_reply_delivered_across_the_deadline_is_returned),
		T(test_an_entry_is_reused_only_once_its_waiter_has_left),
		T(test_a_waiter_with_a_stale_nonce_never_keeps_the_entrys_next_call_out),
		T(test_a_send_withdrawn_as_it_is_handed_the_right_to_send_hands_it_on),
		T(test_a_caller_killed_while_sending_ends_the_responders_receive),
		T(test_a_responder_killed_holding_a_reply_fails_the_call),
	};

	cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
