/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lineage: which thin device of a destination pool replicates which
 * snapshot of which source pool. One small text file per replica (and
 * per replication in progress, "staging") in a folder per destination
 * pool under the state directory:
 *
 *   STATE/DSTPOOL/replica-ID    a complete replica, written last (with
 *                               the id of its hidden anchor snapshot)
 *   STATE/DSTPOOL/staging-ID    a replication in progress into thin ID
 *   STATE/DSTPOOL/lock          flock held by the replication running
 *
 * Each file is written whole to a temporary name, fsynced, renamed into
 * place and the folder fsynced: a crash leaves the old file or the new
 * one, never a mix. The format is "key=value" lines; unknown keys are
 * ignored so later versions can add some.
 */
#include "config.h"

#include <dirent.h>
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
#include "lvm.h"
#include "replication.h"

#define STATE_DIR_DEFAULT "/var/lib/dmrepl"
#define RECORD_MAX 4096

const char *dmrepl_state_dir_default(void)
{
	const char *dir = secure_getenv("DMREPL_STATE_DIR");

	return dir && *dir ? dir : STATE_DIR_DEFAULT;
}

/* ---- the text form ---- */

static int put(char *buf, size_t size, size_t *pos, const char *key,
	       uint64_t v)
{
	int n = snprintf(buf + *pos, size - *pos, "%s=%" PRIu64 "\n", key, v);

	if (n < 0 || (size_t)n >= size - *pos)
		return -ENAMETOOLONG;
	*pos += (size_t)n;
	return 0;
}

static int put_ident(char *buf, size_t size, size_t *pos, const char *side,
		     const struct dmrepl_thin_ident *id)
{
	char key[32];
	int r = 0;

	snprintf(key, sizeof(key), "%s_id", side);
	r = r ?: put(buf, size, pos, key, id->thin_id);
	snprintf(key, sizeof(key), "%s_creation_time", side);
	r = r ?: put(buf, size, pos, key, id->creation_time);
	snprintf(key, sizeof(key), "%s_root", side);
	r = r ?: put(buf, size, pos, key, id->root);
	snprintf(key, sizeof(key), "%s_mapped_blocks", side);
	r = r ?: put(buf, size, pos, key, id->mapped_blocks);
	return r;
}

int dmrepl_lineage_format(const struct dmrepl_lineage_record *rec, char *buf,
			  size_t size)
{
	size_t pos = 0;
	int n, r = 0;

	n = snprintf(buf, size, "version=1\nsrc_pool=%s\n", rec->src_pool);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	pos = (size_t)n;
	if (rec->src_name[0]) {
		n = snprintf(buf + pos, size - pos, "src_name=%s\n", rec->src_name);
		if (n < 0 || (size_t)n >= size - pos)
			return -ENAMETOOLONG;
		pos += (size_t)n;
	}
	r = r ?: put_ident(buf, size, &pos, "src", &rec->src);
	r = r ?: put_ident(buf, size, &pos, "dst", &rec->dst);
	r = r ?: put(buf, size, &pos, "size_bytes", rec->size_bytes);
	r = r ?: put(buf, size, &pos, "base_dst_id", rec->base_dst_id);
	r = r ?: put(buf, size, &pos, "anchor_id", rec->anchor_id);
	r = r ?: put(buf, size, &pos, "time", (uint64_t)rec->time);
	r = r ?: put(buf, size, &pos, "pid", (uint64_t)rec->pid);
	if (rec->resumable) {
		r = r ?: put(buf, size, &pos, "stream", rec->stream_hash);
		r = r ?: put(buf, size, &pos, "checkpoint", rec->checkpoint);
	}
	return r < 0 ? r : (int)pos;
}

