/* SPDX-License-Identifier: MIT */
/*
 * Liveness: learn at once when a peer process dies.
 *
 * A monitor watches processes by pid and start time (so a reused pid is
 * never taken for the process it replaced) and, when one dies, cancels
 * the tokens and calls the functions tied to it, once each, from its own
 * thread.  SPSC rings and channels given a monitor in their options watch
 * their peers by themselves: a survivor blocked in a call returns within
 * milliseconds of the death instead of at its deadline.
 *
 * Backends.  SLUICE_LIVENESS_BPF loads an eBPF program on the
 * sched_process_exit tracepoint that checks each exiting process against
 * a map of watched ones and posts the deaths it finds to a ring buffer:
 * one event per process death, whatever its threads do, and no system
 * call per watched process while it lives.  SLUICE_LIVENESS_PIDFD polls a
 * pidfd per watched process; it needs no privilege.  SLUICE_LIVENESS_AUTO
 * takes BPF where it loads and falls back to pidfd, saying why.
 *
 * Pids.  A pid given to a monitor is one the calling process sees (its own
 * pid namespace); the BPF backend maps it to what the kernel sees.
 *
 * Inspection.  The BPF backend pins its maps under
 * /sys/fs/bpf/sluice/<monitor pid>-<n>/ (watched, exits), so
 *	bpftool map dump pinned /sys/fs/bpf/sluice/<dir>/watched
 * shows who is watched and "exits" the deaths seen last.  Pins go with the
 * monitor; a monitor that dies leaves them to the next BPF monitor that
 * pins under the same root, which removes them.
 *
 * Peers must share the watcher's pid namespace as rings and channels see
 * them (their places record pids as their owners saw them), and its time
 * namespace (start times are read through /proc, which shifts them by the
 * reader's boot offset): a peer in another would be taken for dead.
 *
 * With the default pin root, a monitor mounts bpffs on /sys/fs/bpf in the
 * caller's mount namespace if nothing is mounted there.  A monitor belongs
 * to the process that made it: a forked child has no monitor thread, and
 * makes its own.
 */
#ifndef SLUICE_LIVENESS_H
#define SLUICE_LIVENESS_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include <sluice/cancel.h>
#include <sluice/opts.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sluice_liveness;

enum sluice_liveness_backend {
	SLUICE_LIVENESS_AUTO = 0,	/* BPF if it loads (and the library was
					 * built with it), else pidfd */
	SLUICE_LIVENESS_BPF = 1,	/* BPF or fail */
	SLUICE_LIVENESS_PIDFD = 2,	/* pidfd polling */
};

/* Flags of struct sluice_liveness_opts. */
#define SLUICE_LIVENESS_NO_PIN	(1u << 0)	/* BPF: pin nothing */

struct sluice_liveness_opts {
	size_t sz;			/* sizeof(struct sluice_liveness_opts) */
	uint32_t backend;		/* enum sluice_liveness_backend */
	uint32_t flags;			/* SLUICE_LIVENESS_* */
	const char *pin_root;		/* BPF pins; NULL: /sys/fs/bpf/sluice */
};

/**
 * sluice_liveness_create() - start a monitor (and its thread).
 *
 * Return: 0, or -EINVAL, -ENOMEM, a negative errno from loading the BPF
 * program when SLUICE_LIVENESS_BPF was asked for (-EPERM, -ENOSYS,
 * -EOPNOTSUPP, ...), from probing pidfds (AUTO, PIDFD), or from starting
 * the thread.
 */
int sluice_liveness_create(const struct sluice_liveness_opts *opts,
			   struct sluice_liveness **out);

/**
 * sluice_liveness_destroy() - stop the monitor; no function it calls
 * runs once this returns (called from one of them, the monitor goes once
 * that function returns), and deaths not fired yet never are.  Rings and
 * channels using it must be closed first.  Its pins are removed.  NULL is
 * a no-op.
 */
void sluice_liveness_destroy(struct sluice_liveness *m);

/** sluice_liveness_backend() - the backend in use: _BPF or _PIDFD (_AUTO for NULL). */
enum sluice_liveness_backend sluice_liveness_backend(const struct sluice_liveness *m);

/** sluice_liveness_backend_str() - "auto", "bpf", "pidfd", or "?". */
const char *sluice_liveness_backend_str(enum sluice_liveness_backend b);

/**
 * sluice_liveness_why() - why AUTO did not get BPF ("" if it did, or if
 * BPF or pidfd was asked for).
 */
const char *sluice_liveness_why(const struct sluice_liveness *m);

/* Called once, from the monitor's thread, when the watched process dies. */
typedef void (*sluice_liveness_fn)(pid_t pid, uint64_t start, void *arg);

/**
 * sluice_liveness_watch_fn() - call @fn(@pid, @start, @arg) when the
 * process dies.
 * @pid:   in the caller's pid namespace.
 * @start: its start time (field 22 of /proc/PID/stat), or 0 to read it now.
 * @id:    receives the watch's id, for sluice_liveness_unwatch(); may be NULL.
 *
 * A process that is already dead (or whose start time is not @start: the
 * pid was reused) fires at once, from the monitor's thread.  Watches of
 * one process share what the backend keeps for it.
 *
 * Return: 0, -EINVAL, -ENOMEM, -ENOSPC (the BPF map is full), -EXDEV
 * (this process's /proc belongs to another pid namespace, so its pids
 * cannot be checked), or a negative errno from the backend.
 */
int sluice_liveness_watch_fn(struct sluice_liveness *m, pid_t pid, uint64_t start,
			     sluice_liveness_fn fn, void *arg, uint64_t *id);

/**
 * sluice_liveness_watch() - trigger @token with @reason (0: -EPIPE; a
 * positive one is -EINVAL) when the process dies.  As
 * sluice_liveness_watch_fn() otherwise.  The token must outlive the
 * watch.
 */
int sluice_liveness_watch(struct sluice_liveness *m, pid_t pid, uint64_t start,
			  struct sluice_cancel *token, int reason, uint64_t *id);

/**
 * sluice_liveness_unwatch() - stop a watch.  When this returns, its
 * function is not running and will not run.  A watch's own function
 * cannot unwatch it (-EDEADLK: it would wait for itself); it may unwatch
 * other watches.
 *
 * Return: 0, -ENOENT (no such watch, or it fired already), -EINVAL,
 * -EDEADLK.
 */
int sluice_liveness_unwatch(struct sluice_liveness *m, uint64_t id);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_LIVENESS_H */
