// SPDX-License-Identifier: MIT
/*
 * sluice-bench's spsc suite: SPSC rings against their peers, in two
 * processes pinned to two CPUs (--cpus, default the first two allowed):
 * one run, every peer, the ratios.  Three tables:
 *
 *   throughput  64-byte packets from a producer to a consumer, one per call
 *               and 32 per call: sluice, rte_ring (burst 1 and 32), a pipe,
 *               a Unix SOCK_SEQPACKET socket (one per call only).
 *   spinning    a 64-byte ping-pong over two rings that never sleep, against
 *               two cache lines bouncing between the same CPUs: the floor.
 *   blocking    the same ping-pong with sluice's spin budget at 1 ns, so
 *               that it sleeps on its futex almost at once, against a bare
 *               futex ping-pong (the floor for sleeping), a pipe pair and a
 *               Unix socket pair.  A note counts how often sluice really
 *               slept: the futex wakes its rings recorded.
 *
 * Every measurement forks two fresh processes (bench_pair_run()); they meet
 * at a gate in shared memory, then the consumer (throughput) or the pinging
 * side (latency) takes the time.  Throughput counts are calibrated once per
 * mode so that a rep takes about 200 ms; each latency rep times every round
 * trip alone with bench_ticks() and keeps its median and 99th percentile.
 * Peers interleave within a rep, in alternating order, so that a noisy
 * neighbour hits them all alike.  Packets carry their number and the
 * receiver checks the order: a benchmark that lost packets would be fast.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <sluice.h>

#include "bench.h"
#include "internal.h"
#include "introspect.h"
#include "peers.h"

#define PKT			64	/* bytes per packet */
#define BATCH			32	/* packets per call in the batched row */
#define SLOTS			1024	/* ring slots; a pipe's 64 KiB hold as many */
#define SPSC_REGION_SIZE	(1u << 20)
#define TPUT_CAL_PACKETS	(1u << 17)
#define TPUT_MIN_PACKETS	(BATCH * 1024u)
#define TPUT_MAX_PACKETS	(1u << 30)
#define TPUT_TARGET_MS		200
#define TPUT_QUICK_MS		50
#define PAIR_TIMEOUT_MS		60000

enum spsc_table { ST_TPUT, ST_SPIN, ST_BLOCK, ST_NR };
/* Columns and rows of each table; sluice is column 0 and the subject. */
enum { TC_SLUICE, TC_RTE, TC_PIPE, TC_SOCK, TC_NR };
enum { TR_ONE, TR_BATCH, TR_NR };
enum { SC_SLUICE, SC_LINE, SC_NR };
enum { BC_SLUICE, BC_FUTEX, BC_PIPE, BC_SOCK, BC_NR };
enum { LR_MEDIAN, LR_P99, LR_NR };

static const char *const spsc_names[ST_NR] = {
	[ST_TPUT] = "throughput", [ST_SPIN] = "latency, spinning",
	[ST_BLOCK] = "latency, blocking",
};
static const char *const spsc_cols[ST_NR][TC_NR] = {
	[ST_TPUT] = { "sluice", "rte_ring", "pipe", "unix sock" },
	[ST_SPIN] = { "sluice", "cache line" },
	[ST_BLOCK] = { "sluice", "futex", "pipe", "unix sock" },
};
static const unsigned int spsc_ncols[ST_NR] = { TC_NR, SC_NR, BC_NR };

/* What the two children of one measurement share, zeroed before each. */
struct spsc_shared {
	struct bench_gate gate;
	_Alignas(64) _Atomic uint32_t ready;	/* sides whose ring exists, a bit each */
	/* The floors: each word on its own line, written by one side. */
	struct { _Alignas(64) _Atomic uint64_t w; } line[2];
	struct { _Alignas(64) _Atomic uint32_t w; } fx[2];
	/* Results, each written by one child. */
	_Alignas(64) uint64_t ns;		/* consumer: first gate to last packet */
	uint64_t bad;				/* consumer: packets out of sequence */
	double median_ns, p99_ns;		/* pinging side: round trips */
	uint64_t wakes;				/* sluice: futex wakes, both rings */
	char why[2][BENCH_TEXT_MAX];		/* what went wrong, per side */
};

struct spsc_run;

enum spsc_kind { K_SLUICE, K_RTE, K_PIPE, K_SOCK, K_LINE, K_FUTEX };

struct spsc_mode {
	const char *label;		/* for progress and failures */
	enum spsc_table table;
	int col;
	int row;			/* throughput row; latency fills both */
	enum spsc_kind kind;
	unsigned int burst;		/* packets per call (throughput) */
	uint32_t spin_ns;		/* sluice's spin budget (latency) */
	int (*side)(struct spsc_run *r, int side);
};

/* One measurement: the parent's, copied into both children. */
struct spsc_run {
	const struct spsc_mode *m;
	struct spsc_shared *sh;
	void *rte;			/* the rte_ring, in shared memory */
	struct sluice_region *region;	/* sluice's rings, made by the children */
	int fd[4];			/* pipes: 0 -> 1 and 2 -> 3; socket: 0, 1 */
	uint64_t packets;		/* throughput */
	unsigned int samples, warm;	/* latency: timed and untimed round trips */
};

