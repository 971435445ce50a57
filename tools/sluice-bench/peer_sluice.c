// SPDX-License-Identifier: MIT
/*
 * sluice's own columns of the mux suite, as request/response peers
 * (peer_rr.h), so that one client loop measures every column alike:
 *
 *   sluice mux   a multiplexer (mux.h) over a ring pair, one for the whole
 *                client process, its threads calling through it at once;
 *                one call in flight per thread is sluice_mux_call(), more
 *                are sluice_mux_send() with the reply's room registered and
 *                sluice_mux_wait() in turn.  The responder takes requests
 *                and answers them in batches (recv_batch, reply_batch).
 *   sluice mux, sleeping
 *                the same with every wait's spin budget 1 ns: each side
 *                sleeps on its futex at once, as the other peers do.
 *   bare SPSC    the same rings without the multiplexer: one packet each
 *                way with sluice_spsc_send() and sluice_spsc_recv(), one
 *                thread, one in flight: the floor under one call.
 *
 * The endpoint names a region the server makes with both rings, server's
 * sides taken; the client opens it and takes the others.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <sluice.h>
#include <sluice/mux.h>

#include "peer_rr.h"

#define SX_SLOTS	512u		/* each ring: room for every request in flight */
#define SX_BATCH	32u		/* requests a responder takes at once */
#define SX_REGION	(8u << 20)

static const char *sx_version(void)
{
	return "sluice " SLUICE_VERSION;
}

/* A slot for @size payload bytes and any header in front of them. */
static uint32_t sx_slot(unsigned int size)
{
	return (uint32_t)(SLUICE_MUX_HDR + PEER_RR_HDR + size);
}

static void sx_spsc_opts(struct sluice_spsc_opts *o, uint64_t ms, uint32_t spin_ns)
{
	memset(o, 0, sizeof(*o));
	o->sz = sizeof(*o);
	o->timeout_ns = ms * 1000000ull;
	o->spin_ns = spin_ns;
}

/*
 * The server's region and ring ends: requests in "q" (consumer), replies
 * out of "p" (producer).
 */
static int sx_server_open(const char *endpoint, const struct peer_rr_load *load,
			  uint32_t spin_ns, struct sluice_region **r, struct sluice_spsc **in,
			  struct sluice_spsc **out)
{
	struct sluice_spsc_opts so;
	int err;

	(void)sluice_region_unlink(endpoint);	/* an earlier run's, killed */
	err = sluice_region_create(endpoint, SX_REGION, NULL, r);
	if (err)
		return err;
	sx_spsc_opts(&so, PEER_RR_START_MS, spin_ns);
	err = sluice_spsc_create(*r, "q", SX_SLOTS, sx_slot(load->size), SLUICE_SPSC_CONSUMER,
				 &so, in);
	if (!err) {
		err = sluice_spsc_create(*r, "p", SX_SLOTS, sx_slot(load->size),
					 SLUICE_SPSC_PRODUCER, &so, out);
		if (err)
			sluice_spsc_close(*in);
	}
	if (err)
		sluice_region_destroy(*r);
	return err;
}

static int sx_client_open(const char *endpoint, uint32_t spin_ns, struct sluice_region **r,
			  struct sluice_spsc **out, struct sluice_spsc **in)
{
	struct sluice_spsc_opts so;
	int err;

	err = sluice_region_open(endpoint, NULL, r);
	if (err)
		return err;
	sx_spsc_opts(&so, PEER_RR_IDLE_MS, spin_ns);
	err = sluice_spsc_attach(*r, "q", SLUICE_SPSC_PRODUCER, &so, out);
	if (!err) {
		err = sluice_spsc_attach(*r, "p", SLUICE_SPSC_CONSUMER, &so, in);
		if (err)
			sluice_spsc_close(*out);
	}
	if (err)
		sluice_region_close(*r);
	return err;
}

/* ---------------------------------------------------------------- the multiplexer */

