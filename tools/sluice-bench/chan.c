// SPDX-License-Identifier: MIT
/*
 * sluice-bench's chan suite: channels (many writers, many readers) against
 * rte_ring in MP/MC mode and ck_ring's MPMC ring, on the two CPUs of
 * --cpus, every writer and every reader a process of its own.  Two tables:
 *
 *   scaling      64-byte frames in batches of 32, 1, 2 and 4 writers by 1,
 *                2 and 4 readers.  Two rows per shape, because the things
 *                compared do different work: a channel gives every frame to
 *                every reader (a broadcast), a ring gives each frame to one
 *                of its consumers.  "frames in" counts frames the writers
 *                put in, which all three do alike; "deliveries" counts
 *                frames the readers took out, R times the frames in for a
 *                channel with R readers.  With one writer and one reader
 *                the two agree.
 *   weak reader  one writer and one strong reader, then the same with a
 *                weak reader added: what a weak reader costs the writer.
 *
 * A rep runs for a fixed time, never to a count: with more processes than
 * CPUs a ring whose producer is preempted between claiming a slot and
 * publishing it stalls everyone behind it (rte_ring and ck_ring do), and a
 * count might take any time to reach.  The parent lets every process past a
 * gate, waits, raises a flag that starts the count, waits the measured
 * window and raises another that stops the writers; each process notes how
 * far it had got at each flag (peer_tick()), and the rates are those
 * differences over the parent's time between the two flags.  Readers then
 * take what is left, so that the totals can be checked: every frame carries
 * its writer and that writer's sequence number, and a frame torn, from
 * nowhere, out of order or missing is counted bad, which fails the rep.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sluice.h>
#include <sluice/chan.h>

#include "bench.h"
#include "internal.h"
#include "peers.h"

#define FRAME			64u		/* bytes per frame */
#define BATCH			PEER_BURST	/* frames per call */
/*
 * The same bytes of ring for all three: 4096 slots of 64 bytes, and a
 * channel of 256 KiB, which holds about 3600 frames since each carries an
 * 8-byte header and each batch of 32 a 16-byte one.
 */
#define RING_SLOTS		4096u
#define CHAN_CAPACITY		(256ull << 10)
#define CHAN_REGION_SIZE	(1u << 20)
#define CHAN_NAME		"bench"
#define WRITERS_MAX		4u
#define READERS_MAX		4u
#define PROCS_MAX		(WRITERS_MAX + READERS_MAX + 1)
/* Per rep: uncounted, then counted. */
#define WARM_MS			30
#define WINDOW_MS		200
#define QUICK_WARM_MS		20
#define QUICK_WINDOW_MS		60
/* Setup before the gate, and the readers' last frames after the stop flag. */
#define SETUP_TIMEOUT_MS	10000
#define STOP_TIMEOUT_MS		10000
/* The weak reader: wakes this often, reads at most this many batches. */
#define WEAK_PERIOD_NS		1000000
#define WEAK_BATCHES		32

_Static_assert(WRITERS_MAX <= PEER_WRITERS_MAX, "frames name their writer");

/* ---------------------------------------------------------------- shapes */

static const struct chan_shape {
	unsigned int writers, readers;
} chan_shapes[] = {
	{ 1, 1 }, { 1, 2 }, { 1, 4 },
	{ 2, 1 }, { 2, 2 }, { 2, 4 },
	{ 4, 1 }, { 4, 2 }, { 4, 4 },
};

#define NSHAPES		SLUICE_ARRAY_SIZE(chan_shapes)

enum chan_table { CT_SCALE, CT_WEAK, CT_NR };
enum { SC_SLUICE, SC_RTE, SC_CK, SC_NR };		/* scaling columns */
enum { WC_STRONG, WC_WEAK, WC_NR };			/* weak reader columns */
enum { WR_IN, WR_OUT, WR_WEAK, WR_AWAKE, WR_OVERRUN, WR_LOST, WR_NR };	/* weak reader rows */

enum chan_kind { K_SLUICE, K_RTE, K_CK };

static const char *const scale_cols[SC_NR] = { "sluice", "rte_ring MP/MC", "ck_ring MPMC" };
static const char *const weak_cols[WC_NR] = { "strong only", "+ weak reader" };

/* Row names must outlive the table: "2w 4r: frames in". */
static char scale_rows[NSHAPES][2][32];

static int row_in(unsigned int shape)
{
	return (int)(2 * shape);
}

static int row_out(unsigned int shape)
{
	return (int)(2 * shape + 1);
}

/* ---------------------------------------------------------------- shared */

/* One process's report, written by it alone, after it has stopped. */
struct chan_slot {
	_Alignas(64) struct peer_count c;
	/* The weak reader, in the counted window. */
	uint64_t overruns;		/* -EOVERFLOW returns */
	uint64_t lost;			/* bytes skipped (sluice_chan_lost_total()) */
	uint64_t awake_ns;		/* time spent reading */
	int32_t err;
	char why[BENCH_TEXT_MAX];
};

/* Shared by the parent and the processes of one measurement, zeroed before. */
struct chan_shared {
	struct peer_ctl ctl;
	struct bench_gate gate;
	struct chan_slot slot[PROCS_MAX];
};

/* One measurement: the parent's, copied into every child by fork(). */
struct chan_run {
	enum chan_kind kind;
	unsigned int writers, readers, weak;
	struct chan_shared *sh;
	void *ring;			/* rte_ring or ck_ring, in shared memory */
	struct sluice_region *region;	/* the channel's */
	int cpu[2];
};

