/* SPDX-License-Identifier: MIT */
/*
 * The caller's side of a multiplexed link, shared by lib/mux.c (entries,
 * sending, dispatching, waiting, calls) and lib/mux_nonce.c (what is done
 * with a nonce, dispatching threads, the multiplexer's life).  mux.c's top
 * comment tells the rules.
 */
#ifndef SLUICE_MUX_CALLER_H
#define SLUICE_MUX_CALLER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sluice/mux.h>

#include "internal.h"
#include "mux_internal.h"
#include "wait.h"

#define ST_BITS		8
#define ST_MASK		((1u << ST_BITS) - 1)

enum {
	E_FREE,
	E_QUEUED,
	E_WITHDRAWN,
	E_SENDING,
	E_PENDING,
	E_REGISTERING,
	E_DELIVERING,
	E_DONE,
};

struct entry {
	_Atomic uint64_t state;		/* gen << ST_BITS | E_* */
	_Atomic uint32_t seq;		/* futex: bumped when its waiter must look */
	_Atomic uint32_t nwait;		/* its waiter sleeps, or is about to */
	_Atomic uint32_t reg;		/* registrations: a waiter that sees it move was replaced */
	/*
	 * BUSY_HELD: a thread waits on it, in its wait state (w), with the
	 * low bits of the generation it waits for above the flags.  Freed
	 * meanwhile (by that thread's own collect, or a forget), it is
	 * marked BUSY_FREED and its waiter puts it back on the free stack as
	 * it leaves: the next use never shares w with a waiter of the last.
	 */
	_Atomic uint32_t busy;
	_Atomic uint32_t free_next;	/* free stack: the next entry + 1 */
	_Atomic uint32_t tx_next;	/* send stack: the next entry + 1 */
	uint32_t len;			/* QUEUED: the request, in its sender's memory */
	const void *req;
	void *rep;			/* where the reply goes; NULL: own, or in place */
	size_t cap;
	sluice_mux_fn *fn;		/* who hears of the outcome */
	void *arg;
	bool keep;			/* no room, no callback: the reply goes to own */
	int result;			/* DONE: the outcome */
	int efd;			/* sluice_mux_nonce_fd()'s, -1: none yet */
	unsigned char *own;		/* for kept replies, made on first need */
	struct sluice__wait w;		/* the waiting thread's */
} __attribute__((aligned(64)));

struct sluice_mux {
	struct sluice_spsc *out;
	struct sluice_spsc *in;
	struct entry *e;
	uint32_t n;
	uint32_t nwant;			/* words of want */
	size_t req_max;			/* payloads: a request's, a reply's */
	size_t rep_max;
	uint64_t timeout_ns;
	struct sluice_cancel *cancel;
	uint32_t spin_ns;
	_Atomic int failed;		/* the link's error, 0 while it works */

	/* Free entries: a stack, its head tagged against ABA. */
	_Alignas(64) _Atomic uint64_t free_head;
	_Atomic uint32_t f_seq;		/* futex: threads waiting for an entry */
	_Atomic uint32_t f_nwait;

	/* Sending. */
	_Alignas(64) _Atomic uint32_t tx_head;	/* pushed entries + 1, newest first */
	_Atomic uint32_t tx_lock;
	_Atomic uint32_t tx_kick;	/* a backlog entry was withdrawn: look again */
	uint32_t *backlog;		/* under tx_lock: queued, oldest first */
	uint32_t nbacklog;

	/* Dispatching. */
	_Alignas(64) _Atomic uint32_t rx_lead;
	_Atomic uint32_t d_want;	/* threads in sluice_mux_dispatch() waiting to lead */
	_Atomic uint32_t d_seq;
	_Atomic uint32_t d_nwait;
	_Atomic uint64_t *want;		/* entries whose waiters would lead */

	/* Counters: each written by one thread at a time but the rare ones. */
	_Alignas(64) _Atomic uint64_t sent;
	_Atomic uint64_t replied;
	_Atomic uint64_t dropped;
	_Atomic uint64_t timed_out;
	_Atomic uint64_t cancelled;
	_Atomic uint64_t failed_n;
};

/* One call of a caller: all its waits run to one deadline. */
struct call {
	struct sluice__wait_call c;
	uint64_t timeout_ns;
	struct sluice_cancel *cancel;
};

static inline uint64_t st_make(uint64_t gen, unsigned int st)
{
	return gen << ST_BITS | st;
}

static inline unsigned int st_of(uint64_t s)
{
	return (unsigned int)(s & ST_MASK);
}

static inline uint64_t gen_of(uint64_t s)
{
	return s >> ST_BITS;
}

static inline uint32_t idx_of(const struct sluice_mux *m, const struct entry *e)
{
	return (uint32_t)(e - m->e);
}

