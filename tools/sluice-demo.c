// SPDX-License-Identifier: MIT
/*
 * sluice-demo: two processes share a region by name.
 *
 * The parent forks a child, creates a region on huge pages on its own NUMA
 * node and fills a 32 MiB buffer ("ping") in it.  The child opens the region
 * by name, checks ping's checksum and writes a reply ("pong"): every word of
 * ping xor a mask.  The parent checks every word of the reply.  A socket
 * pair carries "your turn" both ways; the data never goes through it.  The
 * output says what the region really got and how fast the data moved.
 * Exit status: 0 if everything checked out, 1 otherwise.
 */
#include <errno.h>
#include <numa.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sluice.h>

#define PROG		"sluice-demo"
#define BUF_SIZE	(32ull << 20)
#define NWORDS		(BUF_SIZE / sizeof(uint64_t))
#define SEED		0x2545f4914f6cdd1dull
#define REPLY_MASK	0x5a5a5a5a5a5a5a5aull
#define FILLED		1u
#define REPLIED		2u

/* In the region as object "ctl"; each side writes it, then says so. */
struct demo_ctl {
	_Atomic uint32_t state;	/* FILLED by the parent, then REPLIED by the child */
	uint32_t ok;		/* child: ping's checksum matched */
	uint64_t csum;		/* parent: checksum of ping */
	uint64_t open_ns;	/* child: open by name and find the objects */
	uint64_t read_ns;	/* child: checksum ping */
	uint64_t write_ns;	/* child: write pong */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t x)
{
	x ^= x << 13;
	x ^= x >> 7;
	return x ^ (x << 17);
}

/* Fletcher-style in four lanes: sees every word and its place, at memory speed. */
static uint64_t csum64(const uint64_t *p)
{
	uint64_t a[4] = { 0 }, b[4] = { 0 };
	size_t i, k;

	for (i = 0; i < NWORDS; i += 4)
		for (k = 0; k < 4; k++) {
			a[k] += p[i + k];
			b[k] += a[k];
		}
	return (a[0] + 3 * a[1] + 5 * a[2] + 7 * a[3]) ^ ((b[0] + b[1] + b[2] + b[3]) << 1);
}

/* Object @name of at least @size bytes, or NULL. */
static void *obj_get(struct sluice_region *r, const char *name, uint64_t size)
{
	struct sluice_obj_info oi;

	if (sluice_region_find(r, name, &oi) || oi.size < size)
		return NULL;
	return sluice_region_at(r, oi.offset, size);
}

/* Find the three objects, looked up by name on both sides. */
static struct demo_ctl *objs_get(struct sluice_region *r, uint64_t **ping, uint64_t **pong)
{
	*ping = obj_get(r, "ping", BUF_SIZE);
	*pong = obj_get(r, "pong", BUF_SIZE);
	return *ping && *pong ? obj_get(r, "ctl", sizeof(struct demo_ctl)) : NULL;
}

/* The second process: all it knows is the region's name. */
static int child_main(const char *name, int sock)
{
	uint64_t *ping, *pong, t;
	struct sluice_region *r;
	struct demo_ctl *ctl;
	size_t i;
	char c;
	int err;

	if (read(sock, &c, 1) != 1)
		return 1;	/* the parent failed and says why */
	t = now_ns();
	err = sluice_region_open(name, NULL, &r);
	if (err) {
		fprintf(stderr, PROG ": child: open %s: %s\n", name, strerror(-err));
		return 1;
	}
	ctl = objs_get(r, &ping, &pong);
	/* Pairs with the parent's release store of FILLED: ping is complete. */
	if (!ctl || atomic_load_explicit(&ctl->state, memory_order_acquire) != FILLED) {
		fprintf(stderr, PROG ": child: %s lacks ctl, ping or pong\n", name);
		sluice_region_close(r);
		return 1;
	}
	ctl->open_ns = now_ns() - t;

	t = now_ns();
	ctl->ok = csum64(ping) == ctl->csum;
	ctl->read_ns = now_ns() - t;
	t = now_ns();
	for (i = 0; i < NWORDS; i++)
		pong[i] = ping[i] ^ REPLY_MASK;
	ctl->write_ns = now_ns() - t;

	/* Pairs with the parent's acquire load: pong and the numbers are in. */
	atomic_store_explicit(&ctl->state, REPLIED, memory_order_release);
	sluice_region_close(r);
	return write(sock, "r", 1) == 1 ? 0 : 1;
}

