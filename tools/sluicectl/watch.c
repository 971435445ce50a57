// SPDX-License-Identifier: MIT
/*
 * sluicectl watch: a line for each death of a process attached to a ring
 * or a channel, as a liveness monitor sees it.  Regions and their peers
 * are scanned again every second; each process is watched once, however
 * many places it holds.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <sluice.h>
#include <sluice/liveness.h>

#include "internal.h"
#include "sluicectl.h"

#define WATCH_RESCAN_NS		1000000000ull	/* look for new regions and peers */

/* Where a watched process is attached, as last seen. */
struct watch_att {
	char region[SLUICE_REGION_NAME_MAX + 1];
	char object[SLUICE_OBJ_NAME_MAX + 1];
	uint32_t type;
	enum sluice__peer_role role;
	uint32_t kind;
	bool seen;		/* in the scan under way */
};

struct watch_ctx;

/*
 * A process, watched once however many places it holds.  The monitor's
 * thread touches only died, died_ns and qnext, under the lock; the rest
 * belongs to the main thread.  A process is freed by the main thread only
 * when no watch of it can fire any more: printed after it fired, or
 * unwatched before.
 */
struct watch_proc {
	struct watch_proc *next;	/* all of them */
	struct watch_ctx *w;
	pid_t pid;
	uint64_t start;			/* 0: not known (it was dead when seen) */
	uint64_t id;			/* of its watch, if watching */
	bool watching;
	bool stale;			/* dead when the watch began: not news */
	bool warned;			/* a failed watch was reported */
	bool seen;			/* in the scan under way */
	struct watch_att *att;
	unsigned int natt, catt;
	/* Under the lock. */
	bool died;			/* queued, or printed */
	bool printed;
	uint64_t died_ns;		/* CLOCK_REALTIME, when it was seen dead */
	struct watch_proc *qnext;
};

/* A region being watched, kept mapped between scans. */
struct watch_region {
	struct watch_region *next;
	char name[SLUICE_REGION_NAME_MAX + 1];
	struct sluice_region *r;	/* NULL: not open (now) */
	int err;			/* why not, as last reported */
	bool seen;
};

struct watch_ctx {
	struct sluice_liveness *m;
	bool json;
	char *const *names;		/* regions named, or NULL: all of them */
	int nnames;
	bool initial;			/* the first scan */
	struct watch_proc *procs;
	struct watch_region *regions;
	int efd;			/* eventfd: deaths are queued */
	pthread_mutex_t lock;		/* the queue, and died/printed */
	struct watch_proc *queue, **qtail;
};

/* Lock held.  Queue @p's death, once. */
static void watch_queue(struct watch_ctx *w, struct watch_proc *p)
{
	if (p->died)
		return;
	p->died = true;
	p->died_ns = sluice__now_ns(CLOCK_REALTIME);
	p->qnext = NULL;
	*w->qtail = p;
	w->qtail = &p->qnext;
}

/* The monitor saw a watched process die: queue it, wake the main loop. */
static void watch_died(pid_t pid, uint64_t start, void *arg)
{
	struct watch_proc *p = arg;
	struct watch_ctx *w = p->w;
	uint64_t one = 1;

	(void)pid;
	(void)start;
	pthread_mutex_lock(&w->lock);
	watch_queue(w, p);
	pthread_mutex_unlock(&w->lock);
	/*
	 * After the unlock p may be freed: only w from here.  The write
	 * cannot fail (one a death does not overflow the counter).
	 */
	(void)!write(w->efd, &one, sizeof(one));
}

static void watch_proc_free(struct watch_proc *p)
{
	free(p->att);
	free(p);
}

static bool watch_proc_died(struct watch_ctx *w, struct watch_proc *p,
			    bool *printed)
{
	bool died;

	pthread_mutex_lock(&w->lock);
	died = p->died;
	if (printed)
		*printed = p->printed;
	pthread_mutex_unlock(&w->lock);
	return died;
}

static int watch_att_add(struct watch_proc *p, const char *region,
			 const struct sluice__peer *pe)
{
	struct watch_att *a;
	unsigned int i;

	for (i = 0; i < p->natt; i++) {
		a = &p->att[i];
		if (a->role == pe->role && a->kind == pe->kind &&
		    !strcmp(a->region, region) && !strcmp(a->object, pe->object)) {
			a->seen = true;
			return 0;
		}
	}
	if (p->natt == p->catt) {
		unsigned int cap = p->catt ? 2 * p->catt : 4;

		a = realloc(p->att, cap * sizeof(*a));
		if (!a)
			return -ENOMEM;
		p->att = a;
		p->catt = cap;
	}
	a = &p->att[p->natt++];
	memset(a, 0, sizeof(*a));
	snprintf(a->region, sizeof(a->region), "%s", region);
	snprintf(a->object, sizeof(a->object), "%s", pe->object);
	a->type = pe->type;
	a->role = pe->role;
	a->kind = pe->kind;
	a->seen = true;
	return 0;
}

