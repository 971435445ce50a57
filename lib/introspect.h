/* SPDX-License-Identifier: MIT */
/*
 * Introspection: what the objects of a region hold, read out of shared
 * memory by the code that owns each layout and checked as an attach
 * checks it.  For sluicectl and the tests, which link libsluice.a: no
 * file outside lib/ computes a shared layout, so a layout change that
 * forgets a tool does not compile, or fails its tests.
 *
 * Every call reads memory a peer may be writing: what it returns is a
 * snapshot of checked values, and an object that cannot be read says why
 * (-EAGAIN: not made yet; -EPROTO: not what its type says, or another
 * ABI; -EBADMSG: damaged).
 */
#ifndef SLUICE_INTROSPECT_H
#define SLUICE_INTROSPECT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sluice/region.h>

struct sluice_chan_hdr;
struct sluice_chan_rent;
struct sluice_chan_went;
struct sluice_spsc;
struct sluice_spsc_ring;
struct sluice_region_hdr;

/* ---------------------------------------------------------------- peers */

enum sluice__peer_role {
	SLUICE__PEER_PRODUCER,
	SLUICE__PEER_CONSUMER,
	SLUICE__PEER_WRITER,
	SLUICE__PEER_READER,
};

/* A process attached to an object, as the object records it. */
struct sluice__peer {
	const char *object;		/* the object's name */
	uint32_t type;			/* SLUICE_OBJ_SPSC or SLUICE_OBJ_CHAN */
	enum sluice__peer_role role;
	uint32_t kind;			/* channel places: SLUICE_CHAN_STRONG or _WEAK */
	pid_t pid;			/* in the attacher's pid namespace */
	uint64_t start;			/* its start time; 0: not known, the pid alone */
	bool marked_dead;		/* SPSC: a survivor saw it die */
};

/* Called for each peer; non-zero stops the walk and is returned. */
typedef int (*sluice__peer_fn)(const struct sluice__peer *p, void *ctx);

/* Does an object of @type have processes attached? */
bool sluice__obj_has_peers(uint32_t type);

/*
 * Call @fn for each process attached to object @oi of @r.  Returns 0,
 * what @fn returned, or why the object could not be read.
 */
int sluice__obj_peers(const struct sluice_region *r, const struct sluice_obj_info *oi,
		      sluice__peer_fn fn, void *ctx);

/* ---------------------------------------------------------------- descriptions */

struct sluice__spsc_desc {
	uint32_t slot_count;
	uint32_t slot_size;
	uint32_t stride;		/* bytes from slot to slot */
	uint64_t size;			/* the whole object */
	uint64_t head;			/* the consumer's index */
	uint64_t tail;			/* the producer's last announcement: a lower bound */
	uint32_t prod_ctl;		/* SLUICE_SPSC_* of each side */
	uint32_t cons_ctl;
	uint32_t prod_wakes;		/* each side's futex word: bumped per wake */
	uint32_t cons_wakes;
};

int sluice__spsc_describe(const struct sluice_region *r, const struct sluice_obj_info *oi,
			  struct sluice__spsc_desc *d);

/*
 * How often the sides of the ring of handle @q have been woken: the sum
 * of their futex words, which each wake bumps (a benchmark's note).
 */
uint64_t sluice__spsc_wakes(struct sluice_spsc *q);

struct sluice__chan_desc {
	uint64_t capacity;
	uint32_t policy;		/* enum sluice_chan_policy */
	uint32_t readers_max;
	uint32_t writers_max;
	uint64_t size;			/* the whole object */
	uint64_t data_off;		/* where the ring of bytes starts in it */
	uint64_t tail;			/* position */
	uint64_t committed;
	bool draining;
	bool terminated;
	uint64_t abandoned;
	uint64_t swept;
};

int sluice__chan_describe(const struct sluice_region *r, const struct sluice_obj_info *oi,
			  struct sluice__chan_desc *d);

/* ---------------------------------------------------------------- white box */

/*
 * Where the parts of a checked object lie, for tests that write into it
 * the way a broken or hostile peer would.  -ENOENT if @name is not there.
 */
