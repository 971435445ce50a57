// SPDX-License-Identifier: MIT
/*
 * sluice-bench's mux suite: request/response, 64-byte calls, sluice's
 * multiplexer against the bare SPSC ping-pong under it (the floor for one
 * call in flight), a Unix socket server on epoll, ZeroMQ DEALER/ROUTER
 * over ipc:// and iceoryx's request/response.
 *
 * Two tables:
 *
 *   round trip   one thread, one call in flight, each call timed alone
 *                with bench_ticks(): median and 99th percentile.
 *   calls        calls per second in a window, with 1, 8 and 64 in flight
 *                from one thread and 8 and 64 from 8 threads (each thread
 *                keeps its share in flight: one more for every reply).
 *
 * Every column is a peer (peer_rr.h; sluice's own are peer_sluice.c), so
 * one client loop drives them all: a server process pinned to the second
 * CPU of --cpus answers, a client process on the first calls, each fresh
 * for each measurement (bench_pair_run()).  The client checks every reply
 * against its request, nonce and bytes.  Peers interleave within a rep, in
 * alternating order, so that a noisy neighbour hits them alike.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "peer_rr.h"

#define MUX_SIZE		64u	/* payload bytes of a call */
#define MUX_WINDOW_MS		200u
#define MUX_QUICK_WINDOW_MS	60u
#define MUX_PAIR_TIMEOUT_MS	60000u

/* peer_sluice.c */
extern const struct peer_rr peer_sluice_mux, peer_sluice_mux_sleep, peer_sluice_spsc;

enum { MT_RT, MT_CALLS, MT_NR };
enum { RC_MUX, RC_SPSC, RC_SLEEP, RC_USOCK, RC_ZMQ, RC_IOX, RC_NR };
enum { CC_MUX, CC_USOCK, CC_ZMQ, CC_IOX, CC_NR };
enum { RR_MEDIAN, RR_P99, RR_NR };

static const struct peer_rr *const rt_peers[RC_NR] = {
	&peer_sluice_mux, &peer_sluice_spsc, &peer_sluice_mux_sleep, &peer_usock, &peer_zmq,
	&peer_iox,
};
static const struct peer_rr *const calls_peers[CC_NR] = {
	&peer_sluice_mux, &peer_usock, &peer_zmq, &peer_iox,
};

/* The calls table's rows: calls in flight, from how many threads. */
static const struct {
	unsigned int inflight;
	unsigned int threads;
	const char *name;
} loads[] = {
	{ 1, 1, "1 in flight, 1 thread" },
	{ 8, 1, "8 in flight, 1 thread" },
	{ 64, 1, "64 in flight, 1 thread" },
	{ 8, 8, "8 in flight, 8 threads" },
	{ 64, 8, "64 in flight, 8 threads" },
};
#define NLOADS	(sizeof(loads) / sizeof(loads[0]))

/* What the two processes of one measurement share, zeroed before each. */
struct mux_shared {
	_Alignas(64) _Atomic uint32_t ready;
	_Alignas(64) struct peer_rr_result res;
	int err[2];
	uint64_t samples[];		/* ticks of each timed round trip */
};

struct mux_run {
	const struct peer_rr *peer;
	struct peer_rr_load load;
	struct mux_shared *sh;
	char endpoint[64];
};

static int mux_side(void *arg, int side)
{
	struct mux_run *r = arg;
	int err;

	if (side == 1) {
		err = r->peer->serve(r->endpoint, &r->load, &r->sh->ready);
	} else {
		if (r->load.samples)
			r->load.samples = r->sh->samples;
		err = r->peer->client(r->endpoint, &r->load, &r->sh->ready, &r->sh->res);
	}
	r->sh->err[side] = err;
	return err;
}

