// SPDX-License-Identifier: MIT
/*
 * Liveness monitor: learn at once when a peer process dies.
 *
 * A monitor keeps two tables under one mutex: watches by id, and the
 * processes they watch by (pid, start time).  Each process is watched once
 * in the backend however many watches it has:
 *
 *   BPF    an entry in the eBPF program's "watched" map; the program
 *          deletes it when the process's last thread exits and posts the
 *          death to a ring buffer (see bpf/liveness.bpf.c).
 *   pidfd  a pidfd, readable once the process has exited.
 *
 * The monitor's thread sleeps in epoll_wait() on an eventfd (stop, and
 * watches that fire at once), the ring buffer or the pidfds.  A death moves
 * the process's watches to a fire queue; the thread then fires them one at
 * a time with the mutex dropped, noting which one runs so that
 * sluice_liveness_unwatch() can wait for it to finish.
 *
 * Watching a process that may be dying.  The backend must learn of every
 * death after the watch is made, so the process is checked alive *after*
 * its backend entry exists: if it died before, the check sees it and the
 * watch fires at once; if after, the backend sees it.  With BPF "alive"
 * must mean "has not yet passed the tracepoint", which /proc shows as a
 * thread that is neither a zombie nor PF_EXITING: do_exit() sets
 * PF_EXITING before it counts the thread out of signal->live.  When both
 * the check and the program see the death, the first to take the map
 * entry (the program's delete, or ours under the mutex) wins: the process
 * leaves the table when it fires, and a later event for it finds nothing.
 *
 * Functions fire only once sluice__proc_alive() would call the process
 * dead, so that what a function does next (a channel's sweep, a ring's
 * takeover) sees it dead too.  It counts a process dead once every thread
 * is a zombie or PF_EXITING, which is so by the time the tracepoint runs
 * for the last thread: a report from the program fires at once.  A
 * process found dying when its watch is made (past the tracepoint, or
 * maybe not) is asked about, and if /proc still calls it alive, the BPF
 * backend finishes that death with a pidfd (see lv_proc_finish()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <sluice/liveness.h>

#include "internal.h"
#include "liveness_internal.h"
#include "liveness.skel.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif
#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC		0xcafe4a11
#endif

#define LV_BPF_FS		"/sys/fs/bpf"
#define LV_PIN_ROOT		LV_BPF_FS "/sluice"

/* epoll tags; pidfds are tagged with their process's serial, from here. */
#define LV_TAG_CTL		0
#define LV_TAG_RING		1
#define LV_TAG_FIRST_PROC	2

/*
 * With BPF, how often the thread looks at the drop counter when nothing
 * wakes it: the backstop for a drop counted after the drain that
 * followed it (see lv_bpf_check_dropped()).
 */
#define LV_DROP_POLL_MS		1000

/* ---------------------------------------------------------------- lists */

struct lv_list {
	struct lv_list *next, *prev;
};

#define lv_entry(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

static void lv_list_init(struct lv_list *h)
{
	h->next = h;
	h->prev = h;
}

static bool lv_list_empty(const struct lv_list *h)
{
	return h->next == h;
}

static void lv_list_add_tail(struct lv_list *n, struct lv_list *h)
{
	n->prev = h->prev;
	n->next = h;
	h->prev->next = n;
	h->prev = n;
}

static void lv_list_del(struct lv_list *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	lv_list_init(n);
}

/* ---------------------------------------------------------------- hash */

/* Chained, keyed by a u64; several nodes may share a key (procs hash). */
struct lv_hnode {
	struct lv_hnode *next;
	uint64_t key;
};

struct lv_htab {
	struct lv_hnode **b;
	size_t mask;
	size_t n;
};

