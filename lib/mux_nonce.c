// SPDX-License-Identifier: MIT
/*
 * The caller's side of a multiplexed link, continued (mux.h): what is done
 * with a nonce once its request went (register, wait, poll, an fd,
 * forget), threads that dispatch, and the multiplexer's making and end.
 * The rules are told at the top of mux.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/random.h>

#include <sluice/mux.h>

#include "futex.h"
#include "internal.h"
#include "mux_caller.h"
#include "spsc_internal.h"
#include "wait.h"

/* ------------------------------------------------------------- nonces */

/* The entry @nonce names, if its generation is the entry's now. */
static struct entry *entry_of_nonce(struct sluice_mux *m, uint64_t nonce, uint64_t *gen)
{
	uint32_t idx = (uint32_t)(nonce & SLUICE__MUX_IDX_MASK);
	struct entry *e;
	uint64_t s;

	if (!m || idx >= m->n)
		return NULL;
	e = &m->e[idx];
	*gen = nonce >> SLUICE__MUX_IDX_BITS;
	return use_on(e, *gen, &s) ? e : NULL;
}

/*
 * After a change to @e that its waiter must see, by a thread other than
 * the waiter's: it may be leading, asleep on the inbound ring.
 */
static void entry_poke(struct sluice_mux *m, struct entry *e)
{
	sluice__futex_bump_wake(&e->seq);
	sluice__spsc_wake_self(m->in);
}

int sluice_mux_register(struct sluice_mux *m, uint64_t nonce, const struct sluice_mux_reg *reg)
{
	struct entry *e;
	uint64_t gen, s;
	const void *src;
	bool done;
	int err;

	if (!m || !sluice__mux_reg_ok(reg))
		return -EINVAL;
	e = entry_of_nonce(m, nonce, &gen);
	if (!e)
		return -ENOENT;
	for (;;) {
		if (!state_at(e, gen, &s))
			return -ENOENT;
		if (st_of(s) == E_PENDING || st_of(s) == E_DONE) {
			/* REGISTERING holds the dispatcher off while we write. */
			if (atomic_compare_exchange_strong_explicit(&e->state, &s,
								    st_make(gen, E_REGISTERING),
								    memory_order_acquire,
								    memory_order_relaxed))
				break;
			continue;
		}
		if (st_of(s) != E_QUEUED && st_of(s) != E_SENDING && st_of(s) != E_DELIVERING)
			return -ENOENT;
		sluice__mux_entry_wait_change(e, s);
	}
	done = st_of(s) == E_DONE;
	src = e->keep ? e->own : e->rep;	/* where an outcome that came lies */
	err = sluice__mux_entry_reg(m, e, reg);
	if (err && done) {
		atomic_store_explicit(&e->state, s, memory_order_release);
	} else if (err) {
		sluice__mux_entry_pending(m, e, gen);
	} else {
		/* A replaced waiter looks at reg: moved, it returns -ESTALE. */
		atomic_fetch_add_explicit(&e->reg, 1, memory_order_release);
		if (done) {
			/* As the dispatcher would have: the new registration gets it. */
			atomic_store_explicit(&e->state, st_make(gen, E_DELIVERING),
					      memory_order_relaxed);
			sluice__mux_complete(m, e, gen, e->result, src);
		} else {
			sluice__mux_entry_pending(m, e, gen);
		}
	}
	/* Its waiter, and a dispatcher that waits out REGISTERING (deliver()). */
	entry_poke(m, e);
	return err;
}

int sluice_mux_wait(struct sluice_mux *m, uint64_t nonce, void *rep, size_t cap,
		    const struct sluice_mux_call_opts *o)
{
	struct entry *e;
	struct call k;
	uint64_t gen;

	if (!m || (cap && !rep) || !call_opts_ok(o))
		return -EINVAL;
	e = entry_of_nonce(m, nonce, &gen);
	if (!e)
		return -ENOENT;
	call_init(m, o, &k);
	return sluice__mux_wait_entry(m, e, gen, &k, false, rep, cap);
}

int sluice_mux_poll(struct sluice_mux *m, uint64_t nonce, void *rep, size_t cap)
{
	struct entry *e;
	uint64_t gen, s;
	int n;

	if (!m || (cap && !rep))
		return -EINVAL;
	e = entry_of_nonce(m, nonce, &gen);
	if (!e)
		return -ENOENT;
	if (st_of(load_state(e)) != E_DONE && sluice__mux_rx_trylead(m)) {
		n = sluice__mux_rx_drain(m);
		if (n < 0)
			sluice__mux_link_fail(m, n);
		sluice__mux_rx_unlead(m);
	}
	if (!use_on(e, gen, &s))
		return -ENOENT;
	if (st_of(s) == E_DONE)
		return sluice__mux_collect(m, e, gen, rep, cap);
	n = atomic_load_explicit(&m->failed, memory_order_acquire);
	return n ? sluice__mux_give_up(m, e, gen, n, rep, cap) : -EAGAIN;
}

