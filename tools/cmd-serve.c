/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl serve: the destination's side of a receive-only ssh key. In
 * authorized_keys, command="dmrepl serve KEY" makes every login with that
 * key run this instead of what the client asked; what it asked is in
 * SSH_ORIGINAL_COMMAND. Only the receive side of the protocol passes
 * (dmrepl receive --pool POOL [--negotiate] ...), only into the pools
 * that serve.d/KEY.conf allows, and only streams of the sources it names
 * (receive --only-source): a key that leaks gives no shell, writes no
 * other pool, and deletes nothing but those sources' replicas: a sync
 * job's retention (receive --tag dmrepl.sync:JOB --keep N) removes only
 * intact replicas, of the sources the key names, that carry the job's
 * tag.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "conf.h"
#include "dmrepl.h"
#include "libdmrepl-private.h"
#include "sync.h"

static const char *const subcmd = "serve";

#define MAX_WORDS 32

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s serve KEY [--config DIR]\n"
		"\n"
		"Run as an ssh forced command, in the destination's authorized_keys:\n"
		"  command=\"%1$s serve KEY\",restrict ssh-ed25519 AAAA... backup@source\n"
		"The command the client asked for (SSH_ORIGINAL_COMMAND) runs only if\n"
		"it is dmrepl receive into a pool that DIR/serve.d/KEY.conf allows\n"
		"(pools = VG/POOL ...), and only streams from the sources it names\n"
		"(sources = HOST:POOL patterns) are taken. Everything else is refused\n"
		"and logged (syslog, authpriv). See dmrepl.conf(5).\n"
		"\n"
		"Options:\n"
		"  -c, --config DIR   the configuration (default /etc/dmrepl)\n"
		"  -j, --json         refusals as a JSON result (as when the client's\n"
		"                     command asks for --json)\n"
		"  -h, --help         show this help\n"
		"\n"
		"Exit status: as dmrepl receive's; 2 when the command is refused.\n",
		program_name);
}

/* Refuse, saying why to the client and to the destination's log. */
static int __attribute__((format(printf, 2, 3)))
refuse(const char *key, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	syslog(LOG_AUTHPRIV | LOG_WARNING, "serve %s: refused: %s", key, why);
	tool_note_errno(-EPERM);
	tool_error(subcmd, "key %s: refused: %s", key, why);
	return EXIT_USAGE;
}

static bool allowed_pool(const struct config_serve *sv, const char *pool)
{
	for (size_t i = 0; i < sv->nr_pools; i++)
		if (!strcmp(sv->pools[i], pool))
			return true;
	return false;
}

static bool is_dmrepl(const char *word)
{
	const char *base = strrchr(word, '/');

	return !strcmp(base ? base + 1 : word, "dmrepl");
}

static void report_config(const char *msg, void *data)
{
	tool_error(subcmd, "%s", msg);
}

