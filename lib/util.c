// SPDX-License-Identifier: MIT
/* Small helpers shared by the library, its tools and its tests. */
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "internal.h"

bool sluice__opts_valid(const void *opts, size_t known_sz)
{
	const unsigned char *p = opts;
	size_t sz, i;

	if (!opts)
		return true;
	memcpy(&sz, opts, sizeof(sz));
	if (sz < sizeof(size_t) || sz > 4096)
		return false;
	/* A newer caller may pass fields we do not know, but only as zero. */
	for (i = known_sz; i < sz; i++)
		if (p[i])
			return false;
	return true;
}

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

int sluice__name_check(const char *name, size_t max)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.')
		return -EINVAL;
	for (i = 0; name[i]; i++) {
		if (i == max)
			return -ENAMETOOLONG;
		if (!name_char_ok(name[i]))
			return -EINVAL;
	}
	return 0;
}

uint64_t sluice__fnv1a(const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	while (len--) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

uint64_t sluice__now_ns(int clock_id)
{
	struct timespec ts;

	clock_gettime(clock_id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* task->flags bit set by exit_signals(), before the thread leaves signal->live. */
#define PF_EXITING	0x00000004ul

/*
 * Has a thread of the stat line at @p (just past comm's ')') begun to
 * exit?  A zombie has; so has one in do_exit() (PF_EXITING, field 9),
 * which will run no user code again.
 */
static bool stat_exiting(const char *p)
{
	unsigned long flags;
	int i;

	if (p[0] != ' ' || !p[1])
		return true;
	if (p[1] == 'Z' || p[1] == 'X')
		return true;
	for (i = 3; i < 9; i++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return false;
	}
	return sscanf(p, " %lu", &flags) == 1 && (flags & PF_EXITING);
}

/* Does a thread of @pid that has not begun to exit remain? */
static bool other_thread_runs(pid_t pid)
{
	char path[64], buf[512], *p;
	struct dirent *de;
	bool runs = false;
	size_t n;
	FILE *f;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!runs && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/stat", (int)pid, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		p = strrchr(buf, ')');
		runs = p && !stat_exiting(p + 1);
	}
	closedir(d);
	return runs;
}

int sluice__proc_start_time(pid_t pid, uint64_t *start)
{
	char path[64], buf[1024], *p;
	unsigned long long v;
	FILE *f;
	size_t n;
	int i;

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';

	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p)
		return -EIO;
	p++;
	/*
	 * A process is dead once every thread has begun to exit: it runs no
	 * user code again, and the kernel's sched_process_exit tracepoint
	 * (the liveness monitor's BPF backend) says so then.  Its leader may
	 * be a zombie long before (the main thread may end first), or still
	 * in do_exit() long after (freeing a large address space takes
	 * ~100 ms a gigabyte).
	 */
	if (stat_exiting(p) && !other_thread_runs(pid))
		return -ESRCH;
	/* Now at field 3 (state); starttime is field 22. */
	for (i = 3; i < 22; i++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	if (sscanf(p, " %llu", &v) != 1)
		return -EIO;
	*start = v;
	return 0;
}

bool sluice__proc_alive(pid_t pid, uint64_t start)
{
	uint64_t now;

	return sluice__proc_start_time(pid, &now) == 0 && now == start;
}
