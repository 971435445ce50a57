/* SPDX-License-Identifier: MIT */
/*
 * Channels: a many-to-many byte ring in a region.
 *
 * Any number of writers and readers, in any number of processes, share one
 * ring of bytes.  A writer reserves a slice at the tail holding one or more
 * frames, fills it (copying, or in place) and commits it; many writers fill
 * their slices at once, and a writer that stops half way (preempted, slow)
 * never stops the others from reserving and filling theirs.  Readers see
 * frames in the order their slices were reserved, each whole, never torn.
 *
 * Readers.  A strong reader holds writers back: no writer reuses bytes it
 * has not read, so the channel runs at the pace of its slowest strong
 * reader.  A weak reader never holds anyone back; when writers overtake it,
 * its next read fails with -EOVERFLOW, sluice_chan_lost() says how many
 * bytes it skipped, and it resumes at the oldest slice still intact.  A
 * weak reader checks every frame after copying it, so it never returns
 * bytes that were being overwritten.  A reader starts where the committed
 * slices end when it opens: it reads every slice committed after that
 * point, and none before it.  An endpoint belongs to the process (any of
 * its threads) that opened it; a forked child opens its own.
 *
 * Writers.  A strong writer holds a place in the channel's writer table for
 * as long as it is open, and holds the channel open: when the last strong
 * writer closes (or dies), the channel drains by itself, as a pipe does
 * when its last writer closes.  A weak writer takes a place only for the
 * time between reserving a slice and committing it, and does not count:
 * weak writers come and go without draining anything.
 *
 * Ending.  sluice_chan_drain(): new reservations fail with -EPIPE; slices
 * already reserved may still be committed; readers read everything
 * committed, then get -EPIPE (end of channel).  sluice_chan_terminate():
 * every reader and writer, blocked or not, gets -ECONNABORTED from then on.
 *
 * A writer that dies between reserving and committing: readers skip its
 * slice, having never seen a byte of it, and go on; the skipped bytes are
 * counted in sluice_chan_info().abandoned.  A strong reader that dies is
 * swept from the table, so it does not hold writers back for ever.  The
 * dead are looked for every 20 ms by endpoints that wait (blocked, or
 * calling try_ calls that fail with -EAGAIN), and at once when a liveness
 * monitor (opts.liveness) sees one of the peers they wait on die.
 *
 * Every blocking call returns by its deadline, whatever peers write into
 * the channel's memory: its waits check the deadline and the token on
 * every pass, and one call does a bounded amount of work.
 *
 * Errors common to the data calls:
 *   -EAGAIN        try_ call: no room (writer), no frame (reader)
 *   -ETIMEDOUT     blocking call: the endpoint's timeout passed (default 5 s)
 *   -ECANCELED     (or the token's reason) the endpoint's token was triggered
 *   -ECONNABORTED  the channel was terminated
 *   -EPIPE         writer: the channel is draining.  reader: it drained and
 *                  everything committed has been read (end of channel)
 *   -EOVERFLOW     weak reader: writers overtook it (see sluice_chan_lost())
 *   -EBADMSG       a peer wrote something impossible into shared memory
 *                  (a position moved back, a strong reader's place changed
 *                  under it, a header that cannot be); the call returns,
 *                  and what it would have read or written is not trusted
 *   -EBUSY         a reserved slice is outstanding
 *   -EINVAL        a bad argument
 */
#ifndef SLUICE_CHAN_H
#define SLUICE_CHAN_H

#include <stdint.h>
#include <stddef.h>
#include <sys/uio.h>

#include <sluice/cancel.h>
#include <sluice/liveness.h>
#include <sluice/opts.h>
#include <sluice/region.h>

