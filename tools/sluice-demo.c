// SPDX-License-Identifier: MIT
/*
 * sluice-demo: a small pipeline of processes through SPSC rings in one
 * region; what `make run` shows.
 *
 * 1. The parent creates a region on huge pages on its own NUMA node and
 *    says what it really got.
 * 2. Three processes pass 64-byte frames along a pipeline in it:
 *
 *	source --ring A--> stage --ring B--> sink (the parent)
 *
 *    The source numbers and checksums each frame and sends them 32 at a
 *    time.  The stage checks each frame, transforms it and moves it from a
 *    slot of A straight into a slot of B (peek, reserve, commit, release:
 *    no buffer in between).  The sink checks every frame against what it
 *    must be, and that the stream ends (-EPIPE) right after the last one.
 * 3. The stage then echoes 64-byte messages back over two more rings, and
 *    the parent times the round trips.
 * 4. A producer dies (kill -9) while the parent waits on its ring: with a
 *    liveness monitor, the parent reads what it sent and learns of its
 *    death at once, not at its 5 s deadline.  Timed, a few rounds.
 *
 * A child knows only the region's name: it opens the region by name and
 * finds its rings by their names.  Exit status 0 if every check passed,
 * 1 otherwise.
 */
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sluice.h>

#include "common/msg.h"

#define PROG		"sluice-demo"
#define REGION_SIZE	(2u << 20)	/* one huge page holds all four rings */
#define SLOTS		4096u		/* per pipeline ring: 256 KiB of frames */
#define NFRAMES		(4u << 20)
#define BATCH		32
#define ROUNDS		100000
#define WARMUP		1000		/* not counted: caches and waits settle */
#define STAGE_KEY	0x5a5a5a5a5a5a5a5aull
#define DEATHS		5		/* rounds of the liveness step */
#define LAST_WORDS	3		/* frames a doomed producer sends */

/* Ring names, the only thing besides the region's name a child is told. */
#define RING_A		"frames.raw"
#define RING_B		"frames.done"
#define RING_PING	"ping"
#define RING_PONG	"pong"

/* One cache line, one ring slot. */
struct frame {
	uint64_t seq;
	uint64_t payload[6];
	uint64_t csum;		/* of seq and payload */
};
_Static_assert(sizeof(struct frame) == 64, "a frame is one cache line");

struct demo {
	char name[SLUICE_REGION_NAME_MAX + 1];
	struct sluice_region *r;
	bool named;		/* the name still exists in the file system */
	int cpu[2];		/* cpu[0]: source, sink, pinger; cpu[1]: stage, echo */
	pid_t source, stage;
	/* The parent's ends: sink of B, pinger on ping and pong. */
	struct sluice_spsc *sink, *ping, *pong;
};

const char tool_name[] = PROG;

static const char *role;	/* in a child: "source" or "stage" */

/* Say what went wrong, and who; return -1. */
static int __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrmsg(role, fmt, ap);
	va_end(ap);
	return -1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------- frames */

/*
 * A Fletcher sum of the words: it sees every word and its place.  The seed
 * makes a slot of zeros, one never written, fail.
 */
static uint64_t frame_csum(const struct frame *f)
{
	uint64_t a = f->seq ^ 0x243f6a8885a308d3ull, b = a;
	int i;

	for (i = 0; i < 6; i++) {
		a += f->payload[i];
		b += a;
	}
	return a ^ (b << 1);
}

/* Frame @seq as the source makes it (@key 0) or the stage leaves it. */
static void frame_make(struct frame *f, uint64_t seq, uint64_t key)
{
	int i;

	f->seq = seq;
	for (i = 0; i < 6; i++)
		f->payload[i] = ((seq << 3) + (uint64_t)i) * 0x9e3779b97f4a7c15ull ^ key;
	f->csum = frame_csum(f);
}

/* The stage's work: a transformation the sink can check. */
static void frame_transform(struct frame *f)
{
	int i;

	for (i = 0; i < 6; i++)
		f->payload[i] ^= STAGE_KEY;
	f->csum = frame_csum(f);
}

/* What is wrong with @f, @len bytes, as frame number @seq; NULL if nothing. */
static const char *frame_fault(const struct frame *f, size_t len, uint64_t seq)
{
	if (len != sizeof(*f))
		return "wrong length";
	if (f->seq != seq)
		return "out of sequence";
	return f->csum != frame_csum(f) ? "bad checksum" : NULL;
}

