// SPDX-License-Identifier: MIT
/*
 * sluice-bench's live suite: how soon a survivor learns that its peer died.
 *
 * One death a sample.  The peer, a fresh process, makes an SPSC ring in a
 * fresh region and takes its producer side; the survivor, a process that
 * lives through the suite, takes the consumer side and blocks in
 * sluice_spsc_recv().  The parent SIGKILLs the peer, noting the time
 * (CLOCK_MONOTONIC) right before kill(); the survivor notes when recv
 * returned.  Latency is the one minus the other.
 *
 * Three columns, each with a survivor of its own, sampled in turn:
 *
 *   sluice bpf     opts.liveness: a monitor on SLUICE_LIVENESS_BPF; recv
 *                  should return -EPIPE at once.  Its long timeout (2 s)
 *                  only bounds a death the monitor misses.
 *   sluice pidfd   the same on SLUICE_LIVENESS_PIDFD.
 *   deadline       no monitor, a ring timeout of 100 ms: at its deadline
 *                  recv looks whether its peer still runs, finds it gone,
 *                  and returns -EPIPE.  This latency is the deadline
 *                  itself, whatever the user sets; its column is there to
 *                  put a number on what a monitor saves.
 *
 * The peer runs on the first CPU of --cpus with the parent, the survivors
 * (and their monitors' threads) on the second.  Every step has a time
 * limit, every process a parent-death signal: nothing hangs, nothing is
 * left behind.
 *
 * Also, what a monitor's backend costs per watched process:
 * sluice_liveness_watch_fn() and sluice_liveness_unwatch() on a batch of
 * sleeping processes, per process.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sluice.h>
#include <sluice/liveness.h>

#include "bench.h"
#include "internal.h"

#define LIVE_SAMPLES		200	/* deaths per monitor column */
#define LIVE_QUICK_SAMPLES	50
#define LIVE_SAMPLES_MAX	10000
#define DEADLINE_SAMPLES	20	/* each waits out the deadline */
#define DEADLINE_QUICK_SAMPLES	5
#define DEADLINE_NS		(100 * 1000000ull)
/* A monitor's survivor: a death not seen by then is a miss. */
#define LONG_TIMEOUT_NS		(2000 * 1000000ull)
#define MISSES_MAX		3	/* then the column stops */
/* Between the survivor saying it waits and the kill: asleep by then. */
#define SETTLE_NS		(1000 * 1000ull)
/* Each handshake between the processes. */
#define STEP_TIMEOUT_NS		(5000 * 1000000ull)
#define POLL_NS			(50 * 1000ull)
/* Peers and sleepers end by themselves after this, whatever happens. */
#define PEER_LIFE_S		60
#define COST_PROCS		32	/* sleepers watched to time a watch */
#define COST_ROUNDS		5
#define REGION_SIZE		(256u << 10)
#define RING_NAME		"live"
#define SLOT_SIZE		64u

enum { LC_BPF, LC_PIDFD, LC_DEADLINE, LC_NR };
enum { LR_MEDIAN, LR_P99, LR_EXIT, LR_SEEN, LR_FIRE, LR_RETURN, LR_WATCH, LR_UNWATCH, LR_NR };
/* A death's latency, step by step: from each stamp to the next. */
enum { LT_EXIT, LT_SEEN, LT_FIRE, LT_RETURN, LT_NR };

static const char *const live_cols[LC_NR] = { "sluice bpf", "sluice pidfd", "deadline" };

/* ---------------------------------------------------------------- shared */

/* Survivor states. */
enum { LS_STARTING = 0, LS_READY, LS_FAILED };