enum chan_role { ROLE_WRITER, ROLE_READER, ROLE_WEAK };

/* Process @i: writers first, then readers, then the weak reader. */
static enum chan_role chan_role(const struct chan_run *r, unsigned int i, unsigned int *idx)
{
	if (i < r->writers) {
		*idx = i;
		return ROLE_WRITER;
	}
	i -= r->writers;
	*idx = i;
	return i < r->readers ? ROLE_READER : ROLE_WEAK;
}

/*
 * Writers take the CPUs in turn from the first, readers in turn from the
 * second: one writer and one reader run on different CPUs, and every CPU
 * gets as many of each as the other, give or take one.  The weak reader
 * joins the first reader.
 */
static int chan_cpu(const struct chan_run *r, unsigned int i)
{
	unsigned int idx;

	switch (chan_role(r, i, &idx)) {
	case ROLE_WRITER:
		return r->cpu[idx % 2];
	case ROLE_READER:
		return r->cpu[(idx + 1) % 2];
	default:
		return r->cpu[1];
	}
}

static int __attribute__((format(printf, 3, 4)))
slot_fail(struct chan_slot *s, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return err;
}

/*
 * Like bench_gate_pass(), but yielding: here more processes than CPUs may
 * wait at once, and a spinning one would keep a late one off its CPU.
 */
static void chan_gate_pass(struct bench_gate *g, unsigned int parties)
{
	/* Arrivals are the only stores; nothing else is published through it. */
	atomic_fetch_add_explicit(&g->arrived, 1, memory_order_acq_rel);
	while (atomic_load_explicit(&g->arrived, memory_order_acquire) < parties)
		sched_yield();
}

/* ---------------------------------------------------------------- sluice */

/* A strong writer: batches of 32 numbered frames until the stop flag. */
static int sluice_writer(struct chan_run *r, struct sluice_chan_writer *w,
			 unsigned int id, struct chan_slot *s)
{
	_Alignas(64) struct peer_frame f[BATCH];
	struct iovec iov[BATCH];
	uint64_t seq = 0;
	unsigned int j;
	int ret, err = 0;

	memset(f, 0, sizeof(f));
	for (j = 0; j < BATCH; j++) {
		iov[j].iov_base = &f[j];
		iov[j].iov_len = FRAME;
	}
	while (!peer_tick(&r->sh->ctl, &s->c, seq)) {
		for (j = 0; j < BATCH; j++)
			peer_frame_set(&f[j], id, seq + j);
		ret = sluice_chan_write_batch(w, iov, BATCH);
		if (ret != (int)BATCH) {
			err = ret < 0 ? ret : -EIO;
			slot_fail(s, err, "writer %u: sluice_chan_write_batch: %s", id,
				  ret < 0 ? strerror(-ret) : "short");
			break;
		}
		seq += BATCH;
	}
	s->c.total = seq;
	return err;
}

/*
 * Check @n frames a reader got.  After an overrun a weak reader resumes at
 * some later slice, so for each writer the first frame after one may be
 * any later frame (@resync, a bit per writer).
 */
static uint64_t sluice_check(const struct chan_run *r, const struct peer_frame *f,
			     const struct iovec *iov, unsigned int n, uint64_t *next,
			     uint32_t *resync)
{
	uint64_t bad = 0;
	unsigned int j;
	uint32_t w;

	for (j = 0; j < n; j++) {
		w = f[j].writer;
		if (iov[j].iov_len != FRAME) {
			bad++;
			continue;
		}
		if (*resync && w < r->writers && (*resync & (1u << w))) {
			*resync &= ~(1u << w);
			bad += !peer_frame_take(&f[j], r->writers, next, false);
			continue;
		}
		bad += !peer_frame_take(&f[j], r->writers, next, true);
	}
	return bad;
}

