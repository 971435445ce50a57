// SPDX-License-Identifier: MIT
/*
 * Liveness: every promise of include/sluice/liveness.h, and what SPSC rings
 * and channels given a monitor make of it, with real processes killed by
 * SIGKILL and, for the BPF backend, the real eBPF program of this machine.
 *
 * Every test that can runs twice, once per backend: "bpf/test_..." and
 * "pidfd/test_...".  The BPF ones skip, saying why, only when the program
 * cannot be loaded here (-EPERM, -ENOSYS, -EOPNOTSUPP), or the library was
 * built without BPF (make BPF=0); the reason printed is the library's
 * own, as an AUTO monitor gives it.  The pidfd ones run all the same.
 *
 * A death is timed from the moment the process was killed (the killer
 * notes the time just before kill() or raise(SIGKILL)) to the moment the
 * watch function ran, and must fall within BOUND_MS; every measure is
 * printed.  Rings and channels are given a timeout of ten seconds; a
 * survivor's wait must end within BOUND_MS of the death, and a channel's
 * within CHAN_QUICK_MS, before the sweep every channel endpoint makes by
 * itself every 20 ms could have ended it (plain builds only: under a
 * sanitizer a peer takes about that long to exit).
 *
 * The processes watched are sleep(1), small and quick to die; the peers of
 * rings and channels are forks of this process that start no thread.
 * Those that need threads, or a pid namespace of their own, run this
 * program anew with execve() (--leader-exits, --ns-init), and a fork that
 * makes a monitor is made while no thread of ours runs: so every test runs
 * under ThreadSanitizer too, which forbids threads in the child of a
 * process that had some.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching
 * tests: "pidfd/...", "*spsc*" (cmocka's * and ?).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include <sluice/cancel.h>
#include <sluice/chan.h>
#include <sluice/liveness.h>
#include <sluice/spsc.h>

#include "chan_layout.h"
#include "frames.h"
#include "harness.h"
#include "internal.h"
#include "liveness_internal.h"
#include "spsc_layout.h"

/* ---------------------------------------------------------------- build */

#if defined(H_TSAN) || defined(H_ASAN)
#define BOUND_MS	500	/* a death must be seen within this */
#define STRESS_ROUNDS	150u	/* watches per thread */
#else
#define BOUND_MS	200
#define STRESS_ROUNDS	400u
#endif

#define MIB		(1024ul * 1024)
#define REGION_SIZE	(4 * MIB)
#define CHILD_TIMEOUT	30	/* seconds before a forgotten child is killed */
#define MS		1000000ull	/* nanoseconds */
#define SURVIVOR_TIMEOUT (10000 * MS)	/* a ring's or channel's timeout */
/*
 * A ring's survivor created before its peer attached looks for one every
 * 50 ms while it sleeps: a peer that attaches and dies in between is seen
 * within that, plus the usual bound.
 */
#define LATE_MS		(50 + BOUND_MS)
/*
 * Channel endpoints sweep for the dead every 20 ms by themselves (chan.h):
 * a wait the monitor ends must end well before that would have.
 */
#define SWEEP_MS	20
#if defined(H_TSAN) || defined(H_ASAN)
/*
 * Under a sanitizer a peer (a copy of this big process) takes about as
 * long to exit as the sweep period, so time says nothing of who saw it.
 */
#define CHAN_QUICK_MS	BOUND_MS
#else
#define CHAN_QUICK_MS	10
#endif
#define KIDS_MAX	96
#define MANY		50	/* children watched at once */
#define PIN_ROOT	"/sys/fs/bpf/sluice"
#define SKIP_EXIT	77	/* a child's "cannot do that here" */

/* ---------------------------------------------------------------- fixture */

struct param {
	enum sluice_liveness_backend backend;
};

static const struct param p_bpf = { SLUICE_LIVENESS_BPF };
static const struct param p_pidfd = { SLUICE_LIVENESS_PIDFD };

/* Between the test and its children, in memory they share. */
struct shared {
	_Atomic uint32_t stage;
	_Atomic int32_t err;		/* a child's errno, for a skip's reason */
	_Atomic uint64_t killed_ns;	/* when a child killed itself */
	_Atomic int32_t pid;		/* a child's word for a pid */
};

struct fx {
	enum sluice_liveness_backend backend;
	struct sluice_liveness *mons[4];	/* made by mon(), destroyed last */
	char name[H_NAME_SZ];
	struct sluice_region *r;
	struct shared *sh;
	int kids[KIDS_MAX];		/* forked, not reaped yet */
	unsigned int nkids;
	struct sluice_spsc *q;		/* at most one ring handle */
	struct sluice_chan *ch;		/* at most one channel handle */
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *rd;
	struct sluice_cancel *tokens[4];
	char root[128];			/* a pin root of the test's own */
};

static int setup(void **state)
{
	SLUICE_OPTS(sluice_region_opts, ro, .pages = SLUICE_PAGES_NO_HUGE);
	const struct param *p = *state;
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->backend = p->backend;
	f->sh = mmap(NULL, sizeof(*f->sh), PROT_READ | PROT_WRITE,
		     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (f->sh == MAP_FAILED) {
		free(f);
		return -1;
	}
	h_name(f->name);
	if (sluice_region_create(f->name, REGION_SIZE, &ro, &f->r)) {
		munmap(f->sh, sizeof(*f->sh));
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Undo whatever an assert left behind. */
static int teardown(void **state)
{
	struct fx *f = *state;
	unsigned int i;

	if (!f)
		return 0;
	/* The monitors first: their watches name what the test had on its stack. */
	sluice_spsc_close(f->q);
	sluice_chan_reader_close(f->rd);
	sluice_chan_writer_close(f->w);
	sluice_chan_close(f->ch);
	for (i = 0; i < SLUICE_ARRAY_SIZE(f->mons); i++)
		sluice_liveness_destroy(f->mons[i]);
	for (i = 0; i < f->nkids; i++) {
		kill(f->kids[i], SIGKILL);
		h_wait(f->kids[i]);
	}
	for (i = 0; i < SLUICE_ARRAY_SIZE(f->tokens); i++)
		sluice_cancel_destroy(f->tokens[i]);
	if (f->root[0])
		nftw(f->root, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	sluice_region_destroy(f->r);
	munmap(f->sh, sizeof(*f->sh));
	free(f);
	h_unlink_all();
	return 0;
}

static bool bpf_refused(int err)
{
	return err == -EPERM || err == -ENOSYS || err == -EOPNOTSUPP;
}

/* AUTO's reason in a library built with BPF=0 (Documentation/liveness.md). */
#define NO_BPF_WHY	"built without BPF"

/*
 * Why BPF is refused here (@err), as the library says it: an AUTO
 * monitor's reason for taking pidfd, NO_BPF_WHY in a library built
 * without BPF.  Asked once; runs a monitor's thread, and joins it.
 */
static const char *bpf_refused_why(int err)
{
	SLUICE_OPTS(sluice_liveness_opts, o, .flags = SLUICE_LIVENESS_NO_PIN);
	static char why[128];
	struct sluice_liveness *m = NULL;

	if (!why[0] && !sluice_liveness_create(&o, &m))
		snprintf(why, sizeof(why), "%s", sluice_liveness_why(m));
	sluice_liveness_destroy(m);
	return why[0] ? why : strerror(-err);
}

/*
 * A monitor of the test's backend, destroyed at teardown unless the test
 * does it first (with mon_destroy()).  A BPF program that cannot load here
 * skips the test.
 */
static struct sluice_liveness *mon_with(struct fx *f, uint32_t flags, const char *root)
{
	SLUICE_OPTS(sluice_liveness_opts, o, .backend = f->backend, .flags = flags,
		    .pin_root = root);
	struct sluice_liveness *m = NULL;
	unsigned int i;
	int err;

	err = sluice_liveness_create(&o, &m);
	if (f->backend == SLUICE_LIVENESS_BPF && bpf_refused(err))
		h_skip("the BPF backend cannot load here: %s", bpf_refused_why(err));
	assert_int_equal(err, 0);
	assert_non_null(m);
	for (i = 0; i < SLUICE_ARRAY_SIZE(f->mons); i++) {
		if (!f->mons[i]) {
			f->mons[i] = m;
			return m;
		}
	}
	fail_msg("more than %zu monitors", SLUICE_ARRAY_SIZE(f->mons));
	return NULL;
}

static struct sluice_liveness *mon(struct fx *f)
{
	return mon_with(f, 0, NULL);
}

static void mon_destroy(struct fx *f, struct sluice_liveness *m)
{
	unsigned int i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(f->mons); i++)
		if (f->mons[i] == m)
			f->mons[i] = NULL;
	sluice_liveness_destroy(m);
}

static struct sluice_cancel *token(struct fx *f)
{
	unsigned int i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(f->tokens); i++) {
		if (!f->tokens[i]) {
			assert_int_equal(sluice_cancel_create(NULL, &f->tokens[i]), 0);
			return f->tokens[i];
		}
	}
	fail_msg("more than %zu tokens", SLUICE_ARRAY_SIZE(f->tokens));
	return NULL;
}

/* ---------------------------------------------------------------- children */

static uint64_t now_ns(void)
{
	return sluice__now_ns(CLOCK_MONOTONIC);
}

static double ms_since(uint64_t t0, uint64_t t1)
{
	return t1 >= t0 ? (double)(t1 - t0) / 1e6 : -(double)(t0 - t1) / 1e6;
}

struct kid_call {
	int (*fn)(void *arg);
	void *arg;
};

static int kid_main(void *p)
{
	struct kid_call *c = p;

	/* A fault kills the child: cmocka's handler would run tests in it. */
	signal(SIGSEGV, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
	signal(SIGABRT, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGFPE, SIG_DFL);
	return c->fn(c->arg);
}

/* Run @fn(@arg) in a child the fixture kills and reaps if the test does not. */
static pid_t kid(struct fx *f, int (*fn)(void *), void *arg)
{
	struct kid_call c = { fn, arg };
	int pid;

	assert_true(f->nkids < KIDS_MAX);
	pid = h_spawn(kid_main, &c, CHILD_TIMEOUT);
	assert_true(pid > 0);
	f->kids[f->nkids++] = pid;
	return pid;
}

/* Reap @pid; returns how it ended, as h_wait() says. */
static int reap(struct fx *f, pid_t pid)
{
	unsigned int i;

	for (i = 0; i < f->nkids; i++) {
		if (f->kids[i] == pid) {
			f->kids[i] = f->kids[--f->nkids];
			return h_wait(pid);
		}
	}
	fail_msg("pid %d is not a child of this test", (int)pid);
	return -1;
}

/*
 * A child that does nothing until it is killed (or its alarm goes off):
 * sleep(1), so that it is small and its death takes the kernel no time (a
 * copy of this process under a sanitizer takes milliseconds to tear
 * down, which is the kernel's time, not the monitor's).
 */
static int sleeper(void *arg)
{
	(void)arg;
	execl("/bin/sleep", "sleep", "60", (char *)NULL);
	for (;;)
		pause();
	return 0;
}

static uint64_t start_of(pid_t pid)
{
	uint64_t start = 0;

	assert_int_equal(sluice__proc_start_time(pid, &start), 0);
	assert_true(start != 0);
	return start;
}

/* Kill @pid and say when. */
static uint64_t kill_now(pid_t pid)
{
	uint64_t t = now_ns();

	assert_int_equal(kill(pid, SIGKILL), 0);
	return t;
}

/* In a child: note the time, then die with no chance to clean up. */
static void die(struct shared *sh)
{
	atomic_store(&sh->killed_ns, now_ns());
	raise(SIGKILL);
}

/* ---------------------------------------------------------------- watch functions */

/* What a watch function saw. */
struct fire {
	_Atomic uint32_t n;		/* calls */
	_Atomic int32_t pid;
	_Atomic uint64_t start;
	_Atomic uint64_t at_ns;		/* the first call */
	_Atomic uint32_t forbidden;	/* set: no call may come any more */
	_Atomic uint32_t bad;		/* calls that came all the same */
	_Atomic uint32_t alive;		/* calls while /proc called it alive */
	/* If m is set, the function unwatches unwatch_id and keeps what it said. */
	struct sluice_liveness *m;
	_Atomic uint64_t unwatch_id;
	_Atomic int unwatch_ret;
};

static void on_death(pid_t pid, uint64_t start, void *arg)
{
	struct fire *fr = arg;
	uint64_t zero = 0;

	if (atomic_load(&fr->forbidden))
		atomic_fetch_add(&fr->bad, 1);
	atomic_compare_exchange_strong(&fr->at_ns, &zero, now_ns());
	/* What a ring or a channel asks next must say dead already. */
	if (sluice__proc_alive(pid, start))
		atomic_fetch_add(&fr->alive, 1);
	atomic_store(&fr->pid, pid);
	atomic_store(&fr->start, start);
	if (fr->m)
		atomic_store(&fr->unwatch_ret,
			     sluice_liveness_unwatch(fr->m, atomic_load(&fr->unwatch_id)));
	/* Last, release: whoever sees the count sees the rest. */
	atomic_fetch_add_explicit(&fr->n, 1, memory_order_release);
}

static uint64_t watch(struct sluice_liveness *m, pid_t pid, uint64_t start, struct fire *fr)
{
	uint64_t id = 0;

	assert_int_equal(sluice_liveness_watch_fn(m, pid, start, on_death, fr, &id), 0);
	return id;
}

/* Wait for @fr's first call; 0, or -ETIMEDOUT after @ms. */
static int fired_within(struct fire *fr, int64_t ms)
{
	int64_t t0 = h_now_ms();

	while (!atomic_load_explicit(&fr->n, memory_order_acquire)) {
		if (h_now_ms() - t0 > ms)
			return -ETIMEDOUT;
		sched_yield();
		usleep(200);
	}
	return 0;
}

/*
 * @fr was called for the death of @pid (@start), killed at @killed_ns,
 * within BOUND_MS.  Returns the latency in ms.  (assert_still_once() then
 * shows that no second call follows.)
 */
static double assert_fired_once(struct fire *fr, pid_t pid, uint64_t start,
				uint64_t killed_ns, const char *what)
{
	double ms;

	if (fired_within(fr, 2 * BOUND_MS + 1000))
		fail_msg("%s: the watch of pid %d never fired", what, (int)pid);
	ms = ms_since(killed_ns, atomic_load(&fr->at_ns));
	assert_int_equal(atomic_load(&fr->pid), pid);
	assert_int_equal(atomic_load(&fr->start), start);
	if (atomic_load(&fr->alive))
		fail_msg("%s: pid %d fired while /proc still called it alive", what, (int)pid);
	if (ms >= BOUND_MS)
		fail_msg("%s: pid %d fired %.2f ms after its death, bound %d ms",
			 what, (int)pid, ms, BOUND_MS);
	return ms;
}

static void assert_still_once(struct fire *fr, unsigned int n)
{
	unsigned int i;

	h_sleep_ms(50);
	for (i = 0; i < n; i++)
		if (atomic_load(&fr[i].n) != 1)
			fail_msg("watch %u was called %u times", i, atomic_load(&fr[i].n));
}

/* ---------------------------------------------------------------- inspection */

/* Directories of @root whose name starts with "<pid>-": how many, the last in @out. */
static int pin_dirs(const char *root, pid_t pid, char *out, size_t len)
{
	char prefix[32];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "%d-", (int)pid);
	d = opendir(root);
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)))
			continue;
		n++;
		if (out)
			snprintf(out, len, "%s/%s", root, de->d_name);
	}
	closedir(d);
	return n;
}