/* ------------------------------------------------------------- processes */

static int pin(int cpu)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) ?
	       fail("cannot pin to CPU %d: %s", cpu, strerror(errno)) : 0;
}

static int node_of(int cpu)
{
	int node = numa_available() >= 0 ? numa_node_of_cpu(cpu) : 0;

	return node < 0 ? 0 : node;
}

/*
 * Two CPUs we may run on, on one node if possible so the rings are local
 * to both.  With one CPU, cpu[1] == cpu[0].
 */
static int pick_cpus(int cpu[2])
{
	cpu_set_t set;
	int c;

	if (sched_getaffinity(0, sizeof(set), &set))
		return fail("sched_getaffinity: %s", strerror(errno));
	cpu[0] = cpu[1] = -1;
	for (c = 0; c < CPU_SETSIZE; c++) {
		if (!CPU_ISSET(c, &set))
			continue;
		if (cpu[0] < 0)
			cpu[0] = c;
		else if (cpu[1] < 0 || (node_of(c) == node_of(cpu[0]) &&
					node_of(cpu[1]) != node_of(cpu[0])))
			cpu[1] = c;
	}
	if (cpu[1] < 0)
		cpu[1] = cpu[0];
	return 0;
}

/*
 * Waiting for the peer: spin when it has a core of its own (a futex wakeup
 * costs microseconds); with one CPU, sleep at once: spinning only keeps the
 * peer from running.
 */
static void spin_opts(const struct demo *d, struct sluice_spsc_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->spin_ns = d->cpu[0] != d->cpu[1] ? UINT32_MAX : 1;
}

/* A child's work once it has opened the region; @ready: write when attached. */
typedef int child_fn(struct demo *d, int ready);

static void say_ready(int ready)
{
	if (write(ready, "r", 1) != 1) {
		/* The parent is gone; our next ring call will say so. */
	}
	close(ready);
}

/*
 * Fork a child on @cpu that opens the region by name and runs @fn.  Return
 * once it has attached to its rings, so that the next child can find them
 * and the parent knows the name has done its job; or once it died trying.
 */
static int spawn(struct demo *d, const char *who, child_fn *fn, int cpu, pid_t *pid)
{
	struct sluice_region *r;
	int p[2], err, ret;
	ssize_t n;
	char c;

	if (pipe(p))
		return fail("pipe: %s", strerror(errno));
	fflush(NULL);	/* or the child would print what we buffered again */
	*pid = fork();
	if (*pid < 0) {
		close(p[0]);
		close(p[1]);
		return fail("fork: %s", strerror(errno));
	}
	if (!*pid) {
		close(p[0]);
		role = who;
		if (pin(cpu))
			_exit(1);
		/* Not the parent's handles: our own mapping, found by name. */
		d->sink = d->ping = d->pong = NULL;
		err = sluice_region_open(d->name, NULL, &r);
		if (err) {
			fail("open %s: %s", d->name, strerror(-err));
			_exit(1);
		}
		d->r = r;
		ret = fn(d, p[1]);
		sluice_region_close(r);
		_exit(ret ? 1 : 0);
	}
	close(p[1]);
	while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
		;
	close(p[0]);
	return n == 1 ? 0 : fail("the %s did not start", who);
}

/*
 * Wait for a child and judge how it ended.  @stop: we have failed, so end
 * it first if it still runs; one that died on its own still says how.
 */
static int reap(pid_t *pid, const char *who, bool stop)
{
	pid_t p = *pid;
	int status, sig;

	if (p <= 0)
		return 0;
	*pid = 0;
	if (stop)
		kill(p, SIGKILL);
	while (waitpid(p, &status, 0) < 0)
		if (errno != EINTR)
			return fail("waitpid: %s", strerror(errno));
	if (WIFEXITED(status))
		return WEXITSTATUS(status) ? -1 : 0;	/* it said why */
	sig = WTERMSIG(status);
	if (stop && sig == SIGKILL)
		return -1;				/* ours */
	return fail("the %s was killed by signal %d (%s)", who, sig, strsignal(sig));
}

/* ------------------------------------------------------------- the source */

