// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * dmrepl migrate: move an LVM thin volume into another VG's thin pool
 * while it stays in use, by converging incrementals and a short final
 * round with the volume suspended (lib/migrate.c). The switch command
 * runs while the volume is suspended: it moves the volume's user.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "json.h"
#include "progress.h"

static const char *const subcmd = "migrate";

/* Exit status: the volume runs on, untouched; the deltas did not converge. */
#define EXIT_NOT_CONVERGED 3

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s migrate --from VG/LV --to-pool VG/POOL [--converge SIZE]\n"
		"                 [--max-rounds N] [--switch-cmd CMD] [--json]\n"
		"  %1$s migrate --from VG/LV --to ssh://[USER@]HOST/VG/POOL [options]\n"
		"  %1$s migrate --recover\n"
		"\n"
		"Move thin LV VG/LV into thin pool VG/POOL of another VG, or of another\n"
		"host, while it stays in use. Round 1 replicates a snapshot of it in full; each later round\n"
		"a new snapshot, from the round before, until what changed since is at\n"
		"most SIZE. Then the final round: the volume is suspended (its I/O\n"
		"waits, none fails), the last changes are copied, the destination is\n"
		"committed as VG/LV (the volume's name and size; tag\n"
		"dmrepl.migrated:SOURCE), CMD runs (it moves the volume's user: the\n"
		"volume is still suspended, so CMD must not use it), and the volume is\n"
		"resumed. If the deltas stop shrinking or the rounds run out, migrate\n"
		"stops and the volume runs on, untouched. If anything in the final\n"
		"round fails, or CMD exits non-zero, the volume is resumed unchanged\n"
		"and stays the volume; the destination is removed, or kept as a copy\n"
		"tagged dmrepl.migrate-not-switched. The source LV is never deleted.\n"
		"\n"
		"Options:\n"
		"  -F, --from VG/LV        the volume, a thin LV\n"
		"  -t, --to-pool VG/POOL   the destination pool, in another VG\n"
		"      --to URL            ssh://[USER@]HOST/VG/POOL: another host's pool\n"
		"                          (its dmrepl does its part: receive --migrate)\n"
		"      --transport CMD     instead of ssh: CMD gets the far side's command\n"
		"      --remote-dmrepl PATH  dmrepl on the far side (default dmrepl)\n"
		"      --remote-state-dir DIR  the far side's state directory\n"
		"      --converge SIZE     go final when at most SIZE changed (K, M, G;\n"
		"                          default: what the last incremental round's\n"
		"                          rate copies in 0.5 s, at least 4M; after\n"
		"                          the full round 1, 4M)\n"
		"      --max-rounds N      rounds before the final one, at most (default 10)\n"
		"      --switch-cmd CMD    run by sh -c in the final round, with\n"
		"                          DMREPL_MIGRATE_FROM=VG/LV and\n"
		"                          DMREPL_MIGRATE_TO=DSTVG/LV (with --to:\n"
		"                          ssh://HOST/DSTVG/LV); non-zero: no switch\n"
		"      --state-dir DIR     lineage and migrate records (default /var/lib/dmrepl)\n"
		"      --recover           resume what a killed migrate left suspended\n"
		"  -j, --json              JSON Lines: progress, then one result\n"
		"  -q, --quiet             no progress\n"
		"  -h, --help              show this help\n"
		"\n"
		"Exit status: 0 migrated (the switch ran); 1 failed (the volume runs\n"
		"as it was); 2 usage; 3 did not converge (the volume runs on,\n"
		"untouched); 128+N interrupted by signal N (the volume resumed).\n",
		program_name);
}

struct migrate_opts {
	const char *from, *to_pool, *to, *switch_cmd, *state_dir;
	const char *transport, *remote_dmrepl, *remote_state_dir;
	uint64_t converge, max_rounds;
	bool recover, json, quiet;
};

enum { OPT_CONVERGE = 256, OPT_MAX_ROUNDS, OPT_SWITCH, OPT_STATE_DIR, OPT_RECOVER, OPT_TO,
       OPT_TRANSPORT, OPT_REMOTE_DMREPL, OPT_REMOTE_STATE_DIR };

