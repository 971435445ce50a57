/* SPDX-License-Identifier: MIT */
/* sluice: kernel-bypass inter-process communication over shared memory. */
#ifndef SLUICE_H
#define SLUICE_H

#include <sluice/opts.h>
#include <sluice/region.h>

#endif /* SLUICE_H */
