// SPDX-License-Identifier: MIT
/*
 * Regions: creation, validation on open, the object directory.
 *
 * Creation runs in one order so that nothing half-made is ever visible as a
 * region:  make a nameless file (O_TMPFILE)  ->  size it  ->  map it  ->
 * bind to the node (before first touch)  ->  fault every page in  ->  verify
 * placement and page size  ->  write the header  ->  publish "ready"  ->
 * give it its name (linkat, under the name lock).  A creator that dies on
 * the way leaves nothing behind: the kernel frees a nameless file on close.
 * An opener checks "ready" and everything else it reads.  See
 * Documentation/regions.md for the reasons.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <numa.h>
#include <numaif.h>

#include <sluice/region.h>

#include "internal.h"
#include "introspect.h"
#include "region_layout.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define LOCK_FILE		".sluice.lock"
#define DIR_LOCK_TIMEOUT_NS	(2 * 1000000000ull)
#define NAMES_LOCK_TIMEOUT_NS	(2 * 1000000000ull)
#define NODE_UNKNOWN		(-1)

struct sluice_region {
	struct sluice_region_hdr *hdr;	/* == base */
	size_t size;
	int fd;				/* our own open file description */
	pid_t pid;			/* whose: a forked child must reopen */
	pthread_mutex_t lock;		/* our threads, before the flock */
	bool named;
	/* Validated copies of the immutable header: getters never re-read it. */
	char name[SLUICE_REGION_NAME_MAX + 1];
	size_t page_size;
	enum sluice_backing backing;
	enum sluice_pages pages;
	int node_requested;
	int node;
	int huge_fallback_err;
	uint32_t mode;
	pid_t creator_pid;
	uid_t creator_uid;
	uint64_t creator_start;
	uint64_t created_ns;
};

static size_t round_up(size_t v, size_t align)
{
	return (v + align - 1) & ~(align - 1);
}

uint64_t sluice__region_csum(const struct sluice_region_hdr *h)
{
	return sluice__fnv1a(h, SLUICE_REGION_CSUM_LEN);
}

static int region_path(char *buf, size_t len, const char *dir, const char *name)
{
	int n = snprintf(buf, len, "%s/" SLUICE_FILE_PREFIX "%s", dir, name);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/*
 * Name operations (create, unlink) on this machine are serialised by an
 * flock on one file in the shm directory, so one name is never in both the
 * hugetlbfs and the shm directory.  The kernel drops the lock if we die.
 */
static int names_lock(void)
{
	uint64_t deadline = sluice__now_ns(CLOCK_MONOTONIC) + NAMES_LOCK_TIMEOUT_NS;
	struct timespec pause = { .tv_nsec = 1000000 };
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/" LOCK_FILE, sluice__shm_dir());
	/* Read-only is enough for flock, whoever made the file. */
	fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return -errno;
	/* Anyone may hold the lock: never wait on it for ever. */
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			close(fd);
			return -errno;
		}
		if (sluice__now_ns(CLOCK_MONOTONIC) >= deadline) {
			close(fd);
			return -ETIMEDOUT;
		}
		nanosleep(&pause, NULL);
	}
	return fd;
}

static void names_unlock(int fd)
{
	close(fd);	/* drops the flock */
}

/* ------------------------------------------------------------- NUMA */

static int node_check(int node)
{
	if (numa_available() < 0)
		return node == 0 ? 0 : -ENODEV;
	if (node < 0 || node > numa_max_node() ||
	    !numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned int)node))
		return -ENODEV;
	return 0;
}

static int node_bind(void *base, size_t size, int node)
{
	unsigned long mask[16] = { 0 };	/* 1024 nodes, as many as libnuma does */

	if (numa_available() < 0)
		return 0;	/* one node: nothing to bind to */
	/* The kernel reads one bit less than maxnode says. */
	if ((size_t)node >= sizeof(mask) * CHAR_BIT - 1)
		return -ENODEV;
	mask[node / (sizeof(long) * CHAR_BIT)] |= 1ul << (node % (sizeof(long) * CHAR_BIT));
	if (mbind(base, size, MPOL_BIND, mask, sizeof(mask) * CHAR_BIT, MPOL_MF_STRICT))
		return -errno;
	return 0;
}

/*
 * Ask the kernel where every page is.  Returns the node they all share, or
 * NODE_UNKNOWN if they differ or the kernel cannot say.
 */
static int node_verify(void *base, size_t size, size_t page_size)
{
	enum { BATCH = 1024 };
	void *pages[BATCH];
	int status[BATCH];
	size_t off = 0, i, n;
	int node = NODE_UNKNOWN;

	if (numa_available() < 0)
		return 0;
	while (off < size) {
		for (n = 0; n < BATCH && off < size; n++, off += page_size)
			pages[n] = (char *)base + off;
		if (move_pages(0, n, pages, NULL, status, 0))
			return NODE_UNKNOWN;
		for (i = 0; i < n; i++) {
			if (status[i] < 0)
				return NODE_UNKNOWN;
			if (node == NODE_UNKNOWN)
				node = status[i];
			else if (node != status[i])
				return NODE_UNKNOWN;
		}
	}
	return node;
}

/* ------------------------------------------------------------- creation */

