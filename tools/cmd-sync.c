/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl sync and dmrepl prune: replication that keeps happening. One
 * sync run of a job takes an LVM snapshot of the origin (tagged as the
 * job's), replicates it from the newest base both sides hold (or in full,
 * saying why), tags the replica as the job's, then prunes: the N newest
 * of the job's snapshots stay at the source, the N newest of its replicas
 * at the destination. Only LVs with the job's tag are ever removed, and
 * never the newest common base. Two runs of one job never overlap.
 *
 * A job comes from the command line (--from, --to-pool/--to) or from the
 * configuration (tools/conf.c): dmrepl sync JOB, dmrepl sync --all.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf.h"
#include "dmrepl.h"
#include "json.h"
#include "libdmrepl-private.h"
#include "progress.h"
#include "sync.h"

/* Another run of the job holds it and --no-wait was given (sysexits' EX_TEMPFAIL). */
#define EXIT_BUSY 75

struct sync_opts {
	const char *subcmd;
	const char *config_dir;
	const char *job_name;		/* JOB, or --job for the command-line form */
	bool all, check_config, no_wait, dry_run, json, quiet, udev_jobs;
	const char *generate_dir;	/* --generate-units DIR */
	const char *unit_dir;		/* --unit-dir: where the timer template is */
	struct config_job cli;		/* the command-line form's job */
	char cli_name[200];
};

static void usage_sync(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s sync --from VG/LV --to-pool VG/POOL | --to ssh://[USER@]HOST/VG/POOL\n"
		"             [--keep N] [--keep-destination N] [--bwlimit RATE] [--compress]\n"
		"             [--job NAME] [options]\n"
		"  %1$s sync JOB [--config DIR] [options]\n"
		"  %1$s sync --all [--config DIR] [options]\n"
		"  %1$s sync --check-config [--config DIR]\n"
		"\n"
		"Take an LVM snapshot of the origin, replicate it from the newest base\n"
		"both sides hold (in full when there is none), then prune: keep the N\n"
		"newest of the snapshots this job made of the origin, and the N newest\n"
		"of its replicas at the destination. Only LVs tagged as the job's\n"
		"(dmrepl.sync:JOB) are removed, never the newest common base. A far\n"
		"destination (--to) prunes its replicas itself once the new one is\n"
		"committed (receive --tag --keep; only intact ones of sources its key\n"
		"allows). Jobs are configured in DIR/jobs.d/JOB.conf (see\n"
		"dmrepl.conf(5)).\n"
		"\n"
		"Options:\n"
		"  -F, --from VG/LV        the origin, a thin LV\n"
		"  -t, --to-pool VG/POOL   the destination pool on this host\n"
		"      --to URL            the destination pool on another host\n"
		"  -k, --keep N            snapshots kept at the source (default 7)\n"
		"      --keep-destination N  replicas kept at the destination (default: --keep)\n"
		"      --bwlimit RATE      at most RATE bytes per second (K, M, G, T)\n"
		"  -z, --compress          compress the stream (with --to)\n"
		"      --job NAME          the command-line job's name (its tag); default\n"
		"                          from the origin and the destination\n"
		"      --state-dir DIR     lineage and job locks (default /var/lib/dmrepl)\n"
		"  -c, --config DIR        the configuration (default /etc/dmrepl)\n"
		"  -a, --all               every configured job, one after the other\n"
		"      --check-config      check the configuration; run nothing\n"
		"      --no-wait           when another run of the job is under way, exit\n"
		"                          75 at once instead of waiting for it\n"
		"  -n, --dry-run           say what would be snapshotted, replicated and\n"
		"                          pruned; change nothing\n"
		"  -j, --json              JSON Lines: progress, then one result\n"
		"  -q, --quiet             no progress bar, no summary\n"
		"      --generate-units DIR  (the systemd generator) a timer for each\n"
		"                          job with a schedule, enabled, in DIR\n"
		"      --udev-jobs         (the udev rule) the jobs this event triggers\n"
		"  -h, --help              show this help\n"
		"\n"
		"A job with trigger = snapshot replicates the newest snapshot of the\n"
		"origin that it did not make, and takes none itself.\n"
		"\n"
		"Exit status: 0 synced; 1 failed (the message says where; the next run\n"
		"recovers); 2 usage, or the configuration is wrong; 75 the job is\n"
		"running and --no-wait was given; 128+N interrupted by signal N.\n",
		program_name);
}

