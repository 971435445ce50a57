// SPDX-License-Identifier: MIT
/*
 * Channels as a caller sees them: every promise of include/sluice/chan.h
 * that one process, and threads it starts, can see kept.  Create and
 * attach and their arguments; frames written and read back byte for byte,
 * of every size and through every call (copies, batches, slices reserved
 * in place), across the ring's end; full and empty; info and the tables
 * of readers and writers; deadlines and cancellation tokens; drain and
 * terminate; weak readers overrun, and exactly what they lost; the
 * options of handles and endpoints.
 *
 * The other channel programs prove the rest, with the same fixture
 * (chan_fixture.h): test_chan_corrupt.c, shared memory a buggy or hostile
 * peer wrote; test_chan_dead.c, processes killed at any instant;
 * test_chan_many.c, many processes at once.
 *
 * SLUICE_TEST_FILTER=pattern (cmocka's wildcards) runs only matching tests.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <sluice/cancel.h>
#include <sluice/chan.h>
#include <sluice/spsc.h>

#include "chan_fixture.h"
#include "frames.h"
#include "harness.h"

/* ---------------------------------------------------------------- create, attach */

static void test_create_and_attach_by_name_share_one_channel(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch, *ch2, *x = NULL;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info a, b;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	ch2 = join(f, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch2, SLUICE_CHAN_STRONG, NULL);
	put(w, 1, 100);
	get(r, 1, 100);
	/* One channel: both handles see the same shared state. */
	a = info_of(ch);
	b = info_of(ch2);
	assert_memory_equal(&a, &b, sizeof(a));
	assert_int_equal(a.capacity, CAP);
	assert_int_equal(a.strong_writers, 1);
	assert_int_equal(a.strong_readers, 1);
	assert_int_equal(a.tail, slice1(100));
	assert_int_equal(sluice_chan_frame_max(ch2), CAP / 2 - 24);
	/* The name is taken; another name is not there. */
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, SLUICE_CHAN_BLOCK, NULL, &x), -EEXIST);
	assert_int_equal(sluice_chan_attach(f->r, "nope", NULL, &x), -ENOENT);
	assert_null(x);
	rshut(r);
	wshut(w);
	cshut(ch2);
	cshut(ch);
}

static void test_close_refuses_a_channel_with_open_endpoints(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_close(ch), -EBUSY);
	/* Nothing was freed: the endpoints still work. */
	put(w, 3, 30);
	get(r, 3, 30);
	wshut(w);
	assert_int_equal(sluice_chan_close(ch), -EBUSY);
	rshut(r);
	cshut(ch);
	assert_int_equal(sluice_chan_close(NULL), 0);
	sluice_chan_writer_close(NULL);
	sluice_chan_reader_close(NULL);
}

static void test_create_rejects_bad_arguments(void **state)
{
	struct h_fx *f = *state;
	static const uint64_t bad_caps[] = {
		0, 1, 2048, CAP - 1, CAP + 1, 3 * CAP, CAP * 5,
		SLUICE_CHAN_CAPACITY_MAX * 2, SLUICE_CHAN_CAPACITY_MAX + CAP,
		1ull << 40, UINT64_MAX,
	};
	SLUICE_OPTS(sluice_chan_opts, flags, .flags = 1);
	SLUICE_OPTS(sluice_chan_opts, rmax, .readers_max = SLUICE_CHAN_ENDS_MAX + 1);
	SLUICE_OPTS(sluice_chan_opts, wmax, .writers_max = SLUICE_CHAN_ENDS_MAX + 1);
	SLUICE_OPTS(sluice_chan_opts, ok, .readers_max = SLUICE_CHAN_ENDS_MAX, .writers_max = 1);
	struct sluice_chan_opts tiny = { .sz = 4 };
	struct {
		struct sluice_chan_opts o;
		uint64_t future;
	} newer = { .o = { .sz = sizeof(newer) }, .future = 1 };
	const enum sluice_chan_policy B = SLUICE_CHAN_BLOCK;
	struct sluice_obj_info oi;
	struct sluice_chan *ch = NULL;
	struct sluice_chan_info i;
	unsigned int k;

	for (k = 0; k < SLUICE_ARRAY_SIZE(bad_caps); k++)
		if (sluice_chan_create(f->r, "c", bad_caps[k], B, NULL, &ch) != -EINVAL)
			fail_msg("capacity %" PRIu64 " was not -EINVAL", bad_caps[k]);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, 2, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, (enum sluice_chan_policy)-1, NULL, &ch),
			 -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &flags, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &rmax, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &wmax, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &tiny, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, &newer.o, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(NULL, "c", CAP, B, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, NULL, CAP, B, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "c", CAP, B, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "bad/name", CAP, B, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_create(f->r, "0123456789012345678901234567890123456789",
					    CAP, B, NULL, &ch), -ENAMETOOLONG);
	/* Good arguments, but a gibibyte does not fit a 16 MiB region. */
	assert_int_equal(sluice_chan_create(f->r, "c", SLUICE_CHAN_CAPACITY_MAX, B, NULL, &ch), -ENOSPC);
	assert_null(ch);
	/* None of them left anything behind. */
	assert_int_equal(sluice_region_find(f->r, "c", &oi), -ENOENT);
	/* A newer caller's zero tail is fine; so are the extreme table sizes. */
	newer.future = 0;
	ch = mk(f, CAP, SLUICE_CHAN_OVERWRITE, &newer.o);
	cshut(ch);
	ch = mk_named(f, "d", CAP * 2, B, &ok);
	i = info_of(ch);
	assert_int_equal(i.capacity, CAP * 2);
	assert_int_equal(i.readers_max, SLUICE_CHAN_ENDS_MAX);
	assert_int_equal(i.writers_max, 1);
	cshut(ch);
}

static void test_endpoint_opens_reject_bad_arguments(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, flags, .flags = 1);
	SLUICE_OPTS(sluice_chan_opts, rmax, .readers_max = 1);
	SLUICE_OPTS(sluice_chan_opts, wmax, .writers_max = 1);
	const enum sluice_chan_kind S = SLUICE_CHAN_STRONG;
	struct sluice_chan_writer *w = NULL;
	struct sluice_chan_reader *r = NULL;
	struct sluice_chan *ch, *ov;
	struct sluice_chan_info i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	assert_int_equal(sluice_chan_writer_open(NULL, S, NULL, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, 0, NULL, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, 3, NULL, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, &flags, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, &rmax, &w), -EINVAL);
	assert_int_equal(sluice_chan_writer_open(ch, S, &wmax, &w), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(NULL, S, NULL, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, 0, NULL, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, 3, NULL, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, &flags, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, &rmax, &r), -EINVAL);
	assert_int_equal(sluice_chan_reader_open(ch, S, &wmax, &r), -EINVAL);
	assert_null(w);
	assert_null(r);
	/* None of that took a place in a table. */
	i = info_of(ch);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(i.weak_readers, 0);

	/* Nobody holds writers back on an overwriting channel. */
	ov = mk_named(f, "ov", CAP, SLUICE_CHAN_OVERWRITE, NULL);
	assert_int_equal(sluice_chan_reader_open(ov, S, NULL, &r), -EINVAL);
	assert_null(r);
	assert_int_equal(info_of(ov).strong_readers, 0);
	r = rd(ov, SLUICE_CHAN_WEAK, NULL);
	w = wr(ov, SLUICE_CHAN_WEAK, NULL);
	put(w, 1, 1);
	get(r, 1, 1);
	wshut(w);
	w = wr(ov, S, NULL);
	put(w, 2, 2);
	get(r, 2, 2);
	wshut(w);
	rshut(r);
	cshut(ov);
	cshut(ch);
}

