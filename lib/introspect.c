// SPDX-License-Identifier: MIT
/*
 * Introspection (introspect.h): objects described from shared memory,
 * each layout read through the checks of the code that owns it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include <sluice/chan.h>
#include <sluice/spsc.h>

#include "chan_layout.h"
#include "internal.h"
#include "introspect.h"
#include "spsc_internal.h"

/* Every kind's configuration starts with its magic, then its ABI number. */
struct obj_cfg_head {
	uint64_t magic;
	uint32_t abi;
};

static uint64_t *csum_of(const struct sluice__obj_kind *k, const void *cfg)
{
	return (uint64_t *)((char *)cfg + k->cfg_len - sizeof(uint64_t));
}

uint64_t sluice__obj_csum(const struct sluice__obj_kind *k, const void *cfg)
{
	const size_t from = __builtin_offsetof(struct obj_cfg_head, abi);

	return sluice__fnv1a((const unsigned char *)cfg + from,
			     k->cfg_len - sizeof(uint64_t) - from);
}

int sluice__obj_config(const struct sluice_region *r, const struct sluice_obj_info *oi,
		       const struct sluice__obj_kind *k, void *cfg, void **obj)
{
	const struct obj_cfg_head *c = cfg;
	uint64_t magic;
	void *p;

	if (oi->type != k->type || oi->size < k->min)
		return -EPROTO;
	p = sluice_region_at(r, oi->offset, oi->size);
	/* Objects start on a line: their hot words are laid out from there. */
	if (!p || oi->offset % 64)
		return -EBADMSG;
	/* Pairs with the release store of the magic that ends a create. */
	magic = atomic_load_explicit((_Atomic uint64_t *)p, memory_order_acquire);
	if (!magic)
		return -EAGAIN;		/* its creator is still at it */
	if (magic != k->magic)
		return -EPROTO;
	/* Read once, check the copy, use the copy. */
	memcpy(cfg, p, k->cfg_len);
	*obj = p;
	if (c->abi != k->abi)
		return -EPROTO;		/* another layout: its checksum may differ too */
	if (*csum_of(k, cfg) != sluice__obj_csum(k, cfg))
		return -EBADMSG;
	return k->check(cfg, oi->size);
}

void sluice__obj_publish(const struct sluice__obj_kind *k, void *obj, const void *cfg)
{
	const size_t magic = sizeof(uint64_t);

	memcpy((char *)obj + magic, (const char *)cfg + magic, k->cfg_len - magic);
	/* Pairs with the acquire load of the magic in sluice__obj_config(). */
	atomic_store_explicit((_Atomic uint64_t *)obj, k->magic, memory_order_release);
}

int sluice__obj_create(struct sluice_region *r, const char *name,
		       const struct sluice__obj_kind *k, void *cfg, uint64_t size,
		       void **obj)
{
	uint64_t off;
	int err;

	((struct obj_cfg_head *)cfg)->abi = k->abi;
	*csum_of(k, cfg) = sluice__obj_csum(k, cfg);
	/* On a line: its hot words are laid out from there. */
	err = sluice_region_alloc(r, name, k->type, size, 64, &off);
	if (err)
		return err;
	*obj = sluice_region_at(r, off, size);
	sluice__obj_publish(k, *obj, cfg);
	return 0;
}

int sluice__obj_find(const struct sluice_region *r, const char *name,
		     const struct sluice__obj_kind *k, void *cfg, void **obj)
{
	struct sluice_obj_info oi;
	int err;

	err = sluice_region_find(r, name, &oi);
	return err ? err : sluice__obj_config(r, &oi, k, cfg, obj);
}

/* ---------------------------------------------------------------- SPSC */

int sluice__spsc_describe(const struct sluice_region *r, const struct sluice_obj_info *oi,
			  struct sluice__spsc_desc *d)
{
	struct sluice_spsc_ring *ring, cfg;
	int err;

