/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared pieces of the dmrepl command: the subcommand table and the
 * helpers every subcommand uses to report errors the same way.
 */
#ifndef DMREPL_TOOL_H
#define DMREPL_TOOL_H

#include <signal.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "libdmrepl.h"

/* Exit codes; documented in dmrepl(8), keep both in step. */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_OP = 1,	/* the operation failed */
	EXIT_USAGE = 2,		/* bad command line */
	/* 128 + signal number: interrupted, after releasing what was held */
};

/* dm-thin device ids are 24 bits wide. */
#define DMREPL_MAX_THIN_ID ((1u << 24) - 1)

struct subcommand {
	const char *name;
	const char *summary;
	int (*run)(struct dmrepl_ctx *ctx, int argc, char *argv[]);
};

extern const char *program_name;

/* Print "dmrepl: SUBCMD: message" to stderr. */
void tool_error(const char *subcmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Report a bad command line and return EXIT_USAGE. */
int tool_usage_error(const char *subcmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Parse a decimal number (digits only: "010" is ten, never octal) no
 * larger than @max: 0, -EINVAL, -ERANGE.
 */
int tool_parse_u64(const char *s, uint64_t max, uint64_t *ret);

/*
 * Parse a size or rate: a decimal number of bytes, or one with a suffix
 * K, M, G or T (powers of 1024; "k", "KiB" and "KB" too). 0, -EINVAL,
 * -ERANGE.
 */
int tool_parse_size(const char *s, uint64_t *ret);

/*
 * The value of option @opt, a number from @min to @max, or a size from
 * @min to @max bytes and a multiple of @align (1: any): 0, or the error
 * reported (what the value must be, its range) and EXIT_USAGE.
 */
int tool_option_number(const char *subcmd, const char *opt, const char *arg,
		       uint64_t min, uint64_t max, uint64_t *ret);
int tool_option_size(const char *subcmd, const char *opt, const char *arg,
		     uint64_t min, uint64_t max, uint64_t align, uint64_t *ret);

/*
 * Split @line (an ssh forced command's SSH_ORIGINAL_COMMAND) into words
 * as a shell would, for plain and 'single-quoted' words only; anything
 * else a shell gives meaning to is -EINVAL. The words live in @buf;
 * @argv gets at most @max of them and a NULL. Their number, or -E2BIG.
 */
int tool_split_words(const char *line, char **argv, int max, char *buf, size_t size);

/* @v bytes in the largest unit that holds it exactly ("4K", "64M", "1000"). */
void tool_size_str(uint64_t v, char *buf, size_t size);

/*
 * Parse --ionice CLASS[:LEVEL]: CLASS is 1..3 or realtime, best-effort,
 * idle; LEVEL 0..7 (default 4). 0 or -EINVAL.
 */
int tool_parse_ionice(const char *s, int *ret_class, int *ret_level);

/*
 * Parse the value of thin-id option @opt, or report and return
 * EXIT_USAGE. A value "VG/LV" names an LVM thin volume: *@ret is set by
 * tool_resolve_lvm().
 */
int tool_parse_thin_id(const char *subcmd, const char *opt, const char *s,
		       uint64_t *ret);
/* Some thin-id option was given as an LVM "VG/LV". */
bool tool_has_lvm_names(void);
/*
 * Resolve LVM names through lvm2: *@pool "VG/POOL" becomes the pool's dm
 * name; each thin-id option given as "VG/LV" gets its thin id, and sets
 * *@pool when none was given (or must be in it); --snap's LV sets
 * *@size_bytes when it is 0 (@size_bytes may be NULL). Return 0, or the
 * exit status after reporting.
 */
int tool_resolve_lvm(struct dmrepl_ctx *ctx, const char *subcmd,
		     const char **pool, uint64_t *size_bytes);
/* A second pool given as "VG/POOL" (--to-pool): its dm name. */
int tool_resolve_lvm_pool(struct dmrepl_ctx *ctx, const char *subcmd,
			  const char **pool);

/* Set by SIGINT/SIGTERM once tool_catch_signals() ran: the signal number. */
extern volatile sig_atomic_t tool_interrupted;
void tool_catch_signals(void);
/*
 * Also call @hook (async-signal-safe, e.g. a cancel) from the handler;
 * NULL removes it.
 */
void tool_set_interrupt_hook(void (*hook)(void));
int tool_interrupted_exit(const char *subcmd);

/* Where ls and delta read metadata from: a live pool, or a file or device. */
struct tool_source {
	const char *pool;	/* --pool DMNAME */
	const char *path;	/* METADATA */
	bool use_held_root;	/* -m */
};

/*
 * Take METADATA from the operands left after option parsing, and check
 * that exactly one of --pool and METADATA was given (and -m only with
 * METADATA). Returns 0, or reports and returns EXIT_USAGE.
 */
int tool_source_finish(const char *subcmd, struct tool_source *src, int argc,
		       char *argv[]);

/*
 * Open metadata from a live pool by dm name (through a metadata snapshot
 * held until the last unref), or from an image file or block device.
 * Reports failures itself; returns 0 or -errno.
 */
int tool_open_metadata(struct dmrepl_ctx *ctx, const char *subcmd,
		       const struct tool_source *src,
		       struct dmrepl_metadata **ret_md);

/*
 * Report a failed operation, unless the library already logged an error
 * that says what failed and where: one clear message, not two.
 */
void tool_fail(const char *subcmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Show library messages as "dmrepl: error: ..." on stderr. */
void tool_setup_log(struct dmrepl_ctx *ctx);

/*
 * The JSON contract: a --json run ends with exactly one result object,
 * also on failure. The first error message (the library's, or the
 * tool's) is kept: tool_json_error() adds it to a result object as
 * "error", with "errno" (ENOENT...) for @status < 0. A command that
 * printed its result object says so (tool_json_result_printed());
 * otherwise, on failure, main() prints {"type":"result","ok":false,
 * "error":...,"exit_status":N} (tool_json_failure()).
 */
struct json;
void tool_note_error(const char *text);
/* @r (-errno) for the JSON result's "errno", then tool_fail(). */
void tool_note_errno(int r);
#define tool_fail_r(subcmd, r, ...) \
	(tool_note_errno(r), tool_fail(subcmd, __VA_ARGS__))
void tool_json_error(struct json *j, int status);
void tool_json_result_printed(void);
/* Start the result object on @out: {"type":"result","ok":@ok, ... */
void tool_json_result_begin(struct json *j, FILE *out, bool ok);
void tool_json_failure(int exit_status);
/*
 * Where the failure result goes: stdout, unless a command's stdout
 * carries something else (send's stream), whose JSON goes to stderr.
 */
void tool_json_set_stream(FILE *out);

/*
 * -v/--verbose, before the subcommand or among its options: each one
 * logs more (info, then debug), unless DMREPL_LOG says otherwise.
 */
void tool_more_verbose(struct dmrepl_ctx *ctx);

/*
 * getopt_long() over a subcommand's options and the ones every
 * subcommand takes, handled here: -v/--verbose (on the context that
 * tool_setup_log() was given), -q/--quiet where the subcommand shows no
 * progress to silence, and -n/--dry-run where it writes nothing anyway
 * (a subcommand with 'n' in @optstring gets it back). The next option of
 * the subcommand's own, or -1.
 */
int tool_getopt(int argc, char *argv[], const char *optstring,
		const struct option *longopts);
/* A subcommand's -j/--json was seen by tool_getopt() ("-mj" too). */
extern bool tool_json_requested;

int cmd_help(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_version(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_ls(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_delta(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_copy(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_snapshot(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_replicate(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_replicas(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_verify(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_send(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_receive(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_recover(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_sync(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_prune(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_migrate(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_serve(struct dmrepl_ctx *ctx, int argc, char *argv[]);

#endif