/* One survivor's reports, each published by a release store the parent acquires. */
struct live_slot {
	_Alignas(64) _Atomic uint32_t state;	/* LS_*; err and why before it */
	_Atomic uint32_t ready;		/* sample attached and about to wait */
	_Atomic uint32_t done;		/* sample whose recv returned */
	int32_t err;			/* LS_FAILED: why, as an errno */
	int32_t attach_err;		/* of sample @ready: 0, or attach failed */
	int32_t ret;			/* of sample @done: what recv returned */
	uint64_t t_ret;			/* of sample @done: CLOCK_MONOTONIC at return */
	struct sluice__lv_times lv;	/* of sample @done: its monitor's stamps */
	double watch_ns[COST_ROUNDS];	/* per process */
	double unwatch_ns[COST_ROUNDS];
	char why[BENCH_TEXT_MAX];
};

/* Shared by the parent and every process of the suite; zeroed at the start. */
struct live_shared {
	struct live_slot slot[LC_NR];
	_Alignas(64) _Atomic uint32_t cmd;	/* sample the region just sent is for */
	_Alignas(64) _Atomic uint32_t made;	/* sample whose ring the peer made */
	int32_t peer_err;			/* of sample @made */
	char peer_why[BENCH_TEXT_MAX];
	unsigned int nsleepers;
	pid_t sleeper[COST_PROCS];
	uint64_t sleeper_start[COST_PROCS];
};

/* The parent's view, copied into each child by fork(). */
struct live_run {
	struct live_shared *sh;
	pid_t parent;
	int cpu[2];			/* peer, survivors; -1: not pinned */
	int sock[LC_NR][2];		/* [0] the parent's end, [1] the survivor's */
	pid_t survivor[LC_NR];		/* 0: none, or reaped */
};

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };

	while (nanosleep(&ts, &ts) && errno == EINTR && !bench_stop)
		;
}

static int __attribute__((format(printf, 4, 5)))
fail(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

/*
 * In a child: die with the parent, and in any case after a while, so that
 * no process of ours outlives a parent that crashed or was killed.
 */
static void child_leash(const struct live_run *lr, unsigned int life_s)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != lr->parent)
		_exit(1);	/* it died before the leash was on */
	if (life_s)
		alarm(life_s);
}

/* ---------------------------------------------------------------- children */

/* Sleep until killed; the leash ends it if nobody does. */
static void __attribute__((noreturn)) sleeper(const struct live_run *lr)
{
	child_leash(lr, PEER_LIFE_S);
	for (;;)
		pause();
}

/*
 * The peer of sample @seq: its own mapping of the parent's region, a ring
 * made there with the producer side taken, then nothing until the kill.
 */
static void __attribute__((noreturn)) peer(const struct live_run *lr,
					   const struct sluice_region *parent_r,
					   uint32_t seq)
{
	struct live_shared *sh = lr->sh;
	struct sluice_region *r = NULL;
	struct sluice_spsc *q = NULL;
	int err;

	child_leash(lr, PEER_LIFE_S);
	err = lr->cpu[0] >= 0 ? bench_pin_cpu(lr->cpu[0]) : 0;
	if (err)
		fail(sh->peer_why, sizeof(sh->peer_why), err, "peer: cannot pin to CPU %d: %s",
		     lr->cpu[0], strerror(-err));
	/* A mapping of its own, as an unrelated process would have. */
	if (!err) {
		err = sluice_region_open_fd(sluice_region_fd(parent_r), NULL, &r);
		if (err)
			fail(sh->peer_why, sizeof(sh->peer_why), err,
			     "peer: sluice_region_open_fd: %s", strerror(-err));
	}
	if (!err) {
		err = sluice_spsc_create(r, RING_NAME, 2, SLOT_SIZE, SLUICE_SPSC_PRODUCER,
					 NULL, &q);
		if (err)
			fail(sh->peer_why, sizeof(sh->peer_why), err,
			     "peer: sluice_spsc_create: %s", strerror(-err));
	}
	sh->peer_err = err;
	/* Release: peer_err and why before it, and the ring (for the survivor). */
	atomic_store_explicit(&sh->made, seq, memory_order_release);
	if (err)
		_exit(1);
	for (;;)
		pause();
}

static void noop_died(pid_t pid, uint64_t start, void *arg)
{
	(void)pid;
	(void)start;
	(void)arg;
}