struct sluice__chan_map {
	struct sluice_chan_hdr *h;
	_Atomic uint64_t *index;
	struct sluice_chan_rent *readers;
	struct sluice_chan_went *writers;
	unsigned char *data;
	uint64_t cap;
};

int sluice__chan_map(const struct sluice_region *r, const char *name,
		     struct sluice__chan_map *m);
/* The same, from a checked configuration @cfg of the channel at @h. */
void sluice__chan_map_of(struct sluice_chan_hdr *h, const struct sluice_chan_hdr *cfg,
			 struct sluice__chan_map *m);

struct sluice__spsc_map {
	struct sluice_spsc_ring *ring;
	_Atomic uint64_t *tags;
	unsigned char *slots;
	uint32_t count;
	uint32_t stride;
};

int sluice__spsc_map(const struct sluice_region *r, const char *name,
		     struct sluice__spsc_map *m);

/* The checksum each configuration carries, as its owner computes it. */
uint64_t sluice__chan_csum(const struct sluice_chan_hdr *cfg);
uint64_t sluice__spsc_csum(const struct sluice_spsc_ring *cfg);
uint64_t sluice__region_csum(const struct sluice_region_hdr *h);

/* ---------------------------------------------------------------- owners */

/*
 * How to read an object of one type; its owner's file defines it.  Every
 * kind's configuration is laid out alike: its magic, then its ABI number,
 * its own fields, and last an FNV-1a checksum of all between magic and it.
 */
struct sluice__obj_kind {
	uint32_t type;			/* SLUICE_OBJ_* */
	uint32_t abi;			/* the layout this library reads and writes */
	uint64_t min;			/* its header's bytes */
	uint64_t magic;			/* the first word, stored last at create */
	size_t cfg_len;			/* its configuration's bytes, checksum and all */
	/* Beyond the ABI and the checksum: 0, or -EBADMSG. */
	int (*check)(const void *cfg, uint64_t size);
};

/* A kind whose header @hdr carries its configuration up to and with .csum. */
#define SLUICE__OBJ_KIND(type_, hdr, abi_, magic_, check_) {			\
	.type = (type_),							\
	.abi = (abi_),								\
	.min = sizeof(hdr),							\
	.magic = (magic_),							\
	.cfg_len = __builtin_offsetof(hdr, csum) + sizeof(uint64_t),		\
	.check = (check_),							\
}

/* The checksum a configuration @cfg of kind @k carries. */
uint64_t sluice__obj_csum(const struct sluice__obj_kind *k, const void *cfg);

extern const struct sluice__obj_kind sluice__chan_obj;
extern const struct sluice__obj_kind sluice__spsc_obj;

/*
 * The object @oi of @r as an object of kind @k, as attach reads it: its
 * memory in @obj, its configuration read once into @cfg and checked.
 * 0, -EAGAIN (its creator is not done), -EPROTO (not of that kind, or
 * another ABI) or -EBADMSG.
 */
int sluice__obj_config(const struct sluice_region *r, const struct sluice_obj_info *oi,
		       const struct sluice__obj_kind *k, void *cfg, void **obj);

/* The same for the object named @name: -ENOENT if there is none. */
int sluice__obj_find(const struct sluice_region *r, const char *name,
		     const struct sluice__obj_kind *k, void *cfg, void **obj);

/*
 * Publish a new object's configuration, made privately in @cfg: copied
 * out after the magic, then the magic stored last, so that an attacher
 * that sees the magic sees the configuration.  The directory names the
 * object already; until then an attach says -EAGAIN.
 */
void sluice__obj_publish(const struct sluice__obj_kind *k, void *obj, const void *cfg);

/*
 * Make object @name of kind @k, @size bytes, in @r, and publish its
 * configuration @cfg, which this seals with its ABI and checksum: its
 * memory in @obj.  0, or what sluice_region_alloc() says.
 */
int sluice__obj_create(struct sluice_region *r, const char *name,
		       const struct sluice__obj_kind *k, void *cfg, uint64_t size,
		       void **obj);

#endif /* SLUICE_INTROSPECT_H */