static size_t lv_hslot(const struct lv_htab *t, uint64_t key)
{
	/* Fibonacci hashing spreads sequential ids and fnv values alike. */
	return (size_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & t->mask;
}

static int lv_htab_init(struct lv_htab *t)
{
	t->mask = 15;
	t->n = 0;
	t->b = calloc(t->mask + 1, sizeof(*t->b));
	return t->b ? 0 : -ENOMEM;
}

/* Grows the table when it can; a failed grow only makes chains longer. */
static void lv_htab_add(struct lv_htab *t, struct lv_hnode *n)
{
	size_t slot;

	if (t->n > t->mask) {
		size_t mask = t->mask * 2 + 1, i;
		struct lv_hnode **b = calloc(mask + 1, sizeof(*b));

		if (b) {
			struct lv_htab nt = { .b = b, .mask = mask };

			for (i = 0; i <= t->mask; i++) {
				struct lv_hnode *p, *next;

				for (p = t->b[i]; p; p = next) {
					next = p->next;
					slot = lv_hslot(&nt, p->key);
					p->next = b[slot];
					b[slot] = p;
				}
			}
			free(t->b);
			t->b = b;
			t->mask = mask;
		}
	}
	slot = lv_hslot(t, n->key);
	n->next = t->b[slot];
	t->b[slot] = n;
	t->n++;
}

static void lv_htab_del(struct lv_htab *t, struct lv_hnode *n)
{
	struct lv_hnode **pp;

	for (pp = &t->b[lv_hslot(t, n->key)]; *pp; pp = &(*pp)->next) {
		if (*pp == n) {
			*pp = n->next;
			t->n--;
			return;
		}
	}
}

/* The first node with @key; lv_htab_next() for the others. */
static struct lv_hnode *lv_htab_first(const struct lv_htab *t, uint64_t key)
{
	struct lv_hnode *p;

	for (p = t->b[lv_hslot(t, key)]; p && p->key != key; p = p->next)
		;
	return p;
}

static struct lv_hnode *lv_htab_next(struct lv_hnode *p, uint64_t key)
{
	for (p = p->next; p && p->key != key; p = p->next)
		;
	return p;
}

/* ---------------------------------------------------------------- state */

enum lv_state {
	LV_WATCHING,		/* on its process's list */
	LV_QUEUED,		/* on the fire queue */
	LV_FIRING,		/* its token or function is being run */
};

struct lv_proc;

struct lv_watch {
	struct lv_hnode node;		/* m->watches, by id */
	struct lv_list link;		/* proc->watches or m->fireq */
	enum lv_state state;
	struct lv_proc *proc;		/* while LV_WATCHING */
	pid_t pid;
	uint64_t start;
	sluice_liveness_fn fn;		/* or, if NULL: */
	struct sluice_cancel *token;
	int reason;
	void *arg;
};

struct lv_proc {
	struct lv_hnode node;		/* m->procs, by lv_proc_hash() */
	struct lv_hnode tag_node;	/* m->tags, by serial: pidfd only */
	pid_t pid;
	uint64_t start;
	int pidfd;			/* pidfd backend; BPF: while finishing */
	bool in_map;			/* BPF: has its entry in "watched" */
	uint64_t nwatch;
	struct lv_list watches;
};

struct sluice_liveness {
	pthread_mutex_t lock;
	pthread_cond_t fired;		/* a watch finished firing */
	pthread_t thread;

	/* Set at create, read-only after. */
	enum sluice_liveness_backend backend;
	char why[128];
	int epfd;
	int evfd;
	uint64_t ns_ino;		/* our pid namespace: /proc/self/ns/pid */

	/* BPF backend. */
	struct liveness_bpf *skel;
	struct ring_buffer *rb;
	int watched_fd;
	uint64_t dropped_seen;		/* monitor thread only */
	int pin_dirfd;			/* flock()ed while we live */
	char pin_root[PATH_MAX];
	char pin_dir[PATH_MAX];

	/* Under lock. */
	struct lv_htab watches;
	struct lv_htab procs;
	struct lv_htab tags;
	struct lv_list fireq;
	uint64_t next_id;
	uint64_t next_tag;
	bool stop;
	bool self_destroy;		/* destroyed from its own thread */
	struct sluice__lv_times last;	/* the latest death, for sluice-bench */
};

static uint64_t lv_proc_hash(pid_t pid, uint64_t start)
{
	uint64_t k[2] = { (uint64_t)(uint32_t)pid, start };

	return sluice__fnv1a(k, sizeof(k));
}

static struct lv_proc *lv_proc_find(struct sluice_liveness *m, pid_t pid,
				    uint64_t start)
{
	uint64_t h = lv_proc_hash(pid, start);
	struct lv_hnode *n;

	for (n = lv_htab_first(&m->procs, h); n; n = lv_htab_next(n, h)) {
		struct lv_proc *p = lv_entry(n, struct lv_proc, node);

		if (p->pid == pid && p->start == start)
			return p;
	}
	return NULL;
}

static struct lv_watch *lv_watch_find(struct sluice_liveness *m, uint64_t id)
{
	struct lv_hnode *n = lv_htab_first(&m->watches, id);

	return n ? lv_entry(n, struct lv_watch, node) : NULL;
}

/* Wakes the monitor thread: to stop, or to fire what was queued. */
static void lv_kick(struct sluice_liveness *m)
{
	uint64_t one = 1;

	if (write(m->evfd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN, at a count of 2^64 - 2: it is awake anyway. */
	}
}

/* ---------------------------------------------------------------- /proc */

/*
 * Has the process (@pid, @start) a thread that has not begun to exit?
 * Returns 1 if so, 0 if it is dead, dying or another process has the pid,
 * or a negative errno.  Exactly what rings and channels will judge it by.
 */
static int lv_running(pid_t pid, uint64_t start)
{
	uint64_t now;
	int err;

	err = sluice__proc_start_time(pid, &now);
	if (err)
		return err == -ESRCH ? 0 : err;
	return now == start;
}

/*
 * Pids we are given are read in /proc, so /proc must be a procfs of our
 * own pid namespace: after unshare(CLONE_NEWPID) without a new mount of
 * /proc, /proc/PID would name another process.
 */
static bool lv_proc_is_ours(void)
{
	char buf[32];
	ssize_t n;

	n = readlink("/proc/self", buf, sizeof(buf) - 1);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strtol(buf, NULL, 10) == getpid();
}

/*
 * /proc start times are shifted by the reader's time namespace boot
 * offset (timens_add_boottime_ns()); the BPF program adds the same, in
 * nanoseconds before it cuts to ticks, so the two agree exactly.  (The
 * file shows the namespace of our children, which is ours unless we
 * called unshare(CLONE_NEWTIME) and did not fork since.)
 */
static int64_t lv_boot_offset_ns(void)
{
	char name[32];
	long long s, ns;
	int64_t off = 0;
	FILE *f;

	f = fopen("/proc/self/timens_offsets", "re");
	if (!f)
		return 0;
	while (fscanf(f, "%31s %lld %lld", name, &s, &ns) == 3)
		if (!strcmp(name, "boottime"))
			off = (int64_t)s * 1000000000 + ns;
	fclose(f);
	return off;
}

/* ---------------------------------------------------------------- pins */

/*
 * Each monitor pins its maps in <root>/<pid>-<n>/.  Who owns a directory
 * is told by locks, not by the pid in its name (an owner in another pid
 * namespace has a pid that means nothing, or someone else, here):
 *
 *   - the owner holds a POSIX read lock (fcntl F_SETLK) on it for as long
 *     as it lives.  Such locks belong to the process: the kernel drops
 *     them when it dies, and a child it forked (a server's worker) does
 *     not inherit them, so they last exactly as long as the monitor's
 *     process.  A directory nobody holds such a lock on is stale;
 *   - whoever sets a directory up or removes it holds flock() on it
 *     meanwhile, so a cleaner never removes one between its mkdir() and
 *     its owner's lock, and an owner notices (st_nlink == 0) if a
 *     cleaner removed it first.
 *
 * A process does not see its own POSIX locks as conflicts, and closing
 * any descriptor of a file drops its locks on it: so a process never
 * looks at its own directories, which it keeps in lv_pins, and all of
 * this runs under lv_pin_lock.
 */
struct lv_pin {
	struct lv_pin *next;
	dev_t dev;
	ino_t ino;
	pid_t pid;		/* a forked child's copy is not its own */
};

static pthread_mutex_t lv_pin_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lv_pin *lv_pins;
static unsigned int lv_pin_seq;
static pthread_once_t lv_pin_once = PTHREAD_ONCE_INIT;

/* A fork() while another thread holds lv_pin_lock must not leave it held. */
static void lv_pin_prepare(void)
{
	pthread_mutex_lock(&lv_pin_lock);
}

static void lv_pin_release(void)
{
	pthread_mutex_unlock(&lv_pin_lock);
}

static void lv_pin_atfork(void)
{
	pthread_atfork(lv_pin_prepare, lv_pin_release, lv_pin_release);
}

static bool lv_pin_ours(const struct stat *st)
{
	struct lv_pin *p;

	for (p = lv_pins; p; p = p->next)
		if (p->dev == st->st_dev && p->ino == st->st_ino && p->pid == getpid())
			return true;
	return false;
}

/* A stream over the directory open as @dirfd, which stays open; NULL on failure. */
static DIR *lv_dir_stream(int dirfd)
{
	int fd = dup(dirfd);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

/* Unpin everything in @name (open as @dirfd) and remove it.  flock() held. */
static void lv_pin_rmdir(int rootfd, const char *name, int dirfd)
{
	struct dirent *de;
	DIR *d;

	d = lv_dir_stream(dirfd);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd, de->d_name, 0);
	closedir(d);
	unlinkat(rootfd, name, AT_REMOVEDIR);
}

/* Does a live process hold the owner's read lock on @fd? */
static bool lv_pin_owned(int fd)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	/* Cannot tell: keep it. */
	if (fcntl(fd, F_GETLK, &fl))
		return true;
	return fl.l_type != F_UNLCK;
}

static void lv_pin_clean_stale(int rootfd)
{
	struct dirent *de;
	struct stat st;
	int fd;
	DIR *d;

	d = lv_dir_stream(rootfd);
	if (!d)
		return;
	while ((de = readdir(d))) {
		unsigned int n;
		int pid;
		char c;

		/* Only names we make: the root may hold others' things. */
		if (sscanf(de->d_name, "%d-%u%c", &pid, &n, &c) != 2)
			continue;
		if (fstatat(rootfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
		    !S_ISDIR(st.st_mode) || lv_pin_ours(&st))
			continue;
		fd = openat(rootfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			continue;
		/* Held: its owner is setting it up, or another cleaner is here. */
		if (!flock(fd, LOCK_EX | LOCK_NB)) {
			if (!lv_pin_owned(fd))
				lv_pin_rmdir(rootfd, de->d_name, fd);
		}
		close(fd);
	}
	closedir(d);
}

/*
 * Make our directory under the root (open as @rootfd), owned and locked.
 * Returns its descriptor, or -1 (we then pin nothing).
 */
static int lv_pin_mkdir(struct sluice_liveness *m, int rootfd, struct lv_pin *pin)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	struct stat st;
	int tries, fd;

	for (tries = 0; tries < 16; tries++) {
		const char *name;

		if ((size_t)snprintf(m->pin_dir, sizeof(m->pin_dir), "%s/%d-%u",
				     m->pin_root, (int)getpid(), lv_pin_seq++) >=
		    sizeof(m->pin_dir))
			return -1;
		name = strrchr(m->pin_dir, '/') + 1;
		if (mkdirat(rootfd, name, 0755)) {
			/* A leftover of a process that had our pid: next name. */
			if (errno == EEXIST)
				continue;
			return -1;
		}
		fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		/* Blocks only while a cleaner looks at it. */
		if (flock(fd, LOCK_EX) || fstat(fd, &st)) {
			close(fd);
			return -1;
		}
		if (!st.st_nlink) {
			/* A cleaner took it between our mkdir and flock. */
			close(fd);
			continue;
		}
		if (fcntl(fd, F_SETLK, &fl)) {
			lv_pin_rmdir(rootfd, name, fd);
			close(fd);
			return -1;
		}
		flock(fd, LOCK_UN);
		pin->dev = st.st_dev;
		pin->ino = st.st_ino;
		pin->pid = getpid();
		return fd;
	}
	return -1;
}

static bool lv_is_bpffs(const char *path)
{
	struct statfs sfs;

	return !statfs(path, &sfs) && sfs.f_type == BPF_FS_MAGIC;
}

static void lv_pin_maps(struct sluice_liveness *m)
{
	struct { const char *name; struct bpf_map *map; } pins[] = {
		{ "watched", m->skel->maps.watched },
		{ "exits", m->skel->maps.exits },
	};
	char path[PATH_MAX + 16];
	struct lv_pin *pin;
	int rootfd, fd;
	size_t i;

	pthread_once(&lv_pin_once, lv_pin_atfork);
	if (!strcmp(m->pin_root, LV_PIN_ROOT) && !lv_is_bpffs(LV_BPF_FS))
		mount("bpf", LV_BPF_FS, "bpf", 0, "mode=0700");
	pin = calloc(1, sizeof(*pin));
	if (!pin)
		return;

	pthread_mutex_lock(&lv_pin_lock);
	/*
	 * The root goes when its last monitor does, maybe between our
	 * mkdir and open: then make it again.
	 */
	rootfd = -1;
	for (i = 0; i < 4 && rootfd < 0; i++) {
		if (mkdir(m->pin_root, 0755) && errno != EEXIST)
			break;
		rootfd = open(m->pin_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (rootfd < 0)
		goto out;
	lv_pin_clean_stale(rootfd);
	fd = lv_pin_mkdir(m, rootfd, pin);
	close(rootfd);
	if (fd < 0)
		goto out;
	m->pin_dirfd = fd;
	pin->next = lv_pins;
	lv_pins = pin;
	pin = NULL;
	for (i = 0; i < SLUICE_ARRAY_SIZE(pins); i++) {
		snprintf(path, sizeof(path), "%s/%s", m->pin_dir, pins[i].name);
		/* bpf_obj_pin(), not bpf_map__pin(): quiet, and we unpin ourselves. */
		bpf_obj_pin(bpf_map__fd(pins[i].map), path);
	}
out:
	pthread_mutex_unlock(&lv_pin_lock);
	free(pin);
}

static void lv_unpin_maps(struct sluice_liveness *m)
{
	struct lv_pin **pp, *p;
	struct stat st;
	int rootfd;

	if (m->pin_dirfd < 0)
		return;
	pthread_mutex_lock(&lv_pin_lock);
	rootfd = open(m->pin_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd >= 0) {
		flock(m->pin_dirfd, LOCK_EX);
		lv_pin_rmdir(rootfd, strrchr(m->pin_dir, '/') + 1, m->pin_dirfd);
		close(rootfd);
	}
	if (!fstat(m->pin_dirfd, &st)) {
		for (pp = &lv_pins; (p = *pp); pp = &p->next) {
			if (p->dev == st.st_dev && p->ino == st.st_ino) {
				*pp = p->next;
				free(p);
				break;
			}
		}
	}
	/* Drops the owner's lock and the flock. */
	close(m->pin_dirfd);
	m->pin_dirfd = -1;
	/* The last monitor out removes the root; others' dirs keep it. */
	rmdir(m->pin_root);
	pthread_mutex_unlock(&lv_pin_lock);
}

/* ---------------------------------------------------------------- backends */

static struct sluice_lv_key lv_key(const struct sluice_liveness *m, pid_t pid)
{
	struct sluice_lv_key k;

	memset(&k, 0, sizeof(k));
	k.ns_ino = m->ns_ino;
	k.pid = (uint32_t)pid;
	return k;
}

/*
 * Remove the process's entry if it is still ours.  Called with the lock
 * held, so no insert races it; the program may delete it first, which is
 * fine.
 */
static void lv_bpf_del(struct sluice_liveness *m, pid_t pid, uint64_t start)
{
	struct sluice_lv_key k = lv_key(m, pid);
	struct sluice_lv_val v;

	if (!bpf_map_lookup_elem(m->watched_fd, &k, &v) && v.start == start)
		bpf_map_delete_elem(m->watched_fd, &k);
}

/*
 * The watch count bpftool shows.  BPF_EXIST: the program may have taken
 * the entry meanwhile, and it must not come back.
 */
static void lv_bpf_count(struct sluice_liveness *m, struct lv_proc *p)
{
	struct sluice_lv_key k = lv_key(m, p->pid);
	struct sluice_lv_val v = { .start = p->start, .watches = p->nwatch };

	if (p->in_map)
		bpf_map_update_elem(m->watched_fd, &k, &v, BPF_EXIST);
}

/* Undo what lv_backend_add() or lv_proc_finish() did. */
static void lv_backend_del(struct sluice_liveness *m, struct lv_proc *p)
{
	if (p->in_map) {
		lv_bpf_del(m, p->pid, p->start);
		p->in_map = false;
	}
	if (p->pidfd >= 0) {
		epoll_ctl(m->epfd, EPOLL_CTL_DEL, p->pidfd, NULL);
		close(p->pidfd);
		p->pidfd = -1;
		lv_htab_del(&m->tags, &p->tag_node);
	}
}

/* Have epoll report @p's pidfd (readable once the process has exited). */
static int lv_pidfd_poll(struct sluice_liveness *m, struct lv_proc *p, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN };

	p->tag_node.key = m->next_tag++;
	ev.data.u64 = p->tag_node.key;
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev))
		return -errno;
	p->pidfd = fd;
	lv_htab_add(&m->tags, &p->tag_node);
	return 0;
}

/*
 * BPF: every thread of the process was exiting when we looked, or a
 * report went missing (the ring buffer was full).  It runs no more user code, but
 * do_exit() has yet to release its memory (robust futexes first, then
 * the address space: ~100 ms for a gigabyte) before it turns zombie.
 * Rings and channels check a death they are told of with
 * sluice__proc_alive() or sluice__proc_start_time(), so the watches fire
 * once those agree.  They count a process dead once every thread is a
 * zombie or PF_EXITING, and lv_running() asks them, so they agree at once
 * and this costs nothing; a pidfd (readable with the zombie) covers a
 * process they would still call alive.  Returns 1 if a pidfd now waits,
 * 0 if the watches can fire (also if we cannot wait: it is dying).
 */
static int lv_proc_finish(struct sluice_liveness *m, struct lv_proc *p)
{
	int fd;

	if (p->pidfd >= 0)
		return 1;
	if (!sluice__proc_alive(p->pid, p->start))
		return 0;
	fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (fd < 0)
		return 0;
	/* Still ours after the open, so the pidfd is of the dying process. */
	if (!sluice__proc_alive(p->pid, p->start) || lv_pidfd_poll(m, p, fd)) {
		close(fd);
		return 0;
	}
	return 1;
}

/*
 * Start watching @p in the backend, then make sure it was alive once the
 * backend was watching.  Returns 1 if it is watched, 0 if it is dead
 * (nothing is left in the backend), or a negative errno.
 */
static int lv_backend_add(struct sluice_liveness *m, struct lv_proc *p)
{
	uint64_t start;
	int err, alive, fd;

	if (m->backend == SLUICE_LIVENESS_BPF) {
		struct sluice_lv_key k = lv_key(m, p->pid);
		struct sluice_lv_val v = { .start = p->start, .watches = 1 };

		if (bpf_map_update_elem(m->watched_fd, &k, &v, BPF_NOEXIST)) {
			err = -errno;
			if (err != -EEXIST)
				return err == -E2BIG ? -ENOSPC : err;
			/*
			 * An entry for the pid with another start time: a
			 * watched process holds the pid, so ours is gone.
			 * Never overwrite it: that process would go unseen.
			 */
			if (bpf_map_lookup_elem(m->watched_fd, &k, &v) ||
			    v.start != p->start)
				return 0;
			/* Ours, left by a failed delete: take it back. */
		}
		p->in_map = true;
		alive = lv_running(p->pid, p->start);
		if (alive > 0)
			return 1;
		lv_backend_del(m, p);
		/* Past the tracepoint already: wait for the zombie ourselves. */
		return alive < 0 ? alive : lv_proc_finish(m, p);
	}

	fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (fd < 0)
		return errno == ESRCH ? 0 : -errno;
	/* The pidfd is for whoever had the pid: is that still our process? */
	err = sluice__proc_stat(p->pid, &start, NULL);
	if (err || start != p->start) {
		close(fd);
		return err && err != -ESRCH ? err : 0;
	}
	err = lv_pidfd_poll(m, p, fd);
	if (err) {
		close(fd);
		return err;
	}
	/* Dead already: the pidfd is readable and epoll reports it. */
	return 1;
}

/* ---------------------------------------------------------------- firing */

/* The process died: queue its watches and forget it.  Lock held. */
static void lv_proc_died(struct sluice_liveness *m, struct lv_proc *p)
{
	lv_backend_del(m, p);
	lv_htab_del(&m->procs, &p->node);
	while (!lv_list_empty(&p->watches)) {
		struct lv_watch *w = lv_entry(p->watches.next, struct lv_watch, link);

		lv_list_del(&w->link);
		w->state = LV_QUEUED;
		w->proc = NULL;
		lv_list_add_tail(&w->link, &m->fireq);
	}
	free(p);
}

static void lv_watch_free(struct sluice_liveness *m, struct lv_watch *w)
{
	lv_htab_del(&m->watches, &w->node);
	free(w);
}

/* Monitor thread: fire the queue, one watch at a time, unlocked. */
static void lv_fire_queue(struct sluice_liveness *m)
{
	pthread_mutex_lock(&m->lock);
	while (!m->stop && !lv_list_empty(&m->fireq)) {
		struct lv_watch *w = lv_entry(m->fireq.next, struct lv_watch, link);

		lv_list_del(&w->link);
		w->state = LV_FIRING;
		if (!m->last.fire_ns)
			m->last.fire_ns = sluice__now_ns(CLOCK_MONOTONIC);
		pthread_mutex_unlock(&m->lock);

		/* Nothing else touches a firing watch but unwatch, which waits. */
		if (w->fn)
			w->fn(w->pid, w->start, w->arg);
		else
			sluice_cancel_trigger(w->token, w->reason ? w->reason : -EPIPE);

		pthread_mutex_lock(&m->lock);
		lv_watch_free(m, w);
		pthread_cond_broadcast(&m->fired);
	}
	pthread_mutex_unlock(&m->lock);
}

void sluice__liveness_last(struct sluice_liveness *m, struct sluice__lv_times *t)
{
	pthread_mutex_lock(&m->lock);
	*t = m->last;
	pthread_mutex_unlock(&m->lock);
}

static int lv_on_event(void *ctx, void *data, size_t size)
{
	struct sluice_liveness *m = ctx;
	struct sluice_lv_event ev;
	struct lv_proc *p;

	if (size < sizeof(ev))
		return 0;
	memcpy(&ev, data, sizeof(ev));
	if (ev.ns_ino != m->ns_ino)
		return 0;
	pthread_mutex_lock(&m->lock);
	/*
	 * Not found: it fired already, or was unwatched.  Not in the map:
	 * we saw it dying first and wait for it already.
	 */
	p = lv_proc_find(m, (pid_t)ev.pid, ev.start);
	if (p && p->in_map) {
		/*
		 * The program deleted the entry: nothing of ours to remove.
		 * It reports the last thread's exit, after every thread set
		 * PF_EXITING, so sluice__proc_alive() already calls the
		 * process dead: no need to ask /proc (tens of microseconds).
		 */
		p->in_map = false;
		m->last = (struct sluice__lv_times){
			.exit_ns = ev.ktime_ns,
			.seen_ns = sluice__now_ns(CLOCK_MONOTONIC),
		};
		lv_proc_died(m, p);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/*
 * The ring buffer was full when the program reported a death: its entry
 * is gone from the map but no event came.  Find those processes by
 * looking up every entry we hold.  Rare, so a scan is fine.
 */
static void lv_bpf_check_dropped(struct sluice_liveness *m)
{
	/*
	 * The program bumps it with an atomic add; relaxed is enough since
	 * all we learn is "look", and the map lookups below are syscalls
	 * that see the program's deletes.
	 */
	uint64_t dropped = __atomic_load_n(&m->skel->bss->dropped, __ATOMIC_RELAXED);
	size_t i;

	if (dropped == m->dropped_seen)
		return;
	m->dropped_seen = dropped;
	/* Whatever the ring still holds first, so those take the quick path. */
	ring_buffer__consume(m->rb);

	pthread_mutex_lock(&m->lock);
	for (i = 0; i <= m->procs.mask; i++) {
		struct lv_hnode *n, *next;

		for (n = m->procs.b[i]; n; n = next) {
			struct lv_proc *p = lv_entry(n, struct lv_proc, node);
			struct sluice_lv_key k = lv_key(m, p->pid);
			struct sluice_lv_val v;

			next = n->next;
			if (!p->in_map || !bpf_map_lookup_elem(m->watched_fd, &k, &v) ||
			    errno != ENOENT)
				continue;
			p->in_map = false;
			if (!lv_proc_finish(m, p))
				lv_proc_died(m, p);
		}
	}
	pthread_mutex_unlock(&m->lock);
}

static void lv_free(struct sluice_liveness *m);

static void *lv_thread(void *arg)
{
	struct sluice_liveness *m = arg;
	struct epoll_event evs[16];
	int timeout = m->backend == SLUICE_LIVENESS_BPF ? LV_DROP_POLL_MS : -1;
	int spent[SLUICE_ARRAY_SIZE(evs)];
	bool stop, self;

	for (;;) {
		int i, n, nspent = 0;

		n = epoll_wait(m->epfd, evs, SLUICE_ARRAY_SIZE(evs), timeout);
		/* Only EINTR (a debugger): every descriptor is ours and open. */
		for (i = 0; i < n; i++) {
			uint64_t tag = evs[i].data.u64, cnt;
			struct lv_hnode *h;

			if (tag == LV_TAG_CTL) {
				if (read(m->evfd, &cnt, sizeof(cnt)) < 0) {
					/* EAGAIN: another wakeup took it. */
				}
			} else if (tag == LV_TAG_RING) {
				ring_buffer__consume(m->rb);
			} else {
				pthread_mutex_lock(&m->lock);
				h = lv_htab_first(&m->tags, tag);
				if (h) {
					struct lv_proc *p = lv_entry(h, struct lv_proc, tag_node);

					m->last = (struct sluice__lv_times){
						.seen_ns = sluice__now_ns(CLOCK_MONOTONIC),
					};
					/*
					 * Its pidfd is closed after the watches
					 * fire: two system calls the waiters
					 * need not wait for.
					 */
					spent[nspent++] = p->pidfd;
					p->pidfd = -1;
					lv_htab_del(&m->tags, &p->tag_node);
					lv_proc_died(m, p);
				}
				pthread_mutex_unlock(&m->lock);
			}
		}
		if (m->backend == SLUICE_LIVENESS_BPF)
			lv_bpf_check_dropped(m);
		lv_fire_queue(m);
		/* Closing leaves epoll too: none is reported again. */
		while (nspent)
			close(spent[--nspent]);

		pthread_mutex_lock(&m->lock);
		stop = m->stop;
		self = m->self_destroy;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
	}
	if (self)
		lv_free(m);
	return NULL;
}

/* ---------------------------------------------------------------- create */

/*
 * How deep our pid namespace is below the root: the NSpid line of
 * /proc/self/status has our pid in each, from the root's down to ours.
 */
static int lv_pidns_level(void)
{
	char line[256];
	int level = -1;
	FILE *f;

	f = fopen("/proc/self/status", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *p, *end;

		if (strncmp(line, "NSpid:", 6))
			continue;
		for (p = line + 6, level = -1;; p = end, level++) {
			strtol(p, &end, 10);
			if (end == p)
				break;
		}
		break;
	}
	fclose(f);
	/* No NSpid (before 4.1): no namespaces to speak of. */
	return level < 0 ? 0 : level;
}

static int lv_bpf_start(struct sluice_liveness *m, const char *pin_root,
			bool pin)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LV_TAG_RING };
	/* r0 = 0; exit */
	const struct bpf_insn probe[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	const char *step;
	struct stat st;
	int err, fd;

	step = "no pid namespace";
	if (stat("/proc/self/ns/pid", &st)) {
		err = -errno;
		goto fail;
	}
	m->ns_ino = st.st_ino;
	/* The program looks this many levels down from the root, no more. */
	step = "pid namespace too deep";
	err = lv_pidns_level();
	if (err >= SLUICE_LV_LEVELS)
		err = -EOPNOTSUPP;
	if (err < 0)
		goto fail;

	/*
	 * Are we let to at all?  Plain syscalls, so a caller without the
	 * privilege falls back to pidfd without libbpf printing warnings:
	 * a ring buffer, and a two-instruction program of a type that needs
	 * what ours needs (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN).
	 */
	step = "map create";
	fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, NULL, 0, 0, 4096, NULL);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	close(fd);
	step = "load failed";
	fd = bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL, "GPL", probe,
			   SLUICE_ARRAY_SIZE(probe), NULL);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	close(fd);

	step = "open failed";
	m->skel = liveness_bpf__open();
	if (!m->skel) {
		err = -errno;
		goto fail;
	}
	m->skel->rodata->boot_off_ns = lv_boot_offset_ns();
	step = "load failed";
	err = liveness_bpf__load(m->skel);
	if (err)
		goto fail_destroy;
	step = "attach failed";
	err = liveness_bpf__attach(m->skel);
	if (err)
		goto fail_destroy;
	m->watched_fd = bpf_map__fd(m->skel->maps.watched);

	/* Polled directly in our epoll set; libbpf's own set is not used. */
	step = "ring buffer";
	m->rb = ring_buffer__new(bpf_map__fd(m->skel->maps.events), lv_on_event,
				 m, NULL);
	if (!m->rb) {
		err = -errno;
		goto fail_destroy;
	}
	if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, bpf_map__fd(m->skel->maps.events), &ev)) {
		err = -errno;
		goto fail_rb;
	}

	snprintf(m->pin_root, sizeof(m->pin_root), "%s", pin_root);
	if (pin)
		lv_pin_maps(m);
	return 0;

