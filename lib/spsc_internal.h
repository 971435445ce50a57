/* SPDX-License-Identifier: MIT */
/* SPSC ring internals shared with the tests; see lib/spsc.c. */
#ifndef SLUICE_SPSC_INTERNAL_H
#define SLUICE_SPSC_INTERNAL_H

#include <stdint.h>

/* Temporal slipping's most (sluice__slip_next()): about 1.5 us of pauses. */
#define SLUICE__SPSC_SLIP_MAX	64u

#endif /* SLUICE_SPSC_INTERNAL_H */
