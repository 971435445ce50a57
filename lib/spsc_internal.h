/* SPDX-License-Identifier: MIT */
/* SPSC ring internals shared with the tests; see lib/spsc.c. */
#ifndef SLUICE_SPSC_INTERNAL_H
#define SLUICE_SPSC_INTERNAL_H

#include <stdint.h>

#define SLUICE__SLIP_MAX	64u	/* pauses: about 1.5 us on a 25 ns pause */

/* What a wait found ready when it ended: packets (consumer), free slots (producer). */
enum sluice__slip_found {
	SLUICE__SLIP_LONE,	/* just the one it waited for */
	SLUICE__SLIP_BURST,	/* a second one behind it */
	SLUICE__SLIP_FAR,	/* half the ring or more: the peer nearly had to wait */
};

/*
 * Temporal slipping: the pauses the next wait makes before its first poll,
 * from the last wait's @slip, how many @polls that wait took, and what it
 * @found.
 */
uint32_t sluice__spsc_slip_next(uint32_t slip, unsigned int polls,
				enum sluice__slip_found found);

#endif /* SLUICE_SPSC_INTERNAL_H */
