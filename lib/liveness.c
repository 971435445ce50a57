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
 *          death to a ring buffer.  The backend, lib/liveness_bpf.c, is
 *          called through lib/liveness_bpf.h, and reports each death to
 *          sluice__lv_exited().  A library built with BPF=0 has none, so
 *          every monitor there uses pidfds.
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
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>

#include <sluice/liveness.h>

#include "internal.h"
#include "liveness_bpf.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open		434
#endif

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
	struct sluice__lv_bpf *bpf;	/* the BPF backend, or NULL */

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

/* ---------------------------------------------------------------- backends */

/* The watch count bpftool shows, while the program has the entry. */
static void lv_bpf_count(struct sluice_liveness *m, struct lv_proc *p)
{
	if (p->in_map)
		sluice__lv_bpf_count(m->bpf, p->pid, p->start, p->nwatch);
}

/* Undo what lv_backend_add() or lv_proc_finish() did. */
static void lv_backend_del(struct sluice_liveness *m, struct lv_proc *p)
{
	if (p->in_map) {
		sluice__lv_bpf_del(m->bpf, p->pid, p->start);
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
		/* 0: a watched process of another start time has the pid. */
		err = sluice__lv_bpf_add(m->bpf, p->pid, p->start);
		if (err <= 0)
			return err;
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

/*
 * BPF: the program took the entry of (@pid, @start) when its last thread
 * exited, and reported it.  Not found: it fired already, or was
 * unwatched.  Not in the map: we saw it dying first and wait for it
 * already.
 */
void sluice__lv_exited(struct sluice_liveness *m, pid_t pid, uint64_t start,
		       uint64_t exit_ns)
{
	struct lv_proc *p;

	pthread_mutex_lock(&m->lock);
	p = lv_proc_find(m, pid, start);
	if (p && p->in_map) {
		/*
		 * The program deleted the entry: nothing of ours to remove.
		 * It reports the last thread's exit, after every thread set
		 * PF_EXITING, so sluice__proc_alive() already calls the
		 * process dead: no need to ask /proc (tens of microseconds).
		 */
		p->in_map = false;
		m->last = (struct sluice__lv_times){
			.exit_ns = exit_ns,
			.seen_ns = sluice__now_ns(CLOCK_MONOTONIC),
		};
		lv_proc_died(m, p);
	}
	pthread_mutex_unlock(&m->lock);
}

/*
 * BPF: the program dropped reports (its ring buffer was full), so some
 * entries are gone from its map with no event.  Find those processes by
 * looking up every entry we hold.  Rare, so a scan is fine.
 */
static void lv_bpf_check_dropped(struct sluice_liveness *m)
{
	size_t i;

	if (!sluice__lv_bpf_dropped(m->bpf))
		return;
	pthread_mutex_lock(&m->lock);
	for (i = 0; i <= m->procs.mask; i++) {
		struct lv_hnode *n, *next;

		for (n = m->procs.b[i]; n; n = next) {
			struct lv_proc *p = lv_entry(n, struct lv_proc, node);

			next = n->next;
			if (!p->in_map || sluice__lv_bpf_holds(m->bpf, p->pid))
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
				sluice__lv_bpf_consume(m->bpf);
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

	sluice__lv_bpf_close(m->bpf);
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

	if (!out || !SLUICE_OPTS_VALID(opts, sluice_liveness_opts, pin_root))
		return -EINVAL;
	backend = SLUICE_OPT(opts, sluice_liveness_opts, backend, SLUICE_LIVENESS_AUTO);
	flags = SLUICE_OPT(opts, sluice_liveness_opts, flags, 0);
	pin_root = SLUICE_OPT(opts, sluice_liveness_opts, pin_root, NULL);
	/* NULL: the backend's default.  Room for "/<pid>-<n>/<map>" under it. */
	if (backend > SLUICE_LIVENESS_PIDFD || (flags & ~SLUICE_LIVENESS_NO_PIN) ||
	    (pin_root && (!pin_root[0] || strlen(pin_root) >= PATH_MAX - 32)))
		return -EINVAL;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->fired, NULL);
	m->evfd = -1;
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
		err = sluice__lv_bpf_open(m, m->epfd, LV_TAG_RING, pin_root,
					  !(flags & SLUICE_LIVENESS_NO_PIN),
					  m->why, sizeof(m->why), &m->bpf);
		if (!err) {
			m->backend = SLUICE_LIVENESS_BPF;
			/* why is for AUTO's fallback only. */
			m->why[0] = '\0';
		} else if (backend == SLUICE_LIVENESS_BPF) {
			goto err_free;
		}
	}
	if (!m->bpf) {
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