fail_rb:
	ring_buffer__free(m->rb);
	m->rb = NULL;
fail_destroy:
	liveness_bpf__destroy(m->skel);
	m->skel = NULL;
fail:
	if (err >= 0)
		err = -EINVAL;
	snprintf(m->why, sizeof(m->why), "BPF: %s: %s", step, strerror(-err));
	return err;
}

static int lv_pidfd_probe(void)
{
	int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* Frees everything but does not stop the thread. */
static void lv_free(struct sluice_liveness *m)
{
	size_t i;

	lv_unpin_maps(m);
	for (i = 0; m->procs.b && i <= m->procs.mask; i++) {
		struct lv_hnode *n, *next;

		for (n = m->procs.b[i]; n; n = next) {
			struct lv_proc *p = lv_entry(n, struct lv_proc, node);

			next = n->next;
			if (p->pidfd >= 0)
				close(p->pidfd);
			while (!lv_list_empty(&p->watches))
				lv_list_del(p->watches.next);
			free(p);
		}
	}
	for (i = 0; m->watches.b && i <= m->watches.mask; i++) {
		struct lv_hnode *n, *next;

		for (n = m->watches.b[i]; n; n = next) {
			next = n->next;
			free(lv_entry(n, struct lv_watch, node));
		}
	}
	free(m->watches.b);
	free(m->procs.b);
	free(m->tags.b);
	if (m->rb)
		ring_buffer__free(m->rb);
	/* Detaches and unloads the program; its maps go with their last pin. */
	if (m->skel)
		liveness_bpf__destroy(m->skel);
	if (m->evfd >= 0)
		close(m->evfd);
	if (m->epfd >= 0)
		close(m->epfd);
	pthread_cond_destroy(&m->fired);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

int sluice_liveness_create(const struct sluice_liveness_opts *opts,
			   struct sluice_liveness **out)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = LV_TAG_CTL };
	uint32_t backend, flags;
	const char *pin_root;
	struct sluice_liveness *m;
	sigset_t all, old;
	int err;

	if (!out || !sluice__opts_valid(opts, sizeof(*opts)))
		return -EINVAL;
	backend = SLUICE_OPT(opts, sluice_liveness_opts, backend, SLUICE_LIVENESS_AUTO);
	flags = SLUICE_OPT(opts, sluice_liveness_opts, flags, 0);
	pin_root = SLUICE_OPT(opts, sluice_liveness_opts, pin_root, NULL);
	if (!pin_root)
		pin_root = LV_PIN_ROOT;
	if (backend > SLUICE_LIVENESS_PIDFD || (flags & ~SLUICE_LIVENESS_NO_PIN) ||
	    !pin_root[0] || strlen(pin_root) >= PATH_MAX - 32)
		return -EINVAL;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->fired, NULL);
	m->evfd = -1;
	m->pin_dirfd = -1;
	m->watched_fd = -1;
	lv_list_init(&m->fireq);
	m->next_id = 1;
	m->next_tag = LV_TAG_FIRST_PROC;

	err = -ENOMEM;
	m->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (m->epfd < 0) {
		err = -errno;		/* -EMFILE, say: not memory */
		goto err_free;
	}
	if (lv_htab_init(&m->watches) || lv_htab_init(&m->procs) ||
	    lv_htab_init(&m->tags))
		goto err_free;
	m->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->evfd < 0 || epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->evfd, &ev)) {
		err = -errno;
		goto err_free;
	}

	if (backend != SLUICE_LIVENESS_PIDFD) {
		err = lv_bpf_start(m, pin_root, !(flags & SLUICE_LIVENESS_NO_PIN));
		if (!err) {
			m->backend = SLUICE_LIVENESS_BPF;
			/* why is for AUTO's fallback only. */
			m->why[0] = '\0';
		} else if (backend == SLUICE_LIVENESS_BPF) {
			goto err_free;
		}
	}
	if (!m->skel) {
		err = lv_pidfd_probe();
		if (err)
			goto err_free;
		m->backend = SLUICE_LIVENESS_PIDFD;
		if (backend != SLUICE_LIVENESS_AUTO)
			m->why[0] = '\0';
	}

	/* The thread takes no signals: they are the application's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&m->thread, NULL, lv_thread, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		goto err_free;
	pthread_setname_np(m->thread, "sluice-liveness");
	*out = m;
	return 0;

err_free:
	lv_free(m);
	return err;
}

void sluice_liveness_destroy(struct sluice_liveness *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	if (pthread_equal(pthread_self(), m->thread)) {
		/* From one of its functions: the thread frees it on its way out. */
		m->self_destroy = true;
		pthread_mutex_unlock(&m->lock);
		pthread_detach(m->thread);
		return;
	}
	pthread_mutex_unlock(&m->lock);
	lv_kick(m);
	pthread_join(m->thread, NULL);
	lv_free(m);
}