static bool exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

static int bpf_sys(int cmd, union bpf_attr *attr)
{
	return (int)syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

/*
 * Does the pinned watched map at @path have @pid of our pid namespace?
 * (Its keys are struct sluice_lv_key.)  1 or 0, or -errno if it cannot be
 * read.
 */
static int map_has_pid(const char *path, pid_t pid)
{
	struct sluice_lv_key key, next;
	struct bpf_map_info info;
	union bpf_attr a;
	struct stat ns;
	bool first = true, found = false;
	int fd, err = 0;

	if (stat("/proc/self/ns/pid", &ns))
		return -errno;
	memset(&a, 0, sizeof(a));
	a.pathname = (uint64_t)(uintptr_t)path;
	fd = bpf_sys(BPF_OBJ_GET, &a);
	if (fd < 0)
		return -errno;
	memset(&info, 0, sizeof(info));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = fd;
	a.info.info_len = sizeof(info);
	a.info.info = (uint64_t)(uintptr_t)&info;
	if (bpf_sys(BPF_OBJ_GET_INFO_BY_FD, &a) < 0 || info.key_size != sizeof(key)) {
		err = -EPROTO;
		goto out;
	}
	memset(&key, 0, sizeof(key));
	for (;;) {
		memset(&a, 0, sizeof(a));
		a.map_fd = fd;
		a.key = first ? 0 : (uint64_t)(uintptr_t)&key;
		a.next_key = (uint64_t)(uintptr_t)&next;
		if (bpf_sys(BPF_MAP_GET_NEXT_KEY, &a) < 0)
			break;
		first = false;
		key = next;
		if (key.pid == (uint32_t)pid && key.ns_ino == (uint64_t)ns.st_ino)
			found = true;
	}
out:
	close(fd);
	return err ? err : found;
}

/* Does this process hold a pidfd of @pid?  (fdinfo of a pidfd says "Pid:".) */
static bool have_pidfd_of(pid_t pid)
{
	char path[300], line[128], want[32];
	struct dirent *de;
	bool found = false;
	FILE *fp;
	DIR *d;

	snprintf(want, sizeof(want), "Pid:\t%d\n", (int)pid);
	d = opendir("/proc/self/fdinfo");
	if (!d)
		return false;
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fdinfo/%s", de->d_name);
		fp = fopen(path, "re");
		if (!fp)
			continue;
		while (fgets(line, sizeof(line), fp))
			if (!strcmp(line, want))
				found = true;
		fclose(fp);
	}
	closedir(d);
	return found;
}

/*
 * Is @pid watched by the monitor of this process, as its backend shows it:
 * BPF, in the watched map pinned by the only monitor of this process;
 * pidfd, by the pidfd it polls.
 */
static bool watched(enum sluice_liveness_backend b, pid_t pid)
{
	char dir[PATH_MAX], map[PATH_MAX + 16];

	if (b == SLUICE_LIVENESS_PIDFD)
		return have_pidfd_of(pid);
	if (pin_dirs(PIN_ROOT, getpid(), dir, sizeof(dir)) != 1)
		return false;
	snprintf(map, sizeof(map), "%s/watched", dir);
	return map_has_pid(map, pid) == 1;
}

/* Poll watched() for up to @ms. */
static bool watched_within(enum sluice_liveness_backend b, pid_t pid, int64_t ms)
{
	int64_t t0 = h_now_ms();

	do {
		if (watched(b, pid))
			return true;
		h_sleep_ms(2);
	} while (h_now_ms() - t0 < ms);
	return false;
}