static void usage_prune(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s prune JOB [--config DIR] [--dry-run] [--json]\n"
		"  %1$s prune --from VG/LV --to-pool VG/POOL [--keep N]\n"
		"              [--keep-destination N] [--job NAME] [--dry-run] [--json]\n"
		"\n"
		"Apply a sync job's retention without syncing: keep the N newest of the\n"
		"snapshots the job made of the origin and of its replicas, never the\n"
		"newest common base, and nothing the job did not make.\n"
		"\n"
		"Options:\n"
		"  -F, --from VG/LV        the origin, a thin LV\n"
		"  -t, --to-pool VG/POOL   the destination pool on this host\n"
		"      --to URL            the destination pool on another host (only\n"
		"                          the source's snapshots are pruned here: the\n"
		"                          far side prunes its replicas at each sync)\n"
		"  -k, --keep N            snapshots kept at the source (default 7)\n"
		"      --keep-destination N  replicas kept at the destination (default: --keep)\n"
		"      --job NAME          the command-line job's name (its tag)\n"
		"      --state-dir DIR     job locks (default /var/lib/dmrepl)\n"
		"  -c, --config DIR        the configuration (default /etc/dmrepl)\n"
		"      --no-wait           exit 75 at once when the job is running\n"
		"  -n, --dry-run           say what would be removed; remove nothing\n"
		"  -j, --json              print the result as JSON\n"
		"  -q, --quiet             print nothing but errors\n"
		"  -h, --help              show this help\n"
		"\n"
		"Exit status: 0 pruned; 1 failed; 2 usage or the configuration is wrong;\n"
		"75 the job is running and --no-wait was given.\n",
		program_name);
}

enum { OPT_TO = 256, OPT_KEEP_DST, OPT_BWLIMIT, OPT_JOB, OPT_STATE_DIR,
       OPT_CHECK, OPT_NO_WAIT, OPT_GENERATE, OPT_UNIT_DIR, OPT_UDEV_JOBS };

