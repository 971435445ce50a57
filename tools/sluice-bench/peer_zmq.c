// SPDX-License-Identifier: MIT
/*
 * The ZeroMQ peer: a ROUTER socket answering DEALER sockets over ipc://,
 * the asynchronous request/reply of the zguide.  The server is one thread
 * with one ROUTER; each client thread has a DEALER of its own, all in one
 * context per process (as the zguide asks), with the default single I/O
 * thread, which runs on the process's CPU.  Both sides block in
 * zmq_msg_recv() and zmq_msg_send(), the way libzmq's own latency and
 * throughput tools (local_lat, remote_lat) drive it; neither polls with
 * ZMQ_DONTWAIT.
 *
 * A request is one frame, the 8-byte nonce and the payload, built in place
 * in a zmq_msg_t; the ROUTER receives it after the frame with the sender's
 * identity and sends both frames back unchanged (zmq_msg_send() hands the
 * message over, no copy).  A ROUTER is not told when a DEALER goes, so each
 * client thread ends with a PEER_RR_STOP frame.  See peer_rr.h.
 *
 * Built with -DHAVE_ZMQ and libzmq's cflags when pkg-config finds libzmq
 * (the Makefile); otherwise the peer says it is missing.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "peer_rr.h"

#ifdef HAVE_ZMQ

#include <zmq.h>

/* Addresses in the abstract namespace ('@'): no socket file left behind. */
#define ZMQ_ADDR_MAX	128

static int zq_addr(const char *endpoint, char *addr)
{
	int n = snprintf(addr, ZMQ_ADDR_MAX, "ipc://@%s", endpoint);

	return n < 0 || n >= ZMQ_ADDR_MAX ? -ENAMETOOLONG : 0;
}

static const char *zq_version(void)
{
	static char v[32];
	int major, minor, patch;

	if (!v[0]) {
		zmq_version(&major, &minor, &patch);
		snprintf(v, sizeof(v), "libzmq %d.%d.%d", major, minor, patch);
	}
	return v;
}

/*
 * Timeouts in both directions, so that a gone peer is an error, not a hang;
 * and a linger: what is still queued at zmq_close() (a client's stop frame)
 * gets that long to leave before zmq_ctx_term() gives up on it.
 */
static int zq_opts(void *sock, int linger)
{
	int idle = PEER_RR_IDLE_MS;

	if (zmq_setsockopt(sock, ZMQ_RCVTIMEO, &idle, sizeof(idle)) ||
	    zmq_setsockopt(sock, ZMQ_SNDTIMEO, &idle, sizeof(idle)) ||
	    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)))
		return -zmq_errno();
	return 0;
}

/* ------------------------------------------------------------- the server */

static int zq_serve(const char *endpoint, const struct peer_rr_load *load,
		    _Atomic uint32_t *ready)
{
	char addr[ZMQ_ADDR_MAX];
	unsigned int stops = 0;
	uint64_t start_end, nonce;
	bool started = false;
	zmq_msg_t id, body;
	void *ctx, *sock;
	int err, e;

	if (!peer_rr_load_ok(load))
		return -EINVAL;
	err = zq_addr(endpoint, addr);
	if (err)
		return err;
	ctx = zmq_ctx_new();
	if (!ctx)
		return -zmq_errno();
	sock = zmq_socket(ctx, ZMQ_ROUTER);
	if (!sock) {
		err = -zmq_errno();
		goto out_term;
	}
	err = zq_opts(sock, 0);
	if (!err && zmq_bind(sock, addr))
		err = -zmq_errno();
	if (err)
		goto out_close;
	/* Pairs with the client's acquire: zmq_connect() finds the socket now. */
	atomic_store_explicit(ready, 1, memory_order_release);

	start_end = bench_now_ns() + PEER_RR_START_MS * 1000000ull;
	zmq_msg_init(&id);
	zmq_msg_init(&body);
	while (stops < load->threads) {
		if (zmq_msg_recv(&id, sock, 0) < 0) {
			e = zmq_errno();
			if (e == EINTR || (e == EAGAIN && !started && bench_now_ns() < start_end))
				continue;
			err = e == EAGAIN ? -ETIMEDOUT : -e;
			break;
		}
		started = true;
		/* The rest of a message is there as soon as its first frame is. */
		if (!zmq_msg_more(&id) || zmq_msg_recv(&body, sock, 0) < 0) {
			err = -EPROTO;
			break;
		}
		if (zmq_msg_size(&body) == sizeof(nonce)) {
			memcpy(&nonce, zmq_msg_data(&body), sizeof(nonce));
			if (nonce == PEER_RR_STOP) {
				stops++;
				continue;
			}
		}
		if (zmq_msg_send(&id, sock, ZMQ_SNDMORE) < 0 || zmq_msg_send(&body, sock, 0) < 0) {
			err = -zmq_errno();
			break;
		}
	}
	zmq_msg_close(&id);
	zmq_msg_close(&body);
out_close:
	zmq_close(sock);
out_term:
	zmq_ctx_term(ctx);
	return err;
}