int sluice_mux_nonce_fd(struct sluice_mux *m, uint64_t nonce)
{
	struct entry *e;
	uint64_t gen, one = 1;
	int fd, none = -1;

	if (!m)
		return -EINVAL;
	e = entry_of_nonce(m, nonce, &gen);
	if (!e)
		return -ENOENT;
	if (e->efd < 0) {
		fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (fd < 0)
			return -errno;
		/* Two threads may make one at once: one keeps its own. */
		if (!__atomic_compare_exchange_n(&e->efd, &none, fd, false, __ATOMIC_ACQ_REL,
						 __ATOMIC_ACQUIRE))
			close(fd);
	}
	/* An outcome in before the fd was: signal it now (nothing did). */
	if (st_of(load_state(e)) == E_DONE && write(e->efd, &one, sizeof(one)) < 0)
		one = 0;
	return e->efd;
}

int sluice_mux_forget(struct sluice_mux *m, uint64_t nonce)
{
	struct entry *e;
	uint64_t gen, s;

	if (!m)
		return -EINVAL;
	e = entry_of_nonce(m, nonce, &gen);
	while (e && state_at(e, gen, &s)) {
		switch (st_of(s)) {
		case E_PENDING:
		case E_DONE:
			if (!state_move(e, &s, gen, E_FREE))
				continue;
			if (st_of(s) == E_PENDING)
				count(&m->cancelled);
			entry_poke(m, e);	/* a waiter returns -ENOENT */
			sluice__mux_entry_free(m, e);
			return 0;
		case E_QUEUED:
		case E_SENDING:
		case E_REGISTERING:
		case E_DELIVERING:
			sluice__mux_entry_wait_change(e, s);
			continue;
		default:
			return -ENOENT;
		}
	}
	return -ENOENT;
}

/* ------------------------------------------------------------- dispatch */

static int d_ready(void *arg)
{
	struct sluice_mux *m = arg;

	return !atomic_load_explicit(&m->rx_lead, memory_order_seq_cst) ||
	       atomic_load_explicit(&m->failed, memory_order_acquire) ? 0 : -EAGAIN;
}

static const struct sluice__wait_ops d_ops = {
	.ready = d_ready,
	.expired = sluice__mux_timed_out,
};

static int dispatch(struct sluice_mux *m, const struct sluice_mux_call_opts *o, bool block)
{
	struct lead_arg x = { m, NULL, 0, 0 };
	struct sluice__wait w;
	struct call k;
	int n, err;

	if (!m || !call_opts_ok(o))
		return -EINVAL;
	call_init(m, o, &k);
	sluice__wait_init(&w, &sluice__mux_wait_kind, k.timeout_ns, k.cancel, m->spin_ns);
	for (;;) {
		err = atomic_load_explicit(&m->failed, memory_order_acquire);
		if (err)
			return err;
		if (sluice__mux_rx_trylead(m))
			break;
		if (!block)
			return -EAGAIN;
		/* Another leads: wait to be handed the lead (rx_pass()). */
		atomic_fetch_add_explicit(&m->d_want, 1, memory_order_seq_cst);
		err = sluice__wait(&w, &k.c, &d_ops, m, &m->d_seq, &m->d_nwait);
		/* seq_cst: ordered before sluice__mux_leave()'s look at the lead. */
		atomic_fetch_sub_explicit(&m->d_want, 1, memory_order_seq_cst);
		if (err)
			return sluice__mux_leave(m, err);
		k.c.stuck = 0;
	}
	for (;;) {
		n = sluice__mux_rx_drain(m);
		if (n < 0)
			sluice__mux_link_fail(m, n);
		if (n || !block)
			break;
		if (!sluice__mux_link_wait(m, m->in, &k, sluice__mux_lead_also, &x, &err)) {
			n = err ? err : atomic_load_explicit(&m->failed, memory_order_acquire);
			break;
		}
		n = atomic_load_explicit(&m->failed, memory_order_acquire);
		if (n)
			break;
	}
	sluice__mux_rx_unlead(m);
	return n ? n : -EAGAIN;
}

int sluice_mux_dispatch(struct sluice_mux *m, const struct sluice_mux_call_opts *o)
{
	return dispatch(m, o, true);
}

int sluice_mux_try_dispatch(struct sluice_mux *m)
{
	return dispatch(m, NULL, false);
}

int sluice_mux_fd(struct sluice_mux *m)
{
	return m ? sluice_spsc_fd(m->in) : -EINVAL;
}

/* ------------------------------------------------------------- the multiplexer */