/* What watching a process costs the monitor @m, on the parent's sleepers. */
static int survivor_cost(struct sluice_liveness *m, struct live_slot *s,
			 const struct live_shared *sh)
{
	uint64_t id[COST_PROCS], t0, t1, t2;
	unsigned int n = sh->nsleepers, i, k;
	int err;

	if (!n)
		return 0;
	/* Round 0 warms up (the backend's first allocations) and is not kept. */
	for (k = 0; k <= COST_ROUNDS; k++) {
		t0 = bench_now_ns();
		for (i = 0; i < n; i++) {
			err = sluice_liveness_watch_fn(m, sh->sleeper[i], sh->sleeper_start[i],
						       noop_died, NULL, &id[i]);
			if (err) {
				while (i--)
					sluice_liveness_unwatch(m, id[i]);
				return fail(s->why, sizeof(s->why), err,
					    "sluice_liveness_watch_fn: %s", strerror(-err));
			}
		}
		t1 = bench_now_ns();
		for (i = 0; i < n; i++)
			sluice_liveness_unwatch(m, id[i]);
		t2 = bench_now_ns();
		if (!k)
			continue;
		s->watch_ns[k - 1] = (double)(t1 - t0) / n;
		s->unwatch_ns[k - 1] = (double)(t2 - t1) / n;
	}
	return 0;
}

/*
 * Survivor of column @c: a monitor (or none), then one sample per region
 * the parent sends, until the parent closes the socket.
 */
static void __attribute__((noreturn)) survivor(struct live_run *lr, int c)
{
	SLUICE_OPTS(sluice_liveness_opts, lo,
		    .backend = c == LC_BPF ? SLUICE_LIVENESS_BPF : SLUICE_LIVENESS_PIDFD,
		    .flags = SLUICE_LIVENESS_NO_PIN);
	struct live_shared *sh = lr->sh;
	struct live_slot *s = &sh->slot[c];
	struct sluice_liveness *m = NULL;
	struct sluice_region *r;
	struct sluice_spsc *q;
	unsigned char buf[SLOT_SIZE];
	uint32_t seq;
	int i, err = 0, ret;

	child_leash(lr, 0);
	/* Only our own end: the others must see end of file when the parent closes. */
	for (i = 0; i < LC_NR; i++) {
		close(lr->sock[i][0]);
		if (i != c)
			close(lr->sock[i][1]);
	}
	/* Pinned before the monitor's thread starts, which inherits it. */
	if (lr->cpu[1] >= 0) {
		err = bench_pin_cpu(lr->cpu[1]);
		if (err)
			fail(s->why, sizeof(s->why), err, "cannot pin to CPU %d: %s", lr->cpu[1],
			     strerror(-err));
	}
	if (!err && c != LC_DEADLINE) {
		err = sluice_liveness_create(&lo, &m);
		if (err)
			fail(s->why, sizeof(s->why), err, "sluice_liveness_create(%s): %s",
			     c == LC_BPF ? "SLUICE_LIVENESS_BPF" : "SLUICE_LIVENESS_PIDFD",
			     strerror(-err));
	}
	if (!err && m)
		err = survivor_cost(m, s, sh);
	s->err = err;
	/* Release: err, why and the costs before the state. */
	atomic_store_explicit(&s->state, err ? LS_FAILED : LS_READY, memory_order_release);
	if (err)
		goto out;

	for (;;) {
		/* -ECONNRESET: the parent closed its end, the suite is over. */
		err = sluice_region_recv(lr->sock[c][1], NULL, &r);
		if (err)
			break;
		/* Acquire: stored before the region was sent. */
		seq = atomic_load_explicit(&sh->cmd, memory_order_acquire);
		{
			SLUICE_OPTS(sluice_spsc_opts, so,
				    .timeout_ns = m ? LONG_TIMEOUT_NS : DEADLINE_NS,
				    .liveness = m);

			s->attach_err = sluice_spsc_attach(r, RING_NAME, SLUICE_SPSC_CONSUMER,
							   &so, &q);
		}
		/* Release: attach_err before it. */
		atomic_store_explicit(&s->ready, seq, memory_order_release);
		if (!s->attach_err) {
			ret = sluice_spsc_recv(q, buf, sizeof(buf));
			s->t_ret = bench_now_ns();
			s->ret = ret;
			memset(&s->lv, 0, sizeof(s->lv));
			if (m)
				sluice__liveness_last(m, &s->lv);
			/* Release: ret and t_ret before it. */
			atomic_store_explicit(&s->done, seq, memory_order_release);
			sluice_spsc_close(q);
		}
		sluice_region_close(r);
	}
	err = err == -ECONNRESET ? 0 : err;
out:
	/* Its maps and program go with it, rather than with our exit. */
	sluice_liveness_destroy(m);
	_exit(err ? 1 : 0);
}

