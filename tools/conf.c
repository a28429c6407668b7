// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The sync jobs' configuration; see conf.h and dmrepl.conf(5).
 *
 * libinih reads the INI syntax; this file says what the sections and keys
 * mean. libinih's handler is not told the line (Debian builds it without
 * INI_HANDLER_LINENO), so the text is fed through a reader that counts
 * lines: the handler runs right after the reader returned its line.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf.h"
#include "dmrepl.h"
#include "lvm.h"

/* libinih's line buffer (INI_MAX_LINE in ini.h, as Debian builds it). */
#define LINE_MAX_INI 200
/* A configuration file is small; a larger one is a mistake. */
#define FILE_MAX (1 << 20)

struct parser {
	struct config *cfg;
	const char *file;
	const char *job_name;		/* NULL: dmrepl.conf */
	struct config_job *job;
	struct config_serve *serve;	/* serve.d/NAME.conf */
	const char *pos;		/* the reader's place in the text */
	unsigned int line;
	bool line_too_long;
	void (*report)(const char *msg, void *data);
	void *data;
};

static void error_at(struct parser *p, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(struct config *cfg, const char *msg,
		      void (*report)(const char *msg, void *data), void *data)
{
	if (!cfg->nr_errors++)
		snprintf(cfg->error, sizeof(cfg->error), "%s", msg);
	if (report)
		report(msg, data);
}

/* An error not at a line: the file (or job) and what is wrong. */
static void __attribute__((format(printf, 4, 5)))
add_errorf(struct config *cfg, void (*report)(const char *msg, void *data),
	   void *data, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	add_error(cfg, msg, report, data);
}

static void error_at(struct parser *p, const char *key, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (key)
		add_errorf(p->cfg, p->report, p->data, "%s:%u: %s: %s", p->file,
			   p->line, key, what);
	else
		add_errorf(p->cfg, p->report, p->data, "%s:%u: %s", p->file, p->line,
			   what);
}

/* libinih's reader: one line of the text, counted. */
static char *read_line(char *buf, int size, void *stream)
{
	struct parser *p = stream;
	size_t len;

	if (!*p->pos)
		return NULL;
	len = strcspn(p->pos, "\n");
	p->line++;
	if (len >= (size_t)size - 1) {
		/* libinih would read the rest as a line of its own */
		p->line_too_long = true;
		error_at(p, NULL, "line longer than %d characters", size - 2);
		len = 0;
	}
	memcpy(buf, p->pos, len);
	buf[len] = '\0';
	p->pos += len;
	if (len == 0 && *p->pos && *p->pos != '\n')
		p->pos += strcspn(p->pos, "\n");	/* skip the long line */
	if (*p->pos == '\n')
		p->pos++;
	return buf;
}

static bool set_str(char **field, const char *value)
{
	char *copy = strdup(value);

	if (!copy)
		return false;
	free(*field);
	*field = copy;
	return true;
}

static bool is_yes(const char *v)
{
	return !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") ||
	       !strcmp(v, "1");
}

static bool is_no(const char *v)
{
	return !strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") ||
	       !strcmp(v, "0");
}

/* "VG/LV" with two valid LVM names. */
static bool vg_lv_valid(const char *s)
{
	const char *slash = strchr(s, '/');
	char vg[128];

	if (!slash || slash == s || (size_t)(slash - s) >= sizeof(vg) || strchr(slash + 1, '/'))
		return false;
	memcpy(vg, s, (size_t)(slash - s));
	vg[slash - s] = '\0';
	return dmrepl_lvm_name_valid(vg) && dmrepl_lvm_name_valid(slash + 1);
}

/* The settings both [defaults] and [job] take; 1 handled, 0 not mine. */
static int setting(struct parser *p, struct config_settings *s, const char *key,
		   const char *value)
{
	char **field;
	uint64_t v;
	int cls, lvl;

	if (!strcmp(key, "keep") || !strcmp(key, "keep_destination")) {
		if (tool_parse_u64(value, CONFIG_KEEP_MAX, &v) < 0 || v == 0) {
			error_at(p, key, "'%s' is not a number from 1 to %d", value,
				 CONFIG_KEEP_MAX);
			return 1;
		}
		*(key[4] ? &s->keep_destination : &s->keep) = (unsigned int)v;
		return 1;
	}
	if (!strcmp(key, "bwlimit")) {
		if (tool_parse_size(value, &v) < 0 || v == 0)
			error_at(p, key, "'%s' is not a rate: give bytes per second, "
				 "with K, M, G or T (powers of 1024)", value);
		else
			s->bwlimit = v;
		return 1;
	}
	if (!strcmp(key, "compress")) {
		if (is_yes(value))
			s->compress = 1;
		else if (is_no(value))
			s->compress = 0;
		else
			error_at(p, key, "'%s' is not yes or no", value);
		return 1;
	}
	if (!strcmp(key, "ionice")) {
		if (tool_parse_ionice(value, &cls, &lvl) < 0)
			error_at(p, key, "'%s' is not CLASS[:LEVEL] (realtime, "
				 "best-effort, idle; 0-7)", value);
		else if (!set_str(&s->ionice, value))
			return -ENOMEM;
		return 1;
	}
	if (!strcmp(key, "schedule"))
		field = &s->schedule;
	else if (!strcmp(key, "state_dir"))
		field = &s->state_dir;
	else if (!strcmp(key, "transport"))
		field = &s->transport;
	else if (!strcmp(key, "remote_dmrepl"))
		field = &s->remote_dmrepl;
	else
		return 0;
	if (!value[0])
		error_at(p, key, "is empty");
	else if (field == &s->state_dir && value[0] != '/')
		error_at(p, key, "'%s' is not an absolute path", value);
	else if (!set_str(field, value))
		return -ENOMEM;
	return 1;
	return 0;
}

static int job_key(struct parser *p, struct config_job *j, const char *key,
		   const char *value)
{
	if (!strcmp(key, "origin")) {
		if (!vg_lv_valid(value))
			error_at(p, key, "'%s' is not VG/LV", value);
		else if (!set_str(&j->origin, value))
			return -ENOMEM;
		return 1;
	}
	if (!strcmp(key, "to_pool")) {
		if (!vg_lv_valid(value))
			error_at(p, key, "'%s' is not VG/POOL", value);
		else if (!set_str(&j->to_pool, value))
			return -ENOMEM;
		return 1;
	}
	if (!strcmp(key, "to")) {
		const char *rest = value + strlen("ssh://");
		const char *slash;

		if (strncmp(value, "ssh://", 6) != 0 || !(slash = strchr(rest, '/')) ||
		    slash == rest || !vg_lv_valid(slash + 1))
			error_at(p, key, "'%s' is not ssh://[USER@]HOST/VG/POOL", value);
		else if (!set_str(&j->to, value))
			return -ENOMEM;
		return 1;
	}
	if (!strcmp(key, "trigger")) {
		if (!strcmp(value, "none")) {
			j->trigger = TRIGGER_NONE;
		} else if (!strcmp(value, "snapshot")) {
			j->trigger = TRIGGER_SNAPSHOT;
		} else if (!strncmp(value, "device:", 7) && value[7] &&
			   !strpbrk(value + 7, "/ \t\"'")) {
			j->trigger = TRIGGER_DEVICE;
			if (!set_str(&j->trigger_device, value + 7))
				return -ENOMEM;
		} else {
			error_at(p, key, "'%s' is not none, snapshot or device:DMNAME", value);
		}
		return 1;
	}
	return setting(p, &j->s, key, value);
}

/* @value's words (separated by blanks) appended to *@list. */
static int add_words(struct parser *p, const char *key, const char *value,
		     bool (*valid)(const char *), const char *what, char ***list,
		     size_t *n)
{
	char *copy = strdup(value), *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		char **l;

		if (!valid(w)) {
			error_at(p, key, "'%s' is not %s", w, what);
			continue;
		}
		l = realloc(*list, (*n + 1) * sizeof(**list));
		if (!l) {
			free(copy);
			return -ENOMEM;
		}
		*list = l;
		if (!(l[*n] = strdup(w))) {
			free(copy);
			return -ENOMEM;
		}
		(*n)++;
	}
	free(copy);
	return 1;
}

