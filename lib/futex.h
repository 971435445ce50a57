/* SPDX-License-Identifier: MIT */
/*
 * Futexes in shared memory.  These are shared futexes (no FUTEX_PRIVATE_FLAG)
 * since the word is mapped by several processes.
 */
#ifndef SLUICE_FUTEX_H
#define SLUICE_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>
#include <sys/syscall.h>

/*
 * Sleep while *@word == @val, until woken or @deadline (CLOCK_MONOTONIC, ns;
 * 0: no deadline).  Returns 0 when woken or the word differs, -ETIMEDOUT,
 * or -EINTR.
 */
static inline int sluice__futex_wait(_Atomic uint32_t *word, uint32_t val,
				     uint64_t deadline)
{
	struct timespec ts, *tsp = NULL;
	long rc;

	if (deadline) {
		ts.tv_sec = (time_t)(deadline / 1000000000ull);
		ts.tv_nsec = (long)(deadline % 1000000000ull);
		tsp = &ts;
	}
	/* FUTEX_WAIT_BITSET takes an absolute time; FUTEX_WAIT a relative one. */
	rc = syscall(SYS_futex, word, FUTEX_WAIT_BITSET, val, tsp, NULL,
		     FUTEX_BITSET_MATCH_ANY);
	if (rc == 0 || errno == EAGAIN)
		return 0;
	return -errno;
}

static inline void sluice__futex_wake(_Atomic uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * Bump @word and wake every sleeper on it.  seq_cst, so a sleeper that
 * loaded the word before the bump does not sleep on its old value.
 */
static inline void sluice__futex_bump_wake(_Atomic uint32_t *word)
{
	atomic_fetch_add_explicit(word, 1, memory_order_seq_cst);
	sluice__futex_wake(word);
}

#endif /* SLUICE_FUTEX_H */
