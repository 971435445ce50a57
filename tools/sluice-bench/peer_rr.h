/* SPDX-License-Identifier: MIT */
/*
 * Request/response peers, which the mux suite measures sluice's multiplexer
 * against: a Unix socket served with epoll, ZeroMQ's DEALER and ROUTER over
 * ipc://, and iceoryx's clients and server.  Each peer is a table of calls
 * in a file of its own, so that its package's compiler flags stay apart, as
 * peers.h's are; one built without its package says why in .missing and has
 * no calls, and the suite skips its column.
 *
 * The suite runs serve() in one process and client() in another, each
 * pinned to a CPU of its own.  The client side runs @threads threads, each
 * with a connection (a socket, a client) of its own, and each keeps @depth
 * requests in flight: it sends @depth, then one more for every reply.  On
 * every peer here the replies to one connection come back in the order of
 * its requests (one connection, one server thread answering in turn), so a
 * thread checks each reply against the oldest request it has out: the nonce,
 * and every payload byte.
 *
 * What every peer's client side shares lives here: the nonce and the
 * payload, the threads, the measuring window and the round-trip loop.  A
 * peer brings a send and a receive call, which the loop inlines.
 */
#ifndef SLUICE_BENCH_PEER_RR_H
#define SLUICE_BENCH_PEER_RR_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "peers.h"

#define PEER_RR_THREADS_MAX	16u
#define PEER_RR_DEPTH_MAX	64u
#define PEER_RR_SIZE_MAX	4096u	/* payload bytes; iceoryx's pools are sized for it */
#define PEER_RR_HDR		8u	/* the nonce before the payload, where a peer has no header */

/*
 * Neither side waits for the other forever.  Once they are in touch, a side
 * that hears nothing for PEER_RR_IDLE_MS takes its peer for gone (a client
 * keeps every thread busy until it stops, so silence means death).  Until
 * then, the server waits PEER_RR_START_MS: the client process must start
 * and connect every thread, and on iceoryx be matched by RouDi, before the
 * first request (the first connection, for the Unix socket) reaches it.
 */
#define PEER_RR_IDLE_MS		1000u
#define PEER_RR_START_MS	10000u

/* One run's load, as the suite asks for it. */
struct peer_rr_load {
	unsigned int size;	/* payload bytes of each request and reply */
	unsigned int threads;	/* client threads, each its own connection */
	unsigned int depth;	/* requests each thread keeps in flight */
	uint64_t window_ns;	/* throughput: how long to count replies, after
				 * a warm-up of window_ns / 4 */
	/*
	 * Latency (threads and depth 1): with @samples, time each of @nsamples
	 * round trips with bench_ticks() into samples[] (ticks) instead of
	 * counting a window.  peer_rr_warmup(nsamples) untimed round trips go
	 * first.  The client process writes them: to be read elsewhere, they
	 * must be in memory it shares (bench_shared_alloc()).
	 */
	uint64_t *samples;
	unsigned int nsamples;
};

/* What the client side measured. */
struct peer_rr_result {
	uint64_t calls;		/* replies received in the window (all of them, timed) */
	uint64_t ns;		/* the window's length as measured (timed: their sum) */
	uint64_t bad;		/* replies, warm-up included, whose nonce or bytes
				 * were not their request's */
};

/*
 * A request/response peer.  setup(), serve() and client() return 0 or a
 * negative errno.  serve() and client() each run in a process forked for
 * the run, one call per process: a peer may keep state per process (an
 * iceoryx runtime, which has one name for its life).
 *
 * @serve runs the server in its own process: it listens on @endpoint (a
 * name unique to the run: "sluice-bench-<pid>-<n>"), sets *@ready to 1 (a
 * release store) once clients may connect, and echoes every request until
 * the @load->threads client threads have all said they are done.  It returns
 * -ETIMEDOUT when the client side goes quiet (see PEER_RR_IDLE_MS).
 *
 * @client runs the client side in another process: it waits for *@ready,
 * connects its threads, runs @load and fills @res.  It returns -ETIMEDOUT
 * when the server goes quiet.
 */
