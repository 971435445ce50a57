/* SPDX-License-Identifier: MIT */
/*
 * What both ends of a multiplexed link share: the header every message
 * carries, and how it is checked.  Documentation/mux.md tells the rest.
 */
#ifndef SLUICE_MUX_INTERNAL_H
#define SLUICE_MUX_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <sluice/mux.h>

/*
 * At the start of each ring slot.  A request's status is 0; a reply's is
 * 0 with a payload after the header, or a negative errno without one.
 * flags: none yet, so 0; a peer that sets one speaks a later protocol.
 */
struct sluice__mux_hdr {
	uint64_t nonce;
	int32_t status;
	uint32_t flags;
};

_Static_assert(sizeof(struct sluice__mux_hdr) == SLUICE_MUX_HDR, "header size");

/* The largest errno a reply may carry (include/uapi/asm-generic/errno-base.h's MAX_ERRNO). */
#define SLUICE__MUX_ERRNO_MAX	4095

/*
 * A nonce: the entry in its low bits, the generation of the entry's use
 * above them.  A generation is never 0, so neither is a nonce.
 */
#define SLUICE__MUX_IDX_BITS	16
#define SLUICE__MUX_IDX_MASK	((1u << SLUICE__MUX_IDX_BITS) - 1)
#define SLUICE__MUX_GEN_BITS	(64 - SLUICE__MUX_IDX_BITS)
#define SLUICE__MUX_GEN_MASK	((1ull << SLUICE__MUX_GEN_BITS) - 1)

_Static_assert(SLUICE_MUX_INFLIGHT_MAX == 1u << SLUICE__MUX_IDX_BITS, "nonce index bits");

/*
 * Read the header of a message of @len bytes at @p, which the peer wrote:
 * copied once, then checked.  Returns false if it cannot be: too short, a
 * flag, a status that is not 0 or an errno, or an error with a payload.
 */
static inline bool sluice__mux_hdr_read(const void *p, size_t len, bool reply,
					struct sluice__mux_hdr *h)
{
	if (len < sizeof(*h))
		return false;
	memcpy(h, p, sizeof(*h));
	if (h->flags || !h->nonce)
		return false;
	if (!reply)
		return !h->status;
	if (h->status > 0 || h->status < -SLUICE__MUX_ERRNO_MAX)
		return false;
	return !h->status || len == sizeof(*h);
}

/* The wait engine's parameters for threads of a multiplexer (mux.c says why). */
extern const struct sluice__wait_kind sluice__mux_wait_kind;

#endif /* SLUICE_MUX_INTERNAL_H */