#ifdef __cplusplus
extern "C" {
#endif

struct sluice_chan;
struct sluice_chan_writer;
struct sluice_chan_reader;

/* What holds writers back. */
enum sluice_chan_policy {
	SLUICE_CHAN_BLOCK = 0,		/* strong readers do (default) */
	SLUICE_CHAN_OVERWRITE = 1,	/* nobody: only weak readers may open */
};

enum sluice_chan_kind {
	SLUICE_CHAN_STRONG = 1,
	SLUICE_CHAN_WEAK = 2,
};

/* Byte capacity: a power of two in this range. */
#define SLUICE_CHAN_CAPACITY_MIN	(4096ull)
#define SLUICE_CHAN_CAPACITY_MAX	(1ull << 30)
/* Reader and writer table sizes: default and largest. */
#define SLUICE_CHAN_ENDS_DEFAULT	64u
#define SLUICE_CHAN_ENDS_MAX		1024u

/*
 * Options for sluice_chan_create() and sluice_chan_attach(); NULL:
 * defaults.  The handle's timeout, token and spin are its endpoints',
 * unless an endpoint's own options say otherwise.
 */
struct sluice_chan_opts {
	size_t sz;			/* sizeof(struct sluice_chan_opts) */
	uint64_t timeout_ns;		/* blocking calls give up after this; 0: 5 s */
	struct sluice_cancel *cancel;	/* waits end when it is triggered */
	uint32_t spin_ns;		/* spin this long before sleeping; 0: adapt
					 * up to 50 us; UINT32_MAX: never sleep */
	uint32_t readers_max;		/* create only: reader table; 0: 64 */
	uint32_t writers_max;		/* create only: writer table; 0: 64 */
	uint32_t flags;			/* none yet; must be 0 */
	struct sluice_liveness *liveness; /* create, attach: watch the peers
					 * the handle's endpoints wait on with
					 * this monitor (liveness.h), so their
					 * deaths are seen at once (up to
					 * readers_max + writers_max processes
					 * a handle; beyond, by the sweep);
					 * NULL: by the 20 ms sweep.
					 * Endpoints: 0. */
};

/**
 * sluice_chan_create() - make a channel in a region.
 * @r:        the region.
 * @name:     object name (SLUICE_OBJ_NAME_MAX characters).
 * @capacity: bytes in the ring, a power of two from SLUICE_CHAN_CAPACITY_MIN
 *            to SLUICE_CHAN_CAPACITY_MAX.  A slice takes 16 bytes, each
 *            frame 8 more plus its length rounded up to 8, the whole slice
 *            rounded up to 16; a slice is at most half the capacity.
 * @policy:   SLUICE_CHAN_BLOCK or SLUICE_CHAN_OVERWRITE.
 * @opts:     options, or NULL.
 * @out:      receives the channel handle.
 *
 * Return: 0, or -EINVAL, -EEXIST, -ENOSPC, -ENOMEM, or another error of
 * sluice_region_alloc().
 */
int sluice_chan_create(struct sluice_region *r, const char *name,
		       uint64_t capacity, enum sluice_chan_policy policy,
		       const struct sluice_chan_opts *opts,
		       struct sluice_chan **out);

/**
 * sluice_chan_attach() - open an existing channel by name.
 *
 * Return: 0, or -ENOENT, -EPROTO (not a channel, or another ABI), -EBADMSG
 * (corrupted), -EAGAIN (its creator has not finished), -EINVAL,
 * -ENAMETOOLONG, -ENOMEM.
 */
int sluice_chan_attach(struct sluice_region *r, const char *name,
		       const struct sluice_chan_opts *opts,
		       struct sluice_chan **out);

/**
 * sluice_chan_close() - free the channel handle.  Close its readers and
 * writers first (-EBUSY otherwise, and nothing is freed).  NULL: 0.
 */
int sluice_chan_close(struct sluice_chan *ch);

/** sluice_chan_drain() - stop new writes; readers end after the last frame. */
int sluice_chan_drain(struct sluice_chan *ch);

/** sluice_chan_terminate() - fail every call and wake every wait, now. */
int sluice_chan_terminate(struct sluice_chan *ch);

/* A snapshot of a channel's shared state, for tools and tests. */
struct sluice_chan_info {
	uint64_t capacity;
	uint32_t policy;		/* enum sluice_chan_policy */
	uint32_t readers_max;
	uint32_t writers_max;
	uint32_t strong_readers;
	uint32_t weak_readers;
	uint32_t strong_writers;
	uint32_t writers_busy;		/* table places taken, strong or weak */
	uint32_t draining;		/* bool */
	uint32_t terminated;		/* bool */
	uint32_t pad;
	uint64_t tail;			/* bytes reserved since creation */
	uint64_t committed;		/* every slice below this is committed */
	uint64_t abandoned;		/* bytes of slices whose writer died */
	uint64_t swept;			/* dead strong readers removed */
};

/*
 * Options for sluice_chan_writer_open() and sluice_chan_reader_open().
 * NULL, or a field left 0, takes the channel handle's value.
 */
struct sluice_chan_end_opts {
	size_t sz;			/* sizeof(struct sluice_chan_end_opts) */
	uint64_t timeout_ns;		/* blocking calls give up after this */
	struct sluice_cancel *cancel;	/* waits end when it is triggered */
	uint32_t spin_ns;		/* spin this long before sleeping;
					 * UINT32_MAX: never sleep */
	uint32_t flags;			/* none yet; must be 0 */
};

/*
 * Until 0.6, the endpoint opens also take the channel's options struct,
 * as 0.4 did (its create-only fields 0): a call that passes one still
 * compiles, and its fields mean what the endpoint options' do.
 */
#if !defined(__cplusplus)
#define SLUICE__CHAN_END_OPTS(o)					\
	_Generic((o),							\
		 struct sluice_chan_opts *:				\
			(const struct sluice_chan_end_opts *)(const void *)(o), \
		 const struct sluice_chan_opts *:			\
			(const struct sluice_chan_end_opts *)(const void *)(o), \
		 default: (o))
#else
#define SLUICE__CHAN_END_OPTS(o) (o)
#endif

/** sluice_chan_info() - fill @info.  Return: 0, -EINVAL, or -EBADMSG. */
int sluice_chan_info(struct sluice_chan *ch, struct sluice_chan_info *info);

/* ------------------------------------------------------------- writers */

/**
 * sluice_chan_writer_open() - become a writer.
 * @kind: SLUICE_CHAN_STRONG takes a place in the writer table now (-EUSERS
 *        if none is free); SLUICE_CHAN_WEAK takes one per slice.
 * @opts: the endpoint's own timeout, token and spin; NULL, or a field
 *        left 0, takes the channel handle's.
 *
 * Return: 0, -EINVAL, -EUSERS, -EPIPE (draining), -ECONNABORTED, -ENOMEM.
 */
int sluice_chan_writer_open(struct sluice_chan *ch, enum sluice_chan_kind kind,
			    const struct sluice_chan_end_opts *opts,
			    struct sluice_chan_writer **out);
#define sluice_chan_writer_open(ch, kind, opts, out)			\
	sluice_chan_writer_open((ch), (kind), SLUICE__CHAN_END_OPTS(opts), (out))

/**
 * sluice_chan_writer_close() - stop writing.  An outstanding slice is
 * abandoned (readers skip it).  Closing the last strong writer drains the
 * channel.  NULL is a no-op.
 */
void sluice_chan_writer_close(struct sluice_chan_writer *w);

/**
 * sluice_chan_write() - copy one frame in as a slice of its own.
 * Return: 0, -EMSGSIZE (too long for one slice), or a common error.
 */
int sluice_chan_write(struct sluice_chan_writer *w, const void *buf, size_t len);
int sluice_chan_try_write(struct sluice_chan_writer *w, const void *buf, size_t len);

/**
 * sluice_chan_write_batch() - copy @n frames in as one slice: one
 * reservation, one commit, all or nothing.
 * Return: @n, -EMSGSIZE (the slice would exceed half the capacity; nothing
 * written), -EINVAL (@n is 0 or over 65535), or a common error.
 */
int sluice_chan_write_batch(struct sluice_chan_writer *w,
			    const struct iovec *iov, unsigned int n);
int sluice_chan_try_write_batch(struct sluice_chan_writer *w,
				const struct iovec *iov, unsigned int n);

/**
 * sluice_chan_reserve_slice() - reserve a slice of @n frames to fill in place.
 * @iov: on entry each iov_len is a frame's length; on return each iov_base
 *       points at the frame's bytes in the ring, contiguous and 8-byte
 *       aligned.  A slice never splits at the end of the ring.
 *
 * Nothing is visible to readers until sluice_chan_commit().
 * Return: @n, or as sluice_chan_write_batch(), or -EBUSY.
 */
int sluice_chan_reserve_slice(struct sluice_chan_writer *w, struct iovec *iov,
			      unsigned int n);
int sluice_chan_try_reserve_slice(struct sluice_chan_writer *w,
				  struct iovec *iov, unsigned int n);

/**
 * sluice_chan_commit() - publish the reserved slice.
 * Return: 0, -EINVAL (nothing reserved), -ECONNABORTED (terminated: the
 * slice is dropped).
 */
int sluice_chan_commit(struct sluice_chan_writer *w);

/**
 * sluice_chan_abort() - give the reserved slice up; readers skip it.
 * Return: 0, -EINVAL (nothing reserved), or -ECONNABORTED (terminated; the
 * slice is given up all the same).
 */
int sluice_chan_abort(struct sluice_chan_writer *w);

/* ------------------------------------------------------------- readers */

/**
 * sluice_chan_reader_open() - become a reader, starting after the newest
 * committed slice.
 * @kind: SLUICE_CHAN_STRONG (not on an SLUICE_CHAN_OVERWRITE channel:
 *        -EINVAL) or SLUICE_CHAN_WEAK.  Both take a place in the reader
 *        table (-EUSERS if none is free).
 *
 * @opts: as for sluice_chan_writer_open().
 *
 * Return: 0, -EINVAL, -EUSERS, -ECONNABORTED, -EBADMSG (committed in shared
 * memory is not a position writers made), -ENOMEM.
 */
int sluice_chan_reader_open(struct sluice_chan *ch, enum sluice_chan_kind kind,
			    const struct sluice_chan_end_opts *opts,
			    struct sluice_chan_reader **out);
#define sluice_chan_reader_open(ch, kind, opts, out)			\
	sluice_chan_reader_open((ch), (kind), SLUICE__CHAN_END_OPTS(opts), (out))

/** sluice_chan_reader_close() - stop reading.  NULL is a no-op. */
void sluice_chan_reader_close(struct sluice_chan_reader *r);

/**
 * sluice_chan_read() - copy the next frame out.
 * @cap: room in @buf.
 * Return: the frame's length, -ENOBUFS if it is longer than @cap (it stays
 * to be read), or a common error.
 */
int sluice_chan_read(struct sluice_chan_reader *r, void *buf, size_t cap);
int sluice_chan_try_read(struct sluice_chan_reader *r, void *buf, size_t cap);

/**
 * sluice_chan_read_batch() - copy up to @n frames out.
 * @iov: buffers; each iov_len is set to its frame's length.
 * Return: how many frames (at least 1), or -ENOBUFS if the first frame does
 * not fit iov[0], or a common error.
 */
int sluice_chan_read_batch(struct sluice_chan_reader *r, struct iovec *iov,
			   unsigned int n);
int sluice_chan_try_read_batch(struct sluice_chan_reader *r, struct iovec *iov,
			       unsigned int n);

/**
 * sluice_chan_lost() - bytes a weak reader skipped at its last -EOVERFLOW
 * (slice headers and frames of every writer).  sluice_chan_lost_total()
 * adds up every overrun since the reader opened.
 */
uint64_t sluice_chan_lost(const struct sluice_chan_reader *r);
uint64_t sluice_chan_lost_total(const struct sluice_chan_reader *r);

/* Largest frame a single-frame slice can carry on this channel. */
size_t sluice_chan_frame_max(const struct sluice_chan *ch);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_CHAN_H */
