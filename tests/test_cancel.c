// SPDX-License-Identifier: MIT
/*
 * Cancellation tokens: every promise of include/sluice/cancel.h.
 *
 * Reasons, trees (children and grandchildren triggered with their parent,
 * a child born under a triggered parent, a destroyed parent letting go of
 * its children), the eventfd, and triggers from other threads, racing each
 * other and the tree.  That a trigger wakes a ring's blocked wait is proved
 * in test_spsc.c, where the rings are.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <sluice/cancel.h>

#include "harness.h"

/* ---------------------------------------------------------------- helpers */

static struct sluice_cancel *make(struct sluice_cancel *parent)
{
	struct sluice_cancel *c = NULL;

	assert_int_equal(sluice_cancel_create(parent, &c), 0);
	assert_non_null(c);
	return c;
}

/* poll(2) @fd for @ms milliseconds: true if it is readable. */
static bool readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int n;

	n = poll(&p, 1, ms);
	assert_true(n >= 0);
	return n == 1 && (p.revents & POLLIN);
}

/* ---------------------------------------------------------------- reasons */

static void test_a_new_token_has_no_reason(void **state)
{
	struct sluice_cancel *c = make(NULL);

	(void)state;
	assert_int_equal(sluice_cancel_reason(c), 0);
	sluice_cancel_destroy(c);
}

static void test_reason_of_null_is_zero(void **state)
{
	(void)state;
	assert_int_equal(sluice_cancel_reason(NULL), 0);
}

static void test_trigger_without_a_reason_gives_ecanceled(void **state)
{
	struct sluice_cancel *c = make(NULL);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(c, 0), 0);
	assert_int_equal(sluice_cancel_reason(c), -ECANCELED);
	sluice_cancel_destroy(c);
}

static void test_trigger_keeps_a_custom_reason(void **state)
{
	struct sluice_cancel *c = make(NULL);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(c, -ESHUTDOWN), 0);
	assert_int_equal(sluice_cancel_reason(c), -ESHUTDOWN);
	sluice_cancel_destroy(c);
}

static void test_the_first_reason_wins(void **state)
{
	struct sluice_cancel *c = make(NULL);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(c, -ETIMEDOUT), 0);
	assert_int_equal(sluice_cancel_trigger(c, -ESHUTDOWN), 0);
	assert_int_equal(sluice_cancel_trigger(c, 0), 0);
	assert_int_equal(sluice_cancel_reason(c), -ETIMEDOUT);
	sluice_cancel_destroy(c);
}

static void test_a_positive_reason_is_einval_and_triggers_nothing(void **state)
{
	struct sluice_cancel *c = make(NULL);
	struct sluice_cancel *child = make(c);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(c, ECANCELED), -EINVAL);
	assert_int_equal(sluice_cancel_trigger(c, 1), -EINVAL);
	assert_int_equal(sluice_cancel_reason(c), 0);
	assert_int_equal(sluice_cancel_reason(child), 0);
	/* Still triggerable with a proper reason afterwards. */
	assert_int_equal(sluice_cancel_trigger(c, -EPIPE), 0);
	assert_int_equal(sluice_cancel_reason(c), -EPIPE);
	sluice_cancel_destroy(child);
	sluice_cancel_destroy(c);
}

static void test_trigger_of_null_is_einval(void **state)
{
	(void)state;
	assert_int_equal(sluice_cancel_trigger(NULL, 0), -EINVAL);
}

static void test_create_without_out_is_einval(void **state)
{
	struct sluice_cancel *parent = make(NULL);

	(void)state;
	assert_int_equal(sluice_cancel_create(NULL, NULL), -EINVAL);
	assert_int_equal(sluice_cancel_create(parent, NULL), -EINVAL);
	sluice_cancel_destroy(parent);
}

static void test_destroy_of_null_is_a_no_op(void **state)
{
	(void)state;
	sluice_cancel_destroy(NULL);
}

/* ---------------------------------------------------------------- trees */