/* ------------------------------------------------------------- the client */

struct zq_conn {
	void *sock;
	unsigned int size;
};

static inline int zq_send(void *p, uint64_t nonce)
{
	struct zq_conn *c = p;
	unsigned char *b;
	zmq_msg_t m;
	int err;

	if (zmq_msg_init_size(&m, PEER_RR_HDR + c->size))
		return -zmq_errno();
	b = zmq_msg_data(&m);
	memcpy(b, &nonce, sizeof(nonce));
	peer_rr_fill(b + PEER_RR_HDR, c->size, nonce);
	while (zmq_msg_send(&m, c->sock, 0) < 0) {
		err = -zmq_errno();
		if (err == -EINTR)
			continue;
		zmq_msg_close(&m);
		return err == -EAGAIN ? -ETIMEDOUT : err;
	}
	return 0;
}

static inline int zq_recv(void *p, uint64_t nonce)
{
	struct zq_conn *c = p;
	const unsigned char *b;
	uint64_t got;
	zmq_msg_t m;
	int err, ok;

	zmq_msg_init(&m);
	while (zmq_msg_recv(&m, c->sock, 0) < 0) {
		err = -zmq_errno();
		if (err == -EINTR)
			continue;
		zmq_msg_close(&m);
		return err == -EAGAIN ? -ETIMEDOUT : err;
	}
	ok = 0;
	if (zmq_msg_size(&m) == PEER_RR_HDR + c->size) {
		b = zmq_msg_data(&m);
		memcpy(&got, b, sizeof(got));
		ok = got == nonce && peer_rr_check(b + PEER_RR_HDR, c->size, nonce);
	}
	zmq_msg_close(&m);
	return ok;
}

struct zq_client {
	void *ctx;
	char addr[ZMQ_ADDR_MAX];
};

static int zq_thread(struct peer_rr_thread *t)
{
	const struct zq_client *zc = t->c->arg;
	struct zq_conn c = { .size = t->c->load->size };
	uint64_t stop = PEER_RR_STOP;
	int err = 0;

	c.sock = zmq_socket(zc->ctx, ZMQ_DEALER);
	if (!c.sock)
		err = -zmq_errno();
	if (!err)
		err = zq_opts(c.sock, PEER_RR_IDLE_MS);
	if (!err && zmq_connect(c.sock, zc->addr))
		err = -zmq_errno();
	err = peer_rr_gate(t->c, err);
	if (!err)
		err = peer_rr_loop(t, &c, zq_send, zq_recv);
	if (c.sock) {
		/*
		 * The server counts its threads out.  After an error it may be
		 * gone: then the stop frame may not wait for it, nor may
		 * zmq_ctx_term() wait to deliver it.
		 */
		if (err)
			zmq_setsockopt(c.sock, ZMQ_LINGER, &(int){ 0 }, sizeof(int));
		zmq_send(c.sock, &stop, sizeof(stop), ZMQ_DONTWAIT);
		zmq_close(c.sock);
	}
	return err;
}

static int zq_client(const char *endpoint, const struct peer_rr_load *load,
		     _Atomic uint32_t *ready, struct peer_rr_result *res)
{
	struct zq_client zc;
	int err;

	err = zq_addr(endpoint, zc.addr);
	if (err)
		return err;
	err = peer_rr_wait_ready(ready);
	if (err)
		return err;
	zc.ctx = zmq_ctx_new();
	if (!zc.ctx)
		return -zmq_errno();
	err = peer_rr_client_run(load, res, zq_thread, &zc);
	/* Waits for the stop frames, each at most its linger. */
	zmq_ctx_term(zc.ctx);
	return err;
}

const struct peer_rr peer_zmq = {
	.name = "ZeroMQ",
	.version = zq_version,
	.serve = zq_serve,
	.client = zq_client,
};

#else /* !HAVE_ZMQ */

const struct peer_rr peer_zmq = {
	.name = "ZeroMQ",
	.missing = "libzmq3-dev not installed (make bench installs it)",
};

#endif /* HAVE_ZMQ */