static int parse_options(int argc, char *argv[], struct sync_opts *o, bool prune)
{
	static const struct option longopts[] = {
		{ "from", required_argument, NULL, 'F' },
		{ "to-pool", required_argument, NULL, 't' },
		{ "to", required_argument, NULL, OPT_TO },
		{ "keep", required_argument, NULL, 'k' },
		{ "keep-destination", required_argument, NULL, OPT_KEEP_DST },
		{ "bwlimit", required_argument, NULL, OPT_BWLIMIT },
		{ "compress", no_argument, NULL, 'z' },
		{ "job", required_argument, NULL, OPT_JOB },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "config", required_argument, NULL, 'c' },
		{ "all", no_argument, NULL, 'a' },
		{ "check-config", no_argument, NULL, OPT_CHECK },
		{ "no-wait", no_argument, NULL, OPT_NO_WAIT },
		{ "generate-units", required_argument, NULL, OPT_GENERATE },
		{ "unit-dir", required_argument, NULL, OPT_UNIT_DIR },
		{ "udev-jobs", no_argument, NULL, OPT_UDEV_JOBS },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct config_job *j = &o->cli;
	uint64_t v;
	int c, r;

	j->s.compress = -1;
	while ((c = tool_getopt(argc, argv, "F:t:k:zc:anjqh", longopts)) != -1) {
		switch (c) {
		case 'F': j->origin = optarg; break;
		case 't': j->to_pool = optarg; break;
		case OPT_TO: j->to = optarg; break;
		case 'k':
		case OPT_KEEP_DST:
			r = tool_option_number(o->subcmd, c == 'k' ? "--keep" : "--keep-destination",
					       optarg, 1, CONFIG_KEEP_MAX, &v);
			if (r)
				return r;
			*(c == 'k' ? &j->s.keep : &j->s.keep_destination) = (unsigned int)v;
			break;
		case OPT_BWLIMIT:
			r = tool_option_size(o->subcmd, "--bwlimit", optarg, 1, UINT64_MAX, 1,
					     &j->s.bwlimit);
			if (r)
				return r;
			break;
		case 'z': j->s.compress = 1; break;
		case OPT_JOB: o->job_name = optarg; break;
		case OPT_STATE_DIR: j->s.state_dir = optarg; break;
		case 'c': o->config_dir = optarg; break;
		case 'a': o->all = true; break;
		case OPT_CHECK: o->check_config = true; break;
		case OPT_NO_WAIT: o->no_wait = true; break;
		case OPT_GENERATE: o->generate_dir = optarg; break;
		case OPT_UNIT_DIR: o->unit_dir = optarg; break;
		case OPT_UDEV_JOBS: o->udev_jobs = true; break;
		case 'n': o->dry_run = true; break;
		case 'j': o->json = true; break;
		case 'q': o->quiet = true; break;
		case 'h': (prune ? usage_prune : usage_sync)(stdout); return -1;
		default: return tool_usage_error(o->subcmd, "unrecognized option");
		}
	}
	if (optind < argc && !j->origin && !o->all && !o->check_config)
		o->job_name = argv[optind++];
	if (optind < argc)
		return tool_usage_error(o->subcmd, "unexpected argument '%s'", argv[optind]);
	if ((o->check_config || o->generate_dir || o->udev_jobs) && prune)
		return tool_usage_error(o->subcmd, "--check-config, --generate-units and "
					"--udev-jobs are dmrepl sync's");
	if (o->generate_dir || o->udev_jobs)
		return j->origin || o->all || o->job_name || o->check_config ||
		       (o->generate_dir && o->udev_jobs) ?
			tool_usage_error(o->subcmd, "--generate-units and --udev-jobs take "
					 "nothing else") : 0;
	if (o->check_config)
		return j->origin || o->all || o->job_name ?
			tool_usage_error(o->subcmd, "--check-config takes no job") : 0;
	if (o->all && (j->origin || o->job_name))
		return tool_usage_error(o->subcmd, "--all takes no job and no --from");
	if (o->all && prune)
		return tool_usage_error(o->subcmd, "prune takes one job");
	if (j->origin) {
		if (!!j->to_pool == !!j->to)
			return tool_usage_error(o->subcmd, "--from needs one of --to-pool and --to");
		if (!strchr(j->origin, '/'))
			return tool_usage_error(o->subcmd, "--from: '%s' is not VG/LV", j->origin);
		if (j->to_pool && !strchr(j->to_pool, '/'))
			return tool_usage_error(o->subcmd, "--to-pool: '%s' is not VG/POOL",
						j->to_pool);
		if (j->to && strncmp(j->to, "ssh://", 6) != 0)
			return tool_usage_error(o->subcmd, "--to: '%s' is not ssh://[USER@]HOST/VG/POOL",
						j->to);
		if (j->s.compress > 0 && !j->to)
			return tool_usage_error(o->subcmd, "--compress goes with --to");
		return 0;
	}
	if (j->to_pool || j->to || j->s.keep || j->s.keep_destination || j->s.bwlimit ||
	    j->s.compress > 0)
		return tool_usage_error(o->subcmd, "--to-pool, --to, --keep, --bwlimit and "
					"--compress go with --from (a configured job has its own)");
	if (!o->all && !o->job_name)
		return tool_usage_error(o->subcmd, "give a JOB, --all or --from");
	return 0;
}

/* ---- one run ---- */

