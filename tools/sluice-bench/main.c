// SPDX-License-Identifier: MIT
/*
 * sluice-bench: measure sluice against its alternatives and print ratios.
 *
 *	sluice-bench [--reps N] [--quick] [--cpus A,B] [--json] [SUITE...]
 *
 * Each suite fills a table or a few (see bench.h): a row per metric, a
 * column per thing compared, the median of --reps repetitions in each cell
 * with its spread, and ratio columns that say how many times better the
 * subject column is.  The benchmark reports; it never decides that a number is good
 * enough, so it exits 0 whatever the timings are.  Exit status: 0 when every
 * suite ran (skipped columns included), 1 when a suite failed, 2 for a
 * usage error, 130 when interrupted.
 *
 * Adding a suite: write "int suite_NAME(const struct bench_opts *, struct
 * bench_table *)" in NAME.c, declare it in bench.h, list NAME.o in Kbuild
 * and add a line to suites[] below.  The suite gets BENCH_TABLES_MAX
 * tables; it fills the first, or names and fills several.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"
#include "internal.h"
#include "../common/json.h"

#define PROG		"sluice-bench"
#define DEFAULT_REPS	5
#define QUICK_REPS	3
#define DEFAULT_WARMUP	1

/* With the exit codes of msg.h: a run stopped by a signal. */
#define EXIT_INTR	130

const char tool_name[] = PROG;

struct suite {
	const char *name;
	const char *brief;
	int (*run)(const struct bench_opts *o, struct bench_table *t);
};

static const struct suite suites[] = {
	{ "region", "random access over 4 KiB against 2 MiB pages; create and open costs",
	  suite_region },
	{ "spsc", "SPSC rings against rte_ring, pipes, sockets, futexes: throughput, round trips",
	  suite_spsc },
	{ "chan", "channels, 1-4 writers by 1-4 readers, against rte_ring MP/MC and ck_ring; "
	  "weak readers' cost", suite_chan },
	{ "live", "a peer's death to the survivor's return: liveness monitors (BPF, pidfd) "
	  "against a deadline", suite_live },
	{ "mux", "request/response through the multiplexer against bare rings, Unix sockets, "
	  "ZeroMQ, iceoryx", suite_mux },
};

static const struct suite *suite_find(const char *name)
{
	unsigned int i;

	for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
		if (!strcmp(suites[i].name, name))
			return &suites[i];
	return NULL;
}

static void usage(FILE *f)
{
	unsigned int i;

	fprintf(f,
		"Usage: " PROG " [OPTION]... [SUITE]...\n"
		"Measure sluice and print medians, spreads and ratios.  With no SUITE,\n"
		"run them all.  Timings are reported, never judged.\n\n"
		"Suites:\n");
	for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
		fprintf(f, "  %-10s %s\n", suites[i].name, suites[i].brief);
	fprintf(f,
		"\nOptions:\n"
		"  -r, --reps N       repetitions per measurement (default %d, %d with --quick)\n"
		"  -w, --warmup N     repetitions run first and not counted (default %d)\n"
		"  -q, --quick        shorter runs, rougher numbers (spsc: 50 ms per throughput\n"
		"                     rep, %d round trips per latency rep; region: 256M;\n"
		"                     chan: 60 ms a rep instead of 200; live: 50 deaths per\n"
		"                     monitor instead of 200, 5 for the deadline instead of 20)\n"
		"  -s, --size SIZE    bytes a suite works over, with K, M or G\n"
		"                     (region: default 1G)\n"
		"  -n, --accesses N   accesses per timed loop (region: default %llu)\n"
		"  -m, --samples N    round trips timed per latency rep (spsc: default %d);\n"
		"                     live: deaths per monitor (default 200, at most 10000)\n"
		"  -c, --cpu N        CPU to pin to (default: the last one allowed)\n"
		"  -p, --cpus A,B     the two CPUs of two-process suites (spsc: producer or\n"
		"                     pinging side on A; chan: writers and readers alternate\n"
		"                     between them; live: the peers killed on A, the\n"
		"                     survivors on B; default: the first two allowed)\n"
		"  -j, --json         print one JSON document instead of tables\n"
		"  -l, --list         list the suites and exit\n"
		"  -h, --help         show this help and exit\n"
		"  -V, --version      show the version and exit\n\n"
		"Huge pages: the region suite mounts hugetlbfs if none is mounted and\n"
		"grows /proc/sys/vm/nr_hugepages for the run, shrinking it back at exit;\n"
		"without them the 2M column is skipped with the reason.\n\n"
		"Peers: spsc compares against DPDK's rte_ring when built with libdpdk-dev\n"
		"(make bench installs it); chan against rte_ring in MP/MC mode and\n"
		"Concurrency Kit's ck_ring when built with libck-dev.  A peer that is not\n"
		"built in has its column skipped, saying why.\n\n"
		"Liveness: live kills processes it forked, a few hundred times, and loads\n"
		"a BPF program where it may (root); without it the bpf column is skipped,\n"
		"saying why.\n\n"
		"Exit status: 0 all suites ran, 1 a suite failed, 2 usage error,\n"
		"130 interrupted.\n",
		DEFAULT_REPS, QUICK_REPS, DEFAULT_WARMUP, LAT_QUICK_SAMPLES,
		(unsigned long long)REGION_DEFAULT_ACCESSES, LAT_SAMPLES);
}

