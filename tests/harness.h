/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by every sluice test program.
 *
 * cmocka's asserts longjmp back into the runner, so they only work in the
 * process that runs the test.  A forked child reports instead through its
 * exit status: h_fork() runs a function in a child and hands back what it
 * returned (0..255), or H_SIGNALED + signo if the child was killed.
 *
 * The fixture of a concurrent test (a region of its own with a sync
 * object, handles closed for it if an assert fails, sides run as
 * processes or threads) is here too; the bytes its frames carry are in
 * frames.h.
 */
#ifndef SLUICE_TESTS_HARNESS_H
#define SLUICE_TESTS_HARNESS_H

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sluice/cancel.h>
#include <sluice/region.h>

/* A unique region name: "t-<pid>-<counter>", room for SLUICE_REGION_NAME_MAX. */
#define H_NAME_SZ	(SLUICE_REGION_NAME_MAX + 1)
char *h_name(char *buf);
/* The prefix every name of this process starts with ("t-<pid>-"). */
const char *h_prefix(void);
/* Unlink every region whose name starts with h_prefix(); returns how many. */
int h_unlink_all(void);

/*
 * Run @fn(@arg) in a forked child with a @timeout_s alarm; the child exits
 * with what @fn returned.  Returns that exit status, H_SIGNALED + signo if
 * the child died of a signal, or a negative errno if fork() failed.
 */
#define H_SIGNALED	1000
int h_fork(int (*fn)(void *arg), void *arg, unsigned int timeout_s);
/* Start @fn(@arg) in a child and return its pid; reap it with h_wait(). */
int h_spawn(int (*fn)(void *arg), void *arg, unsigned int timeout_s);
int h_wait(int pid);

/*
 * Hold the directory lock of region @name from a child until it is
 * killed (kill(pid, SIGKILL) and h_wait(pid)): a peer that will not let
 * go.  Returns the child's pid once it holds the lock, or a negative
 * errno.
 */
int h_hold_region_lock(const char *name);

/*
 * Huge pages: make sure @n pages of the default size are free in the pool
 * and a hugetlbfs is mounted, writing the mount's directory to @dir.  The
 * pool grows only; h_hugepages_restore() shrinks it back to what it was
 * before the first h_hugepages_ensure(), never below what is in use.
 * Returns 0, or a negative errno with a reason in h_why().
 */
int h_hugepages_ensure(unsigned long n, char *dir, size_t len);
void h_hugepages_restore(void);
const char *h_why(void);

/* A /proc/meminfo value (the number before any "kB"), or -1. */
long long h_meminfo(const char *key);

/*
 * The kernel's own account of the mapping that holds @addr, read from
 * /proc/self/smaps (values in kB).
 */
struct h_smaps {
	unsigned long start, end;
	long long size_kb;
	long long kernel_page_kb;
	long long rss_kb;
	long long shared_hugetlb_kb;
	long long private_hugetlb_kb;
	long long anon_huge_kb;		/* AnonHugePages */
	long long shmem_pmd_kb;		/* ShmemPmdMapped */
	long long file_pmd_kb;		/* FilePmdMapped */
};
int h_smaps(const void *addr, struct h_smaps *s);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t h_now_ms(void);
void h_sleep_ms(unsigned int ms);

/* Fail the test unless @ms (or the time since @t0) is in [@at_least_ms, @below_ms). */
void h_assert_ms(int64_t ms, int64_t at_least_ms, int64_t below_ms);
void h_assert_took(int64_t t0, int64_t at_least_ms, int64_t below_ms);

/* Wait until *@v is at least @want; 0, or -ETIMEDOUT after @ms. */
int h_wait_for(_Atomic uint32_t *v, uint32_t want, int64_t ms);

/* Open file descriptors of this process, to prove nothing leaked. */
int h_count_fds(void);

/* Skip the current test, saying why on stdout first. */
#define h_skip(...)							\
	do {								\
		print_message("[  SKIP    ] ");				\
		print_message(__VA_ARGS__);				\
		print_message("\n");					\
		skip();							\
	} while (0)