struct peer_rr {
	const char *name;		/* column name: "unix socket" */
	const char *missing;		/* NULL: built in; else why not, and no calls */
	const char *(*version)(void);	/* "libzmq 4.3.4" */
	/*
	 * In the suite's process before any fork, and after the last run:
	 * start and stop what the peer needs beside the two processes (RouDi
	 * for iceoryx).  NULL when there is nothing to do.  setup() says why
	 * it failed in @why.
	 */
	int (*setup)(char *why, size_t len);
	void (*teardown)(void);
	int (*serve)(const char *endpoint, const struct peer_rr_load *load,
		     _Atomic uint32_t *ready);
	int (*client)(const char *endpoint, const struct peer_rr_load *load,
		      _Atomic uint32_t *ready, struct peer_rr_result *res);
};

extern const struct peer_rr peer_usock;	/* peer_usock.c: always built */
extern const struct peer_rr peer_zmq;	/* peer_zmq.c: with libzmq3-dev */
extern const struct peer_rr peer_iox;	/* peer_iox.c: with libiceoryx-binding-c-dev */

/* --------------------------------------------------------------- messages */

/*
 * A request's nonce: its thread (from 1, so that no nonce is 0) in the top
 * 16 bits, the thread's count of requests before it below.  A reply that
 * reaches the wrong thread or comes out of turn carries the wrong one.
 */
static inline uint64_t peer_rr_nonce(unsigned int thread, uint64_t seq)
{
	return (uint64_t)(thread + 1) << 48 | (seq & ((1ull << 48) - 1));
}

/*
 * A client thread's last message on the peers where a server cannot see a
 * connection close (ZeroMQ, iceoryx): no thread's nonce.  The server does
 * not answer it.
 */
#define PEER_RR_STOP	UINT64_MAX

/* Payload word @i of the request with @nonce: every byte depends on both. */
static inline uint64_t peer_rr_word(uint64_t nonce, unsigned int i)
{
	return (nonce + i) * 0x9e3779b97f4a7c15ull;
}

/* Write the payload of request @nonce: @size bytes at @p, any alignment. */
static inline void peer_rr_fill(void *p, unsigned int size, uint64_t nonce)
{
	unsigned char *b = p;
	unsigned int i;
	uint64_t w;

	for (i = 0; i + 8 <= size; i += 8) {
		w = peer_rr_word(nonce, i);
		memcpy(b + i, &w, 8);
	}
	if (i < size) {
		w = peer_rr_word(nonce, i);
		memcpy(b + i, &w, size - i);
	}
}

/* Are the @size bytes at @p the payload of request @nonce? */
static inline bool peer_rr_check(const void *p, unsigned int size, uint64_t nonce)
{
	const unsigned char *b = p;
	unsigned int i;
	uint64_t w, x, diff = 0;

	for (i = 0; i + 8 <= size; i += 8) {
		w = peer_rr_word(nonce, i);
		memcpy(&x, b + i, 8);
		diff |= w ^ x;
	}
	if (i < size) {
		w = peer_rr_word(nonce, i);
		return !diff && !memcmp(b + i, &w, size - i);
	}
	return !diff;
}

/* Untimed round trips before @nsamples timed ones: as the spsc suite's. */
static inline unsigned int peer_rr_warmup(unsigned int nsamples)
{
	return nsamples / 10 > 1000 ? nsamples / 10 : 1000;
}

/* Is @l a load every peer can run? */
static inline bool peer_rr_load_ok(const struct peer_rr_load *l)
{
	if (!l->size || l->size > PEER_RR_SIZE_MAX)
		return false;
	if (!l->threads || l->threads > PEER_RR_THREADS_MAX)
		return false;
	if (!l->depth || l->depth > PEER_RR_DEPTH_MAX)
		return false;
	if (l->samples)
		return l->nsamples && l->threads == 1 && l->depth == 1;
	return l->window_ns > 0;
}

/* --------------------------------------------------------------- waiting */

static inline void peer_rr_sleep_until(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000u),
		.tv_nsec = (long)(ns % 1000000000u),
	};

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/*
 * Wait, at most PEER_RR_START_MS, for the server to set *@ready.  Sleeps
 * rather than spins: the client's threads may be starting on this CPU.
 */
static inline int peer_rr_wait_ready(_Atomic uint32_t *ready)
{
	uint64_t end = bench_now_ns() + PEER_RR_START_MS * 1000000ull;

	/* Pairs with serve()'s release store, made once it listens. */
	while (!atomic_load_explicit(ready, memory_order_acquire)) {
		if (bench_now_ns() >= end)
			return -ETIMEDOUT;
		peer_rr_sleep_until(bench_now_ns() + 100000);
	}
	return 0;
}

