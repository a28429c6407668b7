/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who has a block device open: the processes with a descriptor on it
 * (from /proc/PID/fd, as fuser does), and, for a device-mapper device,
 * the kernel's open count less the devices stacked on it, which also
 * sees openers in other PID namespaces and in the kernel.
 *
 * lib/metasnap.c asks this of a pool's metadata device before it
 * releases a metadata snapshot that a killed dmrepl left: a tool that
 * reads a held root (thin_dump -m, thin_delta -m, thin_ls -m) keeps the
 * device open while it reads.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"

static const char *proc_root(void)
{
	const char *p = secure_getenv("DMREPL_PROC");

	return p && *p ? p : "/proc";
}

/* 1 when process directory @pid has a descriptor on block device @devt. */
static int has_open(int proc_fd, const char *pid, dev_t devt)
{
	char path[300];
	struct dirent *de;
	struct stat st;
	int fd, found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "%s/fd", pid);
	fd = openat(proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* gone, or a kernel thread */
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	while (!found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 &&
		    S_ISBLK(st.st_mode) && st.st_rdev == devt)
			found = 1;
	}
	closedir(d);
	return found;
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

int dmrepl_dev_openers(dev_t devt, pid_t *pids, size_t max, size_t *ret_n)
{
	const char *root = proc_root();
	struct dirent *de;
	size_t n = 0;
	pid_t self = getpid();
	int proc_fd;
	DIR *d;

	proc_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (proc_fd < 0)
		return -errno;
	d = fdopendir(proc_fd);
	if (!d) {
		int e = errno;

		close(proc_fd);
		return -e;
	}
	while ((de = readdir(d))) {
		pid_t pid;

		if (!all_digits(de->d_name))
			continue;
		pid = (pid_t)atoi(de->d_name);
		if (pid == self || !has_open(dirfd(d), de->d_name, devt))
			continue;
		if (n < max)
			pids[n] = pid;
		n++;
	}
	closedir(d);
	*ret_n = n;
	return 0;
}

void dmrepl_pid_comm(pid_t pid, char *buf, size_t size)
{
	char path[64];
	FILE *f;

	snprintf(buf, size, "?");
	snprintf(path, sizeof(path), "%s/%d/comm", proc_root(), (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(buf, (int)size, f))
		buf[strcspn(buf, "\n")] = '\0';
	fclose(f);
}

/* Entries of /sys/dev/block/MAJ:MIN/holders: the dm devices stacked on it. */
static int count_holders(dev_t devt)
{
	char path[96];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/holders",
		 major(devt), minor(devt));
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

int dmrepl_dev_unseen_openers(struct dmrepl_ctx *ctx, dev_t devt,
			      size_t seen, int *ret_n)
{
	char path[96], name[160];
	int count = 0, holders, r;
	FILE *f;

	*ret_n = 0;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/dm/name",
		 major(devt), minor(devt));
	f = fopen(path, "re");
	if (!f)
		return 0; /* not a dm device: no open count to read */
	if (!fgets(name, sizeof(name), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	name[strcspn(name, "\n")] = '\0';
	r = dmrepl_dm_get_open_count(ctx, name, &count);
	if (r < 0)
		return r;
	holders = count_holders(devt);
	if (holders < 0)
		return holders;
	/* each process seen opened it at least once */
	count -= holders + (int)seen;
	*ret_n = count > 0 ? count : 0;
	return 0;
}