/* Watch @p, if it is not yet; a process already dead fires at once. */
static void watch_proc_arm(struct watch_ctx *w, struct watch_proc *p)
{
	int err;

	if (p->watching || p->stale)
		return;
	err = sluice_liveness_watch_fn(w->m, p->pid, p->start, watch_died, p,
				       &p->id);
	if (!err) {
		p->watching = true;
		return;
	}
	/* Tried again at every scan; said once. */
	if (!p->warned)
		errmsg("watch: cannot watch pid %d: %s (trying again)",
		       (int)p->pid, strerror(-err));
	p->warned = true;
}

struct watch_walk {
	struct watch_ctx *w;
	const char *region;
};

static int watch_peer(const struct sluice__peer *pe, void *ctx)
{
	struct watch_walk *ww = ctx;
	struct watch_ctx *w = ww->w;
	struct watch_proc *p;
	uint64_t start = pe->start;
	bool fresh = false;
	int err;

	/* A side already marked dead: its death is old news. */
	if (pe->marked_dead)
		return 0;
	/* Not known: the process's now, or 0 if it is gone. */
	if (!start && sluice__proc_start_time(pe->pid, &start))
		start = 0;
	for (p = w->procs; p; p = p->next)
		if (p->pid == pe->pid && p->start == start)
			break;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		p->w = w;
		p->pid = pe->pid;
		p->start = start;
		p->next = w->procs;
		w->procs = p;
		fresh = true;
	}
	p->seen = true;
	/*
	 * Where it was when it died is what its death line says; and a
	 * process dead is watched no more, so that nothing fires on it after
	 * its line is printed and it is freed.
	 */
	if (watch_proc_died(w, p, NULL))
		return 0;
	err = watch_att_add(p, ww->region, pe);
	if (err)
		return err;
	if (fresh && !(start && sluice__proc_alive(pe->pid, start))) {
		/*
		 * Dead already.  At the first scan, before we were looking;
		 * later, it came and went between two scans: news.
		 */
		if (w->initial) {
			p->stale = true;
		} else {
			pthread_mutex_lock(&w->lock);
			watch_queue(w, p);
			pthread_mutex_unlock(&w->lock);
		}
		return 0;
	}
	watch_proc_arm(w, p);
	return 0;
}

/* The region @name, open; NULL if it cannot be opened now. */
static struct sluice_region *watch_region_get(struct watch_ctx *w,
					      const char *name)
{
	SLUICE_OPTS(sluice_region_open_opts, oo, .wait_ms = -1);
	struct watch_region *wr;
	struct stat st;
	int err;

	for (wr = w->regions; wr; wr = wr->next)
		if (!strcmp(wr->name, name))
			break;
	if (!wr) {
		wr = calloc(1, sizeof(*wr));
		if (!wr)
			return NULL;
		snprintf(wr->name, sizeof(wr->name), "%s", name);
		wr->next = w->regions;
		w->regions = wr;
	}
	wr->seen = true;
	/* Removed (and perhaps made again) since: let the old one go. */
	if (wr->r && (fstat(sluice_region_fd(wr->r), &st) || !st.st_nlink)) {
		sluice_region_close(wr->r);
		wr->r = NULL;
	}
	if (wr->r)
		return wr->r;
	err = sluice_region_open(name, &oo, &wr->r);
	if (err) {
		wr->r = NULL;
		/*
		 * Said once per cause.  A region being made is not worth a
		 * word, nor one removed while we listed, unless it was named.
		 */
		if (err != wr->err && err != -EAGAIN && (w->names || err != -ENOENT))
			errmsg("watch %s: %s%s", name, strerror(-err),
			       err == -ENOENT ? " (watching for it)" : "");
		wr->err = err;
		return NULL;
	}
	wr->err = 0;
	return wr->r;
}