static int count_threads(void)
{
	struct dirent *de;
	int n = 0;
	DIR *d = opendir("/proc/self/task");

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* ---------------------------------------------------------------- the monitor */

/*
 * Threads of this process once a joined thread has left /proc: the kernel
 * wakes the joiner a moment before the thread is unlisted, so look again
 * for up to a second while there are more than @want.
 */
static int threads_settled(int want)
{
	int i, n = count_threads();

	for (i = 0; i < 1000 && n > want; i++) {
		usleep(1000);
		n = count_threads();
	}
	return n;
}

/* Threads of this process, once the count has held for 20 ms. */
static int threads_stable(void)
{
	int i, same = 0, n = count_threads(), m;

	for (i = 0; i < 1000 && same < 20; i++) {
		usleep(1000);
		m = count_threads();
		same = m == n ? same + 1 : 0;
		n = m;
	}
	return n;
}

static void test_create_and_destroy_leave_no_thread_or_fd_behind(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m;
	int fds, threads;

	/* Once first: a sanitizer starts a thread of its own with the first. */
	m = mon(f);
	mon_destroy(f, m);
	fds = h_count_fds();
	threads = threads_stable();
	m = mon(f);
	assert_int_equal(sluice_liveness_backend(m), f->backend);
	/* why() speaks only for AUTO. */
	assert_string_equal(sluice_liveness_why(m), "");
	assert_int_equal(count_threads(), threads + 1);
	mon_destroy(f, m);
	assert_int_equal(threads_settled(threads), threads);
	assert_int_equal(h_count_fds(), fds);
	/* Twice over: nothing of the first stands in the way. */
	m = mon(f);
	mon_destroy(f, m);
	assert_int_equal(h_count_fds(), fds);
	assert_int_equal(threads_settled(threads), threads);
}

static void test_auto_takes_bpf_where_it_loads(void **state)
{
	SLUICE_OPTS(sluice_liveness_opts, bo, .backend = SLUICE_LIVENESS_BPF,
		    .flags = SLUICE_LIVENESS_NO_PIN);
	SLUICE_OPTS(sluice_liveness_opts, ao, .backend = SLUICE_LIVENESS_AUTO);
	struct sluice_liveness *b = NULL, *a = NULL;
	int err;

	(void)state;
	err = sluice_liveness_create(&bo, &b);
	sluice_liveness_destroy(b);
	assert_int_equal(sluice_liveness_create(&ao, &a), 0);
	if (bpf_refused(err)) {
		/* No BPF here: pidfd, and a reason. */
		assert_int_equal(sluice_liveness_backend(a), SLUICE_LIVENESS_PIDFD);
		assert_true(strlen(sluice_liveness_why(a)) > 0);
		print_message("    BPF refused (%s); AUTO says: %s\n", strerror(-err),
			      sluice_liveness_why(a));
	} else {
		assert_int_equal(err, 0);
		assert_int_equal(sluice_liveness_backend(a), SLUICE_LIVENESS_BPF);
		assert_string_equal(sluice_liveness_why(a), "");
	}
	sluice_liveness_destroy(a);
	/* NULL options: AUTO too. */
	a = NULL;
	assert_int_equal(sluice_liveness_create(NULL, &a), 0);
	assert_int_equal(sluice_liveness_backend(a),
			 bpf_refused(err) ? SLUICE_LIVENESS_PIDFD : SLUICE_LIVENESS_BPF);
	sluice_liveness_destroy(a);
}

/*
 * A library built with BPF=0 says so where AUTO gives its reason, and
 * refuses BPF asked for by name with -EOPNOTSUPP.  The library's own
 * word tells the builds apart; test_abi checks that such a library links
 * no libbpf.
 */
static void test_a_library_built_without_bpf_says_so_and_refuses_bpf(void **state)
{
	SLUICE_OPTS(sluice_liveness_opts, bo, .backend = SLUICE_LIVENESS_BPF);
	SLUICE_OPTS(sluice_liveness_opts, po, .backend = SLUICE_LIVENESS_PIDFD);
	struct sluice_liveness *a = NULL, *out = (void *)&bo;
	const char *why;

	(void)state;
	assert_int_equal(sluice_liveness_create(NULL, &a), 0);
	why = sluice_liveness_why(a);
	if (strcmp(why, NO_BPF_WHY)) {
		print_message("    AUTO took %s%s%s\n",
			      sluice_liveness_backend_str(sluice_liveness_backend(a)),
			      why[0] ? ": " : "", why);
		sluice_liveness_destroy(a);
		h_skip("the library is built with BPF");
	}
	assert_int_equal(sluice_liveness_backend(a), SLUICE_LIVENESS_PIDFD);
	sluice_liveness_destroy(a);
	assert_int_equal(sluice_liveness_create(&bo, &out), -EOPNOTSUPP);
	assert_ptr_equal(out, (void *)&bo);
	/* Asked for by name, pidfd has no reason to give. */
	a = NULL;
	assert_int_equal(sluice_liveness_create(&po, &a), 0);
	assert_int_equal(sluice_liveness_backend(a), SLUICE_LIVENESS_PIDFD);
	assert_string_equal(sluice_liveness_why(a), "");
	sluice_liveness_destroy(a);
}

static void test_backend_str_names_every_backend(void **state)
{
	(void)state;
	assert_string_equal(sluice_liveness_backend_str(SLUICE_LIVENESS_AUTO), "auto");
	assert_string_equal(sluice_liveness_backend_str(SLUICE_LIVENESS_BPF), "bpf");
	assert_string_equal(sluice_liveness_backend_str(SLUICE_LIVENESS_PIDFD), "pidfd");
	assert_string_equal(sluice_liveness_backend_str(3), "?");
	assert_string_equal(sluice_liveness_backend_str((enum sluice_liveness_backend)-1), "?");
}

static void test_bad_arguments_are_einval(void **state)
{
	struct fx *f = *state;
	SLUICE_OPTS(sluice_liveness_opts, o, .backend = f->backend);
	struct sluice_liveness *m, *out = (void *)&o;
	struct sluice_cancel *t;
	struct fire fr = { 0 };
	uint64_t id = 0;
	pid_t pid;

	assert_int_equal(sluice_liveness_create(&o, NULL), -EINVAL);
	o.backend = 3;
	assert_int_equal(sluice_liveness_create(&o, &out), -EINVAL);
	o.backend = f->backend;
	o.flags = 1u << 7;
	assert_int_equal(sluice_liveness_create(&o, &out), -EINVAL);
	o.flags = 0;
	o.sz = 1;
	assert_int_equal(sluice_liveness_create(&o, &out), -EINVAL);
	/* A newer caller's field this library does not know, set. */
	{
		struct {
			struct sluice_liveness_opts o;
			uint64_t more;
		} big = { .o = { .sz = sizeof(big), .backend = f->backend }, .more = 1 };

		assert_int_equal(sluice_liveness_create(&big.o, &out), -EINVAL);
	}
	/* Nothing was handed back by any of them. */
	assert_ptr_equal(out, (void *)&o);

	m = mon(f);
	t = token(f);
	pid = kid(f, sleeper, NULL);
	assert_int_equal(sluice_liveness_watch_fn(NULL, pid, 0, on_death, &fr, &id), -EINVAL);
	assert_int_equal(sluice_liveness_watch_fn(m, 0, 0, on_death, &fr, &id), -EINVAL);
	assert_int_equal(sluice_liveness_watch_fn(m, -1, 0, on_death, &fr, &id), -EINVAL);
	assert_int_equal(sluice_liveness_watch_fn(m, pid, 0, NULL, &fr, &id), -EINVAL);
	assert_int_equal(sluice_liveness_watch(NULL, pid, 0, t, 0, &id), -EINVAL);
	assert_int_equal(sluice_liveness_watch(m, pid, 0, NULL, 0, &id), -EINVAL);
	assert_int_equal(sluice_liveness_watch(m, 0, 0, t, 0, &id), -EINVAL);
	/* A reason is a negative errno, as sluice_cancel_trigger() takes it. */
	assert_int_equal(sluice_liveness_watch(m, pid, 0, t, EPIPE, &id), -EINVAL);
	assert_int_equal(sluice_liveness_unwatch(NULL, 1), -EINVAL);
	assert_int_equal(sluice_liveness_unwatch(m, 0x5eed5eed), -ENOENT);
	sluice_liveness_destroy(NULL);
	/* None of the refused watches is there: the death calls nothing. */
	kill_now(pid);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	h_sleep_ms(BOUND_MS / 2);
	assert_int_equal(atomic_load(&fr.n), 0);
	assert_int_equal(sluice_cancel_reason(t), 0);
}

static void test_a_killed_child_fires_once_with_its_pid_and_start(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire fr = { 0 };
	uint64_t start, t;
	pid_t pid;
	double ms;

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	watch(m, pid, start, &fr);
	/* Alive: nothing. */
	h_sleep_ms(50);
	assert_int_equal(atomic_load(&fr.n), 0);
	t = kill_now(pid);
	/* Not reaped yet: death is the exit, not the parent's wait. */
	ms = assert_fired_once(&fr, pid, start, t, "kill -9");
	print_message("    %s saw the death %.3f ms after kill()\n",
		      sluice_liveness_backend_str(f->backend), ms);
	assert_still_once(&fr, 1);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	h_sleep_ms(20);
	assert_int_equal(atomic_load(&fr.n), 1);
}

static void test_a_token_watch_triggers_the_token_with_epipe_or_its_reason(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct sluice_cancel *plain = token(f), *why = token(f), *off = token(f);
	uint64_t start, t, id;
	int64_t t0;
	pid_t pid;

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	assert_int_equal(sluice_liveness_watch(m, pid, start, plain, 0, NULL), 0);
	assert_int_equal(sluice_liveness_watch(m, pid, start, why, -ECONNRESET, NULL), 0);
	assert_int_equal(sluice_liveness_watch(m, pid, start, off, 0, &id), 0);
	assert_int_equal(sluice_liveness_unwatch(m, id), 0);
	h_sleep_ms(20);
	assert_int_equal(sluice_cancel_reason(plain), 0);
	t = kill_now(pid);
	t0 = h_now_ms();
	while ((!sluice_cancel_reason(plain) || !sluice_cancel_reason(why)) &&
	       h_now_ms() - t0 < 2 * BOUND_MS + 1000)
		usleep(200);
	print_message("    both tokens triggered %.3f ms after kill()\n", ms_since(t, now_ns()));
	assert_int_equal(sluice_cancel_reason(plain), -EPIPE);
	assert_int_equal(sluice_cancel_reason(why), -ECONNRESET);
	assert_true(ms_since(t, now_ns()) < BOUND_MS + 2);
	h_sleep_ms(20);
	assert_int_equal(sluice_cancel_reason(off), 0);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
}

static void test_a_watch_unwatched_before_the_death_is_never_called(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire gone = { 0 }, control = { 0 };
	uint64_t start, id, t;
	pid_t pid;

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	id = watch(m, pid, start, &gone);
	watch(m, pid, start, &control);
	assert_int_equal(sluice_liveness_unwatch(m, id), 0);
	atomic_store(&gone.forbidden, 1);
	/* Gone for good: a second unwatch finds nothing. */
	assert_int_equal(sluice_liveness_unwatch(m, id), -ENOENT);
	t = kill_now(pid);
	/* The death was seen (the control fired), and skipped the unwatched. */
	assert_fired_once(&control, pid, start, t, "control");
	assert_still_once(&control, 1);
	assert_int_equal(atomic_load(&gone.n), 0);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
}

static void test_unwatch_after_the_watch_fired_is_enoent(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire fr = { 0 };
	uint64_t start, id, t;
	pid_t pid;

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	id = watch(m, pid, start, &fr);
	t = kill_now(pid);
	assert_fired_once(&fr, pid, start, t, "kill -9");
	assert_int_equal(sluice_liveness_unwatch(m, id), -ENOENT);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
}

static void test_unwatch_from_inside_a_watch_function_is_edeadlk(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire a = { 0 }, b = { 0 }, c = { 0 };
	uint64_t sa, sb, sc, ta, tb, tc;
	pid_t pa, pb, pc;
	int ret;

	pa = kid(f, sleeper, NULL);
	pb = kid(f, sleeper, NULL);
	pc = kid(f, sleeper, NULL);
	sa = start_of(pa);
	sb = start_of(pb);
	sc = start_of(pc);
	/* a unwatches itself as it runs. */
	a.m = m;
	a.unwatch_ret = 1;
	atomic_store(&a.unwatch_id, watch(m, pa, sa, &a));
	ta = kill_now(pa);
	assert_fired_once(&a, pa, sa, ta, "a");
	assert_int_equal(atomic_load(&a.unwatch_ret), -EDEADLK);

	/* c unwatches b, another watch of the same monitor, as it runs. */
	c.m = m;
	c.unwatch_ret = 1;
	atomic_store(&c.unwatch_id, watch(m, pb, sb, &b));
	watch(m, pc, sc, &c);
	tc = kill_now(pc);
	assert_fired_once(&c, pc, sc, tc, "c");
	ret = atomic_load(&c.unwatch_ret);
	print_message("    unwatch of another watch from inside a watch function: %d\n", ret);
	tb = kill_now(pb);
	if (ret == -EDEADLK) {
		/* Refused, so still watched: b fires when its process dies. */
		assert_fired_once(&b, pb, sb, tb, "b");
		assert_int_equal(sluice_liveness_unwatch(m, atomic_load(&c.unwatch_id)), -ENOENT);
	} else {
		/* Done, then: b never fires. */
		assert_int_equal(ret, 0);
		h_sleep_ms(BOUND_MS);
		assert_int_equal(atomic_load(&b.n), 0);
	}
	assert_still_once(&a, 1);
	assert_still_once(&c, 1);
	assert_int_equal(reap(f, pa), H_SIGNALED + SIGKILL);
	assert_int_equal(reap(f, pb), H_SIGNALED + SIGKILL);
	assert_int_equal(reap(f, pc), H_SIGNALED + SIGKILL);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_fifty_children_killed_in_random_order_each_fire_once(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire fr[MANY];
	uint64_t start[MANY], killed[MANY], seed;
	unsigned int order[MANY], i, j, tmp;
	double ms, worst = 0, sum = 0;
	pid_t pid[MANY];

	memset(fr, 0, sizeof(fr));
	for (i = 0; i < MANY; i++) {
		pid[i] = kid(f, sleeper, NULL);
		start[i] = start_of(pid[i]);
		watch(m, pid[i], start[i], &fr[i]);
		order[i] = i;
	}
	seed = now_ns() | 1;
	print_message("    seed %" PRIu64 "\n", seed);
	for (i = MANY - 1; i > 0; i--) {
		j = (unsigned int)(rng_next(&seed) % (i + 1));
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	h_sleep_ms(20);
	for (i = 0; i < MANY; i++)
		assert_int_equal(atomic_load(&fr[i].n), 0);
	/* Half at once, then the rest one by one. */
	for (i = 0; i < MANY; i++) {
		killed[order[i]] = kill_now(pid[order[i]]);
		if (i >= MANY / 2)
			h_sleep_ms(2);
	}
	for (i = 0; i < MANY; i++) {
		ms = assert_fired_once(&fr[i], pid[i], start[i], killed[i], "one of fifty");
		sum += ms;
		if (ms > worst)
			worst = ms;
	}
	assert_still_once(fr, MANY);
	print_message("    %d deaths: mean %.3f ms, worst %.3f ms\n", MANY, sum / MANY, worst);
	for (i = 0; i < MANY; i++)
		assert_int_equal(reap(f, pid[i]), H_SIGNALED + SIGKILL);
}

static void test_a_dead_pid_with_its_old_start_fires_at_once(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire fr = { 0 };
	uint64_t start, t;
	pid_t pid;

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	kill_now(pid);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	/* The pid is free (or someone else's by now): not the process watched. */
	t = now_ns();
	watch(m, pid, start, &fr);
	assert_fired_once(&fr, pid, start, t, "dead before the watch");
	assert_still_once(&fr, 1);
}

static void test_a_live_pid_with_another_start_fires_at_once(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire wrong = { 0 }, right = { 0 };
	uint64_t start, t;
	pid_t pid;

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	watch(m, pid, start, &right);
	/* The process of that pid started at another time: it is not this one. */
	t = now_ns();
	watch(m, pid, start + 1, &wrong);
	assert_fired_once(&wrong, pid, start + 1, t, "another start");
	assert_still_once(&wrong, 1);
	/* And the live one it is taken for is not dead. */
	assert_int_equal(kill(pid, 0), 0);
	assert_int_equal(atomic_load(&right.n), 0);
	t = kill_now(pid);
	assert_fired_once(&right, pid, start, t, "the right start");
	assert_int_equal(atomic_load(&wrong.n), 1);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
}

static void test_two_watches_of_one_process_both_fire(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire fr[2];
	struct sluice_cancel *t = token(f);
	uint64_t start, k;
	pid_t pid;

	memset(fr, 0, sizeof(fr));
	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	watch(m, pid, start, &fr[0]);
	watch(m, pid, start, &fr[1]);
	assert_int_equal(sluice_liveness_watch(m, pid, start, t, 0, NULL), 0);
	k = kill_now(pid);
	assert_fired_once(&fr[0], pid, start, k, "first");
	assert_fired_once(&fr[1], pid, start, k, "second");
	assert_still_once(fr, 2);
	assert_int_equal(sluice_cancel_reason(t), -EPIPE);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
}

static void test_a_watch_with_start_zero_reads_the_start_time(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire fr = { 0 };
	uint64_t start, t;
	pid_t pid;

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	watch(m, pid, 0, &fr);
	h_sleep_ms(30);
	/* Read, not taken as "another start": alive, so nothing yet. */
	assert_int_equal(atomic_load(&fr.n), 0);
	t = kill_now(pid);
	assert_fired_once(&fr, pid, start, t, "start 0");
	assert_still_once(&fr, 1);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
}

static void test_destroy_with_live_watches_calls_nothing_once_it_returns(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f), *control = mon(f);
	struct fire fr[8], ctl[4];
	uint64_t start[8];
	unsigned int i;
	pid_t pid[8];
	int fds;

	memset(fr, 0, sizeof(fr));
	memset(ctl, 0, sizeof(ctl));
	for (i = 0; i < 8; i++) {
		pid[i] = kid(f, sleeper, NULL);
		start[i] = start_of(pid[i]);
	}
	/* Four alive when the monitor goes; a second monitor sees them die. */
	for (i = 0; i < 4; i++) {
		watch(m, pid[i], start[i], &fr[i]);
		watch(control, pid[i], start[i], &ctl[i]);
	}
	mon_destroy(f, m);
	for (i = 0; i < 4; i++)
		atomic_store(&fr[i].forbidden, 1);
	for (i = 0; i < 4; i++)
		kill_now(pid[i]);
	for (i = 0; i < 4; i++)
		assert_int_equal(fired_within(&ctl[i], 2 * BOUND_MS + 1000), 0);
	h_sleep_ms(50);
	for (i = 0; i < 4; i++)
		assert_int_equal(atomic_load(&fr[i].n), 0);

	/* Four dying while the monitor goes: calls before it returns, or none. */
	fds = h_count_fds();
	m = mon(f);
	for (i = 4; i < 8; i++)
		watch(m, pid[i], start[i], &fr[i]);
	for (i = 4; i < 8; i++)
		kill_now(pid[i]);
	mon_destroy(f, m);
	for (i = 4; i < 8; i++)
		atomic_store(&fr[i].forbidden, 1);
	h_sleep_ms(50);
	for (i = 0; i < 8; i++) {
		assert_int_equal(atomic_load(&fr[i].bad), 0);
		assert_true(atomic_load(&fr[i].n) <= 1);
	}
	assert_int_equal(h_count_fds(), fds);
	for (i = 0; i < 8; i++)
		assert_int_equal(reap(f, pid[i]), H_SIGNALED + SIGKILL);
}

/* ---------------------------------------------------------------- threads */

/*
 * A process whose main thread leaves early: this program again (execve, so
 * that its threads are new in every build), told what to do by two pipes.
 * argv: --leader-exits FD_LEADER FD_LAST.  The leader reads a byte from
 * FD_LEADER and calls pthread_exit(); the other thread reads one from
 * FD_LAST and ends the process.
 */
static void *last_thread(void *p)
{
	int fd = (int)(intptr_t)p;
	char c;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	/*
	 * What returning would do too, were it not for a sanitizer's own
	 * thread, which would keep the process, and its exit handlers
	 * (ThreadSanitizer's sleep for a second, even in _exit()).
	 */
	syscall(SYS_exit_group, 0);
	return NULL;
}

static int leader_exits_main(int fd_leader, int fd_last)
{
	pthread_t t;
	char c;

	if (pthread_create(&t, NULL, last_thread, (void *)(intptr_t)fd_last))
		return 2;
	while (read(fd_leader, &c, 1) < 0 && errno == EINTR)
		;
	pthread_exit(NULL);
	return 0;
}

struct leader_args {
	int fd_leader, fd_last;
	int close1, close2;		/* the parent's ends */
};

static int exec_leader_exits(void *p)
{
	struct leader_args *a = p;
	char x[16], y[16];

	close(a->close1);
	close(a->close2);
	snprintf(x, sizeof(x), "%d", a->fd_leader);
	snprintf(y, sizeof(y), "%d", a->fd_last);
	execl("/proc/self/exe", "test_liveness", "--leader-exits", x, y, (char *)NULL);
	fprintf(stderr, "execl: %s\n", strerror(errno));
	return 127;
}

static int threads_of(pid_t pid)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* The state letter of /proc/@pid/stat (the leader's), or 0. */
static char state_of(pid_t pid)
{
	char path[64], buf[512], *p;
	size_t n;
	FILE *fp;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fp = fopen(path, "re");
	if (!fp)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' ? p[2] : 0;
}

static void test_a_process_whose_leader_exits_early_fires_when_its_last_thread_does(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct fire before = { 0 }, after = { 0 }, zero = { 0 };
	int leader[2], last[2];
	struct leader_args a;
	uint64_t start, t;
	int64_t t0;
	pid_t pid;

	assert_int_equal(pipe2(leader, O_CLOEXEC), 0);
	assert_int_equal(pipe2(last, O_CLOEXEC), 0);
	/* The child's ends survive execve; the parent's do not reach it. */
	assert_int_equal(fcntl(leader[0], F_SETFD, 0), 0);
	assert_int_equal(fcntl(last[0], F_SETFD, 0), 0);
	a = (struct leader_args){ leader[0], last[0], leader[1], last[1] };
	pid = kid(f, exec_leader_exits, &a);
	close(leader[0]);
	close(last[0]);
	start = start_of(pid);
	t0 = h_now_ms();
	/* Its two threads (and, under a sanitizer, maybe one of the runtime's). */
	while (threads_of(pid) < 2 && h_now_ms() - t0 < 5000)
		h_sleep_ms(1);
	assert_true(threads_of(pid) >= 2);
	watch(m, pid, start, &before);

	/* The leader goes; the process lives on in its other thread. */
	assert_int_equal(write(leader[1], "x", 1), 1);
	t0 = h_now_ms();
	while (state_of(pid) != 'Z' && h_now_ms() - t0 < 5000)
		h_sleep_ms(1);
	assert_int_equal(state_of(pid), 'Z');
	assert_true(threads_of(pid) >= 2);
	h_sleep_ms(BOUND_MS / 2);
	if (atomic_load(&before.n))
		fail_msg("fired when the leader thread exited, with a thread still running");
	/* Watched now, with the leader a zombie: still alive, by its start or by 0. */
	watch(m, pid, start, &after);
	watch(m, pid, 0, &zero);
	h_sleep_ms(BOUND_MS / 2);
	if (atomic_load(&after.n) || atomic_load(&zero.n))
		fail_msg("a process whose leader exited was taken for dead when watched "
			 "(start given: %u calls, start 0: %u calls)",
			 atomic_load(&after.n), atomic_load(&zero.n));
	assert_int_equal(atomic_load(&before.n), 0);

	/* The last thread goes: now it is dead, once. */
	t = now_ns();
	assert_int_equal(write(last[1], "x", 1), 1);
	assert_fired_once(&before, pid, start, t, "watched before the leader exited");
	assert_fired_once(&after, pid, start, t, "watched after the leader exited");
	assert_fired_once(&zero, pid, start, t, "watched with start 0");
	assert_still_once(&before, 1);
	assert_still_once(&after, 1);
	assert_still_once(&zero, 1);
	close(leader[1]);
	close(last[1]);
	assert_int_equal(reap(f, pid), 0);
}

/*
 * Many threads watch, unwatch and see deaths on one monitor at once,
 * while another kills the watched processes one by one.  Every watch is
 * called at most once; one unwatched (0) is never called; one whose
 * unwatch said -ENOENT has been called, and returned; every other is
 * called once its process has died.
 */
#define STRESS_THREADS	4
#define STRESS_KIDS	24

struct stress_rec {
	struct fire fr;
	_Atomic uint32_t unwatched;	/* unwatch said 0 */
	uint32_t kid;
};

struct stress {
	struct sluice_liveness *m;
	pid_t pid[STRESS_KIDS];
	uint64_t start[STRESS_KIDS];
	struct stress_rec *rec;		/* STRESS_THREADS * STRESS_ROUNDS */
	_Atomic uint32_t go;
	_Atomic uint32_t errors;
	char why[256];
	pthread_mutex_t lock;
};

struct stress_thread {
	struct stress *s;
	unsigned int index;
	pthread_t t;
};

static void stress_error(struct stress *s, const char *fmt, int a, int b)
{
	pthread_mutex_lock(&s->lock);
	if (!atomic_fetch_add(&s->errors, 1))
		snprintf(s->why, sizeof(s->why), fmt, a, b);
	pthread_mutex_unlock(&s->lock);
}

static void *stress_watcher(void *p)
{
	struct stress_thread *st = p;
	struct stress *s = st->s;
	uint64_t seed = 0x9e3779b97f4a7c15ull * (st->index + 1), id;
	struct stress_rec *r;
	unsigned int i, k;
	int err;

	while (!atomic_load(&s->go))
		sched_yield();
	for (i = 0; i < STRESS_ROUNDS; i++) {
		r = &s->rec[st->index * STRESS_ROUNDS + i];
		k = (unsigned int)(rng_next(&seed) % STRESS_KIDS);
		r->kid = k;
		err = sluice_liveness_watch_fn(s->m, s->pid[k], s->start[k], on_death, &r->fr, &id);
		if (err) {
			stress_error(s, "watch %d: %d", (int)i, err);
			continue;
		}
		if (rng_next(&seed) % 2)
			continue;
		if (rng_next(&seed) % 4 == 0)
			sched_yield();
		err = sluice_liveness_unwatch(s->m, id);
		if (!err) {
			/* Not running and never to run: it must not have run. */
			atomic_store(&r->fr.forbidden, 1);
			atomic_store(&r->unwatched, 1);
			if (atomic_load(&r->fr.n))
				stress_error(s, "unwatch of round %d said 0, after %d calls",
					     (int)i, (int)atomic_load(&r->fr.n));
		} else if (err == -ENOENT) {
			/* It fired, and is done running. */
			if (atomic_load_explicit(&r->fr.n, memory_order_acquire) != 1)
				stress_error(s, "unwatch of round %d said -ENOENT, after %d calls",
					     (int)i, (int)atomic_load(&r->fr.n));
		} else {
			stress_error(s, "unwatch of round %d: %d", (int)i, err);
		}
	}
	return NULL;
}

static void *stress_killer(void *p)
{
	struct stress *s = p;
	unsigned int k;

	while (!atomic_load(&s->go))
		sched_yield();
	for (k = 0; k < STRESS_KIDS; k++) {
		usleep(500);
		kill(s->pid[k], SIGKILL);
	}
	return NULL;
}

static void test_watch_unwatch_and_deaths_from_many_threads_at_once(void **state)
{
	struct fx *f = *state;
	struct stress_thread th[STRESS_THREADS];
	struct stress s;
	struct stress_rec *r;
	pthread_t killer;
	unsigned int i, n = STRESS_THREADS * STRESS_ROUNDS, fired = 0, off = 0;
	int64_t t0;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	/* Children first: no thread of ours is running when they are forked. */
	for (i = 0; i < STRESS_KIDS; i++) {
		s.pid[i] = kid(f, sleeper, NULL);
		s.start[i] = start_of(s.pid[i]);
	}
	/* Before the records: where BPF cannot load, mon() skips the test. */
	s.m = mon(f);
	s.rec = calloc(n, sizeof(*s.rec));
	assert_non_null(s.rec);
	for (i = 0; i < STRESS_THREADS; i++) {
		th[i].s = &s;
		th[i].index = i;
		assert_int_equal(pthread_create(&th[i].t, NULL, stress_watcher, &th[i]), 0);
	}
	assert_int_equal(pthread_create(&killer, NULL, stress_killer, &s), 0);
	atomic_store(&s.go, 1);
	for (i = 0; i < STRESS_THREADS; i++)
		pthread_join(th[i].t, NULL);
	pthread_join(killer, NULL);
	/* Every process is dead: every watch left is called, once. */
	t0 = h_now_ms();
	for (i = 0; i < n; i++) {
		r = &s.rec[i];
		if (atomic_load(&r->unwatched))
			continue;
		while (!atomic_load(&r->fr.n) && h_now_ms() - t0 < 2 * BOUND_MS + 2000)
			usleep(500);
	}
	h_sleep_ms(50);
	for (i = 0; i < n; i++) {
		r = &s.rec[i];
		if (atomic_load(&r->unwatched)) {
			off++;
			if (atomic_load(&r->fr.n))
				stress_error(&s, "round %d: called %d times after unwatch",
					     (int)i, (int)atomic_load(&r->fr.n));
			continue;
		}
		fired++;
		if (atomic_load(&r->fr.n) != 1)
			stress_error(&s, "round %d: called %d times", (int)i,
				     (int)atomic_load(&r->fr.n));
		else if (atomic_load(&r->fr.pid) != s.pid[r->kid] ||
			 atomic_load(&r->fr.start) != s.start[r->kid])
			stress_error(&s, "round %d: called for pid %d", (int)i,
				     (int)atomic_load(&r->fr.pid));
	}
	print_message("    %u watches from %d threads: %u fired, %u unwatched in time\n",
		      n, STRESS_THREADS, fired, off);
	for (i = 0; i < STRESS_KIDS; i++)
		assert_int_equal(reap(f, s.pid[i]), H_SIGNALED + SIGKILL);
	mon_destroy(f, s.m);
	free(s.rec);
	pthread_mutex_destroy(&s.lock);
	if (atomic_load(&s.errors))
		fail_msg("%u errors; the first: %s", atomic_load(&s.errors), s.why);
	/* Both outcomes happened, or the test proved less than it says. */
	assert_true(fired > 0);
	assert_true(off > 0);
}

/* ---------------------------------------------------------------- pins (BPF) */

static bool have_bpftool(void)
{
	return system("command -v bpftool >/dev/null 2>&1") == 0;
}

/*
 * Does "bpftool -j map dump pinned @map" print @needle?  (Its JSON has
 * the maps' BTF, so keys and values come with their field names.)
 */
static bool bpftool_shows(const char *map, const char *needle)
{
	char cmd[PATH_MAX + 64], line[4096];
	bool seen = false;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "bpftool -j map dump pinned %s 2>&1", map);
	fflush(stdout);
	p = popen(cmd, "r");
	assert_non_null(p);
	while (fgets(line, sizeof(line), p))
		if (strstr(line, needle))
			seen = true;
	assert_int_equal(pclose(p), 0);
	return seen;
}

static void test_pins_live_as_long_as_the_monitor(void **state)
{
	struct fx *f = *state;
	char dir[PATH_MAX], watched_map[PATH_MAX + 16], exits_map[PATH_MAX + 16], want[64];
	struct sluice_liveness *m;
	struct fire fr[2];
	uint64_t start, t;
	pid_t pid;

	memset(fr, 0, sizeof(fr));
	assert_int_equal(pin_dirs(PIN_ROOT, getpid(), NULL, 0), 0);
	m = mon(f);
	assert_int_equal(pin_dirs(PIN_ROOT, getpid(), dir, sizeof(dir)), 1);
	snprintf(watched_map, sizeof(watched_map), "%s/watched", dir);
	snprintf(exits_map, sizeof(exits_map), "%s/exits", dir);
	assert_true(exists(watched_map));
	assert_true(exists(exits_map));

	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	assert_int_equal(map_has_pid(watched_map, pid), 0);
	watch(m, pid, start, &fr[0]);
	watch(m, pid, start, &fr[1]);
	assert_int_equal(map_has_pid(watched_map, pid), 1);
	if (have_bpftool()) {
		/* Watched once in the map, by two watches. */
		snprintf(want, sizeof(want), "\"pid\":%d,", (int)pid);
		assert_true(bpftool_shows(watched_map, want));
		snprintf(want, sizeof(want), "\"start\":%" PRIu64 ",\"watches\":2}", start);
		assert_true(bpftool_shows(watched_map, want));
	} else {
		print_message("    (no bpftool here: its dumps are not checked)\n");
	}
	t = kill_now(pid);
	assert_fired_once(&fr[0], pid, start, t, "pinned");
	assert_fired_once(&fr[1], pid, start, t, "pinned, again");
	/* Dead: watched no more, and among the exits, killed by SIGKILL. */
	assert_int_equal(map_has_pid(watched_map, pid), 0);
	if (have_bpftool()) {
		snprintf(want, sizeof(want), "\"pid\":%d,\"status\":%d,", (int)pid, SIGKILL);
		assert_true(bpftool_shows(exits_map, want));
		snprintf(want, sizeof(want), "\"pid\":%d,", (int)pid);
		assert_false(bpftool_shows(watched_map, want));
	}
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);

	mon_destroy(f, m);
	assert_false(exists(dir));
	assert_int_equal(pin_dirs(PIN_ROOT, getpid(), NULL, 0), 0);
}

static void test_no_pin_pins_nothing_and_still_watches(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m;
	struct fire fr = { 0 };
	uint64_t start, t;
	pid_t pid;

	m = mon_with(f, SLUICE_LIVENESS_NO_PIN, NULL);
	assert_int_equal(sluice_liveness_backend(m), SLUICE_LIVENESS_BPF);
	assert_int_equal(pin_dirs(PIN_ROOT, getpid(), NULL, 0), 0);
	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	watch(m, pid, start, &fr);
	assert_int_equal(pin_dirs(PIN_ROOT, getpid(), NULL, 0), 0);
	t = kill_now(pid);
	assert_fired_once(&fr, pid, start, t, "unpinned");
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	mon_destroy(f, m);
}

/* In a child: make a monitor pinned under the root given, and die with it. */
static int monitor_and_vanish(void *p)
{
	struct fx *f = p;
	SLUICE_OPTS(sluice_liveness_opts, o, .backend = SLUICE_LIVENESS_BPF,
		    .pin_root = f->root);
	struct sluice_liveness *m = NULL;

	CK_EQ(sluice_liveness_create(&o, &m), 0);
	CK_EQ(pin_dirs(f->root, getpid(), NULL, 0), 1);
	_exit(0);
}

static void make_root(struct fx *f)
{
	snprintf(f->root, sizeof(f->root), "%s-t%d", PIN_ROOT, (int)getpid());
	nftw(f->root, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	assert_int_equal(mkdir(f->root, 0700), 0);
}

static void test_the_next_monitor_removes_the_pins_of_a_dead_one(void **state)
{
	struct fx *f = *state;
	char path[PATH_MAX], live[PATH_MAX];
	struct sluice_liveness *m, *first;
	pid_t pid, dead;

	/* Loadable at all?  Skips here, before any child, if not. */
	m = mon_with(f, SLUICE_LIVENESS_NO_PIN, NULL);
	mon_destroy(f, m);
	make_root(f);
	/* A monitor that died without destroy: its pins stay. */
	pid = kid(f, monitor_and_vanish, f);
	assert_int_equal(reap(f, pid), 0);
	assert_int_equal(pin_dirs(f->root, pid, NULL, 0), 1);
	/* A made-up one, named for another dead pid. */
	dead = kid(f, sleeper, NULL);
	kill_now(dead);
	assert_int_equal(reap(f, dead), H_SIGNALED + SIGKILL);
	snprintf(path, sizeof(path), "%s/%d-0", f->root, (int)dead);
	assert_int_equal(mkdir(path, 0700), 0);

	/* A live monitor's pins, which must stay. */
	first = mon_with(f, 0, f->root);
	assert_int_equal(pin_dirs(f->root, getpid(), live, sizeof(live)), 1);
	assert_int_equal(pin_dirs(f->root, pid, NULL, 0), 0);
	assert_false(exists(path));

	m = mon_with(f, 0, f->root);
	assert_int_equal(pin_dirs(f->root, getpid(), NULL, 0), 2);
	assert_true(exists(live));
	mon_destroy(f, m);
	assert_int_equal(pin_dirs(f->root, getpid(), NULL, 0), 1);
	assert_true(exists(live));
	mon_destroy(f, first);
	assert_int_equal(pin_dirs(f->root, getpid(), NULL, 0), 0);
}

/*
 * In a child: make a monitor pinned under the root given, fork a worker
 * that lives on (as servers fork theirs), say its pid, and die.
 */
static int monitor_forks_and_vanishes(void *p)
{
	struct fx *f = p;
	SLUICE_OPTS(sluice_liveness_opts, o, .backend = SLUICE_LIVENESS_BPF,
		    .pin_root = f->root);
	struct sluice_liveness *m = NULL;
	pid_t worker;

	CK_EQ(sluice_liveness_create(&o, &m), 0);
	CK_EQ(pin_dirs(f->root, getpid(), NULL, 0), 1);
	worker = fork();
	CK(worker >= 0);
	if (worker == 0) {
		alarm(CHILD_TIMEOUT);	/* alarms are not inherited */
		for (;;)
			pause();
	}
	atomic_store(&f->sh->pid, worker);
	_exit(0);
}

static void test_the_pins_of_a_dead_monitor_go_though_a_child_it_forked_lives(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m;
	pid_t pid, worker;
	int stale;

	m = mon_with(f, SLUICE_LIVENESS_NO_PIN, NULL);
	mon_destroy(f, m);
	make_root(f);
	pid = kid(f, monitor_forks_and_vanishes, f);
	assert_int_equal(reap(f, pid), 0);
	worker = atomic_load(&f->sh->pid);
	assert_true(worker > 0);
	/* The monitor's process is gone; a process it forked is not. */
	assert_int_equal(kill(worker, 0), 0);
	assert_int_equal(pin_dirs(f->root, pid, NULL, 0), 1);
	m = mon_with(f, 0, f->root);
	stale = pin_dirs(f->root, pid, NULL, 0);
	mon_destroy(f, m);
	kill(worker, SIGKILL);
	/* Not ours to reap: its parent died, so init took it. */
	if (stale)
		fail_msg("the pins of monitor %d, dead, stayed while pid %d, which it "
			 "forked, lived", (int)pid, (int)worker);
}

/* ---------------------------------------------------------------- pid namespaces */

/*
 * pid 1 of a new pid namespace with a /proc of its own: this program
 * again (execve, so that the monitor's thread is its first in every
 * build).  argv: --ns-init BACKEND PIN_ROOT ("-": pin nothing).  Watches a
 * child of its own by its pid in the namespace and sees it die.
 */
static int ns_init_main(enum sluice_liveness_backend backend, const char *root)
{
	bool pin = strcmp(root, "-") != 0;
	SLUICE_OPTS(sluice_liveness_opts, o, .backend = backend,
		    .flags = pin ? 0 : SLUICE_LIVENESS_NO_PIN, .pin_root = pin ? root : NULL);
	struct sluice_liveness *m = NULL;
	struct fire fr = { 0 };
	uint64_t start = 0, t;
	pid_t pid;
	int err;

	CK_EQ(getpid(), 1);
	pid = fork();
	CK(pid >= 0);
	if (pid == 0)
		_exit(sleeper(NULL));
	/* Its pid here, which is not its pid outside. */
	CK(pid > 1 && pid < 100);
	CK_EQ(sluice__proc_start_time(pid, &start), 0);
	err = sluice_liveness_create(&o, &m);
	if (err) {
		fprintf(stderr, "in a pid namespace: sluice_liveness_create: %s\n",
			strerror(-err));
		kill(pid, SIGKILL);
		return 2;
	}
	CK_EQ(sluice_liveness_backend(m), backend);
	CK_EQ(sluice_liveness_watch_fn(m, pid, 0, on_death, &fr, NULL), 0);
	usleep(50000);
	CK_EQ(atomic_load(&fr.n), 0);
	t = now_ns();
	CK_EQ(kill(pid, SIGKILL), 0);
	while (!atomic_load(&fr.n) && ms_since(t, now_ns()) < 2 * BOUND_MS + 1000)
		usleep(500);
	CK_EQ(atomic_load(&fr.n), 1);
	CK_EQ(atomic_load(&fr.pid), pid);
	CK_EQ(atomic_load(&fr.start), start);
	fprintf(stderr, "    in a pid namespace, pid %d seen dead after %.3f ms\n",
		(int)pid, ms_since(t, atomic_load(&fr.at_ns)));
	CK(ms_since(t, atomic_load(&fr.at_ns)) < BOUND_MS);
	sluice_liveness_destroy(m);
	CK_EQ(waitpid(pid, NULL, 0), pid);
	usleep(20000);
	CK_EQ(atomic_load(&fr.n), 1);
	return 0;
}

struct ns_args {
	struct fx *f;
	bool pin;			/* pin under f->root; else NO_PIN */
};

/* In a child: a new pid namespace, and its pid 1 as above. */
static int ns_child(void *p)
{
	struct ns_args *a = p;
	char be[16];
	pid_t pid;
	int st;

	if (unshare(CLONE_NEWPID | CLONE_NEWNS)) {
		atomic_store(&a->f->sh->err, errno);
		return SKIP_EXIT;
	}
	pid = fork();
	if (pid < 0)
		return 3;
	if (pid == 0) {
		/* A /proc of the new namespace, seen by nobody outside. */
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) {
			atomic_store(&a->f->sh->err, errno);
			_exit(SKIP_EXIT);
		}
		snprintf(be, sizeof(be), "%d", (int)a->f->backend);
		execl("/proc/self/exe", "test_liveness", "--ns-init", be,
		      a->pin ? a->f->root : "-", (char *)NULL);
		fprintf(stderr, "execl: %s\n", strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 4;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 5;
}

static int run_in_namespace(struct fx *f, bool pin)
{
	struct ns_args a = { f, pin };
	int ret;

	ret = reap(f, kid(f, ns_child, &a));
	if (ret == SKIP_EXIT)
		h_skip("cannot make a pid namespace with its own /proc: %s",
		       strerror(atomic_load(&f->sh->err)));
	return ret;
}

static void test_a_monitor_in_a_pid_namespace_watches_by_namespace_pid(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m;

	/* Loadable at all?  Skips here if not. */
	m = mon_with(f, SLUICE_LIVENESS_NO_PIN, NULL);
	mon_destroy(f, m);
	assert_int_equal(run_in_namespace(f, false), 0);
}

static void test_a_monitor_in_a_pid_namespace_leaves_live_pins_outside_alone(void **state)
{
	struct fx *f = *state;
	char dir[PATH_MAX], path[PATH_MAX + 16];
	struct sluice_liveness *m;
	struct fire fr = { 0 };
	uint64_t start, t;
	pid_t pid;

	make_root(f);
	m = mon_with(f, 0, f->root);
	assert_int_equal(pin_dirs(f->root, getpid(), dir, sizeof(dir)), 1);
	/* Our pid means nothing in there: it must not be taken for dead. */
	assert_int_equal(run_in_namespace(f, true), 0);
	assert_true(exists(dir));
	snprintf(path, sizeof(path), "%s/watched", dir);
	assert_true(exists(path));
	pid = kid(f, sleeper, NULL);
	start = start_of(pid);
	watch(m, pid, start, &fr);
	assert_int_equal(map_has_pid(path, pid), 1);
	t = kill_now(pid);
	assert_fired_once(&fr, pid, start, t, "beside a namespace");
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	mon_destroy(f, m);
	assert_false(exists(dir));
}

/* ---------------------------------------------------------------- SPSC */

#define SLOTS		8u
#define SLOT		64u

static struct sluice_spsc_ring *ring_in(struct sluice_region *r)
{
	struct sluice_obj_info info;

	if (sluice_region_find(r, "q", &info) || info.type != SLUICE_OBJ_SPSC)
		return NULL;
	return sluice_region_at(r, info.offset, info.size);
}

/* Wait until a side of the ring has a thread asleep (or about to be). */
static int wait_asleep(struct sluice_region *r, bool producer, int64_t ms)
{
	struct sluice_spsc_ring *ring = ring_in(r);
	int64_t t0 = h_now_ms();

	if (!ring)
		return -ENOENT;
	while (!atomic_load(producer ? &ring->prod.waiting : &ring->cons.waiting)) {
		if (h_now_ms() - t0 > ms)
			return -ETIMEDOUT;
		usleep(200);
	}
	/* Counted first, asleep a moment later. */
	usleep(20000);
	return 0;
}

static struct sluice_spsc *ring_make(struct fx *f, enum sluice_spsc_role role,
				     struct sluice_liveness *m)
{
	SLUICE_OPTS(sluice_spsc_opts, o, .timeout_ns = SURVIVOR_TIMEOUT, .spin_ns = 1000,
		    .liveness = m);

	assert_int_equal(sluice_spsc_create(f->r, "q", SLOTS, SLOT, role, &o, &f->q), 0);
	return f->q;
}

static struct sluice_spsc *ring_join(struct fx *f, enum sluice_spsc_role role,
				     struct sluice_liveness *m)
{
	SLUICE_OPTS(sluice_spsc_opts, o, .timeout_ns = SURVIVOR_TIMEOUT, .spin_ns = 1000,
		    .liveness = m);

	assert_int_equal(sluice_spsc_attach(f->r, "q", role, &o, &f->q), 0);
	return f->q;
}

static void ring_shut(struct fx *f)
{
	sluice_spsc_close(f->q);
	f->q = NULL;
}

#define SPSC_N		5u	/* read before the producer's last moments */
#define SPSC_M		6u	/* sent in them */

/*
 * In a child: attach as the producer, send SPSC_N packets; once the
 * consumer has read them and sleeps, send SPSC_M more and die.
 */
static int producer_sends_then_dies(void *p)
{
	struct fx *f = p;
	unsigned char b[SLOT];
	struct sluice_spsc *q;
	struct sluice_spsc_ring *ring;
	uint64_t i;

	CK_EQ(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q), 0);
	ring = ring_in(f->r);
	CK(ring);
	for (i = 0; i < SPSC_N; i++) {
		h_fill(b, i, SLOT);
		CK_EQ(sluice_spsc_try_send(q, b, SLOT), 0);
	}
	while (atomic_load(&ring->head) < SPSC_N)
		usleep(200);
	CK_EQ(wait_asleep(f->r, false, 10000), 0);
	for (; i < SPSC_N + SPSC_M; i++) {
		h_fill(b, i, SLOT);
		CK_EQ(sluice_spsc_try_send(q, b, SLOT), 0);
	}
	die(f->sh);
	return 99;
}

static void test_spsc_consumer_reads_what_a_killed_producer_sent_then_epipe(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	unsigned char b[SLOT];
	struct sluice_spsc *c;
	uint64_t seq = 0, t;
	pid_t pid;
	int ret;

	c = ring_make(f, SLUICE_SPSC_CONSUMER, m);
	pid = kid(f, producer_sends_then_dies, f);
	/* Blocking all along: the first packets, a sleep, the last ones, the end. */
	while ((ret = sluice_spsc_recv(c, b, sizeof(b))) >= 0) {
		assert_int_equal(ret, SLOT);
		if (!h_intact(b, seq, SLOT))
			fail_msg("packet %" PRIu64 " is not what was sent", seq);
		seq++;
	}
	t = now_ns();
	assert_int_equal(ret, -EPIPE);
	assert_int_equal(seq, SPSC_N + SPSC_M);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	print_message("    -EPIPE %.3f ms after the producer died\n",
		      ms_since(atomic_load(&f->sh->killed_ns), t));
	assert_true(ms_since(atomic_load(&f->sh->killed_ns), t) < BOUND_MS);
	/* And it stays the end. */
	assert_int_equal(sluice_spsc_try_recv(c, b, sizeof(b)), -EPIPE);
	ring_shut(f);
}

/* In a child: attach as the producer and send until blocked on a full ring. */
static int producer_blocks_on_a_full_ring(void *p)
{
	struct fx *f = p;
	unsigned char b[SLOT];
	struct sluice_spsc *q;
	uint64_t i;

	CK_EQ(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q), 0);
	for (i = 0;; i++) {
		h_fill(b, i, SLOT);
		CK_EQ(sluice_spsc_send(q, b, SLOT), 0);	/* until killed there */
	}
	return 99;
}

/*
 * A producer killed while blocked on a full ring: the consumer reads
 * exactly the ring's worth it committed, then -EPIPE, at once.
 */
static void test_spsc_a_producer_killed_blocked_on_a_full_ring_leaves_a_full_ring(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	unsigned char b[SLOT];
	struct sluice_spsc *c;
	uint64_t seq = 0, killed, t;
	pid_t pid;
	int ret;

	c = ring_make(f, SLUICE_SPSC_CONSUMER, m);
	pid = kid(f, producer_blocks_on_a_full_ring, f);
	assert_int_equal(wait_asleep(f->r, true, 10000), 0);
	killed = now_ns();
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	while ((ret = sluice_spsc_recv(c, b, sizeof(b))) >= 0) {
		assert_int_equal(ret, SLOT);
		if (!h_intact(b, seq, SLOT))
			fail_msg("packet %" PRIu64 " is not what was sent", seq);
		seq++;
	}
	t = now_ns();
	assert_int_equal(ret, -EPIPE);
	assert_int_equal(seq, SLOTS);
	print_message("    a full ring read, then -EPIPE %.3f ms after the kill\n",
		      ms_since(killed, t));
	assert_true(ms_since(killed, t) < BOUND_MS);
	ring_shut(f);
}

/* In a child: make the ring as its producer, send SPSC_M packets, die when told. */
static int producer_makes_sends_dies(void *p)
{
	struct fx *f = p;
	unsigned char b[SLOT];
	struct sluice_spsc *q;
	uint64_t i;

	CK_EQ(sluice_spsc_create(f->r, "q", SLOTS, SLOT, SLUICE_SPSC_PRODUCER, NULL, &q), 0);
	for (i = 0; i < SPSC_M; i++) {
		h_fill(b, i, SLOT);
		CK_EQ(sluice_spsc_try_send(q, b, SLOT), 0);
	}
	atomic_store(&f->sh->stage, 1);
	CK_EQ(h_wait_for(&f->sh->stage, 2, 20000), 0);
	die(f->sh);
	return 99;
}

static void test_spsc_a_killed_producer_is_marked_dead_with_no_call_waiting(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct sluice_spsc_ring *ring;
	unsigned char b[SLOT];
	struct sluice_spsc *c;
	uint64_t i, t = 0;
	int64_t t0;
	pid_t pid;

	pid = kid(f, producer_makes_sends_dies, f);
	assert_int_equal(h_wait_for(&f->sh->stage, 1, 10000), 0);
	/* The producer is there when we attach: watched from the start. */
	c = ring_join(f, SLUICE_SPSC_CONSUMER, m);
	ring = ring_in(f->r);
	assert_non_null(ring);
	assert_true(watched_within(f->backend, pid, 1000));
	assert_int_equal(atomic_load(&ring->prod.ctl) & SLUICE_SPSC_DEAD, 0);
	atomic_store(&f->sh->stage, 2);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	/* Nobody calls anything: the monitor alone marks the side dead. */
	t0 = h_now_ms();
	while (!(atomic_load(&ring->prod.ctl) & SLUICE_SPSC_DEAD) && h_now_ms() - t0 < 2000)
		usleep(200);
	t = now_ns();
	assert_true(atomic_load(&ring->prod.ctl) & SLUICE_SPSC_DEAD);
	print_message("    producer side marked dead %.3f ms after its death\n",
		      ms_since(atomic_load(&f->sh->killed_ns), t));
	assert_true(ms_since(atomic_load(&f->sh->killed_ns), t) < BOUND_MS);
	/* Dead, but what it committed is still delivered, then the end. */
	for (i = 0; i < SPSC_M; i++) {
		assert_int_equal(sluice_spsc_recv(c, b, sizeof(b)), SLOT);
		assert_true(h_intact(b, i, SLOT));
	}
	assert_int_equal(sluice_spsc_recv(c, b, sizeof(b)), -EPIPE);
	ring_shut(f);
}

/* In a child: attach as the consumer, read nothing, die once the producer sleeps. */
static int consumer_dies_when_producer_sleeps(void *p)
{
	struct fx *f = p;
	struct sluice_spsc *q;

	CK_EQ(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_CONSUMER, NULL, &q), 0);
	atomic_store(&f->sh->stage, 1);
	CK_EQ(wait_asleep(f->r, true, 10000), 0);
	die(f->sh);
	return 99;
}

