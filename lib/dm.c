/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Device-mapper ioctls through libdevmapper.
 *
 * libdm returns 1 for success and 0 for failure and reports through a
 * process-wide log function; this file is the only one that sees either.
 * It returns 0 or -errno and logs through the dmrepl context.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libdevmapper.h>

#include "base.h"
#include "dm.h"

#define DM_CONTROL_PATH "/dev/mapper/control"

/*
 * libdm's log function is process-wide and takes no user data, so the
 * context of the dmrepl call in progress is kept per thread. Messages of
 * libdm calls that the application makes itself (no dmrepl call on the
 * thread) keep libdm's default behaviour: errors go to stderr.
 */
static _Thread_local struct dmrepl_ctx *dm_log_ctx;
static _Thread_local char dm_last_error[512];
static _Thread_local char dm_first_error[512];	/* the cause, usually */

__attribute__((format(printf, 5, 6))) static void
dm_log_forward(int level, const char *file, int line, int dm_errno_or_class,
	       const char *f, ...)
{
	struct dmrepl_ctx *ctx = dm_log_ctx;
	char text[512];
	va_list ap;
	int prio;

	/* libdm adds flags above its syslog-like level (stderr, once) */
	level &= 7;
	va_start(ap, f);
	vsnprintf(text, sizeof(text), f, ap);
	va_end(ap);

	if (!ctx) {
		if (level <= LOG_ERR)
			fprintf(stderr, "%s\n", text);
		return;
	}
	if (level <= LOG_WARNING) {
		snprintf(dm_last_error, sizeof(dm_last_error), "%s", text);
		if (!dm_first_error[0])
			snprintf(dm_first_error, sizeof(dm_first_error), "%s",
				 text);
	}
	/*
	 * Our own message says what failed and where; libdm's details are
	 * for whoever asks for more (DMREPL_LOG=info).
	 */
	prio = level < LOG_INFO ? LOG_INFO : level;
	if (dmrepl_get_log_priority(ctx) >= prio)
		dmrepl_log(ctx, prio, file, line, "libdevmapper", "%s", text);
}

static void dm_log_begin(struct dmrepl_ctx *ctx)
{
	static int installed;

	if (!__atomic_exchange_n(&installed, 1, __ATOMIC_ACQ_REL))
		dm_log_with_errno_init(dm_log_forward);
	dm_log_ctx = ctx;
	dm_last_error[0] = '\0';
	dm_first_error[0] = '\0';
}

static void dm_log_end(void)
{
	dm_log_ctx = NULL;
}

static const char *task_name(int type)
{
	switch (type) {
	case DM_DEVICE_TABLE:
		return "table";
	case DM_DEVICE_STATUS:
		return "status";
	case DM_DEVICE_TARGET_MSG:
		return "message";
	default:
		return "ioctl";
	}
}

/* The errno of a failed task: the ioctl's, else why the control device failed.
 */
static int task_errno(struct dm_task *dmt)
{
	int e = dm_task_get_errno(dmt);

	if (e > 0)
		return e;
	if (access(DM_CONTROL_PATH, R_OK | W_OK) < 0 &&
	    (errno == EACCES || errno == EPERM))
		return errno;
	return EIO;
}

/*
 * dm_task_create() failed: almost always because device-mapper cannot be
 * reached. Say why (libdevmapper's first complaint) and what to check.
 */
static int no_task(struct dmrepl_ctx *ctx, int type, const char *name)
{
	const char *hint = "";
	int e = ENOMEM, fd;

	fd = open(DM_CONTROL_PATH, O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
	} else {
		e = errno;
		if (e == EACCES || e == EPERM)
			hint = "; device-mapper needs root (or CAP_SYS_ADMIN)";
		else if (e == ENOENT || e == ENODEV || e == ENXIO)
			hint = "; is device-mapper in the kernel? (modprobe "
			       "dm_mod; in a container, pass /dev/mapper/"
			       "control through)";
	}
	err(ctx, "%s: cannot reach device-mapper for a %s task: %s%s", name,
	    task_name(type),
	    dm_first_error[0] ? dm_first_error : strerror(e), hint);
	return -e;
}

static int task_new(struct dmrepl_ctx *ctx, int type, const char *name,
		    struct dm_task **ret_dmt)
{
	struct dm_task *dmt = dm_task_create(type);

	if (!dmt)
		return no_task(ctx, type, name);
	if (!dm_task_set_name(dmt, name) || !dm_task_no_open_count(dmt)) {
		err(ctx, "%s: invalid device-mapper name", name);
		dm_task_destroy(dmt);
		return -EINVAL;
	}
	*ret_dmt = dmt;
	return 0;
}

