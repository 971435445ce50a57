/* SPDX-License-Identifier: MIT */
/*
 * A channel's layout in shared memory: an ABI between processes
 * (SLUICE_CHAN_ABI).  Private to the library and its tests; see lib/chan.c
 * for the protocol and Documentation/chan.md for the story.
 *
 *	header      configuration, then the hot words, each on its own line
 *	index       CHAN_INDEX_N words: where a slice starts in each chunk
 *	readers     readers_max entries of 64 bytes
 *	writers     writers_max entries of 64 bytes
 *	data        capacity bytes of slices
 *
 * Positions count bytes since the channel was made and never wrap; byte
 * position p lives at data[p & (capacity - 1)].  Slices start on 16 bytes.
 */
#ifndef SLUICE_CHAN_LAYOUT_H
#define SLUICE_CHAN_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#define SLUICE_CHAN_MAGIC	0x314e414843534c53ull	/* "SLSCHAN1" in memory */
#define SLUICE_CHAN_ABI		2u

/* The tail word: a position and two bits that stop reservations at once. */
#define CHAN_TAIL_DRAIN		(1ull << 63)
#define CHAN_TAIL_TERM		(1ull << 62)
#define CHAN_TAIL_POS		(CHAN_TAIL_TERM - 1)

/* ctl: the same two facts, on a line readers keep in their caches. */
#define CHAN_CTL_DRAIN		(1u << 0)
#define CHAN_CTL_TERM		(1u << 1)

/* Where slices start: one word per chunk of capacity / CHAN_INDEX_N bytes. */
#define CHAN_INDEX_N		64u

struct sluice_chan_hdr {
	/* Configuration, immutable once the channel has a name. */
	uint64_t magic;
	uint32_t abi;
	uint32_t policy;		/* enum sluice_chan_policy */
	uint64_t capacity;		/* power of two */
	uint32_t readers_max;
	uint32_t writers_max;
	uint64_t salt;			/* random: seals differ between channels */
	uint64_t index_off;		/* from the header's start */
	uint64_t readers_off;
	uint64_t writers_off;
	uint64_t data_off;
	uint64_t size;			/* the whole object */
	uint64_t csum;			/* FNV-1a of abi .. size */

	/* Writers reserve here (CAS): position | CHAN_TAIL_*. */
	_Alignas(64) _Atomic uint64_t tail;
	/* Every slice below is committed (or skipped); anyone advances it. */
	_Alignas(64) _Atomic uint64_t committed;
	/* Read on every call, written rarely. */
	_Alignas(64) _Atomic uint32_t ctl;	/* CHAN_CTL_* */
	_Atomic uint32_t pad0[3];		/* was a count of strong writers (ABI 1) */
	_Atomic uint64_t abandoned;		/* bytes skipped for dead writers */
	_Atomic uint64_t swept;			/* dead strong readers removed */
	/* Sleeping readers (new slices) and writers (room). */
	_Alignas(64) _Atomic uint32_t rseq;	/* futex: bumped on news */
	_Atomic uint32_t rwait;			/* readers asleep or about to */
	_Alignas(64) _Atomic uint32_t wseq;
	_Atomic uint32_t wwait;
};

#define CHAN_CSUM_FROM		__builtin_offsetof(struct sluice_chan_hdr, abi)
#define CHAN_CSUM_TO		__builtin_offsetof(struct sluice_chan_hdr, csum)

/* Pinned: processes of other builds share it; the magic first, where
 * sluice__obj_config() reads it for every kind. */
#define CHAN_AT(f, off)	(__builtin_offsetof(struct sluice_chan_hdr, f) == (off))
_Static_assert(CHAN_AT(magic, 0) && CHAN_AT(csum, 80), "chan configuration moved");
_Static_assert(CHAN_AT(tail, 128) && CHAN_AT(committed, 192) && CHAN_AT(ctl, 256) &&
	       CHAN_AT(rseq, 320) && CHAN_AT(wseq, 384), "chan hot lines moved");
#undef CHAN_AT
_Static_assert(sizeof(struct sluice_chan_hdr) == 448, "chan header changed");

/*
 * An owner word: pid << 8 | kind; 0 is free.  The kind is an enum
 * sluice_chan_kind, or, in the writer table, CHAN_KIND_CLOSING: a strong
 * writer on its way out, which no longer holds the channel open.  Who
 * holds it open is read off the table, never counted in a word of its
 * own: a process killed between two steps of a close leaves its place
 * behind, where a sweep finds it, while a count would be off for good.
 */
#define CHAN_KIND_CLOSING	3u
#define CHAN_OWNER(pid, kind)	((uint64_t)(uint32_t)(pid) << 8 | (uint64_t)(kind))
#define CHAN_OWNER_PID(o)	((int32_t)(uint32_t)((o) >> 8))
#define CHAN_OWNER_KIND(o)	((uint32_t)((o) & 0xff))

struct sluice_chan_rent {
	_Atomic uint64_t cursor;	/* strong: every byte below is read */
	_Atomic uint64_t owner;		/* CHAN_OWNER(), 0: free */
	_Atomic uint64_t start;		/* the owner's start time (pid reuse) */
	uint64_t pad[5];
};

/* A writer's place: who, and the slice it is reserving or filling. */
#define CHAN_W_IDLE		0u
#define CHAN_W_CLAIMING		1u	/* about to CAS tail from @from */
#define CHAN_W_FILLING		2u	/* owns [from, from + pad + len) */

struct sluice_chan_went {
	_Atomic uint64_t owner;		/* CHAN_OWNER(), 0: free */
	_Atomic uint64_t start;
	_Atomic uint64_t from;		/* where the reservation starts */
	_Atomic uint32_t len;		/* the slice's bytes, header included */
	_Atomic uint32_t state;		/* CHAN_W_* */
	uint64_t pad[4];
};

_Static_assert(sizeof(struct sluice_chan_rent) == 64, "reader entry changed");
_Static_assert(sizeof(struct sluice_chan_went) == 64, "writer entry changed");

/*
 * A slice: this header, then its frames.  The seal is stored last, with
 * release: chan_seal(salt, position, kind).  bytes counts what follows the
 * header, a multiple of 16.
 */
#define CHAN_SLICE_DATA		0u	/* frames */
#define CHAN_SLICE_PAD		1u	/* the rest of the ring before a wrap */
#define CHAN_SLICE_SKIP		2u	/* aborted, or its writer died */

struct sluice_chan_slice {
	_Atomic uint64_t seal;
	_Atomic uint32_t bytes;
	_Atomic uint32_t frames;
};

/* A frame: its length, then its bytes, padded to 8. */
struct sluice_chan_frame {
	uint32_t len;
	uint32_t zero;
};

#define CHAN_SLICE_HDR		16u
#define CHAN_FRAME_HDR		8u
/* Slices start, and their lengths end, on this grid. */
#define CHAN_ALIGN		16u
/* A frame's bytes are padded to this. */
#define CHAN_FRAME_ALIGN	8u
/* A seal's low bits: the slice's kind (CHAN_SLICE_*). */
#define CHAN_SEAL_KIND		3ull

/* A seal names one slice of one channel at one position. */
static inline uint64_t chan_seal(uint64_t salt, uint64_t pos, uint32_t kind)
{
	uint64_t z = pos ^ salt;

	/*
	 * splitmix64's finaliser, a bijection: two positions' seals differ,
	 * but for the two low bits the kind takes (2^-62 per pair).
	 */
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (z & ~CHAN_SEAL_KIND) | kind;
}

#endif /* SLUICE_CHAN_LAYOUT_H */
