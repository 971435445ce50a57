// SPDX-License-Identifier: MIT
/*
 * The Unix socket peer: request/response over AF_UNIX SOCK_SEQPACKET, as a
 * server on one machine is commonly written.  One thread serves every
 * connection from one epoll set; each client thread has a connection of its
 * own and blocks in send() and recv().  A message is the 8-byte nonce and
 * the payload, one packet each way; the server sends back what it read.
 * A client thread is done when it closes its connection.  See peer_rr.h.
 *
 * Needs nothing beyond the kernel: always built.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "peer_rr.h"

/*
 * The endpoint is a name in the abstract namespace (sun_path starts with a
 * NUL): nothing in the file system to clean up, and it goes away with the
 * last socket.  Returns the address's length, or -ENAMETOOLONG.
 */
static int us_addr(const char *endpoint, struct sockaddr_un *sa)
{
	size_t len = strlen(endpoint);

	if (len + 1 > sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, endpoint, len);
	return (int)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
}

/*
 * Set up a connected socket: both directions give up after PEER_RR_IDLE_MS
 * (-EAGAIN then), and the send buffer holds every message of @load that can
 * be in flight.  A message waiting in a Unix socket is charged to its
 * sender's buffer at the size of its allocation, up to twice its length
 * and a few hundred bytes more; with big payloads at depth, the default
 * buffers would let both sides block in send() at once, each waiting for
 * the other to read.  The buffer only ever grows, as far as
 * net.core.wmem_max lets it.
 */
static int us_setup(int fd, const struct peer_rr_load *load)
{
	struct timeval tv = {
		.tv_sec = PEER_RR_IDLE_MS / 1000,
		.tv_usec = (PEER_RR_IDLE_MS % 1000) * 1000,
	};
	int want = (int)(load->depth * 2 * (PEER_RR_HDR + load->size + 1024)), have;
	socklen_t len = sizeof(have);

	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &have, &len))
		return -errno;
	if (have < want && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want)))
		return -errno;
	return 0;
}

static const char *us_version(void)
{
	static char v[80];
	struct utsname u;

	if (!v[0] && !uname(&u))
		snprintf(v, sizeof(v), "Linux %s", u.release);
	return v;
}

/* ------------------------------------------------------------- the server */

#define US_EVENTS	(PEER_RR_THREADS_MAX + 1)

/*
 * Level-triggered, and a ready connection is read until it is empty, or for
 * US_BATCH messages before the others get their turn, as libuv reads a
 * stream; each message is sent back as it comes.  A reply never waits long
 * in send(): the send buffer holds all a client can be owed (us_setup()).
 */
#define US_BATCH	32

/* Echo what @fd has; false once it is closed (end of stream or error). */
static bool us_echo(int fd, unsigned char *buf, size_t cap)
{
	unsigned int i;
	ssize_t k;

	for (i = 0; i < US_BATCH; i++) {
		k = recv(fd, buf, cap, MSG_DONTWAIT);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return true;
		if (k <= 0 || send(fd, buf, (size_t)k, MSG_NOSIGNAL) < 0)
			return false;
	}
	return true;
}