/* --------------------------------------------------------------- the client */

struct peer_rr_thread;

/*
 * The client side of one run, in the client process.  The main thread
 * marks the window with the chan suite's phases (peers.h): PEER_WARM, then
 * PEER_MEASURE, then PEER_STOP, and each thread notes how many replies it
 * had when it first saw each (peer_tick()).  The window's length is the
 * time between the two stores; a thread that sees a store late did nothing
 * meanwhile, so its marks are as good as on time.  A thread that fails cuts
 * the window short: the run has failed, and the others stop too.
 */
struct peer_rr_client {
	const struct peer_rr_load *load;
	int (*body)(struct peer_rr_thread *t);
	void *arg;
	struct peer_ctl ctl;
	pthread_mutex_t lock;
	pthread_cond_t cond;		/* CLOCK_MONOTONIC */
	unsigned int arrived, parties;	/* at the start, under @lock */
	bool failed;			/* under @lock: a thread failed */
};

/* One client thread. */
struct peer_rr_thread {
	struct peer_rr_client *c;
	unsigned int id;		/* 0 .. threads - 1 */
	struct peer_count count;	/* replies: window marks, total, bad */
	uint64_t timed_ns;		/* latency: the timed round trips' sum */
	int err;
	pthread_t tid;
};

/* Note a failure and wake whoever waits: the gate, or the window's clock. */
static inline void peer_rr_fail(struct peer_rr_client *c)
{
	pthread_mutex_lock(&c->lock);
	c->failed = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/*
 * Every thread passes this once connected, or having failed to (@err), and
 * goes on only if it returns 0: the threads start their load together,
 * once all of them can.  peer_rr_client_run() passes it too, to start the
 * window's clock.
 */
static inline int peer_rr_gate(struct peer_rr_client *c, int err)
{
	bool failed;

	pthread_mutex_lock(&c->lock);
	if (err)
		c->failed = true;
	if (++c->arrived >= c->parties)
		pthread_cond_broadcast(&c->cond);
	while (c->arrived < c->parties)
		pthread_cond_wait(&c->cond, &c->lock);
	failed = c->failed;
	pthread_mutex_unlock(&c->lock);
	if (err)
		return err;
	return failed ? -ECANCELED : 0;
}

/* Sleep until CLOCK_MONOTONIC @ns, or a thread fails; false if one did. */
static inline bool peer_rr_window_sleep(struct peer_rr_client *c, uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / 1000000000u),
		.tv_nsec = (long)(ns % 1000000000u),
	};
	bool failed;

	pthread_mutex_lock(&c->lock);
	while (!c->failed && pthread_cond_timedwait(&c->cond, &c->lock, &ts) != ETIMEDOUT)
		;
	failed = c->failed;
	pthread_mutex_unlock(&c->lock);
	return !failed;
}

static inline void *peer_rr_thread_main(void *arg)
{
	struct peer_rr_thread *t = arg;

	t->err = t->c->body(t);
	if (t->err)
		peer_rr_fail(t->c);
	return NULL;
}

/*
 * A client thread's round trips, every peer's.  @send sends the request
 * with @nonce (filling its payload with peer_rr_fill()); @recv waits for the
 * next reply and returns 1 if it is request @nonce's, nonce and payload,
 * 0 if it is not, or a negative errno (-ETIMEDOUT after PEER_RR_IDLE_MS of
 * silence).  Inlined with constant @send and @recv, so that each peer's calls
 * are inlined here, as in its users' code.
 *
 * Latency: one request at a time, each round trip timed alone.  Throughput:
 * @depth requests out, one more for each reply, until PEER_STOP; then the
 * thread takes the replies still due, so that no request is left behind.
 */
