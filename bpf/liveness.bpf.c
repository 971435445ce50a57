// SPDX-License-Identifier: MIT
/*
 * Liveness monitor, kernel side: report the death of watched processes.
 *
 * sched_process_exit fires once per exiting thread.  A process is dead
 * when its last thread exits: do_exit() decrements signal->live before
 * the tracepoint, so the thread that sees it at zero is the last one.  Two
 * threads exiting together can both see zero; each death is reported once
 * because the report goes to whichever of them deletes the watched entry
 * (bpf_map_delete_elem() succeeds for one caller only).
 *
 * Keys are pids as the watcher sees them.  A process has one pid per pid
 * namespace from its own up to the root (struct pid's numbers[]), so the
 * program looks up { namespace inode, pid } for each of them: a watcher
 * in any ancestor namespace finds its entry, without a table of watcher
 * namespaces and without asking for current's own namespace only, which
 * is all bpf_get_ns_current_pid_tgid() can answer.
 *
 * A pid is reused once its process is reaped, so an entry also holds the
 * start time the watcher read (field 22 of /proc/PID/stat); the exit of
 * another process with the same pid is not the watched one's and leaves
 * the entry alone.
 *
 * One copy of this program is loaded per monitor: its maps are that
 * monitor's alone.  User space adds and removes entries; this program
 * only deletes them.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#include "liveness_internal.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

/*
 * The watcher's time namespace boot offset (set before load): /proc adds
 * it to start times, and the kernel's own start_boottime lacks it.
 */
const volatile __s64 boot_off_ns = 0;

/* Deaths the ring buffer had no room for: user space rescans then. */
__u64 dropped = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SLUICE_LV_WATCHED_MAX);
	__type(key, struct sluice_lv_key);
	__type(value, struct sluice_lv_val);
} watched SEC(".maps");

/* The deaths reported last, for bpftool; user space never reads it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SLUICE_LV_EXITS_MAX);
	__type(key, struct sluice_lv_key);
	__type(value, struct sluice_lv_event);
} exits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, SLUICE_LV_RING_BYTES);
} events SEC(".maps");

/* Not in BTF: a #define in include/linux/sched/signal.h, stable since 2.6. */
#define SIGNAL_GROUP_EXIT	0x00000004

/* Same arithmetic as nsec_to_clock_t() with USER_HZ 100. */
#define NSEC_PER_USER_TICK	10000000ULL

/*
 * The status wait(2) will report: the group's if it exited as a group
 * (exit_group(2), a fatal signal), else the leader's own exit code.
 */
static __always_inline int exit_status(struct signal_struct *sig,
				       struct task_struct *leader)
{
	if (BPF_CORE_READ(sig, flags) & SIGNAL_GROUP_EXIT)
		return BPF_CORE_READ(sig, group_exit_code);
	return BPF_CORE_READ(leader, exit_code);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sluice_lv_exit, struct task_struct *task)
{
	struct signal_struct *sig = BPF_CORE_READ(task, signal);
	struct task_struct *leader;
	struct sluice_lv_event ev;
	struct sluice_lv_key key = {};
	struct sluice_lv_val *val;
	unsigned long upid_off, upid_sz;
	unsigned int level, i;
	struct pid *tgid;
	__u64 ticks;

	/* Other threads live on: most exits stop here. */
	if (BPF_CORE_READ(sig, live.counter) != 0)
		return 0;

	leader = BPF_CORE_READ(task, group_leader);
	/*
	 * /proc/PID/stat shows the leader's start_boottime, shifted by the
	 * reader's time namespace and cut to clock ticks.
	 */
	ticks = (BPF_CORE_READ(leader, start_boottime) + boot_off_ns) /
		NSEC_PER_USER_TICK;

	tgid = BPF_CORE_READ(sig, pids[PIDTYPE_TGID]);
	if (!tgid)
		return 0;
	level = BPF_CORE_READ(tgid, level);
	/* numbers[] is a flexible array: index it by hand, CO-RE sized. */
	upid_off = bpf_core_field_offset(struct pid, numbers);
	upid_sz = bpf_core_type_size(struct upid);

	for (i = 0; i < SLUICE_LV_LEVELS; i++) {
		struct upid *up;

		if (i > level)
			break;
		up = (void *)tgid + upid_off + i * upid_sz;
		key.ns_ino = BPF_CORE_READ(up, ns, ns.inum);
		key.pid = BPF_CORE_READ(up, nr);

		val = bpf_map_lookup_elem(&watched, &key);
		if (!val || val->start != ticks)
			continue;
		/* The thread that deletes the entry is the one that reports. */
		if (bpf_map_delete_elem(&watched, &key))
			continue;

		ev.ns_ino = key.ns_ino;
		ev.pid = key.pid;
		ev.status = exit_status(sig, leader);
		ev.start = ticks;
		ev.ktime_ns = bpf_ktime_get_ns();
		bpf_map_update_elem(&exits, &key, &ev, BPF_ANY);
		/*
		 * Full: the entry is gone and no event will come, so say
		 * so (atomically: exits run on every CPU at once); user
		 * space then looks for the entries it lost.
		 */
		if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0))
			__sync_fetch_and_add(&dropped, 1);
	}
	return 0;
}
