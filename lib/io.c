/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Choosing an I/O engine at run time: io_uring, else libaio, else
 * pread/pwrite. io_uring may be missing from the kernel, disabled by
 * the administrator, or refused by a seccomp filter or a container
 * runtime; each of those falls back with the reason logged.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base.h"
#include "io.h"

#define IOPRIO_WHO_PROCESS 1

static const char *const engine_names[] = {
	[DMREPL_ENGINE_AUTO] = "auto",
	[DMREPL_ENGINE_URING] = "uring",
	[DMREPL_ENGINE_AIO] = "aio",
	[DMREPL_ENGINE_SYNC] = "sync",
};

DMREPL_EXPORT const char *dmrepl_engine_name(enum dmrepl_engine engine)
{
	if ((unsigned int)engine >= ARRAY_SIZE(engine_names))
		return NULL;
	return engine_names[engine];
}

DMREPL_EXPORT int dmrepl_engine_from_name(const char *name,
					  enum dmrepl_engine *ret_engine)
{
	if (!name || !ret_engine)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(engine_names); i++) {
		if (strcmp(name, engine_names[i]) == 0) {
			*ret_engine = (enum dmrepl_engine)i;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Why io_uring must not be tried, or NULL. The sysctl is 0 (enabled),
 * 1 (only for members of kernel.io_uring_group: let the kernel decide,
 * it answers -EPERM) or 2 (disabled for everyone).
 */
static const char *uring_disabled_reason(void)
{
	const char *env = getenv("DMREPL_IO_URING_DISABLE");
	FILE *f;
	int v = 0;

	if (env && strcmp(env, "1") == 0)
		return "disabled by DMREPL_IO_URING_DISABLE=1";
	f = fopen("/proc/sys/kernel/io_uring_disabled", "re");
	if (!f)
		return NULL;
	if (fscanf(f, "%d", &v) != 1)
		v = 0;
	fclose(f);
	return v == 2 ? "disabled by /proc/sys/kernel/io_uring_disabled" : NULL;
}

static int try_engine(struct dmrepl_io *io, const struct dmrepl_io_ops *ops)
{
	int r;

	io->ops = ops;
	io->priv = NULL;
	io->inflight = 0;
	r = ops->setup(io);
	if (r < 0)
		io->ops = NULL;
	return r;
}

static int open_auto(struct dmrepl_io *io)
{
	const char *why = uring_disabled_reason();
	int r;

	if (!why) {
		r = try_engine(io, &dmrepl_io_uring_ops);
		if (r == 0)
			return 0;
		if (r == -ENOMEM)
			return r;
		info(io->ctx, "io_uring refused by the kernel (%s); trying libaio",
		     strerror(-r));
	} else {
		info(io->ctx, "io_uring %s; trying libaio", why);
	}
	r = try_engine(io, &dmrepl_io_aio_ops);
	if (r == 0 || r == -ENOMEM)
		return r;
	info(io->ctx, "libaio refused by the kernel (%s); using pread/pwrite",
	     strerror(-r));
	return try_engine(io, &dmrepl_io_sync_ops);
}

static int open_forced(struct dmrepl_io *io, enum dmrepl_engine engine)
{
	static const struct dmrepl_io_ops *const ops[] = {
		[DMREPL_ENGINE_URING] = &dmrepl_io_uring_ops,
		[DMREPL_ENGINE_AIO] = &dmrepl_io_aio_ops,
		[DMREPL_ENGINE_SYNC] = &dmrepl_io_sync_ops,
	};
	const char *why = NULL;
	int r;

	if (engine == DMREPL_ENGINE_URING)
		why = uring_disabled_reason();
	if (why) {
		err(io->ctx, "engine uring is not available: io_uring %s", why);
		return -ENOTSUP;
	}
	r = try_engine(io, ops[engine]);
	if (r < 0 && r != -ENOMEM) {
		err(io->ctx, "engine %s is not available: %s",
		    dmrepl_engine_name(engine), strerror(-r));
		return -ENOTSUP;
	}
	return r;
}

/* Sync and libaio submit from this thread: its I/O priority applies. */
static int apply_thread_ioprio(struct dmrepl_io *io)
{
	long old;

	if (!io->ioprio || io->ops == &dmrepl_io_uring_ops)
		return 0;
	old = syscall(SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0);
	if (syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, io->ioprio) < 0) {
		int r = -errno;

		err(io->ctx, "cannot set the I/O priority: %s", strerror(-r));
		return r;
	}
	io->saved_ioprio = old < 0 ? -1 : (int)old;
	return 0;
}

int dmrepl_io_open(struct dmrepl_io *io, enum dmrepl_engine engine)
{
	int r;

	io->saved_ioprio = -1;
	if ((unsigned int)engine >= ARRAY_SIZE(engine_names))
		return -EINVAL;
	r = engine == DMREPL_ENGINE_AUTO ? open_auto(io) : open_forced(io, engine);
	if (r < 0)
		return r;
	r = apply_thread_ioprio(io);
	if (r < 0)
		dmrepl_io_close(io);
	return r;
}

void dmrepl_io_close(struct dmrepl_io *io)
{
	if (io->ops)
		io->ops->teardown(io);
	io->ops = NULL;
	if (io->saved_ioprio >= 0)
		syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, io->saved_ioprio);
	io->saved_ioprio = -1;
}
