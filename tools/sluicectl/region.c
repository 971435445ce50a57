// SPDX-License-Identifier: MIT
/*
 * sluicectl: reading regions for display, as ls, info and watch do alike:
 * the directory's checks, the words and formats of their output, and the
 * liveness of the processes attached to rings and channels.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sluice.h>

#include "internal.h"
#include "sluicectl.h"

/* ------------------------------------------------------------ formatting */

const char *fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "KMGTPE";
	unsigned int u = 0;
	double d = (double)v / 1024;

	if (v < 1024) {
		snprintf(buf, len, "%" PRIu64, v);
		return buf;
	}
	while (d >= 1024 && u < sizeof(units) - 2) {
		d /= 1024;
		u++;
	}
	if (v % (1ull << (10 * (u + 1))) == 0)
		snprintf(buf, len, "%.0f%c", d, units[u]);
	else if (d >= 1023.95 && u < sizeof(units) - 2)
		snprintf(buf, len, "1.0%c", units[u + 1]);
	else
		snprintf(buf, len, "%.1f%c", d, units[u]);
	return buf;
}

const char *fmt_time(uint64_t ns, bool utc, char *buf, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	size_t n;

	if (!(utc ? gmtime_r(&t, &tm) : localtime_r(&t, &tm)))
		return "?";
	if (utc) {
		n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(buf + n, len - n, ".%09" PRIu64 "Z", ns % 1000000000u);
	} else {
		strftime(buf, len, "%Y-%m-%d %H:%M:%S %z", &tm);
	}
	return buf;
}

const char *obj_type_str(uint32_t type)
{
	switch (type) {
	case SLUICE_OBJ_RAW:
		return "raw";
	case SLUICE_OBJ_SPSC:
		return "spsc";
	case SLUICE_OBJ_CHAN:
		return "chan";
	}
	return NULL;
}

const char *region_state(int err)
{
	switch (-err) {
	case 0:
		return "ok";
	case EAGAIN:
		return "not-ready";
	case EBADMSG:
		return "corrupt";
	case EPROTO:
		return "bad-abi";
	case EACCES:
	case EPERM:
		return "denied";
	case ENOENT:
		return "gone";
	}
	return "error";
}

/* ------------------------------------------------------------ directory */

int region_obj(const struct sluice_region *r, unsigned int idx,
	       struct sluice_obj_info *oi)
{
	memset(oi, 0, sizeof(*oi));
	return sluice_region_obj(r, idx, oi);
}

/*
 * sluice_region_info() clamps the object count to SLUICE_REGION_OBJS_MAX,
 * but sluice_region_obj() past every possible entry says -ENOENT for a
 * sane count and -EBADMSG for a corrupted one.
 */
int region_dir_check(const struct sluice_region *r)
{
	struct sluice_obj_info oi;
	int err = region_obj(r, SLUICE_REGION_OBJS_MAX, &oi);

	return err == -ENOENT ? 0 : err;
}

int region_objs_check(const struct sluice_region *r, unsigned int nr)
{
	struct sluice_obj_info oi;
	unsigned int i;
	int err = region_dir_check(r);

	for (i = 0; !err && i < nr; i++) {
		err = region_obj(r, i, &oi);
		if (err == -ENOENT)	/* fewer now than at the snapshot */
			return 0;
	}
	return err;
}

/* ------------------------------------------------------------ peers */

/*
 * The peers come from sluice__obj_peers(), which reads them from shared
 * memory unlocked: a side or a place taken or given up while we look may
 * be seen half changed (a new pid with the old owner's start), which
 * shows for one look as a dead peer.  Tools report; the library decides.
 */

const char *peer_role_str(const struct sluice__peer *p)
{
	bool weak = p->kind == SLUICE_CHAN_WEAK;

	switch (p->role) {
	case SLUICE__PEER_PRODUCER:
		return "producer";
	case SLUICE__PEER_CONSUMER:
		return "consumer";
	case SLUICE__PEER_WRITER:
		return weak ? "weak writer" : "strong writer";
	case SLUICE__PEER_READER:
		return weak ? "weak reader" : "strong reader";
	}
	return "?";
}

const char *peer_role_word(enum sluice__peer_role role)
{
	static const char *const words[] = {
		[SLUICE__PEER_PRODUCER] = "producer",
		[SLUICE__PEER_CONSUMER] = "consumer",
		[SLUICE__PEER_WRITER] = "writer",
		[SLUICE__PEER_READER] = "reader",
	};

	return words[role];
}

bool peer_alive(const struct sluice__peer *p)
{
	uint64_t now;

	if (p->marked_dead)
		return false;
	if (!p->start)
		return sluice__proc_start_time(p->pid, &now) == 0;
	return sluice__proc_alive(p->pid, p->start);
}

/* ------------------------------------------------------------ JSON */

void json_region_info(struct json *j, const struct sluice_region_info *info)
{
	int fb = info->huge_fallback_err;
	char buf[64];

	snprintf(buf, sizeof(buf), "%04o", info->mode);
	json_u64(j, "size", info->size);
	json_str(j, "backing", sluice_backing_str(info->backing));
	json_u64(j, "page_size", info->page_size);
	json_str(j, "pages", sluice_pages_str(info->pages));
	json_int(j, "node", info->node);
	json_int(j, "node_requested", info->node_requested);
	json_int(j, "huge_fallback_errno", -fb);
	json_str(j, "huge_fallback", fb ? strerror(-fb) : NULL);
	json_u64(j, "abi_version", info->abi_version);
	json_str(j, "mode", buf);
	json_int(j, "creator_pid", info->creator_pid);
	json_u64(j, "creator_uid", info->creator_uid);
	json_bool(j, "creator_alive", info->creator_alive);
	json_u64(j, "created_ns", info->created_ns);
	json_str(j, "created", fmt_time(info->created_ns, true, buf,
					  sizeof(buf)));
	json_u64(j, "heap_used", info->heap_used);
	json_u64(j, "heap_size", info->heap_size);
	json_u64(j, "nr_objs", info->nr_objs);
}