static int watch_region_scan(struct watch_ctx *w, const char *name)
{
	struct watch_walk ww = { .w = w, .region = name };
	struct sluice_region_info info = { .sz = sizeof(info) };
	struct sluice_region *r = watch_region_get(w, name);
	struct sluice_obj_info oi;
	unsigned int i;
	int err;

	if (!r)
		return 0;
	if (sluice_region_info(r, &info) || region_dir_check(r))
		return 0;
	for (i = 0; i < info.nr_objs; i++) {
		if (region_obj(r, i, &oi))
			continue;
		err = sluice__obj_peers(r, &oi, watch_peer, &ww);
		if (err == -ENOMEM)
			return err;
	}
	return 0;
}

static int watch_scan_one(const char *name, void *ctx)
{
	return watch_region_scan(ctx, name);
}

/*
 * After a scan: forget regions gone, places given up by live processes,
 * and processes no longer worth watching.
 */
static void watch_sweep(struct watch_ctx *w)
{
	struct watch_region *wr, **wrp = &w->regions;
	struct watch_proc *p, **pp = &w->procs;
	bool died, printed;
	unsigned int i, n;

	while ((wr = *wrp)) {
		if (wr->seen) {
			wrp = &wr->next;
			continue;
		}
		*wrp = wr->next;
		sluice_region_close(wr->r);
		free(wr);
	}
	while ((p = *pp)) {
		died = watch_proc_died(w, p, &printed);
		if (died || p->stale) {
			/* Kept while it shows, so that it is not news again. */
			if (p->seen || (died && !printed)) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			watch_proc_free(p);
			continue;
		}
		/*
		 * A place not seen this time was given up, if the process
		 * still runs; if it does not, its death is on its way to the
		 * queue, and says where it was.
		 */
		for (i = n = 0; i < p->natt; i++)
			n += p->att[i].seen;
		if (n < p->natt && sluice__proc_alive(p->pid, p->start)) {
			for (i = n = 0; i < p->natt; i++)
				if (p->att[i].seen)
					p->att[n++] = p->att[i];
			p->natt = n;
		}
		/* Once unwatched its function does not run: free to free. */
		if (!p->natt &&
		    (!p->watching || !sluice_liveness_unwatch(w->m, p->id))) {
			*pp = p->next;
			watch_proc_free(p);
			continue;
		}
		pp = &p->next;
	}
}

static int watch_scan(struct watch_ctx *w)
{
	struct watch_region *wr;
	struct watch_proc *p;
	unsigned int i;
	int err = 0;

	for (wr = w->regions; wr; wr = wr->next)
		wr->seen = false;
	for (p = w->procs; p; p = p->next) {
		p->seen = false;
		for (i = 0; i < p->natt; i++)
			p->att[i].seen = false;
	}
	if (w->names) {
		for (i = 0; !err && i < (unsigned int)w->nnames; i++)
			err = watch_region_scan(w, w->names[i]);
	} else {
		/* A name in both directories is the same region: seen twice, once. */
		err = sluice_region_foreach(watch_scan_one, w);
		if (err > 0)
			err = -EIO;
	}
	/* A region directory that could not be read: keep what we have. */
	if (!err)
		watch_sweep(w);
	return err == -ENOMEM ? err : 0;
}

/* "2026-11-23 20:31:02.123", local time. */
static const char *fmt_time_ms(uint64_t ns, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t n;

	if (!localtime_r(&t, &tm))
		return "?";
	n = strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03u", (unsigned int)(ns % 1000000000u / 1000000));
	return buf;
}

static void watch_print(const struct watch_ctx *w, const struct watch_proc *p)
{
	const struct watch_att *a;
	struct sluice__peer pe;
	struct json j;
	char when[64];
	unsigned int i;

	for (i = 0; i < p->natt; i++) {
		a = &p->att[i];
		/* A document a line: each starts afresh. */
		j = (struct json){ .f = stdout, .compact = true };
		pe = (struct sluice__peer){ .type = a->type, .role = a->role, .kind = a->kind };
		if (!w->json) {
			printf("%s region %s object %s: %s pid %d died\n",
			       fmt_time_ms(p->died_ns, when, sizeof(when)), a->region,
			       a->object, peer_role_str(&pe), (int)p->pid);
			continue;
		}
		json_open(&j, NULL, '{');
		json_str(&j, "event", "death");
		json_str(&j, "time", fmt_time(p->died_ns, true, when, sizeof(when)));
		json_u64(&j, "time_ns", p->died_ns);
		json_str(&j, "region", a->region);
		json_str(&j, "object", a->object);
		json_str(&j, "type", obj_type_str(a->type));
		json_str(&j, "role", peer_role_word(a->role));
		if (a->type == SLUICE_OBJ_CHAN)
			json_str(&j, "kind", a->kind == SLUICE_CHAN_WEAK ? "weak" : "strong");
		json_int(&j, "pid", p->pid);
		json_u64(&j, "start", p->start);
		json_close(&j, '}');
	}
}