/* ---------------------------------------------------------------- parent */

/*
 * Wait until *@word is @want; give up if @pid (when not NULL and not 0)
 * exits (it is then reaped and zeroed), after @timeout_ns, or on a signal.
 */
static int live_wait(_Atomic uint32_t *word, uint32_t want, pid_t *pid,
		     uint64_t timeout_ns)
{
	uint64_t deadline = bench_now_ns() + timeout_ns;
	int status;

	/* Acquire: pairs with the release store of the word, and what came before it. */
	while (atomic_load_explicit(word, memory_order_acquire) != want) {
		if (bench_stop)
			return -EINTR;
		if (pid && *pid > 0 && waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			return -ECHILD;
		}
		if (bench_now_ns() >= deadline)
			return -ETIMEDOUT;
		sleep_ns(POLL_NS);
	}
	return 0;
}

/* Kill and reap a child of ours, by pid; 0 is none. */
static void reap(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGKILL);
	while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
		;
	*pid = 0;
}

/* What one sample got: a latency, a miss, or why neither. */
enum { SAMPLE_OK, SAMPLE_MISS, SAMPLE_FAILED };

/*
 * The steps of a death's latency, in us, from @t_kill and the stamps @lv:
 * to the exit tracepoint (BPF only), to the monitor's thread, to the
 * watch firing, to recv's return at @t_ret.  A step whose stamps are
 * missing is NAN.
 */
static void live_steps(uint64_t t_kill, const struct sluice__lv_times *lv, uint64_t t_ret,
		       double step[LT_NR])
{
	uint64_t t[LT_NR + 1] = { t_kill, lv->exit_ns, lv->seen_ns, lv->fire_ns, t_ret };
	unsigned int i, from = 0;

	for (i = 0; i < LT_NR; i++) {
		step[i] = NAN;
		/* No monitor, or it did not see this death: no steps. */
		if (!t[i + 1] || !lv->seen_ns)
			continue;
		/* pidfd: no exit stamp, so "to the monitor" counts from the kill. */
		if (t[from] && t[i + 1] >= t[from])
			step[i] = (double)(t[i + 1] - t[from]) / 1e3;
		from = i + 1;
	}
}