/* Fill the ring without waiting; returns how many packets fit. */
static unsigned int ring_fill(struct sluice_spsc *p)
{
	unsigned char b[SLOT];
	unsigned int n = 0;
	int ret;

	for (;;) {
		h_fill(b, n, SLOT);
		ret = sluice_spsc_try_send(p, b, SLOT);
		if (ret == -EAGAIN)
			return n;
		assert_int_equal(ret, 0);
		n++;
	}
}

static void test_spsc_a_producer_blocked_on_a_full_ring_gets_epipe_when_the_consumer_is_killed(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	unsigned char b[SLOT] = { 0 };
	struct sluice_spsc *p;
	uint64_t t;
	pid_t pid;

	p = ring_make(f, SLUICE_SPSC_PRODUCER, m);
	pid = kid(f, consumer_dies_when_producer_sleeps, f);
	assert_int_equal(h_wait_for(&f->sh->stage, 1, 10000), 0);
	assert_int_equal(ring_fill(p), SLOTS);
	assert_int_equal(sluice_spsc_send(p, b, SLOT), -EPIPE);
	t = now_ns();
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	print_message("    send returned -EPIPE %.3f ms after the consumer died\n",
		      ms_since(atomic_load(&f->sh->killed_ns), t));
	assert_true(ms_since(atomic_load(&f->sh->killed_ns), t) < BOUND_MS);
	assert_int_equal(sluice_spsc_try_send(p, b, SLOT), -EPIPE);
	ring_shut(f);
}