/* One measurement of @peer under @load; its result in sh->res. */
static int mux_measure(const struct peer_rr *peer, const struct peer_rr_load *load,
		       struct mux_shared *sh, size_t shlen, const int cpus[2], char *why,
		       size_t len)
{
	static unsigned int n;
	struct mux_run r = { .peer = peer, .load = *load, .sh = sh };
	int err;

	memset(sh, 0, shlen);
	snprintf(r.endpoint, sizeof(r.endpoint), "sluice-bench-%d-%u", (int)getpid(), n++);
	err = bench_pair_run(mux_side, &r, cpus, MUX_PAIR_TIMEOUT_MS);
	if (err) {
		int e = sh->err[0] ? sh->err[0] : sh->err[1] ? sh->err[1] : err;

		snprintf(why, len, "%s: %s", err == -ETIMEDOUT ? "no answer, killed" :
			 err == -EINTR ? "interrupted" : "failed", strerror(-e));
		return err;
	}
	if (sh->res.bad) {
		snprintf(why, len, "%" PRIu64 " replies not their requests'", sh->res.bad);
		return -EBADMSG;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void note_ratios(struct bench_table *t, unsigned int ncols)
{
	unsigned int r, c;
	char what[BENCH_TEXT_MAX];

	for (r = 0; r < t->nrows; r++)
		for (c = 1; c < ncols; c++) {
			snprintf(what, sizeof(what), "%s vs %s", t->row[r].name, t->col[c]);
			/* The floor is to be met; every peer, beaten; ourselves, shown. */
			bench_note_ratio(t, (int)r, (int)c, what,
					 !strcmp(t->col[c], peer_sluice_spsc.name) ? "<= 1.5x" :
					 !strcmp(t->col[c], peer_sluice_mux_sleep.name) ? NULL :
					 t->row[r].better == BENCH_HIGHER_BETTER ? "> 1x" : "< 1x");
		}
}

int suite_mux(const struct bench_opts *o, struct bench_table *t)
{
	unsigned int samples = o->samples ? o->samples : o->quick ? LAT_QUICK_SAMPLES : LAT_SAMPLES;
	uint64_t window = (uint64_t)(o->quick ? MUX_QUICK_WINDOW_MS : MUX_WINDOW_MS) * 1000000;
	bool failed[MT_NR][RC_NR] = { { false } };
	const struct peer_rr *seen[RC_NR];
	struct bench_table *rt = &t[MT_RT], *ct = &t[MT_CALLS];
	struct peer_rr_load load;
	struct mux_shared *sh;
	unsigned int pass, npass, i, k, c, nseen = 0;
	char why[BENCH_TEXT_MAX];
	size_t shlen;
	int err = 0, e;

	bench_table_name(rt, "round trip");
	bench_table_name(ct, "calls");
	for (c = 0; c < RC_NR; c++)
		bench_table_col(rt, rt_peers[c]->name);
	for (c = 0; c < CC_NR; c++)
		bench_table_col(ct, calls_peers[c]->name);
	rt->subject = ct->subject = 0;
	rt->paired = ct->paired = true;
	bench_table_row(rt, "round trip, median", "ns", BENCH_LOWER_BETTER);
	bench_table_row(rt, "round trip, p99", "ns", BENCH_LOWER_BETTER);
	for (i = 0; i < NLOADS; i++)
		bench_table_row(ct, loads[i].name, "k calls/s", BENCH_HIGHER_BETTER);
	bench_title(rt, "%u-byte calls, one at a time, client on CPU %d, server on CPU %d; "
		    "%u timed round trips a rep, %u rep%s (+%u warm-up)", MUX_SIZE, o->pair[0],
		    o->pair[1], samples, o->reps, o->reps == 1 ? "" : "s", o->warmup);
	bench_title(ct, "%u-byte calls, client on CPU %d (its threads too), server on CPU %d; "
		    "%" PRIu64 " ms a rep, %u rep%s (+%u warm-up)", MUX_SIZE, o->pair[0],
		    o->pair[1], window / 1000000, o->reps, o->reps == 1 ? "" : "s", o->warmup);
	if (o->pair[0] < 0) {
		for (c = 0; c < RC_NR; c++)
			bench_skip(rt, (int)c, "needs two CPUs, this process may use one");
		for (c = 0; c < CC_NR; c++)
			bench_skip(ct, (int)c, "needs two CPUs, this process may use one");
		return 0;
	}

	/* Each peer set up once, before any fork; a column without one is skipped. */
	for (c = 0; c < RC_NR; c++) {
		const struct peer_rr *p = rt_peers[c];

		why[0] = 0;
		if (!p->missing && p->setup && p->setup(why, sizeof(why)))
			e = -1;
		else
			e = 0;
		if (!p->missing && !e) {
			seen[nseen++] = p;
			continue;
		}
		for (k = 0; k < CC_NR; k++)
			if (calls_peers[k] == p)
				bench_skip(ct, (int)k, "%s", p->missing ? p->missing : why);
		bench_skip(rt, (int)c, "%s", p->missing ? p->missing : why);
	}
	bench_ticks_init();
	shlen = sizeof(*sh) + (size_t)samples * sizeof(uint64_t);
	sh = bench_shared_alloc(shlen);
	if (!sh) {
		errmsg("mux: cannot map %zu bytes of shared memory", shlen);
		err = -ENOMEM;
		goto out;
	}

	npass = o->warmup + o->reps;
	for (pass = 0; pass < npass && !bench_stop; pass++) {
		rt->discard = ct->discard = pass < o->warmup;
		/* Round trips, then the calls table, peers in alternating order. */
		for (k = 0; k < RC_NR && !bench_stop; k++) {
			c = pass % 2 ? RC_NR - 1 - k : k;
			if (failed[MT_RT][c] || bench_skipped(rt, (int)c))
				continue;
			bench_progress("mux: pass %u/%u, round trips, %s", pass + 1, npass,
				       rt_peers[c]->name);
			load = (struct peer_rr_load){ .size = MUX_SIZE, .threads = 1, .depth = 1,
						      .samples = sh->samples, .nsamples = samples };
			e = mux_measure(rt_peers[c], &load, sh, shlen, o->pair, why, sizeof(why));
			if (e) {
				failed[MT_RT][c] = true;
				bench_note(rt, "%s failed: %s", rt_peers[c]->name, why);
				err = e;
				continue;
			}
			qsort(sh->samples, samples, sizeof(uint64_t), cmp_u64);
			bench_add(rt, RR_MEDIAN, (int)c, bench_ticks_ns(sh->samples[samples / 2]));
			bench_add(rt, RR_P99, (int)c,
				  bench_ticks_ns(sh->samples[(size_t)samples * 99 / 100]));
		}
		for (i = 0; i < NLOADS && !bench_stop; i++)
			for (k = 0; k < CC_NR && !bench_stop; k++) {
				c = (pass + i) % 2 ? CC_NR - 1 - k : k;
				if (failed[MT_CALLS][c] || bench_skipped(ct, (int)c))
					continue;
				bench_progress("mux: pass %u/%u, %s, %s", pass + 1, npass,
					       loads[i].name, calls_peers[c]->name);
				load = (struct peer_rr_load){
					.size = MUX_SIZE,
					.threads = loads[i].threads,
					.depth = loads[i].inflight / loads[i].threads,
					.window_ns = window,
				};
				e = mux_measure(calls_peers[c], &load, sh, shlen, o->pair, why,
						sizeof(why));
				if (e) {
					failed[MT_CALLS][c] = true;
					bench_note(ct, "%s failed (%s): %s", calls_peers[c]->name,
						   loads[i].name, why);
					err = e;
					continue;
				}
				bench_add(ct, (int)i, (int)c, sh->res.ns ?
					  (double)sh->res.calls * 1e6 / (double)sh->res.ns : 0);
			}
	}
	bench_progress_done();

	for (c = 0; c < RC_NR; c++)
		if (!bench_skipped(rt, (int)c))
			bench_note(rt, "%s: %s", rt_peers[c]->name, rt_peers[c]->version());
	bench_note(rt, "sluice mux: sluice_mux_call(); the responder answers with "
		   "recv_batch/reply_batch; bare SPSC: sluice_spsc_send/recv, the floor");
	bench_note(rt, "sluice mux spins first (its default, adapting 1-50 us), as a busy link "
		   "does; sluice, sleeping: every spin budget 1 ns, sleeping at once as the "
		   "peers do: the fair comparison for an idle link");
	bench_note(rt, "unix socket: SOCK_SEQPACKET, server on epoll; ZeroMQ: DEALER/ROUTER "
		   "over ipc://; iceoryx: request/response through RouDi");
	note_ratios(rt, RC_NR);
	bench_note(ct, "each thread keeps its share in flight, one more call for every reply; "
		   "sluice: one multiplexer for all the client's threads");
	note_ratios(ct, CC_NR);
	{
		struct bench_stat one = bench_cell_stat(&ct->row[0].cell[CC_MUX]);
		struct bench_stat many = bench_cell_stat(&ct->row[2].cell[CC_MUX]);

		if (!isnan(one.median) && !isnan(many.median) && one.median > 0)
			bench_note(ct, "sluice, 64 in flight against 1 (1 thread): %.2fx "
				   "(target >= 10x)", many.median / one.median);
	}
	bench_note(ct, "cells: median of the reps ±half their range; ratios: median of the "
		   "reps' ratios");
	bench_shared_free(sh, shlen);
out:
	for (i = 0; i < nseen; i++)
		if (seen[i]->teardown)
			seen[i]->teardown();
	return err;
}