static int mx_serve(const char *endpoint, const struct peer_rr_load *load,
		    _Atomic uint32_t *ready, uint32_t spin_ns)
{
	SLUICE_OPTS(sluice_mux_responder_opts, ro, .timeout_ns = PEER_RR_START_MS * 1000000ull,
		    .spin_ns = spin_ns);
	struct sluice_mux_responder *rs;
	struct sluice_spsc *in, *out;
	uint64_t nonce[SX_BATCH];
	struct iovec iov[SX_BATCH];
	struct sluice_region *r;
	unsigned char *buf;
	unsigned int i;
	int n, err;

	buf = malloc((size_t)SX_BATCH * sx_slot(load->size));
	if (!buf)
		return -ENOMEM;
	err = sx_server_open(endpoint, load, spin_ns, &r, &in, &out);
	if (err) {
		free(buf);
		return err;
	}
	err = sluice_mux_responder_create(in, out, &ro, &rs);
	if (err) {
		sluice_spsc_close(in);
		sluice_spsc_close(out);
		goto out;
	}
	/* Pairs with peer_rr_wait_ready(): the rings are there. */
	atomic_store_explicit(ready, 1, memory_order_release);
	for (;;) {
		for (i = 0; i < SX_BATCH; i++)
			iov[i] = (struct iovec){ buf + (size_t)i * sx_slot(load->size),
						 sx_slot(load->size) };
		n = sluice_mux_recv_batch(rs, nonce, iov, SX_BATCH);
		if (n == -EPIPE) {
			err = 0;	/* the client closed: done */
			break;
		}
		if (n < 0) {
			err = n;
			break;
		}
		n = sluice_mux_reply_batch(rs, nonce, iov, (unsigned int)n);
		if (n < 0) {
			err = n;
			break;
		}
	}
	sluice_mux_responder_close(rs);
out:
	sluice_region_destroy(r);
	free(buf);
	return err;
}

struct mx_conn {
	struct sluice_mux *m;
	unsigned int size;
	unsigned int depth;
	uint64_t head, tail;		/* requests sent, replies taken */
	unsigned char *req;
	unsigned char *rep;		/* depth rooms */
	uint64_t *mn;			/* their multiplexer nonces */
	uint64_t one;			/* depth 1: the request to call with */
};

static inline int mx_send(void *p, uint64_t nonce)
{
	struct mx_conn *c = p;
	struct sluice_mux_reg reg = { .sz = sizeof(reg) };
	uint32_t i;

	if (c->depth == 1) {
		c->one = nonce;		/* sent and answered by one call, in mx_recv() */
		return 0;
	}
	i = (uint32_t)(c->head++ % c->depth);
	peer_rr_fill(c->req, c->size, nonce);
	reg.rep = c->rep + (size_t)i * c->size;
	reg.cap = c->size;
	return sluice_mux_send(c->m, c->req, c->size, &reg, NULL, &c->mn[i]);
}

static inline int mx_recv(void *p, uint64_t nonce)
{
	struct mx_conn *c = p;
	unsigned char *rep;
	uint32_t i;
	int n;

	if (c->depth == 1) {
		peer_rr_fill(c->req, c->size, c->one);
		n = sluice_mux_call(c->m, c->req, c->size, c->rep, c->size, NULL);
		rep = c->rep;
	} else {
		i = (uint32_t)(c->tail++ % c->depth);
		n = sluice_mux_wait(c->m, c->mn[i], NULL, 0, NULL);
		rep = c->rep + (size_t)i * c->size;
	}
	if (n < 0)
		return n;
	return (unsigned int)n == c->size && peer_rr_check(rep, c->size, nonce);
}

static int mx_thread(struct peer_rr_thread *t)
{
	const struct peer_rr_load *l = t->c->load;
	struct mx_conn c = {
		.m = t->c->arg,
		.size = l->size,
		.depth = l->depth,
	};
	int err = 0;

	c.req = malloc(l->size);
	c.rep = malloc((size_t)l->size * l->depth);
	c.mn = calloc(l->depth, sizeof(*c.mn));
	if (!c.req || !c.rep || !c.mn)
		err = -ENOMEM;
	err = peer_rr_gate(t->c, err);
	if (!err)
		err = peer_rr_loop(t, &c, mx_send, mx_recv);
	free(c.req);
	free(c.rep);
	free(c.mn);
	return err;
}

static int mx_client(const char *endpoint, const struct peer_rr_load *load,
		     _Atomic uint32_t *ready, struct peer_rr_result *res, uint32_t spin_ns)
{
	SLUICE_OPTS(sluice_mux_opts, mo, .inflight = load->threads * load->depth,
		    .timeout_ns = PEER_RR_IDLE_MS * 1000000ull, .spin_ns = spin_ns);
	struct sluice_spsc *out, *in;
	struct sluice_region *r;
	struct sluice_mux *m;
	int err;

	err = peer_rr_wait_ready(ready);
	if (err)
		return err;
	err = sx_client_open(endpoint, spin_ns, &r, &out, &in);
	if (err)
		return err;
	err = sluice_mux_create(out, in, &mo, &m);
	if (err) {
		sluice_spsc_close(out);
		sluice_spsc_close(in);
	} else {
		err = peer_rr_client_run(load, res, mx_thread, m);
		sluice_mux_close(m);	/* the responder sees -EPIPE: done */
	}
	sluice_region_close(r);
	return err;
}

