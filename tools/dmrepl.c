/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl - command-line front end of libdmrepl.
 *
 * Only command-line handling lives here: each subcommand parses its
 * options and calls the library.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "dmrepl.h"
#include "json.h"

const char *program_name = "dmrepl";

static const struct subcommand subcommands[] = {
	{ "ls", "list the thin devices of a pool", cmd_ls },
	{ "delta", "show the blocks that differ between two thin devices", cmd_delta },
	{ "copy", "copy extents, or a whole device, from one device or file to another", cmd_copy },
	{ "verify", "compare two devices by hashing, whole or over extents", cmd_verify },
	{ "snapshot", "take a consistent snapshot of an active thin device", cmd_snapshot },
	{ "replicate", "replicate a thin snapshot into another pool, in full or incrementally", cmd_replicate },
	{ "replicas", "list the replicas a destination pool holds", cmd_replicas },
	{ "send", "write a snapshot, or its delta from a base, as a stream", cmd_send },
	{ "receive", "apply a stream to a pool, all or nothing", cmd_receive },
	{ "recover", "resolve what a killed dmrepl left on a pool", cmd_recover },
	{ "sync", "snapshot a volume, replicate it, keep the newest N", cmd_sync },
	{ "prune", "apply a sync job's retention", cmd_prune },
	{ "migrate", "move a volume to another pool while it is in use", cmd_migrate },
	{ "serve", "the receive side of a receive-only ssh key", cmd_serve },
	{ "help", "show help for dmrepl or one subcommand", cmd_help },
	{ "version", "print the version", cmd_version },
};

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		if (strcmp(subcommands[i].name, name) == 0)
			return &subcommands[i];
	return NULL;
}

static void vreport(const char *subcmd, const char *fmt, va_list ap)
{
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	tool_note_error(text);
	if (subcmd)
		fprintf(stderr, "%s %s: %s\n", program_name, subcmd, text);
	else
		fprintf(stderr, "%s: %s\n", program_name, text);
}

/* --json among the subcommand's arguments (before a "--"). */
static bool wants_json(int argc, char *argv[])
{
	for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
		if (strcmp(argv[i], "--json") == 0 || strcmp(argv[i], "-j") == 0)
			return true;
	return false;
}

void tool_error(const char *subcmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(subcmd, fmt, ap);
	va_end(ap);
}

int tool_usage_error(const char *subcmd, const char *fmt, ...)
{
	va_list ap;

	tool_note_errno(-EINVAL);	/* the JSON result's "errno" */
	va_start(ap, fmt);
	vreport(subcmd, fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s%s%s --help' for more information.\n",
		program_name, subcmd ? " " : "", subcmd ? subcmd : "");
	return EXIT_USAGE;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: %s [options] SUBCOMMAND [subcommand options]\n"
		"\n"
		"Replicate device-mapper thin-pool snapshots by shipping only the\n"
		"blocks that changed.\n"
		"\n"
		"Options:\n"
		"  -v, --verbose    log more (repeat for debug); DMREPL_LOG overrides\n"
		"  -q, --quiet      no progress display\n"
		"  -n, --dry-run    say what would be done, change nothing; the\n"
		"                   commands that only read (ls, delta, replicas,\n"
		"                   verify, version) take it and change nothing anyway\n"
		"  -j, --json       JSON Lines on standard output (see dmrepl(8))\n"
		"                   (all four also among a subcommand's options)\n"
		"  -h, --help       show this help and exit\n"
		"  -V, --version    print the version and exit\n"
		"\n"
		"Subcommands:\n",
		program_name);
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(out, "  %-10s %s\n", subcommands[i].name,
			subcommands[i].summary);
	fprintf(out,
		"\n"
		"Run '%s SUBCOMMAND --help' for a subcommand's options.\n"
		"Exit status: 0 success, 1 the operation failed, 2 bad usage.\n"
		"See dmrepl(8) for details.\n",
		program_name);
}

/* help's own help: "help --help" and "help help" */
static int help_usage(void)
{
	printf("Usage: %s help [SUBCOMMAND]\n\n"
	       "Show the usage and the subcommands, or one subcommand's "
	       "help\n(the same as %s SUBCOMMAND --help).\n",
	       program_name, program_name);
	return EXIT_OK;
}

