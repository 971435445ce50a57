/* SPDX-License-Identifier: MIT */
/*
 * The bytes at the start of every region, as every process sees them.
 *
 * This is an ABI between processes, possibly built from different sluice
 * versions: fields have fixed sizes and offsets, nothing here is a pointer,
 * and a change to it bumps SLUICE_REGION_ABI.  The static asserts at the
 * bottom pin the layout.
 *
 * Who writes what:
 *  - the immutable part (magic .. name) is written once by the creator
 *    before it publishes @ready, and covered by @csum;
 *  - @ready is stored last, with release order, by the creator;
 *  - the directory (@heap_top, @nr_objs, @objs) is written by whoever
 *    allocates, holding an flock on the region's file (lib/region.c: no
 *    lock lives in this memory, where garbage could wedge or crash it);
 *  - nothing else in the header is ever written.
 * Every reader treats all of it as untrusted: loaded once, checked, used.
 */
#ifndef SLUICE_REGION_LAYOUT_H
#define SLUICE_REGION_LAYOUT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include <sluice/region.h>

#define SLUICE_REGION_MAGIC	0x31524543494c5553ull	/* "SLUICER1" little-endian */
#define SLUICE_REGION_ABI	1u
#define SLUICE_REGION_READY	0x52454459u		/* "YDER": not just any non-zero */

/* Directory entry states. */
#define SLUICE_OBJ_FREE		0u
#define SLUICE_OBJ_LIVE		1u

struct sluice_obj_entry {
	char name[SLUICE_OBJ_NAME_MAX + 1];	/* NUL-terminated */
	uint32_t type;
	uint32_t state;				/* SLUICE_OBJ_FREE or _LIVE */
	uint64_t off;
	uint64_t size;
};

struct sluice_region_hdr {
	/* Immutable after creation, covered by csum. */
	uint64_t magic;
	uint32_t abi;
	uint32_t hdr_size;		/* sizeof(struct sluice_region_hdr) */
	uint64_t size;			/* bytes mapped, equal to the file size */
	uint64_t page_size;
	uint32_t backing;		/* enum sluice_backing */
	uint32_t pages;			/* enum sluice_pages */
	int32_t node_requested;		/* -1: any */
	int32_t node;			/* verified placement, -1: mixed/unknown */
	int32_t huge_fallback_err;
	uint32_t mode;
	int32_t creator_pid;
	uint32_t creator_uid;
	uint64_t creator_start;		/* /proc/PID/stat starttime, in ticks */
	uint64_t created_ns;
	uint64_t heap_off;		/* first byte objects may use */
	char name[SLUICE_REGION_NAME_MAX + 1];
	uint64_t csum;			/* FNV-1a of magic .. name */

	/* Published last by the creator (release); read first (acquire). */
	_Alignas(64) _Atomic uint32_t ready;

	/* The object directory, written under the file's flock. */
	_Alignas(64) unsigned char reserved[64];
	_Atomic uint64_t heap_top;	/* next free byte, heap_off <= top <= size */
	_Atomic uint32_t nr_objs;	/* entries published, <= SLUICE_REGION_OBJS_MAX */
	uint32_t pad;
	_Alignas(64) struct sluice_obj_entry objs[SLUICE_REGION_OBJS_MAX];
};

/* The part of the header csum covers. */
#define SLUICE_REGION_CSUM_LEN	offsetof(struct sluice_region_hdr, csum)

static_assert(sizeof(struct sluice_obj_entry) == 64, "directory entry is one cache line");
static_assert(offsetof(struct sluice_region_hdr, name) == 88, "immutable header moved");
static_assert(offsetof(struct sluice_region_hdr, ready) == 192, "ready flag moved");
static_assert(offsetof(struct sluice_region_hdr, heap_top) == 320, "directory moved");
static_assert(sizeof(struct sluice_region_hdr) <= 4608, "header outgrew its space");

/* Objects start here: the header, rounded up to 4 KiB. */
#define SLUICE_REGION_HEAP_OFF	8192u

#endif /* SLUICE_REGION_LAYOUT_H */