/* Two runs of one job never overlap: an flock on STATE_DIR/sync/JOB.lock. */
static int lock_job(const char *subcmd, const struct config_job *j, bool no_wait,
		    int *ret_fd)
{
	const char *state = j->s.state_dir ? j->s.state_dir : dmrepl_state_dir_default();
	char path[4096], pid[32];
	int fd;

	snprintf(path, sizeof(path), "%s/sync", state);
	if (mkdir(state, 0700) < 0 && errno != EEXIST) {
		tool_fail_r(subcmd, -errno, "%s: %s", state, strerror(errno));
		return EXIT_FAILURE_OP;
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		tool_fail_r(subcmd, -errno, "%s: %s", path, strerror(errno));
		return EXIT_FAILURE_OP;
	}
	snprintf(path, sizeof(path), "%s/sync/%s.lock", state, j->name);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		tool_fail_r(subcmd, -errno, "%s: %s", path, strerror(errno));
		return EXIT_FAILURE_OP;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		if (no_wait) {
			tool_note_errno(-EBUSY);
			tool_error(subcmd, "job %s is running (pid %s); not waiting (--no-wait)",
				   j->name, pid[0] ? pid : "?");
			close(fd);
			return EXIT_BUSY;
		}
		tool_error(subcmd, "job %s is running (pid %s): waiting for it", j->name,
			   pid[0] ? pid : "?");
		if (flock(fd, LOCK_EX) < 0) {
			tool_fail_r(subcmd, -errno, "%s: %s", path, strerror(errno));
			close(fd);
			return tool_interrupted ? tool_interrupted_exit(subcmd) : EXIT_FAILURE_OP;
		}
	}
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	/* the pid is for the messages of a run that waits: best effort */
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, strlen(pid), 0) < 0)
		pid[0] = '\0';
	*ret_fd = fd;
	return 0;
}

/* The source pool (dm name) and thin id of snapshot @lv. */
static int source_of(struct dmrepl_ctx *ctx, const char *subcmd,
		     const struct dmrepl_lvm_lv *lv, char *pool, size_t size)
{
	char vg_pool[300];
	const char *p = vg_pool;
	int r;

	snprintf(vg_pool, sizeof(vg_pool), "%s/%s", lv->vg, lv->pool_lv);
	r = tool_resolve_lvm_pool(ctx, subcmd, &p);
	if (r)
		return r;
	snprintf(pool, size, "%s", p);
	return 0;
}

/*
 * Replicate @snap as job @j's: the replica carries the job's @tag from
 * its commit on (its retention finds it by that), and a far destination
 * applies the job's retention there once the replica is committed.
 */