static void test_data_calls_reject_bad_arguments(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	unsigned char buf[64] = { 0 };
	struct iovec iov[2] = { { buf, 8 }, { buf, 8 } };
	struct iovec *many;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* 65536 frames of nothing: -EINVAL for the count, before any size. */
	many = calloc(65536, sizeof(*many));
	assert_non_null(many);

	assert_int_equal(sluice_chan_write(NULL, buf, 8), -EINVAL);
	assert_int_equal(sluice_chan_try_write(NULL, buf, 8), -EINVAL);
	assert_int_equal(sluice_chan_write(w, NULL, 8), -EINVAL);
	assert_int_equal(sluice_chan_try_write(w, NULL, 8), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(NULL, iov, 2), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(w, NULL, 2), -EINVAL);
	assert_int_equal(sluice_chan_write_batch(w, many, 65536), -EINVAL);
	assert_int_equal(sluice_chan_try_write_batch(w, many, 65536), -EINVAL);
	assert_int_equal(sluice_chan_reserve_slice(NULL, iov, 1), -EINVAL);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_reserve_slice(w, NULL, 1), -EINVAL);
	assert_int_equal(sluice_chan_reserve_slice(w, many, 65536), -EINVAL);
	assert_int_equal(sluice_chan_commit(NULL), -EINVAL);
	assert_int_equal(sluice_chan_abort(NULL), -EINVAL);
	/* Nothing reserved. */
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(sluice_chan_abort(w), -EINVAL);
	free(many);
	/* None of it reached the ring. */
	i = info_of(ch);
	assert_int_equal(i.tail, 0);
	assert_int_equal(i.writers_busy, 1);

	put(w, 9, 8);
	assert_int_equal(sluice_chan_read(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_try_read(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_read(r, NULL, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_try_read(r, NULL, sizeof(buf)), -EINVAL);
	assert_int_equal(sluice_chan_read_batch(NULL, iov, 2), -EINVAL);
	assert_int_equal(sluice_chan_read_batch(r, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 0), -EINVAL);
	assert_int_equal(sluice_chan_read_batch(r, NULL, 2), -EINVAL);
	assert_int_equal(sluice_chan_try_read_batch(r, NULL, 2), -EINVAL);
	assert_int_equal(sluice_chan_info(NULL, &i), -EINVAL);
	assert_int_equal(sluice_chan_info(ch, NULL), -EINVAL);
	assert_int_equal(sluice_chan_drain(NULL), -EINVAL);
	assert_int_equal(sluice_chan_terminate(NULL), -EINVAL);
	/* The frame is still there, whole. */
	get(r, 9, 8);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- frames */

static void test_frames_are_read_back_byte_exact_and_in_order(void **state)
{
	struct h_fx *f = *state;
	const uint64_t cap = 65536;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	unsigned char out[1024], *in;
	struct iovec iov[1];
	uint64_t seq, rseq = 0, pos = 0;
	size_t len;
	int ret;

	ch = mk(f, cap, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (seq = 0; seq < 600; seq++) {
		/* Every length from 0 to 999 turns up, odd ones included. */
		len = (seq * 37) % 1000;
		h_fill(out, seq, len);
		switch (seq % 3) {
		case 0:
			assert_int_equal(sluice_chan_write(w, out, len), 0);
			break;
		case 1:
			assert_int_equal(sluice_chan_try_write(w, out, len), 0);
			break;
		default:
			iov[0] = (struct iovec){ out, len };
			assert_int_equal(sluice_chan_write_batch(w, iov, 1), 1);
			break;
		}
		pos = pos_after(pos, slice1(len), cap);
		/* Read in bursts, so that the ring fills part way and wraps. */
		if (seq % 40 != 39)
			continue;
		for (; rseq <= seq; rseq++) {
			len = (rseq * 37) % 1000;
			in = malloc(len ? len : 1);
			assert_non_null(in);
			if (rseq % 2) {
				ret = sluice_chan_read(r, in, len);
			} else {
				iov[0] = (struct iovec){ in, len };
				ret = sluice_chan_read_batch(r, iov, 1);
				assert_int_equal(ret, 1);
				ret = (int)iov[0].iov_len;
			}
			assert_int_equal(ret, (int)len);
			assert_true(h_intact(in, rseq, len));
			free(in);
		}
		none(r);
		i = info_of(ch);
		assert_int_equal(i.tail, pos);
		assert_committed_below(i, pos);
	}
	assert_true(pos > 4 * cap);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_frame_max_is_half_the_capacity_less_the_headers(void **state)
{
	struct h_fx *f = *state;
	static const uint64_t caps[] = { CAP, 65536, 1 << 20 };
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct iovec iov[1];
	unsigned char *b;
	char name[16];
	size_t fm;
	unsigned int k;

	for (k = 0; k < SLUICE_ARRAY_SIZE(caps); k++) {
		snprintf(name, sizeof(name), "c%u", k);
		ch = mk_named(f, name, caps[k], SLUICE_CHAN_BLOCK, NULL);
		fm = sluice_chan_frame_max(ch);
		/* A slice header, a frame header, the frame: half the ring. */
		assert_int_equal(fm, caps[k] / 2 - CHAN_SLICE_HDR - CHAN_FRAME_HDR);
		w = wr(ch, SLUICE_CHAN_STRONG, NULL);
		r = rd(ch, SLUICE_CHAN_STRONG, NULL);
		b = malloc(fm + 1);
		assert_non_null(b);
		h_fill(b, 7, fm + 1);
		assert_int_equal(sluice_chan_try_write(w, b, fm + 1), -EMSGSIZE);
		assert_int_equal(sluice_chan_write(w, b, fm + 1), -EMSGSIZE);
		assert_int_equal(sluice_chan_write(w, b, SIZE_MAX), -EMSGSIZE);
		assert_int_equal(sluice_chan_write(w, b, (size_t)UINT32_MAX + 1), -EMSGSIZE);
		iov[0] = (struct iovec){ NULL, fm + 1 };
		assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), -EMSGSIZE);
		assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), -EMSGSIZE);
		/* Nothing was written or left reserved. */
		assert_int_equal(info_of(ch).tail, 0);
		assert_int_equal(sluice_chan_commit(w), -EINVAL);
		none(r);
		/* Exactly the largest fits. */
		assert_int_equal(sluice_chan_write(w, b, fm), 0);
		assert_int_equal(info_of(ch).tail, caps[k] / 2);
		assert_int_equal(sluice_chan_read(r, b, fm + 1), (int)fm);
		assert_true(h_intact(b, 7, fm));
		free(b);
		rshut(r);
		wshut(w);
		cshut(ch);
	}
}

static void test_a_batch_over_half_the_capacity_is_emsgsize_and_writes_nothing(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char b[3][1008], in[3][1008];
	struct iovec iov[3], io[3];
	struct iovec *many;
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w, 1, 8);
	/* 665 rounds up to 672: 16 + 3 * (8 + 672) = 2056, over 2048. */
	for (k = 0; k < 3; k++) {
		h_fill(b[k], 10 + k, 665);
		iov[k] = (struct iovec){ b[k], 665 };
	}
	assert_int_equal(sluice_chan_write_batch(w, iov, 3), -EMSGSIZE);
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 3), -EMSGSIZE);
	for (k = 0; k < 3; k++)
		io[k] = (struct iovec){ NULL, 665 };
	assert_int_equal(sluice_chan_reserve_slice(w, io, 3), -EMSGSIZE);
	assert_int_equal(sluice_chan_try_reserve_slice(w, io, 3), -EMSGSIZE);
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	/* 65535 empty frames: a legal count, far too big a slice. */
	many = calloc(65535, sizeof(*many));
	assert_non_null(many);
	assert_int_equal(sluice_chan_write_batch(w, many, 65535), -EMSGSIZE);
	free(many);
	assert_int_equal(info_of(ch).tail, slice1(8));
	get(r, 1, 8);
	none(r);
	/* 664: 16 + 3 * 672 = 2032 fits. */
	for (k = 0; k < 3; k++)
		iov[k].iov_len = 664;
	assert_int_equal(sluice_chan_write_batch(w, iov, 3), 3);
	assert_int_equal(info_of(ch).tail, 32 + 2032);
	for (k = 0; k < 3; k++)
		io[k] = (struct iovec){ in[k], sizeof(in[k]) };
	assert_int_equal(sluice_chan_try_read_batch(r, io, 3), 3);
	for (k = 0; k < 3; k++) {
		assert_int_equal(io[k].iov_len, 664);
		assert_true(h_intact(in[k], 10 + k, 664));
	}
	/*
	 * Two of 1008: exactly half the ring, which does not fit before the
	 * end at 2064, so it goes after a pad of 2032 bytes, at 4096.
	 */
	for (k = 0; k < 2; k++) {
		h_fill(b[k], 20 + k, 1008);
		iov[k] = (struct iovec){ b[k], 1008 };
	}
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 2), 2);
	assert_int_equal(info_of(ch).tail, 4096 + 2048);
	for (k = 0; k < 2; k++)
		io[k] = (struct iovec){ in[k], sizeof(in[k]) };
	assert_int_equal(sluice_chan_read_batch(r, io, 2), 2);
	for (k = 0; k < 2; k++) {
		assert_int_equal(io[k].iov_len, 1008);
		assert_true(h_intact(in[k], 20 + k, 1008));
	}
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_a_frame_longer_than_the_buffer_is_enobufs_and_stays(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 10000 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r[2];
	unsigned char buf[64];
	struct iovec iov[1];
	unsigned int k;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r[0] = rd(ch, SLUICE_CHAN_STRONG, NULL);
	r[1] = rd(ch, SLUICE_CHAN_WEAK, NULL);
	put(w, 5, 20);
	for (k = 0; k < 2; k++) {
		t0 = h_now_ms();
		assert_int_equal(sluice_chan_try_read(r[k], buf, 19), -ENOBUFS);
		assert_int_equal(sluice_chan_read(r[k], buf, 19), -ENOBUFS);
		assert_int_equal(sluice_chan_read(r[k], buf, 0), -ENOBUFS);
		iov[0] = (struct iovec){ buf, 19 };
		assert_int_equal(sluice_chan_read_batch(r[k], iov, 1), -ENOBUFS);
		assert_int_equal(sluice_chan_try_read_batch(r[k], iov, 1), -ENOBUFS);
		/* None of them waited. */
		h_assert_took(t0, 0, 5000);
		get(r[k], 5, 20);
		none(r[k]);
	}
	rshut(r[0]);
	rshut(r[1]);
	wshut(w);
	cshut(ch);
}