unsigned int sluice_mux_pending(const struct sluice_mux *m)
{
	unsigned int n = 0, st;
	uint32_t i;

	for (i = 0; m && i < m->n; i++) {
		st = st_of(load_state(&m->e[i]));
		n += st != E_FREE && st != E_WITHDRAWN && st != E_DONE;
	}
	return n;
}

void sluice_mux_stats(const struct sluice_mux *m, struct sluice_mux_stats *s)
{
	struct sluice_mux *w = (struct sluice_mux *)m;

	memset(s, 0, sizeof(*s));
	if (!m)
		return;
	s->sent = atomic_load_explicit(&w->sent, memory_order_relaxed);
	s->replied = atomic_load_explicit(&w->replied, memory_order_relaxed);
	s->timed_out = atomic_load_explicit(&w->timed_out, memory_order_relaxed);
	s->cancelled = atomic_load_explicit(&w->cancelled, memory_order_relaxed);
	s->dropped = atomic_load_explicit(&w->dropped, memory_order_relaxed);
	s->failed = atomic_load_explicit(&w->failed_n, memory_order_relaxed);
}

size_t sluice_mux_payload_max(const struct sluice_mux *m)
{
	return m ? m->req_max : 0;
}

void sluice_mux_shutdown(struct sluice_mux *m)
{
	if (m)
		sluice__mux_link_fail(m, -ESHUTDOWN);
}

static bool mux_opts_ok(const struct sluice_mux_opts *o)
{
	return SLUICE_OPTS_VALID(o, sluice_mux_opts, flags) &&
	       !SLUICE_OPT(o, sluice_mux_opts, flags, 0) &&
	       SLUICE_OPT(o, sluice_mux_opts, inflight, 0) <= SLUICE_MUX_INFLIGHT_MAX;
}

int sluice_mux_create(struct sluice_spsc *out, struct sluice_spsc *in,
		      const struct sluice_mux_opts *opts, struct sluice_mux **mp)
{
	uint64_t t, gen;
	struct sluice_mux *m;
	uint32_t i, n;

	if (!out || !in || !mp || out == in || out->role != SLUICE_SPSC_PRODUCER ||
	    in->role != SLUICE_SPSC_CONSUMER || out->slot_size < SLUICE_MUX_HDR ||
	    in->slot_size < SLUICE_MUX_HDR || !mux_opts_ok(opts))
		return -EINVAL;
	n = SLUICE_OPT(opts, sluice_mux_opts, inflight, 0);
	if (!n)
		n = SLUICE_MUX_INFLIGHT_DEFAULT;
	m = aligned_alloc(64, sizeof(*m));
	if (!m)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	m->n = n;
	m->nwant = (n + 63) / 64;
	m->e = aligned_alloc(64, sizeof(*m->e) * n);
	m->backlog = calloc(n, sizeof(*m->backlog));
	m->want = calloc(m->nwant, sizeof(*m->want));
	if (!m->e || !m->backlog || !m->want) {
		free(m->e);
		free(m->backlog);
		free(m->want);
		free(m);
		return -ENOMEM;
	}
	memset(m->e, 0, sizeof(*m->e) * n);
	m->out = out;
	m->in = in;
	m->req_max = out->slot_size - SLUICE_MUX_HDR;
	m->rep_max = in->slot_size - SLUICE_MUX_HDR;
	t = SLUICE_OPT(opts, sluice_mux_opts, timeout_ns, 0);
	m->timeout_ns = t ? t : SLUICE__WAIT_TIMEOUT_NS;
	m->cancel = SLUICE_OPT(opts, sluice_mux_opts, cancel, NULL);
	m->spin_ns = SLUICE_OPT(opts, sluice_mux_opts, spin_ns, 0);
	/* Generations from a random start: a late reply to an earlier
	 * multiplexer on these rings names no request of ours. */
	if (getrandom(&gen, sizeof(gen), GRND_NONBLOCK) != sizeof(gen))
		gen = sluice__now_ns(CLOCK_MONOTONIC) ^ ((uint64_t)getpid() << 32);
	gen &= SLUICE__MUX_GEN_MASK;
	for (i = n; i-- > 0;) {
		m->e[i].efd = -1;
		atomic_init(&m->e[i].state, st_make(gen, E_FREE));
		sluice__wait_init(&m->e[i].w, &sluice__mux_wait_kind, m->timeout_ns, m->cancel,
				  m->spin_ns);
		sluice__mux_free_push(m, &m->e[i]);
	}
	*mp = m;
	return 0;
}

void sluice_mux_close(struct sluice_mux *m)
{
	uint32_t i;

	if (!m)
		return;
	for (i = 0; i < m->n; i++) {
		if (m->e[i].efd >= 0)
			close(m->e[i].efd);
		free(m->e[i].own);
	}
	sluice_spsc_close(m->out);
	sluice_spsc_close(m->in);
	free(m->e);
	free(m->backlog);
	free(m->want);
	free(m);
}
