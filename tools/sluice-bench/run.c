// SPDX-License-Identifier: MIT
/*
 * sluice-bench's processes and clocks: signals, CPU pinning, cheap
 * timestamps, the host's state, and the forked children a measurement
 * runs in.  See bench.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* ------------------------------------------------------------- environment */

volatile sig_atomic_t bench_stop;

static void on_signal(int sig)
{
	(void)sig;
	bench_stop = 1;
}

void bench_signals_init(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int bench_pin_cpu(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return -errno;
	return 0;
}

int bench_default_cpu(void)
{
	cpu_set_t set;
	int cpu;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -1;
	for (cpu = CPU_SETSIZE - 1; cpu >= 0; cpu--)
		if (CPU_ISSET(cpu, &set))
			return cpu;
	return -1;
}

int bench_default_pair(int cpu[2])
{
	cpu_set_t set;
	int c, n = 0;

	if (sched_getaffinity(0, sizeof(set), &set))
		return -errno;
	for (c = 0; c < CPU_SETSIZE && n < 2; c++)
		if (CPU_ISSET(c, &set))
			cpu[n++] = c;
	return n == 2 ? 0 : -ENODEV;
}

bool bench_cpu_allowed(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE || sched_getaffinity(0, sizeof(set), &set))
		return false;
	return CPU_ISSET(cpu, &set);
}

/* ------------------------------------------------------------- timestamps */

#if defined(__x86_64__) || defined(__i386__)
bool bench_ticks_tsc;
#endif
static double ticks_per_ns = 1;
static char ticks_what[96] = "CLOCK_MONOTONIC";

/* Does the TSC tick at a constant rate, whatever the CPU's frequency? */
static bool tsc_constant(void)
{
	char line[4096];
	bool ok = false;
	FILE *f = fopen("/proc/cpuinfo", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5))
			continue;
		ok = strstr(line, " constant_tsc") && strstr(line, " nonstop_tsc");
		break;
	}
	fclose(f);
	return ok;
}

void bench_ticks_init(void)
{
	static bool done;
	uint64_t t0, t1, c0, c1, best = UINT64_MAX;
	unsigned int i;

	if (done)
		return;
	done = true;
#if defined(__x86_64__) || defined(__i386__)
	if (tsc_constant()) {
		bench_ticks_tsc = true;
		/* 20 ms against the monotonic clock: parts per 10^5. */
		t0 = bench_now_ns();
		c0 = bench_ticks();
		do
			t1 = bench_now_ns();
		while (t1 - t0 < 20000000);
		c1 = bench_ticks();
		ticks_per_ns = (double)(c1 - c0) / (double)(t1 - t0);
		if (ticks_per_ns < 0.1 || ticks_per_ns > 20) {
			bench_ticks_tsc = false;	/* not believable */
			ticks_per_ns = 1;
		}
	}
#endif
	/* What one read costs: the least of many back-to-back pairs. */
	for (i = 0; i < 10000; i++) {
		c0 = bench_ticks();
		c1 = bench_ticks();
		if (c1 - c0 < best)
			best = c1 - c0;
	}
#if defined(__x86_64__) || defined(__i386__)
	if (bench_ticks_tsc)
		snprintf(ticks_what, sizeof(ticks_what), "lfence+rdtsc, TSC at %.3f GHz, %.0f ns a read",
			 ticks_per_ns, bench_ticks_ns(best));
	else
#endif
		snprintf(ticks_what, sizeof(ticks_what), "CLOCK_MONOTONIC, %.0f ns a read",
			 bench_ticks_ns(best));
}

double bench_ticks_ns(uint64_t ticks)
{
	return (double)ticks / ticks_per_ns;
}

const char *bench_ticks_describe(void)
{
	return ticks_what;
}

/* ------------------------------------------------------------- the host */

#define HOST_ROUNDS	20000u
#define HOST_WARMUP	1000u		/* untimed: the first waits for the fork */
#define HOST_ADDS	(20u * 1000 * 1000)

struct host_probe {
	_Alignas(64) _Atomic uint64_t ping;
	_Alignas(64) _Atomic uint64_t pong;
	_Alignas(64) struct bench_host h;
};

static int host_side(void *arg, int side)
{
	struct host_probe *p = arg;
	uint64_t i, t0, x = 0;

	/* Release and acquire: the round numbers are all that travel. */
	if (side) {
		for (i = 1; i <= HOST_WARMUP + HOST_ROUNDS; i++) {
			while (atomic_load_explicit(&p->ping, memory_order_acquire) != i)
				bench_cpu_relax();
			atomic_store_explicit(&p->pong, i, memory_order_release);
		}
		return 0;
	}
	for (i = 1, t0 = 0; i <= HOST_WARMUP + HOST_ROUNDS; i++) {
		if (i == HOST_WARMUP + 1)
			t0 = bench_now_ns();
		atomic_store_explicit(&p->ping, i, memory_order_release);
		while (atomic_load_explicit(&p->pong, memory_order_acquire) != i)
			bench_cpu_relax();
	}
	p->h.line_ns = (double)(bench_now_ns() - t0) / HOST_ROUNDS;
	/* Adds that each wait for the last: one a cycle on any core. */
	t0 = bench_now_ns();
	for (i = 0; i < HOST_ADDS; i++) {
		x++;
		__asm__ __volatile__("" : "+r"(x));
	}
	p->h.ghz = (double)HOST_ADDS / (double)(bench_now_ns() - t0);
	return 0;
}