#define HALF_K		3u	/* whole packets before the half-written one */

/* In a child: send HALF_K packets, reserve a slot, write half of it, die. */
static int producer_dies_mid_slot(void *p)
{
	struct fx *f = p;
	unsigned char b[SLOT];
	struct sluice_spsc *q;
	struct iovec iov[1];
	uint64_t i;

	CK_EQ(sluice_spsc_attach(f->r, "q", SLUICE_SPSC_PRODUCER, NULL, &q), 0);
	for (i = 0; i < HALF_K; i++) {
		h_fill(b, i, SLOT);
		CK_EQ(sluice_spsc_try_send(q, b, SLOT), 0);
	}
	CK_EQ(sluice_spsc_try_reserve(q, iov, 1), 1);
	CK_EQ(iov[0].iov_len, SLOT);
	h_fill(b, i, SLOT);
	memcpy(iov[0].iov_base, b, SLOT / 2);
	CK_EQ(wait_asleep(f->r, false, 10000), 0);
	die(f->sh);
	return 99;
}

static void test_spsc_a_slot_half_written_by_a_killed_producer_is_never_delivered(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	unsigned char b[SLOT];
	struct sluice_spsc *c;
	uint64_t seq = 0, t;
	pid_t pid;
	int ret;

	c = ring_make(f, SLUICE_SPSC_CONSUMER, m);
	pid = kid(f, producer_dies_mid_slot, f);
	while ((ret = sluice_spsc_recv(c, b, sizeof(b))) >= 0) {
		assert_int_equal(ret, SLOT);
		if (!h_intact(b, seq, SLOT))
			fail_msg("packet %" PRIu64 " is not what was sent", seq);
		seq++;
	}
	t = now_ns();
	assert_int_equal(ret, -EPIPE);
	assert_int_equal(seq, HALF_K);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	print_message("    -EPIPE %.3f ms after the producer died mid-slot\n",
		      ms_since(atomic_load(&f->sh->killed_ns), t));
	assert_true(ms_since(atomic_load(&f->sh->killed_ns), t) < BOUND_MS);
	assert_int_equal(sluice_spsc_try_recv(c, b, sizeof(b)), -EPIPE);
	ring_shut(f);
}