static bool source_pattern_valid(const char *s)
{
	return s[0] && strlen(s) < 256;
}

/* A pool a key may write: VG/POOL, or the dm name of a pool LVM does not manage. */
static bool pool_valid(const char *s)
{
	if (strchr(s, '/'))
		return vg_lv_valid(s);
	return s[0] && strlen(s) < 128 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+_.-") ==
		       strlen(s);
}

static int serve_key(struct parser *p, struct config_serve *sv, const char *key,
		     const char *value)
{
	if (!strcmp(key, "pools"))
		return add_words(p, key, value, pool_valid, "VG/POOL or a dm name",
				 &sv->pools, &sv->nr_pools);
	if (!strcmp(key, "sources"))
		return add_words(p, key, value, source_pattern_valid,
				 "a pattern of HOST:POOL", &sv->sources, &sv->nr_sources);
	if (!strcmp(key, "state_dir")) {
		if (value[0] != '/')
			error_at(p, key, "'%s' is not an absolute path", value);
		else if (!set_str(&sv->state_dir, value))
			return -ENOMEM;
		return 1;
	}
	return 0;
}

static int handler(void *user, const char *section, const char *key,
		   const char *value)
{
	struct parser *p = user;
	int r;

	if (p->line_too_long) {
		p->line_too_long = false;
		return 1;	/* said already */
	}
	if (p->serve) {
		if (strcmp(section, "serve") != 0) {
			error_at(p, NULL, "section [%s] is not [serve]", section);
			return 1;
		}
		r = serve_key(p, p->serve, key, value);
		if (r == 0)
			error_at(p, key, "unknown key");
		return r >= 0;
	}
	if (p->job_name && !strcmp(section, "job"))
		r = job_key(p, p->job, key, value);
	else if (!p->job_name && !strcmp(section, "defaults"))
		r = setting(p, &p->cfg->defaults, key, value);
	else {
		error_at(p, NULL, "section [%s] is not %s", section,
			 p->job_name ? "[job]" : "[defaults]");
		return 1;
	}
	if (r == 0)
		error_at(p, key, "unknown key");
	return r >= 0;
}