int cmd_serve(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = getenv("DMREPL_CONFIG_DIR") ? getenv("DMREPL_CONFIG_DIR")
						      : CONFIG_DIR_DEFAULT;
	const char *asked = getenv("SSH_ORIGINAL_COMMAND"), *key, *pool = NULL;
	const char *tag = NULL, *keep = NULL;
	const struct config_serve *sv;
	char *words[MAX_WORDS + 1], buf[4096];
	char *rargv[MAX_WORDS + 40];
	bool negotiate = false, json = false, quiet = false, dry_run = false;
	struct config cfg = { 0 };
	int c, n, rargc = 0, rc;

	while ((c = tool_getopt(argc, argv, "c:jh", longopts)) != -1) {
		switch (c) {
		case 'c': dir = optarg; break;
		case 'j': break;	/* a refusal is then a JSON result */
		case 'h': usage(stdout); return EXIT_OK;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	if (argc - optind != 1)
		return tool_usage_error(subcmd, "give the KEY (serve.d/KEY.conf)");
	key = argv[optind];
	openlog("dmrepl", LOG_PID, LOG_AUTHPRIV);

	if (config_load(&cfg, dir, report_config, NULL) < 0) {
		tool_note_error(cfg.error);
		rc = refuse(key, "the configuration in %s has errors", dir);
		goto out;
	}
	sv = config_find_serve(&cfg, key);
	if (!sv) {
		rc = refuse(key, "no %s/serve.d/%s.conf", dir, key);
		goto out;
	}
	if (!asked || !*asked) {
		rc = refuse(key, "no command: this key runs only dmrepl receive (no shell)");
		goto out;
	}
	n = tool_split_words(asked, words, MAX_WORDS, buf, sizeof(buf));
	for (int i = 0; i < n; i++)
		if (!strcmp(words[i], "--json") || !strcmp(words[i], "-j"))
			tool_json_requested = true;	/* the client reads JSON */
	if (n < 0) {
		rc = refuse(key, "'%.200s' is not a dmrepl command line", asked);
		goto out;
	}
	if (n < 2 || !is_dmrepl(words[0]) || strcmp(words[1], "receive") != 0) {
		rc = refuse(key, "'%.200s': this key runs only dmrepl receive", asked);
		goto out;
	}
	for (int i = 2; i < n; i++) {
		const char *w = words[i];

		if ((!strcmp(w, "--pool") || !strcmp(w, "--to-pool") || !strcmp(w, "-t")) &&
		    i + 1 < n) {
			pool = words[++i];
		} else if (!strcmp(w, "--tag") && i + 1 < n) {
			tag = words[++i];
			if (strncmp(tag, SYNC_TAG_PREFIX, strlen(SYNC_TAG_PREFIX)) != 0 ||
			    !tag[strlen(SYNC_TAG_PREFIX)]) {
				rc = refuse(key, "--tag %s: this key may give only a sync job's tag "
					    "(" SYNC_TAG_PREFIX "JOB)", tag);
				goto out;
			}
		} else if (!strcmp(w, "--keep") && i + 1 < n) {
			keep = words[++i];	/* receive checks the number */
		} else if (!strcmp(w, "--negotiate")) {
			negotiate = true;
		} else if (!strcmp(w, "--json") || !strcmp(w, "-j")) {
			json = true;
		} else if (!strcmp(w, "--quiet") || !strcmp(w, "-q")) {
			quiet = true;
		} else if (!strcmp(w, "--dry-run") || !strcmp(w, "-n")) {
			dry_run = true;
		} else if (!strcmp(w, "--state-dir") && i + 1 < n) {
			/* the destination's own, never the client's choice */
			const char *want = sv->state_dir ? sv->state_dir : dmrepl_state_dir_default();

			if (strcmp(words[++i], want) != 0) {
				rc = refuse(key, "--state-dir %s: this key's is %s", words[i], want);
				goto out;
			}
		} else {
			rc = refuse(key, "receive %s: not an option this key may give", w);
			goto out;
		}
	}
	if (!pool) {
		rc = refuse(key, "receive without --pool");
		goto out;
	}
	if (!allowed_pool(sv, pool)) {
		char pools[512] = "";

		for (size_t i = 0; i < sv->nr_pools; i++)
			snprintf(pools + strlen(pools), sizeof(pools) - strlen(pools), "%s%s",
				 i ? ", " : "", sv->pools[i]);
		rc = refuse(key, "pool %s: this key may write only %s", pool, pools);
		goto out;
	}

	rargv[rargc++] = (char *)"receive";
	rargv[rargc++] = (char *)"--pool";
	rargv[rargc++] = (char *)pool;
	if (sv->state_dir) {
		rargv[rargc++] = (char *)"--state-dir";
		rargv[rargc++] = sv->state_dir;
	}
	for (size_t i = 0; i < sv->nr_sources && i < 16; i++) {
		rargv[rargc++] = (char *)"--only-source";
		rargv[rargc++] = sv->sources[i];
	}
	if (tag) {
		rargv[rargc++] = (char *)"--tag";
		rargv[rargc++] = (char *)tag;
	}
	if (keep) {
		rargv[rargc++] = (char *)"--keep";
		rargv[rargc++] = (char *)keep;
	}
	if (negotiate)
		rargv[rargc++] = (char *)"--negotiate";
	if (json)
		rargv[rargc++] = (char *)"--json";
	if (quiet)
		rargv[rargc++] = (char *)"--quiet";
	if (dry_run)
		rargv[rargc++] = (char *)"--dry-run";
	rargv[rargc] = NULL;
	syslog(LOG_AUTHPRIV | LOG_INFO, "serve %s: receive into %s%s%s%s%s", key, pool,
	       tag ? ", tagged " : "", tag ? tag : "", keep ? ", keeping " : "", keep ? keep : "");
	optind = 0;	/* a fresh getopt for receive's options */
	rc = cmd_receive(ctx, rargc, rargv);
out:
	config_free(&cfg);
	closelog();
	return rc;
}
