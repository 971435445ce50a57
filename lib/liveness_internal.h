/* SPDX-License-Identifier: MIT */
/*
 * What the liveness monitor's eBPF program (bpf/liveness.bpf.c) and its
 * loader (lib/liveness_bpf.c) share: the layouts of its maps and events.
 * Included by both, so kernel-style fixed-size types only.
 */
#ifndef SLUICE_LIVENESS_INTERNAL_H
#define SLUICE_LIVENESS_INTERNAL_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Processes one monitor can watch through BPF (-ENOSPC beyond). */
#define SLUICE_LV_WATCHED_MAX	4096
/* Deaths kept in the exits map for bpftool. */
#define SLUICE_LV_EXITS_MAX	256
/* Event ring: 32-byte events plus an 8-byte header, ~1600 in flight. */
#define SLUICE_LV_RING_BYTES	(64 * 1024)
/*
 * Pid namespace levels looked at, from the root down: a watcher deeper
 * than this below the root namespace is not told through BPF.
 */
#define SLUICE_LV_LEVELS	8

/*
 * A watched process: its pid in the watcher's pid namespace, which is
 * named by the inode of /proc/self/ns/pid (the nsfs device is the same
 * for every namespace, so the inode alone is unique).
 */
struct sluice_lv_key {
	__u64 ns_ino;
	__u32 pid;
	__u32 pad;		/* zero: keys compare as bytes */
};

struct sluice_lv_val {
	__u64 start;		/* field 22 of /proc/PID/stat, as the watcher reads it */
	__u64 watches;		/* how many watches share it; for bpftool */
};

/* Posted to the ring buffer, and kept in the exits map, per death. */
struct sluice_lv_event {
	__u64 ns_ino;
	__u32 pid;
	__s32 status;		/* as wait(2) reports it */
	__u64 start;
	__u64 ktime_ns;		/* CLOCK_MONOTONIC at the last thread's exit */
};

#endif /* SLUICE_LIVENESS_INTERNAL_H */
