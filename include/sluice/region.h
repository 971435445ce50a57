/* SPDX-License-Identifier: MIT */
/*
 * sluice regions: named shared-memory areas that several processes map.
 *
 * A region is one file, on hugetlbfs when huge pages are wanted and
 * available, otherwise on /dev/shm, or an anonymous memfd handed to another
 * process over a Unix socket.  It starts with a validated header and holds a
 * small directory of named objects (rings, channels, raw buffers), each
 * addressed by its offset from the start of the region, never by pointer,
 * since every process maps the region at its own address.
 *
 * Every call returns 0 (or a count) on success and a negative errno on
 * failure; none of them sets errno.
 */
#ifndef SLUICE_REGION_H
#define SLUICE_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sluice/opts.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sluice_region;

/* Longest region name, not counting the terminating NUL. */
#define SLUICE_REGION_NAME_MAX	63
/* Longest object name inside a region, not counting the terminating NUL. */
#define SLUICE_OBJ_NAME_MAX	39
/* How many named objects one region can hold. */
#define SLUICE_REGION_OBJS_MAX	64

/* Page policy: what backs the region. */
enum sluice_pages {
	SLUICE_PAGES_PREFER_HUGE = 0,	/* huge pages if available, else normal pages (reported) */
	SLUICE_PAGES_REQUIRE_HUGE,	/* huge pages or fail with -ENOMEM / -ENOENT */
	SLUICE_PAGES_NO_HUGE,		/* normal pages only, no transparent huge pages either */
};

/* What a region really got. */
enum sluice_backing {
	SLUICE_BACKING_HUGETLBFS = 1,	/* a file on a hugetlbfs mount */
	SLUICE_BACKING_SHM,		/* a file on /dev/shm (tmpfs) */
	SLUICE_BACKING_MEMFD,		/* anonymous memfd, normal pages */
	SLUICE_BACKING_MEMFD_HUGETLB,	/* anonymous memfd, huge pages */
};

/* Region creation flags (sluice_region_opts.flags). */
#define SLUICE_REGION_NODE	(1u << 0)	/* place on opts.node, verify, fail if impossible */

/*
 * Options for sluice_region_create() and sluice_region_create_anon().
 * Declare with SLUICE_OPTS(sluice_region_opts, name, .field = value, ...);
 * every field left out means its default.  Passing NULL means all defaults.
 */
struct sluice_region_opts {
	size_t sz;		/* sizeof(struct sluice_region_opts), set by SLUICE_OPTS */
	unsigned int flags;	/* SLUICE_REGION_* */
	int node;		/* NUMA node, used only with SLUICE_REGION_NODE */
	enum sluice_pages pages;/* default SLUICE_PAGES_PREFER_HUGE */
	unsigned int mode;	/* file permissions, default 0600 */
};

/*
 * Options for sluice_region_open(), sluice_region_open_fd() and
 * sluice_region_recv().
 */
struct sluice_region_open_opts {
	size_t sz;		/* sizeof(struct sluice_region_open_opts) */
	int wait_ms;		/* how long to wait for a region that does not
				 * exist yet or is not ready: 0 (the default)
				 * or negative means do not wait */
};

/* A snapshot of a region's header and of what it really got. */
struct sluice_region_info {
	size_t sz;			/* caller sets: sizeof(struct sluice_region_info) */
	char name[SLUICE_REGION_NAME_MAX + 1];
	uint64_t size;			/* bytes mapped, header included */
	uint64_t page_size;		/* page size the kernel really uses */
	uint64_t heap_used;		/* bytes handed out to objects so far */
	uint64_t heap_size;		/* bytes available to objects in all */
	enum sluice_backing backing;
	enum sluice_pages pages;	/* policy asked for at creation */
	int node_requested;		/* -1 when no node was asked for */
	int node;			/* node all pages were found on, -1 if mixed or unknown */
	int huge_fallback_err;		/* why huge pages were not used (negative
					 * errno), 0 if they were or were not wanted */
	uint32_t abi_version;
	uint32_t mode;
	pid_t creator_pid;
	uid_t creator_uid;
	bool creator_alive;		/* creator pid still runs (same start time) */
	uint64_t created_ns;		/* CLOCK_REALTIME at creation */
	unsigned int nr_objs;		/* objects in the directory */
};

/* One entry in a region's object directory. */
struct sluice_obj_info {
	char name[SLUICE_OBJ_NAME_MAX + 1];
	uint32_t type;			/* SLUICE_OBJ_* or a user value >= SLUICE_OBJ_USER */
	uint64_t offset;		/* from the start of the region */
	uint64_t size;
};