/* Make frames 0 .. NFRAMES - 1 and send them BATCH at a time. */
static int produce(struct sluice_spsc *out)
{
	struct frame f[BATCH];
	struct iovec iov[BATCH];
	uint64_t seq;
	int i, k, n;

	for (i = 0; i < BATCH; i++)
		iov[i] = (struct iovec){ .iov_base = &f[i], .iov_len = sizeof(f[i]) };
	for (seq = 0; seq < NFRAMES; seq += (uint64_t)n) {
		k = NFRAMES - seq < BATCH ? (int)(NFRAMES - seq) : BATCH;
		for (i = 0; i < k; i++)
			frame_make(&f[i], seq + (uint64_t)i, 0);
		/* One index store per batch; fewer than k sent: the rest go again. */
		n = sluice_spsc_send_batch(out, iov, (unsigned int)k);
		if (n < 0)
			return fail("send: %s", strerror(-n));
	}
	return 0;
}

static int source_main(struct demo *d, int ready)
{
	struct sluice_spsc *out;
	int err;

	err = sluice_spsc_create(d->r, RING_A, SLOTS, sizeof(struct frame),
				 SLUICE_SPSC_PRODUCER, NULL, &out);
	if (err)
		return fail("create ring %s: %s", RING_A, strerror(-err));
	say_ready(ready);
	err = produce(out);
	/* Closing is what ends the stream: the stage reads all, then -EPIPE. */
	sluice_spsc_close(out);
	return err;
}

/* ------------------------------------------------------------- the stage */

/*
 * Move frames from @in to @out in place until the source closes @in.  The
 * slots of @in are the source's memory: each frame is copied out once, and
 * only the copy is checked and used.
 */
static int forward(struct sluice_spsc *in, struct sluice_spsc *out)
{
	struct iovec src[BATCH], dst[BATCH];
	const char *why;
	struct frame f;
	uint64_t seq = 0;
	int i, n, k;

	for (;;) {
		n = sluice_spsc_peek(in, src, BATCH);
		if (n == -EPIPE)
			break;		/* the source closed; we have read it all */
		if (n < 0)
			return fail("peek: %s", strerror(-n));
		k = sluice_spsc_reserve(out, dst, (unsigned int)n);
		if (k < 0)
			return fail("reserve: %s", strerror(-k));
		for (i = 0; i < k; i++, seq++) {
			memcpy(&f, src[i].iov_base, sizeof(f));
			why = frame_fault(&f, src[i].iov_len, seq);
			if (why)
				return fail("frame %llu: %s",
					    (unsigned long long)seq, why);
			frame_transform(&f);
			memcpy(dst[i].iov_base, &f, sizeof(f));
			dst[i].iov_len = sizeof(f);
		}
		/*
		 * B before A: should we die in between, a frame goes twice
		 * rather than never.  Slots peeked but not released (B had
		 * less room) come back at the next peek.
		 */
		if (sluice_spsc_commit(out, dst, (unsigned int)k) != k ||
		    sluice_spsc_release(in, (unsigned int)k) != k)
			return fail("commit or release refused");
	}
	return seq == NFRAMES ? 0 :
	       fail("the stream ended after %llu frames of %u",
		    (unsigned long long)seq, NFRAMES);
}

/* Send back every message on @in until the pinger closes it. */
static int echo(struct sluice_spsc *in, struct sluice_spsc *out)
{
	struct frame m;
	int n, err;

	while ((n = sluice_spsc_recv(in, &m, sizeof(m))) >= 0) {
		err = sluice_spsc_send(out, &m, (size_t)n);
		if (err)
			return fail("send %s: %s", RING_PONG, strerror(-err));
	}
	return n == -EPIPE ? 0 : fail("recv %s: %s", RING_PING, strerror(-n));
}

