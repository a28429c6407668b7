/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dm-pool-test - exercise a live thin pool through libdmrepl: status,
 * the metadata snapshot reserved by dmrepl_metadata_open_pool(), the
 * per-pool lock, and recovery of a snapshot left by a killed holder.
 * Needs root and an active pool; run by pool-metadata-snap.sh.
 *
 *   dm-pool-test status POOL          print the status fields
 *   dm-pool-test run POOL [NOT_POOL]  everything that needs no other tool
 *   dm-pool-test external POOL        POOL's snapshot is held by another
 *                                     tool: expect -EBUSY and no release
 *   dm-pool-test readonly POOL        POOL is read-only: expect -EROFS
 *
 * Exit: 0 pass, 1 an assertion failed, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libdmrepl-private.h"

static int failures;
static char log_text[8192];

#define check(cond, ...)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			printf("FAIL: %s:%d: %s: ", __FILE__, __LINE__,        \
			       #cond);                                         \
			printf(__VA_ARGS__);                                   \
			printf("\n");                                          \
			failures++;                                            \
		}                                                              \
	} while (0)

/* Keep every message (for assertions) and show it (for the test log). */
__attribute__((format(printf, 6, 0))) static void
capture_log(struct dmrepl_ctx *ctx, int priority, const char *file, int line,
	    const char *fn, const char *format, va_list args, void *userdata)
{
	size_t n = strlen(log_text);
	char msg[1024];

	vsnprintf(msg, sizeof(msg), format, args);
	fprintf(stderr, "  log<%d> %s: %s\n", priority, fn, msg);
	snprintf(log_text + n, sizeof(log_text) - n, "%s\n", msg);
}

static void log_clear(void)
{
	log_text[0] = '\0';
}

static struct dmrepl_ctx *new_ctx(void)
{
	struct dmrepl_ctx *ctx = NULL;

	if (dmrepl_new(&ctx) < 0) {
		printf("FAIL: dmrepl_new\n");
		exit(1);
	}
	dmrepl_set_log_fn(ctx, capture_log, NULL);
	dmrepl_set_log_priority(ctx, LOG_INFO);
	return ctx;
}

static int get_status(struct dmrepl_ctx *ctx, const char *name,
		      struct dmrepl_pool_status *st)
{
	struct dmrepl_pool *pool = NULL;
	int r;

	r = dmrepl_pool_open(ctx, name, &pool);
	if (r == 0)
		r = dmrepl_pool_get_status(pool, st);
	dmrepl_pool_unref(pool);
	return r;
}

static uint64_t held_root(struct dmrepl_ctx *ctx, const char *name)
{
	struct dmrepl_pool_status st = {0};
	int r = get_status(ctx, name, &st);

	check(r == 0, "status of %s: %s", name, strerror(-r));
	return st.held_metadata_root;
}

static int cmd_status(struct dmrepl_ctx *ctx, const char *name)
{
	struct dmrepl_pool_status st;
	struct dmrepl_pool *pool = NULL;
	struct stat s;
	int r;

	r = dmrepl_pool_open(ctx, name, &pool);
	check(r == 0, "dmrepl_pool_open(%s): %s", name, strerror(-r));
	if (r < 0)
		return 1;
	r = dmrepl_pool_get_status(pool, &st);
	check(r == 0, "dmrepl_pool_get_status: %s", strerror(-r));
	printf("metadata_path=%s\n", dmrepl_pool_get_metadata_path(pool));
	check(stat(dmrepl_pool_get_metadata_path(pool), &s) == 0 &&
		  S_ISBLK(s.st_mode),
	      "metadata path is a block device");
	if (r == 0)
		printf("transaction_id=%" PRIu64 "\nmetadata_blocks=%" PRIu64
		       "/%" PRIu64 "\ndata_blocks=%" PRIu64 "/%" PRIu64
		       "\nheld_metadata_root=%" PRIu64 "\nread_only=%d\n"
		       "out_of_data_space=%d\nneeds_check=%d\nfail=%d\n",
		       st.transaction_id, st.used_metadata_blocks,
		       st.total_metadata_blocks, st.used_data_blocks,
		       st.total_data_blocks, st.held_metadata_root,
		       st.read_only, st.out_of_data_space, st.needs_check,
		       st.fail);
	dmrepl_pool_unref(pool);
	return failures ? 1 : 0;
}

