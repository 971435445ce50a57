// SPDX-License-Identifier: MIT
/*
 * The iceoryx peer: iceoryx's request/response through its C binding, zero
 * copy as iceoryx means it.  A client thread loans a request in shared
 * memory (iox_client_loan_request()), writes the payload into it, sets the
 * nonce as the request header's sequence id and sends it; the server takes
 * the request, loans the response for it (iox_server_loan_response(), which
 * carries the sequence id over), copies the payload in and sends it; the
 * client takes the response, checks it and releases it.  Each client thread
 * has an iox_client of its own; one iox_server serves them all.  RouDi,
 * iceoryx's daemon, matches clients with the server and owns the memory:
 * setup() starts it (iox-roudi) unless one is running, and teardown()
 * stops the one it started.
 *
 * Waiting.  Both sides wait on a WaitSet attached to the port's state (a
 * response, a request, is there), taking what is there before each wait.
 * iceoryx's C request/response examples wait on a WaitSet on the client
 * (client_c_waitset.c) and serve from a Listener's callback
 * (server_c_listener.c).  A Listener's thread wakes through the same
 * semaphore as a WaitSet and calls back on that thread; the server waits
 * on a WaitSet in serve()'s own thread instead, the same wake-up with no
 * callback, whose timed wait notices a client side that is gone.  Neither
 * side busy-polls, as iceoryx's iceperf does: the client's threads share
 * one CPU, and every other peer here sleeps while it waits.
 *
 * Queues.  A client's response queue holds at most 16 responses in iceoryx
 * 2.0 (MAX_RESPONSE_QUEUE_CAPACITY), fewer than the PEER_RR_DEPTH_MAX
 * requests a thread may have out, and by default a full queue drops its
 * oldest response.  So both directions block instead: a full response queue
 * makes the server wait for that client (responseQueueFullPolicy
 * BLOCK_PRODUCER with clientTooSlowPolicy WAIT_FOR_CONSUMER) and a full
 * request queue makes a client wait for the server (the reverse pair).
 * RouDi connects only clients and servers whose policies agree.  The request
 * queue holds PEER_RR_THREADS_MAX * PEER_RR_DEPTH_MAX (1024, iceoryx's most),
 * so no client ever waits on it.
 *
 * Processes.  An iceoryx runtime tells RouDi it is leaving only from its
 * destructor, at exit(); sluice-bench's children end with _exit(), so RouDi
 * drops them when their keep-alive stops (1.5 s; teardown() waits for that),
 * and serve() and client() remove the two files in /tmp the runtime made
 * for itself.  One serve() or client() per process: a process has one
 * runtime, with one name.
 *
 * Built with -DHAVE_IOX and the binding's include directory when its header
 * is installed (libiceoryx-binding-c-dev, the Makefile); otherwise the peer
 * says it is missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "peer_rr.h"

#ifndef IOX_VERSION
#define IOX_VERSION	""
#endif

#ifdef HAVE_IOX

/* runtime.h declares iox_runtime_shutdown() without a prototype. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <iceoryx_binding_c/client.h>
#include <iceoryx_binding_c/log.h>
#include <iceoryx_binding_c/request_header.h>
#include <iceoryx_binding_c/response_header.h>
#include <iceoryx_binding_c/runtime.h>
#include <iceoryx_binding_c/server.h>
#include <iceoryx_binding_c/wait_set.h>
#pragma GCC diagnostic pop

/*
 * Where iceoryx 2.0 keeps its Unix sockets on Linux (platform_settings.hpp:
 * IOX_UDS_SOCKET_PATH_PREFIX), RouDi's named "roudi", and a runtime's lock
 * file beside its socket (FileLock: IOX_LOCK_FILE_PATH_PREFIX, ".lock").
 */
#define IX_DIR		"/tmp/"
#define IX_ROUDI	IX_DIR "roudi"
#define IX_NAME_MAX	100	/* MAX_RUNTIME_NAME_LENGTH, and an IdString's */
#define IX_RESPONSES	16	/* MAX_RESPONSE_QUEUE_CAPACITY */
#define IX_SERVICE	"sluice-bench"
#define IX_EVENT	"echo"

