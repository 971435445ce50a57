/* SPDX-License-Identifier: MIT */
/*
 * Cancellation tokens.
 *
 * A token is a process-local flag that any thread may trigger once.  Every
 * sluice wait tied to a token (a blocked send or recv, later a request or a
 * peer watch) returns at once when it is triggered, with the token's reason
 * (-ECANCELED unless the trigger said otherwise), and so do later calls.
 * Tokens form trees: triggering a token triggers all its descendants.
 *
 * Tokens live in one process; a token in shared memory would let any peer
 * cancel anything.  The liveness monitor triggers tokens when a peer dies.
 */
#ifndef SLUICE_CANCEL_H
#define SLUICE_CANCEL_H

#ifdef __cplusplus
extern "C" {
#endif

struct sluice_cancel;

/**
 * sluice_cancel_create() - make a token.
 * @parent: a token whose trigger also triggers this one, or NULL.  If the
 *          parent has already been triggered, so is the new token.
 * @out:    receives the token.
 *
 * Return: 0, -EINVAL if @out is NULL, -ENOMEM.
 */
int sluice_cancel_create(struct sluice_cancel *parent,
			 struct sluice_cancel **out);

/**
 * sluice_cancel_destroy() - free a token.  Its children lose their parent
 * (they stay as they are, triggered or not).  No wait may still use it.
 * NULL is a no-op.
 */
void sluice_cancel_destroy(struct sluice_cancel *c);

/**
 * sluice_cancel_trigger() - cancel every wait tied to @c and its descendants.
 * @reason: the negative errno those waits return; 0 means -ECANCELED.
 *
 * Safe from any thread, any number of times: the first reason stays.
 *
 * Return: 0, or -EINVAL if @c is NULL or @reason is positive.
 */
int sluice_cancel_trigger(struct sluice_cancel *c, int reason);

/**
 * sluice_cancel_reason() - 0 while @c has not been triggered (or is NULL),
 * then the negative errno it was triggered with.
 */
int sluice_cancel_reason(const struct sluice_cancel *c);

/**
 * sluice_cancel_fd() - an eventfd that becomes readable when @c is
 * triggered, for poll(2) and epoll(7).  Made on first call, owned by @c.
 *
 * Return: the descriptor, -EINVAL if @c is NULL, or a negative errno from
 * eventfd(2).
 */
int sluice_cancel_fd(struct sluice_cancel *c);

#ifdef __cplusplus
}
#endif

#endif /* SLUICE_CANCEL_H */
