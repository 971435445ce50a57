// SPDX-License-Identifier: MIT
/*
 * Liveness monitor, BPF backend: the eBPF program (bpf/liveness.bpf.c),
 * loaded from the skeleton embedded in the library, its maps and their
 * pins, and the ring buffer it reports deaths through.  The monitor
 * (lib/liveness.c) calls it through lib/liveness_bpf.h.
 *
 * Each monitor loads its own copy of the program.  The monitor puts an
 * entry { pid namespace, pid } -> start time in the "watched" map for each
 * process it watches; the program deletes it when that process's last
 * thread exits and posts the death to the ring buffer.  The monitor's
 * thread consumes the ring buffer, and each report goes straight to
 * sluice__lv_exited().  A report the ring buffer had no room for is
 * counted in "dropped", and the monitor then looks for the entries it
 * lost with sluice__lv_bpf_holds().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/magic.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "liveness_bpf.h"
#include "liveness_internal.h"
#include "liveness.skel.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC		0xcafe4a11
#endif

#define LV_BPF_FS		"/sys/fs/bpf"
#define LV_PIN_ROOT		LV_BPF_FS "/sluice"

struct sluice__lv_bpf {
	struct sluice_liveness *m;	/* told of each death */
	uint64_t ns_ino;		/* our pid namespace: /proc/self/ns/pid */
	struct liveness_bpf *skel;
	struct ring_buffer *rb;
	int watched_fd;
	uint64_t dropped_seen;		/* monitor thread only */
	int pin_dirfd;			/* flock()ed while we live */
	char pin_root[PATH_MAX];
	char pin_dir[PATH_MAX];
};

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
static int lv_pin_mkdir(struct sluice__lv_bpf *b, int rootfd, struct lv_pin *pin)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET };
	struct stat st;
	int tries, fd;

	for (tries = 0; tries < 16; tries++) {
		const char *name;

		if ((size_t)snprintf(b->pin_dir, sizeof(b->pin_dir), "%s/%d-%u",
				     b->pin_root, (int)getpid(), lv_pin_seq++) >=
		    sizeof(b->pin_dir))
			return -1;
		name = strrchr(b->pin_dir, '/') + 1;
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

static void lv_pin_maps(struct sluice__lv_bpf *b)
{
	struct { const char *name; struct bpf_map *map; } pins[] = {
		{ "watched", b->skel->maps.watched },
		{ "exits", b->skel->maps.exits },
	};
	char path[PATH_MAX + 16];
	struct lv_pin *pin;
	int rootfd, fd;
	size_t i;

	pthread_once(&lv_pin_once, lv_pin_atfork);
	if (!strcmp(b->pin_root, LV_PIN_ROOT) && !lv_is_bpffs(LV_BPF_FS))
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
		if (mkdir(b->pin_root, 0755) && errno != EEXIST)
			break;
		rootfd = open(b->pin_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (rootfd < 0)
		goto out;
	lv_pin_clean_stale(rootfd);
	fd = lv_pin_mkdir(b, rootfd, pin);
	close(rootfd);
	if (fd < 0)
		goto out;
	b->pin_dirfd = fd;
	pin->next = lv_pins;
	lv_pins = pin;
	pin = NULL;
	for (i = 0; i < SLUICE_ARRAY_SIZE(pins); i++) {
		snprintf(path, sizeof(path), "%s/%s", b->pin_dir, pins[i].name);
		/* bpf_obj_pin(), not bpf_map__pin(): quiet, and we unpin ourselves. */
		bpf_obj_pin(bpf_map__fd(pins[i].map), path);
	}
out:
	pthread_mutex_unlock(&lv_pin_lock);
	free(pin);
}

static void lv_unpin_maps(struct sluice__lv_bpf *b)
{
	struct lv_pin **pp, *p;
	struct stat st;
	int rootfd;

	if (b->pin_dirfd < 0)
		return;
	pthread_mutex_lock(&lv_pin_lock);
	rootfd = open(b->pin_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd >= 0) {
		flock(b->pin_dirfd, LOCK_EX);
		lv_pin_rmdir(rootfd, strrchr(b->pin_dir, '/') + 1, b->pin_dirfd);
		close(rootfd);
	}
	if (!fstat(b->pin_dirfd, &st)) {
		for (pp = &lv_pins; (p = *pp); pp = &p->next) {
			if (p->dev == st.st_dev && p->ino == st.st_ino) {
				*pp = p->next;
				free(p);
				break;
			}
		}
	}
	/* Drops the owner's lock and the flock. */
	close(b->pin_dirfd);
	b->pin_dirfd = -1;
	/* The last monitor out removes the root; others' dirs keep it. */
	rmdir(b->pin_root);
	pthread_mutex_unlock(&lv_pin_lock);
}

/* ---------------------------------------------------------------- entries */

static struct sluice_lv_key lv_key(const struct sluice__lv_bpf *b, pid_t pid)
{
	struct sluice_lv_key k;

	memset(&k, 0, sizeof(k));
	k.ns_ino = b->ns_ino;
	k.pid = (uint32_t)pid;
	return k;
}

int sluice__lv_bpf_add(struct sluice__lv_bpf *b, pid_t pid, uint64_t start)
{
	struct sluice_lv_key k = lv_key(b, pid);
	struct sluice_lv_val v = { .start = start, .watches = 1 };
	int err;

	if (bpf_map_update_elem(b->watched_fd, &k, &v, BPF_NOEXIST)) {
		err = -errno;
		if (err != -EEXIST)
			return err == -E2BIG ? -ENOSPC : err;
		/*
		 * An entry for the pid with another start time: a watched
		 * process holds the pid, so ours is gone.  Never overwrite
		 * it: that process would go unseen.
		 */
		if (bpf_map_lookup_elem(b->watched_fd, &k, &v) || v.start != start)
			return 0;
		/* Ours, left by a failed delete: take it back. */
	}
	return 1;
}

/*
 * Called with the monitor's lock held, so no insert races it; the program
 * may delete the entry first, which is fine.
 */
void sluice__lv_bpf_del(struct sluice__lv_bpf *b, pid_t pid, uint64_t start)
{
	struct sluice_lv_key k = lv_key(b, pid);
	struct sluice_lv_val v;

	if (!bpf_map_lookup_elem(b->watched_fd, &k, &v) && v.start == start)
		bpf_map_delete_elem(b->watched_fd, &k);
}

/*
 * BPF_EXIST: the program may have taken the entry meanwhile, and it must
 * not come back.
 */
void sluice__lv_bpf_count(struct sluice__lv_bpf *b, pid_t pid, uint64_t start,
			  uint64_t watches)
{
	struct sluice_lv_key k = lv_key(b, pid);
	struct sluice_lv_val v = { .start = start, .watches = watches };

	bpf_map_update_elem(b->watched_fd, &k, &v, BPF_EXIST);
}

/* Only a lookup that finds no entry says it is gone; other failures keep it. */
bool sluice__lv_bpf_holds(struct sluice__lv_bpf *b, pid_t pid)
{
	struct sluice_lv_key k = lv_key(b, pid);
	struct sluice_lv_val v;

	return !bpf_map_lookup_elem(b->watched_fd, &k, &v) || errno != ENOENT;
}

/* ---------------------------------------------------------------- reports */

static int lv_on_event(void *ctx, void *data, size_t size)
{
	struct sluice__lv_bpf *b = ctx;
	struct sluice_lv_event ev;

	if (size < sizeof(ev))
		return 0;
	memcpy(&ev, data, sizeof(ev));
	if (ev.ns_ino != b->ns_ino)
		return 0;
	sluice__lv_exited(b->m, (pid_t)ev.pid, ev.start, ev.ktime_ns);
	return 0;
}

void sluice__lv_bpf_consume(struct sluice__lv_bpf *b)
{
	ring_buffer__consume(b->rb);
}

/*
 * The ring buffer was full when the program reported a death: its entry
 * is gone from the map but no event came.
 */
bool sluice__lv_bpf_dropped(struct sluice__lv_bpf *b)
{
	/*
	 * The program bumps it with an atomic add; relaxed is enough since
	 * all we learn is "look", and the map lookups that follow are
	 * syscalls that see the program's deletes.
	 */
	uint64_t dropped = __atomic_load_n(&b->skel->bss->dropped, __ATOMIC_RELAXED);

	if (dropped == b->dropped_seen)
		return false;
	b->dropped_seen = dropped;
	/* Whatever the ring still holds first, so those take the quick path. */
	ring_buffer__consume(b->rb);
	return true;
}

/* ---------------------------------------------------------------- open */

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

int sluice__lv_bpf_open(struct sluice_liveness *m, int epfd, uint64_t tag,
			const char *pin_root, bool pin, char *why, size_t why_sz,
			struct sluice__lv_bpf **out)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };
	/* r0 = 0; exit */
	const struct bpf_insn probe[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	struct sluice__lv_bpf *b;
	const char *step;
	struct stat st;
	int err, fd;

	step = "alloc";
	b = calloc(1, sizeof(*b));
	if (!b) {
		err = -ENOMEM;
		goto fail;
	}
	b->m = m;
	b->watched_fd = -1;
	b->pin_dirfd = -1;
	snprintf(b->pin_root, sizeof(b->pin_root), "%s",
		 pin_root ? pin_root : LV_PIN_ROOT);

	step = "no pid namespace";
	if (stat("/proc/self/ns/pid", &st)) {
		err = -errno;
		goto fail_free;
	}
	b->ns_ino = st.st_ino;
	/* The program looks this many levels down from the root, no more. */
	step = "pid namespace too deep";
	err = lv_pidns_level();
	if (err >= SLUICE_LV_LEVELS)
		err = -EOPNOTSUPP;
	if (err < 0)
		goto fail_free;

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
		goto fail_free;
	}
	close(fd);
	step = "load failed";
	fd = bpf_prog_load(BPF_PROG_TYPE_RAW_TRACEPOINT, NULL, "GPL", probe,
			   SLUICE_ARRAY_SIZE(probe), NULL);
	if (fd < 0) {
		err = -errno;
		goto fail_free;
	}
	close(fd);

	step = "open failed";
	b->skel = liveness_bpf__open();
	if (!b->skel) {
		err = -errno;
		goto fail_free;
	}
	b->skel->rodata->boot_off_ns = lv_boot_offset_ns();
	step = "load failed";
	err = liveness_bpf__load(b->skel);
	if (err)
		goto fail_destroy;
	step = "attach failed";
	err = liveness_bpf__attach(b->skel);
	if (err)
		goto fail_destroy;
	b->watched_fd = bpf_map__fd(b->skel->maps.watched);

	/* Polled directly in the monitor's epoll set; libbpf's is not used. */
	step = "ring buffer";
	b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.events), lv_on_event,
				 b, NULL);
	if (!b->rb) {
		err = -errno;
		goto fail_destroy;
	}
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, bpf_map__fd(b->skel->maps.events), &ev)) {
		err = -errno;
		goto fail_rb;
	}

	if (pin)
		lv_pin_maps(b);
	*out = b;
	return 0;

fail_rb:
	ring_buffer__free(b->rb);
fail_destroy:
	liveness_bpf__destroy(b->skel);
fail_free:
	free(b);
fail:
	if (err >= 0)
		err = -EINVAL;
	snprintf(why, why_sz, "BPF: %s: %s", step, strerror(-err));
	return err;
}

void sluice__lv_bpf_close(struct sluice__lv_bpf *b)
{
	if (!b)
		return;
	lv_unpin_maps(b);
	ring_buffer__free(b->rb);
	/* Detaches and unloads the program; its maps go with their last pin. */
	liveness_bpf__destroy(b->skel);
	free(b);
}
