/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live migration's final round into a thin pool on another host
 * (migrate.h). Both sides are here. One connection through the
 * transport to `dmrepl receive --pool VG/POOL --migrate HOST:VG/LV
 * --from-lv REPLICA` there (the protocol: doc/stream-format.md,
 * "Migration"):
 *
 *   far   makes the volume-to-be (an LVM snapshot of the last round's
 *         replica, tagged dmrepl.migrating), maps it: "migrate-ready"
 *   near  suspends the volume, sends the last delta as one stream, read
 *         through a device of its own of the volume's thin
 *   far   writes it, flushes, unmaps: "migrate-received"
 *   near  "commit"
 *   far   one lvchange: dmrepl.migrated:HOST:VG/LV; "migrate-committed"
 *   near  runs the switch: "switched", or "abort"; resumes the volume
 *   far   on "abort", or the connection's end without a word, undoes
 *         (uncommitted: lvremove; committed: tag
 *         dmrepl.migrate-not-switched), then its "result" line
 *
 * So a near side killed anywhere leaves the far side to undo itself,
 * and the near side's record resumes the volume (migrate.c).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "dm.h"
#include "lvm.h"
#include "migrate.h"
#include "replication.h"
#include "transfer.h"

/* ---- the near side: a target of migrate.c ---- */

struct remote {
	struct dmrepl_peer peer;
	char transport[1024];
};

