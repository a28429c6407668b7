/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The sync jobs' configuration (tools/conf.c): a directory of files read
 * whole, each key's checks, the defaults a job inherits, and errors that
 * name the file, the line and the key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tools/conf.h"
#include "unit.h"

static char dir[] = "/tmp/dmrepl-test-conf.XXXXXX";
static char errors[4096];

static void collect(const char *msg, void *data)
{
	strncat(errors, msg, sizeof(errors) - strlen(errors) - 2);
	strcat(errors, "\n");
}

static void put(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void clean(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'/dmrepl.conf '%s'/jobs.d; mkdir '%s'/jobs.d",
		 dir, dir, dir);
	CU_ASSERT_EQUAL(system(cmd), 0);
	errors[0] = '\0';
}

static int setup(void)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_jobs_and_defaults(void)
{
	struct config cfg;
	const struct config_job *j;

	clean();
	put("dmrepl.conf", "; the site's defaults\n"
			   "[defaults]\n"
			   "keep = 5\n"
			   "bwlimit = 100M\n"
			   "compress = yes\n"
			   "state_dir = /srv/dmrepl\n");
	put("jobs.d/db.conf", "[job]\n"
			      "origin = vg0/db\n"
			      "to = ssh://backup@far/vg1/pool\n"
			      "keep = 3\n"
			      "trigger = snapshot\n"
			      "schedule = *:0/15\n");
	put("jobs.d/web.conf", "[job]\norigin = vg0/web\nto_pool = vg9/pool\n"
			       "compress = no\ntrigger = device:vg0-web\n"
			       "keep_destination = 30\n");
	put("jobs.d/web.conf~", "not a job: an editor's backup\n");
	put("jobs.d/README", "not a job either\n");
	CU_ASSERT_EQUAL_FATAL(config_load(&cfg, dir, collect, NULL), 0);
	CU_ASSERT_STRING_EQUAL(errors, "");
	CU_ASSERT_EQUAL(cfg.nr_jobs, 2);

	j = config_find_job(&cfg, "db");
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_STRING_EQUAL(j->origin, "vg0/db");
	CU_ASSERT_STRING_EQUAL(j->to, "ssh://backup@far/vg1/pool");
	CU_ASSERT_PTR_NULL(j->to_pool);
	CU_ASSERT_EQUAL(j->s.keep, 3);
	CU_ASSERT_EQUAL(j->s.keep_destination, 3);	/* as keep */
	CU_ASSERT_EQUAL(j->s.bwlimit, 100ull << 20);	/* the default's */
	CU_ASSERT_EQUAL(j->s.compress, 1);
	CU_ASSERT_STRING_EQUAL(j->s.state_dir, "/srv/dmrepl");
	CU_ASSERT_STRING_EQUAL(j->s.schedule, "*:0/15");
	CU_ASSERT_EQUAL(j->trigger, TRIGGER_SNAPSHOT);

	j = config_find_job(&cfg, "web");
	CU_ASSERT_FATAL(j != NULL);
	CU_ASSERT_STRING_EQUAL(j->to_pool, "vg9/pool");
	CU_ASSERT_EQUAL(j->s.keep, 5);
	CU_ASSERT_EQUAL(j->s.keep_destination, 30);
	CU_ASSERT_EQUAL(j->s.compress, 0);		/* its own, over the default */
	CU_ASSERT_EQUAL(j->trigger, TRIGGER_DEVICE);
	CU_ASSERT_STRING_EQUAL(j->trigger_device, "vg0-web");
	CU_ASSERT_PTR_NULL(j->s.schedule);
	CU_ASSERT_PTR_NULL(config_find_job(&cfg, "web.conf~"));
	config_free(&cfg);
}

static void test_builtin_defaults(void)
{
	struct config cfg;

	/* no dmrepl.conf at all */
	clean();
	put("jobs.d/a.conf", "[job]\norigin = vg/lv\nto_pool = vg2/pool\n");
	CU_ASSERT_EQUAL_FATAL(config_load(&cfg, dir, collect, NULL), 0);
	CU_ASSERT_EQUAL(cfg.jobs[0].s.keep, 7);
	CU_ASSERT_EQUAL(cfg.jobs[0].s.compress, 0);
	CU_ASSERT_EQUAL(cfg.jobs[0].s.bwlimit, 0);
	CU_ASSERT_EQUAL(cfg.jobs[0].trigger, TRIGGER_NONE);
	config_free(&cfg);
}

