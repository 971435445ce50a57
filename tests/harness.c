// SPDX-License-Identifier: MIT
/* Helpers shared by every sluice test program; see harness.h. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "testpoint.h"

/* ---------------------------------------------------------------- names */

const char *h_prefix(void)
{
	static char prefix[32];

	if (!prefix[0])
		snprintf(prefix, sizeof(prefix), "t-%d-", (int)getpid());
	return prefix;
}

char *h_name(char *buf)
{
	static unsigned int counter;

	snprintf(buf, H_NAME_SZ, "%s%u", h_prefix(), ++counter);
	return buf;
}

struct name_list {
	char (*names)[H_NAME_SZ];
	size_t n, cap;
};

static int collect_ours(const char *name, void *ctx)
{
	struct name_list *l = ctx;
	void *p;

	if (strncmp(name, h_prefix(), strlen(h_prefix())))
		return 0;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		p = realloc(l->names, l->cap * sizeof(*l->names));
		if (!p)
			return -ENOMEM;
		l->names = p;
	}
	snprintf(l->names[l->n++], H_NAME_SZ, "%s", name);
	return 0;
}

int h_unlink_all(void)
{
	struct name_list l = { 0 };
	int done = 0;
	size_t i;

	/* Collect first: unlinking under readdir() may skip entries. */
	sluice_region_foreach(collect_ours, &l);
	for (i = 0; i < l.n; i++)
		while (sluice_region_unlink(l.names[i]) == 0)
			done++;		/* one name may be in both directories */
	free(l.names);
	return done;
}

/* ---------------------------------------------------------------- processes */

int h_spawn(int (*fn)(void *arg), void *arg, unsigned int timeout_s)
{
	pid_t pid;
	int ret;

	/* Nothing buffered may be written twice, by parent and child. */
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/*
		 * cmocka catches crashes to fail the test and run the next
		 * one; a child that crashed would run the rest of the tests
		 * itself.  A child's crash kills the child, and its parent
		 * sees the signal.
		 */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		signal(SIGFPE, SIG_DFL);
		signal(SIGSYS, SIG_DFL);
		alarm(timeout_s);
		ret = fn(arg);
		_exit(ret < 0 || ret > 255 ? 255 : ret);
	}
	return pid;
}

int h_wait(int pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFSIGNALED(status))
		return H_SIGNALED + WTERMSIG(status);
	return WEXITSTATUS(status);
}

struct held_lock {
	const char *name;
	int ready[2];
};