/* Spinning as it does by default (0: adapt), or sleeping at once (1 ns). */
static int mx_serve_spin(const char *endpoint, const struct peer_rr_load *load,
			 _Atomic uint32_t *ready)
{
	return mx_serve(endpoint, load, ready, 0);
}

static int mx_client_spin(const char *endpoint, const struct peer_rr_load *load,
			  _Atomic uint32_t *ready, struct peer_rr_result *res)
{
	return mx_client(endpoint, load, ready, res, 0);
}

static int mx_serve_sleep(const char *endpoint, const struct peer_rr_load *load,
			  _Atomic uint32_t *ready)
{
	return mx_serve(endpoint, load, ready, 1);
}

static int mx_client_sleep(const char *endpoint, const struct peer_rr_load *load,
			   _Atomic uint32_t *ready, struct peer_rr_result *res)
{
	return mx_client(endpoint, load, ready, res, 1);
}

const struct peer_rr peer_sluice_mux = {
	.name = "sluice mux",
	.version = sx_version,
	.serve = mx_serve_spin,
	.client = mx_client_spin,
};

const struct peer_rr peer_sluice_mux_sleep = {
	.name = "sluice, sleeping",
	.version = sx_version,
	.serve = mx_serve_sleep,
	.client = mx_client_sleep,
};

/* ---------------------------------------------------------------- bare rings */

static int sp_serve(const char *endpoint, const struct peer_rr_load *load,
		    _Atomic uint32_t *ready)
{
	struct sluice_spsc *in, *out;
	struct sluice_region *r;
	unsigned char *buf;
	size_t len = PEER_RR_HDR + load->size;
	int n, err;

	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	err = sx_server_open(endpoint, load, 0, &r, &in, &out);
	if (err) {
		free(buf);
		return err;
	}
	atomic_store_explicit(ready, 1, memory_order_release);
	for (;;) {
		n = sluice_spsc_recv(in, buf, len);
		if (n == -EPIPE) {
			err = 0;
			break;
		}
		if (n < 0) {
			err = n;
			break;
		}
		err = sluice_spsc_send(out, buf, (size_t)n);
		if (err)
			break;
	}
	sluice_spsc_close(in);
	sluice_spsc_close(out);
	sluice_region_destroy(r);
	free(buf);
	return err;
}

struct sp_conn {
	struct sluice_spsc *out, *in;
	unsigned int size;
	unsigned char *tx, *rx;
};

static inline int sp_send(void *p, uint64_t nonce)
{
	struct sp_conn *c = p;

	memcpy(c->tx, &nonce, sizeof(nonce));
	peer_rr_fill(c->tx + PEER_RR_HDR, c->size, nonce);
	return sluice_spsc_send(c->out, c->tx, PEER_RR_HDR + c->size);
}

static inline int sp_recv(void *p, uint64_t nonce)
{
	struct sp_conn *c = p;
	uint64_t got;
	int n = sluice_spsc_recv(c->in, c->rx, PEER_RR_HDR + c->size);

	if (n < 0)
		return n;
	if ((unsigned int)n != PEER_RR_HDR + c->size)
		return 0;
	memcpy(&got, c->rx, sizeof(got));
	return got == nonce && peer_rr_check(c->rx + PEER_RR_HDR, c->size, nonce);
}

static int sp_thread(struct peer_rr_thread *t)
{
	struct sp_conn *c = t->c->arg;
	int err;

	err = peer_rr_gate(t->c, 0);
	return err ? err : peer_rr_loop(t, c, sp_send, sp_recv);
}

static int sp_client(const char *endpoint, const struct peer_rr_load *load,
		     _Atomic uint32_t *ready, struct peer_rr_result *res)
{
	struct sp_conn c = { .size = load->size };
	struct sluice_region *r;
	int err;

	/* Two ring ends: one thread, one in flight. */
	if (load->threads != 1 || load->depth != 1)
		return -EINVAL;
	err = peer_rr_wait_ready(ready);
	if (err)
		return err;
	err = sx_client_open(endpoint, 0, &r, &c.out, &c.in);
	if (err)
		return err;
	c.tx = malloc(2 * (PEER_RR_HDR + (size_t)load->size));
	if (!c.tx) {
		err = -ENOMEM;
	} else {
		c.rx = c.tx + PEER_RR_HDR + load->size;
		err = peer_rr_client_run(load, res, sp_thread, &c);
	}
	free(c.tx);
	sluice_spsc_close(c.out);	/* the server sees -EPIPE: done */
	sluice_spsc_close(c.in);
	sluice_region_close(r);
	return err;
}

const struct peer_rr peer_sluice_spsc = {
	.name = "bare SPSC",
	.version = sx_version,
	.serve = sp_serve,
	.client = sp_client,
};