static int live_sample(struct live_run *lr, int c, uint32_t seq, double *lat_us,
		       double step[LT_NR], char *why, size_t len)
{
	struct live_shared *sh = lr->sh;
	struct live_slot *s = &sh->slot[c];
	struct sluice_region *r = NULL;
	uint64_t t_kill, limit;
	pid_t p = 0;
	int err, ret = SAMPLE_FAILED;

	err = sluice_region_create_anon("bench-live", REGION_SIZE, NULL, &r);
	if (err) {
		fail(why, len, err, "sluice_region_create_anon: %s", strerror(-err));
		return SAMPLE_FAILED;
	}
	fflush(NULL);	/* the child must not print our buffered output again */
	p = fork();
	if (p < 0) {
		fail(why, len, -errno, "fork: %s", strerror(errno));
		p = 0;
		goto out;
	}
	if (!p)
		peer(lr, r, seq);

	err = live_wait(&sh->made, seq, &p, STEP_TIMEOUT_NS);
	if (err || sh->peer_err) {
		fail(why, len, err, "%s", sh->peer_why[0] ? sh->peer_why :
		     err == -ETIMEDOUT ? "the peer made no ring in time" :
		     err == -EINTR ? "interrupted" : "the peer died before making its ring");
		goto out;
	}
	/* Release: the survivor reads it after the region arrives. */
	atomic_store_explicit(&sh->cmd, seq, memory_order_release);
	err = sluice_region_send(r, lr->sock[c][0]);
	if (err) {
		fail(why, len, err, "sluice_region_send: %s", strerror(-err));
		goto out;
	}
	err = live_wait(&s->ready, seq, &lr->survivor[c], STEP_TIMEOUT_NS);
	if (err || s->attach_err) {
		fail(why, len, err, "survivor: %s%s", err ? "" : "sluice_spsc_attach: ",
		     err == -ETIMEDOUT ? "not waiting in time" : err == -EINTR ? "interrupted" :
		     err == -ECHILD ? "died" : strerror(-s->attach_err));
		goto out;
	}
	/* Asleep in recv by then: it spins 50 us at most first. */
	sleep_ns(SETTLE_NS);
	t_kill = bench_now_ns();
	kill(p, SIGKILL);
	while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
		;
	p = 0;
	limit = (c == LC_DEADLINE ? DEADLINE_NS : LONG_TIMEOUT_NS) + STEP_TIMEOUT_NS;
	err = live_wait(&s->done, seq, &lr->survivor[c], limit);
	if (err) {
		fail(why, len, err, "survivor: %s", err == -ETIMEDOUT ?
		     "recv did not return in time" : err == -EINTR ? "interrupted" : "died");
		goto out;
	}
	if (s->ret == -EPIPE) {
		*lat_us = (double)(int64_t)(s->t_ret - t_kill) / 1e3;
		live_steps(t_kill, &s->lv, s->t_ret, step);
		ret = SAMPLE_OK;
	} else if (s->ret == -ETIMEDOUT) {
		fail(why, len, 0, "death not seen in %llu ms", LONG_TIMEOUT_NS / 1000000);
		ret = SAMPLE_MISS;
	} else {
		fail(why, len, 0, "survivor: recv returned %d (%s), not -EPIPE", s->ret,
		     s->ret < 0 ? strerror(-s->ret) : "a packet");
	}
out:
	reap(&p);
	sluice_region_close(r);
	return ret;
}

/* Fork the sleepers whose watch the monitors time. */
static void live_sleepers(struct live_run *lr)
{
	struct live_shared *sh = lr->sh;
	unsigned int i;
	pid_t p;

	fflush(NULL);
	for (i = 0; i < COST_PROCS; i++) {
		p = fork();
		if (p < 0)
			break;
		if (!p)
			sleeper(lr);
		sh->sleeper[i] = p;
		/* A child not yet running has a start time too: fork set it. */
		if (sluice__proc_start_time(p, &sh->sleeper_start[i])) {
			reap(&p);
			break;
		}
		sh->nsleepers = i + 1;
	}
}

static void live_sleepers_end(struct live_run *lr)
{
	unsigned int i;

	for (i = 0; i < lr->sh->nsleepers; i++)
		reap(&lr->sh->sleeper[i]);
}