static int __attribute__((format(printf, 4, 5)))
child_fail(struct spsc_run *r, int side, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->sh->why[side], sizeof(r->sh->why[side]), fmt, ap);
	va_end(ap);
	return err;
}

static inline void pkt_number(unsigned char *pkt, uint64_t seq)
{
	memcpy(pkt, &seq, sizeof(seq));
}

static inline bool pkt_is(const unsigned char *pkt, uint64_t seq)
{
	uint64_t v;

	memcpy(&v, pkt, sizeof(v));
	return v == seq;
}

/* ---------------------------------------------------------------- throughput */

/*
 * The blocking calls users make, with the default adaptive spin; send and
 * recv are the inline fast path of spsc.h, the batches are out of line.
 */
static int sluice_produce(struct sluice_spsc *q, uint64_t n, unsigned int burst)
{
	_Alignas(64) unsigned char pkt[BATCH][PKT] = { { 0 } };
	struct iovec iov[BATCH];
	unsigned int j, k;
	uint64_t i;
	int ret;

	if (burst == 1) {
		for (i = 0; i < n; i++) {
			pkt_number(pkt[0], i);
			ret = sluice_spsc_send(q, pkt[0], PKT);
			if (ret)
				return ret;
		}
		return 0;
	}
	/* send_batch only reads the iovecs: made once, as an application would. */
	for (j = 0; j < BATCH; j++) {
		iov[j].iov_base = pkt[j];
		iov[j].iov_len = PKT;
	}
	for (i = 0; i < n; i += k) {
		k = n - i < BATCH ? (unsigned int)(n - i) : BATCH;
		for (j = 0; j < k; j++)
			pkt_number(pkt[j], i + j);
		ret = sluice_spsc_send_batch(q, iov, k);
		if (ret != (int)k)
			return ret < 0 ? ret : -EIO;
	}
	return 0;
}

static int sluice_consume(struct sluice_spsc *q, uint64_t n, unsigned int burst,
			  uint64_t *bad)
{
	_Alignas(64) unsigned char pkt[BATCH][PKT];
	struct iovec iov[BATCH];
	uint64_t i, wrong = 0;
	unsigned int j, k;
	int ret = 0;

	if (burst == 1) {
		for (i = 0; i < n; i++) {
			ret = sluice_spsc_recv(q, pkt[0], PKT);
			if (ret < 0)
				break;
			wrong += ret != PKT || !pkt_is(pkt[0], i);
		}
	} else {
		for (j = 0; j < BATCH; j++)
			iov[j].iov_base = pkt[j];
		for (i = 0; i < n; i += (unsigned int)ret) {
			k = n - i < BATCH ? (unsigned int)(n - i) : BATCH;
			/* recv_batch leaves each packet's length in iov_len. */
			for (j = 0; j < k; j++)
				iov[j].iov_len = PKT;
			ret = sluice_spsc_recv_batch(q, iov, k);
			if (ret < 0)
				break;
			for (j = 0; j < (unsigned int)ret; j++)
				wrong += iov[j].iov_len != PKT || !pkt_is(pkt[j], i + j);
		}
	}
	*bad = wrong;
	return ret < 0 ? ret : 0;
}

/*
 * Both children map the parent's region on their own, as two unrelated
 * processes would (sluice_region_open_fd): a handle inherited through fork
 * shares its open file description, and with it the directory's flock, so
 * two children creating rings through it at once would race.
 *
 * Side 0 makes the ring "ping" (its producer) and, for a ping-pong, side 1
 * makes "pong"; each then attaches to the other's ring as its consumer.
 */
static int sluice_open(struct spsc_run *r, int side, uint32_t spin_ns,
		       struct sluice_region **reg, struct sluice_spsc **tx,
		       struct sluice_spsc **rx)
{
	SLUICE_OPTS(sluice_spsc_opts, opts, .spin_ns = spin_ns);
	static const char *const names[2] = { "ping", "pong" };
	struct spsc_shared *sh = r->sh;
	bool both = r->m->table != ST_TPUT;	/* a ring each way */
	uint32_t want = both ? 3 : 1;
	int err;

	*tx = *rx = NULL;
	err = sluice_region_open_fd(sluice_region_fd(r->region), NULL, reg);
	if (err)
		return child_fail(r, side, err, "sluice_region_open_fd: %s", strerror(-err));
	if (both || side == 0) {
		err = sluice_spsc_create(*reg, names[side], SLOTS, PKT,
					 SLUICE_SPSC_PRODUCER, &opts, tx);
		if (err) {
			child_fail(r, side, err, "sluice_spsc_create: %s", strerror(-err));
			goto err_close;
		}
		/* Pairs with the acquire below: the ring is named and built. */
		atomic_fetch_or_explicit(&sh->ready, 1u << side, memory_order_release);
	}
	if (!both && side == 0)
		return 0;
	while ((atomic_load_explicit(&sh->ready, memory_order_acquire) & want) != want)
		bench_cpu_relax();
	err = sluice_spsc_attach(*reg, names[both ? !side : 0], SLUICE_SPSC_CONSUMER,
				 &opts, rx);
	if (err) {
		child_fail(r, side, err, "sluice_spsc_attach: %s", strerror(-err));
		goto err_close;
	}
	return 0;

err_close:
	sluice_spsc_close(*tx);
	*tx = NULL;
	sluice_region_close(*reg);
	*reg = NULL;
	return err;
}