/* Which sanitizer this program is built with, if any: H_TSAN, H_ASAN. */
#if defined(__SANITIZE_THREAD__)
#define H_TSAN		1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define H_TSAN		1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define H_ASAN		1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define H_ASAN		1
#endif
#endif

/*
 * Inside a side (a child process, or a thread standing in for one), where
 * cmocka's asserts cannot be used: say what failed on stderr and make the
 * side's function return 1.
 */
#define CK(expr)							\
	do {								\
		if (!(expr)) {						\
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #expr); \
			return 1;					\
		}							\
	} while (0)
#define CK_EQ(expr, want)						\
	do {								\
		long long got_ = (long long)(expr), want_ = (long long)(want); \
		if (got_ != want_) {					\
			fprintf(stderr, "%s:%d: %s is %lld, want %lld\n", \
				__FILE__, __LINE__, #expr, got_, want_); \
			return 1;					\
		}							\
	} while (0)

/* ---------------------------------------------------------------- sides */

/*
 * The sides of a concurrent test are processes of their own, or threads of
 * this one under ThreadSanitizer, which does not follow fork well.  A test
 * that needs a process to kill skips under TSan, saying so.
 */
#if defined(H_TSAN)
#define H_SIDES_ARE_THREADS	1
#else
#define H_SIDES_ARE_THREADS	0
#endif

struct h_side {
	int (*fn)(void *arg);
	void *arg;
};

/*
 * Run every side at once and fail the test unless all of them return 0
 * within @timeout_s.  Every side is reaped before the verdict: none
 * outlives its test (a thread still running at the deadline is stuck for
 * good, and is left behind rather than freed under it).
 */
void h_run_sides(const struct h_side *s, unsigned int n, unsigned int timeout_s);

/*
 * Something done from another thread of this process @ms from now:
 * @tok triggered with @reason, or else @fn(@arg) called.  h_later_join()
 * fails the test unless it was done and returned 0.  To time a call it
 * ends, read the clock before h_later_start(): then the call ends no
 * sooner than @ms after, however late the caller runs again.
 */
struct h_later {
	struct sluice_cancel *tok;
	int reason;
	int (*fn)(void *arg);
	void *arg;
	unsigned int ms;
	int ret;
	pthread_t t;
};

void h_later_start(struct h_later *l);
void h_later_join(struct h_later *l);

/* ---------------------------------------------------------------- fixture */

/*
 * What the sides of a concurrent test tell each other outside the object
 * under test, in a raw object "sync" of the fixture's region, where a side
 * that opens the region anew finds it too.  A test gives each word the
 * meaning it needs; the comments say what they are mostly for.
 */
struct h_sync {
	_Atomic uint32_t ready;		/* sides ready (readers open) */
	_Atomic uint32_t wopen;		/* writers open */
	_Atomic uint32_t stage;		/* how far a scripted test got */
	_Atomic uint32_t done;
	_Atomic uint32_t made[4];	/* objects made, for a side to attach to */
	_Atomic uint64_t sum;		/* a producer's stream checksum */
	_Atomic uint64_t last[4];	/* a writer's frames below this are committed */
	_Atomic uint64_t count[16];	/* what a side counted, for the report */
};

/* A test's own region, on normal pages: cheap and deterministic. */
struct h_fx {
	char name[H_NAME_SZ];
	struct sluice_region *r;
};

/*
 * For a program's cmocka setup: a struct h_fx in *@state, with a region of
 * @size bytes holding a zeroed struct h_sync.  Returns 0 or -1.
 */
int h_fx_setup(void **state, size_t size);
/*
 * cmocka teardown: clears any test point a failed test left set, closes
 * what the test left open (h_track()), destroys the region and unlinks
 * every region of this process.
 */
int h_fx_teardown(void **state);
/* The struct h_sync of @r, or NULL. */
struct h_sync *h_sync_of(struct sluice_region *r);

/*
 * A handle the test body opened and has not closed yet, and how to close
 * it: an assert that fails skips the body's own close, and the teardown
 * closes what is left, newest first (so an endpoint before its channel).
 * Fails the test if too many are open at once.
 */
void h_track(void *p, void (*close)(void *p));
/* @p was closed by the test itself (NULL: nothing). */
void h_untrack(void *p);

#endif /* SLUICE_TESTS_HARNESS_H */