static int far_command(struct migrate_run *r, const char *from_lv, char *buf, size_t size)
{
	const char *cmd = dmrepl_migrate_get_remote_cmd(r->m);
	const char *state_dir = dmrepl_migrate_get_remote_state_dir(r->m);
	char pool[300], source[400], host[256] = "";
	int e;

	/* in an LVM tag: what it does not take becomes '_' ("(none)" too) */
	gethostname(host, sizeof(host) - 1);
	for (char *c = host; *c; c++)
		if (!strchr(DMREPL_LVM_TAG_CHARS, *c) || *c == '/')
			*c = '_';
	snprintf(pool, sizeof(pool), "%s/%s", r->dst_vg, r->dst_pool);
	snprintf(source, sizeof(source), "%s:%s", host[0] ? host : "localhost", r->src);
	buf[0] = '\0';
	e = dmrepl_remote_quote(buf, size, cmd ? cmd : "dmrepl");
	e = e ?: dmrepl_remote_quote(buf, size, "receive");
	e = e ?: dmrepl_remote_quote(buf, size, "--pool");
	e = e ?: dmrepl_remote_quote(buf, size, pool);
	e = e ?: dmrepl_remote_quote(buf, size, "--migrate");
	e = e ?: dmrepl_remote_quote(buf, size, source);
	e = e ?: dmrepl_remote_quote(buf, size, from_lv ? "--from-lv" : "--check");
	if (from_lv)
		e = e ?: dmrepl_remote_quote(buf, size, from_lv);
	if (state_dir) {
		e = e ?: dmrepl_remote_quote(buf, size, "--state-dir");
		e = e ?: dmrepl_remote_quote(buf, size, state_dir);
	}
	return e;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

/* The far side's next line: @type with "ok": true, or -EPROTO (logged). */
static int expect(struct migrate_run *r, struct remote *rm, const char *type)
{
	json_object *o = dmrepl_peer_read(&rm->peer, NULL), *ok;
	int e = 0;

	if (!o) {
		err(r->ctx, "migrate %s: %s: the far side ended before '%s'", r->src,
		    dmrepl_migrate_get_dst(r->m), type);
		return -EPROTO;
	}
	if (strcmp(get_str(o, "type"), type) != 0 ||
	    !json_object_object_get_ex(o, "ok", &ok) || !json_object_get_boolean(ok)) {
		err(r->ctx, "migrate %s: %s: %s", r->src, dmrepl_migrate_get_dst(r->m),
		    *get_str(o, "error") ? get_str(o, "error") : "an unexpected answer");
		e = -EPROTO;
	}
	json_object_put(o);
	return e;
}

static int say(struct remote *rm, const char *word)
{
	size_t n = strlen(word);

	if (rm->peer.to_fd < 0 || write(rm->peer.to_fd, word, n) != (ssize_t)n)
		return -EPIPE;
	return 0;
}

static int start(struct migrate_run *r, struct remote *rm, const char *from_lv)
{
	char cmdline[2048];

	rm->peer.to_fd = -1;
	dmrepl_remote_transport(dmrepl_migrate_get_transport(r->m), r->host, rm->transport,
				sizeof(rm->transport));
	if (far_command(r, from_lv, cmdline, sizeof(cmdline)) < 0)
		return -ENAMETOOLONG;
	return dmrepl_peer_start(r->ctx, rm->transport, cmdline, &rm->peer);
}

static int check(struct migrate_run *r)
{
	struct remote rm = {0};
	int e, status;

	e = start(r, &rm, NULL);
	if (e == 0)
		e = expect(r, &rm, "migrate-check");
	status = dmrepl_peer_stop(&rm.peer);
	return e ?: (status ? -EPROTO : 0);
}

static int prepare(struct migrate_run *r)
{
	struct remote *rm = calloc(1, sizeof(*rm));
	const char *lv = strchr(r->replicas[r->nr - 1], '/');
	int e;

	if (!rm)
		return -ENOMEM;
	r->tdata = rm;
	if (!lv)
		return -EINVAL;
	e = start(r, rm, lv + 1);
	return e ?: expect(r, rm, "migrate-ready");
}

static int ship(struct migrate_run *r, uint64_t *ret_bytes)
{
	struct remote *rm = r->tdata;
	struct dmrepl_send_result res = {0};
	struct dmrepl_send_opts so = {
		.pool = r->src_pool_dm,
		.snap_id = r->origin.thin_id,
		.snap_name = r->src,
		.base_id = r->snap_ids[r->nr - 1],
		.size_bytes = r->origin.size_bytes,
		.detect_zeroes = true,
		/* the volume's own device is suspended */
		.own_device = true,
	};
	int e;

	e = dmrepl_send(r->ctx, &so, rm->peer.to_fd, &res);
	if (e == 0)
		e = expect(r, rm, "migrate-received");
	if (e == 0)
		*ret_bytes = res.stats.data_bytes;
	return e;
}

static int commit(struct migrate_run *r)
{
	struct remote *rm = r->tdata;
	int e = say(rm, "commit\n");

	return e ?: expect(r, rm, "migrate-committed");
}

static int finish(struct migrate_run *r, bool committed, bool switched)
{
	struct remote *rm = r->tdata;
	int e = 0;

	(void)committed;
	if (!rm)
		return 0;
	if (rm->peer.pid > 0) {
		/* not a word, or the connection's end: the far side undoes */
		say(rm, switched ? "switched\n" : "abort\n");
		close(rm->peer.to_fd);
		rm->peer.to_fd = -1;
		if (switched) {
			e = expect(r, rm, "result");
		} else {
			/* the far side undoes; its result says how, not why */
			json_object_put(dmrepl_peer_read(&rm->peer, "result"));
		}
		if (e < 0 && switched)
			err(r->ctx, "migrate %s: the switch ran, but %s did not confirm it: see "
				    "that its tags say dmrepl.migrated, not "
				    "dmrepl.migrate-not-switched", r->src,
			    dmrepl_migrate_get_dst(r->m));
		if (dmrepl_peer_stop(&rm->peer) != 0 && e == 0 && switched)
			e = -EPROTO;	/* it said so, then failed */
	}
	free(rm);
	r->tdata = NULL;
	return e;
}

const struct migrate_target dmrepl_migrate_remote = {
	.name = "remote",
	.check = check,
	.prepare = prepare,
	.ship = ship,
	.commit = commit,
	.finish = finish,
};

/* ---- the far side: dmrepl receive --migrate ---- */

struct far {
	struct dmrepl_ctx *ctx;
	const struct dmrepl_migrate_receive_opts *o;
	FILE *out;
	char vg[128], pool_lv[128], lv[128], vg_lv[300], tag[300];
	char why[512];
	bool made, committed, switched;
};

static void line(struct far *f, const char *type, bool ok, const char *extra)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "type", json_object_new_string(type));
	json_object_object_add(o, "ok", json_object_new_boolean(ok));
	if (!ok)
		json_object_object_add(o, "error", json_object_new_string(f->why));
	if (extra)
		json_object_object_add(o, "lv", json_object_new_string(extra));
	fprintf(f->out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							  JSON_C_TO_STRING_NOSLASHESCAPE));
	fflush(f->out);
	json_object_put(o);
}

/* @fmt's message (and ": " @e's), into the last line and the log. */
__attribute__((format(printf, 3, 4)))
static int fail(struct far *f, int e, const char *fmt, ...)
{
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(f->why, sizeof(f->why), fmt, ap);
	va_end(ap);
	n = strlen(f->why);
	if (e != -EINVAL && e != -EEXIST)	/* those say it all */
		snprintf(f->why + n, sizeof(f->why) - n, ": %s", strerror(-e));
	err(f->ctx, "%s", f->why);
	return e;
}