static int replicate(struct dmrepl_ctx *ctx, const struct sync_opts *o,
		     const struct config_job *j, const struct dmrepl_lvm_lv *snap,
		     const char *tag, struct sync_result *res)
{
	char src_pool[256], dst_pool[256] = "", snap_lv[300];
	struct dmrepl_replicate *rep = NULL;
	struct dmrepl_replicate_result rr = { 0 };
	struct progress *p = NULL;
	const char *dst = j->to;
	int cls, lvl, r;

	r = source_of(ctx, o->subcmd, snap, src_pool, sizeof(src_pool));
	if (r)
		return -EINVAL;
	if (j->to_pool) {
		dst = j->to_pool;
		if (tool_resolve_lvm_pool(ctx, o->subcmd, &dst))
			return -EINVAL;
		snprintf(dst_pool, sizeof(dst_pool), "%s", dst);
		dst = dst_pool;
	}
	snprintf(snap_lv, sizeof(snap_lv), "%s/%s", snap->vg, snap->lv);
	r = dmrepl_replicate_new(ctx, src_pool, snap->thin_id, dst, &rep);
	if (r == 0)
		r = dmrepl_replicate_set_snap_lv(rep, snap_lv);
	if (r == 0)
		r = dmrepl_replicate_set_size(rep, snap->size_bytes);
	if (r == 0)
		r = dmrepl_replicate_set_replica_tag(rep, tag);
	if (r == 0 && j->to)
		r = dmrepl_replicate_set_remote_keep(rep, j->s.keep_destination);
	if (r == 0 && j->s.state_dir)
		r = dmrepl_replicate_set_state_dir(rep, j->s.state_dir);
	if (r == 0 && j->s.bwlimit)
		r = dmrepl_replicate_set_bwlimit(rep, j->s.bwlimit);
	if (r == 0 && j->s.ionice && tool_parse_ionice(j->s.ionice, &cls, &lvl) == 0)
		r = dmrepl_replicate_set_ioprio(rep, cls, lvl);
	if (r == 0 && j->to && j->s.compress > 0)
		r = dmrepl_replicate_set_compression(rep, 3);
	if (r == 0 && j->to && j->s.transport)
		r = dmrepl_replicate_set_transport(rep, j->s.transport);
	if (r == 0 && j->to && j->s.remote_dmrepl)
		r = dmrepl_replicate_set_remote_command(rep, j->s.remote_dmrepl);
	if (r == 0 && o->dry_run && !j->to)
		r = dmrepl_replicate_set_dry_run(rep, 1);
	if (r < 0) {
		tool_fail_r(o->subcmd, r, "%s: cannot set up its replication: %s", snap_lv,
			    strerror(-r));
		goto out;
	}
	p = progress_new(o->json ? PROGRESS_JSON : o->quiet ? PROGRESS_QUIET : PROGRESS_AUTO,
			 o->subcmd);
	r = dmrepl_snapshot_replicate(rep);
	if (r == 0) {
		tool_replicate_watch(rep, p);
		r = dmrepl_replicate_wait(rep, &rr);
	}
	progress_free(p);
	if (r < 0) {
		tool_fail_r(o->subcmd, r, "%s was not replicated to %s: %s", snap_lv,
			    j->to ? j->to : j->to_pool, strerror(-r));
		goto out;
	}
	snprintf(res->replica, sizeof(res->replica), "%s", rr.dst_lv);
	res->base = rr.full ? DMREPL_THIN_ID_ANY : rr.base_thin_id;
	res->full = rr.full;
	res->already = rr.already_replicated;
	res->copied = rr.copied_bytes;
	res->discarded = rr.discarded_bytes;
	res->zeroed = rr.zeroed_bytes;
	for (size_t i = 0; r == 0 && dmrepl_replicate_get_pruned(rep, i); i++) {
		char **l = realloc(res->pruned_dst, (res->nr_pruned_dst + 1) * sizeof(*l));

		if (!l || !(l[res->nr_pruned_dst] = strdup(dmrepl_replicate_get_pruned(rep, i)))) {
			if (l)
				res->pruned_dst = l;
			r = -ENOMEM;
			break;
		}
		res->pruned_dst = l;
		res->nr_pruned_dst++;
	}
out:
	dmrepl_replicate_unref(rep);
	return r;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A snapshot name: LV-sync-YYYYmmdd-HHMMSS (UTC), sorting by time. */
static void snapshot_name(const char *origin_lv, char *buf, size_t size)
{
	time_t now = time(NULL);
	char stamp[32];
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
	snprintf(buf, size, "%.90s-sync-%s", origin_lv, stamp);
}

static int sync_job(struct dmrepl_ctx *ctx, const struct sync_opts *o,
		    const struct config_job *j, bool prune_only, struct sync_result *res)
{
	char tag[128], vg[128], name[128], full[300];
	const char *origin;
	struct dmrepl_lvm_lv snap;
	double start = now_seconds();
	int lock = -1, r;

	r = lock_job(o->subcmd, j, o->no_wait, &lock);
	if (r)
		return r;
	snprintf(tag, sizeof(tag), SYNC_TAG_PREFIX "%s", j->name);
	sync_split_vg_lv(j->origin, vg, sizeof(vg), &origin);
	if (!prune_only && j->trigger == TRIGGER_SNAPSHOT) {
		/*
		 * Started because a snapshot of the origin was taken: that
		 * one is replicated, and none is made (making one would
		 * trigger the job again).
		 */
		r = sync_newest_taken(ctx, vg, origin, tag, &snap);
		if (r == -ENOENT) {
			r = 0;
			if (!o->quiet && !o->json)
				printf("job %s: no snapshot of %s to replicate\n", j->name,
				       j->origin);
		} else if (r < 0) {
			tool_fail_r(o->subcmd, r, "%s: cannot list its snapshots: %s",
				    j->origin, strerror(-r));
			goto out;
		} else {
			snprintf(res->snapshot, sizeof(res->snapshot), "%s/%s", snap.vg, snap.lv);
			/*
			 * A snapshot taken while this run replicates starts no
			 * second run (systemd folds the trigger into this one):
			 * so look again when done, until the newest is there.
			 */
			for (unsigned int round = 0; !o->dry_run && round < 16; round++) {
				struct dmrepl_lvm_lv again;

				r = replicate(ctx, o, j, &snap, tag, res);
				if (r < 0)
					goto out;
				if (sync_newest_taken(ctx, vg, origin, tag, &again) < 0 ||
				    again.thin_id == snap.thin_id)
					break;
				snap = again;
				snprintf(res->snapshot, sizeof(res->snapshot), "%s/%s", snap.vg,
					 snap.lv);
			}
		}
	} else if (!prune_only && !o->dry_run &&
		   (r = sync_unchanged(ctx, o->subcmd, j, tag, &snap, res->replica,
				  sizeof(res->replica))) != 0) {
		if (r < 0) {
			tool_fail_r(o->subcmd, r, "%s: cannot compare it with its last "
				    "snapshot: %s", j->origin, strerror(-r));
			goto out;
		}
		/* nothing new: no snapshot to take, nothing to send */
		snprintf(res->snapshot, sizeof(res->snapshot), "%s/%s", snap.vg, snap.lv);
		res->already = true;
		res->unchanged = true;
		r = 0;
	} else if (!prune_only) {
		snapshot_name(origin, name, sizeof(name));
		snprintf(full, sizeof(full), "%s/%s", vg, name);
		if (o->dry_run) {
			r = dmrepl_lvm_snapshot_dry_run(ctx, j->origin, name, full, sizeof(full));
			if (r < 0) {
				tool_fail_r(o->subcmd, r, "%s: no snapshot would be made: %s",
					    j->origin, strerror(-r));
				goto out;
			}
			snprintf(res->snapshot, sizeof(res->snapshot), "%s", full);
		} else {
			r = dmrepl_lvm_snapshot(ctx, j->origin, name, tag, &snap);
			if (r < 0) {
				tool_fail_r(o->subcmd, r, "%s: no snapshot made: %s", j->origin,
					    strerror(-r));
				goto out;
			}
			snprintf(res->snapshot, sizeof(res->snapshot), "%s/%s", snap.vg, snap.lv);
			r = replicate(ctx, o, j, &snap, tag, res);
			if (r < 0)
				goto out;	/* the snapshot stays: a base for the next run */
		}
	}
	r = sync_prune(ctx, j, tag, o->dry_run, res);
	if (r < 0)
		tool_fail_r(o->subcmd, r, "job %s: pruning failed: %s", j->name, strerror(-r));
out:
	res->seconds = now_seconds() - start;
	/* a waiting run must not name a pid that is gone */
	if (ftruncate(lock, 0) < 0) {
		/* best effort: the pid only ever shows in a message */
	}
	close(lock);
	return r < 0 ? EXIT_FAILURE_OP : 0;
}

/* ---- output ---- */

static void json_list(struct json *jo, const char *key, char **items, size_t n)
{
	json_open_array(jo, key);
	for (size_t i = 0; i < n; i++)
		json_string(jo, NULL, items[i]);
	json_close_array(jo);
}

static void json_job(struct json *jo, const struct config_job *j,
		     const struct sync_result *res, int rc)
{
	json_string(jo, "job", j->name);
	json_string(jo, "origin", j->origin);
	json_string(jo, j->to ? "to" : "to_pool", j->to ? j->to : j->to_pool);
	if (res->snapshot[0])
		json_string(jo, "snapshot", res->snapshot);
	if (res->replica[0])
		json_string(jo, "replica", res->replica);
	if (res->unchanged)
		json_bool(jo, "unchanged", true);
	if (rc == 0 && res->snapshot[0] && !res->already) {
		json_bool(jo, "full", res->full);
		if (!res->full && res->base != DMREPL_THIN_ID_ANY)
			json_u64(jo, "base", res->base);
		json_u64(jo, "copied_bytes", res->copied);
		json_u64(jo, "discarded_bytes", res->discarded);
		json_u64(jo, "zeroed_bytes", res->zeroed);
	}
	json_list(jo, "pruned_source", res->pruned_src, res->nr_pruned_src);
	json_list(jo, "pruned_destination", res->pruned_dst, res->nr_pruned_dst);
	json_u64(jo, "milliseconds", (uint64_t)(res->seconds * 1000));
}

static void print_text(const struct sync_opts *o, const struct config_job *j,
		       const struct sync_result *res)
{
	const char *would = o->dry_run ? "would be " : "";

	if (res->snapshot[0] && o->dry_run)
		printf("job %s: %s would be snapshotted as %s and replicated to %s\n",
		       j->name, j->origin, res->snapshot, j->to ? j->to : j->to_pool);
	else if (res->unchanged)
		printf("job %s: %s unchanged since %s (replicated as %s)\n", j->name,
		       j->origin, res->snapshot, res->replica);
	else if (res->snapshot[0])
		printf("job %s: %s replicated as %s (%s)\n", j->name, res->snapshot,
		       res->replica[0] ? res->replica : j->to,
		       res->already ? "already there" : res->full ? "full" : "incremental");
	for (size_t i = 0; i < res->nr_pruned_src; i++)
		printf("job %s: %s %sremoved (source retention: %u)\n", j->name,
		       res->pruned_src[i], would, j->s.keep);
	for (size_t i = 0; i < res->nr_pruned_dst; i++)
		printf("job %s: %s %sremoved (destination retention: %u)\n", j->name,
		       res->pruned_dst[i], would, j->s.keep_destination);
}

static void result_free(struct sync_result *res)
{
	for (size_t i = 0; i < res->nr_pruned_src; i++)
		free(res->pruned_src[i]);
	for (size_t i = 0; i < res->nr_pruned_dst; i++)
		free(res->pruned_dst[i]);
	free(res->pruned_src);
	free(res->pruned_dst);
}

/* ---- the command ---- */

static void report_config(const char *msg, void *data)
{
	tool_error(data, "%s", msg);
}

/* The command-line job's default name, from origin and destination. */
static void cli_job_name(const struct config_job *j, char *buf, size_t size)
{
	const char *dst = j->to ? j->to + strlen("ssh://") : j->to_pool;

	snprintf(buf, size, "%s-to-%s", j->origin, dst);
	for (char *c = buf; *c; c++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.", *c))
			*c = '-';
}

static int run(struct dmrepl_ctx *ctx, int argc, char *argv[], bool prune_only)
{
	struct sync_opts o = { .subcmd = prune_only ? "prune" : "sync" };
	struct config cfg = { 0 };
	const struct config_job **jobs = NULL;
	struct sync_result *results = NULL;
	int *codes = NULL;
	size_t nr_jobs = 0, nr_run = 0;
	struct json jo;
	int r, rc = EXIT_OK;

	r = parse_options(argc, argv, &o, prune_only);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (!o.config_dir)
		o.config_dir = getenv("DMREPL_CONFIG_DIR") ? getenv("DMREPL_CONFIG_DIR")
							   : CONFIG_DIR_DEFAULT;
	if (o.cli.origin) {
		/* the command-line form: one job, the built-in defaults */
		o.cli.name = o.cli_name;
		if (o.job_name && !config_job_name_valid(o.job_name))
			return tool_usage_error(o.subcmd, "--job: '%s' is not a job name "
						"(letters, digits, '_', '-', '.')", o.job_name);
		if (o.job_name)
			snprintf(o.cli_name, sizeof(o.cli_name), "%s", o.job_name);
		else
			cli_job_name(&o.cli, o.cli_name, sizeof(o.cli_name));
		if (!o.cli.s.keep)
			o.cli.s.keep = 7;
		if (!o.cli.s.keep_destination)
			o.cli.s.keep_destination = o.cli.s.keep;
		jobs = calloc(1, sizeof(*jobs));
		if (!jobs)
			return EXIT_FAILURE_OP;
		jobs[nr_jobs++] = &o.cli;
	} else {
		r = config_load(&cfg, o.config_dir, report_config, (void *)o.subcmd);
		if (r == -EINVAL) {
			tool_note_error(cfg.error);
			tool_note_errno(r);
			if (o.check_config)
				fprintf(stderr, "%s: %u error%s in %s\n", program_name,
					cfg.nr_errors, cfg.nr_errors == 1 ? "" : "s", o.config_dir);
			rc = EXIT_USAGE;
			goto out;
		}
		if (r < 0) {
			tool_fail_r(o.subcmd, r, "%s: %s", o.config_dir, strerror(-r));
			rc = EXIT_FAILURE_OP;
			goto out;
		}
		if (o.generate_dir) {
			rc = sync_generate_units(&cfg, o.generate_dir,
					    o.unit_dir ? o.unit_dir : "/lib/systemd/system");
			goto out;
		}
		if (o.udev_jobs) {
			rc = sync_udev_jobs(&cfg);
			goto out;
		}
		if (o.check_config) {
			if (o.json) {
				tool_json_result_begin(&jo, stdout, true);
				json_string(&jo, "config", o.config_dir);
				json_open_array(&jo, "jobs");
				for (size_t i = 0; i < cfg.nr_jobs; i++)
					json_string(&jo, NULL, cfg.jobs[i].name);
				json_close_array(&jo);
				json_close_object(&jo);
				json_end(&jo);
				tool_json_result_printed();
			} else {
				printf("%s: %zu job%s, no error\n", o.config_dir, cfg.nr_jobs,
				       cfg.nr_jobs == 1 ? "" : "s");
			}
			goto out;
		}
		jobs = calloc(cfg.nr_jobs ? cfg.nr_jobs : 1, sizeof(*jobs));
		if (!jobs) {
			rc = EXIT_FAILURE_OP;
			goto out;
		}
		for (size_t i = 0; i < cfg.nr_jobs; i++)
			if (o.all || !strcmp(cfg.jobs[i].name, o.job_name))
				jobs[nr_jobs++] = &cfg.jobs[i];
		if (!nr_jobs && !o.all) {
			tool_note_errno(-ENOENT);
			tool_error(o.subcmd, "no job %s in %s/jobs.d", o.job_name, o.config_dir);
			rc = EXIT_FAILURE_OP;
			goto out;
		}
	}

	tool_catch_signals();
	results = calloc(nr_jobs ? nr_jobs : 1, sizeof(*results));
	codes = calloc(nr_jobs ? nr_jobs : 1, sizeof(*codes));
	if (!results || !codes) {
		rc = EXIT_FAILURE_OP;
		goto out;
	}
	for (size_t i = 0; i < nr_jobs && !tool_interrupted; i++) {
		struct sync_result *res = &results[i];

		res->base = DMREPL_THIN_ID_ANY;
		codes[i] = sync_job(ctx, &o, jobs[i], prune_only, res);
		nr_run = i + 1;
		if (codes[i] && rc == EXIT_OK)
			rc = codes[i];
		if (!o.json && !o.quiet && codes[i] == 0) {
			print_text(&o, jobs[i], res);
			if (res->snapshot[0] && !o.dry_run && !res->already)
				progress_summary(stderr, res->copied, res->discarded,
						 res->zeroed, res->seconds);
		}
	}
	if (tool_interrupted)
		rc = tool_interrupted_exit(o.subcmd);
	if (o.json) {
		/* one result for the run, after the progress lines */
		tool_json_result_begin(&jo, stdout, rc == EXIT_OK);
		if (rc != EXIT_OK) {
			tool_json_error(&jo, -EIO);
			json_u64(&jo, "exit_status", (uint64_t)rc);
		}
		if (o.dry_run)
			json_bool(&jo, "dry_run", true);
		json_open_array(&jo, "jobs");
		for (size_t i = 0; i < nr_run; i++) {
			json_open_object(&jo, NULL);
			json_bool(&jo, "ok", codes[i] == 0);
			json_job(&jo, jobs[i], &results[i], codes[i]);
			json_close_object(&jo);
		}
		json_close_array(&jo);
		json_close_object(&jo);
		json_end(&jo);
		tool_json_result_printed();
	}
out:
	for (size_t i = 0; results && i < nr_run; i++)
		result_free(&results[i]);
	free(results);
	free(codes);
	free(jobs);
	config_free(&cfg);
	return rc;
}

int cmd_sync(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	return run(ctx, argc, argv, false);
}

int cmd_prune(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	return run(ctx, argc, argv, true);
}
