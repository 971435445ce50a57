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

/*
 * Temporal slipping (FastForward).  A side that polls the very line its
 * peer is writing takes it away from the peer on every packet, and both
 * crawl.  So when a wait ends almost at once and finds a burst waiting
 * (the peer streams and we are just faster), the next wait first lets the
 * peer get a few lines ahead.  When it finds a lone packet (a ping-pong,
 * sparse traffic), the pause only added latency: poll at once next time.
 * From no slip at all, a quick wait is enough to try a little.
 *
 * After a long enough pause a burst is always waiting, so that rule alone
 * ratchets the slip to @max on any stream.  On a large ring that is
 * harmless, and even helps (the reader then takes whole batches for a
 * while).  On a small one the peer fills or drains the ring within the
 * pause and then waits too: on an SPSC ring of 128 slots each side spent
 * a third of its time waiting on the other.  So a pause that let the peer
 * get half the ring ahead halves it (spsc.md: small rings).
 */
uint32_t sluice__slip_next(uint32_t slip, unsigned int polls,
			   enum sluice__slip_found found, uint32_t max)
{
	if (polls > 2)
		return slip / 2;	/* waited on: pausing bought nothing */
	if (slip && found == SLUICE__SLIP_FAR)
		return slip / 2;	/* overshot */
	if (!slip || found != SLUICE__SLIP_LONE)
		return slip * 2 + 1 < max ? slip * 2 + 1 : max;
	return 0;			/* a lone packet: the pause was latency */
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
 * Read a /proc stat line: whether the thread has begun to exit (a zombie
 * has; so has one in do_exit(), PF_EXITING in field 9, which will run no
 * user code again) and its start time (field 22), either may be NULL.
 * Returns 0, -ESRCH if the file is gone, -EIO if the line is not one.
 */
static int stat_read(const char *path, bool *exiting, uint64_t *start)
{
	char buf[1024], *p;
	unsigned long long v;
	unsigned long flags = 0;
	char state;
	FILE *f;
	size_t n;
	int i;

	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';

	/* comm may hold spaces and parentheses: fields resume after the last ')'. */
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EIO;
	state = p[2];
	p++;
	/* Now at the space before field 3 (state); walk to each field wanted. */
	for (i = 3; i < 22; i++) {
		if (i == 9 && sscanf(p, " %lu", &flags) != 1)
			return -EIO;
		p = strchr(p + 1, ' ');
		if (!p)
			return -EIO;
	}
	if (sscanf(p, " %llu", &v) != 1)
		return -EIO;
	if (exiting)
		*exiting = state == 'Z' || state == 'X' || (flags & PF_EXITING);
	if (start)
		*start = v;
	return 0;
}

/* Does a thread of @pid that has not begun to exit remain? */
static bool other_thread_runs(pid_t pid)
{
	char path[64];
	struct dirent *de;
	bool runs = false, exiting;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return false;
	while (!runs && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.20s/stat", (int)pid, de->d_name);
		runs = !stat_read(path, &exiting, NULL) && !exiting;
	}
	closedir(d);
	return runs;
}

int sluice__proc_stat(pid_t pid, uint64_t *start, bool *exiting)
{
	char path[64];

	if (pid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	return stat_read(path, exiting, start);
}

int sluice__proc_start_time(pid_t pid, uint64_t *start)
{
	bool exiting;
	int err;

	err = sluice__proc_stat(pid, start, &exiting);
	if (err)
		return err;
	/*
	 * A process is dead once every thread has begun to exit: it runs no
	 * user code again, and the kernel's sched_process_exit tracepoint
	 * (the liveness monitor's BPF backend) says so then.  Its leader may
	 * be a zombie long before (the main thread may end first), or still
	 * in do_exit() long after (freeing a large address space takes
	 * ~100 ms a gigabyte).
	 */
	if (exiting && !other_thread_runs(pid))
		return -ESRCH;
	return 0;
}

bool sluice__proc_alive(pid_t pid, uint64_t start)
{
	uint64_t now;

	return sluice__proc_start_time(pid, &now) == 0 && now == start;
}