static int hold_lock(void *p)
{
	struct held_lock *h = p;
	struct sluice_region *r;
	char ok = 1;

	close(h->ready[0]);
	/* A test that fails before it kills us must not leave us behind. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (sluice_region_open(h->name, NULL, &r) || sluice__region_lock(r))
		return 1;
	if (write(h->ready[1], &ok, 1) != 1)
		return 1;
	for (;;)
		pause();
}

int h_hold_region_lock(const char *name)
{
	struct held_lock h = { .name = name };
	char ok = 0;
	int pid;

	if (pipe(h.ready))
		return -errno;
	pid = h_spawn(hold_lock, &h, 600);
	close(h.ready[1]);
	if (pid > 0 && read(h.ready[0], &ok, 1) != 1) {
		h_wait(pid);
		pid = -EIO;
	}
	close(h.ready[0]);
	return pid;
}

int h_fork(int (*fn)(void *arg), void *arg, unsigned int timeout_s)
{
	int pid = h_spawn(fn, arg, timeout_s);

	return pid < 0 ? pid : h_wait(pid);
}

/* ---------------------------------------------------------------- huge pages */

static char why[256];
static bool pool_raised;
static unsigned long pool_orig, pool_ours;

const char *h_why(void)
{
	return why;
}

int h_hugepages_ensure(unsigned long n, char *dir, size_t len)
{
	struct sluice__hugepages hp;
	unsigned long avail, got;
	const char *env;
	int err;

	err = sluice__hugepages_get(&hp);
	if (err || !hp.page_size) {
		snprintf(why, sizeof(why), "the kernel has no huge pages");
		return -ENOENT;
	}
	/* Reserved pages count as free but are promised to a mapping. */
	avail = hp.free > hp.rsvd ? hp.free - hp.rsvd : 0;
	if (avail < n) {
		if (!pool_raised) {
			pool_orig = hp.total;
			pool_raised = true;
		}
		err = sluice__hugepages_set_total(hp.total + n - avail, &got);
		if (err) {
			snprintf(why, sizeof(why), "cannot grow nr_hugepages: %s",
				 strerror(-err));
			return err;
		}
		pool_ours = got;
		err = sluice__hugepages_get(&hp);
		if (err)
			return err;
		avail = hp.free > hp.rsvd ? hp.free - hp.rsvd : 0;
		if (avail < n) {
			snprintf(why, sizeof(why),
				 "the kernel gave only %lu free huge pages, %lu needed",
				 avail, n);
			return -ENOMEM;
		}
	}
	/* The user's choice of mount (or of none) is not ours to overrule. */
	env = getenv("SLUICE_HUGETLBFS");
	if (env && *env) {
		err = sluice__hugetlbfs_dir(dir, len);
		if (err)
			snprintf(why, sizeof(why),
				 "SLUICE_HUGETLBFS=%s names no usable hugetlbfs", env);
		return err;
	}
	err = sluice__hugetlbfs_mount(dir, len, "/dev/hugepages");
	if (err) {
		snprintf(why, sizeof(why), "no hugetlbfs mount and cannot mount one: %s",
			 strerror(-err));
		return err;
	}
	return 0;
}

void h_hugepages_restore(void)
{
	struct sluice__hugepages hp;
	unsigned long keep;
	FILE *f;

	if (!pool_raised || sluice__hugepages_get(&hp))
		return;
	pool_raised = false;
	/* Someone else resized the pool since: theirs to manage now. */
	if (hp.total != pool_ours)
		return;
	/* Never below what is in use or promised. */
	keep = hp.total - hp.free + hp.rsvd;
	if (keep < pool_orig)
		keep = pool_orig;
	if (keep >= hp.total)
		return;
	f = fopen("/proc/sys/vm/nr_hugepages", "we");
	if (!f)
		return;
	fprintf(f, "%lu\n", keep);
	fclose(f);
}

/* ---------------------------------------------------------------- /proc */

long long h_meminfo(const char *key)
{
	size_t klen = strlen(key);
	long long v = -1;
	char line[256];
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

int h_smaps(const void *addr, struct h_smaps *s)
{
	unsigned long a = (unsigned long)addr, start, end;
	bool in = false, found = false;
	char line[512], key[64];
	long long kb;
	FILE *f;

	memset(s, 0, sizeof(*s));
	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* "start-end perms ..." opens a mapping; "Key: N kB" fills it. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (found)
				break;
			in = found = a >= start && a < end;
			if (in) {
				s->start = start;
				s->end = end;
			}
			continue;
		}
		if (!in || sscanf(line, "%63[^:]: %lld", key, &kb) != 2)
			continue;
		if (!strcmp(key, "Size"))
			s->size_kb = kb;
		else if (!strcmp(key, "KernelPageSize"))
			s->kernel_page_kb = kb;
		else if (!strcmp(key, "Rss"))
			s->rss_kb = kb;
		else if (!strcmp(key, "Shared_Hugetlb"))
			s->shared_hugetlb_kb = kb;
		else if (!strcmp(key, "Private_Hugetlb"))
			s->private_hugetlb_kb = kb;
		else if (!strcmp(key, "AnonHugePages"))
			s->anon_huge_kb = kb;
		else if (!strcmp(key, "ShmemPmdMapped"))
			s->shmem_pmd_kb = kb;
		else if (!strcmp(key, "FilePmdMapped"))
			s->file_pmd_kb = kb;
	}
	fclose(f);
	return found ? 0 : -ENOENT;
}

int h_count_fds(void)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/proc/self/fd");
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

/* ---------------------------------------------------------------- time */