static void test_read_batch_stops_before_a_frame_longer_than_its_buffer(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char out[3][64], in[3][64];
	struct iovec oi[3], ii[3];
	static const size_t lens[3] = { 5, 30, 5 };
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (k = 0; k < 3; k++) {
		h_fill(out[k], k, lens[k]);
		oi[k] = (struct iovec){ out[k], lens[k] };
	}
	assert_int_equal(sluice_chan_write_batch(w, oi, 3), 3);
	ii[0] = (struct iovec){ in[0], 64 };
	ii[1] = (struct iovec){ in[1], 10 };
	ii[2] = (struct iovec){ in[2], 64 };
	assert_int_equal(sluice_chan_try_read_batch(r, ii, 3), 1);
	assert_int_equal(ii[0].iov_len, 5);
	assert_true(h_intact(in[0], 0, 5));
	get(r, 1, 30);
	get(r, 2, 5);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_read_batch_can_take_a_slice_a_few_frames_at_a_time(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char out[5][64], in[8][64];
	struct iovec oi[5], ii[8];
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (k = 0; k < 5; k++) {
		h_fill(out[k], 10 + k, 10 + k);
		oi[k] = (struct iovec){ out[k], 10 + k };
	}
	assert_int_equal(sluice_chan_write_batch(w, oi, 5), 5);
	for (k = 0; k < 8; k++)
		ii[k] = (struct iovec){ in[k], 64 };
	assert_int_equal(sluice_chan_read_batch(r, ii, 2), 2);
	assert_int_equal(ii[0].iov_len, 10);
	assert_int_equal(ii[1].iov_len, 11);
	assert_true(h_intact(in[0], 10, 10) && h_intact(in[1], 11, 11));
	get(r, 12, 12);
	for (k = 0; k < 8; k++)
		ii[k] = (struct iovec){ in[k], 64 };
	assert_int_equal(sluice_chan_read_batch(r, ii, 8), 2);
	assert_true(h_intact(in[0], 13, 13) && h_intact(in[1], 14, 14));
	assert_int_equal(ii[2].iov_len, 64);	/* untouched */
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_zero_length_frames_are_delivered(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[8] = { 1, 2, 3 };
	struct iovec iov[3] = { { buf, 0 }, { buf, 3 }, { buf, 0 } };
	struct iovec in[3] = { { buf, 8 }, { buf, 8 }, { buf, 8 } };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_try_write(w, buf, 0), 0);
	assert_int_equal(sluice_chan_try_write(w, NULL, 0), 0);
	assert_int_equal(info_of(ch).tail, 2 * slice1(0));
	assert_int_equal(sluice_chan_try_read(r, buf, 0), 0);
	/* No buffer is needed for nothing. */
	assert_int_equal(sluice_chan_try_read(r, NULL, 0), 0);
	assert_int_equal(sluice_chan_write_batch(w, iov, 3), 3);
	assert_int_equal(sluice_chan_read_batch(r, in, 3), 3);
	assert_int_equal(in[0].iov_len, 0);
	assert_int_equal(in[1].iov_len, 3);
	assert_int_equal(in[2].iov_len, 0);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- full, empty */

static void test_try_calls_are_eagain_on_empty_and_full(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, sizeof(buf) } };
	unsigned int i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_try_read(r, buf, sizeof(buf)), -EAGAIN);
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 1), -EAGAIN);
	/* 64 slices of 64 bytes fill the ring exactly. */
	assert_int_equal(fill_up(w, 0), CAP / S40);
	assert_int_equal(info_of(ch).tail, CAP);
	assert_int_equal(sluice_chan_try_write(w, buf, F40), -EAGAIN);
	assert_int_equal(sluice_chan_try_write(w, buf, 0), -EAGAIN);
	iov[0].iov_len = 1;
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 1), -EAGAIN);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), -EAGAIN);
	/* A failed reservation leaves nothing outstanding. */
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(info_of(ch).tail, CAP);
	/* One slice read, one slice of room, and no more. */
	get(r, 0, F40);
	put(w, CAP / S40, F40);
	assert_int_equal(sluice_chan_try_write(w, buf, 0), -EAGAIN);
	for (i = 1; i <= CAP / S40; i++)
		get(r, i, F40);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_only_strong_readers_hold_writers_back(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *weak, *strong;
	unsigned int i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	weak = rd(ch, SLUICE_CHAN_WEAK, NULL);
	/* Five rings' worth past a weak reader that reads nothing. */
	for (i = 0; i < 5 * CAP / S40; i++)
		put(w, i, F40);
	/* A strong reader starts here, and holds writers a ring ahead. */
	strong = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(fill_up(w, i), CAP / S40);
	/* Gone, it holds nobody back. */
	rshut(strong);
	assert_int_equal(info_of(ch).strong_readers, 0);
	put(w, 9999, F40);
	rshut(weak);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- slices */

static void test_reserve_slice_hands_out_frames_in_place(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	struct iovec iov[3] = { { NULL, 10 }, { NULL, 0 }, { NULL, 33 } };
	size_t lens[3] = { 10, 0, 33 };
	struct lay l;
	unsigned int k;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_of(f);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w, 1, 8);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 3), 3);
	/* After the first slice (32 bytes): a slice header, a frame header. */
	assert_ptr_equal(iov[0].iov_base, l.data + 32 + 16 + 8);
	assert_ptr_equal(iov[1].iov_base, l.data + 32 + 16 + 8 + 16 + 8);
	assert_ptr_equal(iov[2].iov_base, l.data + 32 + 16 + 8 + 16 + 8 + 0 + 8);
	for (k = 0; k < 3; k++) {
		assert_int_equal(iov[k].iov_len, lens[k]);
		assert_int_equal((uintptr_t)iov[k].iov_base % 8, 0);
		h_fill(iov[k].iov_base, 40 + k, lens[k]);
	}
	/* Reserved, not committed: nothing to read yet. */
	i = info_of(ch);
	assert_int_equal(i.tail, 32 + slice_of(lens, 3));
	assert_committed_below(i, 32);
	assert_int_equal(i.writers_busy, 1);
	get(r, 1, 8);
	none(r);
	assert_int_equal(sluice_chan_commit(w), 0);
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	i = info_of(ch);
	assert_committed_below(i, i.tail);
	for (k = 0; k < 3; k++)
		get(r, 40 + k, lens[k]);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_an_aborted_or_abandoned_slice_is_skipped(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w, *ww, *w3;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;
	struct iovec iov[2] = { { NULL, 24 }, { NULL, 40 } };
	size_t lens[2] = { 24, 40 };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w, 0, 16);
	assert_int_equal(sluice_chan_reserve_slice(ww, iov, 2), 2);
	memset(iov[0].iov_base, 0xee, 24);
	memset(iov[1].iov_base, 0xee, 40);
	assert_int_equal(info_of(ch).writers_busy, 2);
	assert_int_equal(sluice_chan_abort(ww), 0);
	assert_int_equal(sluice_chan_abort(ww), -EINVAL);
	assert_int_equal(sluice_chan_commit(ww), -EINVAL);
	/* The weak writer gave its place back with the slice. */
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 1);
	/* The aborted slice still took its room: readers step over it. */
	assert_int_equal(i.tail, slice1(16) + slice_of(lens, 2));
	assert_committed_below(i, i.tail);
	/* An abort is not a death. */
	assert_int_equal(i.abandoned, 0);
	put(ww, 1, 16);
	get(r, 0, 16);
	get(r, 1, 16);
	none(r);

	/* A writer closed with a slice outstanding abandons it. */
	w3 = wr(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_reserve_slice(w3, iov, 1), 1);
	memset(iov[0].iov_base, 0xee, 24);
	put(w, 2, 16);
	none(r);	/* behind the outstanding slice */
	wshut(w3);
	get(r, 2, 16);
	none(r);
	i = info_of(ch);
	assert_committed_below(i, i.tail);
	assert_int_equal(i.writers_busy, 1);
	assert_int_equal(i.draining, 0);
	rshut(r);
	wshut(ww);
	wshut(w);
	cshut(ch);
}

