/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by every sluice test program.
 *
 * cmocka's asserts longjmp back into the runner, so they only work in the
 * process that runs the test.  A forked child reports instead through its
 * exit status: h_fork() runs a function in a child and hands back what it
 * returned (0..255), or H_SIGNALED + signo if the child was killed.
 */
#ifndef SLUICE_TESTS_HARNESS_H
#define SLUICE_TESTS_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

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

#endif /* SLUICE_TESTS_HARNESS_H */
