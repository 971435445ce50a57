// SPDX-License-Identifier: MIT
/* What the frames of the tests carry; see frames.h. */
#include <stdio.h>
#include <string.h>

#include "frames.h"

uint64_t h_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

uint64_t h_rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

void h_fill(unsigned char *b, uint64_t seq, size_t len)
{
	uint64_t w, k = h_mix(seq) | 1;
	size_t i;

	for (i = 0; i < len; i += 8) {
		w = i ? k * (i + 1) : seq;
		memcpy(b + i, &w, len - i < 8 ? len - i : 8);
	}
}

bool h_intact(const unsigned char *b, uint64_t seq, size_t len)
{
	uint64_t w, k = h_mix(seq) | 1;
	size_t i;

	for (i = 0; i < len; i += 8) {
		w = i ? k * (i + 1) : seq;
		if (memcmp(b + i, &w, len - i < 8 ? len - i : 8))
			return false;
	}
	return true;
}

/* FNV-1a, a word at a time. */
uint64_t h_csum_add(uint64_t sum, const unsigned char *b, size_t len)
{
	uint64_t w;
	size_t i;

	sum = (sum ^ len) * 0x100000001b3ull;
	for (i = 0; i < len; i += 8) {
		w = 0;
		memcpy(&w, b + i, len - i < 8 ? len - i : 8);
		sum = (sum ^ w) * 0x100000001b3ull;
	}
	return sum;
}

uint64_t h_tag_key(uint32_t wid, uint32_t seq)
{
	return (uint64_t)wid << 32 | seq;
}

uint64_t h_tag_sum(uint32_t wid, uint32_t seq, const unsigned char *body, size_t len)
{
	return h_csum_add(0xcbf29ce484222325ull ^ h_tag_key(wid, seq), body, len);
}

size_t h_tag_len(uint32_t wid, uint32_t seq, size_t max)
{
	return max == H_TAG_SZ ? H_TAG_SZ :
	       H_TAG_SZ + h_mix(h_tag_key(wid, seq) ^ 0x5eed) % (max - H_TAG_SZ + 1);
}

void h_tag_make(unsigned char *b, uint32_t wid, uint32_t seq, size_t len)
{
	struct h_tag t = { .wid = wid, .seq = seq };

	h_fill(b + H_TAG_SZ, h_tag_key(wid, seq), len - H_TAG_SZ);
	t.sum = h_tag_sum(wid, seq, b + H_TAG_SZ, len - H_TAG_SZ);
	memcpy(b, &t, H_TAG_SZ);
}

int h_tag_check(const unsigned char *b, size_t len, size_t max, size_t fixed,
		struct h_tag *t)
{
	if (len < H_TAG_SZ) {
		fprintf(stderr, "a frame of %zu bytes\n", len);
		return 1;
	}
	memcpy(t, b, H_TAG_SZ);
	if (len != (fixed ? fixed : h_tag_len(t->wid, t->seq, max)) ||
	    t->sum != h_tag_sum(t->wid, t->seq, b + H_TAG_SZ, len - H_TAG_SZ)) {
		fprintf(stderr, "frame %u of writer %u (%zu bytes): torn or forged\n",
			t->seq, t->wid, len);
		return 1;
	}
	return 0;
}