/*
 * A strong reader that steps over skipped slices alone, taking no frame,
 * still moves its cursor: the room those slices took is the writers' again.
 */
static void test_a_reader_stepping_over_skipped_slices_frees_their_room(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct iovec iov = { NULL, F40 };
	unsigned int n = 0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	while (sluice_chan_try_reserve_slice(w, &iov, 1) == 1) {
		assert_int_equal(sluice_chan_abort(w), 0);
		n++;
	}
	assert_int_equal(n, CAP / S40);
	assert_int_equal(sluice_chan_try_reserve_slice(w, &iov, 1), -EAGAIN);
	none(r);
	put(w, 7, F40);
	get(r, 7, F40);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_writer_calls_are_ebusy_while_a_slice_is_outstanding(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[8] = { 0 };
	struct iovec iov[1] = { { NULL, 8 } }, one[1] = { { buf, 1 } };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), 1);
	h_fill(iov[0].iov_base, 1, 8);
	assert_int_equal(sluice_chan_write(w, buf, 1), -EBUSY);
	assert_int_equal(sluice_chan_try_write(w, buf, 1), -EBUSY);
	assert_int_equal(sluice_chan_write_batch(w, one, 1), -EBUSY);
	assert_int_equal(sluice_chan_try_write_batch(w, one, 1), -EBUSY);
	assert_int_equal(sluice_chan_reserve_slice(w, one, 1), -EBUSY);
	assert_int_equal(sluice_chan_try_reserve_slice(w, one, 1), -EBUSY);
	/* Nothing else was reserved by them. */
	assert_int_equal(info_of(ch).tail, slice1(8));
	assert_int_equal(sluice_chan_commit(w), 0);
	/* Free again. */
	put(w, 2, 2);
	get(r, 1, 8);
	get(r, 2, 2);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_batches_wrap_around_the_ring_end(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char out[6][300], in[8][300];
	struct iovec oi[6], ii[8];
	size_t lens[6];
	uint64_t rng = 0xabcdef, seq = 0, rseq = 0, pos = 0, before, s;
	unsigned int round, k, n, got, pads = 0;
	unsigned char *lo, *hi;
	struct lay l;
	int ret;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	l = lay_of(f);
	lo = l.data;
	hi = l.data + CAP;
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	for (round = 0; round < 400; round++) {
		n = 1 + h_rng_next(&rng) % 6;
		for (k = 0; k < n; k++)
			lens[k] = h_rng_next(&rng) % 300;
		s = slice_of(lens, n);
		before = pos;
		pos = pos_after(pos, s, CAP);
		if (pos - before != s)
			pads++;
		if (round % 2) {
			for (k = 0; k < n; k++) {
				h_fill(out[k], seq + k, lens[k]);
				oi[k] = (struct iovec){ out[k], lens[k] };
			}
			assert_int_equal(sluice_chan_write_batch(w, oi, n), (int)n);
		} else {
			for (k = 0; k < n; k++)
				oi[k] = (struct iovec){ NULL, lens[k] };
			assert_int_equal(sluice_chan_reserve_slice(w, oi, n), (int)n);
			for (k = 0; k < n; k++) {
				/* In the ring, whole, never split at its end. */
				assert_true((unsigned char *)oi[k].iov_base >= lo);
				assert_true((unsigned char *)oi[k].iov_base + lens[k] <= hi);
				if (!k)
					assert_ptr_equal(oi[0].iov_base,
							 lo + ((pos - s) & (CAP - 1)) + 24);
				else
					assert_ptr_equal(oi[k].iov_base,
							 (unsigned char *)oi[k - 1].iov_base +
							 ((lens[k - 1] + 7) & ~7ull) + 8);
				h_fill(oi[k].iov_base, seq + k, lens[k]);
			}
			assert_int_equal(sluice_chan_commit(w), 0);
		}
		seq += n;
		assert_int_equal(info_of(ch).tail, pos);
		for (got = 0; got < n; got += (unsigned int)ret) {
			for (k = 0; k < 8; k++)
				ii[k] = (struct iovec){ in[k], sizeof(in[k]) };
			ret = sluice_chan_read_batch(r, ii, 8);
			assert_true(ret >= 1 && ret <= (int)(n - got));
			for (k = 0; k < (unsigned int)ret; k++) {
				assert_int_equal(ii[k].iov_len, lens[got + k]);
				assert_true(h_intact(in[k], rseq, lens[got + k]));
				rseq++;
			}
		}
		none(r);
	}
	/* Many laps, many of them ending in a pad. */
	assert_true(pos > 20 * CAP);
	assert_true(pads > 10);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- info, tables */

static void test_info_reports_the_channel(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .readers_max = 8, .writers_max = 4);
	struct sluice_chan *ch, *dflt;
	struct sluice_chan_writer *ws, *ww;
	struct sluice_chan_reader *r1, *r2, *rs;
	struct sluice_chan_info i;
	struct iovec iov[1] = { { NULL, 100 } };

	ch = mk(f, 2 * CAP, SLUICE_CHAN_OVERWRITE, &o);
	i = info_of(ch);
	assert_int_equal(i.capacity, 2 * CAP);
	assert_int_equal(i.policy, SLUICE_CHAN_OVERWRITE);
	assert_int_equal(i.readers_max, 8);
	assert_int_equal(i.writers_max, 4);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(i.weak_readers, 0);
	assert_int_equal(i.strong_writers, 0);
	assert_int_equal(i.writers_busy, 0);
	assert_int_equal(i.draining, 0);
	assert_int_equal(i.terminated, 0);
	assert_int_equal(i.tail, 0);
	assert_int_equal(i.committed, 0);
	assert_int_equal(i.abandoned, 0);
	assert_int_equal(i.swept, 0);
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r1 = rd(ch, SLUICE_CHAN_WEAK, NULL);
	r2 = rd(ch, SLUICE_CHAN_WEAK, NULL);
	i = info_of(ch);
	assert_int_equal(i.strong_writers, 1);
	assert_int_equal(i.writers_busy, 1);	/* the weak one holds none yet */
	assert_int_equal(i.weak_readers, 2);
	assert_int_equal(i.strong_readers, 0);
	assert_int_equal(sluice_chan_reserve_slice(ww, iov, 1), 1);
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 2);
	assert_int_equal(i.tail, 128);
	assert_int_equal(i.committed, 0);
	assert_int_equal(sluice_chan_commit(ww), 0);
	i = info_of(ch);
	assert_int_equal(i.writers_busy, 1);
	assert_int_equal(i.tail, 128);
	assert_committed_below(i, 128);
	rshut(r1);
	assert_int_equal(info_of(ch).weak_readers, 1);
	assert_int_equal(sluice_chan_drain(ch), 0);
	i = info_of(ch);
	assert_int_equal(i.draining, 1);
	assert_int_equal(i.terminated, 0);
	assert_int_equal(sluice_chan_terminate(ch), 0);
	assert_int_equal(info_of(ch).terminated, 1);
	rshut(r2);
	wshut(ww);
	wshut(ws);
	cshut(ch);

	/* The defaults. */
	dflt = mk_named(f, "d", CAP, SLUICE_CHAN_BLOCK, NULL);
	rs = rd(dflt, SLUICE_CHAN_STRONG, NULL);
	i = info_of(dflt);
	assert_int_equal(i.policy, SLUICE_CHAN_BLOCK);
	assert_int_equal(i.readers_max, SLUICE_CHAN_ENDS_DEFAULT);
	assert_int_equal(i.writers_max, SLUICE_CHAN_ENDS_DEFAULT);
	assert_int_equal(i.strong_readers, 1);
	assert_int_equal(i.weak_readers, 0);
	rshut(rs);
	cshut(dflt);
}

static void test_full_tables_are_eusers(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .readers_max = 2, .writers_max = 2);
	struct sluice_chan *ch, *ch2;
	struct sluice_chan_writer *w1, *w2, *ww, *w = NULL;
	struct sluice_chan_reader *r1, *r2, *r = NULL;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	ch2 = join(f, NULL);
	r1 = rd(ch, SLUICE_CHAN_STRONG, NULL);
	r2 = rd(ch2, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_reader_open(ch, SLUICE_CHAN_STRONG, NULL, &r), -EUSERS);
	assert_int_equal(sluice_chan_reader_open(ch2, SLUICE_CHAN_WEAK, NULL, &r), -EUSERS);
	assert_null(r);
	rshut(r1);
	r1 = rd(ch2, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(info_of(ch).weak_readers, 2);

	w1 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	w2 = wr(ch2, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w), -EUSERS);
	assert_null(w);
	/* A weak writer takes a place only per slice: it opens. */
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(info_of(ch).writers_busy, 2);
	wshut(ww);
	wshut(w1);
	w1 = wr(ch2, SLUICE_CHAN_STRONG, NULL);
	put(w1, 1, 1);
	get(r1, 1, 1);
	get(r2, 1, 1);
	rshut(r1);
	rshut(r2);
	wshut(w1);
	wshut(w2);
	cshut(ch2);
	cshut(ch);
}