_Static_assert(PEER_RR_THREADS_MAX * PEER_RR_DEPTH_MAX <= 1024,
	       "iceoryx's request queue holds at most 1024 (MAX_REQUEST_QUEUE_CAPACITY)");

/*
 * The memory RouDi manages when we start it: chunks for PEER_RR_SIZE_MAX
 * payloads and more than every request and response that can be out at
 * once, where its built-in pools would take about 150 MB of /dev/shm.  A
 * chunk holds a 40-byte chunk header and a request or response header
 * beside the payload.  RouDi's own management segment (about 66 MB) comes
 * on top, whatever the pools.
 */
static const char ix_roudi_config[] =
	"[general]\n"
	"version = 1\n"
	"\n"
	"[[segment]]\n"
	"\n"
	"[[segment.mempool]]\n"
	"size = 256\n"
	"count = 4096\n"
	"\n"
	"[[segment.mempool]]\n"
	"size = 4352\n"
	"count = 2048\n";

_Static_assert(PEER_RR_SIZE_MAX + 256 <= 4352, "the big chunks hold the biggest payload");

static const char *ix_version(void)
{
	return "iceoryx " IOX_VERSION;
}

/*
 * Is a RouDi answering?  A datagram socket connects to RouDi's only while
 * RouDi has it bound, and connecting sends nothing.
 */
static bool ix_roudi_up(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = IX_ROUDI };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	bool up;

	if (fd < 0)
		return false;
	up = !connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	close(fd);
	return up;
}

/* ------------------------------------------------------------- RouDi */

static pid_t ix_roudi_pid;	/* the RouDi setup() started, or 0 */

/*
 * Why RouDi stopped with @status: -ENOENT if there was no iox-roudi to run,
 * else -ECHILD and the last line it wrote to @log.
 */
static int ix_roudi_why(int log, int status, char *why, size_t len)
{
	char buf[4096], *line, *end;
	ssize_t n;

	n = pread(log, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	end = buf + strlen(buf);
	while (end > buf && (end[-1] == '\n' || end[-1] == '\r'))
		*--end = '\0';
	line = strrchr(buf, '\n');
	line = line ? line + 1 : buf;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		snprintf(why, len, "iox-roudi not found: install the iceoryx package");
		return -ENOENT;
	}
	snprintf(why, len, "iox-roudi stopped (status %#x): %s", (unsigned int)status,
		 *line ? line : "no message");
	return -ECHILD;
}

/*
 * Start a RouDi and wait until it answers; its pid, or a negative errno with
 * @why filled.  It runs in a process group of its own, so that ^C reaches
 * the suite, which stops it in teardown(), and gets SIGTERM if the suite
 * dies first (PDEATHSIG).  Its output goes to a file with no name, read only
 * if it fails to start.
 */
