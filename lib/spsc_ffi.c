// SPDX-License-Identifier: MIT
/*
 * The inline one-packet calls of spsc.h, compiled out of line and
 * exported under their own names, for callers that cannot use a C inline
 * function (other languages' FFIs, dlsym()).  C callers that include
 * spsc.h get the inline ones and never call these.
 */
#define SLUICE_SPSC_INLINE	/* extern definitions, one each */
#include <sluice/spsc.h>