/* ---------------------------------------------------------------- attach */

static void test_attach_to_an_object_of_another_type_is_eproto(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch = NULL;
	struct sluice_spsc *q;
	uint64_t off;

	assert_int_equal(sluice_region_alloc(f->r, "raw", SLUICE_OBJ_RAW, 65536, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "raw", NULL, &ch), -EPROTO);
	assert_int_equal(sluice_region_alloc(f->r, "user", SLUICE_OBJ_USER, 65536, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "user", NULL, &ch), -EPROTO);
	assert_int_equal(sluice_spsc_create(f->r, "q", 8, 64, SLUICE_SPSC_PRODUCER, NULL, &q), 0);
	assert_int_equal(sluice_chan_attach(f->r, "q", NULL, &ch), -EPROTO);
	sluice_spsc_close(q);
	/* A "channel" too small to hold a channel's header. */
	assert_int_equal(sluice_region_alloc(f->r, "tiny", SLUICE_OBJ_CHAN, 64, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "tiny", NULL, &ch), -EPROTO);
	/* Big enough, still all zeros: its creator has not finished. */
	assert_int_equal(sluice_region_alloc(f->r, "young", SLUICE_OBJ_CHAN, 65536, 64, &off), 0);
	assert_int_equal(sluice_chan_attach(f->r, "young", NULL, &ch), -EAGAIN);
	assert_null(ch);
	/* And the arguments. */
	assert_int_equal(sluice_chan_attach(NULL, "c", NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, NULL, NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, "raw", NULL, NULL), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, "bad/name", NULL, &ch), -EINVAL);
	assert_int_equal(sluice_chan_attach(f->r, "0123456789012345678901234567890123456789",
					    NULL, &ch), -ENAMETOOLONG);
	assert_null(ch);
}

/* ---------------------------------------------------------------- joining mid-stream */

static void test_readers_and_writers_join_and_leave_mid_stream(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *ws, *ww, *w2;
	struct sluice_chan_reader *r1, *r2, *r3;
	struct iovec iov[1] = { { NULL, 16 } };
	struct sluice_chan_info i;
	uint64_t s;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	/* Open throughout, so that the channel does not drain. */
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);
	for (s = 0; s < 5; s++)
		put(ws, s, 16);
	/* A reader starts after the newest committed slice. */
	r1 = rd(ch, SLUICE_CHAN_STRONG, NULL);
	none(r1);
	for (; s < 8; s++)
		put(ws, s, 16);
	for (s = 5; s < 8; s++)
		get(r1, s, 16);
	none(r1);

	/* Frame 8 is reserved, not committed, when the next reader opens. */
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	assert_int_equal(sluice_chan_reserve_slice(ww, iov, 1), 1);
	h_fill(iov[0].iov_base, 8, 16);
	r2 = rd(ch, SLUICE_CHAN_WEAK, NULL);
	put(ws, 9, 16);
	none(r1);
	none(r2);
	assert_int_equal(sluice_chan_commit(ww), 0);
	get(r1, 8, 16);
	get(r1, 9, 16);
	get(r2, 8, 16);
	get(r2, 9, 16);

	/* A second strong writer comes and goes: no drain, ws is still open. */
	w2 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(info_of(ch).strong_writers, 2);
	put(w2, 10, 16);
	wshut(w2);
	i = info_of(ch);
	assert_int_equal(i.strong_writers, 1);
	assert_int_equal(i.draining, 0);
	get(r1, 10, 16);
	get(r2, 10, 16);

	r3 = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(ww, 11, 16);
	wshut(ww);
	assert_int_equal(info_of(ch).draining, 0);
	get(r3, 11, 16);
	none(r3);
	get(r1, 11, 16);
	rshut(r2);
	put(ws, 12, 16);
	get(r1, 12, 16);
	get(r3, 12, 16);

	/* The last strong writer leaves: the readers end after frame 13. */
	put(ws, 13, 16);
	wshut(ws);
	assert_int_equal(info_of(ch).draining, 1);
	get(r1, 13, 16);
	get(r3, 13, 16);
	assert_int_equal(sluice_chan_try_read(r1, scratch, 64), -EPIPE);
	assert_int_equal(sluice_chan_read(r3, scratch, 64), -EPIPE);
	rshut(r1);
	rshut(r3);
	cshut(ch);
}

/* ---------------------------------------------------------------- deadlines */

enum via { VIA_ENDPOINT, VIA_CHANNEL };

static void timeouts(struct h_fx *f, uint32_t spin_ns, enum via via)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 50 * MS, .spin_ns = spin_ns);
	SLUICE_OPTS(sluice_chan_opts, slow, .timeout_ns = 20000 * MS);
	const struct sluice_chan_opts *co = via == VIA_CHANNEL ? &o : &slow;
	const struct sluice_chan_opts *eo = via == VIA_CHANNEL ? NULL : &o;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64] = { 0 };
	struct iovec iov[2] = { { buf, 64 }, { buf, 1 } };
	unsigned int i;
	int64_t t0;

	/* The channel's 20 s stands unless the endpoint says 50 ms. */
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, co);
	w = wr(ch, SLUICE_CHAN_STRONG, eo);
	r = rd(ch, SLUICE_CHAN_STRONG, eo);
	/* Empty: every reader call that waits gives up after 50 ms. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read_batch(r, iov, 2), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	/* Full, held back by a strong reader that reads nothing. */
	assert_int_equal(fill_up(w, 0), CAP / S40);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write(w, buf, 1), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	iov[0].iov_len = 1;
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write_batch(w, iov, 2), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 2), -ETIMEDOUT);
	h_assert_took(t0, 50, 3000);
	/* Nothing lost, added or left reserved by all that. */
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(info_of(ch).tail, CAP);
	for (i = 0; i < CAP / S40; i++)
		get(r, i, F40);
	none(r);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_blocking_calls_time_out_on_empty_and_full(void **state)
{
	timeouts(*state, 0, VIA_ENDPOINT);
}

static void test_endpoints_take_the_channel_handles_timeout(void **state)
{
	timeouts(*state, 0, VIA_CHANNEL);
}

static void test_blocking_calls_time_out_while_sleeping(void **state)
{
	timeouts(*state, 1, VIA_ENDPOINT);
}

static void test_blocking_calls_time_out_while_spinning_only(void **state)
{
	timeouts(*state, UINT32_MAX, VIA_ENDPOINT);
}

/* ---------------------------------------------------------------- cancel */

enum blocked_in { IN_WRITE, IN_READ };

/*
 * Block in a write on a full channel or a read on an empty one, tied to a
 * token (through the endpoint's options or the channel handle's); another
 * thread triggers @fire (the token or its parent) after 100 ms.  The call
 * must return the token's reason then, and later calls that would wait
 * must return it at once.
 */
static void cancel_blocked(struct h_fx *f, enum blocked_in where, uint32_t spin_ns,
			   int reason, enum via via, bool via_parent)
{
	struct sluice_cancel *parent, *tok;
	struct sluice_chan_opts o = {
		.sz = sizeof(o), .spin_ns = spin_ns, .timeout_ns = 20000 * MS,
	};
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	int want = reason ? reason : -ECANCELED;
	struct h_later l = { .ms = 100, .reason = reason };
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &parent), 0);
	assert_int_equal(sluice_cancel_create(parent, &tok), 0);
	o.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, via == VIA_CHANNEL ? &o : NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, via == VIA_CHANNEL ? NULL : &o);
	r = rd(ch, SLUICE_CHAN_STRONG, via == VIA_CHANNEL ? NULL : &o);
	if (where == IN_WRITE)
		assert_int_equal(fill_up(w, 0), CAP / S40);
	l.tok = via_parent ? parent : tok;
	t0 = h_now_ms();
	h_later_start(&l);
	if (where == IN_WRITE)
		assert_int_equal(sluice_chan_write(w, buf, 1), want);
	else
		assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), want);
	h_assert_took(t0, 90, 10000);
	h_later_join(&l);

	/* Later: at once, every call that would wait. */
	t0 = h_now_ms();
	if (where == IN_WRITE) {
		assert_int_equal(sluice_chan_write(w, buf, 1), want);
		assert_int_equal(sluice_chan_write_batch(w, iov, 1), want);
		assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), want);
		assert_int_equal(sluice_chan_commit(w), -EINVAL);
	} else {
		assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), want);
		iov[0].iov_len = sizeof(buf);
		assert_int_equal(sluice_chan_read_batch(r, iov, 1), want);
	}
	h_assert_took(t0, 0, 2000);
	/* The channel itself is intact. */
	if (where == IN_WRITE) {
		assert_int_equal(info_of(ch).tail, CAP);
		get(r, 0, F40);
	} else {
		put(w, 1, 1);
		get(r, 1, 1);
	}
	rshut(r);
	wshut(w);
	cshut(ch);
	sluice_cancel_destroy(tok);
	sluice_cancel_destroy(parent);
}