	err = sluice__obj_config(r, oi, &sluice__spsc_obj, &cfg, (void **)&ring);
	if (err)
		return err;
	/* A snapshot: each side moves its own, and nothing orders the two. */
	*d = (struct sluice__spsc_desc){
		.head = atomic_load_explicit(&ring->head, memory_order_relaxed),
		.tail = atomic_load_explicit(&ring->tail, memory_order_relaxed),
		.prod_ctl = atomic_load_explicit(&ring->prod.ctl, memory_order_relaxed),
		.cons_ctl = atomic_load_explicit(&ring->cons.ctl, memory_order_relaxed),
		.prod_wakes = atomic_load_explicit(&ring->prod.seq, memory_order_relaxed),
		.cons_wakes = atomic_load_explicit(&ring->cons.seq, memory_order_relaxed),
		.slot_count = cfg.slot_count,
		.slot_size = cfg.slot_size,
		.stride = cfg.stride,
		.size = cfg.size,
	};
	return 0;
}

uint64_t sluice__spsc_wakes(struct sluice_spsc *pq)
{
	struct sluice_spsc_ring *ring = sluice__spsc_of(pq)->ring;

	return (uint64_t)atomic_load_explicit(&ring->prod.seq, memory_order_relaxed) +
	       atomic_load_explicit(&ring->cons.seq, memory_order_relaxed);
}

int sluice__spsc_map(const struct sluice_region *r, const char *name,
		     struct sluice__spsc_map *m)
{
	struct sluice_spsc_ring *ring, cfg;
	int err = sluice__obj_find(r, name, &sluice__spsc_obj, &cfg, (void **)&ring);

	if (err)
		return err;
	*m = (struct sluice__spsc_map){
		.ring = ring,
		.tags = (_Atomic uint64_t *)((unsigned char *)ring + cfg.tags_off),
		.slots = (unsigned char *)ring + cfg.slots_off,
		.count = cfg.slot_count,
		.stride = cfg.stride,
	};
	return 0;
}

static int spsc_peers(const struct sluice_region *r, const struct sluice_obj_info *oi,
		      sluice__peer_fn fn, void *ctx)
{
	struct sluice__peer p = { .object = oi->name, .type = SLUICE_OBJ_SPSC };
	struct sluice_spsc_ring *ring, cfg;
	struct sluice_spsc_side *side;
	uint32_t ctl;
	int i, err;

	err = sluice__obj_config(r, oi, &sluice__spsc_obj, &cfg, (void **)&ring);
	if (err)
		return err;
	for (i = 0; i < 2; i++) {
		side = i ? &ring->cons : &ring->prod;
		/* Pairs with side_claim()'s release store: pid and start are the claimer's. */
		ctl = atomic_load_explicit(&side->ctl, memory_order_acquire);
		if (!(ctl & SLUICE_SPSC_ATTACHED) || (ctl & SLUICE_SPSC_CLOSED))
			continue;
		p.pid = atomic_load_explicit(&side->pid, memory_order_relaxed);
		p.start = atomic_load_explicit(&side->start, memory_order_relaxed);
		if (p.pid <= 0)
			continue;
		p.role = i ? SLUICE__PEER_CONSUMER : SLUICE__PEER_PRODUCER;
		p.marked_dead = ctl & SLUICE_SPSC_DEAD;
		err = fn(&p, ctx);
		if (err)
			return err;
	}
	return 0;
}

/* ---------------------------------------------------------------- channels */

int sluice__chan_describe(const struct sluice_region *r, const struct sluice_obj_info *oi,
			  struct sluice__chan_desc *d)
{
	struct sluice_chan_hdr *h, cfg;
	uint64_t committed, tail;
	uint32_t ctl;
	int err;