struct create_args {
	const char *name;		/* region name or anon label */
	bool anon;
	size_t size;
	unsigned int flags;
	int node;
	enum sluice_pages pages;
	mode_t mode;
};

/* One backing, set up and faulted in; undone whole on failure. */
struct backing {
	int fd;
	void *base;
	size_t size;
	size_t page_size;
	enum sluice_backing kind;
	const char *dir;		/* where it gets its name; NULL for a memfd */
};

/* Nameless until published, so closing it is all the undoing it needs. */
static void backing_undo(struct backing *b)
{
	if (b->base)
		munmap(b->base, b->size);
	if (b->fd >= 0)
		close(b->fd);
	b->base = NULL;
	b->fd = -1;
}

static int backing_open(const struct create_args *a, bool huge,
			const char *hugedir, struct backing *b)
{
	unsigned int mfd = MFD_CLOEXEC | MFD_ALLOW_SEALING;

	if (a->anon) {
		b->kind = huge ? SLUICE_BACKING_MEMFD_HUGETLB : SLUICE_BACKING_MEMFD;
		b->fd = memfd_create(a->name, mfd | (huge ? MFD_HUGETLB : 0));
		return b->fd < 0 ? -errno : 0;
	}

	b->kind = huge ? SLUICE_BACKING_HUGETLBFS : SLUICE_BACKING_SHM;
	b->dir = huge ? hugedir : sluice__shm_dir();
	b->fd = open(b->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, a->mode);
	if (b->fd < 0)
		return -errno;
	/* The mode asked for, not what the umask left of it. */
	if (fchmod(b->fd, a->mode))
		return -errno;
	return 0;
}