/* Fork the survivors; a column whose survivor cannot start is skipped. */
static void live_survivors(struct live_run *lr, struct bench_table *t)
{
	struct live_shared *sh = lr->sh;
	int c, err;

	for (c = 0; c < LC_NR; c++)
		lr->sock[c][0] = lr->sock[c][1] = -1;
	for (c = 0; c < LC_NR; c++) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, lr->sock[c])) {
			bench_skip(t, c, "socketpair: %s", strerror(errno));
			lr->sock[c][0] = lr->sock[c][1] = -1;
		}
	}
	fflush(NULL);
	for (c = 0; c < LC_NR; c++) {
		if (bench_skipped(t, c))
			continue;
		lr->survivor[c] = fork();
		if (lr->survivor[c] < 0) {
			bench_skip(t, c, "fork: %s", strerror(errno));
			lr->survivor[c] = 0;
			continue;
		}
		if (!lr->survivor[c])
			survivor(lr, c);
	}
	for (c = 0; c < LC_NR; c++) {
		if (lr->sock[c][1] >= 0) {
			close(lr->sock[c][1]);
			lr->sock[c][1] = -1;
		}
	}
	/* Each says it is ready, or why it is not. */
	for (c = 0; c < LC_NR; c++) {
		if (bench_skipped(t, c))
			continue;
		err = live_wait(&sh->slot[c].state, LS_READY, &lr->survivor[c], STEP_TIMEOUT_NS);
		if (!err)
			continue;
		if (atomic_load_explicit(&sh->slot[c].state, memory_order_acquire) == LS_FAILED)
			bench_skip(t, c, "%s", sh->slot[c].why);
		else
			bench_skip(t, c, "survivor %s", err == -ETIMEDOUT ? "not ready in time" :
				   err == -EINTR ? "interrupted" : "died starting");
		reap(&lr->survivor[c]);
	}
}

/* Close the sockets: survivors see end of file, and exit; reap them. */
static void live_survivors_end(struct live_run *lr)
{
	uint64_t deadline;
	int c, status;

	for (c = 0; c < LC_NR; c++) {
		if (lr->sock[c][0] >= 0)
			close(lr->sock[c][0]);
		lr->sock[c][0] = -1;
	}
	deadline = bench_now_ns() + STEP_TIMEOUT_NS;
	for (c = 0; c < LC_NR; c++) {
		while (lr->survivor[c] > 0 && bench_now_ns() < deadline && !bench_stop) {
			if (waitpid(lr->survivor[c], &status, WNOHANG) == lr->survivor[c])
				lr->survivor[c] = 0;
			else
				sleep_ns(1000000);
		}
		reap(&lr->survivor[c]);	/* still there: ours, by pid */
	}
}

/* Median and 99th percentile (nearest rank) of @n samples. */
static void live_stats(double *v, unsigned int n, double *median, double *p99)
{
	struct bench_cell cell = { v, n, n };

	*median = bench_cell_stat(&cell).median;
	*p99 = bench_percentile(v, n, 99);
}

