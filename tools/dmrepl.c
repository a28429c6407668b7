/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl - command-line front end of libdmrepl.
 *
 * Only command-line handling lives here: each subcommand parses its
 * options and calls the library.
 */
#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "dmrepl.h"

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
		"                   (both also among a subcommand's options)\n"
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

int cmd_help(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	const struct subcommand *sc;
	char *sub_argv[] = { NULL, (char *)"--help", NULL };

	if (argc < 2) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc > 2)
		return tool_usage_error("help", "too many arguments");
	/* help's own help */
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		printf("Usage: %s help [SUBCOMMAND]\n\n"
		       "Show the usage and the subcommands, or one subcommand's "
		       "help\n(the same as %s SUBCOMMAND --help).\n",
		       program_name, program_name);
		return EXIT_OK;
	}

	sc = find_subcommand(argv[1]);
	if (!sc)
		return tool_usage_error(NULL, "unknown subcommand '%s'", argv[1]);
	if (sc->run == cmd_help) {
		usage(stdout);
		return EXIT_OK;
	}
	sub_argv[0] = argv[1];
	optind = 0;
	return sc->run(ctx, 2, sub_argv);
}

int cmd_version(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = tool_getopt(argc, argv, "h", longopts)) != -1) {
		switch (c) {
		case 'h':
			printf("Usage: %s version\n\nPrint the versions of dmrepl and libdmrepl.\n",
			       program_name);
			return EXIT_OK;
		default:
			return tool_usage_error("version", "unrecognized option");
		}
	}
	if (optind < argc)
		return tool_usage_error("version", "unexpected argument '%s'", argv[optind]);

	printf("%s %s (libdmrepl %s)\n", program_name, PACKAGE_VERSION,
	       dmrepl_version());
	return EXIT_OK;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 },
	};
	const struct subcommand *sc;
	struct dmrepl_ctx *ctx = NULL;
	char **sub_argv = NULL;
	bool quiet = false;
	int verbose = 0;
	int c, r;

	/* '+' stops at the subcommand, so its options are its own. */
	while ((c = getopt_long(argc, argv, "+hVvq", longopts, NULL)) != -1) {
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
	/* -q before the subcommand: as if given among its options */
	if (quiet && sc->run != cmd_help) {
		sub_argv = calloc((size_t)argc + 2, sizeof(*sub_argv));
		if (!sub_argv) {
			dmrepl_unref(ctx);
			return EXIT_FAILURE_OP;
		}
		sub_argv[0] = argv[0];
		sub_argv[1] = (char *)"--quiet";
		memcpy(sub_argv + 2, argv + 1, (size_t)(argc - 1) * sizeof(*argv));
		argv = sub_argv;
		argc++;
	}
	optind = 0;	/* glibc: reinitialise getopt for the subcommand */
	r = sc->run(ctx, argc, argv);
	if (wants_json(argc, argv))
		tool_json_failure(r);

	free(sub_argv);
	dmrepl_unref(ctx);
	return r;
}