static int backing_setup(const struct create_args *a, bool huge,
			 const char *hugedir, struct backing *b)
{
	int err;

	b->fd = -1;
	b->base = NULL;
	b->dir = NULL;
	b->page_size = huge ? sluice__hugepage_size() : (size_t)sysconf(_SC_PAGESIZE);
	if (!b->page_size)
		return -ENOENT;
	if (a->size > SIZE_MAX - b->page_size || a->size > ((size_t)1 << 46))
		return -E2BIG;
	b->size = round_up(a->size, b->page_size);

	err = backing_open(a, huge, hugedir, b);
	if (err)
		goto err_undo;
	if (ftruncate(b->fd, (off_t)b->size)) {
		err = errno == EFBIG ? -E2BIG : -errno;
		goto err_undo;
	}
	/* A receiver of an anonymous region must not be SIGBUSed by truncation. */
	if (a->anon && fcntl(b->fd, F_ADD_SEALS,
			     F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) {
		err = -errno;
		goto err_undo;
	}
	/* hugetlbfs reserves the pages here: a short pool fails with ENOMEM. */
	b->base = mmap(NULL, b->size, PROT_READ | PROT_WRITE, MAP_SHARED, b->fd, 0);
	if (b->base == MAP_FAILED) {
		b->base = NULL;
		err = -errno;
		goto err_undo;
	}
	if (!huge)
		(void)madvise(b->base, b->size, a->pages == SLUICE_PAGES_NO_HUGE ?
			      MADV_NOHUGEPAGE : MADV_HUGEPAGE);
	if (a->flags & SLUICE_REGION_NODE) {
		err = node_bind(b->base, b->size, a->node);
		if (err)
			goto err_undo;
	}
	/*
	 * Fault everything in now.  MADV_POPULATE_WRITE reports a failure
	 * as an error where touching the pages would raise SIGBUS.
	 */
	if (madvise(b->base, b->size, MADV_POPULATE_WRITE)) {
		err = errno == EFAULT || errno == EHWPOISON ? -ENOMEM : -errno;
		goto err_undo;
	}
	return 0;

err_undo:
	backing_undo(b);
	return err;
}

/*
 * Fill a new handle from @h, a private copy of the header that has been
 * checked (or that we wrote ourselves): the getters never read shared
 * memory again.
 */
static void handle_fill(struct sluice_region *r, void *base, size_t size,
			int fd, bool named, const struct sluice_region_hdr *h)
{
	r->hdr = base;
	r->size = size;
	r->fd = fd;
	r->pid = getpid();
	pthread_mutex_init(&r->lock, NULL);
	r->named = named;
	memcpy(r->name, h->name, sizeof(r->name));
	r->page_size = h->page_size;
	r->backing = h->backing;
	r->pages = h->pages;
	r->node_requested = h->node_requested;
	r->node = h->node;
	r->huge_fallback_err = h->huge_fallback_err;
	r->mode = h->mode;
	r->creator_pid = h->creator_pid;
	r->creator_uid = h->creator_uid;
	r->creator_start = h->creator_start;
	r->created_ns = h->created_ns;
}

static void hdr_init(struct sluice_region_hdr *h, const struct create_args *a,
		     const struct backing *b, int node, int fallback_err)
{
	uint64_t start = 0;

	h->magic = SLUICE_REGION_MAGIC;
	h->abi = SLUICE_REGION_ABI;
	h->hdr_size = sizeof(*h);
	h->size = b->size;
	h->page_size = b->page_size;
	h->backing = b->kind;
	h->pages = a->pages;
	h->node_requested = a->flags & SLUICE_REGION_NODE ? a->node : -1;
	h->node = node;
	h->huge_fallback_err = fallback_err;
	h->mode = a->anon ? 0600 : a->mode;
	h->creator_pid = getpid();
	h->creator_uid = getuid();
	(void)sluice__proc_start_time(getpid(), &start);
	h->creator_start = start;
	h->created_ns = sluice__now_ns(CLOCK_REALTIME);
	h->heap_off = SLUICE_REGION_HEAP_OFF;
	strncpy(h->name, a->name, sizeof(h->name) - 1);
	h->csum = sluice__region_csum(h);

	atomic_store_explicit(&h->heap_top, SLUICE_REGION_HEAP_OFF, memory_order_relaxed);
	atomic_store_explicit(&h->nr_objs, 0, memory_order_relaxed);

	/*
	 * Publish.  Pairs with the acquire load in region_map_ready(): an opener
	 * that sees READY sees every header store above.
	 */
	atomic_store_explicit(&h->ready, SLUICE_REGION_READY, memory_order_release);
}

/* A name is free only if it is free in both places. */
static int name_free(const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int err;

	err = region_path(path, sizeof(path), sluice__shm_dir(), name);
	if (err)
		return err;
	if (!access(path, F_OK))
		return -EEXIST;
	if (!sluice__hugetlbfs_dir(dir, sizeof(dir)) &&
	    !region_path(path, sizeof(path), dir, name) && !access(path, F_OK))
		return -EEXIST;
	return 0;
}

/*
 * Give a finished region its name.  linkat() fails if the name exists, and
 * the name lock keeps the other directory from getting it meanwhile.
 */
static int region_publish(const struct backing *b, const char *name)
{
	char path[PATH_MAX], self[64];
	int lock_fd, err;

	err = region_path(path, sizeof(path), b->dir, name);
	if (err)
		return err;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", b->fd);
	lock_fd = names_lock();
	if (lock_fd < 0)
		return lock_fd;
	err = name_free(name);
	if (!err && linkat(AT_FDCWD, self, AT_FDCWD, path, AT_SYMLINK_FOLLOW))
		err = -errno;
	names_unlock(lock_fd);
	return err;
}

static int region_create(const struct create_args *a,
			 struct sluice_region **out)
{
	int fallback_err = 0, node, err;
	struct sluice_region_hdr local;
	char hugedir[PATH_MAX];
	struct sluice_region *r;
	struct backing b;
	size_t kps, huge_bytes;
	bool try_huge;

	/* Fail a taken name early; region_publish() checks again for real. */
	if (!a->anon) {
		err = name_free(a->name);
		if (err)
			return err;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;

	try_huge = a->pages != SLUICE_PAGES_NO_HUGE;
	if (try_huge && !a->anon)
		fallback_err = sluice__hugetlbfs_dir(hugedir, sizeof(hugedir));
	else if (try_huge && !sluice__hugepage_size())
		fallback_err = -ENOENT;

	err = fallback_err;
	if (try_huge && !fallback_err) {
		err = backing_setup(a, true, hugedir, &b);
		fallback_err = err;
	}
	if (err && a->pages == SLUICE_PAGES_REQUIRE_HUGE)
		goto err_free;
	if (!try_huge || err) {
		err = backing_setup(a, false, NULL, &b);
		if (err)
			goto err_free;
	}

	node = node_verify(b.base, b.size, b.page_size);
	if ((a->flags & SLUICE_REGION_NODE) && node != a->node) {
		err = -EIO;
		goto err_undo;
	}
	/* What the kernel really maps: all of it in huge pages counts as huge. */
	if (!sluice__smaps_query(b.base, &kps, &huge_bytes)) {
		if (huge_bytes >= b.size && sluice__hugepage_size())
			b.page_size = sluice__hugepage_size();
		else if (kps)
			b.page_size = kps;
	}

	hdr_init(b.base, a, &b, node, fallback_err);
	/* Our copy, taken while the file has no name and nobody else maps it. */
	memcpy(&local, b.base, offsetof(struct sluice_region_hdr, ready));
	if (!a->anon) {
		err = region_publish(&b, a->name);
		if (err)
			goto err_undo;
	}
	handle_fill(r, b.base, b.size, b.fd, !a->anon, &local);
	*out = r;
	return 0;

err_undo:
	backing_undo(&b);
err_free:
	free(r);
	return err;
}

static int create_args_init(struct create_args *a, const char *name, bool anon,
			    size_t size, const struct sluice_region_opts *opts)
{
	int err;

	if (!SLUICE_OPTS_VALID(opts, sluice_region_opts, mode))
		return -EINVAL;
	err = sluice__name_check(name, SLUICE_REGION_NAME_MAX);
	if (err)
		return err;
	a->name = name;
	a->anon = anon;
	a->size = size;
	a->flags = SLUICE_OPT(opts, sluice_region_opts, flags, 0);
	a->node = SLUICE_OPT(opts, sluice_region_opts, node, 0);
	a->pages = SLUICE_OPT(opts, sluice_region_opts, pages, SLUICE_PAGES_PREFER_HUGE);
	a->mode = SLUICE_OPT(opts, sluice_region_opts, mode, 0);
	if (!a->mode)
		a->mode = 0600;

	if (a->flags & ~SLUICE_REGION_NODE)
		return -EINVAL;
	if (!(a->flags & SLUICE_REGION_NODE) && a->node)
		return -EINVAL;
	if ((unsigned int)a->pages > SLUICE_PAGES_NO_HUGE || a->mode > 0777)
		return -EINVAL;
	if (size <= SLUICE_REGION_HEAP_OFF)
		return -EINVAL;
	if (a->flags & SLUICE_REGION_NODE)
		return node_check(a->node);
	return 0;
}

/* A region by @name, or (@anon) without one, @name its label. */
static int create(const char *name, bool anon, size_t size,
		  const struct sluice_region_opts *opts, struct sluice_region **out)
{
	struct create_args a;
	int err;

	if (!out)
		return -EINVAL;
	err = create_args_init(&a, name, anon, size, opts);
	return err ? err : region_create(&a, out);
}

int sluice_region_create(const char *name, size_t size,
			 const struct sluice_region_opts *opts,
			 struct sluice_region **out)
{
	return create(name, false, size, opts, out);
}

int sluice_region_create_anon(const char *label, size_t size,
			      const struct sluice_region_opts *opts,
			      struct sluice_region **out)
{
	return create(label ? label : "anon", true, size, opts, out);
}

/* ------------------------------------------------------------- opening */

/*
 * Check a private copy of the immutable header against what we know of the
 * file.  Order matters: the ABI decides the layout, so it is checked before
 * anything whose place depends on it.
 */
static int hdr_validate(const struct sluice_region_hdr *h, size_t file_size,
			const char *want_name)
{
	if (h->magic != SLUICE_REGION_MAGIC)
		return -EBADMSG;
	if (h->abi != SLUICE_REGION_ABI)
		return -EPROTO;
	if (h->csum != sluice__region_csum(h))
		return -EBADMSG;
	if (h->hdr_size != sizeof(*h) || h->size != file_size)
		return -EBADMSG;
	if (!sluice__is_pow2(h->page_size) || h->page_size < 4096 ||
	    h->page_size > (1u << 30) || h->size % h->page_size)
		return -EBADMSG;
	if (h->heap_off != SLUICE_REGION_HEAP_OFF || h->heap_off >= h->size)
		return -EBADMSG;
	if (h->backing < SLUICE_BACKING_HUGETLBFS ||
	    h->backing > SLUICE_BACKING_MEMFD_HUGETLB ||
	    h->pages > SLUICE_PAGES_NO_HUGE)
		return -EBADMSG;
	if (h->node_requested < -1 || h->node < -1 || h->mode > 0777)
		return -EBADMSG;
	if (sluice__name_check(h->name, SLUICE_REGION_NAME_MAX) ||
	    (want_name && strcmp(h->name, want_name)))
		return -EBADMSG;
	return 0;
}

/*
 * A file with no name (a memfd) must be sealed against shrinking, or its
 * sender could truncate it under us: SIGBUS.  Judged from the descriptor,
 * never from the header, which the sender wrote.  A named file is trusted
 * as far as its permissions go (see Documentation/regions.md).
 */
static int seals_check(int fd, const struct stat *st)
{
	int seals;

	if (st->st_nlink > 0)
		return 0;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || !(seals & F_SEAL_SHRINK))
		return -EBADMSG;
	return 0;
}

/* The deadline for waiting, or 0 for "do not wait". */
static uint64_t deadline_of(const struct sluice_region_open_opts *opts)
{
	int ms = SLUICE_OPT(opts, sluice_region_open_opts, wait_ms, 0);

	return ms > 0 ? sluice__now_ns(CLOCK_MONOTONIC) + (uint64_t)ms * 1000000 : 0;
}

/* Sleep a little, growing; false once @deadline has passed. */
static bool wait_more(uint64_t deadline, unsigned int *step_us)
{
	struct timespec ts;

	if (sluice__now_ns(CLOCK_MONOTONIC) >= deadline)
		return false;
	ts.tv_sec = 0;
	ts.tv_nsec = (long)*step_us * 1000;
	nanosleep(&ts, NULL);
	if (*step_us < 10000)
		*step_us *= 2;
	return true;
}

/*
 * Map @fd and wait (until @deadline) for the header to be published.
 * A region's file has every page allocated, or its creator would not have
 * published it: a file with holes is refused before we touch it, since a
 * fault on a hugetlbfs hole with an empty pool is SIGBUS.
 */
static int region_map_ready(int fd, uint64_t deadline, void **basep,
			    size_t *sizep)
{
	unsigned int step_us = 100;
	struct stat st;
	uint32_t ready;
	void *base;
	int err;

	for (;;) {
		if (fstat(fd, &st))
			return -errno;
		err = seals_check(fd, &st);
		if (err)
			return err;
		if (!S_ISREG(st.st_mode) ||
		    (uint64_t)st.st_size < sizeof(struct sluice_region_hdr) ||
		    (uint64_t)st.st_size > SIZE_MAX ||
		    (uint64_t)st.st_blocks * 512 < (uint64_t)st.st_size)
			return -EBADMSG;
		base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE,
			    MAP_SHARED, fd, 0);
		if (base == MAP_FAILED)
			return -errno;
		/* Pairs with the release store that ends hdr_init(). */
		ready = atomic_load_explicit(&((struct sluice_region_hdr *)base)->ready,
					     memory_order_acquire);
		if (ready == SLUICE_REGION_READY) {
			*basep = base;
			*sizep = (size_t)st.st_size;
			return 0;
		}
		munmap(base, (size_t)st.st_size);
		if (ready != 0)
			return -EBADMSG;
		if (!deadline || !wait_more(deadline, &step_us))
			return -EAGAIN;
	}
}