static int parse_u64(const char *s, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

struct field {
	const char *key;
	size_t offset;
	unsigned int bits;	/* 64 or 32 */
	uint64_t seen;		/* bit per field, for required ones */
};

#define F64(k, m) {k, offsetof(struct dmrepl_lineage_record, m), 64, 0}
#define F32(k, m) {k, offsetof(struct dmrepl_lineage_record, m), 32, 0}

static const struct field fields[] = {
    F64("src_id", src.thin_id),
    F32("src_creation_time", src.creation_time),
    F64("src_root", src.root),
    F64("src_mapped_blocks", src.mapped_blocks),
    F64("dst_id", dst.thin_id),
    F32("dst_creation_time", dst.creation_time),
    F64("dst_root", dst.root),
    F64("dst_mapped_blocks", dst.mapped_blocks),
    F64("size_bytes", size_bytes),
    F64("base_dst_id", base_dst_id),
    F64("anchor_id", anchor_id),
    F64("time", time),
};

static int set_field(struct dmrepl_lineage_record *rec, const char *key,
		     const char *value, uint64_t *seen)
{
	uint64_t v;
	size_t i;

	if (strcmp(key, "src_pool") == 0) {
		if (!*value || strlen(value) >= sizeof(rec->src_pool))
			return -EINVAL;
		strcpy(rec->src_pool, value);
		*seen |= 1ull << ARRAY_SIZE(fields);
		return 0;
	}
	if (strcmp(key, "src_name") == 0) {
		if (!*value || strlen(value) >= sizeof(rec->src_name))
			return -EINVAL;
		strcpy(rec->src_name, value);
		return 0;
	}
	if (strcmp(key, "pid") == 0)
		return parse_u64(value, &v) ?: (rec->pid = (pid_t)v, 0);
	/* Together, or neither: a resumable staging record. */
	if (strcmp(key, "stream") == 0)
		return parse_u64(value, &v) ?:
		       (rec->stream_hash = v, *seen |= 1ull << 62, 0);
	if (strcmp(key, "checkpoint") == 0)
		return parse_u64(value, &v) ?:
		       (rec->checkpoint = v, *seen |= 1ull << 63, 0);
	for (i = 0; i < ARRAY_SIZE(fields); i++) {
		if (strcmp(key, fields[i].key) != 0)
			continue;
		if (parse_u64(value, &v) < 0 ||
		    (fields[i].bits == 32 && v > UINT32_MAX))
			return -EINVAL;
		if (fields[i].bits == 32)
			*(uint32_t *)((char *)rec + fields[i].offset) = (uint32_t)v;
		else
			*(uint64_t *)((char *)rec + fields[i].offset) = v;
		*seen |= 1ull << i;
		return 0;
	}
	return 0; /* a key of a later version */
}

int dmrepl_lineage_parse(const char *text, size_t len,
			 struct dmrepl_lineage_record *ret)
{
	struct dmrepl_lineage_record rec = {0};
	const uint64_t all = (2ull << ARRAY_SIZE(fields)) - 1;
	char line[512];
	uint64_t seen = 0, version = 0;
	size_t pos = 0, n;
	char *eq;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);

		n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (n >= sizeof(line) || memchr(text + pos, '\0', n))
			return -EINVAL;
		memcpy(line, text + pos, n);
		line[n] = '\0';
		pos += n + 1;
		eq = strchr(line, '=');
		if (!eq)
			return -EINVAL;
		*eq = '\0';
		if (strcmp(line, "version") == 0) {
			if (parse_u64(eq + 1, &version) < 0)
				return -EINVAL;
			continue;
		}
		if (set_field(&rec, line, eq + 1, &seen) < 0)
			return -EINVAL;
	}
	if (version != 1 || (seen & all) != all)
		return -EINVAL;
	if ((seen >> 62) == 3)
		rec.resumable = true;
	else if (seen >> 62)
		return -EINVAL;
	*ret = rec;
	return 0;
}

/* ---- as an LVM tag ---- */

int dmrepl_lineage_tag_format(const char *prefix,
			      const struct dmrepl_lineage_record *rec,
			      char *buf, size_t size)
{
	char text[RECORD_MAX], value[RECORD_MAX];
	size_t pos;
	int n, r;

	n = dmrepl_lineage_format(rec, text, sizeof(text));
	if (n < 0)
		return n;
	r = snprintf(buf, size, "%s", prefix);
	if (r < 0 || (size_t)r >= size)
		return -ENAMETOOLONG;
	pos = (size_t)r;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char *eq = strchr(line, '=');

		*eq = '\0';
		r = dmrepl_lvm_tag_escape(eq + 1, value, sizeof(value));
		if (r < 0)
			return r;
		r = snprintf(buf + pos, size - pos, "%s%s=%s",
			     pos > strlen(prefix) ? "&" : "", line, value);
		if (r < 0 || (size_t)r >= size - pos)
			return -ENAMETOOLONG;
		pos += (size_t)r;
	}
	return (int)pos;
}

int dmrepl_lineage_tag_parse(const char *text, size_t len,
			     struct dmrepl_lineage_record *ret)
{
	char out[RECORD_MAX], value[RECORD_MAX];
	size_t pos = 0, i = 0;

	while (i < len) {
		const char *amp = memchr(text + i, '&', len - i), *eq;
		size_t n = amp ? (size_t)(amp - (text + i)) : len - i, klen, vlen;

		eq = memchr(text + i, '=', n);
		if (!eq || eq == text + i)
			return -EINVAL;
		if (dmrepl_lvm_tag_unescape(eq + 1, (size_t)(text + i + n - eq - 1),
					    value, sizeof(value)) < 0 ||
		    strchr(value, '\n'))
			return -EINVAL;
		klen = (size_t)(eq - (text + i));
		vlen = strlen(value);
		if (pos + klen + vlen + 2 > sizeof(out))
			return -EINVAL;
		memcpy(out + pos, text + i, klen + 1);	/* the key and '=' */
		pos += klen + 1;
		memcpy(out + pos, value, vlen);
		pos += vlen;
		out[pos++] = '\n';
		i += n + 1;
	}
	return dmrepl_lineage_parse(out, pos, ret);
}