static void free_settings(struct config_settings *s)
{
	free(s->ionice);
	free(s->schedule);
	free(s->state_dir);
	free(s->transport);
	free(s->remote_dmrepl);
}

int config_parse_text(struct config *cfg, const char *file, const char *text,
		      const char *job_name,
		      void (*report)(const char *msg, void *data), void *data)
{
	struct parser p = {
		.cfg = cfg, .file = file, .job_name = job_name, .pos = text,
		.report = report, .data = data,
	};
	unsigned int before = cfg->nr_errors;
	int r;

	if (job_name) {
		struct config_job *jobs;

		if (!config_job_name_valid(job_name)) {
			add_errorf(cfg, report, data, "%s: '%s' is not a job name (letters, "
				   "digits, '_', '-', '.')", file, job_name);
			return -EINVAL;
		}
		jobs = realloc(cfg->jobs, (cfg->nr_jobs + 1) * sizeof(*jobs));
		if (!jobs)
			return -ENOMEM;
		cfg->jobs = jobs;
		p.job = &jobs[cfg->nr_jobs];
		memset(p.job, 0, sizeof(*p.job));
		p.job->s.compress = -1;
		p.job->trigger = TRIGGER_NONE;
		if (!(p.job->name = strdup(job_name)) || !(p.job->file = strdup(file))) {
			free(p.job->name);
			return -ENOMEM;
		}
		cfg->nr_jobs++;
	}
	r = ini_parse_stream(read_line, &p, handler, &p);
	if (r > 0 && cfg->nr_errors == before) {
		/* a syntax error libinih found: no handler call said why */
		p.line = (unsigned int)r;
		error_at(&p, NULL, "not KEY = VALUE, a [section] or a comment");
	} else if (r < 0) {
		return -ENOMEM;
	}
	if (job_name && p.job->origin == NULL && cfg->nr_errors == before) {
		add_errorf(cfg, report, data, "%s: job %s has no [job] origin", file, job_name);
	}
	return cfg->nr_errors == before ? 0 : -EINVAL;
}