enum sluice_liveness_backend sluice_liveness_backend(const struct sluice_liveness *m)
{
	return m ? m->backend : SLUICE_LIVENESS_AUTO;
}

const char *sluice_liveness_backend_str(enum sluice_liveness_backend b)
{
	switch (b) {
	case SLUICE_LIVENESS_AUTO:
		return "auto";
	case SLUICE_LIVENESS_BPF:
		return "bpf";
	case SLUICE_LIVENESS_PIDFD:
		return "pidfd";
	}
	return "?";
}

const char *sluice_liveness_why(const struct sluice_liveness *m)
{
	return m ? m->why : "";
}

/* ---------------------------------------------------------------- watches */

static int lv_watch_add(struct sluice_liveness *m, pid_t pid, uint64_t start,
			sluice_liveness_fn fn, struct sluice_cancel *token,
			int reason, void *arg, uint64_t *id)
{
	struct lv_proc *p = NULL;
	struct lv_watch *w;
	int err, alive = 0;

	if (!lv_proc_is_ours())
		return -EXDEV;
	if (!start) {
		/* As it stands, dying or not: a dying one fires at once. */
		err = sluice__proc_stat(pid, &start, NULL);
		if (err && err != -ESRCH)
			return err;
		/* No such process: it fires at once, with start 0. */
	}

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->pid = pid;
	w->start = start;
	w->fn = fn;
	w->token = token;
	w->reason = reason;
	w->arg = arg;

	pthread_mutex_lock(&m->lock);
	if (start)
		p = lv_proc_find(m, pid, start);
	if (!p && start) {
		p = calloc(1, sizeof(*p));
		if (!p) {
			err = -ENOMEM;
			goto err_unlock;
		}
		p->pid = pid;
		p->start = start;
		p->pidfd = -1;
		lv_list_init(&p->watches);
		alive = lv_backend_add(m, p);
		if (alive < 0) {
			err = alive;
			free(p);
			goto err_unlock;
		}
		if (!alive) {
			free(p);
			p = NULL;
		} else {
			p->node.key = lv_proc_hash(pid, start);
			lv_htab_add(&m->procs, &p->node);
		}
	} else if (p) {
		alive = 1;
	}

	w->node.key = m->next_id++;
	lv_htab_add(&m->watches, &w->node);
	if (alive) {
		w->state = LV_WATCHING;
		w->proc = p;
		lv_list_add_tail(&w->link, &p->watches);
		p->nwatch++;
		if (p->nwatch > 1 && m->backend == SLUICE_LIVENESS_BPF)
			lv_bpf_count(m, p);
	} else {
		/* Dead, or the pid is someone else's now: fire from the thread. */
		w->state = LV_QUEUED;
		lv_list_add_tail(&w->link, &m->fireq);
		lv_kick(m);
	}
	if (id)
		*id = w->node.key;
	pthread_mutex_unlock(&m->lock);
	return 0;

err_unlock:
	pthread_mutex_unlock(&m->lock);
	free(w);
	return err;
}

