// SPDX-License-Identifier: MIT
/* Helpers shared by every sluice test program; see harness.h. */
#include <dirent.h>
#include <errno.h>
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