/* ---- files ---- */

int dmrepl_lineage_dir(const char *state_dir, const char *dst_pool, char *buf,
		       size_t size)
{
	char key[300];
	size_t n;
	int r, len;

	r = dmrepl_lock_file_name(dst_pool, key, sizeof(key));
	if (r < 0)
		return r;
	n = strlen(key);
	if (n > 5 && strcmp(key + n - 5, ".lock") == 0)
		key[n - 5] = '\0';
	len = snprintf(buf, size, "%s/%s", state_dir, key);
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
}

static int mkdir_one(struct dmrepl_ctx *ctx, const char *dir)
{
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return 0;
	err(ctx, "cannot create the state directory %s: %s", dir,
	    strerror(errno));
	return -errno;
}

int dmrepl_lineage_dir_create(struct dmrepl_ctx *ctx, const char *state_dir,
			      const char *dir)
{
	return mkdir_one(ctx, state_dir) ?: mkdir_one(ctx, dir);
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int record_path(const char *dir, const char *kind, uint64_t dst_id,
		       char *buf, size_t size)
{
	int len = snprintf(buf, size, "%s/%s-%" PRIu64, dir, kind, dst_id);

	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int dmrepl_lineage_write(struct dmrepl_ctx *ctx, const char *dir,
			 const char *kind,
			 const struct dmrepl_lineage_record *rec)
{
	char text[RECORD_MAX], path[PATH_MAX], tmp[PATH_MAX + 8];
	int fd, len, r;

	len = dmrepl_lineage_format(rec, text, sizeof(text));
	if (len < 0)
		return len;
	r = record_path(dir, kind, rec->dst.thin_id, path, sizeof(path));
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto fail;
	}
	r = write_all(fd, text, (size_t)len);
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r == 0)
		r = fsync_dir(dir);
	if (r == 0)
		return 0;
	unlink(tmp);
fail:
	err(ctx, "cannot write the lineage record %s: %s", path, strerror(-r));
	return r;
}

int dmrepl_lineage_remove(struct dmrepl_ctx *ctx, const char *dir,
			  const char *kind, uint64_t dst_id)
{
	char path[PATH_MAX];
	int r;

	r = record_path(dir, kind, dst_id, path, sizeof(path));
	if (r < 0)
		return r;
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		err(ctx, "cannot remove %s: %s", path, strerror(-r));
		return r;
	}
	return fsync_dir(dir) == -ENOENT ? 0 : 0;
}

static int read_record(struct dmrepl_ctx *ctx, const char *path,
		       struct dmrepl_lineage_record *ret)
{
	char text[RECORD_MAX];
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, text, sizeof(text));
	r = n < 0 ? -errno : 0;
	close(fd);
	if (r == 0 && (size_t)n == sizeof(text))
		r = -EFBIG;
	if (r == 0)
		r = dmrepl_lineage_parse(text, (size_t)n, ret);
	if (r < 0)
		warn(ctx, "ignoring the lineage record %s: %s", path,
		     r == -EINVAL ? "malformed" : strerror(-r));
	return r;
}

/* "replica-12" -> kind "replica", id 12; temporary files are skipped. */
static int split_name(const char *name, const char *kind, uint64_t *ret_id)
{
	size_t n = strlen(kind);

	if (strncmp(name, kind, n) != 0 || name[n] != '-')
		return -EINVAL;
	return parse_u64(name + n + 1, ret_id);
}

int dmrepl_lineage_foreach(struct dmrepl_ctx *ctx, const char *dir,
			   const char *kind,
			   int (*fn)(const struct dmrepl_lineage_record *rec,
				     void *userdata),
			   void *userdata)
{
	struct dmrepl_lineage_record rec;
	char path[PATH_MAX];
	struct dirent *de;
	uint64_t id;
	DIR *d;
	int r = 0;

	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (r == 0 && (de = readdir(d))) {
		if (split_name(de->d_name, kind, &id) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (read_record(ctx, path, &rec) < 0)
			continue;
		if (rec.dst.thin_id != id) {
			warn(ctx, "ignoring %s: it names thin %" PRIu64, path,
			     rec.dst.thin_id);
			continue;
		}
		r = fn(&rec, userdata);
	}
	closedir(d);
	return r;
}

/* ---- the destination's lock ---- */

int dmrepl_lineage_lock(struct dmrepl_ctx *ctx, const char *dir, int *ret_fd)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		err(ctx, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		close(fd);
		if (e == EWOULDBLOCK) {
			err(ctx, "another dmrepl is replicating into this "
				 "destination pool (lock %s); wait for it",
			    path);
			return -EBUSY;
		}
		err(ctx, "cannot lock %s: %s", path, strerror(e));
		return -e;
	}
	*ret_fd = fd;
	return 0;
}