int config_parse_serve_text(struct config *cfg, const char *file, const char *text,
			    const char *name,
			    void (*report)(const char *msg, void *data), void *data)
{
	struct parser p = {
		.cfg = cfg, .file = file, .pos = text, .report = report, .data = data,
	};
	unsigned int before = cfg->nr_errors;
	struct config_serve *serves;
	int r;

	if (!config_job_name_valid(name)) {
		add_errorf(cfg, report, data, "%s: '%s' is not a key name (letters, "
			   "digits, '_', '-', '.')", file, name);
		return -EINVAL;
	}
	serves = realloc(cfg->serves, (cfg->nr_serves + 1) * sizeof(*serves));
	if (!serves)
		return -ENOMEM;
	cfg->serves = serves;
	p.serve = &serves[cfg->nr_serves];
	memset(p.serve, 0, sizeof(*p.serve));
	if (!(p.serve->name = strdup(name)) || !(p.serve->file = strdup(file))) {
		free(p.serve->name);
		return -ENOMEM;
	}
	cfg->nr_serves++;
	r = ini_parse_stream(read_line, &p, handler, &p);
	if (r > 0 && cfg->nr_errors == before) {
		p.line = (unsigned int)r;
		error_at(&p, NULL, "not KEY = VALUE, a [section] or a comment");
	} else if (r < 0) {
		return -ENOMEM;
	}
	if (cfg->nr_errors == before && (!p.serve->nr_pools || !p.serve->nr_sources))
		add_errorf(cfg, report, data, "%s: key %s needs pools and sources", file, name);
	return cfg->nr_errors == before ? 0 : -EINVAL;
}

/* @path's text, NUL-terminated, in *@ret (free() it). */
static int read_text(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	if (!f)
		return -errno;
	buf = malloc(FILE_MAX + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, FILE_MAX + 1, f);
	if (ferror(f) || n > FILE_MAX) {
		int r = ferror(f) ? -EIO : -EFBIG;

		fclose(f);
		free(buf);
		return r;
	}
	fclose(f);
	buf[n] = '\0';
	if (memchr(buf, '\0', n)) {
		free(buf);
		return -EBADMSG;
	}
	*ret = buf;
	return 0;
}

static int parse_file(struct config *cfg, const char *path, const char *job_name,
		      bool serve, void (*report)(const char *msg, void *data), void *data)
{
	char *text = NULL;
	int r = read_text(path, &text);

	if (r < 0) {
		if (r == -ENOENT && !job_name)
			return 0;	/* no dmrepl.conf: the built-in defaults */
		add_errorf(cfg, report, data, "%s: cannot read: %s", path,
			 r == -EBADMSG ? "it holds a NUL byte" : strerror(-r));
		return r == -ENOMEM ? r : -EINVAL;
	}
	r = serve ? config_parse_serve_text(cfg, path, text, job_name, report, data)
		  : config_parse_text(cfg, path, text, job_name, report, data);
	free(text);
	return r;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Every NAME.conf of @dir/@sub, in name order. */
static int parse_dir(struct config *cfg, const char *dir, const char *sub, bool serve,
		     void (*report)(const char *msg, void *data), void *data)
{
	struct dirent **names = NULL;
	char path[4096];
	int n, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	n = scandir(path, &names, NULL, by_name);
	if (n < 0 && errno != ENOENT)
		add_errorf(cfg, report, data, "%s: cannot read: %s", path, strerror(errno));
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		size_t len = strlen(name);

		/* NAME.conf; editors' backups and the like are not read */
		if (len > 5 && !strcmp(name + len - 5, ".conf") && name[0] != '.') {
			char base[256];

			snprintf(base, sizeof(base), "%.*s", (int)(len - 5), name);
			snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, name);
			if (parse_file(cfg, path, base, serve, report, data) == -ENOMEM)
				r = -ENOMEM;
		}
		free(names[i]);
	}
	free(names);
	return r;
}