/* Map @fd (ours from now on: closed on failure) as a region. */
static int region_map(int fd, const char *want_name, uint64_t deadline,
		      struct sluice_region **out)
{
	struct sluice_region_hdr local;
	struct sluice_region *r;
	void *base = NULL;
	size_t size = 0;
	int err;

	err = region_map_ready(fd, deadline, &base, &size);
	if (err)
		goto err_close;

	/* Read once into a private copy, check the copy, use only the copy. */
	memcpy(&local, base, offsetof(struct sluice_region_hdr, ready));
	err = hdr_validate(&local, size, want_name);
	if (err)
		goto err_unmap;
	/* Map every page now, so the data path never takes a fault. */
	if (madvise(base, size, MADV_POPULATE_WRITE)) {
		err = errno == EFAULT || errno == EHWPOISON ? -EBADMSG : -errno;
		goto err_unmap;
	}

	r = calloc(1, sizeof(*r));
	if (!r) {
		err = -ENOMEM;
		goto err_unmap;
	}
	handle_fill(r, base, size, fd, want_name != NULL, &local);
	*out = r;
	return 0;

err_unmap:
	munmap(base, size);
err_close:
	close(fd);
	return err;
}

/* Open the file behind a name: hugetlbfs first, then shm. */
static int region_file_open(const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int fd, err;

	if (!sluice__hugetlbfs_dir(dir, sizeof(dir)) &&
	    !region_path(path, sizeof(path), dir, name)) {
		fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0 || errno != ENOENT)
			goto out;
	}
	err = region_path(path, sizeof(path), sluice__shm_dir(), name);
	if (err)
		return err;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