/*
 * Run @dmt; returns 0 or -errno, with ENXIO turned into -ENODEV (logged
 * unless @quiet: a caller that only asks whether a device is there).
 */
static int task_run_quiet(struct dmrepl_ctx *ctx, struct dm_task *dmt,
			  int type, const char *name, bool quiet)
{
	struct dm_info info;
	int e;

	if (dm_task_run(dmt)) {
		if (!dm_task_get_info(dmt, &info) || !info.exists) {
			if (!quiet)
				err(ctx, "%s: no such device-mapper device",
				    name);
			return -ENODEV;
		}
		return 0;
	}

	e = task_errno(dmt);
	if (e == ENXIO || e == ENODEV) {
		if (!quiet)
			err(ctx, "%s: no such device-mapper device", name);
		return -ENODEV;
	}
	err(ctx, "%s: device-mapper %s ioctl failed: %s%s%s%s", name,
	    task_name(type), strerror(e), dm_last_error[0] ? " (" : "",
	    dm_last_error, dm_last_error[0] ? ")" : "");
	return -e;
}

static int task_run(struct dmrepl_ctx *ctx, struct dm_task *dmt, int type,
		    const char *name)
{
	return task_run_quiet(ctx, dmt, type, name, false);
}

static int copy_target(struct dmrepl_ctx *ctx, struct dm_task *dmt,
		       const char *name, struct dmrepl_dm_target *ret)
{
	struct dmrepl_dm_target t = {0};
	uint64_t start, length;
	char *type = NULL, *params = NULL;
	struct dm_info info;
	void *next = NULL;

	if (!dm_task_get_info(dmt, &info))
		return -EIO;
	t.major = info.major;
	t.minor = info.minor;
	do {
		next = dm_get_next_target(dmt, next, &start, &length, &type,
					  &params);
		if (type && t.nr_targets++ == 0) {
			t.type = strdup(type);
			t.params = strdup(params ? params : "");
			t.length_sectors = length;
		}
	} while (next);

	t.uuid = strdup(dm_task_get_uuid(dmt) ? dm_task_get_uuid(dmt) : "");
	if (!t.uuid || (t.nr_targets && (!t.type || !t.params))) {
		dmrepl_dm_target_clear(&t);
		return -ENOMEM;
	}
	dbg(ctx, "%s: %u target(s), first: %s %s", name, t.nr_targets,
	    t.type ? t.type : "-", t.params ? t.params : "");
	*ret = t;
	return 0;
}

static int get_target(struct dmrepl_ctx *ctx, int type, const char *name,
		      bool quiet, struct dmrepl_dm_target *ret)
{
	struct dm_task *dmt = NULL;
	int r;

	dm_log_begin(ctx);
	r = task_new(ctx, type, name, &dmt);
	if (r < 0)
		goto out;
	/*
	 * Without it a thin pool commits its metadata before reporting (a
	 * superblock write and two flushes), which a read does not need:
	 * the figures come from the kernel's in-core copy either way, and
	 * every message that changes the pool commits by itself.
	 */
	if (type == DM_DEVICE_STATUS && !dm_task_no_flush(dmt)) {
		r = -ENOMEM;
		goto out;
	}
	r = task_run_quiet(ctx, dmt, type, name, quiet);
	if (r < 0)
		goto out;
	r = copy_target(ctx, dmt, name, ret);
out:
	if (dmt)
		dm_task_destroy(dmt);
	dm_log_end();
	return r;
}

int dmrepl_dm_get_table(struct dmrepl_ctx *ctx, const char *name,
			struct dmrepl_dm_target *ret_target)
{
	return get_target(ctx, DM_DEVICE_TABLE, name, false, ret_target);
}

int dmrepl_dm_get_table_quiet(struct dmrepl_ctx *ctx, const char *name,
			      struct dmrepl_dm_target *ret_target)
{
	return get_target(ctx, DM_DEVICE_TABLE, name, true, ret_target);
}

int dmrepl_dm_get_status(struct dmrepl_ctx *ctx, const char *name,
			 struct dmrepl_dm_target *ret_target)
{
	return get_target(ctx, DM_DEVICE_STATUS, name, false, ret_target);
}

void dmrepl_dm_target_clear(struct dmrepl_dm_target *target)
{
	free(target->type);
	free(target->params);
	free(target->uuid);
	memset(target, 0, sizeof(*target));
}