int bench_host_probe(const int cpu[2], struct bench_host *h)
{
	struct host_probe *p = bench_shared_alloc(sizeof(*p));
	int err;

	if (!p)
		return -ENOMEM;
	err = bench_pair_run(host_side, p, cpu, 10000);
	if (!err)
		*h = p->h;
	bench_shared_free(p, sizeof(*p));
	return err;
}

/* ------------------------------------------------------------- two processes */

void *bench_shared_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		       -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void bench_shared_free(void *p, size_t len)
{
	if (p)
		munmap(p, len);
}

int bench_fd_io(int fd, void *buf, size_t len, bool wr)
{
	char *p = buf;
	ssize_t n;

	while (len) {
		n = wr ? write(fd, p, len) : read(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int bench_child_run(int (*fn)(void *arg, double *out, unsigned int n),
		    void *arg, double *out, unsigned int n)
{
	int fds[2], status, err;
	int32_t ret;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -errno;
	fflush(NULL);	/* the child must not print our buffered output again */
	pid = fork();
	if (pid < 0) {
		err = -errno;
		goto out_close;
	}
	if (!pid) {
		close(fds[0]);
		ret = fn(arg, out, n);
		/* _exit: no atexit handlers, they belong to the parent. */
		if (bench_fd_io(fds[1], &ret, sizeof(ret), true) ||
		    bench_fd_io(fds[1], out, n * sizeof(*out), true))
			_exit(1);
		_exit(0);
	}
	close(fds[1]);
	fds[1] = -1;
	if (bench_fd_io(fds[0], &ret, sizeof(ret), false) ||
	    bench_fd_io(fds[0], out, n * sizeof(*out), false))
		ret = -EPIPE;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	err = ret;
	if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
		err = -ECHILD;
out_close:
	close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	return err;
}

int bench_pair_run(int (*fn)(void *arg, int side), void *arg, const int cpu[2],
		   unsigned int timeout_ms)
{
	int fds[2][2] = { { -1, -1 }, { -1, -1 } };
	pid_t pid[2] = { -1, -1 };
	bool done[2] = { false, false };
	struct pollfd pfd[2];
	uint64_t deadline, now;
	int32_t ret;
	int err = 0, i, n, status;

	fflush(NULL);	/* the children must not print our buffered output again */
	for (i = 0; i < 2; i++) {
		if (pipe2(fds[i], O_CLOEXEC)) {
			err = -errno;
			goto out;
		}
		pid[i] = fork();
		if (pid[i] < 0) {
			err = -errno;
			goto out;
		}
		if (!pid[i]) {
			close(fds[i][0]);
			ret = bench_pin_cpu(cpu[i]);
			if (!ret)
				ret = fn(arg, i);
			/* _exit: no atexit handlers, they belong to the parent. */
			_exit(bench_fd_io(fds[i][1], &ret, sizeof(ret), true) ? 1 : 0);
		}
		close(fds[i][1]);
		fds[i][1] = -1;
	}

	/* Each child's pipe says when it is done: its status, or end of file. */
	deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000;
	while (!err && !(done[0] && done[1])) {
		for (i = 0; i < 2; i++) {
			pfd[i].fd = done[i] ? -1 : fds[i][0];
			pfd[i].events = POLLIN;
		}
		now = bench_now_ns();
		if (now >= deadline) {
			err = -ETIMEDOUT;
			break;
		}
		n = poll(pfd, 2, (int)((deadline - now + 999999) / 1000000));
		if (n < 0 && errno != EINTR) {
			err = -errno;
			break;
		}
		if (bench_stop) {
			err = -EINTR;
			break;
		}
		for (i = 0; i < 2 && n > 0; i++) {
			if (!pfd[i].revents)
				continue;
			done[i] = true;
			if (bench_fd_io(fds[i][0], &ret, sizeof(ret), false))
				ret = -ECHILD;	/* it died before saying anything */
			if (ret && !err)
				err = ret;
		}
	}
out:
	for (i = 0; i < 2; i++) {
		if (pid[i] <= 0)
			continue;
		/* Ours, by pid: one that is not done may spin forever. */
		if (!done[i] || err)
			kill(pid[i], SIGKILL);
		while (waitpid(pid[i], &status, 0) < 0 && errno == EINTR)
			;
		if (!err && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			err = -ECHILD;
	}
	for (i = 0; i < 2; i++) {
		if (fds[i][0] >= 0)
			close(fds[i][0]);
		if (fds[i][1] >= 0)
			close(fds[i][1]);
	}
	return err;
}