int suite_live(const struct bench_opts *o, struct bench_table *t)
{
	unsigned int n_mon = o->samples ? o->samples : o->quick ? LIVE_QUICK_SAMPLES : LIVE_SAMPLES;
	unsigned int n_dl = o->quick ? DEADLINE_QUICK_SAMPLES : DEADLINE_SAMPLES;
	unsigned int want[LC_NR], got[LC_NR] = { 0 }, miss[LC_NR] = { 0 };
	unsigned int i, k, total, stride, warm, nstep[LC_NR][LT_NR] = { { 0 } };
	double *lat[LC_NR] = { NULL }, *steps[LC_NR][LT_NR] = { { NULL } }, v, med, p99;
	double step[LT_NR];
	struct live_run lr = { .parent = getpid() };
	bool failed[LC_NR] = { false };
	char why[BENCH_TEXT_MAX];
	uint32_t seq = 0;
	int c, r, err = 0;

	if (n_mon > LIVE_SAMPLES_MAX)
		n_mon = LIVE_SAMPLES_MAX;
	want[LC_BPF] = want[LC_PIDFD] = n_mon;
	want[LC_DEADLINE] = n_dl;
	warm = o->warmup;
	for (c = 0; c < LC_NR; c++)
		bench_table_col(t, live_cols[c]);
	t->subject = LC_BPF;
	bench_table_row(t, "death to return, median", "us", BENCH_LOWER_BETTER);
	bench_table_row(t, "death to return, p99", "us", BENCH_LOWER_BETTER);
	bench_table_row(t, "  kill to the exit tracepoint", "us", BENCH_LOWER_BETTER);
	bench_table_row(t, "  then to the monitor's thread", "us", BENCH_LOWER_BETTER);
	bench_table_row(t, "  then to the watch firing", "us", BENCH_LOWER_BETTER);
	bench_table_row(t, "  then to recv's return", "us", BENCH_LOWER_BETTER);
	bench_table_row(t, "watch, per process", "us", BENCH_LOWER_BETTER);
	bench_table_row(t, "unwatch, per process", "us", BENCH_LOWER_BETTER);
	lr.cpu[0] = o->pair[0];
	lr.cpu[1] = o->pair[1];
	bench_title(t, "SIGKILL an SPSC producer while its consumer waits in sluice_spsc_recv: "
		    "time to the consumer's return; %u deaths per monitor (+%u warm-up), %u "
		    "for the deadline", n_mon, warm, n_dl);

	lr.sh = bench_shared_alloc(sizeof(*lr.sh));
	for (c = 0; c < LC_NR; c++) {
		lat[c] = malloc(want[c] * sizeof(*lat[c]));
		for (k = 0; k < LT_NR; k++) {
			steps[c][k] = malloc(want[c] * sizeof(*steps[c][k]));
			if (!steps[c][k])
				lat[c] = NULL;	/* fails the check below; freed at the end */
		}
	}
	if (!lr.sh || !lat[0] || !lat[1] || !lat[2]) {
		errmsg("live: out of memory");
		err = -ENOMEM;
		goto out_free;
	}
	/* The parent kills from the peer's CPU, leaving the survivors theirs. */
	if (lr.cpu[0] >= 0)
		bench_pin_cpu(lr.cpu[0]);

	live_sleepers(&lr);
	live_survivors(&lr, t);
	live_sleepers_end(&lr);

	/* Costs, from the survivors' reports (acquired with their state). */
	for (c = 0; c < LC_DEADLINE; c++) {
		if (bench_skipped(t, c) || !lr.sh->nsleepers)
			continue;
		for (k = 0; k < COST_ROUNDS; k++) {
			bench_add(t, LR_WATCH, c, lr.sh->slot[c].watch_ns[k] / 1e3);
			bench_add(t, LR_UNWATCH, c, lr.sh->slot[c].unwatch_ns[k] / 1e3);
		}
	}

	/*
	 * Columns in turn, the order alternating; the deadline's fewer
	 * samples spread evenly among the others'.
	 */
	total = warm + n_mon;
	stride = n_dl ? (n_mon + n_dl - 1) / n_dl : 0;
	for (i = 0; i < total && !bench_stop; i++) {
		for (k = 0; k < LC_NR && !bench_stop; k++) {
			c = i % 2 ? LC_NR - 1 - (int)k : (int)k;
			if (bench_skipped(t, c) || failed[c] || got[c] == want[c])
				continue;
			if (c == LC_DEADLINE && i >= warm && (i - warm) % stride)
				continue;
			bench_progress("live: %s, death %u of %u%s", live_cols[c],
				       i < warm ? i + 1 : got[c] + 1, i < warm ? warm : want[c],
				       i < warm ? " (warm-up)" : "");
			r = live_sample(&lr, c, ++seq, &v, step, why, sizeof(why));
			if (bench_stop)
				break;
			if (r == SAMPLE_OK) {
				if (i < warm)
					continue;
				lat[c][got[c]++] = v;
				for (k = 0; k < LT_NR; k++)
					if (!isnan(step[k]))
						steps[c][k][nstep[c][k]++] = step[k];
				continue;
			}
			if (r == SAMPLE_MISS && ++miss[c] < MISSES_MAX)
				continue;
			failed[c] = true;
			err = -EIO;
			bench_note(t, "%s failed: %s", live_cols[c], why);
		}
	}
	bench_progress_done();
	live_survivors_end(&lr);
	if (lr.cpu[0] >= 0 && o->cpu >= 0)
		bench_pin_cpu(o->cpu);

	for (c = 0; c < LC_NR; c++) {
		if (!got[c])
			continue;
		live_stats(lat[c], got[c], &med, &p99);
		bench_add(t, LR_MEDIAN, c, med);
		bench_add(t, LR_P99, c, p99);
		for (k = 0; k < LT_NR; k++) {
			if (!nstep[c][k])
				continue;
			live_stats(steps[c][k], nstep[c][k], &med, &p99);
			bench_add(t, LR_EXIT + (int)k, c, med);
		}
	}

	/* The target, and what the cells are. */
	if (got[LC_BPF]) {
		live_stats(lat[LC_BPF], got[LC_BPF], &med, &p99);
		bench_note(t, "BPF median %.0f us (target <= 250 us), p99 %.0f us", med, p99);
	} else {
		bench_note(t, "BPF median: none (%s)", bench_skipped(t, LC_BPF) ?
			   t->skip[LC_BPF] : "no death measured");
	}
	if (got[LC_PIDFD] && got[LC_DEADLINE]) {
		double a, b;

		live_stats(lat[LC_PIDFD], got[LC_PIDFD], &a, &p99);
		live_stats(lat[LC_DEADLINE], got[LC_DEADLINE], &b, &p99);
		bench_note(t, "pidfd vs deadline, median: %.0fx sooner", b / a);
	}
	for (c = 0; c < LC_DEADLINE; c++)
		if (miss[c])
			bench_note(t, "%s: %u death%s not seen within the %llu ms timeout "
				   "(left out of the cells)", live_cols[c], miss[c],
				   miss[c] == 1 ? "" : "s", LONG_TIMEOUT_NS / 1000000);
	bench_note(t, "latency: the survivor's CLOCK_MONOTONIC when recv returned (-EPIPE) "
		   "minus the parent's right before kill(SIGKILL)");
	bench_note(t, "its steps, medians of each step on its own (they need not add up): the "
		   "BPF program's clock at the last thread's exit; the monitor's thread "
		   "taking the report (pidfd: from the kill, the zombie's pidfd readable); the "
		   "monitor calling the ring's watch, which marks the peer dead and wakes "
		   "recv; recv returning");
	bench_note(t, "each death: a fresh peer process makes the ring and takes the producer "
		   "side; the survivor attaches with opts.liveness, sleeps in recv %llu ms "
		   "before the kill", SETTLE_NS / 1000000);
	bench_note(t, "deadline: no monitor, ring timeout %llu ms; at its deadline recv finds "
		   "the peer's process gone and returns -EPIPE: the deadline itself, whatever "
		   "a user sets", DEADLINE_NS / 1000000);
	bench_note(t, "each cell: one number over all of a column's deaths (bpf %u, pidfd %u, "
		   "deadline %u); p99 by nearest rank, of fewer than 100 the largest",
		   got[LC_BPF], got[LC_PIDFD], got[LC_DEADLINE]);
	if (lr.cpu[0] >= 0)
		bench_note(t, "peer and parent on CPU %d, survivors and their monitors' threads "
			   "on CPU %d; monitors made with SLUICE_LIVENESS_NO_PIN", lr.cpu[0],
			   lr.cpu[1]);
	else
		bench_note(t, "one CPU: nothing pinned");
	if (lr.sh->nsleepers)
		bench_note(t, "watch, unwatch: sluice_liveness_watch_fn / _unwatch of %u sleeping "
			   "processes in a row, per process; median of %u rounds after one "
			   "uncounted", lr.sh->nsleepers, COST_ROUNDS);

out_free:
	for (c = 0; c < LC_NR; c++) {
		free(lat[c]);
		for (k = 0; k < LT_NR; k++)
			free(steps[c][k]);
	}
	bench_shared_free(lr.sh, sizeof(*lr.sh));
	return err;
}