static inline uint64_t nonce_of(const struct sluice_mux *m, const struct entry *e,
				uint64_t gen)
{
	return gen << SLUICE__MUX_IDX_BITS | idx_of(m, e);
}

static inline uint64_t load_state(const struct entry *e)
{
	return atomic_load_explicit(&((struct entry *)e)->state, memory_order_acquire);
}

/* Take a flag that is 0 when free: a look first, as a CAS takes the line. */
static inline bool flag_take(_Atomic uint32_t *f)
{
	uint32_t free_ = 0;

	return !atomic_load_explicit(f, memory_order_relaxed) &&
	       atomic_compare_exchange_strong_explicit(f, &free_, 1, memory_order_acquire,
						       memory_order_relaxed);
}

#define BUSY_HELD	1u
#define BUSY_FREED	2u
#define BUSY_FLAGS	3u

/* What a waiter for generation @gen writes in busy. */
static inline uint32_t busy_mine(uint64_t gen)
{
	return (uint32_t)(gen << 2) | BUSY_HELD;
}

/* @e's state in *@s, if its generation is still @gen. */
static inline bool state_at(const struct entry *e, uint64_t gen, uint64_t *s)
{
	*s = load_state(e);
	return gen_of(*s) == gen;
}

/* From *@s to @st at @gen, if @e is still in *@s (relaxed: see callers). */
static inline bool state_move(struct entry *e, uint64_t *s, uint64_t gen, unsigned int st)
{
	return atomic_compare_exchange_strong_explicit(&e->state, s, st_make(gen, st),
						       memory_order_relaxed, memory_order_relaxed);
}

/*
 * Is @gen's use of @e still on: not freed, nor withdrawn by its sender?
 * The state it judged in *@s.
 */
static inline bool use_on(const struct entry *e, uint64_t gen, uint64_t *s)
{
	return state_at(e, gen, s) && st_of(*s) != E_FREE && st_of(*s) != E_WITHDRAWN;
}

static inline void count(_Atomic uint64_t *c)
{
	atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static inline void call_init(const struct sluice_mux *m, const struct sluice_mux_call_opts *o,
		      struct call *k)
{
	uint64_t t = SLUICE_OPT(o, sluice_mux_call_opts, timeout_ns, 0);
	struct sluice_cancel *c = SLUICE_OPT(o, sluice_mux_call_opts, cancel, NULL);

	memset(&k->c, 0, sizeof(k->c));
	k->timeout_ns = t ? t : m->timeout_ns;
	k->cancel = c ? c : m->cancel;
}

static inline bool call_opts_ok(const struct sluice_mux_call_opts *o)
{
	return SLUICE_OPTS_VALID(o, sluice_mux_call_opts, cancel);
}

/* What ends a leader's wait on the ring besides a reply. */
struct lead_arg {
	struct sluice_mux *m;
	struct entry *e;		/* NULL: a dispatching thread */
	uint64_t s;
	uint32_t reg;
};


/* mux.c, for mux_nonce.c: each as its comment there says. */
void sluice__mux_entry_wake(struct entry *e);
void sluice__mux_entry_wait_change(struct entry *e, uint64_t s);
void sluice__mux_entry_free(struct sluice_mux *m, struct entry *e);
void sluice__mux_free_push(struct sluice_mux *m, struct entry *e);
int sluice__mux_entry_reg(struct sluice_mux *m, struct entry *e,
			  const struct sluice_mux_reg *reg);
bool sluice__mux_reg_ok(const struct sluice_mux_reg *reg);
int sluice__mux_timed_out(void *arg);
void sluice__mux_complete(struct sluice_mux *m, struct entry *e, uint64_t gen, int result,
			  const void *at);
void sluice__mux_link_fail(struct sluice_mux *m, int err);
void sluice__mux_entry_pending(struct sluice_mux *m, struct entry *e, uint64_t gen);
bool sluice__mux_rx_trylead(struct sluice_mux *m);
void sluice__mux_rx_unlead(struct sluice_mux *m);
int sluice__mux_rx_drain(struct sluice_mux *m);
int sluice__mux_lead_also(void *arg);
bool sluice__mux_link_wait(struct sluice_mux *m, struct sluice_spsc *q, struct call *k,
			   int (*also)(void *), void *arg, int *err);
int sluice__mux_collect(struct sluice_mux *m, struct entry *e, uint64_t gen, void *rep,
			size_t cap);
int sluice__mux_give_up(struct sluice_mux *m, struct entry *e, uint64_t gen, int why,
			void *rep, size_t cap);
int sluice__mux_leave(struct sluice_mux *m, int ret);
int sluice__mux_wait_entry(struct sluice_mux *m, struct entry *e, uint64_t gen,
			   struct call *k, bool sent_only, void *rep, size_t cap);

#endif /* SLUICE_MUX_CALLER_H */
