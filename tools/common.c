/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers every subcommand shares: number parsing, signal handling and
 * the log function that shows library messages to the user.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "dmrepl.h"
#include "json.h"
#include "libdmrepl-private.h"

volatile sig_atomic_t tool_interrupted;
bool tool_json_requested;

/* Errors the library has logged: each already says what failed and where. */
static unsigned int library_errors;

void tool_size_str(uint64_t v, char *buf, size_t size)
{
	static const char units[] = "KMGT";
	int i = 0;

	while (i < 4 && v && v % 1024 == 0) {
		v /= 1024;
		i++;
	}
	if (i)
		snprintf(buf, size, "%" PRIu64 "%c", v, units[i - 1]);
	else
		snprintf(buf, size, "%" PRIu64, v);
}

int tool_option_number(const char *subcmd, const char *opt, const char *arg,
		       uint64_t min, uint64_t max, uint64_t *ret)
{
	uint64_t v;
	int r = tool_parse_u64(arg, UINT64_MAX, &v);

	if (r == -EINVAL)
		return tool_usage_error(subcmd, "%s: '%s' is not a number "
					"(decimal digits)", opt, arg);
	if (r < 0 || v < min || v > max)
		return tool_usage_error(subcmd, "%s: %s is out of range: give "
					"%" PRIu64 " to %" PRIu64, opt, arg,
					min, max);
	*ret = v;
	return 0;
}

int tool_option_size(const char *subcmd, const char *opt, const char *arg,
		     uint64_t min, uint64_t max, uint64_t align, uint64_t *ret)
{
	char lo[32], hi[32], al[32];
	uint64_t v;
	int r = tool_parse_size(arg, &v);

	tool_size_str(min, lo, sizeof(lo));
	tool_size_str(max, hi, sizeof(hi));
	tool_size_str(align, al, sizeof(al));
	if (r == -EINVAL)
		return tool_usage_error(subcmd, "%s: '%s' is not a size: give "
					"bytes, or a number with K, M, G or T "
					"(powers of 1024)", opt, arg);
	if (r < 0 || v < min || v > max)
		return tool_usage_error(subcmd, "%s: %s is out of range: give "
					"%s%s%s%s%s%s", opt, arg,
					max == UINT64_MAX ? "at least " : "",
					lo, max == UINT64_MAX ? "" : " to ",
					max == UINT64_MAX ? "" : hi,
					align > 1 ? ", a multiple of " : "",
					align > 1 ? al : "");
	if (align > 1 && v % align)
		return tool_usage_error(subcmd, "%s: %s is not a multiple of %s",
					opt, arg, al);
	*ret = v;
	return 0;
}

/* Thin devices named "VG/LV", resolved by tool_resolve_lvm(). */
static struct {
	const char *opt, *arg;
	uint64_t *id;
} lvm_names[4];
static size_t nr_lvm_names;

bool tool_has_lvm_names(void)
{
	return nr_lvm_names > 0;
}

int tool_parse_thin_id(const char *subcmd, const char *opt, const char *s,
		       uint64_t *ret)
{
	int r;

	if (strchr(s, '/')) {
		if (nr_lvm_names == ARRAY_SIZE(lvm_names))
			return tool_usage_error(subcmd, "too many LVM names");
		lvm_names[nr_lvm_names].opt = opt;
		lvm_names[nr_lvm_names].arg = s;
		lvm_names[nr_lvm_names++].id = ret;
		*ret = 0;
		return 0;
	}
	r = tool_parse_u64(s, DMREPL_MAX_THIN_ID, ret);

	if (r == -ERANGE)
		return tool_usage_error(subcmd, "%s %s: thin ids go up to %u",
					opt, s, DMREPL_MAX_THIN_ID);
	if (r < 0)
		return tool_usage_error(subcmd, "%s: '%s' is not a thin device id",
					opt, s);
	return 0;
}

static void (*interrupt_hook)(void);

static void on_signal(int signo)
{
	tool_interrupted = signo;
	if (interrupt_hook)
		interrupt_hook();
}

void tool_set_interrupt_hook(void (*hook)(void))
{
	interrupt_hook = hook;
}

/*
 * SIGINT, SIGTERM and SIGHUP set a flag instead of killing the process, so the
 * subcommand unwinds and releases what it holds (the pool's metadata
 * snapshot above all). No SA_RESTART: a blocking call returns EINTR.
 */
void tool_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

int tool_interrupted_exit(const char *subcmd)
{
	tool_error(subcmd, "interrupted by signal %d; everything held was released",
		   (int)tool_interrupted);
	return 128 + tool_interrupted;
}

static struct timespec log_start;

static double elapsed_ms(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - log_start.tv_sec) * 1e3 +
	       (double)(now.tv_nsec - log_start.tv_nsec) / 1e6;
}

