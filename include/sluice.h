/* SPDX-License-Identifier: MIT */
/* sluice: kernel-bypass inter-process communication over shared memory. */
#ifndef SLUICE_H
#define SLUICE_H

#include <sluice/cancel.h>
#include <sluice/chan.h>
#include <sluice/liveness.h>
#include <sluice/mux.h>
#include <sluice/opts.h>
#include <sluice/region.h>
#include <sluice/spsc.h>

#endif /* SLUICE_H */