static int stage_main(struct demo *d, int ready)
{
	struct sluice_spsc *in = NULL, *out = NULL, *ping = NULL, *pong = NULL;
	struct sluice_spsc_opts spin;
	int err;

	spin_opts(d, &spin);
	err = sluice_spsc_attach(d->r, RING_A, SLUICE_SPSC_CONSUMER, NULL, &in);
	if (!err)
		err = sluice_spsc_attach(d->r, RING_B, SLUICE_SPSC_PRODUCER, NULL, &out);
	if (!err)
		err = sluice_spsc_attach(d->r, RING_PING, SLUICE_SPSC_CONSUMER,
					 &spin, &ping);
	if (!err)
		err = sluice_spsc_attach(d->r, RING_PONG, SLUICE_SPSC_PRODUCER,
					 &spin, &pong);
	if (err) {
		fail("attach: %s", strerror(-err));
		goto out;
	}
	say_ready(ready);
	err = forward(in, out);
	sluice_spsc_close(out);		/* end of stream for the sink */
	out = NULL;
	if (!err)
		err = echo(ping, pong);
out:
	sluice_spsc_close(pong);
	sluice_spsc_close(ping);
	sluice_spsc_close(out);
	sluice_spsc_close(in);
	return err ? -1 : 0;
}

/* ------------------------------------------------------------- the parent */

/* Why the region is not on huge pages, in this domain's words. */
static const char *fallback_why(int err)
{
	switch (err) {
	case -ENOENT:
		return "no hugetlbfs mount";
	case -ENOMEM:
		return "too few free on the node";
	default:
		return strerror(-err);
	}
}

static int region_create(struct demo *d)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_PREFER_HUGE,
		    .flags = SLUICE_REGION_NODE, .node = node_of(d->cpu[0]));
	struct sluice_region_info info = { .sz = sizeof(info) };
	size_t ps;
	int err;

	snprintf(d->name, sizeof(d->name), PROG ".%d", (int)getpid());
	err = sluice_region_create(d->name, REGION_SIZE, &opts, &d->r);
	if (err)
		return fail("create region %s: %s", d->name, strerror(-err));
	d->named = true;
	sluice_region_info(d->r, &info);
	ps = info.page_size;

	printf(PROG ": region %s, %llu MiB\n", info.name,
	       (unsigned long long)info.size >> 20);
	printf("  backing    %s, %zu %s pages (asked %s)\n",
	       sluice_backing_str(info.backing), ps >> 20 ? ps >> 20 : ps >> 10,
	       ps >> 20 ? "MiB" : "KiB", sluice_pages_str(info.pages));
	printf("  node       %d requested (that of CPU %d), %d verified\n",
	       info.node_requested, d->cpu[0], info.node);
	if (info.huge_fallback_err)
		printf("  fallback   no huge pages (%s), so %s\n",
		       fallback_why(info.huge_fallback_err),
		       sluice_backing_str(info.backing));
	else
		printf("  fallback   none, got what was asked\n");
	return 0;
}

/* The parent's ends of the rings, made before any child looks for them. */
static int rings_create(struct demo *d)
{
	struct sluice_spsc_opts spin;
	int err;

	spin_opts(d, &spin);
	err = sluice_spsc_create(d->r, RING_B, SLOTS, sizeof(struct frame),
				 SLUICE_SPSC_CONSUMER, NULL, &d->sink);
	if (!err)
		err = sluice_spsc_create(d->r, RING_PING, 64, sizeof(struct frame),
					 SLUICE_SPSC_PRODUCER, &spin, &d->ping);
	if (!err)
		err = sluice_spsc_create(d->r, RING_PONG, 64, sizeof(struct frame),
					 SLUICE_SPSC_CONSUMER, &spin, &d->pong);
	return err ? fail("create rings: %s", strerror(-err)) : 0;
}

/*
 * Start the children, then drop the region's name: it was only how they
 * found the region.  Nothing is left behind from here on, whatever happens
 * to us, even kill -9; the memory goes with the last process that maps it.
 */
static int children_start(struct demo *d)
{
	int err;

	/* Two cores, three processes: source and sink run in turns. */
	if (d->cpu[0] != d->cpu[1])
		printf("  cpus       CPU %d: source and sink, in turns; CPU %d: stage, "
		       "later echo\n", d->cpu[0], d->cpu[1]);
	else
		printf("  cpus       CPU %d only: all in turns\n", d->cpu[0]);
	if (spawn(d, "source", source_main, d->cpu[0], &d->source) ||
	    spawn(d, "stage", stage_main, d->cpu[1], &d->stage))
		return -1;
	err = sluice_region_unlink(d->name);
	if (err)
		return fail("unlink %s: %s", d->name, strerror(-err));
	d->named = false;
	return 0;
}

/*
 * Take every frame from the stage, check it, time the stream from when the
 * pipeline is complete (the source may be up to a ring ahead: 0.1%).
 */