static void test_children_and_grandchildren_are_triggered_with_their_parent(void **state)
{
	struct sluice_cancel *root = make(NULL);
	struct sluice_cancel *a = make(root), *b = make(root);
	struct sluice_cancel *a1 = make(a), *a2 = make(a), *b1 = make(b);
	struct sluice_cancel *a11 = make(a1);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(root, -ENOTCONN), 0);
	assert_int_equal(sluice_cancel_reason(root), -ENOTCONN);
	assert_int_equal(sluice_cancel_reason(a), -ENOTCONN);
	assert_int_equal(sluice_cancel_reason(b), -ENOTCONN);
	assert_int_equal(sluice_cancel_reason(a1), -ENOTCONN);
	assert_int_equal(sluice_cancel_reason(a2), -ENOTCONN);
	assert_int_equal(sluice_cancel_reason(b1), -ENOTCONN);
	assert_int_equal(sluice_cancel_reason(a11), -ENOTCONN);
	sluice_cancel_destroy(a11);
	sluice_cancel_destroy(b1);
	sluice_cancel_destroy(a2);
	sluice_cancel_destroy(a1);
	sluice_cancel_destroy(b);
	sluice_cancel_destroy(a);
	sluice_cancel_destroy(root);
}

static void test_triggering_a_child_leaves_its_parent_and_siblings_alone(void **state)
{
	struct sluice_cancel *root = make(NULL);
	struct sluice_cancel *a = make(root), *b = make(root);
	struct sluice_cancel *a1 = make(a), *b1 = make(b);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(a, -EIO), 0);
	assert_int_equal(sluice_cancel_reason(a), -EIO);
	assert_int_equal(sluice_cancel_reason(a1), -EIO);
	assert_int_equal(sluice_cancel_reason(root), 0);
	assert_int_equal(sluice_cancel_reason(b), 0);
	assert_int_equal(sluice_cancel_reason(b1), 0);
	sluice_cancel_destroy(b1);
	sluice_cancel_destroy(a1);
	sluice_cancel_destroy(b);
	sluice_cancel_destroy(a);
	sluice_cancel_destroy(root);
}

static void test_a_child_keeps_its_own_earlier_reason_when_the_parent_fires(void **state)
{
	struct sluice_cancel *root = make(NULL);
	struct sluice_cancel *a = make(root), *b = make(root);
	struct sluice_cancel *a1 = make(a);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(a, -EIO), 0);
	assert_int_equal(sluice_cancel_trigger(root, -ESHUTDOWN), 0);
	assert_int_equal(sluice_cancel_reason(root), -ESHUTDOWN);
	assert_int_equal(sluice_cancel_reason(b), -ESHUTDOWN);
	assert_int_equal(sluice_cancel_reason(a), -EIO);
	assert_int_equal(sluice_cancel_reason(a1), -EIO);
	sluice_cancel_destroy(a1);
	sluice_cancel_destroy(b);
	sluice_cancel_destroy(a);
	sluice_cancel_destroy(root);
}

static void test_a_child_made_under_a_triggered_parent_starts_triggered(void **state)
{
	struct sluice_cancel *root = make(NULL), *child, *grandchild;

	(void)state;
	assert_int_equal(sluice_cancel_trigger(root, -EHOSTDOWN), 0);
	child = make(root);
	assert_int_equal(sluice_cancel_reason(child), -EHOSTDOWN);
	grandchild = make(child);
	assert_int_equal(sluice_cancel_reason(grandchild), -EHOSTDOWN);
	sluice_cancel_destroy(grandchild);
	sluice_cancel_destroy(child);
	sluice_cancel_destroy(root);
}

