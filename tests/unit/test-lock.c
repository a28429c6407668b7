/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-pool lock: file names, the record format, and the flock itself
 * (two open file descriptions conflict even within one process), in a
 * temporary DMREPL_LOCK_DIR; and the judgement of a held
 * metadata snapshot that a killed dmrepl may have left.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libdmrepl-private.h"
#include "unit.h"

static char run_dir[] = "/tmp/dmrepl-test-lock.XXXXXX";
static char last_msg[512];

__attribute__((format(printf, 6, 0))) static void
capture_log(struct dmrepl_ctx *ctx, int priority, const char *file, int line,
	    const char *fn, const char *format, va_list args, void *userdata)
{
	vsnprintf(last_msg, sizeof(last_msg), format, args);
}

static struct dmrepl_ctx *new_ctx(void)
{
	struct dmrepl_ctx *ctx = NULL;

	if (dmrepl_new(&ctx) < 0)
		return NULL;
	dmrepl_set_log_fn(ctx, capture_log, NULL);
	return ctx;
}

static int suite_init(void)
{
	if (!mkdtemp(run_dir))
		return -1;
	return setenv("DMREPL_LOCK_DIR", run_dir, 1);
}

static int suite_clean(void)
{
	char cmd[sizeof(run_dir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", run_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_file_names(void)
{
	static const struct {
		const char *pool, *file;
	} cases[] = {
	    {"vg0-pool0-tpool", "vg0-pool0-tpool.lock"},
	    {"a.b_c+d", "a.b_c+d.lock"},
	    {"a/b", "a%2Fb.lock"},
	    {"a b%", "a%20b%25.lock"},
	    {".", "%2E.lock"},
	    {"..", "%2E..lock"},
	    {"\xc3\xa9", "%C3%A9.lock"},
	};
	char buf[256];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		CU_ASSERT_EQUAL(
		    dmrepl_lock_file_name(cases[i].pool, buf, sizeof(buf)), 0);
		CU_ASSERT_STRING_EQUAL(buf, cases[i].file);
	}
	CU_ASSERT_EQUAL(dmrepl_lock_file_name("", buf, sizeof(buf)), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_lock_file_name("pool", buf, 6), -ENAMETOOLONG);
}

/* dm names reach 127 bytes; escaped they would pass NAME_MAX. */
static void test_long_names(void)
{
	char a[128], b[128], fa[256], fb[256];

	memset(a, '/', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[sizeof(b) - 2] = 'x';
	CU_ASSERT_EQUAL_FATAL(dmrepl_lock_file_name(a, fa, sizeof(fa)), 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_lock_file_name(b, fb, sizeof(fb)), 0);
	CU_ASSERT(strlen(fa) < 255);
	CU_ASSERT_PTR_NOT_NULL(strchr(fa, '~'));
	CU_ASSERT_STRING_NOT_EQUAL(fa, fb);
}

static void test_record_round_trip(void)
{
	struct dmrepl_lock_record in =
				      {
					  .holder = 4242,
					  .state = DMREPL_SNAP_RESERVED,
					  .owner = 4241,
					  .root = 18446744073709551615ULL,
					  .copy = {.trans_id = 7,
						   .mapping_root = 11,
						   .details_root = 12,
						   .time = 4294967295u},
				      },
				  out;
	char text[160];

	CU_ASSERT(dmrepl_lock_record_format(&in, text, sizeof(text)) > 0);
	CU_ASSERT_STRING_EQUAL(text, "holder=4242 state=reserved owner=4241 "
				     "root=18446744073709551615 tx=7 map=11 "
				     "det=12 time=4294967295\n");
	CU_ASSERT_EQUAL_FATAL(dmrepl_lock_record_parse(text, &out), 0);
	CU_ASSERT_EQUAL(out.holder, in.holder);
	CU_ASSERT_EQUAL(out.state, in.state);
	CU_ASSERT_EQUAL(out.owner, in.owner);
	CU_ASSERT_EQUAL(out.root, in.root);
	CU_ASSERT_EQUAL(out.copy.trans_id, 7);
	CU_ASSERT_EQUAL(out.copy.mapping_root, 11);
	CU_ASSERT_EQUAL(out.copy.details_root, 12);
	CU_ASSERT_EQUAL(out.copy.time, 4294967295u);
	CU_ASSERT_EQUAL(dmrepl_lock_record_format(&in, text, 10), -ENOBUFS);

	in.state = DMREPL_SNAP_RELEASING;
	CU_ASSERT(dmrepl_lock_record_format(&in, text, sizeof(text)) > 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_lock_record_parse(text, &out), 0);
	CU_ASSERT_EQUAL(out.state, DMREPL_SNAP_RELEASING);

	/* a record written before the copy was recorded still reads */
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_lock_record_parse(
		"holder=5 state=reserving owner=5 root=0\n", &out),
	    0);
	CU_ASSERT_EQUAL(out.state, DMREPL_SNAP_RESERVING);
	CU_ASSERT_EQUAL(out.copy.trans_id, 0);
	CU_ASSERT_EQUAL(out.copy.time, 0);
}

static void test_record_malformed(void)
{
	static const char *const texts[] = {
	    "",
	    "holder=1",
	    "holder=1 state=reserved owner=1",
	    "holder=1 state=bogus owner=1 root=2",
	    "holder=-1 state=none owner=0 root=0",
	    "holder=1 state=none owner=0 root=0 junk",
	    "holder=1 state=RESERVED owner=1 root=2",
	    "pid 1 reserved",
	    "holder=1 state=reserved owner=1 root=2 tx=1",
	    "holder=1 state=reserved owner=1 root=2 tx=1 map=2 det=3",
	    "holder=1 state=reserved owner=1 root=2 tx=1 map=2 det=3 time=x",
	    "holder=1 state=reserved owner=1 root=2 tx=1 map=2 det=3 time=4 z",
	};
	struct dmrepl_lock_record rec = {.holder = 7};

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
		if (dmrepl_lock_record_parse(texts[i], &rec) != -EINVAL)
			CU_FAIL(texts[i]);
	CU_ASSERT_EQUAL(rec.holder, 7);
}

static void test_lock_conflict(void)
{
	struct dmrepl_ctx *ctx = new_ctx();
	struct dmrepl_lock *a = NULL, *b = NULL;
	struct dmrepl_lock_record rec = {0}, got;
	char pid[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL_FATAL(dmrepl_lock_take(ctx, "pool/one", &a), 0);
	/* a fresh file reads as no record */
	CU_ASSERT_EQUAL(dmrepl_lock_read(a, &got), 0);
	CU_ASSERT_EQUAL(got.holder, 0);
	CU_ASSERT_EQUAL(got.state, DMREPL_SNAP_NONE);

	rec.holder = getpid();
	CU_ASSERT_EQUAL(dmrepl_lock_write(a, &rec, true), 0);
	CU_ASSERT_EQUAL(dmrepl_lock_take(ctx, "pool/one", &b), -EBUSY);
	CU_ASSERT_PTR_NULL(b);
	snprintf(pid, sizeof(pid), "(pid %d)", (int)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(last_msg, pid));
	CU_ASSERT_PTR_NOT_NULL(strstr(last_msg, "pool pool/one"));

	/* another pool is independent */
	CU_ASSERT_EQUAL(dmrepl_lock_take(ctx, "pool-two", &b), 0);
	dmrepl_lock_drop(b);
	b = NULL;

	/* the record outlives the lock */
	rec.state = DMREPL_SNAP_RESERVED;
	rec.owner = 99;
	rec.root = 17;
	CU_ASSERT_EQUAL(dmrepl_lock_write(a, &rec, true), 0);
	dmrepl_lock_drop(a);
	CU_ASSERT_EQUAL_FATAL(dmrepl_lock_take(ctx, "pool/one", &b), 0);
	CU_ASSERT_EQUAL(dmrepl_lock_read(b, &got), 0);
	CU_ASSERT_EQUAL(got.state, DMREPL_SNAP_RESERVED);
	CU_ASSERT_EQUAL(got.owner, 99);
	CU_ASSERT_EQUAL(got.root, 17);
	dmrepl_lock_drop(b);
	dmrepl_lock_drop(NULL);
	dmrepl_unref(ctx);
}

/* Fork: a child's lock conflicts, and is gone once the child is killed. */
static void test_lock_dies_with_holder(void)
{
	struct dmrepl_ctx *ctx = new_ctx();
	struct dmrepl_lock *lock = NULL;
	int ready[2];
	pid_t child;
	char c;

	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL_FATAL(pipe(ready), 0);
	child = fork();
	CU_ASSERT_FATAL(child >= 0);
	if (child == 0) {
		if (dmrepl_lock_take(ctx, "pool-three", &lock) == 0)
			(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	CU_ASSERT_EQUAL(read(ready[0], &c, 1), 1);
	CU_ASSERT_EQUAL(dmrepl_lock_take(ctx, "pool-three", &lock), -EBUSY);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	CU_ASSERT_EQUAL(dmrepl_lock_take(ctx, "pool-three", &lock), 0);
	dmrepl_lock_drop(lock);
	close(ready[0]);
	close(ready[1]);
	dmrepl_unref(ctx);
}

static void test_run_dir_failure(void)
{
	struct dmrepl_ctx *ctx = new_ctx();
	struct dmrepl_lock *lock = NULL;

	char file[sizeof(run_dir) + 16], dir[sizeof(run_dir) + 32];
	FILE *f;

	/* missing folders are made, however deep */
	snprintf(dir, sizeof(dir), "%s/a/b/locks", run_dir);
	setenv("DMREPL_LOCK_DIR", dir, 1);
	CU_ASSERT_EQUAL(dmrepl_lock_take(ctx, "pool", &lock), 0);
	dmrepl_lock_drop(lock);
	lock = NULL;

	/* a file in the way: the error names the folder */
	snprintf(file, sizeof(file), "%s/file", run_dir);
	f = fopen(file, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fclose(f);
	snprintf(dir, sizeof(dir), "%s/file/locks", run_dir);
	setenv("DMREPL_LOCK_DIR", dir, 1);
	CU_ASSERT_EQUAL(dmrepl_lock_take(ctx, "pool", &lock), -ENOTDIR);
	CU_ASSERT_PTR_NULL(lock);
	CU_ASSERT_PTR_NOT_NULL(strstr(last_msg, dir));
	setenv("DMREPL_LOCK_DIR", run_dir, 1);
	dmrepl_unref(ctx);
}

/*
 * The judgement of a held root by a run holding the lock: every state a
 * killed dmrepl can leave, against a root that is its own and ones that
 * are not.
 */
static void test_held_judge(void)
{
	const struct dmrepl_snap_copy c = {.trans_id = 5,
					   .mapping_root = 100,
					   .details_root = 101,
					   .time = 3};
	struct dmrepl_snap_copy other = c, older = c, newer = c;
	struct dmrepl_lock_record rec = {.holder = 9, .owner = 9};

	other.mapping_root = 200;
	older.trans_id = 4;
	newer.trans_id = 6;

	/* nothing recorded: never ours, whatever is held */
	rec.state = DMREPL_SNAP_NONE;
	CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &c, false), DMREPL_HELD_OTHER);

	/* held, or being released: the recorded root and copy */
	for (int s = DMREPL_SNAP_RESERVED; s <= DMREPL_SNAP_RELEASING; s++) {
		rec.state = (enum dmrepl_snap_state)s;
		rec.root = 50;
		rec.copy = c;
		CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &c, false),
				DMREPL_HELD_OURS);
		/* another block: released, then someone reserved again */
		CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 51, &c, false),
				DMREPL_HELD_OTHER);
		/* same block reused, but the pool changed in between */
		CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &other, false),
				DMREPL_HELD_OTHER);
		/* a reader: never released, even our own */
		CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &c, true),
				DMREPL_HELD_IN_USE);
		/* the copy cannot be read: not proven */
		CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, NULL, false),
				DMREPL_HELD_OTHER);
		/* a record of an older dmrepl: the root alone */
		memset(&rec.copy, 0, sizeof(rec.copy));
		CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &other, false),
				DMREPL_HELD_OURS);
	}

	/* killed around the reserve message: any copy not older than it */
	rec.state = DMREPL_SNAP_RESERVING;
	rec.root = 0;
	memset(&rec.copy, 0, sizeof(rec.copy));
	rec.copy.trans_id = 5;
	CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &c, false), DMREPL_HELD_OURS);
	CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &newer, false),
			DMREPL_HELD_OURS);
	CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &older, false),
			DMREPL_HELD_OTHER);
	CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, &c, true),
			DMREPL_HELD_IN_USE);
	CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 50, NULL, false),
			DMREPL_HELD_OTHER);
	/* nothing held is nothing to release */
	CU_ASSERT_EQUAL(dmrepl_held_judge(&rec, 0, &c, false), DMREPL_HELD_OTHER);
}