/* Object types in the directory. */
#define SLUICE_OBJ_RAW		1u	/* plain bytes, the user's own layout */
#define SLUICE_OBJ_SPSC		2u	/* reserved for SPSC rings */
#define SLUICE_OBJ_CHAN		3u	/* reserved for channels */
#define SLUICE_OBJ_USER		0x10000u/* first value free for applications */

/**
 * sluice_region_create() - create a named region and map it.
 * @name: 1 to SLUICE_REGION_NAME_MAX characters from [A-Za-z0-9._-], not
 *        starting with '.'.
 * @size: bytes to map, header included; rounded up to the page size.
 * @opts: options, or NULL for the defaults.
 * @out:  receives the region on success.
 *
 * Huge pages come from a hugetlbfs mount found in the mount table (the
 * environment variable SLUICE_HUGETLBFS names another mount, or "none" to
 * use none).  Every page is faulted in before this returns, so a drained
 * huge-page pool shows here as -ENOMEM rather than later as SIGBUS.
 *
 * Return: 0 on success, or
 * -EINVAL     bad name, zero or too small size, unknown option value, or a
 *             node given without SLUICE_REGION_NODE;
 * -ENAMETOOLONG name longer than SLUICE_REGION_NAME_MAX;
 * -EEXIST     a region of that name already exists;
 * -ENODEV     the NUMA node does not exist or has no memory;
 * -ENOENT     huge pages required but no hugetlbfs mount;
 * -ENOMEM     not enough (huge) pages on the node;
 * -EIO        pages did not land on the requested node;
 * -E2BIG      size too large to map;
 * other negative errnos from the system calls involved.
 */
int sluice_region_create(const char *name, size_t size,
			 const struct sluice_region_opts *opts,
			 struct sluice_region **out);

/**
 * sluice_region_create_anon() - create a region with no name in any file
 * system, backed by a sealed memfd.
 * @label: a name for the header and /proc/PID/maps, same rules as a region
 *         name; may be NULL ("anon").
 * @size, @opts, @out: as for sluice_region_create() (opts.mode is ignored).
 *
 * Hand it to another process with sluice_region_send().
 *
 * Return: as for sluice_region_create(), without -EEXIST.
 */
int sluice_region_create_anon(const char *label, size_t size,
			      const struct sluice_region_opts *opts,
			      struct sluice_region **out);

/**
 * sluice_region_open() - map an existing named region.
 * @name: the name it was created with.
 * @opts: options, or NULL for the defaults.
 * @out:  receives the region on success.
 *
 * A name only ever refers to a finished region: creation builds the region
 * in a nameless file and names it last.  Everything read from the header is
 * validated before use, and every page is mapped before this returns.
 *
 * Return: 0 on success, or
 * -EINVAL, -ENAMETOOLONG  bad name;
 * -ENOENT     no region of that name (after waiting opts.wait_ms);
 * -EACCES     permission denied;
 * -EAGAIN     the header's ready flag is not set (after waiting
 *             opts.wait_ms): only a damaged region looks like this;
 * -EBADMSG    the header is truncated or corrupted, the file is not a
 *             regular file or is a symbolic link, it has holes
 *             (unallocated pages), or it has no name and is not sealed;
 * -EPROTO     the region was made by an incompatible sluice ABI version;
 * -ENOMEM, -EMFILE, ...  other errors from open(2) and mmap(2).
 */
int sluice_region_open(const char *name,
		       const struct sluice_region_open_opts *opts,
		       struct sluice_region **out);

/**
 * sluice_region_open_fd() - map a region from a file descriptor.
 * @fd: a region's file descriptor; duplicated, the caller keeps @fd.
 *
 * Return: as for sluice_region_open(); -EBADF if @fd is not open.
 */
int sluice_region_open_fd(int fd, const struct sluice_region_open_opts *opts,
			  struct sluice_region **out);

/**
 * sluice_region_send() - pass a region to another process.
 * @r:    the region.
 * @sock: a connected AF_UNIX socket.
 *
 * Sends the region's file descriptor with SCM_RIGHTS.
 *
 * Return: 0 on success or a negative errno from sendmsg().
 */
int sluice_region_send(const struct sluice_region *r, int sock);

/**
 * sluice_region_recv() - receive and map a region sent by sluice_region_send().
 * @sock: a connected AF_UNIX socket.
 *
 * Return: as for sluice_region_open_fd(); -EPROTO if the message carries
 * no file descriptor, -ECONNRESET if the peer closed the socket.
 */
int sluice_region_recv(int sock, const struct sluice_region_open_opts *opts,
		       struct sluice_region **out);

/**
 * sluice_region_close() - unmap a region and free the handle; the region
 * itself stays for other processes.  NULL is a no-op.
 */
void sluice_region_close(struct sluice_region *r);