static void test_destroying_a_parent_detaches_its_children(void **state)
{
	struct sluice_cancel *top = make(NULL);
	struct sluice_cancel *mid = make(top);
	struct sluice_cancel *c1 = make(mid), *c2 = make(mid), *c3 = make(mid);
	struct sluice_cancel *g = make(c2);

	(void)state;
	sluice_cancel_destroy(mid);
	/* The children stay as they were... */
	assert_int_equal(sluice_cancel_reason(c1), 0);
	assert_int_equal(sluice_cancel_reason(c2), 0);
	assert_int_equal(sluice_cancel_reason(c3), 0);
	/* ...and are out of reach of the destroyed parent's own parent. */
	assert_int_equal(sluice_cancel_trigger(top, 0), 0);
	assert_int_equal(sluice_cancel_reason(top), -ECANCELED);
	assert_int_equal(sluice_cancel_reason(c1), 0);
	assert_int_equal(sluice_cancel_reason(c2), 0);
	assert_int_equal(sluice_cancel_reason(c3), 0);
	assert_int_equal(sluice_cancel_reason(g), 0);
	/* They still work as roots of their own trees. */
	assert_int_equal(sluice_cancel_trigger(c2, -EIO), 0);
	assert_int_equal(sluice_cancel_reason(g), -EIO);
	assert_int_equal(sluice_cancel_reason(c1), 0);
	assert_int_equal(sluice_cancel_reason(c3), 0);
	/* And each can be destroyed with no parent left (ASan checks the unlink). */
	sluice_cancel_destroy(c3);
	sluice_cancel_destroy(c1);
	sluice_cancel_destroy(g);
	sluice_cancel_destroy(c2);
	sluice_cancel_destroy(top);
}

static void test_a_triggered_childs_state_survives_its_parents_destruction(void **state)
{
	struct sluice_cancel *p = make(NULL), *c = make(p);

	(void)state;
	assert_int_equal(sluice_cancel_trigger(p, -EPIPE), 0);
	sluice_cancel_destroy(p);
	assert_int_equal(sluice_cancel_reason(c), -EPIPE);
	sluice_cancel_destroy(c);
}

static void test_destroying_a_child_unlinks_it_from_its_siblings(void **state)
{
	struct sluice_cancel *p = make(NULL);
	struct sluice_cancel *c[5];
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		c[i] = make(p);
	/* First, middle and last of the sibling list. */
	sluice_cancel_destroy(c[0]);
	sluice_cancel_destroy(c[2]);
	sluice_cancel_destroy(c[4]);
	assert_int_equal(sluice_cancel_trigger(p, -EIO), 0);
	assert_int_equal(sluice_cancel_reason(c[1]), -EIO);
	assert_int_equal(sluice_cancel_reason(c[3]), -EIO);
	sluice_cancel_destroy(c[1]);
	sluice_cancel_destroy(c[3]);
	sluice_cancel_destroy(p);
}

static void test_a_deep_chain_is_triggered_to_the_end(void **state)
{
	enum { DEPTH = 1000 };
	struct sluice_cancel **c = calloc(DEPTH, sizeof(*c));
	int i;

	(void)state;
	assert_non_null(c);
	c[0] = make(NULL);
	for (i = 1; i < DEPTH; i++)
		c[i] = make(c[i - 1]);
	assert_int_equal(sluice_cancel_trigger(c[0], -EL2HLT), 0);
	for (i = 0; i < DEPTH; i++)
		assert_int_equal(sluice_cancel_reason(c[i]), -EL2HLT);
	for (i = DEPTH - 1; i >= 0; i--)
		sluice_cancel_destroy(c[i]);
	free(c);
}

/* ---------------------------------------------------------------- eventfd */

static void test_fd_becomes_readable_when_triggered(void **state)
{
	struct sluice_cancel *c = make(NULL);
	int fd;

	(void)state;
	fd = sluice_cancel_fd(c);
	assert_true(fd >= 0);
	assert_false(readable(fd, 0));
	assert_int_equal(sluice_cancel_trigger(c, 0), 0);
	assert_true(readable(fd, 0));
	/* Made once, owned by the token. */
	assert_int_equal(sluice_cancel_fd(c), fd);
	sluice_cancel_destroy(c);
}

static void test_fd_made_after_the_trigger_is_readable_at_once(void **state)
{
	struct sluice_cancel *c = make(NULL);
	int fd;

	(void)state;
	assert_int_equal(sluice_cancel_trigger(c, -EIO), 0);
	fd = sluice_cancel_fd(c);
	assert_true(fd >= 0);
	assert_true(readable(fd, 0));
	sluice_cancel_destroy(c);
}

