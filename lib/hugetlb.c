// SPDX-License-Identifier: MIT
/*
 * Huge pages: the pool in /proc/sys/vm, hugetlbfs mounts, and what the
 * kernel really backs a mapping with (/proc/self/smaps).
 */
#include <errno.h>
#include <mntent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "internal.h"

/* Read "Key:   123 kB" style values from /proc/meminfo; -1 if absent. */
static long long meminfo(const char *key)
{
	char line[256];
	size_t klen = strlen(key);
	long long v = -1;
	FILE *f;

	f = fopen("/proc/meminfo", "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, key, klen) && line[klen] == ':') {
			v = strtoll(line + klen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return v;
}

/* A count from /proc/meminfo; a field this kernel lacks counts as 0. */
static unsigned long meminfo_count(const char *key)
{
	long long v = meminfo(key);

	return v > 0 ? (unsigned long)v : 0;
}

size_t sluice__hugepage_size(void)
{
	long long kb = meminfo("Hugepagesize");

	return kb > 0 ? (size_t)kb * 1024 : 0;
}

/* Is @dir a hugetlbfs whose page size is @page_size? */
static bool is_hugetlbfs(const char *dir, size_t page_size)
{
	struct statfs sfs;

	if (statfs(dir, &sfs))
		return false;
	return sfs.f_type == HUGETLBFS_MAGIC && (size_t)sfs.f_bsize == page_size;
}

int sluice__hugetlbfs_dir(char *dir, size_t len)
{
	size_t page_size = sluice__hugepage_size();
	const char *env = getenv("SLUICE_HUGETLBFS");
	struct mntent *m, ment;
	char buf[4096];
	int err = -ENOENT;
	FILE *f;

	if (!page_size)
		return -ENOENT;
	if (env && *env) {
		if (!strcmp(env, "none") || !is_hugetlbfs(env, page_size))
			return -ENOENT;
		if (strlen(env) >= len)
			return -ENAMETOOLONG;
		strcpy(dir, env);
		return 0;
	}

	f = setmntent("/proc/self/mounts", "re");
	if (!f)
		return -ENOENT;
	while ((m = getmntent_r(f, &ment, buf, sizeof(buf)))) {
		if (strcmp(m->mnt_type, "hugetlbfs") ||
		    hasmntopt(m, "ro") || !is_hugetlbfs(m->mnt_dir, page_size))
			continue;
		if (access(m->mnt_dir, W_OK | X_OK))
			continue;
		if (strlen(m->mnt_dir) >= len) {
			err = -ENAMETOOLONG;
			continue;
		}
		strcpy(dir, m->mnt_dir);
		err = 0;
		break;
	}
	endmntent(f);
	return err;
}

int sluice__hugepages_get(struct sluice__hugepages *hp)
{
	long long total = meminfo("HugePages_Total");

	if (total < 0)
		return -ENOENT;
	hp->page_size = sluice__hugepage_size();
	hp->total = (unsigned long)total;
	hp->free = meminfo_count("HugePages_Free");
	hp->rsvd = meminfo_count("HugePages_Rsvd");
	hp->surplus = meminfo_count("HugePages_Surp");
	return 0;
}

int sluice__hugepages_set_total(unsigned long total, unsigned long *got)
{
	struct sluice__hugepages hp;
	FILE *f;
	int err;

	err = sluice__hugepages_get(&hp);
	if (err)
		return err;
	if (hp.total < total) {
		f = fopen("/proc/sys/vm/nr_hugepages", "we");
		if (!f)
			return -errno;
		fprintf(f, "%lu\n", total);
		err = fclose(f) ? -errno : 0;
		if (err)
			return err;
		err = sluice__hugepages_get(&hp);
		if (err)
			return err;
	}
	if (got)
		*got = hp.total;
	return 0;
}

int sluice__hugetlbfs_mount(char *dir, size_t len, const char *want)
{
	size_t page_size = sluice__hugepage_size();

	if (!sluice__hugetlbfs_dir(dir, len))
		return 0;
	if (!page_size)
		return -ENOENT;
	if (strlen(want) >= len)
		return -ENAMETOOLONG;
	/* Mounted already, but not found above (overridden, or not writable). */
	if (!is_hugetlbfs(want, page_size)) {
		if (mkdir(want, 0755) && errno != EEXIST)
			return -errno;
		/* Sticky and world-writable, like /dev/shm: files keep their modes. */
		if (mount("hugetlbfs", want, "hugetlbfs", MS_NOSUID | MS_NODEV,
			  "mode=01777"))
			return -errno;
	}
	strcpy(dir, want);
	return 0;
}

int sluice__smaps_query(const void *addr, size_t *kernel_page_size,
			size_t *huge_bytes)
{
	unsigned long long start, end, kb;
	uintptr_t a = (uintptr_t)addr;
	bool in = false, found = false;
	size_t huge = 0, kps = 0;
	char line[512], key[64];
	FILE *f;

	f = fopen("/proc/self/smaps", "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx-%llx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			if (found)
				break;
			in = a >= start && a < end;
			found = in;
			continue;
		}
		if (!in || sscanf(line, "%63[^:]: %llu kB", key, &kb) != 2)
			continue;
		if (!strcmp(key, "KernelPageSize"))
			kps = kb * 1024;
		else if (!strcmp(key, "ShmemPmdMapped") ||
			 !strcmp(key, "FilePmdMapped") ||
			 !strcmp(key, "Shared_Hugetlb") ||
			 !strcmp(key, "Private_Hugetlb"))
			huge += kb * 1024;
	}
	fclose(f);
	if (!found)
		return -ENOENT;
	*kernel_page_size = kps;
	*huge_bytes = huge;
	return 0;
}

const char *sluice__shm_dir(void)
{
	const char *env = getenv("SLUICE_SHM_DIR");

	return env && *env ? env : "/dev/shm";
}