/*
 * Who has a block device open, from a /proc made here (DMREPL_PROC): a
 * process with a descriptor on a node of the device counts, one with
 * another device, a file or a socket does not, nor does this process.
 * The node is made with mknod, so this needs root, as dmrepl does.
 */
static void test_openers(void)
{
	char root[] = "/tmp/dmrepl-test-proc.XXXXXX", path[256], node[256],
	    other[256], comm[32];
	const dev_t devt = makedev(7, 250), elsewhere = makedev(7, 251);
	pid_t pids[4];
	size_t n = 99;
	FILE *f;

	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(root));
	snprintf(node, sizeof(node), "%s/node", root);
	snprintf(other, sizeof(other), "%s/other", root);
	if (mknod(node, S_IFBLK | 0600, devt) < 0 ||
	    mknod(other, S_IFBLK | 0600, elsewhere) < 0) {
		CU_FAIL("mknod of a block device node failed: run as root");
		return;
	}
	/* 101 holds the device twice, 102 another one and a file, 103 none */
	const struct {
		const char *pid, *fd, *target;
	} links[] = {
	    {"101", "3", node},	     {"101", "7", node},
	    {"102", "0", other},     {"102", "1", "/etc/hostname"},
	    {"103", "0", "/dev/null"}, {"self-not-a-pid", "0", node},
	};
	for (size_t i = 0; i < ARRAY_SIZE(links); i++) {
		snprintf(path, sizeof(path), "%s/%s", root, links[i].pid);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/%s/fd", root, links[i].pid);
		mkdir(path, 0755);
		snprintf(path, sizeof(path), "%s/%s/fd/%s", root, links[i].pid,
			 links[i].fd);
		CU_ASSERT_EQUAL(symlink(links[i].target, path), 0);
	}
	/* this process, also holding it, is never counted */
	snprintf(path, sizeof(path), "%s/%d", root, (int)getpid());
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%d/fd", root, (int)getpid());
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/%d/fd/4", root, (int)getpid());
	CU_ASSERT_EQUAL(symlink(node, path), 0);
	snprintf(path, sizeof(path), "%s/101/comm", root);
	f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("thin_dump\n", f);
	fclose(f);

	setenv("DMREPL_PROC", root, 1);
	CU_ASSERT_EQUAL(dmrepl_dev_openers(devt, pids, ARRAY_SIZE(pids), &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(pids[0], 101);
	dmrepl_pid_comm(101, comm, sizeof(comm));
	CU_ASSERT_STRING_EQUAL(comm, "thin_dump");
	dmrepl_pid_comm(103, comm, sizeof(comm));
	CU_ASSERT_STRING_EQUAL(comm, "?");
	CU_ASSERT_EQUAL(dmrepl_dev_openers(elsewhere, pids, 0, &n), 0);
	CU_ASSERT_EQUAL(n, 1); /* counted, though no room to keep it */
	CU_ASSERT_EQUAL(dmrepl_dev_openers(makedev(7, 252), pids, 4, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	setenv("DMREPL_PROC", "/nonexistent-proc", 1);
	CU_ASSERT_EQUAL(dmrepl_dev_openers(devt, pids, 4, &n), -ENOENT);
	unsetenv("DMREPL_PROC");

	snprintf(path, sizeof(path), "rm -rf '%s'", root);
	CU_ASSERT_EQUAL(system(path), 0);
}

/* Which dm names are a dead dmrepl's leftovers. */
static void test_leftover_names(void)
{
	char name[64];
	pid_t dead;

	/* a child that has exited and been reaped is gone */
	dead = fork();
	CU_ASSERT_FATAL(dead >= 0);
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);

	snprintf(name, sizeof(name), "dmrepl-%d-src-5", (int)dead);
	CU_ASSERT_TRUE(dmrepl_dm_name_dead_owner(name));
	snprintf(name, sizeof(name), "dmrepl-%d-verify-dst-0", (int)dead);
	CU_ASSERT_TRUE(dmrepl_dm_name_dead_owner(name));
	/* alive: this process, and init */
	snprintf(name, sizeof(name), "dmrepl-%d-src-5", (int)getpid());
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner(name));
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner("dmrepl-1-src-5"));
	/* not a dmrepl name */
	snprintf(name, sizeof(name), "dmrepl-%d", (int)dead);
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner(name));
	snprintf(name, sizeof(name), "dmrepl-%d-", (int)dead);
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner(name));
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner("dmrepl-0-src-5"));
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner("dmrepl--3-src-5"));
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner("vg-pool-tpool"));
	CU_ASSERT_FALSE(dmrepl_dm_name_dead_owner("dmreplx-123-src-5"));
}

static void test_signals_blocked(void)
{
	sigset_t old, now;

	dmrepl_signals_block(&old);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	CU_ASSERT(sigismember(&now, SIGINT));
	CU_ASSERT(sigismember(&now, SIGTERM));
	CU_ASSERT(sigismember(&now, SIGHUP));
	dmrepl_signals_restore(&old);
	pthread_sigmask(SIG_BLOCK, NULL, &now);
	CU_ASSERT_EQUAL(sigismember(&now, SIGINT), sigismember(&old, SIGINT));
}

static CU_TestInfo lock_tests[] = {
    {"lock file names", test_file_names},
    {"long pool names", test_long_names},
    {"record round trip", test_record_round_trip},
    {"malformed records", test_record_malformed},
    {"lock conflict and record", test_lock_conflict},
    {"lock dies with its holder", test_lock_dies_with_holder},
    {"lock directory missing", test_run_dir_failure},
    {"held root judgement", test_held_judge},
    {"openers of a block device", test_openers},
    {"leftover device names", test_leftover_names},
    {"signals blocked", test_signals_blocked},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"lock", suite_init, suite_clean, NULL, NULL, lock_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