struct late {
	struct fx *f;
	enum sluice_spsc_role role;	/* the side the child takes */
};

/* In a child: once the survivor sleeps, attach to the other side and die. */
static int attach_late_and_die(void *p)
{
	struct late *l = p;
	struct sluice_spsc *q;

	CK_EQ(wait_asleep(l->f->r, l->role == SLUICE_SPSC_CONSUMER, 10000), 0);
	CK_EQ(sluice_spsc_attach(l->f->r, "q", l->role, NULL, &q), 0);
	die(l->f->sh);
	return 99;
}

static void test_spsc_a_consumer_sees_the_death_of_a_producer_that_attached_after_it_slept(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct late l = { f, SLUICE_SPSC_PRODUCER };
	unsigned char b[SLOT];
	struct sluice_spsc *c;
	uint64_t t;
	pid_t pid;

	c = ring_make(f, SLUICE_SPSC_CONSUMER, m);
	pid = kid(f, attach_late_and_die, &l);
	assert_int_equal(sluice_spsc_recv(c, b, sizeof(b)), -EPIPE);
	t = now_ns();
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	print_message("    -EPIPE %.3f ms after the late producer died\n",
		      ms_since(atomic_load(&f->sh->killed_ns), t));
	assert_true(ms_since(atomic_load(&f->sh->killed_ns), t) < LATE_MS);
	ring_shut(f);
}