int64_t h_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void h_sleep_ms(unsigned int ms)
{
	struct timespec ts = {
		.tv_sec = ms / 1000,
		.tv_nsec = (long)(ms % 1000) * 1000000,
	};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void h_assert_ms(int64_t ms, int64_t at_least_ms, int64_t below_ms)
{
	if (ms < at_least_ms || ms >= below_ms)
		fail_msg("took %" PRId64 " ms, want [%" PRId64 ", %" PRId64 ")",
			 ms, at_least_ms, below_ms);
}

void h_assert_took(int64_t t0, int64_t at_least_ms, int64_t below_ms)
{
	h_assert_ms(h_now_ms() - t0, at_least_ms, below_ms);
}

int h_wait_for(_Atomic uint32_t *v, uint32_t want, int64_t ms)
{
	int64_t t0 = h_now_ms();

	while (atomic_load_explicit(v, memory_order_acquire) < want) {
		if (h_now_ms() - t0 > ms)
			return -ETIMEDOUT;
		h_sleep_ms(1);
	}
	return 0;
}

/* ---------------------------------------------------------------- sides */

#if H_SIDES_ARE_THREADS
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

void h_run_sides(const struct h_side *s, unsigned int n, unsigned int timeout_s)
{
	struct job *j[16];
	struct timespec dl;
	unsigned int i;
	bool late = false;
	int ret[16];

	assert_true(n <= SLUICE_ARRAY_SIZE(j));
	for (i = 0; i < n; i++) {
		j[i] = calloc(1, sizeof(*j[i]));
		assert_non_null(j[i]);
		j[i]->fn = s[i].fn;
		j[i]->arg = s[i].arg;
		j[i]->ret = -1;
		assert_int_equal(pthread_create(&j[i]->thread, NULL, job_thread, j[i]), 0);
	}
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_s;
	for (i = 0; i < n; i++) {
		/* Still running at the deadline: stuck for good, leaked. */
		if (pthread_timedjoin_np(j[i]->thread, NULL, &dl)) {
			pthread_detach(j[i]->thread);
			late = true;
			ret[i] = -ETIMEDOUT;
			continue;
		}
		ret[i] = j[i]->ret;
		free(j[i]);
	}
	if (late)
		fail_msg("a side did not finish in %u s", timeout_s);
	for (i = 0; i < n; i++)
		if (ret[i])
			fail_msg("side %u returned %d", i, ret[i]);
}
#else
void h_run_sides(const struct h_side *s, unsigned int n, unsigned int timeout_s)
{
	int pid[16], st[16];
	unsigned int i;

	assert_true(n <= SLUICE_ARRAY_SIZE(pid));
	for (i = 0; i < n; i++) {
		pid[i] = h_spawn(s[i].fn, s[i].arg, timeout_s);
		if (pid[i] < 0) {
			int err = pid[i];

			while (i--) {
				kill(pid[i], SIGKILL);
				h_wait(pid[i]);
			}
			fail_msg("fork: %s", strerror(-err));
		}
	}
	/* All reaped before judging: no side may outlive its test. */
	for (i = 0; i < n; i++)
		st[i] = h_wait(pid[i]);
	for (i = 0; i < n; i++)
		if (st[i])
			fail_msg("side %u exited with %d", i, st[i]);
}
#endif

static void *later_fn(void *p)
{
	struct h_later *l = p;

	h_sleep_ms(l->ms);
	if (l->tok)
		l->ret = sluice_cancel_trigger(l->tok, l->reason);
	else
		l->ret = l->fn(l->arg);
	return NULL;
}

void h_later_start(struct h_later *l)
{
	assert_int_equal(pthread_create(&l->t, NULL, later_fn, l), 0);
}

void h_later_join(struct h_later *l)
{
	assert_int_equal(pthread_join(l->t, NULL), 0);
	assert_int_equal(l->ret, 0);
}

/* ---------------------------------------------------------------- fixture */

/* Handles the test body opened and has not closed yet, oldest first. */
static struct {
	void *p;
	void (*close)(void *p);
} tracked[64];
static unsigned int ntracked;

void h_track(void *p, void (*close)(void *p))
{
	if (ntracked == SLUICE_ARRAY_SIZE(tracked))
		fail_msg("more than %zu handles open", SLUICE_ARRAY_SIZE(tracked));
	tracked[ntracked].p = p;
	tracked[ntracked].close = close;
	ntracked++;
}

void h_untrack(void *p)
{
	unsigned int i;

	for (i = 0; p && i < ntracked; i++) {
		if (tracked[i].p == p) {
			memmove(&tracked[i], &tracked[i + 1],
				(ntracked - i - 1) * sizeof(tracked[0]));
			ntracked--;
			return;
		}
	}
}

static void close_tracked(void)
{
	while (ntracked) {
		ntracked--;
		tracked[ntracked].close(tracked[ntracked].p);
	}
}

int h_fx_setup(void **state, size_t size)
{
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_NO_HUGE);
	struct h_fx *f = calloc(1, sizeof(*f));
	uint64_t off;

	if (!f)
		return -1;
	h_name(f->name);
	if (sluice_region_create(f->name, size, &opts, &f->r)) {
		free(f);
		return -1;
	}
	if (sluice_region_alloc(f->r, "sync", SLUICE_OBJ_RAW, sizeof(struct h_sync), 64, &off)) {
		sluice_region_destroy(f->r);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

int h_fx_teardown(void **state)
{
	struct h_fx *f = *state;

	/* A test point a failed test left set must not act in the next. */
	sluice__tp_hook = NULL;
	close_tracked();
	if (f) {
		sluice_region_destroy(f->r);
		free(f);
	}
	h_unlink_all();
	return 0;
}

struct h_sync *h_sync_of(struct sluice_region *r)
{
	struct sluice_obj_info info;

	if (sluice_region_find(r, "sync", &info))
		return NULL;
	return sluice_region_at(r, info.offset, sizeof(struct h_sync));
}
