/* SPDX-License-Identifier: MIT */
/*
 * The liveness monitor's BPF backend (lib/liveness_bpf.c), as the monitor
 * (lib/liveness.c) calls it.  The backend owns the eBPF program, its maps
 * and their pins, and the ring buffer; the monitor owns the processes and
 * their watches, and tells the backend which (pid, start) to put in the
 * program's map.  The backend reports back through sluice__lv_exited(),
 * from the monitor's thread.
 *
 * A library built with BPF=0 (the Makefile then leaves SLUICE_HAVE_BPF
 * undefined) has no backend: the stubs below make sluice__lv_bpf_open()
 * fail with -EOPNOTSUPP, so the monitor never holds one to call the
 * others with, and nothing links libbpf.
 */
#ifndef SLUICE_LIVENESS_BPF_H
#define SLUICE_LIVENESS_BPF_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct sluice_liveness;
struct sluice__lv_bpf;

#ifdef SLUICE_HAVE_BPF

/*
 * Load and attach a copy of the program for monitor @m, add its ring
 * buffer to @epfd with @tag, and pin its maps under @pin_root (NULL: the
 * default) unless @pin is false; pinning is best effort.  Returns 0, or a
 * negative errno with @why ("BPF: <step>: <error>") saying which step
 * failed.
 */
int sluice__lv_bpf_open(struct sluice_liveness *m, int epfd, uint64_t tag,
			const char *pin_root, bool pin, char *why, size_t why_sz,
			struct sluice__lv_bpf **out);
/* Unpin, detach and unload.  The monitor's thread must be stopped. */
void sluice__lv_bpf_close(struct sluice__lv_bpf *b);

/*
 * Put (@pid, @start) in the program's map.  Returns 1 if the entry is
 * ours, 0 if a watched process of another start time holds the pid (so
 * ours is gone), -ENOSPC if the map is full, or another negative errno.
 * The monitor's lock serialises these calls.
 */
int sluice__lv_bpf_add(struct sluice__lv_bpf *b, pid_t pid, uint64_t start);
/* Take the entry out if it is still (@pid, @start)'s. */
void sluice__lv_bpf_del(struct sluice__lv_bpf *b, pid_t pid, uint64_t start);
/* The watch count bpftool shows, if the program has not taken the entry. */
void sluice__lv_bpf_count(struct sluice__lv_bpf *b, pid_t pid, uint64_t start,
			  uint64_t watches);
/* Is @pid's entry still in the map (the program has not taken it)? */
bool sluice__lv_bpf_holds(struct sluice__lv_bpf *b, pid_t pid);

/* Monitor's thread: report the deaths the ring buffer holds. */
void sluice__lv_bpf_consume(struct sluice__lv_bpf *b);
/*
 * Monitor's thread: did the program drop reports (ring buffer full) since
 * the last call?  If so, the reports still in the ring are consumed first,
 * and the monitor must look for entries it holds that are gone.
 */
bool sluice__lv_bpf_dropped(struct sluice__lv_bpf *b);

#else /* !SLUICE_HAVE_BPF */

static inline int sluice__lv_bpf_open(struct sluice_liveness *m, int epfd,
				      uint64_t tag, const char *pin_root, bool pin,
				      char *why, size_t why_sz,
				      struct sluice__lv_bpf **out)
{
	(void)m, (void)epfd, (void)tag, (void)pin_root, (void)pin, (void)out;
	snprintf(why, why_sz, "built without BPF");
	return -EOPNOTSUPP;
}

/* The backend is pidfd: close() gets NULL, the rest are never called. */
static inline void sluice__lv_bpf_close(struct sluice__lv_bpf *b) { (void)b; }
static inline int sluice__lv_bpf_add(struct sluice__lv_bpf *b, pid_t pid,
				     uint64_t start)
{
	(void)b, (void)pid, (void)start;
	return -EOPNOTSUPP;
}
static inline void sluice__lv_bpf_del(struct sluice__lv_bpf *b, pid_t pid,
				      uint64_t start)
{
	(void)b, (void)pid, (void)start;
}
static inline void sluice__lv_bpf_count(struct sluice__lv_bpf *b, pid_t pid,
					uint64_t start, uint64_t watches)
{
	(void)b, (void)pid, (void)start, (void)watches;
}
static inline bool sluice__lv_bpf_holds(struct sluice__lv_bpf *b, pid_t pid)
{
	(void)b, (void)pid;
	return true;
}
static inline void sluice__lv_bpf_consume(struct sluice__lv_bpf *b) { (void)b; }
static inline bool sluice__lv_bpf_dropped(struct sluice__lv_bpf *b)
{
	(void)b;
	return false;
}

#endif /* SLUICE_HAVE_BPF */

/*
 * In the monitor (lib/liveness.c), for the backend: the program took
 * (@pid, @start)'s entry at its last thread's exit, at @exit_ns
 * (CLOCK_MONOTONIC).  From the monitor's thread, its lock not held.
 */
void sluice__lv_exited(struct sluice_liveness *m, pid_t pid, uint64_t start,
		       uint64_t exit_ns);

#endif /* SLUICE_LIVENESS_BPF_H */