static void test_fd_of_a_child_is_readable_when_an_ancestor_is_triggered(void **state)
{
	struct sluice_cancel *root = make(NULL), *child = make(root);
	struct sluice_cancel *grandchild = make(child);
	int fd_child, fd_grandchild, fd_root;

	(void)state;
	fd_root = sluice_cancel_fd(root);
	fd_child = sluice_cancel_fd(child);
	fd_grandchild = sluice_cancel_fd(grandchild);
	assert_true(fd_root >= 0 && fd_child >= 0 && fd_grandchild >= 0);
	assert_true(fd_root != fd_child && fd_child != fd_grandchild);
	assert_false(readable(fd_grandchild, 0));
	assert_int_equal(sluice_cancel_trigger(root, 0), 0);
	assert_true(readable(fd_root, 0));
	assert_true(readable(fd_child, 0));
	assert_true(readable(fd_grandchild, 0));
	sluice_cancel_destroy(grandchild);
	sluice_cancel_destroy(child);
	sluice_cancel_destroy(root);
}

static void test_fd_is_not_readable_when_only_a_child_is_triggered(void **state)
{
	struct sluice_cancel *root = make(NULL), *child = make(root);
	int fd;

	(void)state;
	fd = sluice_cancel_fd(root);
	assert_true(fd >= 0);
	assert_int_equal(sluice_cancel_trigger(child, 0), 0);
	assert_false(readable(fd, 0));
	sluice_cancel_destroy(child);
	sluice_cancel_destroy(root);
}

static void test_fd_of_null_is_einval(void **state)
{
	(void)state;
	assert_int_equal(sluice_cancel_fd(NULL), -EINVAL);
}

static void test_destroy_closes_the_fd(void **state)
{
	struct sluice_cancel *c;
	int before, fd;

	(void)state;
	before = h_count_fds();
	assert_true(before >= 0);
	c = make(NULL);
	fd = sluice_cancel_fd(c);
	assert_true(fd >= 0);
	assert_int_equal(h_count_fds(), before + 1);
	sluice_cancel_destroy(c);
	assert_int_equal(h_count_fds(), before);
}

/* ---------------------------------------------------------------- threads */

static void test_a_trigger_from_another_thread_wakes_a_poll_on_the_fd(void **state)
{
	struct sluice_cancel *root = make(NULL), *child = make(root);
	struct h_later l = { .tok = root, .ms = 50, .reason = -ESHUTDOWN };
	int64_t t0;
	int fd;

	(void)state;
	fd = sluice_cancel_fd(child);
	assert_true(fd >= 0);
	t0 = h_now_ms();
	h_later_start(&l);
	assert_true(readable(fd, 10000));
	assert_true(h_now_ms() - t0 >= 40);
	h_later_join(&l);
	/* The join orders the trigger before us; the reason is there. */
	assert_int_equal(sluice_cancel_reason(child), -ESHUTDOWN);
	sluice_cancel_destroy(child);
	sluice_cancel_destroy(root);
}

#define RACERS	4

struct racer {
	struct sluice_cancel *c;
	pthread_barrier_t *go;
	int reason;
	int ret;		/* what trigger returned: asserts belong to the main thread */
};

static void *race_trigger(void *p)
{
	struct racer *r = p;

	pthread_barrier_wait(r->go);
	r->ret = sluice_cancel_trigger(r->c, r->reason);
	return NULL;
}

static void test_racing_triggers_agree_on_one_reason(void **state)
{
	static const int reasons[RACERS] = { -EIO, -EPIPE, -ESHUTDOWN, -ENOTCONN };
	struct sluice_cancel *root, *kids[8];
	struct racer r[RACERS];
	pthread_barrier_t go;
	pthread_t t[RACERS];
	int round, i, got;

	(void)state;
	for (round = 0; round < 50; round++) {
		root = make(NULL);
		for (i = 0; i < 8; i++)
			kids[i] = make(i ? kids[i / 2] : root);
		assert_int_equal(pthread_barrier_init(&go, NULL, RACERS), 0);
		for (i = 0; i < RACERS; i++) {
			r[i] = (struct racer){ .c = root, .go = &go, .reason = reasons[i] };
			assert_int_equal(pthread_create(&t[i], NULL, race_trigger, &r[i]), 0);
		}
		for (i = 0; i < RACERS; i++) {
			assert_int_equal(pthread_join(t[i], NULL), 0);
			assert_int_equal(r[i].ret, 0);
		}
		pthread_barrier_destroy(&go);
		got = sluice_cancel_reason(root);
		assert_true(got == -EIO || got == -EPIPE || got == -ESHUTDOWN ||
			    got == -ENOTCONN);
		for (i = 0; i < 8; i++)
			assert_int_equal(sluice_cancel_reason(kids[i]), got);
		for (i = 7; i >= 0; i--)
			sluice_cancel_destroy(kids[i]);
		sluice_cancel_destroy(root);
	}
}

