/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Snapshot sizes. A thin device has no size in the pool's metadata: only
 * a dm table gives it one. A snapshot that `dmrepl snapshot` took of an
 * active origin gets the origin's size recorded here, so that later
 * commands on it (replicate, send) need no --size even when nothing maps
 * it:
 *
 *   STATE/sizes/POOL/ID     "size_bytes=N\ncreation_time=T\n"
 *
 * POOL escaped as lock files are. The creation time is the snapshot's in
 * the pool's metadata: a record of an id that was deleted and reused no
 * longer matches, and is ignored. (LVM pools need none: LVM keeps sizes.)
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"
#include "replication.h"

static int size_path(const char *state_dir, const char *pool, uint64_t id,
		     char *dir, size_t dsize, char *path, size_t psize)
{
	char key[300];
	size_t n;
	int r = dmrepl_lock_file_name(pool, key, sizeof(key));

	if (r < 0)
		return r;
	n = strlen(key);
	if (n > 5 && strcmp(key + n - 5, ".lock") == 0)
		key[n - 5] = '\0';
	if (snprintf(dir, dsize, "%s/sizes/%s", state_dir, key) >= (int)dsize ||
	    snprintf(path, psize, "%s/%" PRIu64, dir, id) >= (int)psize)
		return -ENAMETOOLONG;
	return 0;
}

int dmrepl_mkdirs(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return mkdir(buf, 0700) < 0 && errno != EEXIST ? -errno : 0;
}

int dmrepl_snap_size_record(struct dmrepl_ctx *ctx, const char *state_dir,
			    const char *pool, uint64_t thin_id,
			    uint32_t creation_time, uint64_t size_bytes)
{
	char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX + 8], text[96];
	int fd, n, r;

	r = size_path(state_dir ? state_dir : dmrepl_state_dir_default(), pool,
		      thin_id, dir, sizeof(dir), path, sizeof(path));
	if (r == 0)
		r = dmrepl_mkdirs(dir);
	if (r < 0) {
		err(ctx, "cannot record the size of thin %" PRIu64 " of %s: %s",
		    thin_id, pool, strerror(-r));
		return r;
	}
	n = snprintf(text, sizeof(text), "size_bytes=%" PRIu64 "\ncreation_time=%u\n",
		     size_bytes, creation_time);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) < 0 ||
	    rename(tmp, path) < 0)
		r = -errno ? -errno : -EIO;
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		unlink(tmp);
		err(ctx, "cannot record the size of thin %" PRIu64 " of %s in "
			 "%s: %s", thin_id, pool, path, strerror(-r));
	}
	return r;
}

/* "KEY=DIGITS\n" at *@p: its value; *@p past it. */
static int field(const char **p, const char *key, uint64_t max, uint64_t *ret)
{
	size_t n = strlen(key);
	uint64_t v = 0;
	const char *s = *p;

	if (strncmp(s, key, n) != 0 || s[n] != '=' || s[n + 1] < '0' || s[n + 1] > '9')
		return -EINVAL;
	for (s += n + 1; *s >= '0' && *s <= '9'; s++) {
		if (v > (max - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (*s != '\n')
		return -EINVAL;
	*p = s + 1;
	*ret = v;
	return 0;
}

int dmrepl_snap_size_parse(const char *text, uint64_t *ret_size,
			   uint32_t *ret_ctime)
{
	uint64_t size, ctime;
	const char *p = text;

	if (field(&p, "size_bytes", UINT64_MAX, &size) < 0 ||
	    field(&p, "creation_time", UINT32_MAX, &ctime) < 0 || *p ||
	    !size || size % 512)
		return -EINVAL;
	*ret_size = size;
	*ret_ctime = (uint32_t)ctime;
	return 0;
}

int dmrepl_snap_size_lookup(struct dmrepl_ctx *ctx, const char *state_dir,
			    const char *pool, uint64_t thin_id,
			    uint32_t creation_time, uint64_t *ret_size)
{
	char dir[PATH_MAX], path[PATH_MAX], text[128];
	uint32_t ctime;
	ssize_t n;
	int fd, r;

	r = size_path(state_dir ? state_dir : dmrepl_state_dir_default(), pool,
		      thin_id, dir, sizeof(dir), path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n <= 0)
		return -ENOENT;
	text[n] = '\0';
	if (dmrepl_snap_size_parse(text, ret_size, &ctime) < 0) {
		warn(ctx, "ignoring the malformed size record %s", path);
		return -ENOENT;
	}
	if (ctime != creation_time) {
		dbg(ctx, "%s: thin %" PRIu64 " is not the snapshot whose size was "
			 "recorded (creation time %u, recorded %u)",
		    pool, thin_id, creation_time, ctime);
		return -ENOENT;
	}
	return 0;
}