static void sluice_shut(struct sluice_region *reg, struct sluice_spsc *tx,
			struct sluice_spsc *rx)
{
	sluice_spsc_close(tx);
	sluice_spsc_close(rx);
	sluice_region_close(reg);
}

static int tput_sluice(struct spsc_run *r, int side)
{
	struct sluice_region *reg;
	struct sluice_spsc *tx, *rx;
	uint64_t t0;
	int err;

	err = sluice_open(r, side, 0, &reg, &tx, &rx);
	if (err)
		return err;
	bench_gate_pass(&r->sh->gate, 2);
	if (side == 0) {
		err = sluice_produce(tx, r->packets, r->m->burst);
		if (err)
			child_fail(r, side, err, "sending: %s", strerror(-err));
	} else {
		t0 = bench_now_ns();
		err = sluice_consume(rx, r->packets, r->m->burst, &r->sh->bad);
		r->sh->ns = bench_now_ns() - t0;
		if (err)
			child_fail(r, side, err, "receiving: %s", strerror(-err));
		/* Sleeps, as in lat_sluice(); the producer is done by now. */
		r->sh->wakes = sluice__spsc_wakes(rx);
	}
	sluice_shut(reg, tx, rx);
	return err;
}

static int tput_rte(struct spsc_run *r, int side)
{
	uint64_t t0;
	int err;

	bench_gate_pass(&r->sh->gate, 2);
	if (side == 0)
		return peer_rte_spsc.produce(r->rte, r->packets, r->m->burst);
	t0 = bench_now_ns();
	err = peer_rte_spsc.consume(r->rte, r->packets, r->m->burst, &r->sh->bad);
	r->sh->ns = bench_now_ns() - t0;
	return err;
}

/* A pipe: one packet per write and read, or a batch of them in one. */
static int tput_pipe(struct spsc_run *r, int side)
{
	_Alignas(64) unsigned char pkt[BATCH][PKT] = { { 0 } };
	unsigned int burst = r->m->burst, j;
	uint64_t i, t0 = 0, wrong = 0;
	int err = 0;

	bench_gate_pass(&r->sh->gate, 2);
	if (side == 1)
		t0 = bench_now_ns();
	for (i = 0; i < r->packets && !err; i += burst) {
		if (side == 0) {
			for (j = 0; j < burst; j++)
				pkt_number(pkt[j], i + j);
			err = bench_fd_io(r->fd[1], pkt, burst * PKT, true);
		} else {
			err = bench_fd_io(r->fd[0], pkt, burst * PKT, false);
			for (j = 0; j < burst; j++)
				wrong += !pkt_is(pkt[j], i + j);
		}
	}
	if (side == 1) {
		r->sh->ns = bench_now_ns() - t0;
		r->sh->bad = wrong;
	}
	if (err)
		child_fail(r, side, err, "%s: %s", side ? "read" : "write", strerror(-err));
	return err;
}

/* A Unix SOCK_SEQPACKET socket pair: one packet per send and recv. */
static int tput_sock(struct spsc_run *r, int side)
{
	_Alignas(64) unsigned char pkt[PKT] = { 0 };
	uint64_t i, t0 = 0, wrong = 0;
	ssize_t n;

	bench_gate_pass(&r->sh->gate, 2);
	if (side == 1)
		t0 = bench_now_ns();
	for (i = 0; i < r->packets; i++) {
		if (side == 0) {
			pkt_number(pkt, i);
			n = send(r->fd[0], pkt, PKT, MSG_NOSIGNAL);
		} else {
			n = recv(r->fd[1], pkt, PKT, 0);
			wrong += n == PKT && !pkt_is(pkt, i);
		}
		if (n == PKT)
			continue;
		if (n < 0 && errno == EINTR) {
			i--;
			continue;
		}
		return child_fail(r, side, n < 0 ? -errno : -EIO, "%s: %s",
				  side ? "recv" : "send", n < 0 ? strerror(errno) : "short");
	}
	if (side == 1) {
		r->sh->ns = bench_now_ns() - t0;
		r->sh->bad = wrong;
	}
	return 0;
}

/* ---------------------------------------------------------------- latency */

/*
 * A ping-pong: side 0 pings and waits for the pong, side 1 answers.  A
 * peer gives both halves of one round trip as inline functions, which
 * lat_run() inlines into its loops; @i numbers the round trip.
 */