int config_load(struct config *cfg, const char *dir,
		void (*report)(const char *msg, void *data), void *data)
{
	char path[4096];
	int r;

	memset(cfg, 0, sizeof(*cfg));
	cfg->defaults.compress = -1;
	if (!(cfg->dir = strdup(dir)))
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/dmrepl.conf", dir);
	r = parse_file(cfg, path, NULL, false, report, data);
	if (r == -ENOMEM)
		return r;
	if (parse_dir(cfg, dir, "jobs.d", false, report, data) == -ENOMEM ||
	    parse_dir(cfg, dir, "serve.d", true, report, data) == -ENOMEM)
		return -ENOMEM;
	return config_finish(cfg, report, data);
}

static int inherit(char **field, const char *dflt)
{
	return *field || !dflt || (*field = strdup(dflt)) ? 0 : -ENOMEM;
}

int config_finish(struct config *cfg,
		  void (*report)(const char *msg, void *data), void *data)
{
	const struct config_settings *d = &cfg->defaults;

	for (size_t i = 0; i < cfg->nr_jobs; i++) {
		struct config_job *j = &cfg->jobs[i];
		struct config_settings *s = &j->s;
		if (j->origin && !!j->to_pool == !!j->to) {
			add_errorf(cfg, report, data, "%s: job %s needs one of to_pool and to",
				 j->file, j->name);
		}
		if (!s->keep)
			s->keep = d->keep ? d->keep : 7;
		if (!s->keep_destination)
			s->keep_destination = d->keep_destination ? d->keep_destination
								  : s->keep;
		if (!s->bwlimit)
			s->bwlimit = d->bwlimit;
		if (s->compress < 0)
			s->compress = d->compress > 0;
		if (inherit(&s->ionice, d->ionice) || inherit(&s->schedule, d->schedule) ||
		    inherit(&s->state_dir, d->state_dir) ||
		    inherit(&s->transport, d->transport) ||
		    inherit(&s->remote_dmrepl, d->remote_dmrepl))
			return -ENOMEM;
	}
	return cfg->nr_errors ? -EINVAL : 0;
}

const struct config_serve *config_find_serve(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nr_serves; i++)
		if (!strcmp(cfg->serves[i].name, name))
			return &cfg->serves[i];
	return NULL;
}

const struct config_job *config_find_job(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nr_jobs; i++)
		if (!strcmp(cfg->jobs[i].name, name))
			return &cfg->jobs[i];
	return NULL;
}

bool config_job_name_valid(const char *name)
{
	if (!name[0] || name[0] == '.' || strlen(name) > 64)
		return false;
	for (const char *c = name; *c; c++)
		if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') &&
		    !(*c >= '0' && *c <= '9') && !strchr("_-.", *c))
			return false;
	return true;
}

void config_free(struct config *cfg)
{
	for (size_t i = 0; i < cfg->nr_jobs; i++) {
		struct config_job *j = &cfg->jobs[i];

		free(j->name);
		free(j->file);
		free(j->origin);
		free(j->to_pool);
		free(j->to);
		free(j->trigger_device);
		free_settings(&j->s);
	}
	free(cfg->jobs);
	for (size_t i = 0; i < cfg->nr_serves; i++) {
		struct config_serve *sv = &cfg->serves[i];

		for (size_t k = 0; k < sv->nr_pools; k++)
			free(sv->pools[k]);
		for (size_t k = 0; k < sv->nr_sources; k++)
			free(sv->sources[k]);
		free(sv->pools);
		free(sv->sources);
		free(sv->name);
		free(sv->file);
		free(sv->state_dir);
	}
	free(cfg->serves);
	free_settings(&cfg->defaults);
	free(cfg->dir);
	memset(cfg, 0, sizeof(*cfg));
}