out:
	if (fd < 0)
		return errno == ELOOP ? -EBADMSG : -errno;
	return fd;
}

int sluice_region_open(const char *name,
		       const struct sluice_region_open_opts *opts,
		       struct sluice_region **out)
{
	unsigned int step_us = 100;
	uint64_t deadline;
	int fd, err;

	if (!out || !SLUICE_OPTS_VALID(opts, sluice_region_open_opts, wait_ms))
		return -EINVAL;
	err = sluice__name_check(name, SLUICE_REGION_NAME_MAX);
	if (err)
		return err;
	deadline = deadline_of(opts);
	for (;;) {
		fd = region_file_open(name);
		if (fd != -ENOENT || !deadline || !wait_more(deadline, &step_us))
			break;
	}
	if (fd < 0)
		return fd;
	return region_map(fd, name, deadline, out);
}

/*
 * A descriptor of our own for @fd's file, with its own open file
 * description, so that our flock on it excludes the process that gave us
 * @fd (SCM_RIGHTS passes the description itself, flock and all).  Where
 * /proc cannot reopen it (no /proc, or a mode that lets us use the passed
 * descriptor but not open the file), a plain dup still works, with the
 * directory lock shared with the sender.
 */
static int own_fd(int fd)
{
	char path[64];
	int nfd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	nfd = open(path, O_RDWR | O_CLOEXEC);
	if (nfd >= 0)
		return nfd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	return nfd >= 0 ? nfd : -errno;
}

int sluice_region_open_fd(int fd, const struct sluice_region_open_opts *opts,
			  struct sluice_region **out)
{
	int nfd;

	if (!out || !SLUICE_OPTS_VALID(opts, sluice_region_open_opts, wait_ms))
		return -EINVAL;
	if (fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	nfd = own_fd(fd);
	if (nfd < 0)
		return nfd;
	return region_map(nfd, NULL, deadline_of(opts), out);
}

/* ------------------------------------------------------------- fd passing */

int sluice_region_send(const struct sluice_region *r, int sock)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	char byte = 'S';
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c;

	if (!r)
		return -EINVAL;
	memset(&ctl, 0, sizeof(ctl));
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &r->fd, sizeof(int));
	if (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

/* Close every descriptor a control message carried. */
static void cmsg_close_fds(struct msghdr *msg)
{
	struct cmsghdr *c;
	size_t i, n;
	int fd;

	for (c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < n; i++) {
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
}

int sluice_region_recv(int sock, const struct sluice_region_open_opts *opts,
		       struct sluice_region **out)
{
	union {
		struct cmsghdr hdr;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} ctl;
	char byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf),
	};
	struct cmsghdr *c;
	int fd, nfd;
	ssize_t n;

	if (!out || !SLUICE_OPTS_VALID(opts, sluice_region_open_opts, wait_ms))
		return -EINVAL;
	n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	c = CMSG_FIRSTHDR(&msg);
	/* Exactly one descriptor, nothing cut off, nothing else. */
	if ((msg.msg_flags & MSG_CTRUNC) || !c || c->cmsg_level != SOL_SOCKET ||
	    c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)) ||
	    CMSG_NXTHDR(&msg, c)) {
		cmsg_close_fds(&msg);
		return -EPROTO;
	}
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	nfd = own_fd(fd);
	close(fd);
	if (nfd < 0)
		return nfd;
	return region_map(nfd, NULL, deadline_of(opts), out);
}