/* The parent's side once the region exists: send, wait, check, report. */
static int parent_run(struct sluice_region *r, pid_t child, int cpu, int sock)
{
	struct sluice_region_info info = { .sz = sizeof(info) };
	uint64_t *ping, *pong, x = SEED, t;
	struct demo_ctl *ctl, c;
	size_t i, bad = 0;
	char b;

	ctl = objs_get(r, &ping, &pong);
	if (!ctl || sluice_region_info(r, &info)) {
		fprintf(stderr, PROG ": objects not found in the new region\n");
		return 1;
	}
	for (i = 0; i < NWORDS; i++)
		ping[i] = x = xorshift64(x);
	ctl->csum = csum64(ping);
	/* Pairs with the child's acquire load: ping and csum come with FILLED. */
	atomic_store_explicit(&ctl->state, FILLED, memory_order_release);

	t = now_ns();
	if (write(sock, "g", 1) != 1 || read(sock, &b, 1) != 1) {
		fprintf(stderr, PROG ": the child failed\n");
		return 1;
	}
	t = now_ns() - t;
	/* Pairs with the child's release store of REPLIED. */
	if (atomic_load_explicit(&ctl->state, memory_order_acquire) != REPLIED) {
		fprintf(stderr, PROG ": the child did not reply\n");
		return 1;
	}
	memcpy(&c, ctl, sizeof(c));	/* the child's numbers, read once */
	/* Check against the pattern itself, not against what ping holds now. */
	for (i = 0, x = SEED; i < NWORDS; i++)
		bad += pong[i] != ((x = xorshift64(x)) ^ REPLY_MASK);

	printf(PROG ": region %s, %llu MiB\n", info.name, (unsigned long long)info.size >> 20);
	printf("  backing   %s, %llu %s pages (asked %s)\n", sluice_backing_str(info.backing),
	       (unsigned long long)info.page_size >> (info.page_size >> 20 ? 20 : 10),
	       info.page_size >> 20 ? "MiB" : "KiB", sluice_pages_str(info.pages));
	printf("  node      %d requested (that of CPU %d), %d verified\n",
	       info.node_requested, cpu, info.node);
	if (info.huge_fallback_err)
		printf("  fallback  no huge pages (%s), so %s\n",
		       strerror(-info.huge_fallback_err), sluice_backing_str(info.backing));
	else
		printf("  fallback  none, got what was asked\n");
	printf("  child     pid %d opened it by name, found its objects in %.2f ms\n",
	       (int)child, (double)c.open_ns / 1e6);
	printf("  ping      %llu MiB parent -> child, checksum %s, read at %.1f GB/s\n",
	       BUF_SIZE >> 20, c.ok ? "ok" : "WRONG", (double)BUF_SIZE / (double)c.read_ns);
	printf("  pong      %llu MiB child -> parent, %s, written at %.1f GB/s\n",
	       BUF_SIZE >> 20, bad ? "WRONG words" : "every word checked",
	       (double)BUF_SIZE / (double)c.write_ns);
	printf("  total     %.1f ms from go to reply, %.1f GB/s through the region\n",
	       (double)t / 1e6, 2.0 * BUF_SIZE / (double)t);
	return c.ok && !bad ? 0 : 1;
}

int main(void)
{
	int cpu = sched_getcpu(), sv[2], err, status, ret = 1;
	int node = numa_available() >= 0 && cpu >= 0 ? numa_node_of_cpu(cpu) : 0;
	SLUICE_OPTS(sluice_region_opts, opts, .pages = SLUICE_PAGES_PREFER_HUGE,
		    .flags = SLUICE_REGION_NODE, .node = node < 0 ? 0 : node);
	char name[SLUICE_REGION_NAME_MAX + 1];
	struct sluice_region *r = NULL;
	uint64_t off;
	pid_t pid;

	signal(SIGPIPE, SIG_IGN);	/* a dead child shows as EOF on the socket */
	snprintf(name, sizeof(name), PROG ".%d", (int)getpid());
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		perror(PROG ": socketpair");
		return 1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		perror(PROG ": fork");
		close(sv[0]);
		close(sv[1]);
		return 1;
	}
	if (!pid) {
		close(sv[0]);
		_exit(child_main(name, sv[1]));
	}
	close(sv[1]);

	err = sluice_region_create(name, 2 * BUF_SIZE + (64 << 10), &opts, &r);
	if (!err)
		err = sluice_region_alloc(r, "ctl", SLUICE_OBJ_RAW, sizeof(struct demo_ctl), 0, &off);
	if (!err)
		err = sluice_region_alloc(r, "ping", SLUICE_OBJ_RAW, BUF_SIZE, 4096, &off);
	if (!err)
		err = sluice_region_alloc(r, "pong", SLUICE_OBJ_RAW, BUF_SIZE, 4096, &off);
	if (err)
		fprintf(stderr, PROG ": region %s: %s\n", name, strerror(-err));
	else
		ret = parent_run(r, pid, cpu, sv[0]);

	close(sv[0]);	/* a child still waiting for "go" leaves */
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		ret = 1;
	err = sluice_region_destroy(r);
	if (err) {
		fprintf(stderr, PROG ": destroy %s: %s\n", name, strerror(-err));
		ret = 1;
	}
	printf("%s\n", ret ? PROG ": FAILED" : "ok");
	return ret;
}