struct churn {
	struct sluice_cancel *root;
	int missed;		/* children seen untriggered after the trigger */
	_Atomic int triggered;
};

/* Make and destroy children of a root while another thread triggers it. */
static void *churn_children(void *p)
{
	struct churn *ch = p;
	struct sluice_cancel *c, *g;
	int i, after;

	for (i = 0; i < 20000; i++) {
		after = atomic_load(&ch->triggered);
		if (sluice_cancel_create(ch->root, &c))
			break;
		if (sluice_cancel_create(c, &g))
			break;
		/* Made after the trigger returned: must start triggered. */
		if (after && (!sluice_cancel_reason(c) || !sluice_cancel_reason(g)))
			ch->missed++;
		sluice_cancel_destroy(c);
		sluice_cancel_destroy(g);
	}
	return NULL;
}

static void test_children_made_while_the_parent_fires_are_never_missed(void **state)
{
	struct churn ch = { 0 };
	pthread_t t;

	(void)state;
	ch.root = make(NULL);
	assert_int_equal(pthread_create(&t, NULL, churn_children, &ch), 0);
	h_sleep_ms(2);
	assert_int_equal(sluice_cancel_trigger(ch.root, -EIO), 0);
	atomic_store(&ch.triggered, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(ch.missed, 0);
	sluice_cancel_destroy(ch.root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* reasons */
		cmocka_unit_test(test_a_new_token_has_no_reason),
		cmocka_unit_test(test_reason_of_null_is_zero),
		cmocka_unit_test(test_trigger_without_a_reason_gives_ecanceled),
		cmocka_unit_test(test_trigger_keeps_a_custom_reason),
		cmocka_unit_test(test_the_first_reason_wins),
		cmocka_unit_test(test_a_positive_reason_is_einval_and_triggers_nothing),
		cmocka_unit_test(test_trigger_of_null_is_einval),
		cmocka_unit_test(test_create_without_out_is_einval),
		cmocka_unit_test(test_destroy_of_null_is_a_no_op),
		/* trees */
		cmocka_unit_test(test_children_and_grandchildren_are_triggered_with_their_parent),
		cmocka_unit_test(test_triggering_a_child_leaves_its_parent_and_siblings_alone),
		cmocka_unit_test(test_a_child_keeps_its_own_earlier_reason_when_the_parent_fires),
		cmocka_unit_test(test_a_child_made_under_a_triggered_parent_starts_triggered),
		cmocka_unit_test(test_destroying_a_parent_detaches_its_children),
		cmocka_unit_test(test_a_triggered_childs_state_survives_its_parents_destruction),
		cmocka_unit_test(test_destroying_a_child_unlinks_it_from_its_siblings),
		cmocka_unit_test(test_a_deep_chain_is_triggered_to_the_end),
		/* eventfd */
		cmocka_unit_test(test_fd_becomes_readable_when_triggered),
		cmocka_unit_test(test_fd_made_after_the_trigger_is_readable_at_once),
		cmocka_unit_test(test_fd_of_a_child_is_readable_when_an_ancestor_is_triggered),
		cmocka_unit_test(test_fd_is_not_readable_when_only_a_child_is_triggered),
		cmocka_unit_test(test_fd_of_null_is_einval),
		cmocka_unit_test(test_destroy_closes_the_fd),
		/* threads */
		cmocka_unit_test(test_a_trigger_from_another_thread_wakes_a_poll_on_the_fd),
		cmocka_unit_test(test_racing_triggers_agree_on_one_reason),
		cmocka_unit_test(test_children_made_while_the_parent_fires_are_never_missed),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("cancel", tests, NULL, NULL);
}