static int sink(struct demo *d)
{
	struct frame f[BATCH], want;
	struct iovec iov[BATCH];
	uint64_t seq = 0, t = now_ns();
	const char *why;
	double s;
	int i, n;

	for (;;) {
		for (i = 0; i < BATCH; i++)
			iov[i] = (struct iovec){ .iov_base = &f[i], .iov_len = sizeof(f[i]) };
		n = sluice_spsc_recv_batch(d->sink, iov, BATCH);
		if (n == -EPIPE)
			break;		/* the stage closed; we have read it all */
		if (n < 0)
			return fail("sink: recv: %s", strerror(-n));
		for (i = 0; i < n; i++, seq++) {
			/* Intact, and exactly what source and stage made of it. */
			frame_make(&want, seq, STAGE_KEY);
			why = frame_fault(&f[i], iov[i].iov_len, seq);
			if (!why && memcmp(&f[i], &want, sizeof(want)))
				why = "not what the stage should have made";
			if (why)
				return fail("sink: frame %llu: %s",
					    (unsigned long long)seq, why);
		}
	}
	s = (double)(now_ns() - t) / 1e9;
	if (seq != NFRAMES)
		return fail("sink: the stream ended after %llu frames of %u",
			    (unsigned long long)seq, NFRAMES);

	printf("  pipeline   source -> %s -> stage -> %s -> sink, rings of %u x 64 B\n",
	       RING_A, RING_B, SLOTS);
	printf("  source     %u frames (sequence, payload, checksum), send_batch of %d\n",
	       NFRAMES, BATCH);
	printf("  stage      checks and transforms each, slot to slot: peek, reserve, commit\n");
	printf("  sink       every frame checked, count exact, then end of stream (-EPIPE)\n");
	printf("  stream     %.1f Mpps, %.2f GB/s of frames (%.0f ms)\n",
	       NFRAMES / s / 1e6, NFRAMES * sizeof(struct frame) / s / 1e9, s * 1e3);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Round trips of one frame to the stage and back. */
static int pingpong(struct demo *d)
{
	static uint64_t lat[ROUNDS];
	struct frame m = { 0 }, back;
	uint64_t t;
	int i, n, err;

	for (i = 0; i < WARMUP + ROUNDS; i++) {
		m.seq = (uint64_t)i;
		t = now_ns();
		err = sluice_spsc_send(d->ping, &m, sizeof(m));
		n = err ? err : sluice_spsc_recv(d->pong, &back, sizeof(back));
		t = now_ns() - t;
		if (n < 0)
			return fail("ping-pong: %s", strerror(-n));
		if (n != sizeof(back) || back.seq != m.seq)
			return fail("ping-pong: round %d came back wrong", i);
		if (i >= WARMUP)
			lat[i - WARMUP] = t;
	}
	sluice_spsc_close(d->ping);	/* the echo ends */
	d->ping = NULL;
	if (reap(&d->stage, "stage", false))
		return -1;

	qsort(lat, ROUNDS, sizeof(lat[0]), cmp_u64);
	printf("  ping-pong  64 B over %s and %s, CPU %d <-> CPU %d, %s\n",
	       RING_PING, RING_PONG, d->cpu[0], d->cpu[1],
	       d->cpu[0] != d->cpu[1] ? "spinning" : "sleeping");
	printf("  round trip median %llu ns, p99 %llu ns (%d rounds)\n",
	       (unsigned long long)lat[ROUNDS / 2],
	       (unsigned long long)lat[ROUNDS * 99 / 100], ROUNDS);
	return 0;
}

/* ------------------------------------------------------------- a death */

/*
 * A producer that sends its last words, says when it dies (in @when,
 * shared with the parent), and is killed.  Forked, it uses the parent's
 * region handle: a region handle follows its process across fork.
 */
static void doomed(struct demo *d, const char *ring, volatile uint64_t *when)
{
	struct sluice_spsc *p;
	struct frame f;
	int i, err;

	role = "doomed producer";
	err = sluice_spsc_attach(d->r, ring, SLUICE_SPSC_PRODUCER, NULL, &p);
	if (err) {
		fail("attach %s: %s", ring, strerror(-err));
		_exit(1);
	}
	for (i = 0; i < LAST_WORDS; i++) {
		frame_make(&f, (uint64_t)i, 0);
		if (sluice_spsc_send(p, &f, sizeof(f)))
			_exit(1);
	}
	usleep(20000);		/* so the parent is asleep in recv by now */
	*when = now_ns();
	kill(getpid(), SIGKILL);
	_exit(1);
}

/* One round: a ring, a doomed producer, and how long its death took to see. */
static int death_round(struct demo *d, struct sluice_liveness *m, int round,
		       volatile uint64_t *when, uint64_t *took)
{
	SLUICE_OPTS(sluice_spsc_opts, opts, .liveness = m);
	struct sluice_spsc *in;
	char ring[32];
	struct frame f;
	const char *why;
	int err, n, status, got = 0;
	pid_t pid;

	snprintf(ring, sizeof(ring), "last.words.%d", round);
	err = sluice_spsc_create(d->r, ring, 64, sizeof(f), SLUICE_SPSC_CONSUMER,
				 &opts, &in);
	if (err)
		return fail("create ring %s: %s", ring, strerror(-err));
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		sluice_spsc_close(in);
		return fail("fork: %s", strerror(errno));
	}
	if (!pid)
		doomed(d, ring, when);
	/* Its last words first, then end of stream (-EPIPE) when it dies. */
	while ((n = sluice_spsc_recv(in, &f, sizeof(f))) >= 0) {
		why = frame_fault(&f, (size_t)n, (uint64_t)got);
		if (why) {
			n = -EBADMSG;
			break;
		}
		got++;
	}
	*took = now_ns() - *when;
	sluice_spsc_close(in);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		return fail("the doomed producer did not get to die");
	if (n != -EPIPE || got != LAST_WORDS)
		return fail("%s: %d of %d frames, then %s (want -EPIPE)", ring, got,
			    LAST_WORDS, strerror(-n));
	return 0;
}