/* A strong reader: everything, until the channel has drained. */
static int sluice_reader(struct chan_run *r, struct sluice_chan_reader *rd,
			 unsigned int id, struct chan_slot *s)
{
	_Alignas(64) struct peer_frame f[BATCH];
	struct iovec iov[BATCH];
	uint64_t next[PEER_WRITERS_MAX] = { 0 }, n = 0, bad = 0;
	uint32_t resync = 0;
	unsigned int j;
	int ret, err = 0;

	for (j = 0; j < BATCH; j++)
		iov[j].iov_base = &f[j];
	for (;;) {
		peer_tick(&r->sh->ctl, &s->c, n);
		/* read_batch leaves each frame's length in iov_len. */
		for (j = 0; j < BATCH; j++)
			iov[j].iov_len = FRAME;
		ret = sluice_chan_read_batch(rd, iov, BATCH);
		if (ret == -EPIPE)
			break;		/* drained: the writers are gone */
		if (ret < 0) {
			err = slot_fail(s, ret, "reader %u: sluice_chan_read_batch: %s", id,
					strerror(-ret));
			break;
		}
		bad += sluice_check(r, f, iov, (unsigned int)ret, next, &resync);
		n += (unsigned int)ret;
	}
	peer_tick(&r->sh->ctl, &s->c, n);
	s->c.total = n;
	s->c.bad = bad;
	return err;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/*
 * A weak reader as a monitor would be one: wake every millisecond, take
 * what there is (at most WEAK_BATCHES batches) with the try_ call, sleep.
 * With two CPUs, a weak reader that read flat out would share a CPU with
 * the writer or the strong reader and measure that, not the channel.
 */
static int sluice_weak(struct chan_run *r, struct sluice_chan_reader *rd,
		       struct chan_slot *s)
{
	_Alignas(64) struct peer_frame f[BATCH];
	struct iovec iov[BATCH];
	uint64_t next[PEER_WRITERS_MAX] = { 0 }, n = 0, bad = 0, t0;
	uint64_t overruns = 0, ov0 = 0, lost0 = 0;
	uint32_t resync = 0, seen;
	unsigned int j, b;
	bool counted, done = false;
	int ret, err = 0;

	for (j = 0; j < BATCH; j++)
		iov[j].iov_base = &f[j];
	while (!done && !err) {
		seen = s->c.seen;
		peer_tick(&r->sh->ctl, &s->c, n);
		/* Overruns and bytes lost in the counted window only, as frames. */
		if (seen == PEER_WARM && s->c.seen != PEER_WARM) {
			ov0 = overruns;
			lost0 = sluice_chan_lost_total(rd);
		}
		if (seen != PEER_STOP && s->c.seen == PEER_STOP) {
			s->overruns = overruns - ov0;
			s->lost = sluice_chan_lost_total(rd) - lost0;
		}
		counted = s->c.seen == PEER_MEASURE;
		t0 = bench_now_ns();
		for (b = 0; b < WEAK_BATCHES; b++) {
			for (j = 0; j < BATCH; j++)
				iov[j].iov_len = FRAME;
			ret = sluice_chan_try_read_batch(rd, iov, BATCH);
			if (ret == -EAGAIN)
				break;
			if (ret == -EPIPE) {
				done = true;
				break;
			}
			if (ret == -EOVERFLOW) {
				overruns++;
				resync = (1u << r->writers) - 1;
				continue;
			}
			if (ret < 0) {
				err = slot_fail(s, ret, "weak reader: sluice_chan_try_read_batch: %s",
						strerror(-ret));
				break;
			}
			bad += sluice_check(r, f, iov, (unsigned int)ret, next, &resync);
			n += (unsigned int)ret;
		}
		if (counted)
			s->awake_ns += bench_now_ns() - t0;
		if (!done && !err)
			sleep_ns(WEAK_PERIOD_NS);
	}
	seen = s->c.seen;
	peer_tick(&r->sh->ctl, &s->c, n);
	if (seen != PEER_STOP && s->c.seen == PEER_STOP) {
		s->overruns = overruns - ov0;
		s->lost = sluice_chan_lost_total(rd) - lost0;
	}
	s->c.total = n;
	s->c.bad = bad;
	return err;
}

/*
 * Each child maps the region on its own (sluice_region_open_fd), as an
 * unrelated process would, rather than through the handle fork() copied:
 * that one shares the parent's open file description and its lock.
 */
static int sluice_child(struct chan_run *r, unsigned int i, struct chan_slot *s)
{
	struct sluice_region *reg = NULL;
	struct sluice_chan *ch = NULL;
	struct sluice_chan_writer *w = NULL;
	struct sluice_chan_reader *rd = NULL;
	enum chan_role role;
	unsigned int idx;
	int err;

	role = chan_role(r, i, &idx);
	err = sluice_region_open_fd(sluice_region_fd(r->region), NULL, &reg);
	if (err)
		return slot_fail(s, err, "sluice_region_open_fd: %s", strerror(-err));
	err = sluice_chan_attach(reg, CHAN_NAME, NULL, &ch);
	if (err) {
		slot_fail(s, err, "sluice_chan_attach: %s", strerror(-err));
		goto out_region;
	}
	if (role == ROLE_WRITER)
		err = sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w);
	else
		err = sluice_chan_reader_open(ch, role == ROLE_WEAK ? SLUICE_CHAN_WEAK :
					      SLUICE_CHAN_STRONG, NULL, &rd);
	if (err) {
		slot_fail(s, err, "sluice_chan_%s_open: %s",
			  role == ROLE_WRITER ? "writer" : "reader", strerror(-err));
		goto out_chan;
	}
	/* Readers are open before any writer writes, so they see every frame. */
	chan_gate_pass(&r->sh->gate, r->writers + r->readers + r->weak + 1);
	if (role == ROLE_WRITER)
		err = sluice_writer(r, w, idx, s);
	else if (role == ROLE_READER)
		err = sluice_reader(r, rd, idx, s);
	else
		err = sluice_weak(r, rd, s);
	/* The last strong writer to close drains the channel: readers end. */
	sluice_chan_writer_close(w);
	sluice_chan_reader_close(rd);
out_chan:
	sluice_chan_close(ch);
out_region:
	sluice_region_close(reg);
	return err;
}

/* ---------------------------------------------------------------- peers */

static int ring_child(struct chan_run *r, unsigned int i, struct chan_slot *s)
{
	const struct peer_mpmc *peer = r->kind == K_RTE ? &peer_rte_mpmc : &peer_ck;
	unsigned int idx;
	enum chan_role role = chan_role(r, i, &idx);
	int err;

	chan_gate_pass(&r->sh->gate, r->writers + r->readers + 1);
	err = role == ROLE_WRITER ? peer->produce(r->ring, &r->sh->ctl, idx, &s->c) :
				    peer->consume(r->ring, &r->sh->ctl, r->writers, &s->c);
	if (err)
		slot_fail(s, err, "%s: %s", role == ROLE_WRITER ? "producer" : "consumer",
			  strerror(-err));
	return err;
}