/* The near side said no (or nothing): not an error of this side's. */
static int aborted(struct far *f, const char *what)
{
	snprintf(f->why, sizeof(f->why), "%s: the near side %s", f->vg_lv, what);
	notice(f->ctx, "%s", f->why);
	return -ECANCELED;
}

/* The near side's next word ("commit", "switched", "abort"), or "" at its end. */
static void hear(int fd, char *buf, size_t size)
{
	size_t n = 0;
	char c;

	while (n + 1 < size && read(fd, &c, 1) == 1 && c != '\n')
		buf[n++] = c;
	buf[n] = '\0';
}

static int lvm(struct far *f, const char *what, const char *const *args)
{
	char why[400] = "";
	int e = dmrepl_lvm_run(f->ctx, args, NULL, why, sizeof(why));

	if (e < 0) {
		snprintf(f->why, sizeof(f->why), "%s: %s failed: %s", f->vg_lv, what,
			 why[0] ? why : strerror(-e));
		err(f->ctx, "%s", f->why);
	}
	return e;
}

/* Lock the name; a volume-to-be that a killed run left (never committed) goes. */
static int claim(struct far *f, int *ret_fd)
{
	char dir[4000], path[4400], dm[300];
	struct dmrepl_lvm_lv lv, *lvs = NULL;
	size_t n = 0;
	bool found = false;
	int fd, e;

	e = dmrepl_migrate_state_dir(f->ctx, f->o->state_dir, dir, sizeof(dir));
	if (e < 0)
		return fail(f, e, "%s", dir);
	snprintf(dm, sizeof(dm), "%s-%s", f->vg, f->lv);
	snprintf(path, sizeof(path), "%s/in-%s.lock", dir, dm);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(f, -errno, "%s", path);
	*ret_fd = fd;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return fail(f, -EBUSY, "another migration into %s is under way", f->vg_lv);
	e = dmrepl_lvm_list(f->ctx, f->vg, &lvs, &n);
	if (e < 0)
		return fail(f, e, "%s: cannot list it", f->vg);
	for (size_t i = 0; i < n && !found; i++)
		if (!strcmp(lvs[i].lv, f->lv)) {
			lv = lvs[i];
			found = true;
		}
	free(lvs);
	if (!found)
		return 0;
	if (dmrepl_lvm_has_tag(&lv, TAG_MIGRATING)) {
		notice(f->ctx, "%s: a migration that was killed left it uncommitted: "
			       "removing it", f->vg_lv);
		e = dmrepl_lvm_thin_removable(f->ctx, &lv);
		if (e < 0)
			return fail(f, e, "%s: left by a killed migration, and still mapped",
				    f->vg_lv);
		return lvm(f, "lvremove of a killed migration's volume-to-be",
			   (const char *const[]){"lvremove", "-qq", "-y", "--", f->vg_lv, NULL});
	}
	return fail(f, -EEXIST, "%s exists already", f->vg_lv);
}

static int undo(struct far *f)
{
	if (f->switched)
		return 0;
	if (f->committed)
		return lvm(f, "lvchange of the copy's tag",
			   (const char *const[]){"lvchange", "-qq", "--deltag", f->tag, "--addtag",
						 TAG_NOT_SWITCHED, "--", f->vg_lv, NULL});
	if (f->made)
		return lvm(f, "lvremove of the volume-to-be",
			   (const char *const[]){"lvremove", "-qq", "-y", "--", f->vg_lv, NULL});
	return 0;
}