int sluice_liveness_watch_fn(struct sluice_liveness *m, pid_t pid, uint64_t start,
			     sluice_liveness_fn fn, void *arg, uint64_t *id)
{
	if (!m || pid <= 0 || !fn)
		return -EINVAL;
	return lv_watch_add(m, pid, start, fn, NULL, 0, arg, id);
}

int sluice_liveness_watch(struct sluice_liveness *m, pid_t pid, uint64_t start,
			  struct sluice_cancel *token, int reason, uint64_t *id)
{
	if (!m || pid <= 0 || !token || reason > 0)
		return -EINVAL;
	return lv_watch_add(m, pid, start, NULL, token, reason, NULL, id);
}

int sluice_liveness_unwatch(struct sluice_liveness *m, uint64_t id)
{
	struct lv_watch *w;
	struct lv_proc *p;

	if (!m || !id)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	w = lv_watch_find(m, id);
	if (w && w->state == LV_FIRING && pthread_equal(pthread_self(), m->thread)) {
		/* Its own function: it is running, and we cannot wait on it. */
		pthread_mutex_unlock(&m->lock);
		return -EDEADLK;
	}
	/* Firing elsewhere: wait until it is done, then it has fired. */
	while (w && w->state == LV_FIRING) {
		pthread_cond_wait(&m->fired, &m->lock);
		w = lv_watch_find(m, id);
	}
	if (!w) {
		pthread_mutex_unlock(&m->lock);
		return -ENOENT;
	}

	lv_list_del(&w->link);
	p = w->proc;
	if (p) {
		p->nwatch--;
		if (!p->nwatch) {
			lv_backend_del(m, p);
			lv_htab_del(&m->procs, &p->node);
			free(p);
		} else if (m->backend == SLUICE_LIVENESS_BPF) {
			lv_bpf_count(m, p);
		}
	}
	lv_watch_free(m, w);
	pthread_mutex_unlock(&m->lock);
	return 0;
}