/* In the child: pin, run, report; never returns. */
static void __attribute__((noreturn)) chan_child(struct chan_run *r, unsigned int i)
{
	struct chan_slot *s = &r->sh->slot[i];
	int err;

	err = bench_pin_cpu(chan_cpu(r, i));
	if (err)
		slot_fail(s, err, "cannot pin to CPU %d: %s", chan_cpu(r, i), strerror(-err));
	else if (r->kind == K_SLUICE)
		err = sluice_child(r, i, s);
	else
		err = ring_child(r, i, s);
	s->err = err;
	/* _exit: no atexit handlers, they belong to the parent. */
	_exit(err ? 1 : 0);
}

/* ---------------------------------------------------------------- parent */

/* What one measurement got, or why it could not. */
struct chan_result {
	double in_mps, out_mps;		/* frames in, deliveries: millions a second */
	double weak_mps;		/* weak reader: frames read, millions a second */
	double overruns_ps;		/* weak reader: overruns a second */
	double lost_mbps;		/* weak reader: MB skipped a second */
	double weak_awake;		/* weak reader: share of the window awake */
	double csw_v, csw_i;		/* context switches a second, all processes */
	uint64_t abandoned;		/* sluice: bytes of slices readers skipped */
	char why[BENCH_TEXT_MAX];
};

static void sleep_until(uint64_t t)
{
	struct timespec ts = { (time_t)(t / 1000000000), (long)(t % 1000000000) };

	while (!bench_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/*
 * Reap @n children, or kill what is left at @deadline (ns).  Marks reaped
 * ones with pid 0; returns 0, -ETIMEDOUT, -EINTR or -ECHILD (one died or
 * exited with a failure; its slot may say why).
 */
static int chan_reap(pid_t *pid, unsigned int n, uint64_t deadline)
{
	unsigned int i, left;
	int status, err = 0;
	pid_t p;

	for (;;) {
		for (i = 0, left = 0; i < n; i++) {
			if (pid[i] <= 0)
				continue;
			p = waitpid(pid[i], &status, WNOHANG);
			if (!p) {
				left++;
				continue;
			}
			if (p < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
				err = err ? err : -ECHILD;
			pid[i] = 0;
		}
		if (!left)
			return err;
		if (bench_stop || bench_now_ns() >= deadline)
			break;
		sleep_ns(1000000);
	}
	/* Ours, by pid: one still running may spin for ever. */
	for (i = 0; i < n; i++) {
		if (pid[i] <= 0)
			continue;
		kill(pid[i], SIGKILL);
		while (waitpid(pid[i], &status, 0) < 0 && errno == EINTR)
			;
		pid[i] = 0;
	}
	return bench_stop ? -EINTR : -ETIMEDOUT;
}

/*
 * Add each child's context switches so far, from /proc: voluntary (it
 * slept) into @v, involuntary (it was preempted) into @iv.  The parent
 * reads them, not the children, so that the loops measured stay the loops.
 */
static void chan_csw(const pid_t *pid, unsigned int n, double *v, double *iv)
{
	char path[64], line[128];
	unsigned long x;
	unsigned int i;
	FILE *f;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/status", (int)pid[i]);
		f = fopen(path, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "voluntary_ctxt_switches: %lu", &x) == 1)
				*v += (double)x;
			else if (sscanf(line, "nonvoluntary_ctxt_switches: %lu", &x) == 1)
				*iv += (double)x;
		}
		fclose(f);
	}
}

/* Wait until @n children are at the gate; a child that left is a failure. */
static int chan_arrivals(struct chan_shared *sh, pid_t *pid, unsigned int n)
{
	uint64_t deadline = bench_now_ns() + SETUP_TIMEOUT_MS * 1000000ull;
	unsigned int i;
	int status;

	while (atomic_load_explicit(&sh->gate.arrived, memory_order_acquire) < n) {
		if (bench_stop)
			return -EINTR;
		if (bench_now_ns() >= deadline)
			return -ETIMEDOUT;
		for (i = 0; i < n; i++) {
			if (waitpid(pid[i], &status, WNOHANG) == pid[i]) {
				pid[i] = 0;
				return -ECHILD;
			}
		}
		sleep_ns(200000);
	}
	return 0;
}

static const char *role_str(const struct chan_run *r, unsigned int i, char *buf, size_t len)
{
	static const char *const names[] = { "writer", "reader", "weak reader" };
	unsigned int idx;
	enum chan_role role = chan_role(r, i, &idx);

	snprintf(buf, len, "%s %u", names[role], idx);
	return buf;
}