static int far_final(struct far *f, int in_fd)
{
	struct dmrepl_lvm_lv lv;
	struct dmrepl_pool *pool = NULL;
	struct dmrepl_thin_dev *dev = NULL;
	struct dmrepl_receive_opts ro = {0};
	struct dmrepl_receive_result rres = {0};
	char pool_dm[128], name[128], from[300], word[32];
	int e, e2;

	snprintf(from, sizeof(from), "%s/%s", f->vg, f->o->from_lv);
	e = lvm(f, "lvcreate -s of the volume-to-be",
		(const char *const[]){"lvcreate", "-qq", "-y", "-s", "-an", "-kn", "-n", f->lv,
				      "--addtag", TAG_MIGRATING, "--", from, NULL});
	if (e < 0)
		return e;
	f->made = true;
	e = dmrepl_lvm_lookup(f->ctx, f->vg_lv, &lv);
	if (e == 0)
		e = dmrepl_lvm_active_pool(f->ctx, f->o->pool, pool_dm, sizeof(pool_dm));
	if (e == 0)
		e = dmrepl_pool_open(f->ctx, pool_dm, &pool);
	snprintf(name, sizeof(name), "dmrepl-%d-dst-%" PRIu64, (int)getpid(), lv.thin_id);
	if (e == 0)
		e = dmrepl_thin_activate(pool, lv.thin_id, lv.size_bytes, false, name, &dev);
	if (e < 0) {
		dmrepl_pool_unref(pool);
		return fail(f, e, "%s: cannot map the volume-to-be", f->vg_lv);
	}
	line(f, "migrate-ready", true, f->vg_lv);

	/* the near side's volume is suspended now: the last delta */
	ro.device = dmrepl_thin_dev_get_path(dev);
	e = dmrepl_receive(f->ctx, &ro, in_fd, &rres);
	e2 = dmrepl_thin_deactivate(dev);	/* flushed */
	dmrepl_pool_unref(pool);
	if (e < 0 || e2 < 0)
		return fail(f, e ?: e2, "%s: the last delta", f->vg_lv);
	line(f, "migrate-received", true, NULL);

	hear(in_fd, word, sizeof(word));
	if (strcmp(word, "commit") != 0)
		return aborted(f, "did not commit it");
	e = lvm(f, "lvchange of the volume's tag",
		(const char *const[]){"lvchange", "-qq", "--deltag", TAG_MIGRATING, "--addtag",
				      f->tag, "--", f->vg_lv, NULL});
	if (e < 0)
		return e;
	f->committed = true;
	line(f, "migrate-committed", true, f->vg_lv);

	hear(in_fd, word, sizeof(word));
	if (strcmp(word, "switched") != 0)
		return aborted(f, "did not switch to it");
	f->switched = true;
	return 0;
}

int dmrepl_migrate_receive(struct dmrepl_ctx *ctx,
			   const struct dmrepl_migrate_receive_opts *o, int in_fd, FILE *out)
{
	struct far f = {.ctx = ctx, .o = o, .out = out};
	const char *slash = o && o->source ? strrchr(o->source, '/') : NULL;
	int lock_fd = -1, e;

	if (!ctx || !o || !o->pool || !out)
		return -EINVAL;
	if (!slash || !dmrepl_lvm_name_valid(slash + 1) ||
	    strlen(o->source) > 110 || !dmrepl_lvm_tag_valid(o->source)) {
		e = fail(&f, -EINVAL, "--migrate '%s': give HOST:VG/LV",
			 o->source ? o->source : "");
		goto out;
	}
	if (dmrepl_migrate_split(o->pool, f.vg, sizeof(f.vg), f.pool_lv, sizeof(f.pool_lv)) < 0) {
		e = fail(&f, -EINVAL, "--pool '%s': give VG/POOL", o->pool);
		goto out;
	}
	if (o->from_lv && !dmrepl_lvm_name_valid(o->from_lv)) {
		e = fail(&f, -EINVAL, "--from-lv '%s': not an LV name", o->from_lv);
		goto out;
	}
	snprintf(f.lv, sizeof(f.lv), "%s", slash + 1);
	snprintf(f.vg_lv, sizeof(f.vg_lv), "%s/%s", f.vg, f.lv);
	snprintf(f.tag, sizeof(f.tag), TAG_MIGRATED "%s", o->source);
	e = claim(&f, &lock_fd);
	if (e == 0) {
		char pool_dm[128];

		e = dmrepl_lvm_active_pool(ctx, o->pool, pool_dm, sizeof(pool_dm));
		if (e < 0)
			e = fail(&f, e, "%s is not an active LVM thin pool", o->pool);
	}
	if (e == 0 && !o->from_lv) {
		line(&f, "migrate-check", true, f.vg_lv);
		goto out;
	}
	if (e == 0)
		e = far_final(&f, in_fd);
	if (e < 0 && undo(&f) == 0 && f.made)
		notice(ctx, "%s: %s", f.vg_lv, f.committed ? "left as a copy, tagged "
			    TAG_NOT_SWITCHED : "removed: the migration did not finish");
out:
	if (o->from_lv || e < 0) {
		if (e < 0)
			line(&f, "result", false, NULL);
		else
			line(&f, "result", true, f.vg_lv);
	}
	if (lock_fd >= 0)
		close(lock_fd);
	return e;
}