static void test_cancel_wakes_a_write_blocked_on_a_full_channel(void **state)
{
	cancel_blocked(*state, IN_WRITE, 0, 0, VIA_ENDPOINT, false);
}

static void test_cancel_wakes_a_read_blocked_on_an_empty_channel(void **state)
{
	cancel_blocked(*state, IN_READ, 0, 0, VIA_ENDPOINT, false);
}

static void test_cancel_wakes_a_write_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_WRITE, 1, 0, VIA_ENDPOINT, false);
}

static void test_cancel_wakes_a_read_asleep_on_the_futex(void **state)
{
	cancel_blocked(*state, IN_READ, 1, 0, VIA_ENDPOINT, false);
}

static void test_cancel_stops_a_read_that_only_spins(void **state)
{
	cancel_blocked(*state, IN_READ, UINT32_MAX, 0, VIA_ENDPOINT, false);
}

static void test_cancel_of_a_write_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_WRITE, 0, -ESHUTDOWN, VIA_ENDPOINT, false);
}

static void test_cancel_of_a_read_with_a_reason_returns_that_reason(void **state)
{
	cancel_blocked(*state, IN_READ, 1, -ENOTCONN, VIA_ENDPOINT, false);
}

static void test_endpoints_take_the_channel_handles_token(void **state)
{
	cancel_blocked(*state, IN_READ, 0, 0, VIA_CHANNEL, false);
}

static void test_cancel_of_a_parent_token_wakes_a_wait_on_its_child(void **state)
{
	cancel_blocked(*state, IN_WRITE, 0, 0, VIA_CHANNEL, true);
}

/*
 * An endpoint's own options override its handle's field by field: one
 * that sets only its spin keeps the handle's token and timeout.
 */
static void test_an_endpoint_that_sets_only_its_spin_keeps_its_handles_token_and_timeout(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, co, .timeout_ns = 150 * MS);
	SLUICE_OPTS(sluice_chan_end_opts, eo, .spin_ns = 1);
	struct h_later l = { .ms = 100 };
	struct sluice_chan_reader *r;
	struct sluice_cancel *tok;
	struct sluice_chan *ch;
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	co.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &co);
	r = rd(ch, SLUICE_CHAN_STRONG, &eo);
	/* The handle's timeout: 150 ms, not the default 5 s. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	h_assert_took(t0, 150, 1000);
	/* The handle's token. */
	l.tok = tok;
	t0 = h_now_ms();
	h_later_start(&l);
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ECANCELED);
	h_assert_took(t0, 90, 150);
	h_later_join(&l);
	rshut(r);
	cshut(ch);
	sluice_cancel_destroy(tok);
}

/* Until 0.6 the endpoint opens still take 0.4's struct, as 0.4 did. */
static void test_the_endpoint_opens_still_take_the_channel_options_struct(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, old, .timeout_ns = 100 * MS);
	struct sluice_chan_writer *w = NULL;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, &old);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	h_assert_took(t0, 100, 1000);
	/* Its create-only fields must be 0, as before. */
	old.readers_max = 4;
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, &old, &w), -EINVAL);
	assert_null(w);
	rshut(r);
	cshut(ch);
}

static void test_a_triggered_token_fails_only_calls_that_would_wait(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_cancel *tok;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char buf[64];
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	assert_int_equal(sluice_cancel_trigger(tok, 0), 0);
	o.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* Room, and a frame: neither call needs to wait. */
	h_fill(buf, 1, 20);
	assert_int_equal(sluice_chan_write(w, buf, 20), 0);
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), 20);
	assert_true(h_intact(buf, 1, 20));
	/* Empty: this one would. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ECANCELED);
	h_assert_took(t0, 0, 2000);
	rshut(r);
	wshut(w);
	cshut(ch);
	sluice_cancel_destroy(tok);
}

static void test_a_huge_timeout_does_not_expire_at_once(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = UINT64_MAX);
	struct sluice_cancel *tok;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct h_later l = { .ms = 100 };
	int64_t t0;

	assert_int_equal(sluice_cancel_create(NULL, &tok), 0);
	o.cancel = tok;
	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	/* "Practically forever": must not wrap around to the past. */
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	l.tok = tok;
	t0 = h_now_ms();
	h_later_start(&l);
	assert_int_equal(sluice_chan_read(r, scratch, 64), -ECANCELED);
	h_assert_took(t0, 90, 10000);
	h_later_join(&l);
	rshut(r);
	wshut(w);
	cshut(ch);
	sluice_cancel_destroy(tok);
}

/* ---------------------------------------------------------------- terminate */

static void terminate_blocked(struct h_fx *f, enum blocked_in where)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan *ch, *other;
	struct sluice_chan_writer *w, *w2 = NULL;
	struct sluice_chan_reader *r, *r2 = NULL;
	unsigned char buf[64] = { 0 };
	struct iovec iov[1] = { { buf, 1 } };
	struct h_later l = { .fn = terminate_it, .ms = 100 };
	struct sluice_chan_info i;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	/* Terminated from another handle, as another process would. */
	other = join(f, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	if (where == IN_WRITE)
		assert_int_equal(fill_up(w, 0), CAP / S40);
	l.arg = other;
	t0 = h_now_ms();
	h_later_start(&l);
	if (where == IN_WRITE)
		assert_int_equal(sluice_chan_write(w, buf, 1), -ECONNABORTED);
	else
		assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ECONNABORTED);
	h_assert_took(t0, 90, 10000);
	h_later_join(&l);

	/* From then on, every call, blocking or not, frames left or not. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_write(w, buf, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_write(w, buf, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_write_batch(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_write_batch(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_read(r, buf, sizeof(buf)), -ECONNABORTED);
	iov[0].iov_len = sizeof(buf);
	assert_int_equal(sluice_chan_read_batch(r, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 1), -ECONNABORTED);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_WEAK, NULL, &w2), -ECONNABORTED);
	assert_int_equal(sluice_chan_writer_open(other, SLUICE_CHAN_STRONG, NULL, &w2), -ECONNABORTED);
	assert_int_equal(sluice_chan_reader_open(ch, SLUICE_CHAN_WEAK, NULL, &r2), -ECONNABORTED);
	assert_null(w2);
	assert_null(r2);
	h_assert_took(t0, 0, 2000);
	i = info_of(ch);
	assert_int_equal(i.terminated, 1);
	rshut(r);
	wshut(w);
	cshut(other);
	cshut(ch);
}

static void test_terminate_wakes_a_blocked_reader_and_fails_every_later_call(void **state)
{
	terminate_blocked(*state, IN_READ);
}

static void test_terminate_wakes_a_blocked_writer_and_fails_every_later_call(void **state)
{
	terminate_blocked(*state, IN_WRITE);
}

static void test_commit_after_terminate_is_econnaborted_and_drops_the_slice(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct iovec iov[1] = { { NULL, 8 } };

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	assert_int_equal(sluice_chan_reserve_slice(w, iov, 1), 1);
	h_fill(iov[0].iov_base, 1, 8);
	assert_int_equal(sluice_chan_terminate(ch), 0);
	assert_int_equal(sluice_chan_commit(w), -ECONNABORTED);
	/* Dropped: nothing is reserved any more. */
	assert_int_equal(sluice_chan_abort(w), -EINVAL);
	assert_int_equal(sluice_chan_commit(w), -EINVAL);
	assert_int_equal(sluice_chan_try_read(r, scratch, 64), -ECONNABORTED);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- drain */