/* load_fails TEXT JOB_FILE WANT: the first error is exactly WANT */
static void load_fails(const char *conf, const char *job, const char *want)
{
	struct config cfg;
	char expect[512];

	clean();
	if (conf)
		put("dmrepl.conf", conf);
	if (job)
		put("jobs.d/j.conf", job);
	CU_ASSERT_EQUAL(config_load(&cfg, dir, collect, NULL), -EINVAL);
	snprintf(expect, sizeof(expect), "%s/%s", dir, want);
	if (strcmp(cfg.error, expect) != 0)
		fprintf(stderr, "\n  got:  %s\n  want: %s\n", cfg.error, expect);
	CU_ASSERT_STRING_EQUAL(cfg.error, expect);
	config_free(&cfg);
}

static void test_errors(void)
{
	load_fails("[defaults]\nkeep = 0\n", NULL,
		   "dmrepl.conf:2: keep: '0' is not a number from 1 to 1000");
	load_fails("[defaults]\n\nkeep = 010x\n", NULL,
		   "dmrepl.conf:3: keep: '010x' is not a number from 1 to 1000");
	load_fails("[defaults]\nbwlimit = fast\n", NULL,
		   "dmrepl.conf:2: bwlimit: 'fast' is not a rate: give bytes per second, "
		   "with K, M, G or T (powers of 1024)");
	load_fails("[defaults]\ncolour = blue\n", NULL, "dmrepl.conf:2: colour: unknown key");
	load_fails("[default]\nkeep = 1\n", NULL,
		   "dmrepl.conf:2: section [default] is not [defaults]");
	load_fails("[defaults]\nthis line has no equals sign\n", NULL,
		   "dmrepl.conf:2: not KEY = VALUE, a [section] or a comment");
	load_fails("[defaults]\nstate_dir = relative/dir\n", NULL,
		   "dmrepl.conf:2: state_dir: 'relative/dir' is not an absolute path");
	load_fails(NULL, "[job]\norigin = vg0\nto_pool = a/b\n",
		   "jobs.d/j.conf:2: origin: 'vg0' is not VG/LV");
	load_fails(NULL, "[job]\norigin = vg0/-bad\nto_pool = a/b\n",
		   "jobs.d/j.conf:2: origin: 'vg0/-bad' is not VG/LV");
	load_fails(NULL, "[job]\norigin = vg0/lv\nto = http://x/a/b\n",
		   "jobs.d/j.conf:3: to: 'http://x/a/b' is not ssh://[USER@]HOST/VG/POOL");
	load_fails(NULL, "[job]\norigin = vg0/lv\n",
		   "jobs.d/j.conf: job j needs one of to_pool and to");
	load_fails(NULL, "[job]\norigin = vg0/lv\nto = ssh://h/a/b\nto_pool = a/b\n",
		   "jobs.d/j.conf: job j needs one of to_pool and to");
	load_fails(NULL, "[job]\nto_pool = a/b\n", "jobs.d/j.conf: job j has no [job] origin");
	load_fails(NULL, "[job]\norigin = vg/lv\nto_pool = a/b\ntrigger = sometimes\n",
		   "jobs.d/j.conf:4: trigger: 'sometimes' is not none, snapshot or device:DMNAME");
	load_fails(NULL, "[defaults]\nkeep = 1\n",
		   "jobs.d/j.conf:2: section [defaults] is not [job]");
	load_fails(NULL, "[job]\norigin = vg/lv\nto_pool = a/b\ncompress = maybe\n",
		   "jobs.d/j.conf:4: compress: 'maybe' is not yes or no");
	load_fails(NULL, "[job]\norigin = vg/lv\nto_pool = a/b\nionice = 9\n",
		   "jobs.d/j.conf:4: ionice: '9' is not CLASS[:LEVEL] (realtime, best-effort, idle; 0-7)");
}

static void test_long_line_and_nul(void)
{
	struct config cfg;
	char text[400];

	/* a line longer than libinih's buffer is an error of its own line */
	snprintf(text, sizeof(text), "[job]\norigin = vg/lv\nto_pool = a/b\nschedule = %0300d\n", 0);
	load_fails(NULL, text, "jobs.d/j.conf:4: line longer than 198 characters");

	clean();
	{
		char path[256];
		FILE *f;

		snprintf(path, sizeof(path), "%s/jobs.d/z.conf", dir);
		f = fopen(path, "w");
		CU_ASSERT_FATAL(f != NULL);
		fwrite("[job]\norigin = vg/lv\0\n", 1, 22, f);
		fclose(f);
	}
	CU_ASSERT_EQUAL(config_load(&cfg, dir, collect, NULL), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(cfg.error, "jobs.d/z.conf: cannot read: it holds a NUL byte"));
	config_free(&cfg);
}