/*
 * Print the deaths queued, up to @max in all (0: no limit), counting them
 * in @deaths.  A process that had given up every place is not counted.
 */
static void watch_drain(struct watch_ctx *w, unsigned long *deaths,
			unsigned long max)
{
	struct watch_proc *p, *q;

	pthread_mutex_lock(&w->lock);
	q = w->queue;
	w->queue = NULL;
	w->qtail = &w->queue;
	for (p = q; p; p = p->qnext)
		p->printed = true;
	pthread_mutex_unlock(&w->lock);
	/* Printed now, so the sweep may free them; not before we are done. */
	for (p = q; p; p = p->qnext) {
		if (!p->natt || (max && *deaths >= max))
			continue;
		watch_print(w, p);
		++*deaths;
	}
}

/* Seconds, with a fraction: "10", "0.5". */
static int parse_secs(const char *s, uint64_t *ns)
{
	char *end;
	double v;

	if ((*s < '0' || *s > '9') && *s != '.')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || !(v > 0) || v > 1e9)
		return -EINVAL;
	*ns = (uint64_t)(v * 1e9);
	return 0;
}

static void watch_start_line(const struct watch_ctx *w)
{
	struct json j = { .f = stdout, .compact = true };
	enum sluice_liveness_backend b = sluice_liveness_backend(w->m);
	const char *why = sluice_liveness_why(w->m);
	const struct watch_region *wr;
	const struct watch_proc *p;
	unsigned int nr = 0, np = 0;

	for (wr = w->regions; wr; wr = wr->next)
		nr += wr->r != NULL;
	for (p = w->procs; p; p = p->next)
		np += p->watching;
	if (!w->json) {
		printf("watching %u process%s in %u region%s with %s%s%s%s\n", np,
		       np == 1 ? "" : "es", nr, nr == 1 ? "" : "s",
		       sluice_liveness_backend_str(b), *why ? " (" : "", why,
		       *why ? ")" : "");
		return;
	}
	json_open(&j, NULL, '{');
	json_str(&j, "event", "start");
	json_str(&j, "backend", sluice_liveness_backend_str(b));
	json_str(&j, "fallback", *why ? why : NULL);
	json_u64(&j, "regions", nr);
	json_u64(&j, "processes", np);
	json_close(&j, '}');
}

static void watch_free(struct watch_ctx *w)
{
	struct watch_region *wr;
	struct watch_proc *p;

	while ((p = w->procs)) {
		w->procs = p->next;
		watch_proc_free(p);
	}
	while ((wr = w->regions)) {
		w->regions = wr->next;
		sluice_region_close(wr->r);
		free(wr);
	}
}

/* Flush what was printed; false when stdout is gone (*err says why). */
static bool watch_flush(int *err)
{
	if (!fflush(stdout) && !ferror(stdout))
		return true;
	*err = errno ? -errno : -EIO;
	return false;
}

static int run_watch(const struct ctl_cmd *c, int argc, char **argv,
		     struct ctl_opts *o)
{
	static const struct option longopts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	SLUICE_OPTS(sluice_liveness_opts, lo, .backend = SLUICE_LIVENESS_AUTO);
	struct watch_ctx w = { .efd = -1 };
	unsigned long count = 0, deaths = 0;
	uint64_t timeout = 0, now, end = UINT64_MAX, next, wait;
	struct pollfd pfd[2];
	sigset_t sigs, old;
	int ch, i, sfd = -1, err, out_err = 0, ret = EXIT_FAIL;
	bool timed_out = false;

