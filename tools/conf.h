/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sync jobs' configuration (dmrepl.conf(5)): /etc/dmrepl/dmrepl.conf
 * for the defaults, /etc/dmrepl/jobs.d/NAME.conf for job NAME. INI files,
 * read with libinih; every error names the file, the line and the key.
 */
#ifndef DMREPL_TOOL_CONF_H
#define DMREPL_TOOL_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DIR_DEFAULT "/etc/dmrepl"
#define CONFIG_KEEP_MAX 1000

enum config_trigger {
	TRIGGER_NONE,		/* by hand or by the timer only */
	TRIGGER_SNAPSHOT,	/* a new LVM thin snapshot of the origin */
	TRIGGER_DEVICE,		/* a device (dm name) appears */
};

/* What a job and the defaults can say; unset fields take the defaults'. */
struct config_settings {
	unsigned int keep;		/* snapshots kept at the source; 0: unset */
	unsigned int keep_destination;	/* replicas kept there; 0: as keep */
	uint64_t bwlimit;		/* bytes per second; 0: unset/none */
	int compress;			/* -1 unset, 0 no, 1 yes */
	char *ionice;			/* CLASS[:LEVEL] */
	char *schedule;			/* a systemd OnCalendar= expression */
	char *state_dir;
	char *transport;		/* the command that reaches the host */
	char *remote_dmrepl;		/* dmrepl's path there */
};

struct config_job {
	char *name;			/* jobs.d/NAME.conf */
	char *file;
	char *origin;			/* VG/LV */
	char *to_pool;			/* VG/POOL on this host, or */
	char *to;			/* ssh://[USER@]HOST/VG/POOL */
	enum config_trigger trigger;
	char *trigger_device;		/* TRIGGER_DEVICE's dm name */
	struct config_settings s;	/* merged with the defaults */
};

/*
 * A key that may send to this host (serve.d/NAME.conf, used by dmrepl
 * serve as an ssh forced command): into which pools, from which sources.
 */
struct config_serve {
	char *name;
	char *file;
	char **pools;			/* VG/POOL, or a dm name */
	size_t nr_pools;
	char **sources;			/* fnmatch(3) patterns of HOST:POOL */
	size_t nr_sources;
	char *state_dir;
};

struct config {
	char *dir;
	struct config_settings defaults;
	struct config_job *jobs;
	size_t nr_jobs;
	struct config_serve *serves;
	size_t nr_serves;
	char error[1024];		/* the first error: FILE:LINE: ... */
	unsigned int nr_errors;
};

/*
 * Read @dir's dmrepl.conf (optional), jobs.d/ *.conf and serve.d/ *.conf
 * into @cfg: 0, or
 * -EINVAL with every error reported through @report (may be NULL) and the
 * first in @cfg->error. A job's unset settings are the defaults'.
 */
int config_load(struct config *cfg, const char *dir,
		void (*report)(const char *msg, void *data), void *data);

/*
 * Parse one file's text: the defaults (@job_name NULL) or job @job_name.
 * For config_load() and the fuzz target. 0 or -EINVAL (see cfg->error).
 */
int config_parse_text(struct config *cfg, const char *file, const char *text,
		      const char *job_name,
		      void (*report)(const char *msg, void *data), void *data);

/* Apply the defaults to every job, and check each is complete. */
int config_finish(struct config *cfg,
		  void (*report)(const char *msg, void *data), void *data);

/* Parse serve.d/@name.conf's text (for config_load() and the fuzz target). */
int config_parse_serve_text(struct config *cfg, const char *file, const char *text,
			    const char *name,
			    void (*report)(const char *msg, void *data), void *data);

const struct config_job *config_find_job(const struct config *cfg,
					 const char *name);
const struct config_serve *config_find_serve(const struct config *cfg,
					     const char *name);
/* A job name: letters, digits, '_', '-', '.'; not starting with '.'. */
bool config_job_name_valid(const char *name);
void config_free(struct config *cfg);

#endif