int dmrepl_dm_message(struct dmrepl_ctx *ctx, const char *name,
		      const char *message)
{
	struct dm_task *dmt = NULL;
	int r;

	dm_log_begin(ctx);
	r = task_new(ctx, DM_DEVICE_TARGET_MSG, name, &dmt);
	if (r < 0)
		goto out;
	if (!dm_task_set_sector(dmt, 0) || !dm_task_set_message(dmt, message)) {
		err(ctx, "%s: cannot prepare message '%s'", name, message);
		r = -ENOMEM;
		goto out;
	}
	/* Callers explain a failure in their own words: keep it quiet here. */
	if (dm_task_run(dmt)) {
		dbg(ctx, "%s: sent message '%s'", name, message);
		r = 0;
		goto out;
	}
	r = -task_errno(dmt);
	if (r == -ENXIO)
		r = -ENODEV;
	dbg(ctx, "%s: message '%s' failed: %s%s%s%s", name, message,
	    strerror(-r), dm_last_error[0] ? " (" : "", dm_last_error,
	    dm_last_error[0] ? ")" : "");
out:
	if (dmt)
		dm_task_destroy(dmt);
	dm_log_end();
	return r;
}

int dmrepl_dm_get_open_count(struct dmrepl_ctx *ctx, const char *name,
			     int *ret_count)
{
	struct dm_task *dmt;
	struct dm_info info;
	int r;

	dm_log_begin(ctx);
	dmt = dm_task_create(DM_DEVICE_INFO);
	if (!dmt) {
		r = -ENOMEM;
		goto out;
	}
	if (!dm_task_set_name(dmt, name)) {
		r = -EINVAL;
		goto out;
	}
	r = task_run(ctx, dmt, DM_DEVICE_INFO, name);
	if (r == 0 && !dm_task_get_info(dmt, &info))
		r = -EIO;
	if (r == 0)
		*ret_count = info.open_count;
out:
	if (dmt)
		dm_task_destroy(dmt);
	dm_log_end();
	return r;
}

/* ---- creating, removing, suspending and listing devices ---- */

/*
 * With udev running, libdm hands node creation to udev and we wait for
 * it (a cookie); without it (the test VM, a rescue shell) nobody would
 * make /dev/mapper nodes, so libdm makes them itself.
 */
static int udev_prepare(struct dm_task *dmt, uint32_t *cookie)
{
	*cookie = 0;
	if (access("/run/udev/control", F_OK) == 0)
		return dm_task_set_cookie(dmt, cookie, 0) ? 0 : -ENOMEM;
	dm_udev_set_sync_support(0);
	return 0;
}

/* Without a cookie, libdm queues its node changes until asked. */
static void udev_wait(uint32_t cookie)
{
	if (cookie)
		dm_udev_wait(cookie);
	else
		dm_task_update_nodes();
}


static int simple_task(struct dmrepl_ctx *ctx, int type, const char *name,
		       const char *what)
{
	struct dm_task *dmt = NULL;
	uint32_t cookie = 0;
	int r, e, ok;

	dm_log_begin(ctx);
	r = task_new(ctx, type, name, &dmt);
	if (r < 0)
		goto out;
	if (type == DM_DEVICE_RESUME && udev_prepare(dmt, &cookie) < 0) {
		r = -ENOMEM;
		goto out;
	}
	ok = dm_task_run(dmt);
	udev_wait(cookie);
	if (ok) {
		dbg(ctx, "%s: %s", name, what);
		goto out;
	}
	e = task_errno(dmt);
	r = e == ENXIO ? -ENODEV : -e;
	err(ctx, "%s: cannot %s the device-mapper device: %s%s%s%s", name,
	    what, strerror(e), dm_last_error[0] ? " (" : "", dm_last_error,
	    dm_last_error[0] ? ")" : "");
out:
	if (dmt)
		dm_task_destroy(dmt);
	dm_log_end();
	return r;
}

int dmrepl_dm_suspend(struct dmrepl_ctx *ctx, const char *name)
{
	return simple_task(ctx, DM_DEVICE_SUSPEND, name, "suspend");
}

int dmrepl_dm_resume(struct dmrepl_ctx *ctx, const char *name)
{
	return simple_task(ctx, DM_DEVICE_RESUME, name, "resume");
}

/*
 * A device that was just closed may still be busy for a moment (a
 * udev rule, blkid); retry briefly before giving up.
 */