	while ((ch = getopt_long(argc, argv, ":n:t:jh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'n':
			if (parse_count(optarg, &count) || !count)
				return usage_err(c->name, "bad count '%s'", optarg);
			break;
		case 't':
			if (parse_secs(optarg, &timeout))
				return usage_err(c->name, "bad timeout '%s'", optarg);
			break;
		case 'j':
			o->json = true;
			break;
		case 'h':
			cmd_help(c, stdout);
			return EXIT_OK;
		default:
			return bad_option(c->name, ch, argv);
		}
	}
	for (i = optind; i < argc; i++) {
		err = sluice__name_check(argv[i], SLUICE_REGION_NAME_MAX);
		if (err) {
			errmsg_errno(c->name, argv[i], err);
			return EXIT_FAIL;
		}
	}
	w.json = o->json;
	w.names = optind < argc ? argv + optind : NULL;
	w.nnames = argc - optind;
	w.qtail = &w.queue;
	pthread_mutex_init(&w.lock, NULL);
	/* Each death on its line at once, even into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	/* A reader that goes away ends the watch; not a signal that leaves pins. */
	signal(SIGPIPE, SIG_IGN);

	/* Blocked before the monitor's thread starts, so it inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &sigs, &old);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		errmsg_errno(c->name, "signalfd", -errno);
		goto out;
	}
	w.efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w.efd < 0) {
		errmsg_errno(c->name, "eventfd", -errno);
		goto out;
	}
	err = sluice_liveness_create(&lo, &w.m);
	if (err) {
		errmsg_errno(c->name, "liveness monitor", err);
		goto out;
	}

	w.initial = true;
	err = watch_scan(&w);
	w.initial = false;
	if (err)
		goto err_scan;
	watch_start_line(&w);
	now = sluice__now_ns(CLOCK_MONOTONIC);
	if (timeout)
		end = now + timeout;
	next = now + WATCH_RESCAN_NS;
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = w.efd, .events = POLLIN };
	for (;;) {
		watch_drain(&w, &deaths, count);
		if (!watch_flush(&out_err) || (count && deaths >= count))
			break;
		now = sluice__now_ns(CLOCK_MONOTONIC);
		if (now >= end) {
			timed_out = true;
			break;
		}
		if (now >= next) {
			err = watch_scan(&w);
			if (err)
				goto err_scan;
			next = now + WATCH_RESCAN_NS;
			continue;	/* a scan may have queued deaths */
		}
		wait = (next < end ? next : end) - now;
		if (poll(pfd, 2, (int)((wait + 999999) / 1000000)) < 0 && errno != EINTR) {
			errmsg_errno(c->name, "poll", -errno);
			goto out;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			/*
			 * SIGINT or SIGTERM: a clean end.  Taken, so that
			 * it is not delivered when the mask is restored.
			 */
			(void)!read(sfd, &si, sizeof(si));
			break;
		}
		if (pfd[1].revents) {
			uint64_t v;

			if (read(w.efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				break;
		}
	}
	ret = EXIT_OK;
	if (out_err && out_err != -EPIPE) {
		errmsg("write error: %s", strerror(-out_err));
		ret = EXIT_FAIL;
	}
	if (out_err) {
		/* Nowhere to write what is left: drop it, so main does not try. */
		__fpurge(stdout);
		clearerr(stdout);
	}
	if (timed_out && count && deaths < count) {
		errmsg("%s: %lu of %lu deaths before the timeout", c->name, deaths, count);
		ret = EXIT_FAIL;
	}
	goto out;

err_scan:
	errmsg_errno(c->name, NULL, err);
out:
	/* First: once it returns, watch_died() runs no more. */
	sluice_liveness_destroy(w.m);
	watch_free(&w);
	if (w.efd >= 0)
		close(w.efd);
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_mutex_destroy(&w.lock);
	return ret;
}


const struct ctl_cmd cmd_watch = {
	.name = "watch",
	.run = run_watch,
	.usage = "[--json] [--count N] [--timeout SEC] [REGION...]",
	.brief = "print peer deaths as they happen",
	.help =
"Watch every process attached to the rings and channels of the named\n"
"regions (all regions if none is named) and print a line when one dies:\n"
"\n"
"  2026-11-23 20:31:02.123 region R object O: producer pid 1234 died\n"
"\n"
"A liveness monitor sees each death at once (BPF where it loads, else\n"
"pidfd; the first line says which, and why not BPF).  Regions and peers\n"
"are looked for again every second.  A process attached to several\n"
"objects gets a line for each, and counts as one death.  Runs until\n"
"SIGINT or SIGTERM (exit status 0).\n",
	.opts = (const struct ctl_opt_help[]){
		{ "-n, --count N", "stop after N deaths" },
		{ "-t, --timeout SEC", "stop after SEC seconds (status 1 if --count deaths\n"
				       "were not seen by then)" },
		{ "-j, --json", "one JSON object a line: a \"start\" event, then\n"
				"\"death\" events" },
		{ NULL },
	},
};