typedef int (*lat_fn)(void *ctx, uint64_t i);

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static inline __attribute__((always_inline)) int
lat_run(struct spsc_run *r, int side, lat_fn ping, lat_fn pong, void *ctx)
{
	struct spsc_shared *sh = r->sh;
	uint64_t i, n = r->samples, total = r->warm + n, prev, now, *s;
	size_t rank;
	int err = 0;

	if (side == 1) {
		bench_gate_pass(&sh->gate, 2);
		for (i = 0; i < total && !err; i++)
			err = pong(ctx, i);
		return err;
	}
	s = malloc(n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	memset(s, 0, n * sizeof(*s));	/* no page faults while timing */
	bench_gate_pass(&sh->gate, 2);
	for (i = 0; i < r->warm && !err; i++)
		err = ping(ctx, i);
	/* Back to back: a round trip ends when the next begins. */
	prev = bench_ticks();
	for (; i < total && !err; i++) {
		err = ping(ctx, i);
		now = bench_ticks();
		s[i - r->warm] = now - prev;
		prev = now;
	}
	if (!err) {
		qsort(s, n, sizeof(*s), cmp_u64);
		sh->median_ns = bench_ticks_ns(n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2);
		rank = (size_t)ceil(0.99 * (double)n);	/* nearest rank */
		sh->p99_ns = bench_ticks_ns(s[rank ? rank - 1 : 0]);
	}
	free(s);
	return err;
}

/* Two atomic words on their own lines: one line transfer each way. */
static inline int line_ping(void *ctx, uint64_t i)
{
	struct spsc_shared *sh = ctx;

	/* Pairs with line_pong's acquire load; nothing else rides on it. */
	atomic_store_explicit(&sh->line[0].w, i + 1, memory_order_release);
	while (atomic_load_explicit(&sh->line[1].w, memory_order_acquire) != i + 1)
		bench_cpu_relax();
	return 0;
}

static inline int line_pong(void *ctx, uint64_t i)
{
	struct spsc_shared *sh = ctx;

	while (atomic_load_explicit(&sh->line[0].w, memory_order_acquire) != i + 1)
		bench_cpu_relax();
	/* Pairs with line_ping's acquire load. */
	atomic_store_explicit(&sh->line[1].w, i + 1, memory_order_release);
	return 0;
}

static int lat_line(struct spsc_run *r, int side)
{
	return lat_run(r, side, line_ping, line_pong, r->sh);
}

/*
 * A raw futex ping-pong: store the word, FUTEX_WAKE, then FUTEX_WAIT on the
 * other word until it changes.  No spinning, no waiter count, a wake on
 * every hop: the least a round trip through the scheduler costs.
 */
static inline int futex_hop(_Atomic uint32_t *out, _Atomic uint32_t *in,
			    uint32_t v, bool first_wait)
{
	uint32_t cur;

	if (first_wait)
		goto wait;
post:
	/* seq_cst: the peer's FUTEX_WAIT compares after our store. */
	atomic_store_explicit(out, v, memory_order_seq_cst);
	if (syscall(SYS_futex, out, FUTEX_WAKE, 1, NULL, NULL, 0) < 0)
		return -errno;
	if (first_wait)
		return 0;
wait:
	while ((cur = atomic_load_explicit(in, memory_order_acquire)) != v) {
		if (syscall(SYS_futex, in, FUTEX_WAIT, cur, NULL, NULL, 0) < 0 &&
		    errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	if (first_wait)
		goto post;
	return 0;
}

static inline int futex_ping(void *ctx, uint64_t i)
{
	struct spsc_shared *sh = ctx;

	return futex_hop(&sh->fx[0].w, &sh->fx[1].w, (uint32_t)(i + 1), false);
}

static inline int futex_pong(void *ctx, uint64_t i)
{
	struct spsc_shared *sh = ctx;

	return futex_hop(&sh->fx[1].w, &sh->fx[0].w, (uint32_t)(i + 1), true);
}

static int lat_futex(struct spsc_run *r, int side)
{
	return lat_run(r, side, futex_ping, futex_pong, r->sh);
}

/* sluice: a ring each way, send then recv; the pong echoes the packet. */
struct lat_sluice {
	struct sluice_spsc *tx, *rx;
	_Alignas(64) unsigned char pkt[PKT];
};

static inline int sluice_ping(void *ctx, uint64_t i)
{
	struct lat_sluice *x = ctx;
	int ret;

	pkt_number(x->pkt, i);
	ret = sluice_spsc_send(x->tx, x->pkt, PKT);
	if (ret)
		return ret;
	ret = sluice_spsc_recv(x->rx, x->pkt, PKT);
	if (ret < 0)
		return ret;
	return ret == PKT && pkt_is(x->pkt, i) ? 0 : -EBADMSG;
}

static inline int sluice_pong(void *ctx, uint64_t i)
{
	struct lat_sluice *x = ctx;
	int ret;

	(void)i;
	ret = sluice_spsc_recv(x->rx, x->pkt, PKT);
	if (ret < 0)
		return ret;
	return sluice_spsc_send(x->tx, x->pkt, (size_t)ret);
}

static int lat_sluice(struct spsc_run *r, int side)
{
	struct sluice_region *reg;
	struct lat_sluice x;
	int err;

	memset(&x, 0, sizeof(x));
	err = sluice_open(r, side, r->m->spin_ns, &reg, &x.tx, &x.rx);
	if (err)
		return err;
	err = lat_run(r, side, sluice_ping, sluice_pong, &x);
	if (err)
		child_fail(r, side, err, "%s: %s", side ? "pong" : "ping", strerror(-err));
	/*
	 * How often a side slept: each futex wake bumps the sleeper's futex
	 * word, so the four words of the two rings count them.  Internals,
	 * read only to say what the numbers above mean.
	 */
	if (side == 0 && !err)
		r->sh->wakes = sluice__spsc_wakes(x.tx) + sluice__spsc_wakes(x.rx);
	sluice_shut(reg, x.tx, x.rx);
	return err;
}

/* Descriptors: a pipe each way (write 64 B, read 64 B) or one socket pair. */
struct lat_fd {
	int tx, rx;
	bool sock;
	_Alignas(64) unsigned char pkt[PKT];
};

static inline int fd_send(struct lat_fd *x)
{
	ssize_t n;

	do
		n = x->sock ? send(x->tx, x->pkt, PKT, MSG_NOSIGNAL) : write(x->tx, x->pkt, PKT);
	while (n < 0 && errno == EINTR);
	return n == PKT ? 0 : n < 0 ? -errno : -EIO;
}

static inline int fd_recv(struct lat_fd *x)
{
	if (!x->sock)
		return bench_fd_io(x->rx, x->pkt, PKT, false);
	for (;;) {
		ssize_t n = recv(x->rx, x->pkt, PKT, 0);

		if (n == PKT)
			return 0;
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -errno : -EIO;
	}
}

static inline int fd_ping(void *ctx, uint64_t i)
{
	struct lat_fd *x = ctx;
	int err;

	pkt_number(x->pkt, i);
	err = fd_send(x);
	if (!err)
		err = fd_recv(x);
	if (!err && !pkt_is(x->pkt, i))
		err = -EBADMSG;
	return err;
}

static inline int fd_pong(void *ctx, uint64_t i)
{
	struct lat_fd *x = ctx;
	int err;

	(void)i;
	err = fd_recv(x);
	return err ? err : fd_send(x);
}

static int lat_fd(struct spsc_run *r, int side)
{
	struct lat_fd x = { .sock = r->m->kind == K_SOCK };
	int err;

	if (x.sock) {
		x.tx = x.rx = r->fd[side];
	} else {
		/* Side 0 writes pipe 0 -> 1 and reads 2 -> 3; side 1 the reverse. */
		x.tx = side ? r->fd[3] : r->fd[1];
		x.rx = side ? r->fd[0] : r->fd[2];
	}
	err = lat_run(r, side, fd_ping, fd_pong, &x);
	if (err)
		child_fail(r, side, err, "%s: %s", side ? "pong" : "ping", strerror(-err));
	return err;
}

/* ---------------------------------------------------------------- the suite */

#define SPIN_FOREVER	UINT32_MAX

static const struct spsc_mode spsc_modes[] = {
	{ "sluice send/recv", ST_TPUT, TC_SLUICE, TR_ONE, K_SLUICE, 1, 0, tput_sluice },
	{ "sluice send_batch/recv_batch", ST_TPUT, TC_SLUICE, TR_BATCH, K_SLUICE, BATCH, 0, tput_sluice },
	{ "rte_ring burst 1", ST_TPUT, TC_RTE, TR_ONE, K_RTE, 1, 0, tput_rte },
	{ "rte_ring burst 32", ST_TPUT, TC_RTE, TR_BATCH, K_RTE, BATCH, 0, tput_rte },
	{ "pipe, 64 B a call", ST_TPUT, TC_PIPE, TR_ONE, K_PIPE, 1, 0, tput_pipe },
	{ "pipe, 2 KiB a call", ST_TPUT, TC_PIPE, TR_BATCH, K_PIPE, BATCH, 0, tput_pipe },
	{ "unix socket", ST_TPUT, TC_SOCK, TR_ONE, K_SOCK, 1, 0, tput_sock },
	{ "sluice ping-pong, spinning", ST_SPIN, SC_SLUICE, 0, K_SLUICE, 1, SPIN_FOREVER, lat_sluice },
	{ "cache-line ping-pong", ST_SPIN, SC_LINE, 0, K_LINE, 1, 0, lat_line },
	{ "sluice ping-pong, blocking", ST_BLOCK, BC_SLUICE, 0, K_SLUICE, 1, 1, lat_sluice },
	{ "futex ping-pong", ST_BLOCK, BC_FUTEX, 0, K_FUTEX, 1, 0, lat_futex },
	{ "pipe ping-pong", ST_BLOCK, BC_PIPE, 0, K_PIPE, 1, 0, lat_fd },
	{ "unix socket ping-pong", ST_BLOCK, BC_SOCK, 0, K_SOCK, 1, 0, lat_fd },
};

#define SPSC_NMODES	SLUICE_ARRAY_SIZE(spsc_modes)

static int spsc_side(void *arg, int side)
{
	struct spsc_run *r = arg;

	return r->m->side(r, side);
}

/* The mode that fills @row of column @col of table @tb. */
static unsigned int spsc_mode_of(enum spsc_table tb, int col, int row)
{
	unsigned int i;

	for (i = 0; i < SPSC_NMODES; i++)
		if (spsc_modes[i].table == tb && spsc_modes[i].col == col &&
		    spsc_modes[i].row == row)
			break;
	return i;	/* there is one */
}

/* What one mode measured in one rep, or why it could not. */
struct spsc_result {
	double mpps;
	double median_ns, p99_ns;
	uint64_t wakes, hops;		/* sluice latency: sleepers woken, of hops */
	char why[BENCH_TEXT_MAX];
	char backing[64];		/* sluice: what the region got */
};

static void spsc_close_fds(struct spsc_run *r)
{
	unsigned int i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(r->fd); i++) {
		if (r->fd[i] >= 0)
			close(r->fd[i]);
		r->fd[i] = -1;
	}
}

/* Run @m once: set up what it needs, fork the pair, collect, clean up. */
static int spsc_measure(const struct spsc_mode *m, struct spsc_shared *sh, void *rte,
			const int cpus[2], uint64_t packets, unsigned int samples,
			struct spsc_result *res)
{
	struct spsc_run r = {
		.m = m, .sh = sh, .rte = rte, .fd = { -1, -1, -1, -1 },
		.packets = packets, .samples = samples,
		.warm = samples / 10 > 1000 ? samples / 10 : 1000,
	};
	struct sluice_region_info info = { .sz = sizeof(info) };
	const char *what = "setup";
	int err = 0;

	memset(sh, 0, sizeof(*sh));
	memset(res, 0, sizeof(*res));
	switch (m->kind) {
	case K_SLUICE:
		what = "sluice_region_create_anon";
		err = sluice_region_create_anon("sluice-bench", SPSC_REGION_SIZE, NULL,
						&r.region);
		if (!err && !sluice_region_info(r.region, &info))
			snprintf(res->backing, sizeof(res->backing), "%s, %" PRIu64 " KiB pages",
				 sluice_backing_str(info.backing), info.page_size >> 10);
		break;
	case K_RTE:
		what = "rte_ring_init";
		err = peer_rte_spsc.init(rte, SLOTS);
		break;
	case K_PIPE:
		what = "pipe2";
		if (pipe2(&r.fd[0], O_CLOEXEC) || pipe2(&r.fd[2], O_CLOEXEC))
			err = -errno;
		break;
	case K_SOCK:
		what = "socketpair";
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, r.fd))
			err = -errno;
		break;
	case K_LINE:
	case K_FUTEX:
		break;
	}
	if (err) {
		snprintf(res->why, sizeof(res->why), "%s: %s", what, strerror(-err));
		goto out;
	}

	err = bench_pair_run(spsc_side, &r, cpus, PAIR_TIMEOUT_MS);
	if (err) {
		const char *cw = sh->why[0][0] ? sh->why[0] : sh->why[1];

		if (err == -EINTR)
			snprintf(res->why, sizeof(res->why), "interrupted");
		else if (err == -ETIMEDOUT)
			snprintf(res->why, sizeof(res->why), "no answer in %u s, killed",
				 PAIR_TIMEOUT_MS / 1000);
		else
			snprintf(res->why, sizeof(res->why), "%s", cw[0] ? cw : strerror(-err));
		goto out;
	}
	if (sh->bad) {
		snprintf(res->why, sizeof(res->why), "%" PRIu64 " of %" PRIu64
			 " packets arrived out of sequence", sh->bad, packets);
		err = -EBADMSG;
		goto out;
	}
	if (m->table == ST_TPUT)
		res->mpps = sh->ns ? (double)packets * 1e3 / (double)sh->ns : 0;
	res->median_ns = sh->median_ns;
	res->p99_ns = sh->p99_ns;
	res->wakes = sh->wakes;
	res->hops = m->table == ST_TPUT ? packets : 2 * ((uint64_t)r.warm + r.samples);
out:
	spsc_close_fds(&r);
	if (r.region)
		sluice_region_destroy(r.region);
	return err;
}