/* Add up what the children reported; check the frames and the totals. */
static int chan_collect(const struct chan_run *r, double secs, struct chan_result *res)
{
	const struct chan_slot *s = r->sh->slot;
	unsigned int i, n = r->writers + r->readers + r->weak, idx;
	uint64_t in = 0, out = 0, written = 0, taken = 0, bad = 0;
	char who[32];

	for (i = 0; i < n; i++) {
		uint64_t d = s[i].c.at_end - s[i].c.at_start;

		bad += s[i].c.bad;
		switch (chan_role(r, i, &idx)) {
		case ROLE_WRITER:
			in += d;
			written += s[i].c.total;
			break;
		case ROLE_READER:
			out += d;
			taken += s[i].c.total;
			break;
		case ROLE_WEAK:
			res->weak_mps = (double)d / secs / 1e6;
			res->overruns_ps = (double)s[i].overruns / secs;
			res->lost_mbps = (double)s[i].lost / secs / 1e6;
			res->weak_awake = (double)s[i].awake_ns / 1e9 / secs;
			break;
		}
	}
	res->in_mps = (double)in / secs / 1e6;
	res->out_mps = (double)out / secs / 1e6;
	if (bad) {
		snprintf(res->why, sizeof(res->why), "bad frames (torn, from nowhere or out "
			 "of order): %" PRIu64, bad);
		return -EBADMSG;
	}
	/* Every strong reader of a channel gets every frame; a ring's share them. */
	for (i = r->writers; r->kind == K_SLUICE && i < r->writers + r->readers; i++) {
		if (s[i].c.total != written) {
			snprintf(res->why, sizeof(res->why), "%s got %" PRIu64 " frames of %"
				 PRIu64 " written", role_str(r, i, who, sizeof(who)),
				 s[i].c.total, written);
			return -EBADMSG;
		}
	}
	if (r->kind != K_SLUICE && taken != written) {
		snprintf(res->why, sizeof(res->why), "readers got %" PRIu64 " frames of %"
			 PRIu64 " written", taken, written);
		return -EBADMSG;
	}
	return 0;
}

/*
 * One measurement: make the ring, fork the processes, let them past the
 * gate, time the window, stop them, collect, clean up.
 */
static int chan_measure(enum chan_kind kind, unsigned int writers, unsigned int readers,
			unsigned int weak, struct chan_shared *sh, void *ring, const int cpu[2],
			unsigned int warm_ms, unsigned int window_ms, struct chan_result *res)
{
	struct chan_run r = {
		.kind = kind, .writers = writers, .readers = readers, .weak = weak,
		.sh = sh, .ring = ring, .cpu = { cpu[0], cpu[1] },
	};
	struct sluice_chan_info info;
	struct sluice_chan *ch = NULL;
	pid_t pid[PROCS_MAX] = { 0 };
	unsigned int i, n = writers + readers + weak, started = 0;
	uint64_t t0, t1 = 0, t2 = 0;
	double v0 = 0, iv0 = 0, v1 = 0, iv1 = 0;
	const char *what = "";
	char who[32];
	int err = 0, e;

	memset(sh, 0, sizeof(*sh));
	memset(res, 0, sizeof(*res));
	switch (kind) {
	case K_SLUICE:
		what = "sluice_region_create_anon";
		err = sluice_region_create_anon("sluice-bench", CHAN_REGION_SIZE, NULL, &r.region);
		if (err)
			break;
		what = "sluice_chan_create";
		err = sluice_chan_create(r.region, CHAN_NAME, CHAN_CAPACITY, SLUICE_CHAN_BLOCK,
					 NULL, &ch);
		break;
	case K_RTE:
		what = "rte_ring_init";
		err = peer_rte_mpmc.init(ring, RING_SLOTS);
		break;
	case K_CK:
		what = "ck_ring_init";
		err = peer_ck.init(ring, RING_SLOTS);
		break;
	}
	if (err) {
		snprintf(res->why, sizeof(res->why), "%s: %s", what, strerror(-err));
		goto out;
	}

	fflush(NULL);	/* the children must not print our buffered output again */
	for (i = 0; i < n; i++) {
		pid[i] = fork();
		if (pid[i] < 0) {
			err = -errno;
			pid[i] = 0;
			snprintf(res->why, sizeof(res->why), "fork: %s", strerror(-err));
			break;
		}
		if (!pid[i])
			chan_child(&r, i);
		started++;
	}
	if (!err) {
		err = chan_arrivals(sh, pid, n);
		if (err)
			snprintf(res->why, sizeof(res->why), "%s before the start",
				 err == -ECHILD ? "a process failed" : err == -EINTR ?
				 "interrupted" : "no start in time");
	}
	if (!err) {
		/* The parent is the last party: all start at once. */
		chan_gate_pass(&sh->gate, n + 1);
		t0 = bench_now_ns();
		sleep_until(t0 + warm_ms * 1000000ull);
		t1 = bench_now_ns();
		/* Relaxed, as the loads in peer_tick(): the phase only marks time. */
		atomic_store_explicit(&sh->ctl.phase, PEER_MEASURE, memory_order_relaxed);
		chan_csw(pid, n, &v0, &iv0);
		sleep_until(t1 + window_ms * 1000000ull);
		t2 = bench_now_ns();
		atomic_store_explicit(&sh->ctl.phase, PEER_STOP, memory_order_relaxed);
		chan_csw(pid, n, &v1, &iv1);
	}
	/* On an error none got past the gate, and would wait there for ever. */
	e = chan_reap(pid, started, bench_now_ns() +
		      (err ? 0 : STOP_TIMEOUT_MS * 1000000ull));
	if (!err && e) {
		err = e;
		snprintf(res->why, sizeof(res->why), "%s", e == -EINTR ? "interrupted" :
			 e == -ETIMEDOUT ? "processes still running 10 s after the stop flag, killed" :
			 "a process died");
	}
	/* A child's own words beat ours. */
	for (i = 0; i < started; i++) {
		if (sh->slot[i].why[0] && (err || sh->slot[i].err)) {
			snprintf(res->why, sizeof(res->why), "%s: %.150s",
				 role_str(&r, i, who, sizeof(who)), sh->slot[i].why);
			err = err ? err : sh->slot[i].err;
			break;
		}
	}
	if (err)
		goto out;
	if (bench_stop) {
		err = -EINTR;
		snprintf(res->why, sizeof(res->why), "interrupted");
		goto out;
	}
	err = chan_collect(&r, (double)(t2 - t1) / 1e9, res);
	res->csw_v = (v1 - v0) / ((double)(t2 - t1) / 1e9);
	res->csw_i = (iv1 - iv0) / ((double)(t2 - t1) / 1e9);
	if (ch && !sluice_chan_info(ch, &info))
		res->abandoned = info.abandoned;
out:
	if (ch) {
		e = sluice_chan_close(ch);
		if (e && !err) {
			err = e;
			snprintf(res->why, sizeof(res->why), "sluice_chan_close: %s", strerror(-e));
		}
	}
	if (r.region)
		sluice_region_destroy(r.region);
	return err;
}