static void test_spsc_a_producer_sees_the_death_of_a_consumer_that_attached_after_it_slept(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct late l = { f, SLUICE_SPSC_CONSUMER };
	unsigned char b[SLOT] = { 0 };
	struct sluice_spsc *p;
	uint64_t t;
	pid_t pid;

	p = ring_make(f, SLUICE_SPSC_PRODUCER, m);
	assert_int_equal(ring_fill(p), SLOTS);
	pid = kid(f, attach_late_and_die, &l);
	assert_int_equal(sluice_spsc_send(p, b, SLOT), -EPIPE);
	t = now_ns();
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	print_message("    -EPIPE %.3f ms after the late consumer died\n",
		      ms_since(atomic_load(&f->sh->killed_ns), t));
	assert_true(ms_since(atomic_load(&f->sh->killed_ns), t) < LATE_MS);
	ring_shut(f);
}

/* ---------------------------------------------------------------- channels */

#define CAP		4096ull
#define F40		40u	/* a 40-byte frame alone takes 64 bytes */
#define S40		64u

static uint64_t slice1(size_t len)
{
	return (16 + 8 + ((len + 7) & ~7ull) + 15) & ~15ull;
}

static struct sluice_chan_hdr *chan_hdr(struct sluice_region *r)
{
	struct sluice_obj_info info;

	if (sluice_region_find(r, "c", &info) || info.type != SLUICE_OBJ_CHAN)
		return NULL;
	return sluice_region_at(r, info.offset, info.size);
}

static void chan_make(struct fx *f, struct sluice_liveness *m)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = SURVIVOR_TIMEOUT, .spin_ns = 1000,
		    .liveness = m);

	assert_int_equal(sluice_chan_create(f->r, "c", CAP, SLUICE_CHAN_BLOCK, &o, &f->ch), 0);
}

static void chan_shut(struct fx *f)
{
	sluice_chan_reader_close(f->rd);
	f->rd = NULL;
	sluice_chan_writer_close(f->w);
	f->w = NULL;
	assert_int_equal(sluice_chan_close(f->ch), 0);
	f->ch = NULL;
}

static void put40(struct sluice_chan_writer *w, uint64_t seq)
{
	unsigned char b[F40];

	h_fill(b, seq, F40);
	assert_int_equal(sluice_chan_try_write(w, b, F40), 0);
}

static void get40(struct sluice_chan_reader *r, uint64_t seq)
{
	unsigned char b[F40 + 8];

	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), F40);
	assert_true(h_intact(b, seq, F40));
}

/*
 * A thread of the test that lets the child die once the survivor sleeps,
 * having checked that the monitor watches the child by then.  It lets it
 * die 2 ms after one of the survivor's own 20 ms sweeps: seen by those
 * alone, the death would end the wait some 18 ms later; seen by the
 * monitor, at once.
 */
struct release {
	struct fx *f;
	_Atomic uint32_t *sleepers;	/* rwait or wwait */
	pid_t pid;
	bool asleep, was_watched;
	pthread_t t;
};

static void *release_thread(void *p)
{
	struct release *rl = p;
	int64_t t0 = h_now_ms(), slept, at;

	while (!atomic_load(rl->sleepers) && h_now_ms() - t0 < 10000)
		usleep(100);
	slept = h_now_ms();
	rl->asleep = atomic_load(rl->sleepers) != 0;
	rl->was_watched = rl->asleep && watched_within(rl->f->backend, rl->pid, 2000);
	/* The sweeps come SWEEP_MS apart from when it began to sleep. */
	at = slept + SWEEP_MS + 2;
	while (at <= h_now_ms())
		at += SWEEP_MS;
	h_sleep_ms((unsigned int)(at - h_now_ms()));
	atomic_store(&rl->f->sh->stage, 2);
	return NULL;
}