static void spsc_discard(struct bench_table *t, bool discard)
{
	unsigned int i;

	for (i = 0; i < ST_NR; i++)
		t[i].discard = discard;
}

/*
 * Say how often sluice really slept in the latency table @which: a wake
 * means one side was asleep, or on its way there, when the other sent.
 */
static void spsc_note_wakes(struct bench_table *t, enum spsc_table which,
			    const uint64_t *wakes, const uint64_t *hops)
{
	unsigned int i;
	double share;

	for (i = 0; i < SPSC_NMODES; i++) {
		if (spsc_modes[i].table != which || spsc_modes[i].kind != K_SLUICE ||
		    !hops[i])
			continue;
		share = (double)wakes[i] / (double)hops[i];
		bench_note(&t[which], "sluice woke a sleeping side on %.1f%% of hops "
			   "(%" PRIu64 " futex wakes in %" PRIu64 " hops)%s",
			   100 * share, wakes[i], hops[i],
			   spsc_modes[i].spin_ns != SPIN_FOREVER && share < 0.5 ?
			   ": mostly it did not sleep, so its row is not a sleeping round trip" : "");
	}
}

int suite_spsc(const struct bench_opts *o, struct bench_table *t)
{
	const struct spsc_mode *m;
	struct bench_table *tb;
	struct spsc_result res;
	struct spsc_shared *sh = NULL;
	uint64_t packets[SPSC_NMODES], wakes[SPSC_NMODES] = { 0 }, hops[SPSC_NMODES] = { 0 };
	bool failed[SPSC_NMODES] = { false };
	unsigned int samples = o->samples ? o->samples : o->quick ? LAT_QUICK_SAMPLES : LAT_SAMPLES;
	unsigned int target_ms = o->quick ? TPUT_QUICK_MS : TPUT_TARGET_MS;
	unsigned int i, k, rep, pass, npass;
	size_t shlen, rte_off, rte_len;
	char backing[64] = "";
	bool rte_ok, cal;
	int err = 0, e;
	void *rte = NULL;

	for (i = 0; i < ST_NR; i++) {
		bench_table_name(&t[i], spsc_names[i]);
		for (k = 0; k < spsc_ncols[i]; k++)
			bench_table_col(&t[i], spsc_cols[i][k]);
		t[i].subject = 0;
		t[i].paired = true;	/* peers run back to back in each rep */
	}
	bench_table_row(&t[ST_TPUT], "64 B, one per call", "Mpps", BENCH_HIGHER_BETTER);
	bench_table_row(&t[ST_TPUT], "64 B, 32 per call", "Mpps", BENCH_HIGHER_BETTER);
	for (i = ST_SPIN; i <= ST_BLOCK; i++) {
		bench_table_row(&t[i], "round trip, median", "ns", BENCH_LOWER_BETTER);
		bench_table_row(&t[i], "round trip, p99", "ns", BENCH_LOWER_BETTER);
	}
	bench_title(&t[ST_TPUT], "64-byte packets from a producer on CPU %d to a consumer on CPU %d, "
		    "%u rep%s (+%u warm-up)", o->pair[0], o->pair[1], o->reps,
		    o->reps == 1 ? "" : "s", o->warmup);
	bench_title(&t[ST_SPIN], "64-byte ping-pong between CPUs %d and %d, both sides "
		    "spinning, %u round trips per rep, %u rep%s", o->pair[0], o->pair[1],
		    samples, o->reps, o->reps == 1 ? "" : "s");
	bench_title(&t[ST_BLOCK], "64-byte ping-pong between CPUs %d and %d, sides that "
		    "sleep while waiting, %u round trips per rep, %u rep%s", o->pair[0],
		    o->pair[1], samples, o->reps, o->reps == 1 ? "" : "s");

	if (o->pair[0] < 0) {
		for (i = 0; i < ST_NR; i++)
			for (k = 0; k < spsc_ncols[i]; k++)
				bench_skip(&t[i], (int)k, "needs two CPUs, this process may use one");
		return 0;
	}
	rte_ok = !peer_rte_spsc.missing;
	if (!rte_ok)
		bench_skip(&t[ST_TPUT], TC_RTE, "%s", peer_rte_spsc.missing);
	bench_ticks_init();

	/* The control block, then the rte_ring on a line of its own. */
	rte_off = (sizeof(*sh) + 63) & ~(size_t)63;
	rte_len = rte_ok ? peer_rte_spsc.size(SLOTS) : 0;
	shlen = rte_off + rte_len;
	sh = bench_shared_alloc(shlen);
	if (!sh) {
		errmsg("spsc: cannot map %zu bytes of shared memory", shlen);
		return -ENOMEM;
	}
	if (rte_ok)
		rte = (char *)sh + rte_off;

	for (i = 0; i < SPSC_NMODES; i++)
		packets[i] = TPUT_CAL_PACKETS;
	/*
	 * Pass 0 calibrates the throughput counts (nothing recorded), then
	 * come the warm-up reps (recorded nowhere either) and the reps.
	 */
	npass = 1 + o->warmup + o->reps;
	for (pass = 0; pass < npass && !bench_stop; pass++) {
		cal = pass == 0;
		rep = pass - 1;
		spsc_discard(t, pass <= o->warmup);
		for (k = 0; k < SPSC_NMODES && !bench_stop; k++) {
			/* Alternate the order, so no peer always follows the same one. */
			i = pass % 2 ? SPSC_NMODES - 1 - k : k;
			m = &spsc_modes[i];
			tb = &t[m->table];

			if (failed[i] || bench_skipped(tb, m->col) || (cal && m->table != ST_TPUT))
				continue;
			if (cal)
				bench_progress("spsc: calibrating %s", m->label);
			else if (rep < o->warmup)
				bench_progress("spsc: warm-up %u/%u, %s", rep + 1, o->warmup, m->label);
			else
				bench_progress("spsc: rep %u/%u, %s", rep - o->warmup + 1, o->reps, m->label);
			e = spsc_measure(m, sh, rte, o->pair, packets[i], samples, &res);
			if (e) {
				if (bench_stop)
					break;
				failed[i] = true;
				bench_note(tb, "%s failed: %s", m->label, res.why);
				err = e;
				continue;
			}
			if (res.backing[0])
				snprintf(backing, sizeof(backing), "%s", res.backing);
			if (cal) {
				/* Enough packets for target_ms at the rate just seen. */
				double n = res.mpps * 1e3 * target_ms;

				n = n < TPUT_MIN_PACKETS ? TPUT_MIN_PACKETS :
				    n > TPUT_MAX_PACKETS ? TPUT_MAX_PACKETS : n;
				packets[i] = ((uint64_t)n + BATCH - 1) / BATCH * BATCH;
				continue;
			}
			if (m->table == ST_TPUT) {
				bench_add(tb, m->row, m->col, res.mpps);
			} else {
				bench_add(tb, LR_MEDIAN, m->col, res.median_ns);
				bench_add(tb, LR_P99, m->col, res.p99_ns);
			}
			if (!tb->discard) {
				wakes[i] += res.wakes;
				hops[i] += res.hops;
			}
		}
	}
	spsc_discard(t, false);
	bench_progress_done();
	bench_shared_free(sh, shlen);

	/* Throughput. */
	bench_note(&t[ST_TPUT], "one per call: sluice_spsc_send/recv (blocking, adaptive spin); "
		   "rte_ring_sp_enqueue/sc_dequeue_burst_elem, burst 1");
	bench_note(&t[ST_TPUT], "  pipe (64 KiB) write/read of 64 B; unix SOCK_SEQPACKET socketpair "
		   "send/recv of 64 B");
	bench_note(&t[ST_TPUT], "32 per call: sluice_spsc_send_batch/recv_batch; rte_ring burst 32; "
		   "pipe write/read of 2 KiB");
	bench_note(&t[ST_TPUT], "rings of %u slots of 64 B (rte_ring: %u usable); rte_ring "
		   "spins with rte_pause() when full or empty, as DPDK apps do", SLOTS, SLOTS - 1);
	bench_note(&t[ST_TPUT], "Mpps: the consumer's packets over its time, first to last; "
		   "each rep about %u ms; order checked", target_ms);
	if (rte_ok)
		bench_note(&t[ST_TPUT], "rte_ring: %s, ring on our own shared memory (no EAL)",
			   peer_rte_spsc.version());
	if (backing[0])
		bench_note(&t[ST_TPUT], "sluice: rings in an anonymous region (%s)", backing);
	i = spsc_mode_of(ST_TPUT, TC_SLUICE, TR_ONE);
	k = spsc_mode_of(ST_TPUT, TC_SLUICE, TR_BATCH);
	if (hops[i] || hops[k])
		bench_note(&t[ST_TPUT], "sluice slept and was woken %" PRIu64 " times in %" PRIu64
			   " packets one per call, %" PRIu64 " in %" PRIu64 " 32 per call",
			   wakes[i], hops[i], wakes[k], hops[k]);
	bench_note_ratio(&t[ST_TPUT], TR_ONE, TC_RTE, "vs rte_ring, one per call", ">= 5x");
	bench_note_ratio(&t[ST_TPUT], TR_BATCH, TC_RTE, "vs rte_ring, 32 per call", ">= 1.25x");
	bench_note(&t[ST_TPUT], "cells: median of the reps ±half their range; ratios: median of "
		   "the reps' ratios (peers run back to back, order alternating)");

	/* Spinning. */
	bench_note(&t[ST_SPIN], "sluice: a ring each way (%u × 64 B), send then recv, "
		   "spin_ns = UINT32_MAX (never sleeps)", SLOTS);
	bench_note(&t[ST_SPIN], "cache line: two 64-byte-aligned words, each side spins "
		   "(pause) on one and stores the other: the floor");
	bench_note_ratio(&t[ST_SPIN], LR_MEDIAN, SC_LINE, "vs cache line, median", "<= 1.5x");
	spsc_note_wakes(t, ST_SPIN, wakes, hops);
	bench_note(&t[ST_SPIN], "timer: %s; every round trip timed, %u untimed first",
		   bench_ticks_describe(), samples / 10 > 1000 ? samples / 10 : 1000);
	bench_note(&t[ST_SPIN], "cells: median over reps of each rep's median or p99 ±half "
		   "their range; ratios rep by rep, as above");

	/* Blocking. */
	bench_note(&t[ST_BLOCK], "sluice: as above with spin_ns = 1, meant to sleep on its "
		   "futex almost at once");
	bench_note(&t[ST_BLOCK], "futex: FUTEX_WAKE then FUTEX_WAIT on two shared words, a "
		   "wake every hop: the floor for sleeping");
	bench_note(&t[ST_BLOCK], "pipe: two pipes, 64 B write/read; unix sock: one "
		   "SOCK_SEQPACKET socketpair");
	bench_note_ratio(&t[ST_BLOCK], LR_MEDIAN, BC_FUTEX, "vs futex, median", "<= 1.2x");
	spsc_note_wakes(t, ST_BLOCK, wakes, hops);
	bench_note(&t[ST_BLOCK], "timer and cells as above");
	return err;
}
