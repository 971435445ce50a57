/* SPDX-License-Identifier: MIT */
/*
 * What the frames and packets of the tests carry, so that the side that
 * reads one can tell it is whole, in its place, and nobody else's.
 *
 * A numbered frame (h_fill(), h_intact()) carries its number and words
 * that follow from it: a frame lost, repeated, reordered, torn or cut
 * short fails its check.  A tagged frame (h_tag_make(), h_tag_check())
 * also names its writer and carries a checksum of its bytes, and its
 * length follows from writer and number: many writers can share one
 * stream, and a reader still tells each writer's frames apart.
 */
#ifndef SLUICE_TESTS_FRAMES_H
#define SLUICE_TESTS_FRAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* splitmix64's finaliser: a well-mixed word from any word. */
uint64_t h_mix(uint64_t x);
/* xorshift64: the next number of the sequence in *@s (never 0). */
uint64_t h_rng_next(uint64_t *s);

/*
 * The bytes frame @seq carries: its number first, then words that differ
 * from every other frame's and from each other (cheap: the streaming tests
 * make tens of millions of these).
 */
void h_fill(unsigned char *b, uint64_t seq, size_t len);
bool h_intact(const unsigned char *b, uint64_t seq, size_t len);

/* A checksum both sides of a stream compute, over lengths and every byte. */
uint64_t h_csum_add(uint64_t sum, const unsigned char *b, size_t len);

/* A tagged frame's head: its writer, its number, a checksum of it all. */
struct h_tag {
	uint32_t wid;
	uint32_t seq;
	uint64_t sum;
};

#define H_TAG_SZ	sizeof(struct h_tag)

uint64_t h_tag_key(uint32_t wid, uint32_t seq);
uint64_t h_tag_sum(uint32_t wid, uint32_t seq, const unsigned char *body, size_t len);
/* Length of frame @seq of writer @wid: from H_TAG_SZ to @max. */
size_t h_tag_len(uint32_t wid, uint32_t seq, size_t max);
void h_tag_make(unsigned char *b, uint32_t wid, uint32_t seq, size_t len);
/*
 * 0 if @b is a whole frame of the length its writer and number say (of
 * h_tag_len() up to @max, or exactly @fixed bytes if @fixed), its head in
 * *@t; else 1, having said why on stderr.  Which writers may be there is
 * the caller's to check.
 */
int h_tag_check(const unsigned char *b, size_t len, size_t max, size_t fixed,
		struct h_tag *t);

#endif /* SLUICE_TESTS_FRAMES_H */