static pid_t ix_roudi_start(char *why, size_t len)
{
	char conf[] = "/tmp/sluice-bench-roudi-XXXXXX";
	pid_t parent = getpid(), pid = -1;
	int fd, log = -1, null = -1, status;
	uint64_t end;
	int err;

	fd = mkstemp(conf);
	if (fd < 0) {
		err = -errno;
		snprintf(why, len, "iox-roudi's configuration: %s", strerror(-err));
		return err;
	}
	err = dprintf(fd, "%s", ix_roudi_config) < 0 ? -errno : 0;
	close(fd);
	if (err) {
		snprintf(why, len, "iox-roudi's configuration: %s", strerror(-err));
		goto out;
	}
	log = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (log < 0 || null < 0) {
		err = -errno;
		snprintf(why, len, "iox-roudi's output: %s", strerror(-err));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		err = -errno;
		snprintf(why, len, "fork: %s", strerror(-err));
		goto out;
	}
	if (!pid) {
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(1);	/* the suite died before PDEATHSIG was set */
		if (dup2(null, 0) < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
			_exit(1);
		execlp("iox-roudi", "iox-roudi", "-c", conf, (char *)NULL);
		_exit(127);
	}

	end = bench_now_ns() + PEER_RR_START_MS * 1000000ull;
	err = -ETIMEDOUT;
	while (bench_now_ns() < end) {
		if (ix_roudi_up()) {
			err = 0;
			break;
		}
		if (waitpid(pid, &status, WNOHANG) == pid) {
			err = ix_roudi_why(log, status, why, len);
			break;
		}
		peer_rr_sleep_until(bench_now_ns() + 10000000);
	}
	if (err == -ETIMEDOUT) {
		snprintf(why, len, "iox-roudi did not answer within %u ms", PEER_RR_START_MS);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
out:
	if (log >= 0)
		close(log);
	if (null >= 0)
		close(null);
	/* RouDi read it before it answered. */
	unlink(conf);
	return err ? err : pid;
}

/*
 * Stop RouDi @pid: SIGTERM, which it handles, and SIGKILL if it has not
 * stopped IX_STOP_MS later.  False if it had to be killed.
 */
#define IX_STOP_MS	3000u

static bool ix_roudi_stop(pid_t pid)
{
	uint64_t end = bench_now_ns() + IX_STOP_MS * 1000000ull;
	int status;

	kill(pid, SIGTERM);
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (bench_now_ns() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return false;
		}
		peer_rr_sleep_until(bench_now_ns() + 10000000);
	}
	return true;
}

/* Start RouDi unless one answers; ours is stopped by teardown(). */
static int ix_setup(char *why, size_t len)
{
	pid_t pid;

	if (ix_roudi_up())
		return 0;	/* someone else's: use it, leave it running */
	pid = ix_roudi_start(why, len);
	if (pid < 0)
		return pid;
	ix_roudi_pid = pid;
	return 0;
}

/*
 * Stop the RouDi setup() started.  A RouDi that stops sends SIGTERM to
 * every process still registered, and aborts, leaving its shared memory
 * behind, when one is already gone (ESRCH is a severe error to iceoryx
 * 2.0).  The runs' processes left with _exit() without telling it, so first
 * give it the time it takes to drop them: 1.5 s after a process's last
 * keep-alive (PROCESS_KEEP_ALIVE_TIMEOUT), checked every 100 ms.
 *
 * A RouDi can also hang for good: on a lock in shared memory that a run's
 * process held when it was killed (after a failure: see ix_serve()).  Then
 * it is killed, and a fresh one cleans up after it: a RouDi takes over
 * what a dead one left when it starts, and removes it all when it stops
 * with nothing registered.
 */
#define IX_DROP_MS	2000u

static void ix_teardown(void)
{
	char why[128];
	pid_t pid;

	if (!ix_roudi_pid)
		return;
	peer_rr_sleep_until(bench_now_ns() + IX_DROP_MS * 1000000ull);
	if (!ix_roudi_stop(ix_roudi_pid)) {
		pid = ix_roudi_start(why, sizeof(why));
		if (pid > 0)
			ix_roudi_stop(pid);
	}
	ix_roudi_pid = 0;
}

/* ------------------------------------------------------------- runtimes */

/*
 * This process's runtime, named for the run and the side.  RouDi must be
 * there first: without it, iox_runtime_init() waits a minute, then aborts.
 */
static int ix_runtime_init(const char *endpoint, const char *side, char *name)
{
	int n;

	if (strlen(endpoint) > IX_NAME_MAX)
		return -ENAMETOOLONG;
	n = snprintf(name, IX_NAME_MAX + 1, "%s-%s", endpoint, side);
	if (n < 0 || n > IX_NAME_MAX)
		return -ENAMETOOLONG;
	if (!ix_roudi_up())
		return -ECONNREFUSED;
	/* Warnings and errors only, on stderr, where the suite's progress goes. */
	iox_set_loglevel(Iceoryx_LogLevel_Warn);
	iox_runtime_init(name);
	return 0;
}

/* The runtime's socket and lock file, which only its destructor removes. */
static void ix_runtime_forget(const char *name)
{
	char path[sizeof(IX_DIR) + IX_NAME_MAX + sizeof(".lock")];

	snprintf(path, sizeof(path), IX_DIR "%s", name);
	unlink(path);
	snprintf(path, sizeof(path), IX_DIR "%s.lock", name);
	unlink(path);
}

/*
 * Wait on @ws until something may be there to take, or until @end
 * (bench_now_ns()); false if @end has passed.  A wait may end with nothing
 * to take (a notification for what was taken already): the caller tries to
 * take, and waits again if it must.
 */
static bool ix_wait(iox_ws_t ws, uint64_t end)
{
	iox_notification_info_t info;
	struct timespec ts;
	uint64_t now = bench_now_ns(), missed;

	if (now >= end)
		return false;
	ts.tv_sec = (time_t)((end - now) / 1000000000u);
	ts.tv_nsec = (long)((end - now) % 1000000000u);
	iox_ws_timed_wait(ws, ts, &info, 1, &missed);
	return true;
}

/* ------------------------------------------------------------- the server */

static int ix_serve_loop(iox_server_t srv, iox_ws_t ws, const struct peer_rr_load *load)
{
	uint64_t end = bench_now_ns() + PEER_RR_START_MS * 1000000ull, seq;
	enum iox_ServerRequestResult r;
	bool started = false, waiting = false;
	unsigned int stops = 0;
	const void *req;
	void *resp;

	while (stops < load->threads) {
		r = iox_server_take_request(srv, &req);
		if (r == ServerRequestResult_NO_PENDING_REQUESTS) {
			/* Once requests flow, the client side has PEER_RR_IDLE_MS from here. */
			if (started && !waiting)
				end = bench_now_ns() + PEER_RR_IDLE_MS * 1000000ull;
			waiting = true;
			if (!ix_wait(ws, end))
				return -ETIMEDOUT;
			continue;
		}
		if (r != ServerRequestResult_SUCCESS)
			return -EIO;
		started = true;
		waiting = false;
		seq = (uint64_t)iox_request_header_get_sequence_id_const(
			iox_request_header_from_payload_const(req));
		if (seq == PEER_RR_STOP) {
			iox_server_release_request(srv, req);
			stops++;
			continue;
		}
		if (iox_server_loan_response(srv, req, &resp, load->size) != AllocationResult_SUCCESS) {
			iox_server_release_request(srv, req);
			return -ENOBUFS;
		}
		memcpy(resp, req, load->size);
		iox_server_release_request(srv, req);
		if (iox_server_send(srv, resp) != ServerSendResult_SUCCESS)
			return -EPIPE;
	}
	return 0;
}

static int ix_serve(const char *endpoint, const struct peer_rr_load *load,
		    _Atomic uint32_t *ready)
{
	char name[IX_NAME_MAX + 1];
	iox_server_options_t opts;
	iox_server_storage_t ss;
	iox_ws_storage_t wss;
	iox_server_t srv;
	iox_ws_t ws;
	int err;

	if (!peer_rr_load_ok(load))
		return -EINVAL;
	err = ix_runtime_init(endpoint, "server", name);
	if (err)
		return err;
	iox_server_options_init(&opts);
	opts.requestQueueCapacity = PEER_RR_THREADS_MAX * PEER_RR_DEPTH_MAX;
	opts.requestQueueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	opts.clientTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	srv = iox_server_init(&ss, IX_SERVICE, endpoint, IX_EVENT, &opts);
	ws = iox_ws_init(&wss);
	if (iox_ws_attach_server_state(ws, srv, ServerState_HAS_REQUEST, 0, NULL) !=
	    WaitSetResult_SUCCESS) {
		err = -ENOSPC;
		goto out_deinit;
	}
	/* Pairs with the client's acquire: offered (offerOnCreate) from now on. */
	atomic_store_explicit(ready, 1, memory_order_release);
	err = ix_serve_loop(srv, ws, load);
	/*
	 * After an error the other side may have died inside iceoryx, holding
	 * a lock in shared memory that it will never release (iceoryx 2.0's
	 * are not robust), and taking it would hang: a sender holds the
	 * receiver's queue lock while it notifies, and detaching a waitset
	 * takes it.  Leave the ports to RouDi, which frees them when the
	 * process is gone.
	 */
	if (err)
		goto out_forget;
	iox_ws_detach_server_state(ws, srv, ServerState_HAS_REQUEST);
out_deinit:
	iox_ws_deinit(ws);
	iox_server_deinit(srv);
out_forget:
	ix_runtime_forget(name);
	return err;
}

/* ------------------------------------------------------------- the client */

struct ix_conn {
	iox_client_t cl;
	iox_ws_t ws;
	unsigned int size;
};

static inline int ix_send(void *p, uint64_t nonce)
{
	struct ix_conn *c = p;
	void *req;

	if (iox_client_loan_request(c->cl, &req, c->size) != AllocationResult_SUCCESS)
		return -ENOBUFS;
	iox_request_header_set_sequence_id(iox_request_header_from_payload(req), (int64_t)nonce);
	peer_rr_fill(req, c->size, nonce);
	/* Sent or not, the request is iceoryx's again. */
	return iox_client_send(c->cl, req) == ClientSendResult_SUCCESS ? 0 : -EPIPE;
}

static inline int ix_recv(void *p, uint64_t nonce)
{
	struct ix_conn *c = p;
	enum iox_ChunkReceiveResult r;
	const void *resp;
	uint64_t end = 0, seq;
	bool ok;

	while ((r = iox_client_take_response(c->cl, &resp)) != ChunkReceiveResult_SUCCESS) {
		if (r != ChunkReceiveResult_NO_CHUNK_AVAILABLE)
			return -EIO;
		if (!end)
			end = bench_now_ns() + PEER_RR_IDLE_MS * 1000000ull;
		if (!ix_wait(c->ws, end))
			return -ETIMEDOUT;
	}
	seq = (uint64_t)iox_response_header_get_sequence_id_const(
		iox_response_header_from_payload_const(resp));
	ok = seq == nonce && peer_rr_check(resp, c->size, nonce);
	iox_client_release_response(c->cl, resp);
	return ok;
}

/* RouDi connects a new client in its discovery loop, every 100 ms. */
static int ix_connect(iox_client_t cl)
{
	uint64_t end = bench_now_ns() + PEER_RR_START_MS * 1000000ull;

	while (iox_client_get_connection_state(cl) != ConnectionState_CONNECTED) {
		if (bench_now_ns() >= end)
			return -ETIMEDOUT;
		peer_rr_sleep_until(bench_now_ns() + 1000000);
	}
	return 0;
}

static int ix_thread(struct peer_rr_thread *t)
{
	const char *endpoint = t->c->arg;
	struct ix_conn c = { .size = t->c->load->size };
	iox_client_options_t opts;
	iox_client_storage_t cs;
	iox_ws_storage_t wss;
	int err;

	iox_client_options_init(&opts);
	opts.responseQueueCapacity = IX_RESPONSES;
	opts.responseQueueFullPolicy = QueueFullPolicy_BLOCK_PRODUCER;
	opts.serverTooSlowPolicy = ConsumerTooSlowPolicy_WAIT_FOR_CONSUMER;
	c.cl = iox_client_init(&cs, IX_SERVICE, endpoint, IX_EVENT, &opts);
	c.ws = iox_ws_init(&wss);
	err = iox_ws_attach_client_state(c.ws, c.cl, ClientState_HAS_RESPONSE, 0, NULL) ==
	      WaitSetResult_SUCCESS ? 0 : -ENOSPC;
	if (!err)
		err = ix_connect(c.cl);
	err = peer_rr_gate(t->c, err);
	if (!err)
		err = peer_rr_loop(t, &c, ix_send, ix_recv);
	/* See ix_serve(): after an error, leave it all to the process's end. */
	if (err)
		return err;
	err = ix_send(&c, PEER_RR_STOP);
	iox_ws_detach_client_state(c.ws, c.cl, ClientState_HAS_RESPONSE);
	iox_ws_deinit(c.ws);
	iox_client_deinit(c.cl);
	return err;
}

static int ix_client(const char *endpoint, const struct peer_rr_load *load,
		     _Atomic uint32_t *ready, struct peer_rr_result *res)
{
	char name[IX_NAME_MAX + 1];
	int err;

	err = peer_rr_wait_ready(ready);
	if (err)
		return err;
	err = ix_runtime_init(endpoint, "client", name);
	if (err)
		return err;
	err = peer_rr_client_run(load, res, ix_thread, (void *)endpoint);
	ix_runtime_forget(name);
	return err;
}

const struct peer_rr peer_iox = {
	.name = "iceoryx",
	.version = ix_version,
	.setup = ix_setup,
	.teardown = ix_teardown,
	.serve = ix_serve,
	.client = ix_client,
};

#else /* !HAVE_IOX */

const struct peer_rr peer_iox = {
	.name = "iceoryx",
	.missing = "libiceoryx-binding-c-dev not installed (make bench installs it)",
};

#endif /* HAVE_IOX */