/* ------------------------------------------------------------- lifetime */

void sluice_region_close(struct sluice_region *r)
{
	if (!r)
		return;
	munmap(r->hdr, r->size);
	close(r->fd);
	pthread_mutex_destroy(&r->lock);
	free(r);
}

/*
 * Unlink @name from whichever directory holds it.  With @only set, only if
 * the file there is still the one open as @only (a region of the same name
 * made after ours was removed is not ours to remove).
 */
static int region_unlink(const char *name, const struct sluice_region *only)
{
	char dirs[2][PATH_MAX], path[PATH_MAX];
	struct stat mine, st;
	int lock_fd, err = -ENOENT, i, n = 0;

	if (only && fstat(only->fd, &mine))
		return -errno;
	if (!sluice__hugetlbfs_dir(dirs[n], sizeof(dirs[n])))
		n++;
	snprintf(dirs[n++], sizeof(dirs[0]), "%s", sluice__shm_dir());

	lock_fd = names_lock();
	if (lock_fd < 0)
		return lock_fd;
	for (i = 0; i < n && err == -ENOENT; i++) {
		if (region_path(path, sizeof(path), dirs[i], name))
			continue;
		if (only && (lstat(path, &st) || st.st_ino != mine.st_ino ||
			     st.st_dev != mine.st_dev))
			continue;
		err = unlink(path) ? -errno : 0;
	}
	names_unlock(lock_fd);
	return err;
}

int sluice_region_unlink(const char *name)
{
	int err = sluice__name_check(name, SLUICE_REGION_NAME_MAX);

	return err ? err : region_unlink(name, NULL);
}

int sluice_region_destroy(struct sluice_region *r)
{
	int err = 0;

	if (!r)
		return 0;
	if (r->named)
		err = region_unlink(r->name, r);
	sluice_region_close(r);
	return err;
}

int sluice_region_foreach(sluice_region_fn fn, void *ctx)
{
	char dirs[2][PATH_MAX];
	const size_t plen = strlen(SLUICE_FILE_PREFIX);
	struct dirent *de;
	int i, n = 0, ret = 0;
	DIR *d;

	if (!fn)
		return -EINVAL;
	if (!sluice__hugetlbfs_dir(dirs[n], sizeof(dirs[n])))
		n++;
	snprintf(dirs[n++], sizeof(dirs[0]), "%s", sluice__shm_dir());

	for (i = 0; i < n && !ret; i++) {
		d = opendir(dirs[i]);
		if (!d) {
			if (errno == ENOENT)
				continue;
			return -errno;
		}
		while (!ret && (de = readdir(d))) {
			if (strncmp(de->d_name, SLUICE_FILE_PREFIX, plen) ||
			    sluice__name_check(de->d_name + plen, SLUICE_REGION_NAME_MAX))
				continue;
			ret = fn(de->d_name + plen, ctx);
		}
		closedir(d);
	}
	return ret;
}

/* ------------------------------------------------------------- getters */

void *sluice_region_base(const struct sluice_region *r)
{
	return r->hdr;
}

size_t sluice_region_size(const struct sluice_region *r)
{
	return r->size;
}

int sluice_region_node(const struct sluice_region *r)
{
	return r->node;
}

size_t sluice_region_page_size(const struct sluice_region *r)
{
	return r->page_size;
}

enum sluice_backing sluice_region_backing(const struct sluice_region *r)
{
	return r->backing;
}

const char *sluice_region_name(const struct sluice_region *r)
{
	return r->name;
}

int sluice_region_fd(const struct sluice_region *r)
{
	return r->fd;
}

/* The heap top and object count, clamped to what this region can hold. */
static uint64_t heap_top_of(const struct sluice_region *r)
{
	uint64_t top = atomic_load_explicit(&r->hdr->heap_top, memory_order_relaxed);

	if (top < SLUICE_REGION_HEAP_OFF)
		return SLUICE_REGION_HEAP_OFF;
	return top > r->size ? r->size : top;
}

int sluice_region_info(const struct sluice_region *r,
		       struct sluice_region_info *out)
{
	struct sluice_region_info full, *info = &full;
	size_t sz;
	uint32_t n;

	/* Fill what the caller's struct has room for, zero what we lack. */
	if (!r || !out || out->sz < sizeof(out->sz) || out->sz > 4096)
		return -EINVAL;
	sz = out->sz;
	memset(info, 0, sizeof(*info));
	info->sz = sz;
	memcpy(info->name, r->name, sizeof(info->name));
	info->size = r->size;
	info->page_size = r->page_size;
	info->heap_size = r->size - SLUICE_REGION_HEAP_OFF;
	info->heap_used = heap_top_of(r) - SLUICE_REGION_HEAP_OFF;
	info->backing = r->backing;
	info->pages = r->pages;
	info->node_requested = r->node_requested;
	info->node = r->node;
	info->huge_fallback_err = r->huge_fallback_err;
	info->abi_version = SLUICE_REGION_ABI;
	info->mode = r->mode;
	info->creator_pid = r->creator_pid;
	info->creator_uid = r->creator_uid;
	info->creator_alive = sluice__proc_alive(r->creator_pid, r->creator_start);
	info->created_ns = r->created_ns;
	n = atomic_load_explicit(&r->hdr->nr_objs, memory_order_relaxed);
	info->nr_objs = n > SLUICE_REGION_OBJS_MAX ? SLUICE_REGION_OBJS_MAX : n;
	memcpy(out, info, sz < sizeof(*info) ? sz : sizeof(*info));
	if (sz > sizeof(*info))
		memset((char *)out + sizeof(*info), 0, sz - sizeof(*info));
	return 0;
}