static void test_every_error_reported(void)
{
	struct config cfg;

	clean();
	put("dmrepl.conf", "[defaults]\nkeep = x\nbwlimit = y\n");
	put("jobs.d/a.conf", "[job]\norigin = bad\n");
	CU_ASSERT_EQUAL(config_load(&cfg, dir, collect, NULL), -EINVAL);
	CU_ASSERT_EQUAL(cfg.nr_errors, 3);
	CU_ASSERT_PTR_NOT_NULL(strstr(errors, "dmrepl.conf:2: keep"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errors, "dmrepl.conf:3: bwlimit"));
	CU_ASSERT_PTR_NOT_NULL(strstr(errors, "jobs.d/a.conf:2: origin"));
	config_free(&cfg);
}

static void test_serve(void)
{
	struct config cfg;
	const struct config_serve *sv;
	char path[300];

	clean();
	snprintf(path, sizeof(path), "mkdir -p '%s/serve.d'", dir);
	CU_ASSERT_EQUAL(system(path), 0);
	put("serve.d/db1.conf", "[serve]\npools = vg1/pool  tank-tpool\n"
				"sources = db1:* db1b:vg0/pool\nstate_dir = /srv/dmrepl\n");
	CU_ASSERT_EQUAL_FATAL(config_load(&cfg, dir, collect, NULL), 0);
	sv = config_find_serve(&cfg, "db1");
	CU_ASSERT_FATAL(sv != NULL);
	CU_ASSERT_EQUAL(sv->nr_pools, 2);
	CU_ASSERT_STRING_EQUAL(sv->pools[1], "tank-tpool");
	CU_ASSERT_EQUAL(sv->nr_sources, 2);
	CU_ASSERT_STRING_EQUAL(sv->sources[0], "db1:*");
	CU_ASSERT_STRING_EQUAL(sv->state_dir, "/srv/dmrepl");
	CU_ASSERT_PTR_NULL(config_find_serve(&cfg, "db2"));
	config_free(&cfg);

	put("serve.d/db1.conf", "[serve]\npools = vg1/pool/x\nsources = *\n");
	CU_ASSERT_EQUAL(config_load(&cfg, dir, collect, NULL), -EINVAL);
	snprintf(path, sizeof(path), "%s/serve.d/db1.conf:2: pools: 'vg1/pool/x' is not VG/POOL "
		 "or a dm name", dir);
	CU_ASSERT_STRING_EQUAL(cfg.error, path);
	config_free(&cfg);
	put("serve.d/db1.conf", "[serve]\npools = vg1/pool\n");
	CU_ASSERT_EQUAL(config_load(&cfg, dir, collect, NULL), -EINVAL);
	snprintf(path, sizeof(path), "%s/serve.d/db1.conf: key db1 needs pools and sources", dir);
	CU_ASSERT_STRING_EQUAL(cfg.error, path);
	config_free(&cfg);
	put("serve.d/db1.conf", "[job]\npools = vg1/pool\n");
	CU_ASSERT_EQUAL(config_load(&cfg, dir, collect, NULL), -EINVAL);
	snprintf(path, sizeof(path), "%s/serve.d/db1.conf:2: section [job] is not [serve]", dir);
	CU_ASSERT_STRING_EQUAL(cfg.error, path);
	config_free(&cfg);
	snprintf(path, sizeof(path), "rm -rf '%s/serve.d'", dir);
	CU_ASSERT_EQUAL(system(path), 0);
}

static void test_job_names(void)
{
	CU_ASSERT_TRUE(config_job_name_valid("db-1.hourly_x"));
	CU_ASSERT_FALSE(config_job_name_valid(""));
	CU_ASSERT_FALSE(config_job_name_valid(".hidden"));
	CU_ASSERT_FALSE(config_job_name_valid("a b"));
	CU_ASSERT_FALSE(config_job_name_valid("a@b"));
}

int main(void)
{
	static CU_TestInfo tests[] = {
		{ "jobs inherit the defaults", test_jobs_and_defaults },
		{ "the built-in defaults", test_builtin_defaults },
		{ "errors name file, line and key", test_errors },
		{ "a long line, a NUL byte", test_long_line_and_nul },
		{ "every error is reported", test_every_error_reported },
		{ "job names", test_job_names },
		{ "serve.d: a receive-only key", test_serve },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "conf", setup, teardown, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};

	return unit_run(suites);
}