static void release_start(struct release *rl, struct fx *f, _Atomic uint32_t *sleepers,
			  pid_t pid)
{
	*rl = (struct release){ .f = f, .sleepers = sleepers, .pid = pid };
	assert_int_equal(pthread_create(&rl->t, NULL, release_thread, rl), 0);
}

static void release_join(struct release *rl)
{
	assert_int_equal(pthread_join(rl->t, NULL), 0);
	assert_true(rl->asleep);
	if (!rl->was_watched)
		fail_msg("the survivor slept, yet its monitor did not watch pid %d",
			 (int)rl->pid);
}

/* The survivor's wait ended @t_ns: by the monitor's doing, not a sweep's? */
static void assert_quick(struct fx *f, uint64_t t_ns, const char *what)
{
	double ms = ms_since(atomic_load(&f->sh->killed_ns), t_ns);

	print_message("    %s %.3f ms after the death\n", what, ms);
	if (ms >= CHAN_QUICK_MS)
		fail_msg("%s only %.3f ms after the death (bound %d ms): the %d ms "
			 "sweep saw it, not the monitor", what, ms, CHAN_QUICK_MS, SWEEP_MS);
}

struct chan_kid {
	struct fx *f;
	unsigned int frames;		/* committed first */
	size_t slice;			/* then a slice this long reserved, or 0 */
	bool reader;			/* a strong reader instead */
};

/*
 * Memory a dying peer holds, as real ones do: the kernel frees it as the
 * process exits, after the exit tracepoint and before the zombie shows in
 * /proc, so a monitor that reports at the tracepoint reports a process
 * /proc still shows running.
 */
#define PEER_MEM	(16 * MIB)

/* In a child: be a strong writer (or reader), do the part, die when told. */
static int chan_kid_dies(void *p)
{
	struct chan_kid *k = p;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct iovec iov[1];
	unsigned char b[F40], *mem;
	unsigned int i;

	mem = mmap(NULL, PEER_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CK(mem != MAP_FAILED);
	memset(mem, 1, PEER_MEM);
	CK_EQ(sluice_chan_attach(k->f->r, "c", NULL, &ch), 0);
	if (k->reader) {
		CK_EQ(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), 0);
	} else {
		CK_EQ(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), 0);
		for (i = 0; i < k->frames; i++) {
			h_fill(b, 100 + i, F40);
			CK_EQ(sluice_chan_try_write(w, b, F40), 0);
		}
		if (k->slice) {
			iov[0] = (struct iovec){ NULL, k->slice };
			CK_EQ(sluice_chan_try_reserve_slice(w, iov, 1), 1);
			memset(iov[0].iov_base, 0xee, k->slice / 2);
		}
	}
	atomic_store(&k->f->sh->stage, 1);
	while (atomic_load(&k->f->sh->stage) < 2)
		usleep(100);
	die(k->f->sh);
	return 99;
}

static void test_chan_a_reader_blocked_behind_a_writer_killed_mid_slice_goes_on(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct chan_kid k = { f, 1, 100, false };
	struct sluice_chan_info info;
	struct sluice_chan_hdr *h;
	struct release rl;
	unsigned char b[F40 + 8];
	uint64_t t;
	pid_t pid;

	chan_make(f, m);
	h = chan_hdr(f->r);
	assert_non_null(h);
	assert_int_equal(sluice_chan_writer_open(f->ch, SLUICE_CHAN_STRONG, NULL, &f->w), 0);
	assert_int_equal(sluice_chan_reader_open(f->ch, SLUICE_CHAN_STRONG, NULL, &f->rd), 0);
	pid = kid(f, chan_kid_dies, &k);
	assert_int_equal(h_wait_for(&f->sh->stage, 1, 10000), 0);
	/* Committed behind the child's open slice, by another writer. */
	put40(f->w, 200);
	get40(f->rd, 100);
	assert_int_equal(sluice_chan_try_read(f->rd, b, sizeof(b)), -EAGAIN);

	release_start(&rl, f, &h->rwait, pid);
	assert_int_equal(sluice_chan_read(f->rd, b, sizeof(b)), F40);
	t = now_ns();
	release_join(&rl);
	assert_true(h_intact(b, 200, F40));
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	assert_quick(f, t, "the reader got past the dead writer's slice");
	assert_int_equal(sluice_chan_info(f->ch, &info), 0);
	assert_int_equal(info.abandoned, slice1(100));
	assert_int_equal(info.writers_busy, 1);
	assert_int_equal(info.strong_writers, 1);
	assert_int_equal(info.draining, 0);
	/* And on it goes. */
	put40(f->w, 201);
	get40(f->rd, 201);
	chan_shut(f);
}

static void test_chan_a_writer_blocked_by_a_killed_strong_reader_goes_on(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct chan_kid k = { f, 0, 0, true };
	struct sluice_chan_info info;
	struct sluice_chan_hdr *h;
	struct release rl;
	unsigned char b[F40];
	unsigned int n = 0;
	uint64_t t;
	pid_t pid;
	int ret;

	chan_make(f, m);
	h = chan_hdr(f->r);
	assert_non_null(h);
	assert_int_equal(sluice_chan_writer_open(f->ch, SLUICE_CHAN_STRONG, NULL, &f->w), 0);
	pid = kid(f, chan_kid_dies, &k);
	assert_int_equal(h_wait_for(&f->sh->stage, 1, 10000), 0);
	for (;;) {
		h_fill(b, n, F40);
		ret = sluice_chan_try_write(f->w, b, F40);
		if (ret == -EAGAIN)
			break;
		assert_int_equal(ret, 0);
		n++;
	}
	assert_int_equal(n, CAP / S40);

	release_start(&rl, f, &h->wwait, pid);
	assert_int_equal(sluice_chan_write(f->w, b, F40), 0);
	t = now_ns();
	release_join(&rl);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	assert_quick(f, t, "the writer got past the dead reader");
	assert_int_equal(sluice_chan_info(f->ch, &info), 0);
	assert_int_equal(info.swept, 1);
	assert_int_equal(info.strong_readers, 0);
	assert_int_equal(info.abandoned, 0);
	chan_shut(f);
}

static void test_chan_readers_end_after_the_last_strong_writer_is_killed(void **state)
{
	struct fx *f = *state;
	struct sluice_liveness *m = mon(f);
	struct chan_kid k = { f, 3, 0, false };
	struct sluice_chan_info info;
	struct sluice_chan_hdr *h;
	struct release rl;
	unsigned char b[F40 + 8];
	unsigned int i;
	uint64_t t;
	pid_t pid;

	chan_make(f, m);
	h = chan_hdr(f->r);
	assert_non_null(h);
	assert_int_equal(sluice_chan_reader_open(f->ch, SLUICE_CHAN_STRONG, NULL, &f->rd), 0);
	pid = kid(f, chan_kid_dies, &k);
	assert_int_equal(h_wait_for(&f->sh->stage, 1, 10000), 0);
	for (i = 0; i < 3; i++) {
		assert_int_equal(sluice_chan_read(f->rd, b, sizeof(b)), F40);
		assert_true(h_intact(b, 100 + i, F40));
	}
	release_start(&rl, f, &h->rwait, pid);
	assert_int_equal(sluice_chan_read(f->rd, b, sizeof(b)), -EPIPE);
	t = now_ns();
	release_join(&rl);
	assert_int_equal(reap(f, pid), H_SIGNALED + SIGKILL);
	assert_quick(f, t, "the reader saw the end");
	assert_int_equal(sluice_chan_info(f->ch, &info), 0);
	assert_int_equal(info.draining, 1);
	assert_int_equal(info.strong_writers, 0);
	assert_int_equal(info.writers_busy, 0);
	assert_int_equal(info.abandoned, 0);
	assert_int_equal(sluice_chan_try_read(f->rd, b, sizeof(b)), -EPIPE);
	chan_shut(f);
}

/* ---------------------------------------------------------------- main */

#define T_AS(prefix, fn, p)						\
	{ prefix #fn, fn, setup, teardown, (void *)(p) }
/* Once per backend. */
#define T2(fn)	T_AS("bpf/", fn, &p_bpf), T_AS("pidfd/", fn, &p_pidfd)
/* Once: the BPF backend only, or no backend in particular. */
#define TB(fn)	T_AS("bpf/", fn, &p_bpf)
#define T1(fn)	T_AS("", fn, &p_bpf)

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		/* the monitor */
		T1(test_backend_str_names_every_backend),
		T1(test_auto_takes_bpf_where_it_loads),
		T1(test_a_library_built_without_bpf_says_so_and_refuses_bpf),
		T2(test_create_and_destroy_leave_no_thread_or_fd_behind),
		T2(test_bad_arguments_are_einval),
		T2(test_a_killed_child_fires_once_with_its_pid_and_start),
		T2(test_a_token_watch_triggers_the_token_with_epipe_or_its_reason),
		T2(test_a_watch_unwatched_before_the_death_is_never_called),
		T2(test_unwatch_after_the_watch_fired_is_enoent),
		T2(test_unwatch_from_inside_a_watch_function_is_edeadlk),
		T2(test_fifty_children_killed_in_random_order_each_fire_once),
		T2(test_a_dead_pid_with_its_old_start_fires_at_once),
		T2(test_a_live_pid_with_another_start_fires_at_once),
		T2(test_two_watches_of_one_process_both_fire),
		T2(test_a_watch_with_start_zero_reads_the_start_time),
		T2(test_destroy_with_live_watches_calls_nothing_once_it_returns),
		T2(test_a_process_whose_leader_exits_early_fires_when_its_last_thread_does),
		T2(test_watch_unwatch_and_deaths_from_many_threads_at_once),
		/* pins */
		TB(test_pins_live_as_long_as_the_monitor),
		TB(test_no_pin_pins_nothing_and_still_watches),
		TB(test_the_next_monitor_removes_the_pins_of_a_dead_one),
		TB(test_the_pins_of_a_dead_monitor_go_though_a_child_it_forked_lives),
		/* pid namespaces */
		T2(test_a_monitor_in_a_pid_namespace_watches_by_namespace_pid),
		TB(test_a_monitor_in_a_pid_namespace_leaves_live_pins_outside_alone),
		/* SPSC rings */
		T2(test_spsc_consumer_reads_what_a_killed_producer_sent_then_epipe),
		T2(test_spsc_a_killed_producer_is_marked_dead_with_no_call_waiting),
		T2(test_spsc_a_producer_killed_blocked_on_a_full_ring_leaves_a_full_ring),
		T2(test_spsc_a_producer_blocked_on_a_full_ring_gets_epipe_when_the_consumer_is_killed),
		T2(test_spsc_a_slot_half_written_by_a_killed_producer_is_never_delivered),
		T2(test_spsc_a_consumer_sees_the_death_of_a_producer_that_attached_after_it_slept),
		T2(test_spsc_a_producer_sees_the_death_of_a_consumer_that_attached_after_it_slept),
		/* channels */
		T2(test_chan_a_reader_blocked_behind_a_writer_killed_mid_slice_goes_on),
		T2(test_chan_a_writer_blocked_by_a_killed_strong_reader_goes_on),
		T2(test_chan_readers_end_after_the_last_strong_writer_is_killed),
	};

	/* This program again, as a process whose leader thread exits early. */
	if (argc == 4 && !strcmp(argv[1], "--leader-exits"))
		return leader_exits_main(atoi(argv[2]), atoi(argv[3]));
	/* ... or as pid 1 of a pid namespace. */
	if (argc == 4 && !strcmp(argv[1], "--ns-init"))
		return ns_init_main(atoi(argv[2]), argv[3]);
	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("liveness", tests, NULL, NULL);
}