	err = sluice__obj_config(r, oi, &sluice__chan_obj, &cfg, (void **)&h);
	if (err)
		return err;
	/* committed before tail: both only grow, so honest ones compare right. */
	committed = atomic_load_explicit(&h->committed, memory_order_acquire);
	tail = atomic_load_explicit(&h->tail, memory_order_acquire);
	ctl = atomic_load_explicit(&h->ctl, memory_order_acquire);
	*d = (struct sluice__chan_desc){
		.capacity = cfg.capacity,
		.policy = cfg.policy,
		.readers_max = cfg.readers_max,
		.writers_max = cfg.writers_max,
		.size = cfg.size,
		.data_off = cfg.data_off,
		.tail = tail & CHAN_TAIL_POS,
		.committed = committed,
		.draining = (ctl & CHAN_CTL_DRAIN) || (tail & CHAN_TAIL_DRAIN),
		.terminated = (ctl & CHAN_CTL_TERM) || (tail & CHAN_TAIL_TERM),
		.abandoned = atomic_load_explicit(&h->abandoned, memory_order_relaxed),
		.swept = atomic_load_explicit(&h->swept, memory_order_relaxed),
	};
	return 0;
}

int sluice__chan_map(const struct sluice_region *r, const char *name,
		     struct sluice__chan_map *m)
{
	struct sluice_chan_hdr *h, cfg;
	int err;

	err = sluice__obj_find(r, name, &sluice__chan_obj, &cfg, (void **)&h);
	if (!err)
		sluice__chan_map_of(h, &cfg, m);
	return err;
}

/* One place of a channel's table: taken, by a pid, of a known kind. */
static int chan_place(struct sluice__peer *p, _Atomic uint64_t *owner_p,
		      _Atomic uint64_t *start_p, sluice__peer_fn fn, void *ctx)
{
	/* Pairs with the stores that take a place: its start is behind it. */
	uint64_t owner = atomic_load_explicit(owner_p, memory_order_acquire);

	if (!owner)
		return 0;
	p->pid = CHAN_OWNER_PID(owner);
	p->kind = CHAN_OWNER_KIND(owner);
	/* A closing strong writer is still a strong writer's process. */
	if (p->kind == CHAN_KIND_CLOSING)
		p->kind = SLUICE_CHAN_STRONG;
	/* Kind 0: a reader joining; it shows with its kind in a moment. */
	if (p->pid <= 0 || (p->kind != SLUICE_CHAN_STRONG && p->kind != SLUICE_CHAN_WEAK))
		return 0;
	/* 0 while a writer is taking its place: the pid alone, then. */
	p->start = atomic_load_explicit(start_p, memory_order_relaxed);
	return fn(p, ctx);
}

static int chan_peers(const struct sluice_region *r, const struct sluice_obj_info *oi,
		      sluice__peer_fn fn, void *ctx)
{
	struct sluice__peer p = { .object = oi->name, .type = SLUICE_OBJ_CHAN };
	struct sluice_chan_hdr *h, cfg;
	struct sluice_chan_went *wr;
	struct sluice_chan_rent *rd;
	uint32_t i;
	int err;

	err = sluice__obj_config(r, oi, &sluice__chan_obj, &cfg, (void **)&h);
	if (err)
		return err;
	wr = (struct sluice_chan_went *)((unsigned char *)h + cfg.writers_off);
	rd = (struct sluice_chan_rent *)((unsigned char *)h + cfg.readers_off);
	p.role = SLUICE__PEER_WRITER;
	for (i = 0; i < cfg.writers_max; i++) {
		err = chan_place(&p, &wr[i].owner, &wr[i].start, fn, ctx);
		if (err)
			return err;
	}
	p.role = SLUICE__PEER_READER;
	for (i = 0; i < cfg.readers_max; i++) {
		err = chan_place(&p, &rd[i].owner, &rd[i].start, fn, ctx);
		if (err)
			return err;
	}
	return 0;
}

/* ---------------------------------------------------------------- any object */

bool sluice__obj_has_peers(uint32_t type)
{
	return type == SLUICE_OBJ_SPSC || type == SLUICE_OBJ_CHAN;
}

int sluice__obj_peers(const struct sluice_region *r, const struct sluice_obj_info *oi,
		      sluice__peer_fn fn, void *ctx)
{
	switch (oi->type) {
	case SLUICE_OBJ_SPSC:
		return spsc_peers(r, oi, fn, ctx);
	case SLUICE_OBJ_CHAN:
		return chan_peers(r, oi, fn, ctx);
	}
	return 0;
}
