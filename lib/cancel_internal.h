/* SPDX-License-Identifier: MIT */
/* How waits tie themselves to cancellation tokens; see lib/cancel.c. */
#ifndef SLUICE_CANCEL_INTERNAL_H
#define SLUICE_CANCEL_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>

#include <sluice/cancel.h>

/* A wait that sleeps on the futex @word; lives on the waiter's stack. */
struct sluice__waiter {
	struct sluice__waiter *next;
	struct sluice__waiter **pprev;
	_Atomic uint32_t *word;
};

/*
 * Tie @w to @c before sleeping on @word: from now on a trigger of @c bumps
 * and wakes @word.  Returns the token's reason (0 if not triggered) as of
 * the arming, so the caller need not re-check.  A NULL token arms nothing.
 */
int sluice__cancel_arm(struct sluice_cancel *c, struct sluice__waiter *w,
		       _Atomic uint32_t *word);
void sluice__cancel_disarm(struct sluice_cancel *c, struct sluice__waiter *w);

#endif /* SLUICE_CANCEL_INTERNAL_H */