__attribute__((format(printf, 6, 0)))
static void log_to_stderr(struct dmrepl_ctx *ctx, int priority, const char *file,
			  int line, const char *fn, const char *format,
			  va_list args, void *userdata)
{
	static const char *const labels[] = {
		"emergency", "alert", "critical", "error",
		"warning", "notice", "info", "debug",
	};

	if (priority <= LOG_ERR) {
		char text[1024];
		va_list copy;

		library_errors++;
		va_copy(copy, args);
		vsnprintf(text, sizeof(text), format, copy);
		va_end(copy);
		tool_note_error(text);
	}
	fprintf(stderr, "%s: %s: ", program_name,
		labels[priority >= 0 && priority <= 7 ? priority : 3]);
	/* With debug on, the time since start: where the seconds go. */
	if (dmrepl_get_log_priority(ctx) >= LOG_DEBUG)
		fprintf(stderr, "[%8.3f ms] ", elapsed_ms());
	vfprintf(stderr, format, args);
	if (priority == 7)
		fprintf(stderr, " (%s:%d %s)", file, line, fn);
	fputc('\n', stderr);
}

void tool_fail(const char *subcmd, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (library_errors)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	tool_error(subcmd, "%s", text);	/* noted for the JSON result too */
}

/* ---- the JSON result, also on failure ---- */

static char first_error[1024];
static int first_errno;
static bool json_result_done;
static FILE *json_stream;

void tool_json_set_stream(FILE *out)
{
	json_stream = out;
}

void tool_note_errno(int r)
{
	if (!first_errno && r < 0)
		first_errno = -r;
}

void tool_note_error(const char *text)
{
	if (!first_error[0])
		snprintf(first_error, sizeof(first_error), "%s", text);
}

void tool_json_error(struct json *j, int status)
{
	const char *name = status < 0 ? strerrorname_np(-status) : NULL;

	json_string(j, "error", first_error[0] ? first_error
					       : strerror(status < 0 ? -status : EIO));
	if (name)
		json_string(j, "errno", name);
}

void tool_json_result_printed(void)
{
	json_result_done = true;
}

void tool_json_result_begin(struct json *j, FILE *out, bool ok)
{
	json_init(j, out);
	json_open_object(j, NULL);
	json_string(j, "type", "result");
	json_bool(j, "ok", ok);
}

void tool_json_failure(int exit_status)
{
	struct json j;

	if (json_result_done || exit_status == EXIT_OK)
		return;
	tool_json_result_begin(&j, json_stream ? json_stream : stdout, false);
	json_string(&j, "error", first_error[0] ? first_error : "failed");
	if (first_errno && strerrorname_np(first_errno))
		json_string(&j, "errno", strerrorname_np(first_errno));
	json_u64(&j, "exit_status", (uint64_t)exit_status);
	json_close_object(&j);
	json_end(&j);
	json_result_done = true;
}

void tool_more_verbose(struct dmrepl_ctx *ctx)
{
	int p = dmrepl_get_log_priority(ctx);

	if (getenv("DMREPL_LOG"))
		return;
	dmrepl_set_log_priority(ctx, p < LOG_INFO ? LOG_INFO : LOG_DEBUG);
}

/* The command's context, for the options every subcommand takes. */
static struct dmrepl_ctx *tool_ctx;

int tool_getopt(int argc, char *argv[], const char *optstring,
		const struct option *longopts)
{
	static const struct option *merged_for;
	static struct option merged[64];
	static char merged_short[128];
	static bool own_quiet, own_dry_run;
	int c;

	if (merged_for != longopts) {
		size_t n = 0;

		while (longopts[n].name && n < ARRAY_SIZE(merged) - 4) {
			merged[n] = longopts[n];
			n++;
		}
		merged[n++] = (struct option){"verbose", no_argument, NULL, 'v'};
		/* -q: no progress; a subcommand that shows none takes it too */
		own_quiet = strchr(optstring, 'q') != NULL;
		if (!own_quiet)
			merged[n++] = (struct option){"quiet", no_argument, NULL, 'q'};
		/* -n: a subcommand that writes nothing anyway takes it as well */
		own_dry_run = strchr(optstring, 'n') != NULL;
		if (!own_dry_run)
			merged[n++] = (struct option){"dry-run", no_argument, NULL, 'n'};
		merged[n] = (struct option){NULL, 0, NULL, 0};
		snprintf(merged_short, sizeof(merged_short), "%sv%s%s", optstring,
			 own_quiet ? "" : "q", own_dry_run ? "" : "n");
		merged_for = longopts;
	}
	c = getopt_long(argc, argv, merged_short, merged, NULL);
	if (c == 'j' && strchr(optstring, 'j'))
		tool_json_requested = true;	/* also from "-mj" */
	while (c == 'v' ||
	       (c == 'q' && !own_quiet) || (c == 'n' && !own_dry_run)) {
		if (c == 'v' && tool_ctx)
			tool_more_verbose(tool_ctx);
		c = getopt_long(argc, argv, merged_short, merged, NULL);
		if (c == 'j' && strchr(optstring, 'j'))
			tool_json_requested = true;
	}
	return c;
}