/* Open, see the held root in the status and the superblock, close. */
static void test_open_close(struct dmrepl_ctx *ctx, const char *name)
{
	struct dmrepl_metadata *md = NULL, *md2 = NULL;
	struct dmrepl_pool_info pi = {0};
	char pid[64];
	uint64_t held;
	int r;

	printf("# open, second open, close\n");
	check(held_root(ctx, name) == 0, "no snapshot held before");
	r = dmrepl_metadata_open_pool(ctx, name, &md);
	check(r == 0, "dmrepl_metadata_open_pool: %s", strerror(-r));
	if (r < 0)
		return;
	held = held_root(ctx, name);
	printf("held_metadata_root while open=%" PRIu64 "\n", held);
	check(held != 0, "a snapshot is held while the metadata is open");
	r = dmrepl_metadata_get_pool_info(md, &pi);
	check(r == 0 && pi.using_held_root && pi.held_root_block == held,
	      "the reader uses the held root (r=%d using=%d root=%" PRIu64 ")",
	      r, pi.using_held_root, pi.held_root_block);

	log_clear();
	r = dmrepl_metadata_open_pool(ctx, name, &md2);
	check(r == -EBUSY, "a second open gets -EBUSY, got %d", r);
	check(md2 == NULL, "ret_md untouched on failure");
	snprintf(pid, sizeof(pid), "another dmrepl (pid %d)", (int)getpid());
	check(strstr(log_text, pid) && strstr(log_text, name),
	      "the message names the pool and the holder's pid: %s", log_text);
	check(held_root(ctx, name) == held, "the failed open changed nothing");

	/* an extra reference: only the last unref releases */
	dmrepl_metadata_ref(md);
	dmrepl_metadata_unref(md);
	check(held_root(ctx, name) == held,
	      "still held after a non-last unref");
	dmrepl_metadata_unref(md);
	check(held_root(ctx, name) == 0, "released by the last unref");
}