static int parse(int argc, char *argv[], struct migrate_opts *o)
{
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, 'F' },
		{ "to-pool", required_argument, NULL, 't' },
		{ "to", required_argument, NULL, OPT_TO },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "remote-dmrepl", required_argument, NULL, OPT_REMOTE_DMREPL },
		{ "remote-state-dir", required_argument, NULL, OPT_REMOTE_STATE_DIR },
		{ "converge", required_argument, NULL, OPT_CONVERGE },
		{ "max-rounds", required_argument, NULL, OPT_MAX_ROUNDS },
		{ "switch-cmd", required_argument, NULL, OPT_SWITCH },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "recover", no_argument, NULL, OPT_RECOVER },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = tool_getopt(argc, argv, "F:t:jqh", longopts)) != -1) {
		switch (c) {
		case 'F': o->from = optarg; break;
		case 't': o->to_pool = optarg; break;
		case OPT_TO: o->to = optarg; break;
		case OPT_TRANSPORT: o->transport = optarg; break;
		case OPT_REMOTE_DMREPL: o->remote_dmrepl = optarg; break;
		case OPT_REMOTE_STATE_DIR: o->remote_state_dir = optarg; break;
		case OPT_CONVERGE:
			if (tool_option_size(subcmd, "--converge", optarg, 1, UINT64_MAX / 2, 1,
					     &o->converge))
				return EXIT_USAGE;
			break;
		case OPT_MAX_ROUNDS:
			if (tool_option_number(subcmd, "--max-rounds", optarg, 1,
					       DMREPL_MIGRATE_MAX_ROUNDS - 1, &o->max_rounds))
				return EXIT_USAGE;
			break;
		case OPT_SWITCH: o->switch_cmd = optarg; break;
		case OPT_STATE_DIR: o->state_dir = optarg; break;
		case OPT_RECOVER: o->recover = true; break;
		case 'j': o->json = true; break;
		case 'q': o->quiet = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	o->json = o->json || tool_json_requested;
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	if (o->recover)
		return 0;
	if (!o->from)
		return tool_usage_error(subcmd, "give the volume (--from VG/LV)");
	if (!!o->to_pool + !!o->to != 1)
		return tool_usage_error(subcmd, "give one destination (--to-pool VG/POOL or --to URL)");
	if (o->to && strncmp(o->to, "ssh://", 6) != 0)
		return tool_usage_error(subcmd, "--to '%s': give ssh://[USER@]HOST/VG/POOL", o->to);
	if (!o->to && (o->transport || o->remote_dmrepl || o->remote_state_dir))
		return tool_usage_error(subcmd, "--transport, --remote-dmrepl and "
					"--remote-state-dir go with --to");
	return 0;
}

/* The switch: sh -c CMD, with the volume's old and new names. */
static int run_switch(const char *dst_vg_lv, void *data)
{
	const struct migrate_opts *o = data;
	pid_t pid;
	int status;

	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	bool stopped = false;
	pid_t w;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		setpgid(0, 0);	/* its own group: stopped whole on SIGINT/SIGTERM */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		setenv("DMREPL_MIGRATE_FROM", o->from, 1);
		setenv("DMREPL_MIGRATE_TO", dst_vg_lv, 1);
		execl("/bin/sh", "sh", "-c", o->switch_cmd, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	/* the volume is suspended meanwhile: a signal stops the switch, not waits */
	while ((w = waitpid(pid, &status, WNOHANG)) == 0 || (w < 0 && errno == EINTR)) {
		if (tool_interrupted && !stopped) {
			kill(-pid, SIGTERM);
			stopped = true;
		}
		nanosleep(&tick, NULL);
	}
	if (w < 0)
		return -errno;
	if (!stopped && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (stopped)
		tool_error(subcmd, "interrupted: the switch command was stopped");
	else if (WIFEXITED(status))
		tool_error(subcmd, "the switch command failed (exit %d)", WEXITSTATUS(status));
	else
		tool_error(subcmd, "the switch command was killed by signal %d", WTERMSIG(status));
	return -ECANCELED;
}

static const char *phase_name(enum dmrepl_migrate_phase ph)
{
	switch (ph) {
	case DMREPL_MIGRATE_ROUND: return "round";
	case DMREPL_MIGRATE_FINAL: return "final";
	case DMREPL_MIGRATE_SWITCH: return "switch";
	case DMREPL_MIGRATE_DONE: return "done";
	default: return "pending";
	}
}

static void print_result(const struct migrate_opts *o, const struct dmrepl_migrate_result *res,
			 int status, int rc)
{
	struct json j;

	tool_json_result_begin(&j, stdout, status == 0);
	if (status < 0) {
		tool_json_error(&j, status);
		json_u64(&j, "exit_status", (uint64_t)rc);
	}
	json_string(&j, "from", o->from);
	if (o->to_pool)
		json_string(&j, "to_pool", o->to_pool);
	else
		json_string(&j, "to", o->to);
	if (res->dst_lv[0])
		json_string(&j, "volume", res->dst_lv);
	json_bool(&j, "converged", res->converged);
	json_bool(&j, "switched", res->switched);
	if (res->reason[0])
		json_string(&j, "reason", res->reason);
	json_open_array(&j, "rounds");
	for (unsigned int i = 0; i < res->nr_rounds; i++) {
		json_open_object(&j, NULL);
		json_u64(&j, "round", i + 1);
		json_bool(&j, "full", res->rounds[i].full);
		json_bool(&j, "final", res->converged && i + 1 == res->nr_rounds);
		json_u64(&j, "bytes", res->rounds[i].bytes);
		json_u64(&j, "milliseconds", (uint64_t)(res->rounds[i].seconds * 1000 + 0.5));
		json_close_object(&j);
	}
	json_close_array(&j);
	json_u64(&j, "size_bytes", res->size_bytes);
	json_u64(&j, "total_bytes", res->total_bytes);
	json_u64(&j, "converge_bytes", res->converge_bytes);
	json_u64(&j, "suspended_ms", res->suspended_ms);
	json_u64(&j, "milliseconds", (uint64_t)(res->seconds * 1000 + 0.5));
	json_close_object(&j);
	json_end(&j);
	tool_json_result_printed();
}

static int do_recover(struct dmrepl_ctx *ctx, const struct migrate_opts *o)
{
	unsigned int n = 0;
	int r = dmrepl_migrate_recover(ctx, o->state_dir, &n);

	if (r < 0) {
		tool_fail_r(subcmd, r, "recover: %s", strerror(-r));
		return EXIT_FAILURE_OP;
	}
	if (o->json) {
		struct json j;

		tool_json_result_begin(&j, stdout, true);
		json_u64(&j, "resumed", n);
		json_close_object(&j);
		json_end(&j);
		tool_json_result_printed();
	} else if (!o->quiet) {
		printf("%u killed migration(s) resolved\n", n);
	}
	return EXIT_OK;
}

int cmd_migrate(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct migrate_opts o = { 0 };
	struct dmrepl_migrate *m = NULL;
	struct dmrepl_migrate_result res = { 0 };
	struct dmrepl_migrate_progress pr;
	struct progress *p;
	const struct timespec tick = { 0, 20 * 1000 * 1000 };
	bool cancelled = false;
	char what[32];
	int r, rc;

	r = parse(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (o.recover)
		return do_recover(ctx, &o);
	r = dmrepl_migrate_new(ctx, o.from, o.to ? o.to : o.to_pool, &m);
	if (r == 0 && o.converge)
		r = dmrepl_migrate_set_converge(m, o.converge);
	if (r == 0 && o.max_rounds)
		r = dmrepl_migrate_set_max_rounds(m, (unsigned int)o.max_rounds);
	if (r == 0 && o.switch_cmd)
		r = dmrepl_migrate_set_switch_fn(m, run_switch, &o);
	if (r == 0 && o.state_dir)
		r = dmrepl_migrate_set_state_dir(m, o.state_dir);
	if (r == 0 && o.transport)
		r = dmrepl_migrate_set_transport(m, o.transport);
	if (r == 0 && o.remote_dmrepl)
		r = dmrepl_migrate_set_remote_command(m, o.remote_dmrepl);
	if (r == 0 && o.remote_state_dir)
		r = dmrepl_migrate_set_remote_state_dir(m, o.remote_state_dir);
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: %s", o.from, strerror(-r));
		dmrepl_migrate_unref(m);
		return r == -EOPNOTSUPP ? EXIT_USAGE : EXIT_FAILURE_OP;
	}
	tool_catch_signals();
	signal(SIGPIPE, SIG_IGN);	/* a far side that goes away: EPIPE */
	p = progress_new(o.json ? PROGRESS_JSON : o.quiet ? PROGRESS_QUIET : PROGRESS_AUTO, subcmd);
	r = dmrepl_migrate_start(m);
	for (unsigned int n = 0; r == 0; n++) {
		dmrepl_migrate_get_progress(m, &pr);
		if (pr.finished)
			break;
		if (n % 5 == 0) {
			snprintf(what, sizeof(what), "%s %u", phase_name(pr.phase), pr.round);
			progress_update(p, what, pr.done_bytes, pr.total_bytes);
		}
		if (tool_interrupted && !cancelled) {
			dmrepl_migrate_cancel(m);
			cancelled = true;
		}
		nanosleep(&tick, NULL);
	}
	if (r == 0)
		r = dmrepl_migrate_wait(m, &res);
	progress_free(p);
	dmrepl_migrate_unref(m);
	rc = r == 0 ? EXIT_OK : r == -EAGAIN ? EXIT_NOT_CONVERGED
		: r == -ECANCELED && tool_interrupted ? 128 + tool_interrupted : EXIT_FAILURE_OP;
	if (r < 0 && r != -EAGAIN)
		tool_fail_r(subcmd, r, "%s was not migrated: %s; it runs as it was", o.from,
			    strerror(-r));
	else if (r == -EAGAIN)
		tool_note_errno(r);
	if (o.json)
		print_result(&o, &res, r, rc);
	else if (!o.quiet && r == 0)
		printf("%s migrated to %s in %u rounds (%" PRIu64 " bytes), suspended %" PRIu64
		       " ms\n", o.from, res.dst_lv, res.nr_rounds, res.total_bytes,
		       res.suspended_ms);
	return rc;
}