void *sluice_region_at(const struct sluice_region *r, uint64_t off, uint64_t len)
{
	if (!r || off > r->size || len > r->size - off)
		return NULL;
	return (char *)r->hdr + off;
}

const char *sluice_backing_str(enum sluice_backing b)
{
	switch (b) {
	case SLUICE_BACKING_HUGETLBFS:		return "hugetlbfs";
	case SLUICE_BACKING_SHM:		return "shm";
	case SLUICE_BACKING_MEMFD:		return "memfd";
	case SLUICE_BACKING_MEMFD_HUGETLB:	return "memfd-hugetlb";
	}
	return "unknown";
}

const char *sluice_pages_str(enum sluice_pages p)
{
	switch (p) {
	case SLUICE_PAGES_PREFER_HUGE:	return "prefer-huge";
	case SLUICE_PAGES_REQUIRE_HUGE:	return "require-huge";
	case SLUICE_PAGES_NO_HUGE:	return "no-huge";
	}
	return "unknown";
}

/* ------------------------------------------------------------- directory */

/*
 * A private copy of the directory.  Readers and the allocator take one,
 * check it whole, and from then on use only the copy: a peer may rewrite
 * the shared directory at any moment.
 */
struct dir_copy {
	uint64_t top;				/* heap_top */
	unsigned int n;				/* nr_objs */
	struct sluice_obj_entry e[SLUICE_REGION_OBJS_MAX];
};

/*
 * One entry of a copy: live, a type, a valid NUL-terminated name, and a
 * non-empty range from the heap start to at most @top.  @top is already
 * known to lie inside the region, so the range does too; the comparisons
 * cannot overflow.
 */
static bool entry_ok(const struct sluice_obj_entry *e, uint64_t top)
{
	return e->state == SLUICE_OBJ_LIVE && e->type &&
	       memchr(e->name, '\0', sizeof(e->name)) &&
	       !sluice__name_check(e->name, SLUICE_OBJ_NAME_MAX) &&
	       e->off >= SLUICE_REGION_HEAP_OFF && e->size &&
	       e->off <= top && e->size <= top - e->off;
}

/*
 * Copy the directory out of shared memory into @d and check the copy: at
 * most SLUICE_REGION_OBJS_MAX entries, a heap top inside the heap, every
 * entry sound and ending at or below the top, and no two entries sharing
 * a byte.  Anything else is -EBADMSG, and @d is then not to be used.
 * Every walk of the directory goes through here, so every caller gets the
 * same answer for the same bytes.
 *
 * Overlap is tested pair by pair, O(n^2): at most 64 * 63 / 2 = 2016
 * pairs, on calls that are rare (attach, allocation, listing).  It takes
 * no scratch space and no sort, and it tests the rule itself rather than
 * the increasing order in which this allocator happens to place entries.
 */
static int dir_read(const struct sluice_region *r, struct dir_copy *d)
{
	const struct sluice_obj_entry *a, *b;
	unsigned int i, j;
	uint64_t top;
	uint32_t n;

	/* Pairs with the release store of nr_objs in alloc: n entries are whole. */
	n = atomic_load_explicit(&r->hdr->nr_objs, memory_order_acquire);
	/*
	 * Relaxed, after the acquire above: the allocator that published
	 * entry n - 1 stored heap_top before its release store of n, so this
	 * sees that top or a later, higher one, at or above the end of every
	 * counted entry.  Any other value is a peer's, and fails below.
	 */
	top = atomic_load_explicit(&r->hdr->heap_top, memory_order_relaxed);
	if (n > SLUICE_REGION_OBJS_MAX || top < SLUICE_REGION_HEAP_OFF ||
	    top > r->size)
		return -EBADMSG;
	memcpy(d->e, r->hdr->objs, n * sizeof(d->e[0]));
	for (i = 0; i < n; i++)
		if (!entry_ok(&d->e[i], top))
			return -EBADMSG;
	for (i = 0; i < n; i++) {
		a = &d->e[i];
		for (j = i + 1; j < n; j++) {
			b = &d->e[j];
			if (a->off < b->off + b->size && b->off < a->off + a->size)
				return -EBADMSG;
		}
	}
	d->top = top;
	d->n = n;
	return 0;
}

/* The entry of @d named @name, or -1. */
static int dir_index(const struct dir_copy *d, const char *name)
{
	unsigned int i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->e[i].name, name))
			return (int)i;
	return -1;
}

static void obj_info_fill(struct sluice_obj_info *info,
			  const struct sluice_obj_entry *e)
{
	memcpy(info->name, e->name, sizeof(info->name));
	info->type = e->type;
	info->offset = e->off;
	info->size = e->size;
}