/* ---------------------------------------------------------------- the suite */

/* What the measurements of one kind of cell add up to, over the counted reps. */
struct chan_tally {
	double csw_v, csw_i;
	unsigned int n;
	unsigned int stalled;		/* counted reps in which no frame went in */
	bool failed;
	uint64_t abandoned;
};

/* As bench_note_ratio(), with the ratio on deliveries after it. */
static void note_ratio2(struct bench_table *t, int row, int col, const char *what,
			const char *target, unsigned int readers)
{
	double r = bench_ratio(t, row, t->subject, col);
	double d = bench_ratio(t, row + 1, t->subject, col);

	if (readers == 1 || bench_skipped(t, col) || isnan(r) || isnan(d)) {
		bench_note_ratio(t, row, col, what, target);
		return;
	}
	bench_note(t, "%s: sluice %.2fx%s%s%s; on deliveries %.2fx, as each of sluice's %u "
		   "readers gets every frame", what, r, target ? " (target " : "",
		   target ? target : "", target ? ")" : "", d, readers);
}

static int shape_of(unsigned int w, unsigned int r)
{
	unsigned int i;

	for (i = 0; i < NSHAPES; i++)
		if (chan_shapes[i].writers == w && chan_shapes[i].readers == r)
			return (int)i;
	return -1;
}

/*
 * Say which cells had reps in which nothing went in (stalled for the whole
 * window: bench_ratio() skips such reps), a few to a note, since a table
 * holds BENCH_NOTES_MAX; and whether sluice abandoned slices (no writer
 * dies here, so it should not).
 */
static void note_stalls(struct bench_table *t, struct chan_tally (*tally)[SC_NR])
{
	char line[BENCH_TEXT_MAX], item[64];
	uint64_t abandoned = 0;
	size_t len = 0;
	unsigned int i, c;

	for (i = 0; i < NSHAPES; i++) {
		for (c = 0; c < SC_NR; c++) {
			const struct chan_tally *y = &tally[i][c];

			abandoned += y->abandoned;
			if (!y->stalled)
				continue;
			snprintf(item, sizeof(item), " %s %uw%ur %u of %u;", scale_cols[c],
				 chan_shapes[i].writers, chan_shapes[i].readers, y->stalled, y->n);
			if (len && len + strlen(item) >= sizeof(line)) {
				bench_note(t, "%s", line);
				len = 0;
			}
			if (!len)
				len = (size_t)snprintf(line, sizeof(line), "%s",
						       "reps with no frame in (ratios skip them):");
			len += (size_t)snprintf(line + len, sizeof(line) - len, "%s", item);
		}
	}
	if (len)
		bench_note(t, "%s", line);
	if (abandoned)
		bench_note(t, "sluice abandoned %" PRIu64 " bytes of slices (sluice_chan_info)",
			   abandoned);
}

/* The targets are on frames in, the same work for all three. */
static void note_targets(struct bench_table *t)
{
	static const struct {
		unsigned int w, r;
		const char *target;
	} tg[] = { { 1, 1, ">= 1.25x" }, { 2, 2, ">= 10x" }, { 4, 4, NULL } };
	char what[64];
	unsigned int i;
	int s;

	for (i = 0; i < SLUICE_ARRAY_SIZE(tg); i++) {
		s = shape_of(tg[i].w, tg[i].r);
		snprintf(what, sizeof(what), "%uw%ur frames in vs rte_ring MP/MC", tg[i].w, tg[i].r);
		note_ratio2(t, row_in((unsigned int)s), SC_RTE, what, tg[i].target, tg[i].r);
	}
}