static int us_serve(const char *endpoint, const struct peer_rr_load *load,
		    _Atomic uint32_t *ready)
{
	struct epoll_event ev[US_EVENTS], add = { .events = EPOLLIN };
	unsigned int accepted = 0, closed = 0;
	size_t cap = PEER_RR_HDR + load->size;
	uint64_t start_end;
	bool started = false;
	struct sockaddr_un sa;
	unsigned char *buf;
	int lfd, ep, fd, n, i, len, err;

	if (!peer_rr_load_ok(load))
		return -EINVAL;
	len = us_addr(endpoint, &sa);
	if (len < 0)
		return len;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		err = -errno;
		goto out_free;
	}
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0) {
		err = -errno;
		goto out_close_ep;
	}
	if (bind(lfd, (struct sockaddr *)&sa, (socklen_t)len) ||
	    listen(lfd, (int)load->threads)) {
		err = -errno;
		goto out_close_lfd;
	}
	add.data.fd = lfd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &add)) {
		err = -errno;
		goto out_close_lfd;
	}
	/* Pairs with the client's acquire: connect() works from now on. */
	atomic_store_explicit(ready, 1, memory_order_release);

	start_end = bench_now_ns() + PEER_RR_START_MS * 1000000ull;
	err = 0;
	while (accepted < load->threads || closed < accepted) {
		n = epoll_wait(ep, ev, US_EVENTS, PEER_RR_IDLE_MS);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		if (!n) {
			if (!started && bench_now_ns() < start_end)
				continue;
			err = -ETIMEDOUT;
			break;
		}
		for (i = 0; i < n; i++) {
			fd = ev[i].data.fd;
			if (fd == lfd) {
				fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
				if (fd < 0)
					continue;	/* the client gave up on it */
				add.data.fd = fd;
				err = us_setup(fd, load);
				if (!err && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &add))
					err = -errno;
				if (err) {
					close(fd);
					goto out_close_lfd;
				}
				accepted++;
				started = true;
				continue;
			}
			if (us_echo(fd, buf, cap))
				continue;
			/* End of stream, or a client gone: its thread is done. */
			epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
			close(fd);
			closed++;
		}
	}
	/* Connections still open, after an error, close with the process. */
out_close_lfd:
	close(lfd);
out_close_ep:
	close(ep);
out_free:
	free(buf);
	return err;
}

/* ------------------------------------------------------------- the client */

struct us_conn {
	int fd;
	unsigned int size;
	size_t len;		/* PEER_RR_HDR + size */
	unsigned char *tx, *rx;
};

static inline int us_send(void *p, uint64_t nonce)
{
	struct us_conn *c = p;
	ssize_t n;

	memcpy(c->tx, &nonce, sizeof(nonce));
	peer_rr_fill(c->tx + PEER_RR_HDR, c->size, nonce);
	do
		n = send(c->fd, c->tx, c->len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	return (size_t)n == c->len ? 0 : -EIO;
}

static inline int us_recv(void *p, uint64_t nonce)
{
	struct us_conn *c = p;
	uint64_t got;
	ssize_t n;

	/* MSG_TRUNC: the packet's real length, so a longer one is not taken whole. */
	do
		n = recv(c->fd, c->rx, c->len, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -ETIMEDOUT : -errno;
	if (!n)
		return -EPIPE;
	if ((size_t)n != c->len)
		return 0;
	memcpy(&got, c->rx, sizeof(got));
	return got == nonce && peer_rr_check(c->rx + PEER_RR_HDR, c->size, nonce);
}

struct us_client {
	struct sockaddr_un sa;
	socklen_t len;
};

static int us_thread(struct peer_rr_thread *t)
{
	const struct us_client *uc = t->c->arg;
	struct us_conn c = {
		.fd = -1,
		.size = t->c->load->size,
		.len = PEER_RR_HDR + t->c->load->size,
	};
	int err = 0;

	c.tx = malloc(2 * c.len);
	c.rx = c.tx + c.len;
	if (!c.tx)
		err = -ENOMEM;
	if (!err) {
		c.fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (c.fd < 0)
			err = -errno;
	}
	if (!err)
		err = us_setup(c.fd, t->c->load);
	if (!err && connect(c.fd, (const struct sockaddr *)&uc->sa, uc->len))
		err = -errno;
	err = peer_rr_gate(t->c, err);
	if (!err)
		err = peer_rr_loop(t, &c, us_send, us_recv);
	/* The end of the stream tells the server this thread is done. */
	if (c.fd >= 0)
		close(c.fd);
	free(c.tx);
	return err;
}

static int us_client(const char *endpoint, const struct peer_rr_load *load,
		     _Atomic uint32_t *ready, struct peer_rr_result *res)
{
	struct us_client uc;
	int len, err;

	len = us_addr(endpoint, &uc.sa);
	if (len < 0)
		return len;
	uc.len = (socklen_t)len;
	err = peer_rr_wait_ready(ready);
	if (err)
		return err;
	return peer_rr_client_run(load, res, us_thread, &uc);
}

const struct peer_rr peer_usock = {
	.name = "unix socket",
	.version = us_version,
	.serve = us_serve,
	.client = us_client,
};