void tool_setup_log(struct dmrepl_ctx *ctx)
{
	tool_ctx = ctx;
	clock_gettime(CLOCK_MONOTONIC, &log_start);
	dmrepl_set_log_fn(ctx, log_to_stderr, NULL);
}

int tool_source_finish(const char *subcmd, struct tool_source *src, int argc,
		       char *argv[])
{
	/* thin volumes named VG/LV: the pool follows from them */
	if (!src->pool && optind == argc && !src->use_held_root &&
	    tool_has_lvm_names())
		return 0;
	if (src->pool && (optind < argc || src->use_held_root))
		return tool_usage_error(subcmd, "--pool reads the live pool: give no "
					"METADATA and no -m");
	if (!src->pool && optind != argc - 1)
		return tool_usage_error(subcmd, "expected one METADATA file or device");
	if (!src->pool)
		src->path = argv[optind];
	return 0;
}

int tool_open_metadata(struct dmrepl_ctx *ctx, const char *subcmd,
		       const struct tool_source *src,
		       struct dmrepl_metadata **ret_md)
{
	unsigned int flags = src->use_held_root ? DMREPL_METADATA_USE_HELD_ROOT : 0;
	int r;

	if (src->pool)
		r = dmrepl_metadata_open_pool(ctx, src->pool, ret_md);
	else
		r = dmrepl_metadata_open(ctx, src->path, flags, ret_md);
	if (r < 0)
		tool_fail_r(subcmd, r, "cannot read thin-pool metadata from %s: %s",
			    src->pool ? src->pool : src->path, strerror(-r));
	return r;
}

/* The thin-pool dm device of LVM pool "VG/POOL" into @buf. */
static int lvm_pool(struct dmrepl_ctx *ctx, const char *vg_lv, char *buf,
		    size_t size)
{
	struct dmrepl_lvm_lv lv;
	int r;

	/* an active pool is found by its dm name: no lvm command */
	if (dmrepl_lvm_active_pool(ctx, vg_lv, buf, size) == 0)
		return 0;
	/* each failure is logged, once, by the library */
	r = dmrepl_lvm_lookup(ctx, vg_lv, &lv);
	if (r == 0)
		r = dmrepl_lvm_pool_dm_name(ctx, &lv, buf, size);
	return r;
}

/* *@pool given as "VG/POOL" becomes its thin-pool dm name, kept in @buf. */
static int pool_arg(struct dmrepl_ctx *ctx, const char **pool, char *buf,
		    size_t size)
{
	if (!*pool || !strchr(*pool, '/'))
		return 0;
	if (lvm_pool(ctx, *pool, buf, size) < 0)
		return EXIT_FAILURE_OP;
	*pool = buf;
	return 0;
}

int tool_resolve_lvm_pool(struct dmrepl_ctx *ctx, const char *subcmd,
			  const char **pool)
{
	static char buf[256];

	return pool_arg(ctx, pool, buf, sizeof(buf));
}

int tool_resolve_lvm(struct dmrepl_ctx *ctx, const char *subcmd,
		     const char **pool, uint64_t *size_bytes)
{
	static char pool_buf[256], lv_pool_buf[256];
	char vg_pool[300], looked_up[300] = "";
	struct dmrepl_lvm_lv lv;
	int r;

	r = pool_arg(ctx, pool, pool_buf, sizeof(pool_buf));
	if (r)
		return r;
	for (size_t i = 0; i < nr_lvm_names; i++) {
		const char *arg = lvm_names[i].arg;

		if (dmrepl_lvm_lookup(ctx, arg, &lv) < 0)
			return EXIT_FAILURE_OP;
		if (strcmp(lv.segtype, "thin") != 0 || lv.thin_id == DMREPL_THIN_ID_ANY) {
			tool_fail(subcmd, "%s %s: not a thin volume (its type is %s)",
				  lvm_names[i].opt, arg, lv.segtype);
			return EXIT_FAILURE_OP;
		}
		/* --snap and --base usually share a pool: ask lvm once */
		snprintf(vg_pool, sizeof(vg_pool), "%s/%s", lv.vg, lv.pool_lv);
		if (strcmp(vg_pool, looked_up) != 0) {
			if (lvm_pool(ctx, vg_pool, lv_pool_buf, sizeof(lv_pool_buf)) < 0)
				return EXIT_FAILURE_OP;
			strcpy(looked_up, vg_pool);
		}
		if (!*pool) {
			strcpy(pool_buf, lv_pool_buf);
			*pool = pool_buf;
		} else if (strcmp(*pool, lv_pool_buf) != 0) {
			return tool_usage_error(subcmd, "%s %s is in pool %s, not in %s",
						lvm_names[i].opt, arg, vg_pool, *pool);
		}
		*lvm_names[i].id = lv.thin_id;
		/* the snapshot's size, from LVM: no --size needed */
		if (size_bytes && !*size_bytes && strcmp(lvm_names[i].opt, "--snap") == 0)
			*size_bytes = lv.size_bytes;
	}
	return 0;
}