int suite_chan(const struct bench_opts *o, struct bench_table *t)
{
	struct bench_table *ts = &t[CT_SCALE], *tw = &t[CT_WEAK];
	unsigned int warm_ms = o->quick ? QUICK_WARM_MS : WARM_MS;
	unsigned int window_ms = o->quick ? QUICK_WINDOW_MS : WINDOW_MS;
	struct chan_tally tally[NSHAPES][SC_NR], wtally[WC_NR];
	struct chan_result res;
	struct chan_shared *sh = NULL;
	size_t shlen, ring_off, ring_len, ck_len;
	unsigned int i, k, c, pass, npass;
	const struct chan_shape *sp;
	void *ring = NULL;
	int err = 0, e;

	memset(tally, 0, sizeof(tally));
	memset(wtally, 0, sizeof(wtally));
	bench_table_name(ts, "scaling");
	bench_table_name(tw, "weak reader");
	for (c = 0; c < SC_NR; c++)
		bench_table_col(ts, scale_cols[c]);
	for (c = 0; c < WC_NR; c++)
		bench_table_col(tw, weak_cols[c]);
	ts->subject = SC_SLUICE;
	tw->subject = WC_WEAK;
	ts->paired = tw->paired = true;	/* columns run back to back in each rep */
	for (i = 0; i < NSHAPES; i++) {
		sp = &chan_shapes[i];
		snprintf(scale_rows[i][0], sizeof(scale_rows[i][0]), "%uw %ur: frames in",
			 sp->writers, sp->readers);
		snprintf(scale_rows[i][1], sizeof(scale_rows[i][1]), "%uw %ur: deliveries",
			 sp->writers, sp->readers);
		bench_table_row(ts, scale_rows[i][0], "M/s", BENCH_HIGHER_BETTER);
		bench_table_row(ts, scale_rows[i][1], "M/s", BENCH_HIGHER_BETTER);
	}
	bench_table_row(tw, "writer: frames in", "M/s", BENCH_HIGHER_BETTER);
	bench_table_row(tw, "strong reader: deliveries", "M/s", BENCH_HIGHER_BETTER);
	bench_table_row(tw, "weak reader: frames read", "M/s", BENCH_HIGHER_BETTER);
	bench_table_row(tw, "weak reader: awake", "% of the time", BENCH_LOWER_BETTER);
	bench_table_row(tw, "weak reader: overruns", "/s", BENCH_LOWER_BETTER);
	bench_table_row(tw, "weak reader: skipped", "MB/s", BENCH_LOWER_BETTER);
	bench_title(ts, "64-byte frames in batches of 32, W writers and R readers, each a "
		    "process, on CPUs %d and %d; %u ms a rep, %u rep%s (+%u warm-up)",
		    o->pair[0], o->pair[1], window_ms, o->reps, o->reps == 1 ? "" : "s",
		    o->warmup);
	bench_title(tw, "1 writer on CPU %d and 1 strong reader on CPU %d, without and with "
		    "a weak reader; %u ms a rep, %u rep%s (+%u warm-up)", o->pair[0], o->pair[1],
		    window_ms, o->reps, o->reps == 1 ? "" : "s", o->warmup);

	if (o->pair[0] < 0) {
		for (c = 0; c < SC_NR; c++)
			bench_skip(ts, (int)c, "needs two CPUs, this process may use one");
		for (c = 0; c < WC_NR; c++)
			bench_skip(tw, (int)c, "needs two CPUs, this process may use one");
		return 0;
	}
	if (peer_rte_mpmc.missing)
		bench_skip(ts, SC_RTE, "%s", peer_rte_mpmc.missing);
	if (peer_ck.missing)
		bench_skip(ts, SC_CK, "%s", peer_ck.missing);

	/* The control block, then the rings, each from a line of its own. */
	ring_off = (sizeof(*sh) + 63) & ~(size_t)63;
	ring_len = bench_skipped(ts, SC_RTE) ? 0 : peer_rte_mpmc.size(RING_SLOTS);
	ck_len = bench_skipped(ts, SC_CK) ? 0 : peer_ck.size(RING_SLOTS);
	if (ck_len > ring_len)
		ring_len = ck_len;	/* one at a time: they share the space */
	shlen = ring_off + ring_len;
	sh = bench_shared_alloc(shlen);
	if (!sh) {
		errmsg("chan: cannot map %zu bytes of shared memory", shlen);
		return -ENOMEM;
	}
	if (ring_len)
		ring = (char *)sh + ring_off;

	npass = o->warmup + o->reps;
	for (pass = 0; pass < npass && !bench_stop; pass++) {
		bool counted = pass >= o->warmup;

		ts->discard = tw->discard = !counted;
		for (i = 0; i < NSHAPES && !bench_stop; i++) {
			sp = &chan_shapes[i];
			for (k = 0; k < SC_NR && !bench_stop; k++) {
				/* Alternate the order, so no peer always follows the same one. */
				c = pass % 2 ? SC_NR - 1 - k : k;
				if (bench_skipped(ts, (int)c) || tally[i][c].failed)
					continue;
				if (counted)
					bench_progress("chan: rep %u/%u, %uw%ur, %s", pass - o->warmup + 1,
						 o->reps, sp->writers, sp->readers, scale_cols[c]);
				else
					bench_progress("chan: warm-up %u/%u, %uw%ur, %s", pass + 1, o->warmup,
						 sp->writers, sp->readers, scale_cols[c]);
				e = chan_measure(c == SC_SLUICE ? K_SLUICE : c == SC_RTE ? K_RTE : K_CK,
						 sp->writers, sp->readers, 0, sh, ring, o->pair,
						 warm_ms, window_ms, &res);
				if (e) {
					if (bench_stop)
						break;
					tally[i][c].failed = true;
					bench_note(ts, "%s %uw%ur failed: %s", scale_cols[c],
						   sp->writers, sp->readers, res.why);
					err = e;
					continue;
				}
				bench_add(ts, row_in(i), (int)c, res.in_mps);
				bench_add(ts, row_out(i), (int)c, res.out_mps);
				if (counted) {
					tally[i][c].csw_v += res.csw_v;
					tally[i][c].csw_i += res.csw_i;
					tally[i][c].abandoned += res.abandoned;
					tally[i][c].stalled += res.in_mps == 0;
					tally[i][c].n++;
				}
			}
		}
		/* The weak reader's cost, both ways back to back. */
		for (k = 0; k < WC_NR && !bench_stop; k++) {
			c = pass % 2 ? WC_NR - 1 - k : k;
			if (wtally[c].failed)
				continue;
			bench_progress("chan: %s %u/%u, %s", counted ? "rep" : "warm-up",
				 counted ? pass - o->warmup + 1 : pass + 1,
				 counted ? o->reps : o->warmup, weak_cols[c]);
			e = chan_measure(K_SLUICE, 1, 1, c == WC_WEAK, sh, ring, o->pair, warm_ms,
					 window_ms, &res);
			if (e) {
				if (bench_stop)
					break;
				wtally[c].failed = true;
				bench_note(tw, "%s failed: %s", weak_cols[c], res.why);
				err = e;
				continue;
			}
			bench_add(tw, WR_IN, (int)c, res.in_mps);
			bench_add(tw, WR_OUT, (int)c, res.out_mps);
			if (c == WC_WEAK) {
				bench_add(tw, WR_WEAK, (int)c, res.weak_mps);
				bench_add(tw, WR_AWAKE, (int)c, 100 * res.weak_awake);
				bench_add(tw, WR_OVERRUN, (int)c, res.overruns_ps);
				bench_add(tw, WR_LOST, (int)c, res.lost_mbps);
			}
		}
	}
	ts->discard = tw->discard = false;
	bench_progress_done();
	bench_shared_free(sh, shlen);

	/* Scaling. */
	bench_note(ts, "writer i on CPU %d if i is even, else %d; reader j the other way "
		   "round: 1w1r is one process a CPU, 2w2r two (threads outnumber cores), "
		   "4w4r four", o->pair[0], o->pair[1]);
	bench_note(ts, "frames in: frames all writers put in a second; deliveries: frames all "
		   "readers took out a second: for sluice, which gives each of its R readers "
		   "every frame, R x frames in");
	bench_note(ts, "  a ring gives each frame to one reader: its deliveries are its frames "
		   "in, and frames in is the same work for all three");
	bench_note(ts, "sluice: strong writers and readers, sluice_chan_write_batch of 32, "
		   "read_batch of 32 iovs, blocking, default adaptive spin; %llu KiB channel",
		   CHAN_CAPACITY >> 10);
	if (!bench_skipped(ts, SC_RTE))
		bench_note(ts, "rte_ring: %s, flags 0 (MP/MC), mp_enqueue/mc_dequeue_burst_elem, "
			   "64 B elements, burst 32, %u slots; rte_pause() while full or empty",
			   peer_rte_mpmc.version(), RING_SLOTS);
	if (!bench_skipped(ts, SC_CK))
		bench_note(ts, "ck_ring %s: enqueue/dequeue_mpmc typed for a 64 B frame "
			   "(CK_RING_PROTOTYPE), copied in and out as rte_ring's; no burst call: "
			   "32 calls; %u slots", peer_ck.version(), RING_SLOTS);
	if (!bench_skipped(ts, SC_RTE) || !bench_skipped(ts, SC_CK))
		bench_note(ts, "the rings never sleep: past one process a CPU, a reader spinning "
			   "on an empty ring keeps the writer that shares its CPU off it, as in "
			   "any oversubscribed DPDK app");
	bench_note(ts, "a rep: all meet at a gate, run %u ms uncounted, then %u ms counted; "
		   "the writers stop on a flag, then the readers empty the ring", warm_ms,
		   window_ms);
	bench_note(ts, "checked: writer, sequence number and check word of every frame "
		   "(sluice: each reader gets each writer's frames consecutively; rings: in "
		   "order) and totals");
	note_targets(ts);
	i = (unsigned int)shape_of(4, 4);
	if (tally[i][SC_SLUICE].n) {
		char line[BENCH_TEXT_MAX], *p = line;
		size_t left = sizeof(line);
		int m;

		m = snprintf(p, left, "4w4r context switches a second, slept/preempted:");
		for (c = 0; c < SC_NR && m > 0 && (size_t)m < left; c++) {
			p += m;
			left -= (size_t)m;
			m = tally[i][c].n ?
			    snprintf(p, left, "%s %s %.0f/%.0f", c ? ";" : "", scale_cols[c],
				     tally[i][c].csw_v / tally[i][c].n,
				     tally[i][c].csw_i / tally[i][c].n) : 0;
		}
		bench_note(ts, "%s", line);
	}
	bench_note(ts, "cells: median of the reps ±half their range; ratios: median of the "
		   "reps' ratios (peers back to back, order alternating)");
	note_stalls(ts, tally);

	/* Weak reader. */
	bench_note(tw, "as 1w1r above; the weak reader joins the strong one on CPU %d",
		   o->pair[1]);
	bench_note(tw, "the weak reader wakes every %u ms, takes up to %u batches of 32 with "
		   "sluice_chan_try_read_batch, sleeps: on two CPUs one reading flat out would "
		   "measure CPU sharing", WEAK_PERIOD_NS / 1000000, WEAK_BATCHES);
	bench_note(tw, "awake: CPU time it took from the strong reader; overruns: its reads "
		   "that failed with -EOVERFLOW; skipped: sluice_chan_lost_total() over the window");
	bench_note(tw, "its frames are checked as the strong reader's, except that after an "
		   "overrun each writer's next frame may be any later one");
	{
		double r = bench_ratio(tw, WR_IN, WC_WEAK, WC_STRONG);

		if (isnan(r))
			bench_note(tw, "writer with a weak reader / without: no ratio (a cell is "
				   "empty)");
		else
			bench_note(tw, "writer's frames in with a weak reader / without: %.3f "
				   "(1 is no cost)", r);
	}
	bench_note(tw, "cells and ratios as above");
	return err;
}