static void test_drain_lets_a_blocked_reader_read_what_was_committed_then_epipe(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan *ch, *other;
	struct sluice_chan_writer *ws, *ww, *w2 = NULL;
	struct sluice_chan_reader *r;
	struct iovec iov[2] = { { NULL, 20 }, { NULL, 30 } };
	unsigned char buf[64] = { 0 };
	struct iovec one[1] = { { buf, 1 } };
	struct rloop rl;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	other = join(f, NULL);
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	rloop_start(&rl, r, 16);
	h_sleep_ms(50);
	/* A slice reserved before the drain, a frame committed behind it. */
	assert_int_equal(sluice_chan_reserve_slice(ws, iov, 2), 2);
	put(ww, 3, 40);
	h_sleep_ms(50);
	assert_int_equal(rloop_count(&rl), 0);

	assert_int_equal(sluice_chan_drain(other), 0);
	assert_int_equal(info_of(ch).draining, 1);
	/* No new writes, from any writer, by any call. */
	assert_int_equal(sluice_chan_write(ww, buf, 1), -EPIPE);
	assert_int_equal(sluice_chan_try_write(ww, buf, 1), -EPIPE);
	assert_int_equal(sluice_chan_write_batch(ww, one, 1), -EPIPE);
	assert_int_equal(sluice_chan_try_reserve_slice(ww, one, 1), -EPIPE);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_STRONG, NULL, &w2), -EPIPE);
	assert_int_equal(sluice_chan_writer_open(other, SLUICE_CHAN_WEAK, NULL, &w2), -EPIPE);
	assert_null(w2);
	h_sleep_ms(50);
	/* The reader still waits for the reserved slice. */
	assert_int_equal(rloop_count(&rl), 0);
	h_fill(iov[0].iov_base, 1, 20);
	h_fill(iov[1].iov_base, 2, 30);
	assert_int_equal(sluice_chan_commit(ws), 0);
	assert_int_equal(sluice_chan_write(ws, buf, 1), -EPIPE);
	assert_int_equal(pthread_join(rl.t, NULL), 0);
	assert_int_equal(rloop_count(&rl), 3);
	assert_int_equal(rl.seq[0], 1);
	assert_int_equal(rl.len[0], 20);
	assert_int_equal(rl.seq[1], 2);
	assert_int_equal(rl.len[1], 30);
	assert_int_equal(rl.seq[2], 3);
	assert_int_equal(rl.len[2], 40);
	assert_int_equal(rl.err, -EPIPE);
	/* End of channel is sticky and never waits. */
	assert_int_equal(sluice_chan_try_read(r, buf, sizeof(buf)), -EPIPE);
	assert_int_equal(sluice_chan_read(r, buf, sizeof(buf)), -EPIPE);
	one[0].iov_len = sizeof(buf);
	assert_int_equal(sluice_chan_read_batch(r, one, 1), -EPIPE);
	rshut(r);
	wshut(ww);
	wshut(ws);
	cshut(other);
	cshut(ch);
}

static void test_drain_wakes_a_reader_blocked_on_an_empty_channel(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS, .spin_ns = 1);
	struct sluice_chan *ch, *other;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct h_later l = { .fn = drain_it, .ms = 100 };
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	other = join(f, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	l.arg = other;
	t0 = h_now_ms();
	h_later_start(&l);
	assert_int_equal(sluice_chan_read(r, scratch, 64), -EPIPE);
	h_assert_took(t0, 90, 10000);
	h_later_join(&l);
	rshut(r);
	wshut(w);
	cshut(other);
	cshut(ch);
}

static void test_the_last_strong_writer_closing_drains_the_channel(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w1, *w2, *ww, *w = NULL;
	struct sluice_chan_reader *r;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	w1 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	w2 = wr(ch, SLUICE_CHAN_STRONG, NULL);
	ww = wr(ch, SLUICE_CHAN_WEAK, NULL);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	put(w1, 0, 8);
	wshut(w1);
	assert_int_equal(info_of(ch).draining, 0);
	put(ww, 1, 8);
	wshut(ww);
	assert_int_equal(info_of(ch).draining, 0);
	put(w2, 2, 8);
	wshut(w2);
	assert_int_equal(info_of(ch).draining, 1);
	assert_int_equal(info_of(ch).strong_writers, 0);
	assert_int_equal(sluice_chan_writer_open(ch, SLUICE_CHAN_WEAK, NULL, &w), -EPIPE);
	assert_null(w);
	get(r, 0, 8);
	get(r, 1, 8);
	get(r, 2, 8);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, 64), -EPIPE);
	h_assert_took(t0, 0, 2000);
	rshut(r);
	cshut(ch);
}

static void test_weak_writers_alone_never_drain_the_channel(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 50 * MS);
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan_info i;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &o);
	r = rd(ch, SLUICE_CHAN_STRONG, NULL);
	w = wr(ch, SLUICE_CHAN_WEAK, NULL);
	put(w, 0, 8);
	wshut(w);
	w = wr(ch, SLUICE_CHAN_WEAK, NULL);
	put(w, 1, 8);
	wshut(w);
	i = info_of(ch);
	assert_int_equal(i.draining, 0);
	assert_int_equal(i.strong_writers, 0);
	get(r, 0, 8);
	get(r, 1, 8);
	assert_int_equal(sluice_chan_read(r, scratch, 64), -ETIMEDOUT);
	rshut(r);
	cshut(ch);
}

/* ---------------------------------------------------------------- weak readers */

/*
 * The frame an overtaken weak reader resumes at, when the writers have
 * written up to frame @end - 1 (40-byte frames, 64-byte slices): whole,
 * and still in the ring, so no older than @end less a ring.  The library
 * may find it through an index of CHAN_INDEX_N chunks a ring, so it may
 * land up to a chunk later than the oldest; never further, or the reader
 * would throw away frames it could have read.
 */
static uint64_t resumed_at(struct sluice_chan_reader *r, uint64_t end)
{
	const uint64_t ring = CAP / S40, slack = CAP / CHAN_INDEX_N / S40;
	unsigned char b[F40];
	uint64_t s;

	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), F40);
	memcpy(&s, b, sizeof(s));
	assert_true(h_intact(b, s, F40));
	if (s < end - ring || s > end - ring + (slack ? slack : 1))
		fail_msg("resumed at frame %" PRIu64 "; the oldest intact is %" PRIu64,
			 s, end - ring);
	return s;
}

/*
 * A weak reader overtaken says by how much, exactly: with every slice 64
 * bytes, what it lost is 64 bytes for each frame between the one it was
 * due to read and the one it resumes at.
 */
static void overrun(struct h_fx *f, enum sluice_chan_policy pol)
{
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 10000 * MS);
	const uint64_t ring = CAP / S40;	/* slices in a ring */
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	unsigned char b[F40];
	struct iovec iov[4];
	uint64_t s, k, at, total;
	int64_t t0;

	ch = mk(f, CAP, pol, &o);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	r = rd(ch, SLUICE_CHAN_WEAK, NULL);
	for (s = 0; s < 10; s++)
		put40(w, s);
	get40(r, 0);
	get40(r, 1);
	assert_int_equal(sluice_chan_lost(r), 0);
	assert_int_equal(sluice_chan_lost_total(r), 0);

	/* Exactly a ring ahead of the reader: nothing it has not read is gone. */
	for (; s < 2 + ring; s++)
		put40(w, s);
	for (k = 2; k < 2 + ring; k++)
		get40(r, k);
	none(r);

	/* One slice more than a ring: the one it was due to read is gone. */
	for (; s < 2 + 2 * ring + 1; s++)
		put40(w, s);
	assert_int_equal(sluice_chan_try_read(r, b, sizeof(b)), -EOVERFLOW);
	at = resumed_at(r, s);
	assert_int_equal(sluice_chan_lost(r), (at - (2 + ring)) * S40);
	assert_int_equal(sluice_chan_lost_total(r), sluice_chan_lost(r));
	total = sluice_chan_lost(r);
	for (k = at + 1; k < s; k++)
		get40(r, k);
	none(r);

	/* Asleep while writers write five rings. */
	k = s;
	for (; s < k + 5 * ring; s++)
		put40(w, s);
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, b, sizeof(b)), -EOVERFLOW);
	h_assert_took(t0, 0, 5000);
	at = resumed_at(r, s);
	assert_int_equal(sluice_chan_lost(r), (at - k) * S40);
	total += (at - k) * S40;
	assert_int_equal(sluice_chan_lost_total(r), total);
	for (k = at + 1; k < s; k++)
		get40(r, k);
	none(r);

	/* Through a batch read too, and the loss adds up. */
	k = s;
	for (; s < k + ring + 10; s++)
		put40(w, s);
	iov[0] = (struct iovec){ b, sizeof(b) };
	assert_int_equal(sluice_chan_try_read_batch(r, iov, 1), -EOVERFLOW);
	at = resumed_at(r, s);
	assert_int_equal(sluice_chan_lost(r), (at - k) * S40);
	assert_int_equal(sluice_chan_lost_total(r), total + (at - k) * S40);
	/* A frame read is not a loss: lost() still tells the last overrun. */
	get40(r, at + 1);
	assert_int_equal(sluice_chan_lost(r), (at - k) * S40);
	rshut(r);
	wshut(w);
	cshut(ch);
}

static void test_a_weak_reader_overrun_is_eoverflow_and_lost_is_exact(void **state)
{
	overrun(*state, SLUICE_CHAN_BLOCK);
}

