/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The per-pool lock: a flock on a small file in the lock directory, whose
 * content records the holder and the metadata snapshot it reserved.
 *
 * A pool has a single metadata snapshot, so two dmrepl runs on one pool
 * must not overlap. The flock is released by the kernel when its holder
 * dies, so whoever gets it knows the previous holder is gone and can
 * trust the record to tell whether a held snapshot is one it left.
 *
 * The lock directory is persistent (/var/lib/dmrepl/locks), not /run: a
 * held root lives in the pool's superblock and survives a reboot, so the
 * record that proves it was dmrepl's must survive one too.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"

#define RUN_DIR_DEFAULT "/run/dmrepl"
#define LOCK_DIR_DEFAULT "/var/lib/dmrepl/locks"
#define LOCK_SUFFIX ".lock"
/* Leaves room for the suffix within NAME_MAX. */
#define LOCK_NAME_MAX 200
/* A record's size on disk: the longest one formats to under 180 bytes. */
#define RECORD_BYTES 200

struct dmrepl_lock {
	struct dmrepl_ctx *ctx;
	char *pool_name;
	char *path;
	int fd;
};

static const char *const state_names[] = {
    [DMREPL_SNAP_NONE] = "none",
    [DMREPL_SNAP_RESERVING] = "reserving",
    [DMREPL_SNAP_RESERVED] = "reserved",
    [DMREPL_SNAP_RELEASING] = "releasing",
};

const char *dmrepl_run_dir(void)
{
	const char *dir = secure_getenv("DMREPL_RUN_DIR");

	return dir && *dir ? dir : RUN_DIR_DEFAULT;
}

static int make_dir(struct dmrepl_ctx *ctx, const char *dir, const char *what)
{
	int r;

	if (mkdir(dir, 0755) == 0 || errno == EEXIST)
		return 0;
	r = -errno;
	err(ctx, "cannot create the %s %s: %s%s", what, dir, strerror(-r),
	    r == -EACCES || r == -EPERM ? " (dmrepl needs root)" : "");
	return r;
}

int dmrepl_run_dir_create(struct dmrepl_ctx *ctx)
{
	return make_dir(ctx, dmrepl_run_dir(), "run directory");
}

const char *dmrepl_lock_dir(void)
{
	const char *dir = secure_getenv("DMREPL_LOCK_DIR");

	return dir && *dir ? dir : LOCK_DIR_DEFAULT;
}

/* The lock directory, and the folders above it that are missing. */
static int lock_dir_create(struct dmrepl_ctx *ctx)
{
	const char *dir = dmrepl_lock_dir();
	char path[PATH_MAX];
	int r;

	if (access(dir, F_OK) == 0)
		return 0;
	if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		r = make_dir(ctx, path, "state directory");
		*p = '/';
		if (r < 0)
			return r;
	}
	return make_dir(ctx, path, "lock directory");
}

static int is_safe_char(char c, size_t pos)
{
	if (c == '.')
		return pos > 0; /* never ".", ".." or a hidden file */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '+';
}

/* FNV-1a, to keep over-long names apart once they are cut. */
static uint64_t name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

int dmrepl_lock_file_name(const char *pool_name, char *buf, size_t size)
{
	char name[LOCK_NAME_MAX + 4];
	size_t n = 0;
	int len;

	if (!pool_name || !*pool_name)
		return -EINVAL;
	for (size_t i = 0; pool_name[i] && n < LOCK_NAME_MAX; i++) {
		if (is_safe_char(pool_name[i], i))
			name[n++] = pool_name[i];
		else
			n += (size_t)snprintf(name + n, 4, "%%%02X",
					      (unsigned char)pool_name[i]);
	}
	name[n] = '\0';
	if (n >= LOCK_NAME_MAX)
		len = snprintf(buf, size, "%.*s~%016" PRIx64 LOCK_SUFFIX,
			       LOCK_NAME_MAX - 20, name, name_hash(pool_name));
	else
		len = snprintf(buf, size, "%s" LOCK_SUFFIX, name);
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
}

int dmrepl_lock_record_format(const struct dmrepl_lock_record *rec, char *buf,
			      size_t size)
{
	int len;

	if ((unsigned int)rec->state >= ARRAY_SIZE(state_names))
		return -EINVAL;
	len = snprintf(buf, size,
		       "holder=%d state=%s owner=%d root=%" PRIu64
		       " tx=%" PRIu64 " map=%" PRIu64 " det=%" PRIu64
		       " time=%" PRIu32 "\n",
		       (int)rec->holder, state_names[rec->state],
		       (int)rec->owner, rec->root, rec->copy.trans_id,
		       rec->copy.mapping_root, rec->copy.details_root,
		       rec->copy.time);
	return len < 0 || (size_t)len >= size ? -ENOBUFS : len;
}

int dmrepl_lock_record_parse(const char *text, struct dmrepl_lock_record *ret)
{
	struct dmrepl_lock_record rec = {0};
	char state[16];
	int holder, owner, end = 0;
	size_t i;

	if (sscanf(text, "holder=%d state=%15[a-z] owner=%d root=%" SCNu64 "%n",
		   &holder, state, &owner, &rec.root, &end) != 4 ||
	    end == 0)
		return -EINVAL;
	/* the held copy's identity; records of dmrepl 0.x before it lack it */
	if (text[end] == ' ') {
		int more = 0;

		if (sscanf(text + end,
			   " tx=%" SCNu64 " map=%" SCNu64 " det=%" SCNu64
			   " time=%" SCNu32 "%n",
			   &rec.copy.trans_id, &rec.copy.mapping_root,
			   &rec.copy.details_root, &rec.copy.time,
			   &more) != 4 ||
		    more == 0)
			return -EINVAL;
		end += more;
	}
	if (text[end + strspn(text + end, " \n")] != '\0' || holder < 0 ||
	    owner < 0)
		return -EINVAL;
	for (i = 0; i < ARRAY_SIZE(state_names); i++)
		if (strcmp(state, state_names[i]) == 0)
			break;
	if (i == ARRAY_SIZE(state_names))
		return -EINVAL;
	rec.holder = holder;
	rec.owner = owner;
	rec.state = (enum dmrepl_snap_state)i;
	*ret = rec;
	return 0;
}