/* A child reserves, is killed; the next open releases what it left. */
static void test_stale(struct dmrepl_ctx *ctx, const char *name)
{
	struct dmrepl_metadata *md = NULL;
	char c, expect[128];
	int ready[2], r;
	pid_t child;

	printf("# snapshot left by a killed dmrepl\n");
	if (pipe(ready) < 0)
		return;
	child = fork();
	if (child == 0) {
		if (dmrepl_metadata_open_pool(ctx, name, &md) == 0)
			(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	check(read(ready[0], &c, 1) == 1, "child reserved the snapshot");
	check(held_root(ctx, name) != 0, "held by the child");
	check(dmrepl_metadata_open_pool(ctx, name, &md) == -EBUSY,
	      "busy while the child lives");
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	check(held_root(ctx, name) != 0, "still held after the child died");

	log_clear();
	r = dmrepl_metadata_open_pool(ctx, name, &md);
	check(r == 0, "open after the holder died: %s", strerror(-r));
	snprintf(expect, sizeof(expect), "that dmrepl pid %d left", (int)child);
	check(strstr(log_text, expect) != NULL, "warning names pid %d: %s",
	      (int)child, log_text);
	check(held_root(ctx, name) != 0, "reserved again");
	dmrepl_metadata_unref(md);
	check(held_root(ctx, name) == 0, "released");
	close(ready[0]);
	close(ready[1]);
}

static void test_not_a_pool(struct dmrepl_ctx *ctx, const char *not_pool)
{
	struct dmrepl_pool *pool = NULL;
	int r;

	printf("# not a pool: %s, and a missing device\n", not_pool);
	r = dmrepl_pool_open(ctx, not_pool, &pool);
	check(r == -ENODEV && !pool, "%s is not a pool: got %d", not_pool, r);
	r = dmrepl_pool_open(ctx, "dmrepl-test-no-such-device", &pool);
	check(r == -ENODEV && !pool, "missing device: got %d", r);
}

static int cmd_run(struct dmrepl_ctx *ctx, const char *name,
		   const char *not_pool)
{
	test_open_close(ctx, name);
	test_stale(ctx, name);
	if (not_pool)
		test_not_a_pool(ctx, not_pool);
	return failures ? 1 : 0;
}

/* Pretend a dead dmrepl left @state in the lock record. */
static void fake_record(struct dmrepl_ctx *ctx, const char *name,
			enum dmrepl_snap_state state, uint64_t root,
			const struct dmrepl_snap_copy *copy)
{
	struct dmrepl_lock_record rec = {
	    .holder = 999999,
	    .state = state,
	    .owner = 999999,
	    .root = root,
	};
	struct dmrepl_lock *lock = NULL;

	if (copy)
		rec.copy = *copy;
	check(dmrepl_lock_take(ctx, name, &lock) == 0, "take the lock");
	if (lock)
		check(dmrepl_lock_write(lock, &rec, true) == 0,
		      "write the record");
	dmrepl_lock_drop(lock);
}

static void expect_busy(struct dmrepl_ctx *ctx, const char *name, uint64_t held,
			const char *text)
{
	struct dmrepl_metadata *md = NULL;
	int r;

	log_clear();
	r = dmrepl_metadata_open_pool(ctx, name, &md);
	check(r == -EBUSY && !md, "-EBUSY, got %d", r);
	check(strstr(log_text, text) != NULL, "message has '%s': %s", text,
	      log_text);
	check(held_root(ctx, name) == held, "the snapshot was left alone");
}

/* A reader: a child process with the pool's metadata device open. */
static pid_t start_reader(struct dmrepl_ctx *ctx, const char *name)
{
	struct dmrepl_pool *pool = NULL;
	int ready[2], fd;
	pid_t child;
	char c;

	check(dmrepl_pool_open(ctx, name, &pool) == 0, "open the pool");
	if (!pool || pipe(ready) < 0)
		return -1;
	child = fork();
	if (child == 0) {
		fd = open(dmrepl_pool_get_metadata_path(pool), O_RDONLY);
		if (fd >= 0)
			(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	check(read(ready[0], &c, 1) == 1, "the reader opened the device");
	close(ready[0]);
	close(ready[1]);
	dmrepl_pool_unref(pool);
	return child;
}

static void stop(pid_t child)
{
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
}

static int cmd_external(struct dmrepl_ctx *ctx, const char *name)
{
	struct dmrepl_metadata *md = NULL;
	const struct dmrepl_snap_copy bogus = {1, 2, 3, 4};
	char text[256];
	uint64_t held = held_root(ctx, name);
	pid_t reader;
	int r;

	printf("# snapshot held by another tool, root %" PRIu64 "\n", held);
	check(held != 0, "the caller reserved a snapshot");
	snprintf(
	    text, sizeof(text),
	    "pool %s: a metadata snapshot is already held (root block %" PRIu64
	    ") by another tool; release it with: dmsetup message %s"
	    " 0 release_metadata_snap",
	    name, held, name);
	expect_busy(ctx, name, held, text);

	/* a dead dmrepl's record for another root proves nothing */
	fake_record(ctx, name, DMREPL_SNAP_RESERVED, held + 1, NULL);
	expect_busy(ctx, name, held, "by another tool");
	fake_record(ctx, name, DMREPL_SNAP_RELEASING, held + 1, NULL);
	expect_busy(ctx, name, held, "by another tool");
	/* nor one for this root whose copy said something else */
	fake_record(ctx, name, DMREPL_SNAP_RESERVED, held, &bogus);
	expect_busy(ctx, name, held, "by another tool");

	/*
	 * One that died while reserving: with a reader, the snapshot is
	 * never released, whoever's it is.
	 */
	fake_record(ctx, name, DMREPL_SNAP_RESERVING, 0, NULL);
	reader = start_reader(ctx, name);
	snprintf(text, sizeof(text), "is open: pid %d (dm-pool-test)",
		 (int)reader);
	expect_busy(ctx, name, held, text);
	/* the same for the record that names this very root */
	fake_record(ctx, name, DMREPL_SNAP_RESERVED, held, NULL);
	expect_busy(ctx, name, held, text);
	stop(reader);

	/*
	 * Without a reader, a RESERVING record cannot be told from the
	 * root it left (doc/architecture.md): released, as designed.
	 */
	fake_record(ctx, name, DMREPL_SNAP_RESERVING, 0, NULL);
	log_clear();
	r = dmrepl_metadata_open_pool(ctx, name, &md);
	check(r == 0, "open after a RESERVING record, no reader: %d", r);
	check(strstr(log_text, "dmrepl pid 999999 left when it was killed "
				"while reserving it") != NULL,
	      "the warning says why: %s", log_text);
	dmrepl_metadata_unref(md);
	check(held_root(ctx, name) == 0, "nothing held at the end");
	return failures ? 1 : 0;
}

static int cmd_readonly(struct dmrepl_ctx *ctx, const char *name)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_pool_status st = {0};
	int r;

	printf("# read-only pool\n");
	r = get_status(ctx, name, &st);
	check(r == 0 && st.read_only && !st.fail, "status says ro (r=%d)", r);
	log_clear();
	r = dmrepl_metadata_open_pool(ctx, name, &md);
	check(r == -EROFS && !md, "-EROFS, got %d", r);
	check(strstr(log_text, "read-only") != NULL,
	      "message says read-only: %s", log_text);
	return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct dmrepl_ctx *ctx;
	int r = 2;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3) {
		fprintf(
		    stderr,
		    "usage: %s status|run|external|readonly POOL [NOT_POOL]\n",
		    argv[0]);
		return 2;
	}
	ctx = new_ctx();
	if (strcmp(argv[1], "status") == 0)
		r = cmd_status(ctx, argv[2]);
	else if (strcmp(argv[1], "run") == 0)
		r = cmd_run(ctx, argv[2], argc > 3 ? argv[3] : NULL);
	else if (strcmp(argv[1], "external") == 0)
		r = cmd_external(ctx, argv[2]);
	else if (strcmp(argv[1], "readonly") == 0)
		r = cmd_readonly(ctx, argv[2]);
	else
		fprintf(stderr, "%s: unknown command %s\n", argv[0], argv[1]);
	dmrepl_unref(ctx);
	printf("%s: %d failure(s)\n", argv[1], failures);
	return r;
}