/* "1G", "512M", "4096": bytes; false if malformed or out of range. */
static bool parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *s == '-')
		return false;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end || v > (SIZE_MAX >> shift))
		return false;
	*out = (size_t)v << shift;
	return true;
}

static bool parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || v > max)
		return false;
	*out = v;
	return true;
}

/* "model name" from /proc/cpuinfo. */
static void cpu_model(char *buf, size_t len)
{
	char line[256], *p;
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) || !(p = strchr(line, ':')))
			continue;
		p += strspn(p + 1, " \t") + 1;
		p[strcspn(p, "\n")] = '\0';
		snprintf(buf, len, "%s", p);
		break;
	}
	fclose(f);
}

/*
 * The host's state before and after a suite, under each of its tables: on
 * a shared host a line's round trip and the CPU's clock change within
 * seconds, and the ratios with them.
 */
static void host_note(struct bench_table *t, const int cpu[2], const struct bench_host h[2])
{
	bench_note(t, "host before / after: a cache line's round trip between CPUs %d and %d "
		   "%.0f / %.0f ns; CPU %d's clock %.1f / %.1f GHz (dependent adds)",
		   cpu[0], cpu[1], h[0].line_ns, h[1].line_ns, cpu[0], h[0].ghz, h[1].ghz);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "reps", required_argument, NULL, 'r' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "size", required_argument, NULL, 's' },
		{ "accesses", required_argument, NULL, 'n' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "cpus", required_argument, NULL, 'p' },
		{ "samples", required_argument, NULL, 'm' },
		{ "quick", no_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'j' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	struct bench_opts o = { .warmup = DEFAULT_WARMUP, .cpu = -1, .pair = { -1, -1 } };
	const struct suite *run[SLUICE_ARRAY_SIZE(suites)];
	unsigned int nrun = 0, nout = 0, i, j, k;
	struct bench_host host[2];
	bool probed;
	unsigned long long v;
	struct bench_table t[BENCH_TABLES_MAX];
	struct json doc = { .f = stdout, .compact = true };
	char *end;
	char model[128];
	struct utsname un;
	int ch, err, ret = EXIT_OK;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":r:w:s:n:c:p:m:qjlhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'r':
			if (!parse_uint(optarg, 100000, &v) || !v)
				return usage_err(NULL, "bad --reps '%s': want 1 to 100000", optarg);
			o.reps = (unsigned int)v;
			break;
		case 'w':
			if (!parse_uint(optarg, 1000, &v))
				return usage_err(NULL, "bad --warmup '%s': want 0 to 1000", optarg);
			o.warmup = (unsigned int)v;
			break;
		case 's':
			if (!parse_size(optarg, &o.size) || o.size < REGION_MIN_SIZE)
				return usage_err(NULL, "bad --size '%s': want 4M or more, e.g. 1G", optarg);
			break;
		case 'n':
			if (!parse_uint(optarg, 1ull << 40, &v) || v < 1024)
				return usage_err(NULL, "bad --accesses '%s': want 1024 or more", optarg);
			o.accesses = v;
			break;
		case 'c':
			if (!parse_uint(optarg, INT_MAX, &v))
				return usage_err(NULL, "bad --cpu '%s'", optarg);
			o.cpu = (int)v;
			break;
		case 'p':
			errno = 0;
			o.pair[0] = (int)strtol(optarg, &end, 10);
			if (errno || end == optarg || *end != ',' || o.pair[0] < 0)
				return usage_err(NULL, "bad --cpus '%s': want two CPUs, e.g. 0,1", optarg);
			k = (unsigned int)(end + 1 - optarg);
			if (!parse_uint(optarg + k, INT_MAX, &v) || (int)v == o.pair[0])
				return usage_err(NULL, "bad --cpus '%s': want two CPUs, e.g. 0,1", optarg);
			o.pair[1] = (int)v;
			break;
		case 'm':
			if (!parse_uint(optarg, LAT_SAMPLES_MAX, &v) || v < 100)
				return usage_err(NULL, "bad --samples '%s': want 100 to 10000000", optarg);
			o.samples = (unsigned int)v;
			break;
		case 'q':
			o.quick = true;
			break;
		case 'j':
			o.json = true;
			break;
		case 'l':
			for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
				printf("%-10s %s\n", suites[i].name, suites[i].brief);
			return EXIT_OK;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf(PROG " " SLUICE_VERSION "\n");
			return EXIT_OK;
		case ':':
			return usage_err(NULL, "option '%s' needs an argument", argv[optind - 1]);
		default:
			return usage_err(NULL, "unrecognized option '%s'", argv[optind - 1]);
		}
	}
	for (i = (unsigned int)optind; i < (unsigned int)argc; i++) {
		const struct suite *s = suite_find(argv[i]);

		if (!s)
			return usage_err(NULL, "unknown suite '%s' (see --list)", argv[i]);
		for (j = 0; j < nrun && run[j] != s; j++)
			;
		if (j == nrun)
			run[nrun++] = s;
	}
	if (!nrun)
		for (i = 0; i < SLUICE_ARRAY_SIZE(suites); i++)
			run[nrun++] = &suites[i];

	if (!o.reps)
		o.reps = o.quick ? QUICK_REPS : DEFAULT_REPS;
	/* With fewer than two CPUs, two-process suites skip, saying why. */
	if (o.pair[0] < 0 && bench_default_pair(o.pair))
		o.pair[0] = o.pair[1] = -1;
	for (i = 0; i < 2; i++) {
		if (o.pair[i] >= 0 && !bench_cpu_allowed(o.pair[i])) {
			errmsg("CPU %d of --cpus is not one this process may use", o.pair[i]);
			return EXIT_FAIL;
		}
	}
	if (o.cpu < 0)
		o.cpu = bench_default_cpu();
	err = bench_pin_cpu(o.cpu);
	if (err) {
		errmsg("cannot pin to CPU %d: %s", o.cpu, strerror(-err));
		return EXIT_FAIL;
	}
	bench_signals_init();

	cpu_model(model, sizeof(model));
	if (uname(&un))
		snprintf(un.release, sizeof(un.release), "?");
	if (o.json) {
		/* Kept open while the suites run: each adds its tables when done. */
		json_open(&doc, NULL, '{');
		json_str(&doc, "tool", PROG);
		json_str(&doc, "version", SLUICE_VERSION);
		json_open(&doc, "host", '{');
		json_str(&doc, "cpu", model);
		json_int(&doc, "cpus", sysconf(_SC_NPROCESSORS_ONLN));
		json_str(&doc, "kernel", un.release);
		json_close(&doc, '}');
		json_open(&doc, "options", '{');
		json_u64(&doc, "reps", o.reps);
		json_u64(&doc, "warmup", o.warmup);
		json_u64(&doc, "size", o.size);
		json_u64(&doc, "accesses", o.accesses);
		json_int(&doc, "cpu", o.cpu);
		json_open(&doc, "cpus", '[');
		json_int(&doc, NULL, o.pair[0]);
		json_int(&doc, NULL, o.pair[1]);
		json_close(&doc, ']');
		json_u64(&doc, "samples", o.samples);
		json_bool(&doc, "quick", o.quick);
		json_close(&doc, '}');
		json_open(&doc, "suites", '[');
	} else {
		printf(PROG " " SLUICE_VERSION " on %s, %ld CPUs, Linux %s\n\n",
		       model, sysconf(_SC_NPROCESSORS_ONLN), un.release);
	}
	fflush(stdout);

	for (i = 0; i < nrun && !bench_stop; i++) {
		for (k = 0; k < BENCH_TABLES_MAX; k++)
			bench_table_init(&t[k], run[i]->name);
		probed = !bench_host_probe(o.pair, &host[0]);
		err = run[i]->run(&o, t);
		if (err)
			ret = EXIT_FAIL;
		if (probed && !bench_stop && !bench_host_probe(o.pair, &host[1]))
			for (k = 0; k < BENCH_TABLES_MAX; k++)
				if (t[k].ncols)
					host_note(&t[k], o.pair, host);
		/* Every table the suite filled, one JSON object each. */
		for (k = 0; k < BENCH_TABLES_MAX; k++) {
			if (!t[k].ncols)
				continue;
			if (o.json) {
				bench_table_json(&t[k], &doc);
			} else {
				if (nout)
					putchar('\n');
				bench_table_print(&t[k], stdout);
			}
			nout++;
		}
		fflush(stdout);
		for (k = 0; k < BENCH_TABLES_MAX; k++)
			bench_table_free(&t[k]);
	}
	if (o.json) {
		json_close(&doc, ']');
		json_close(&doc, '}');
	}
	bench_hugepages_restore();
	if (bench_stop) {
		errmsg("interrupted");
		return EXIT_INTR;
	}
	return ret;
}