int dmrepl_dm_remove(struct dmrepl_ctx *ctx, const char *name)
{
	struct dm_task *dmt = NULL;
	int r = 0, e = 0, tries, ok;
	uint32_t cookie;

	dm_log_begin(ctx);
	for (tries = 0; tries < 50; tries++) {
		r = task_new(ctx, DM_DEVICE_REMOVE, name, &dmt);
		if (r < 0)
			goto out;
		if (udev_prepare(dmt, &cookie) < 0) {
			r = -ENOMEM;
			goto out;
		}
		ok = dm_task_run(dmt);
		udev_wait(cookie);
		if (ok) {
			dbg(ctx, "%s: removed", name);
			r = 0;
			goto out;
		}
		e = task_errno(dmt);
		dm_task_destroy(dmt);
		dmt = NULL;
		if (e != EBUSY)
			break;
		usleep(100 * 1000);
	}
	r = e == ENXIO ? -ENODEV : -e;
	if (r != -ENODEV)
		err(ctx, "%s: cannot remove the device-mapper device: %s", name,
		    strerror(e));
out:
	if (dmt)
		dm_task_destroy(dmt);
	dm_log_end();
	return r;
}

int dmrepl_dm_create(struct dmrepl_ctx *ctx, const char *name,
		     const char *type, const char *params,
		     uint64_t length_sectors, bool read_only,
		     uint32_t *ret_major, uint32_t *ret_minor)
{
	struct dm_task *dmt = NULL;
	struct dm_info info;
	uint32_t cookie;
	int r, e, ok;

	dm_log_begin(ctx);
	r = task_new(ctx, DM_DEVICE_CREATE, name, &dmt);
	if (r < 0)
		goto out;
	r = -ENOMEM;
	if (!dm_task_add_target(dmt, 0, length_sectors, type, params))
		goto out;
	if (read_only && !dm_task_set_ro(dmt))
		goto out;
	if (udev_prepare(dmt, &cookie) < 0)
		goto out;
	ok = dm_task_run(dmt);
	udev_wait(cookie);
	if (!ok) {
		e = task_errno(dmt);
		r = -e;
		err(ctx, "%s: cannot create the device-mapper device (%s %s): "
			 "%s%s%s%s",
		    name, type, params, strerror(e),
		    dm_last_error[0] ? " (" : "", dm_last_error,
		    dm_last_error[0] ? ")" : "");
		goto out;
	}
	r = -EIO;
	if (!dm_task_get_info(dmt, &info) || !info.exists)
		goto out;
	*ret_major = info.major;
	*ret_minor = info.minor;
	dbg(ctx, "%s: created %u:%u, %s %s", name, info.major, info.minor,
	    type, params);
	r = 0;
out:
	if (dmt)
		dm_task_destroy(dmt);
	dm_log_end();
	return r;
}

int dmrepl_dm_foreach(struct dmrepl_ctx *ctx,
		      int (*fn)(const char *name, void *userdata),
		      void *userdata)
{
	struct dm_task *dmt;
	struct dm_names *names;
	unsigned int next = 0;
	int r = 0;

	dm_log_begin(ctx);
	dmt = dm_task_create(DM_DEVICE_LIST);
	if (!dmt) {
		r = -ENOMEM;
		goto out;
	}
	if (!dm_task_run(dmt)) {
		r = -task_errno(dmt);
		err(ctx, "cannot list device-mapper devices: %s",
		    strerror(-r));
		goto out;
	}
	names = dm_task_get_names(dmt);
	if (!names || !names->dev)
		goto out;
	dm_log_end();
	do {
		names = (struct dm_names *)((char *)names + next);
		r = fn(names->name, userdata);
		next = names->next;
	} while (r == 0 && next);
	dm_log_begin(ctx);
out:
	if (dmt)
		dm_task_destroy(dmt);
	dm_log_end();
	return r;
}

/*
 * One part of an LVM dm name, up to the next single dash ("--" is a dash
 * of the name). Return: the rest after that dash, or NULL at the end;
 * *@ret_err set when the part does not fit.
 */
static const char *lvm_part(const char *p, char *buf, size_t size, int *ret_err)
{
	size_t n = 0;

	for (; *p; p++) {
		if (*p == '-' && p[1] == '-')
			p++;
		else if (*p == '-')
			break;
		if (n + 1 >= size) {
			*ret_err = -ENAMETOOLONG;
			return NULL;
		}
		buf[n++] = *p;
	}
	buf[n] = '\0';
	return *p ? p + 1 : NULL;
}

int dmrepl_dm_split_lvm_name(const char *dm_name, char *vg, size_t vg_size,
			     char *lv, size_t lv_size, char *layer,
			     size_t layer_size)
{
	const char *p = dm_name;
	int r = 0;

	if (!dm_name || !vg_size || !lv_size || !layer_size)
		return -EINVAL;
	vg[0] = lv[0] = layer[0] = '\0';
	p = lvm_part(p, vg, vg_size, &r);
	if (p)
		p = lvm_part(p, lv, lv_size, &r);
	if (p)
		p = lvm_part(p, layer, layer_size, &r);
	if (r < 0)
		return r;
	if (p || !*vg || !*lv)
		return -EINVAL; /* more parts, or not two */
	return 0;
}