/* Kill producers while the parent waits on them, and time the news. */
static int deaths(struct demo *d)
{
	uint64_t took[DEATHS], *when;
	struct sluice_liveness *m;
	int i, err, ret = 0;

	err = sluice_liveness_create(NULL, &m);
	if (err)
		return fail("liveness monitor: %s", strerror(-err));
	when = mmap(NULL, sizeof(*when), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (when == MAP_FAILED) {
		sluice_liveness_destroy(m);
		return fail("mmap: %s", strerror(errno));
	}
	for (i = 0; i < DEATHS && !ret; i++)
		ret = death_round(d, m, i, when, &took[i]);
	if (!ret) {
		qsort(took, DEATHS, sizeof(took[0]), cmp_u64);
		printf("  liveness   a producer killed while the sink waits: its %d frames "
		       "read, then -EPIPE\n", LAST_WORDS);
		printf("  death seen median %llu us after kill, worst %llu us (%d rounds, "
		       "%s backend%s%s)\n",
		       (unsigned long long)took[DEATHS / 2] / 1000,
		       (unsigned long long)took[DEATHS - 1] / 1000, DEATHS,
		       sluice_liveness_backend_str(sluice_liveness_backend(m)),
		       *sluice_liveness_why(m) ? ": " : "", sluice_liveness_why(m));
	}
	munmap((void *)when, sizeof(*when));
	sluice_liveness_destroy(m);
	return ret;
}

int main(void)
{
	struct demo d = { 0 };
	int ret = -1, err;

	setvbuf(stdout, NULL, _IOLBF, 0);	/* keep our lines in order with stderr */
	if (!pick_cpus(d.cpu) && !pin(d.cpu[0]) && !region_create(&d) &&
	    !rings_create(&d) && !children_start(&d) && !sink(&d) &&
	    !reap(&d.source, "source", false) && !pingpong(&d) && !deaths(&d))
		ret = 0;

	/* On failure, children still running are stopped before we go. */
	if (reap(&d.source, "source", ret))
		ret = -1;
	if (reap(&d.stage, "stage", ret))
		ret = -1;
	sluice_spsc_close(d.sink);
	sluice_spsc_close(d.ping);
	sluice_spsc_close(d.pong);
	if (d.named) {
		err = sluice_region_destroy(d.r);
		if (err)
			ret = fail("destroy %s: %s", d.name, strerror(-err));
	} else {
		sluice_region_close(d.r);
	}
	printf("%s\n", ret ? PROG ": FAILED" : "ok");
	return ret ? 1 : 0;
}
