// SPDX-License-Identifier: MIT
/*
 * Cancellation tokens.
 *
 * The fast path is one acquire load of @reason.  Everything else (the tree,
 * the list of sleeping waiters) changes rarely and is kept under one
 * process-wide mutex, which keeps the tree easy to reason about: no lock
 * order to get wrong, and a trigger sees a stable tree.
 *
 * A sleeping waiter sleeps on a futex word in shared memory that its peer
 * also uses (an event counter).  To wake it, a trigger bumps that counter
 * and wakes the futex: the bump makes the waiter's FUTEX_WAIT fail if it has
 * not gone to sleep yet, so the wakeup cannot be lost.  A waiter is in the
 * list from before it checks @reason until after it wakes up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include <sluice/cancel.h>

#include "cancel_internal.h"
#include "futex.h"

struct sluice_cancel {
	_Atomic int reason;		/* 0, then the negative errno, once */
	struct sluice_cancel *parent;
	struct sluice_cancel *children;	/* first child */
	struct sluice_cancel *next;	/* next sibling */
	struct sluice_cancel **pprev;	/* link that points at us */
	struct sluice__waiter *waiters;
	int efd;
};

static pthread_mutex_t tree_lock = PTHREAD_MUTEX_INITIALIZER;

static void link_child(struct sluice_cancel *parent, struct sluice_cancel *c)
{
	c->parent = parent;
	c->next = parent->children;
	if (c->next)
		c->next->pprev = &c->next;
	parent->children = c;
	c->pprev = &parent->children;
}

static void unlink_child(struct sluice_cancel *c)
{
	if (!c->parent)
		return;
	*c->pprev = c->next;
	if (c->next)
		c->next->pprev = c->pprev;
	c->parent = NULL;
	c->next = NULL;
	c->pprev = NULL;
}

int sluice_cancel_create(struct sluice_cancel *parent,
			 struct sluice_cancel **out)
{
	struct sluice_cancel *c;

	if (!out)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->efd = -1;
	if (parent) {
		pthread_mutex_lock(&tree_lock);
		link_child(parent, c);
		atomic_store_explicit(&c->reason,
				      atomic_load_explicit(&parent->reason,
							   memory_order_relaxed),
				      memory_order_relaxed);
		pthread_mutex_unlock(&tree_lock);
	}
	*out = c;
	return 0;
}

void sluice_cancel_destroy(struct sluice_cancel *c)
{
	struct sluice_cancel *child, *next;

	if (!c)
		return;
	pthread_mutex_lock(&tree_lock);
	unlink_child(c);
	for (child = c->children; child; child = next) {
		next = child->next;
		child->parent = NULL;
		child->next = NULL;
		child->pprev = NULL;
	}
	pthread_mutex_unlock(&tree_lock);
	if (c->efd >= 0)
		close(c->efd);
	free(c);
}

/* Called with tree_lock held. */
static void trigger_locked(struct sluice_cancel *c, int reason)
{
	struct sluice__waiter *w;
	struct sluice_cancel *child;
	uint64_t one = 1;

	if (atomic_load_explicit(&c->reason, memory_order_relaxed))
		return;
	/*
	 * Pairs with the acquire load in sluice_cancel_reason(): whoever
	 * sees the reason sees everything the triggering thread did before.
	 */
	atomic_store_explicit(&c->reason, reason, memory_order_release);
	for (w = c->waiters; w; w = w->next) {
		/* Changes the word so a waiter about to sleep will not. */
		sluice__futex_bump_wake(w->word);
	}
	if (c->efd >= 0 && write(c->efd, &one, sizeof(one)) < 0) {
		/* The counter is far from overflow: nothing to do. */
	}
	for (child = c->children; child; child = child->next)
		trigger_locked(child, reason);
}

int sluice_cancel_trigger(struct sluice_cancel *c, int reason)
{
	if (!c || reason > 0)
		return -EINVAL;
	pthread_mutex_lock(&tree_lock);
	trigger_locked(c, reason ? reason : -ECANCELED);
	pthread_mutex_unlock(&tree_lock);
	return 0;
}

int sluice_cancel_reason(const struct sluice_cancel *c)
{
	return c ? atomic_load_explicit(&c->reason, memory_order_acquire) : 0;
}

int sluice_cancel_fd(struct sluice_cancel *c)
{
	uint64_t one = 1;
	int fd;

	if (!c)
		return -EINVAL;
	pthread_mutex_lock(&tree_lock);
	if (c->efd < 0) {
		c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (c->efd >= 0 && atomic_load_explicit(&c->reason, memory_order_relaxed) &&
		    write(c->efd, &one, sizeof(one)) < 0) {
			/* A fresh counter cannot overflow. */
		}
	}
	fd = c->efd >= 0 ? c->efd : -errno;
	pthread_mutex_unlock(&tree_lock);
	return fd;
}

int sluice__cancel_arm(struct sluice_cancel *c, struct sluice__waiter *w,
		       _Atomic uint32_t *word)
{
	int reason;

	if (!c)
		return 0;
	w->word = word;
	pthread_mutex_lock(&tree_lock);
	w->next = c->waiters;
	w->pprev = &c->waiters;
	if (w->next)
		w->next->pprev = &w->next;
	c->waiters = w;
	reason = atomic_load_explicit(&c->reason, memory_order_relaxed);
	pthread_mutex_unlock(&tree_lock);
	return reason;
}

void sluice__cancel_disarm(struct sluice_cancel *c, struct sluice__waiter *w)
{
	if (!c)
		return;
	pthread_mutex_lock(&tree_lock);
	*w->pprev = w->next;
	if (w->next)
		w->next->pprev = w->pprev;
	pthread_mutex_unlock(&tree_lock);
}