static inline __attribute__((always_inline)) int
peer_rr_loop(struct peer_rr_thread *t, void *conn,
	     int (*send)(void *conn, uint64_t nonce),
	     int (*recv)(void *conn, uint64_t nonce))
{
	const struct peer_rr_load *l = t->c->load;
	uint64_t sent = 0, got = 0, bad = 0, i, t0, t1, warm, total;
	int err = 0;

	if (l->samples) {
		warm = peer_rr_warmup(l->nsamples);
		total = warm + l->nsamples;
		for (i = 0; i < total; i++) {
			t0 = bench_ticks();
			err = send(conn, peer_rr_nonce(t->id, i));
			if (err)
				break;
			err = recv(conn, peer_rr_nonce(t->id, i));
			if (err < 0)
				break;
			t1 = bench_ticks();
			bad += !err;
			err = 0;
			if (i >= warm) {
				l->samples[i - warm] = t1 - t0;
				t->timed_ns += (uint64_t)bench_ticks_ns(t1 - t0);
			}
		}
		t->count.total = i;
		t->count.at_start = i > warm ? warm : i;
		t->count.at_end = i;
		t->count.bad = bad;
		return err;
	}

	for (; sent < l->depth; sent++) {
		err = send(conn, peer_rr_nonce(t->id, sent));
		if (err)
			goto out;
	}
	for (;;) {
		err = recv(conn, peer_rr_nonce(t->id, got));
		if (err < 0)
			goto out;
		bad += !err;
		err = 0;
		got++;
		if (peer_tick(&t->c->ctl, &t->count, got)) {
			if (got == sent)
				break;
			continue;
		}
		err = send(conn, peer_rr_nonce(t->id, sent));
		if (err)
			goto out;
		sent++;
	}
out:
	t->count.total = got;
	t->count.bad = bad;
	return err;
}

/*
 * Run @body on @load->threads threads and fill @res: the client side of
 * every peer.  @body connects (@arg is the peer's, in t->c->arg), passes
 * peer_rr_gate(), runs peer_rr_loop(), disconnects and returns 0 or a
 * negative errno.  The calling thread keeps the window's time, asleep.
 * Returns the first error of a thread, or 0.
 */
static inline int peer_rr_client_run(const struct peer_rr_load *load, struct peer_rr_result *res,
				     int (*body)(struct peer_rr_thread *t), void *arg)
{
	struct peer_rr_client c = {
		.load = load,
		.body = body,
		.arg = arg,
		.parties = load->threads + 1,
	};
	struct peer_rr_thread t[PEER_RR_THREADS_MAX];
	pthread_condattr_t ca;
	uint64_t t0 = 0, t1 = 0;
	unsigned int i, n;
	int err;

	memset(res, 0, sizeof(*res));
	if (!peer_rr_load_ok(load))
		return -EINVAL;
	err = -pthread_condattr_init(&ca);
	if (err)
		return err;
	err = -pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!err)
		err = -pthread_cond_init(&c.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (err)
		return err;
	pthread_mutex_init(&c.lock, NULL);
	memset(t, 0, sizeof(t));
	for (n = 0; n < load->threads; n++) {
		t[n].c = &c;
		t[n].id = n;
		err = -pthread_create(&t[n].tid, NULL, peer_rr_thread_main, &t[n]);
		if (err)
			break;
	}
	if (err) {
		/* Those started wait at the gate for the rest: let them out. */
		pthread_mutex_lock(&c.lock);
		c.parties = n + 1;
		pthread_mutex_unlock(&c.lock);
	}
	if (!peer_rr_gate(&c, err) && !load->samples &&
	    peer_rr_window_sleep(&c, bench_now_ns() + load->window_ns / 4)) {
		/* Relaxed: the phases mark time only; nothing is published through them. */
		t0 = bench_now_ns();
		atomic_store_explicit(&c.ctl.phase, PEER_MEASURE, memory_order_relaxed);
		peer_rr_window_sleep(&c, t0 + load->window_ns);
		t1 = bench_now_ns();
	}
	atomic_store_explicit(&c.ctl.phase, PEER_STOP, memory_order_relaxed);

	for (i = 0; i < n; i++) {
		pthread_join(t[i].tid, NULL);
		if (!err)
			err = t[i].err;
		res->calls += t[i].count.at_end - t[i].count.at_start;
		res->bad += t[i].count.bad;
		res->ns += t[i].timed_ns;
	}
	if (!load->samples)
		res->ns = t1 - t0;
	pthread_cond_destroy(&c.cond);
	pthread_mutex_destroy(&c.lock);
	return err;
}

#endif /* SLUICE_BENCH_PEER_RR_H */