/**
 * sluice_region_destroy() - unlink a named region and close it.  Processes
 * that still map it keep their mapping; the memory goes when the last one
 * closes.  For an anonymous region the same as sluice_region_close().
 * NULL is a no-op.
 *
 * Return: 0, or a negative errno from unlinking (the handle is freed anyway).
 */
int sluice_region_destroy(struct sluice_region *r);

/**
 * sluice_region_unlink() - remove a named region from the file system.
 *
 * Return: 0, -ENOENT if there is none, -EINVAL/-ENAMETOOLONG for a bad name,
 * or another negative errno from unlink().
 */
int sluice_region_unlink(const char *name);

/* Start of the mapping; offset 0 of the region. */
void *sluice_region_base(const struct sluice_region *r);
/* Bytes mapped, header included. */
size_t sluice_region_size(const struct sluice_region *r);
/* Node every page was found on at creation, or -1 if mixed or unknown. */
int sluice_region_node(const struct sluice_region *r);
/* Page size the kernel really backs the region with. */
size_t sluice_region_page_size(const struct sluice_region *r);
/* What backs the region. */
enum sluice_backing sluice_region_backing(const struct sluice_region *r);
/* The region's name (the label for an anonymous region). */
const char *sluice_region_name(const struct sluice_region *r);
/* The file descriptor behind the region, owned by the region. */
int sluice_region_fd(const struct sluice_region *r);

/**
 * sluice_region_info() - fill @info with a snapshot of the region.
 * @info: the caller sets info->sz to sizeof(*info).  A larger (newer)
 *        struct gets the fields this library knows and zeros; a smaller
 *        (older) one gets the fields it has room for.
 *
 * Return: 0 or -EINVAL if @info is NULL or info->sz is implausible.
 */
int sluice_region_info(const struct sluice_region *r,
		       struct sluice_region_info *info);

/**
 * sluice_region_at() - turn an offset into a pointer, bounds checked.
 * @off: offset from the start of the region.
 * @len: bytes the caller will touch from there.
 *
 * Return: the pointer, or NULL if [off, off + len) is not inside the region.
 */
void *sluice_region_at(const struct sluice_region *r, uint64_t off,
		       uint64_t len);

/**
 * sluice_region_alloc() - reserve space in the region under a name.
 * @name:  SLUICE_OBJ_NAME_MAX characters at most, same alphabet as regions.
 * @type:  SLUICE_OBJ_* or an application value >= SLUICE_OBJ_USER; not 0.
 * @size:  bytes wanted, more than 0.
 * @align: alignment of the offset, a power of two; 0 means 64.
 * @off:   receives the offset of the new object.
 *
 * The space is zeroed.  Safe against other processes and threads
 * allocating at the same time.
 *
 * Return: 0, or -EINVAL (bad argument), -ENAMETOOLONG, -EEXIST (name taken),
 * -ENOSPC (no room or directory full), -EBADMSG (the directory in shared
 * memory is corrupted), -ETIMEDOUT (another process held the directory
 * lock, an flock on the region's file, for over two seconds).
 */
int sluice_region_alloc(struct sluice_region *r, const char *name,
			uint32_t type, uint64_t size, uint64_t align,
			uint64_t *off);

/**
 * sluice_region_find() - look up a named object.
 * @info: receives the entry; validated to lie inside the region.
 *
 * Return: 0, -ENOENT if there is none, -EINVAL/-ENAMETOOLONG for a bad name,
 * -EBADMSG if the directory is corrupted (checked whole: a bad entry, one
 * past the heap's top, two that overlap).
 */
int sluice_region_find(const struct sluice_region *r, const char *name,
		       struct sluice_obj_info *info);

/**
 * sluice_region_obj() - read directory entry @idx (0 to nr_objs - 1).
 *
 * Return: 0, -ENOENT past the last entry, -EBADMSG if the directory is
 * corrupted (checked whole, as for sluice_region_find()).
 */
int sluice_region_obj(const struct sluice_region *r, unsigned int idx,
		      struct sluice_obj_info *info);

/*
 * Callback for sluice_region_foreach(): return 0 to go on, anything else to
 * stop and make sluice_region_foreach() return it.
 */
typedef int (*sluice_region_fn)(const char *name, void *ctx);

/**
 * sluice_region_foreach() - call @fn with the name of every named region on
 * this machine, whatever its state.
 *
 * Return: 0, the first non-zero value @fn returned, or a negative errno if a
 * directory could not be read.
 */
int sluice_region_foreach(sluice_region_fn fn, void *ctx);

/* Human-readable names for the enums, for tools and logs. */
const char *sluice_backing_str(enum sluice_backing b);
const char *sluice_pages_str(enum sluice_pages p);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_REGION_H */