static int read_record_fd(int fd, struct dmrepl_lock_record *ret)
{
	char text[256];
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);

	if (n < 0)
		return -errno;
	text[n] = '\0';
	if (n == 0) {
		memset(ret, 0, sizeof(*ret));
		return 0;
	}
	return dmrepl_lock_record_parse(text, ret);
}

int dmrepl_lock_read(struct dmrepl_lock *lock, struct dmrepl_lock_record *ret)
{
	int r = read_record_fd(lock->fd, ret);

	if (r == -EINVAL)
		warn(lock->ctx, "%s: ignoring the unreadable lock record in %s",
		     lock->pool_name, lock->path);
	else if (r < 0)
		err(lock->ctx, "%s: cannot read %s: %s", lock->pool_name,
		    lock->path, strerror(-r));
	return r;
}

int dmrepl_lock_write(struct dmrepl_lock *lock,
		      const struct dmrepl_lock_record *rec, bool sync)
{
	char text[256];
	int len, r;

	len = dmrepl_lock_record_format(rec, text, sizeof(text));
	if (len < 0)
		return len;
	/*
	 * Padded to a fixed size, so that one pwrite replaces the record
	 * whole: no ftruncate between a message and its record.
	 */
	memset(text + len - 1, ' ', RECORD_BYTES - (size_t)len);
	text[RECORD_BYTES - 1] = '\n';
	if (pwrite(lock->fd, text, RECORD_BYTES, 0) != RECORD_BYTES ||
	    (sync && fsync(lock->fd) < 0)) {
		r = errno ? -errno : -EIO;
		err(lock->ctx, "%s: cannot write %s: %s", lock->pool_name,
		    lock->path, strerror(-r));
		return r;
	}
	return 0;
}

static int lock_busy(struct dmrepl_ctx *ctx, const char *pool_name, int fd,
		     const char *path)
{
	struct dmrepl_lock_record rec;

	if (read_record_fd(fd, &rec) == 0 && rec.holder > 0)
		err(ctx,
		    "pool %s: another dmrepl (pid %d) is using it (lock %s); "
		    "wait for it to finish",
		    pool_name, (int)rec.holder, path);
	else
		err(ctx,
		    "pool %s: another dmrepl is using it (lock %s); "
		    "wait for it to finish",
		    pool_name, path);
	return -EBUSY;
}

static int open_lock_file(struct dmrepl_ctx *ctx, const char *pool_name,
			  char **ret_path)
{
	char name[LOCK_NAME_MAX + 32], *path;
	int fd, r;

	r = dmrepl_lock_file_name(pool_name, name, sizeof(name));
	if (r < 0)
		return r;
	r = lock_dir_create(ctx);
	if (r < 0)
		return r;
	if (asprintf(&path, "%s/%s", dmrepl_lock_dir(), name) < 0)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		err(ctx, "pool %s: cannot open the lock file %s: %s", pool_name,
		    path, strerror(-r));
		free(path);
		return r;
	}
	*ret_path = path;
	return fd;
}

int dmrepl_lock_take(struct dmrepl_ctx *ctx, const char *pool_name,
		     struct dmrepl_lock **ret_lock)
{
	struct dmrepl_lock *lock;
	char *path = NULL;
	struct stat st;
	int fd, r;

	fd = open_lock_file(ctx, pool_name, &path);
	if (fd < 0)
		return fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? lock_busy(ctx, pool_name, fd, path)
					 : -errno;
		if (r != -EBUSY)
			err(ctx, "pool %s: cannot lock %s: %s", pool_name, path,
			    strerror(-r));
		goto fail;
	}
	r = -ENOMEM;
	lock = calloc(1, sizeof(*lock));
	if (!lock)
		goto fail;
	lock->pool_name = strdup(pool_name);
	if (!lock->pool_name) {
		free(lock);
		goto fail;
	}
	/* a longer file than any record would leave a tail after one */
	if (fstat(fd, &st) == 0 && st.st_size > RECORD_BYTES &&
	    ftruncate(fd, RECORD_BYTES) < 0)
		dbg(ctx, "pool %s: cannot truncate %s: %s", pool_name, path,
		    strerror(errno));
	lock->ctx = dmrepl_ref(ctx);
	lock->path = path;
	lock->fd = fd;
	dbg(ctx, "pool %s: locked %s", pool_name, path);
	*ret_lock = lock;
	return 0;
fail:
	close(fd);
	free(path);
	return r;
}

void dmrepl_lock_drop(struct dmrepl_lock *lock)
{
	if (!lock)
		return;
	dbg(lock->ctx, "pool %s: unlocked %s", lock->pool_name, lock->path);
	close(lock->fd);
	free(lock->path);
	free(lock->pool_name);
	dmrepl_unref(lock->ctx);
	free(lock);
}

static void fatal_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGQUIT);
}

void dmrepl_signals_block(sigset_t *ret_old)
{
	sigset_t set;

	fatal_signals(&set);
	pthread_sigmask(SIG_BLOCK, &set, ret_old);
}

void dmrepl_signals_restore(const sigset_t *old)
{
	pthread_sigmask(SIG_SETMASK, old, NULL);
}