int cmd_help(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	const struct subcommand *sc;
	char *sub_argv[] = { NULL, (char *)"--help", NULL };
	int n = 1;

	/*
	 * The options every command takes change nothing here: help writes
	 * nothing, shows no progress, logs nothing, and prints text.
	 */
	static const char *const shared[] = {
		"-n", "--dry-run", "-q", "--quiet", "-v", "--verbose", "-j", "--json",
	};

	for (int i = 1; i < argc; i++) {
		bool skip = false;

		for (size_t k = 0; k < sizeof(shared) / sizeof(shared[0]); k++)
			skip = skip || strcmp(argv[i], shared[k]) == 0;
		if (!skip)
			argv[n++] = argv[i];
	}
	argc = n;
	if (argc < 2) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc > 2)
		return tool_usage_error("help", "too many arguments");
	/* help's own help */
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
		return help_usage();

	sc = find_subcommand(argv[1]);
	if (!sc)
		return tool_usage_error(NULL, "unknown subcommand '%s'", argv[1]);
	if (sc->run == cmd_help)
		return help_usage();
	sub_argv[0] = argv[1];
	optind = 0;
	return sc->run(ctx, 2, sub_argv);
}

int cmd_version(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool json = false;
	int c;

	while ((c = tool_getopt(argc, argv, "jh", longopts)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			printf("Usage: %s version [--json]\n\n"
			       "Print the versions of dmrepl and libdmrepl.\n\n"
			       "Options:\n"
			       "  -j, --json    {\"type\":\"result\",\"ok\":true,\"version\":...,\n"
			       "                \"libdmrepl\":...}\n"
			       "  -h, --help    show this help\n\n"
			       "-n/--dry-run is accepted: nothing changes anyway.\n",
			       program_name);
			return EXIT_OK;
		default:
			return tool_usage_error("version", "unrecognized option");
		}
	}
	if (optind < argc)
		return tool_usage_error("version", "unexpected argument '%s'", argv[optind]);

	if (json) {
		struct json j;

		tool_json_result_begin(&j, stdout, true);
		json_string(&j, "version", PACKAGE_VERSION);
		json_string(&j, "libdmrepl", dmrepl_version());
		json_close_object(&j);
		json_end(&j);
		tool_json_result_printed();
	} else {
		printf("%s %s (libdmrepl %s)\n", program_name, PACKAGE_VERSION,
		       dmrepl_version());
	}
	return EXIT_OK;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const struct subcommand *sc;
	struct dmrepl_ctx *ctx = NULL;
	char **sub_argv = NULL;
	bool quiet = false, dry_run = false, json = false;
	int verbose = 0, extra;
	int c, r;

	/* '+' stops at the subcommand, so its options are its own. */
	while ((c = getopt_long(argc, argv, "+hVvqnj", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("%s %s\n", program_name, PACKAGE_VERSION);
			return EXIT_OK;
		case 'v':
			verbose++;
			break;
		case 'q':
			quiet = true;
			break;
		case 'n':
			dry_run = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			return tool_usage_error(NULL, "unrecognized option");
		}
	}

	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}

	sc = find_subcommand(argv[optind]);
	if (!sc)
		return tool_usage_error(NULL, "unknown subcommand '%s'", argv[optind]);

	r = dmrepl_new(&ctx);
	if (r < 0) {
		tool_error(NULL, "cannot create library context: %s", strerror(-r));
		return EXIT_FAILURE_OP;
	}
	/*
	 * The library's warnings matter to an operator (a stale metadata
	 * snapshot released, say), so show them unless DMREPL_LOG says
	 * otherwise; -v adds info, -vv debug.
	 */
	tool_setup_log(ctx);
	if (!getenv("DMREPL_LOG"))
		dmrepl_set_log_priority(ctx, verbose > 1 ? LOG_DEBUG :
					     verbose ? LOG_INFO : LOG_WARNING);

	argc -= optind;
	argv += optind;
	/* -q, -n and -j before the subcommand: as if given among its options */
	extra = (quiet ? 1 : 0) + (dry_run ? 1 : 0) + (json ? 1 : 0);
	if (extra && sc->run != cmd_help) {
		int n = 1;

		sub_argv = calloc((size_t)argc + (size_t)extra + 1, sizeof(*sub_argv));
		if (!sub_argv) {
			dmrepl_unref(ctx);
			return EXIT_FAILURE_OP;
		}
		sub_argv[0] = argv[0];
		if (quiet)
			sub_argv[n++] = (char *)"--quiet";
		if (dry_run)
			sub_argv[n++] = (char *)"--dry-run";
		if (json)
			sub_argv[n++] = (char *)"--json";
		memcpy(sub_argv + n, argv + 1, (size_t)(argc - 1) * sizeof(*argv));
		argv = sub_argv;
		argc += extra;
	}
	optind = 0;	/* glibc: reinitialise getopt for the subcommand */
	r = sc->run(ctx, argc, argv);
	if (tool_json_requested || wants_json(argc, argv))
		tool_json_failure(r);

	free(sub_argv);
	dmrepl_unref(ctx);
	return r;
}
