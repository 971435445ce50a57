/* SPDX-License-Identifier: MIT */
/*
 * sluice__copy(): the one routine that copies a message's bytes, into or
 * out of a ring's slot or a channel's slice.  Inline, so that the fast
 * paths in spsc.h can use it.  Not API.
 */
#ifndef SLUICE_COPY_H
#define SLUICE_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Copy @n bytes.  Up to 64 without a call to memcpy, whose call costs as
 * much as the rest of a small send: in moves of a fixed width, the last
 * overlapping the one before, so that no byte goes one at a time.  Over
 * 64, memcpy.
 *
 * @width (8 or 32, a constant) is the caller's, by how its source was
 * written:
 *
 *   8   a buffer the application may have just written, as the one
 *       message of a send is (a sequence number stored into its header,
 *       say).  A load wider than the store it reads cannot be forwarded
 *       from that store, and waits for it to reach the cache (spsc.md,
 *       One packet per call).
 *   32  bytes written well before, as a batch's buffers and a slice's
 *       frames are: wide moves fill half the store-buffer entries per
 *       line that 8-byte ones do, so more lines are in flight at once.
 *
 * GCC 12's value-range analysis, seeing this inlined into a caller whose
 * buffer is small (or NULL with length 0), warns about branches for
 * lengths the caller can never pass: silenced here, and only here.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"
#pragma GCC diagnostic ignored "-Wstringop-overread"
#pragma GCC diagnostic ignored "-Wnonnull"
#endif
static inline __attribute__((always_inline)) void
sluice__copy(void *dst, const void *src, size_t n, const size_t width)
{
	unsigned char *d = (unsigned char *)dst;
	const unsigned char *s = (const unsigned char *)src;
	uint64_t w;
	size_t i;

	if (n > 64) {
		memcpy(d, s, n);
	} else if (width >= 32 && n >= 32) {
		memcpy(d, s, 32);
		memcpy(d + n - 32, s + n - 32, 32);
	} else if (width >= 16 && n >= 16) {
		memcpy(d, s, 16);
		memcpy(d + n - 16, s + n - 16, 16);
	} else if (n >= 8) {
		for (i = 0; i + 8 <= n; i += 8) {
			memcpy(&w, s + i, 8);
			memcpy(d + i, &w, 8);
		}
		if (i < n) {	/* the tail, overlapping the last word */
			memcpy(&w, s + n - 8, 8);
			memcpy(d + n - 8, &w, 8);
		}
	} else if (n >= 4) {
		memcpy(d, s, 4);
		memcpy(d + n - 4, s + n - 4, 4);
	} else if (n) {
		d[0] = s[0];
		d[n / 2] = s[n / 2];
		d[n - 1] = s[n - 1];
	}
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* The widths, by where the source comes from (see above). */
#define SLUICE__COPY_FRESH	8	/* just written by the caller */
#define SLUICE__COPY_SETTLED	32	/* written well before */

#endif /* SLUICE_COPY_H */