int sluice_region_obj(const struct sluice_region *r, unsigned int idx,
		      struct sluice_obj_info *info)
{
	struct dir_copy d;
	int err;

	if (!r || !info)
		return -EINVAL;
	err = dir_read(r, &d);
	if (err)
		return err;
	if (idx >= d.n)
		return -ENOENT;
	obj_info_fill(info, &d.e[idx]);
	return 0;
}

int sluice_region_find(const struct sluice_region *r, const char *name,
		       struct sluice_obj_info *info)
{
	struct dir_copy d;
	int i, err;

	if (!r || !info)
		return -EINVAL;
	err = sluice__name_check(name, SLUICE_OBJ_NAME_MAX);
	if (err)
		return err;
	err = dir_read(r, &d);
	if (err)
		return err;
	i = dir_index(&d, name);
	if (i < 0)
		return -ENOENT;
	obj_info_fill(info, &d.e[i]);
	return 0;
}

/*
 * The directory lock: an flock on the region's file, which the kernel
 * holds for us and drops if we die, so nothing in shared memory can wedge
 * or crash it (a pthread mutex there could: glibc aborts on some garbage).
 * flock belongs to an open file description, which every handle has its
 * own of (see own_fd()); threads sharing a handle take its mutex first.
 * The holder updates an entry before publishing it through nr_objs, so a
 * death at any point leaves at worst a gap in the heap, never a torn
 * entry.  The wait is bounded: anyone who can open the file can hold it.
 */
static int dir_lock(struct sluice_region *r, uint64_t until)
{
	uint64_t deadline = sluice__now_ns(CLOCK_MONOTONIC) + DIR_LOCK_TIMEOUT_NS;
	unsigned int step_us = 10;
	int err;

	if (until && until < deadline)
		deadline = until;

	pthread_mutex_lock(&r->lock);
	/*
	 * A handle inherited across fork shares its open file description,
	 * and so its flock, with the parent: give the child its own, under
	 * the same descriptor number.
	 */
	if (r->pid != getpid()) {
		int nfd = own_fd(r->fd);

		if (nfd >= 0 && nfd != r->fd) {
			if (dup3(nfd, r->fd, O_CLOEXEC) >= 0)
				r->pid = getpid();
			close(nfd);
		}
	}
	while (flock(r->fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			err = -errno;
			goto err_unlock;
		}
		if (!wait_more(deadline, &step_us)) {
			err = -ETIMEDOUT;
			goto err_unlock;
		}
	}
	return 0;

err_unlock:
	pthread_mutex_unlock(&r->lock);
	return err;
}

static void dir_unlock(struct sluice_region *r)
{
	flock(r->fd, LOCK_UN);
	pthread_mutex_unlock(&r->lock);
}

int sluice__region_lock(struct sluice_region *r)
{
	return dir_lock(r, 0);
}

int sluice__region_lock_until(struct sluice_region *r, uint64_t deadline)
{
	return dir_lock(r, deadline);
}

void sluice__region_unlock(struct sluice_region *r)
{
	dir_unlock(r);
}

int sluice_region_alloc(struct sluice_region *r, const char *name,
			uint32_t type, uint64_t size, uint64_t align,
			uint64_t *off)
{
	struct sluice_obj_entry *e;
	struct dir_copy d;
	uint64_t start;
	int err;

	if (!r || !off || !type || !size)
		return -EINVAL;
	if (!align)
		align = 64;
	if (!sluice__is_pow2(align) || align > r->size)
		return -EINVAL;
	err = sluice__name_check(name, SLUICE_OBJ_NAME_MAX);
	if (err)
		return err;

	err = dir_lock(r, 0);
	if (err)
		return err;
	err = dir_read(r, &d);
	if (err)
		goto out_unlock;
	if (dir_index(&d, name) >= 0) {
		err = -EEXIST;
		goto out_unlock;
	}
	if (d.n == SLUICE_REGION_OBJS_MAX) {
		err = -ENOSPC;
		goto out_unlock;
	}
	/*
	 * At or above the checked top, and so past the end of every entry:
	 * the new object overlaps none of them.
	 */
	start = (d.top + align - 1) & ~(align - 1);
	if (start < d.top || start > r->size || size > r->size - start) {
		err = -ENOSPC;
		goto out_unlock;
	}

	/*
	 * Zero the space before publishing it: a peer that finds the object
	 * may write to it at once.  (Space above heap_top is normally zero
	 * already, but nothing stops a careless writer past its own object.)
	 * A large object holds the lock for as long as this takes.
	 */
	memset((char *)r->hdr + start, 0, size);
	e = &r->hdr->objs[d.n];
	memset(e, 0, sizeof(*e));
	strcpy(e->name, name);
	e->type = type;
	e->off = start;
	e->size = size;
	e->state = SLUICE_OBJ_LIVE;
	atomic_store_explicit(&r->hdr->heap_top, start + size, memory_order_relaxed);
	/*
	 * Publish the entry.  Pairs with the acquire load in dir_read():
	 * a reader that counts entry n sees it whole, and the top above it.
	 */
	atomic_store_explicit(&r->hdr->nr_objs, d.n + 1, memory_order_release);
	dir_unlock(r);
	*off = start;
	return 0;

out_unlock:
	dir_unlock(r);
	return err;
}