static void test_a_weak_reader_on_an_overwriting_channel_is_overrun_alike(void **state)
{
	overrun(*state, SLUICE_CHAN_OVERWRITE);
}

static void test_a_weak_reader_is_overrun_while_a_strong_one_holds_writers(void **state)
{
	struct h_fx *f = *state;
	struct sluice_chan *ch;
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *weak, *strong;
	const uint64_t ring = CAP / S40;
	unsigned char b[F40];
	uint64_t s;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	weak = rd(ch, SLUICE_CHAN_WEAK, NULL);
	strong = rd(ch, SLUICE_CHAN_STRONG, NULL);
	/* The strong reader keeps up; the weak one reads nothing. */
	for (s = 0; s < 3 * ring; s++) {
		put40(w, s);
		get40(strong, s);
	}
	assert_int_equal(sluice_chan_try_read(weak, b, sizeof(b)), -EOVERFLOW);
	s = resumed_at(weak, s);
	assert_int_equal(sluice_chan_lost(weak), s * S40);
	get40(weak, s + 1);
	rshut(strong);
	rshut(weak);
	wshut(w);
	cshut(ch);
}

/* ---------------------------------------------------------------- every wait ends */

static void test_a_read_behind_a_held_slice_of_a_drained_channel_ends_by_its_deadline(void **state)
{
	struct h_fx *f = *state;
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 100 * MS);
	struct iovec iov[1] = { { NULL, 40 } };
	struct sluice_chan_writer *w;
	struct sluice_chan_reader *r;
	struct sluice_chan *ch;
	struct guard g;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, NULL);
	w = wr(ch, SLUICE_CHAN_STRONG, NULL);
	o.cancel = guard_start(&g, 3000);
	r = rd(ch, SLUICE_CHAN_STRONG, &o);
	assert_int_equal(sluice_chan_try_reserve_slice(w, iov, 1), 1);
	assert_int_equal(sluice_chan_drain(ch), 0);
	/* The slice may still come: the read waits for it, until its deadline. */
	t0 = h_now_ms();
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -ETIMEDOUT);
	h_assert_took(t0, 100, 1000);
	h_fill(iov[0].iov_base, 7, 40);
	assert_int_equal(sluice_chan_commit(w), 0);
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), 40);
	assert_true(h_intact(scratch, 7, 40));
	assert_int_equal(sluice_chan_read(r, scratch, sizeof(scratch)), -EPIPE);
	guard_stop(&g);
	rshut(r);
	wshut(w);
	cshut(ch);
}

/* A weak writer waiting for a place learns of the end at once. */
static void weak_writer_without_a_place(struct h_fx *f, int (*end)(void *ch),
					int want)
{
	SLUICE_OPTS(sluice_chan_opts, co, .writers_max = 1);
	SLUICE_OPTS(sluice_chan_opts, o, .timeout_ns = 20000 * MS);
	struct sluice_chan_writer *ws, *ww;
	struct sluice_chan *ch;
	struct h_later l = { .fn = end, .ms = 100 };
	struct guard g;
	int64_t t0;

	ch = mk(f, CAP, SLUICE_CHAN_BLOCK, &co);
	ws = wr(ch, SLUICE_CHAN_STRONG, NULL);	/* holds the only place */
	o.cancel = guard_start(&g, 3000);
	ww = wr(ch, SLUICE_CHAN_WEAK, &o);
	assert_int_equal(sluice_chan_try_write(ww, scratch, 8), -EAGAIN);
	l.arg = ch;
	t0 = h_now_ms();
	h_later_start(&l);
	assert_int_equal(sluice_chan_write(ww, scratch, 8), want);
	h_assert_took(t0, 90, 1000);
	h_later_join(&l);
	/* And every later call, blocking or not, at once. */
	assert_int_equal(sluice_chan_try_write(ww, scratch, 8), want);
	assert_int_equal(sluice_chan_write(ww, scratch, 8), want);
	guard_stop(&g);
	wshut(ww);
	wshut(ws);
	cshut(ch);
}

static void test_a_weak_writer_waiting_for_a_place_sees_terminate_at_once(void **state)
{
	weak_writer_without_a_place(*state, terminate_it, -ECONNABORTED);
}

static void test_a_weak_writer_waiting_for_a_place_sees_drain_at_once(void **state)
{
	weak_writer_without_a_place(*state, drain_it, -EPIPE);
}

/* ---------------------------------------------------------------- main */

#define T(f)	cmocka_unit_test_setup_teardown(f, chan_setup, h_fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		/* create, attach, arguments */
		T(test_create_and_attach_by_name_share_one_channel),
		T(test_close_refuses_a_channel_with_open_endpoints),
		T(test_create_rejects_bad_arguments),
		T(test_endpoint_opens_reject_bad_arguments),
		T(test_data_calls_reject_bad_arguments),
		T(test_attach_to_an_object_of_another_type_is_eproto),
		/* frames, sizes, slices */
		T(test_frames_are_read_back_byte_exact_and_in_order),
		T(test_frame_max_is_half_the_capacity_less_the_headers),
		T(test_a_batch_over_half_the_capacity_is_emsgsize_and_writes_nothing),
		T(test_a_frame_longer_than_the_buffer_is_enobufs_and_stays),
		T(test_read_batch_stops_before_a_frame_longer_than_its_buffer),
		T(test_read_batch_can_take_a_slice_a_few_frames_at_a_time),
		T(test_zero_length_frames_are_delivered),
		T(test_try_calls_are_eagain_on_empty_and_full),
		T(test_only_strong_readers_hold_writers_back),
		T(test_reserve_slice_hands_out_frames_in_place),
		T(test_an_aborted_or_abandoned_slice_is_skipped),
		T(test_a_reader_stepping_over_skipped_slices_frees_their_room),
		T(test_writer_calls_are_ebusy_while_a_slice_is_outstanding),
		T(test_batches_wrap_around_the_ring_end),
		/* info, tables, joining */
		T(test_info_reports_the_channel),
		T(test_full_tables_are_eusers),
		T(test_readers_and_writers_join_and_leave_mid_stream),
		/* deadlines */
		T(test_blocking_calls_time_out_on_empty_and_full),
		T(test_endpoints_take_the_channel_handles_timeout),
		T(test_blocking_calls_time_out_while_sleeping),
		T(test_blocking_calls_time_out_while_spinning_only),
		T(test_a_huge_timeout_does_not_expire_at_once),
		/* cancel */
		T(test_cancel_wakes_a_write_blocked_on_a_full_channel),
		T(test_cancel_wakes_a_read_blocked_on_an_empty_channel),
		T(test_cancel_wakes_a_write_asleep_on_the_futex),
		T(test_cancel_wakes_a_read_asleep_on_the_futex),
		T(test_cancel_stops_a_read_that_only_spins),
		T(test_cancel_of_a_write_with_a_reason_returns_that_reason),
		T(test_cancel_of_a_read_with_a_reason_returns_that_reason),
		T(test_endpoints_take_the_channel_handles_token),
		T(test_cancel_of_a_parent_token_wakes_a_wait_on_its_child),
		T(test_a_triggered_token_fails_only_calls_that_would_wait),
		T(test_an_endpoint_that_sets_only_its_spin_keeps_its_handles_token_and_timeout),
		T(test_the_endpoint_opens_still_take_the_channel_options_struct),
		/* terminate, drain */
		T(test_terminate_wakes_a_blocked_reader_and_fails_every_later_call),
		T(test_terminate_wakes_a_blocked_writer_and_fails_every_later_call),
		T(test_commit_after_terminate_is_econnaborted_and_drops_the_slice),
		T(test_drain_lets_a_blocked_reader_read_what_was_committed_then_epipe),
		T(test_drain_wakes_a_reader_blocked_on_an_empty_channel),
		T(test_the_last_strong_writer_closing_drains_the_channel),
		T(test_weak_writers_alone_never_drain_the_channel),
		/* weak readers */
		T(test_a_weak_reader_overrun_is_eoverflow_and_lost_is_exact),
		T(test_a_weak_reader_on_an_overwriting_channel_is_overrun_alike),
		T(test_a_weak_reader_is_overrun_while_a_strong_one_holds_writers),
		/* every wait ends */
		T(test_a_read_behind_a_held_slice_of_a_drained_channel_ends_by_its_deadline),
		T(test_a_weak_writer_waiting_for_a_place_sees_terminate_at_once),
		T(test_a_weak_writer_waiting_for_a_place_sees_drain_at_once),
	};

	/* SLUICE_TEST_FILTER=pattern runs only the tests it matches. */
	if (getenv("SLUICE_TEST_FILTER"))
		cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
	return cmocka_run_group_tests_name("chan", tests, NULL, NULL);
}
