/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The progress display of long-running subcommands (copy, replicate,
 * verify): a bar on stderr when it is a terminal, or JSON lines on
 * stdout for programs.
 */
#ifndef DMREPL_PROGRESS_H
#define DMREPL_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum progress_mode { PROGRESS_AUTO = 0, PROGRESS_QUIET, PROGRESS_JSON };

struct progress;

/*
 * AUTO: a bar on stderr when stderr is a TTY, else nothing. JSON: lines on
 * stdout. @what names the operation ("replicate"). NULL only when out of
 * memory; every function accepts NULL and then does nothing.
 */
struct progress *progress_new(enum progress_mode mode, const char *what);

struct dmrepl_replicate;
/*
 * Show a replicate job's progress in @p until it ends; SIGINT/SIGTERM
 * cancel it (tools/cmd-replicate.c, also used by sync).
 */
void tool_replicate_watch(struct dmrepl_replicate *rep, struct progress *p);

/*
 * Report @done_bytes of @total_bytes (0 when unknown) in @phase. The bar
 * is redrawn at most ~10 times a second, a JSON line printed at most
 * about once a second; progress_free() shows the last update.
 */
void progress_update(struct progress *p, const char *phase, uint64_t done_bytes,
		     uint64_t total_bytes);

/* Shows the last update if it was not shown, ends the bar line; NULL is a no-op. */
/*
 * Of the bytes done, @discarded_bytes were discards: unmapped on the
 * destination, nothing read or written. The rate counts the bytes moved
 * only; the bar and the JSON lines show the discards apart.
 */
void progress_set_discarded(struct progress *p, uint64_t discarded_bytes);

/*
 * After a long command, on a terminal only (as the bar), one line:
 * "copied 1.50 GiB, discarded 64.0 MiB, zeroed 0 B in 12.3 s (125 MiB/s)",
 * the rate being of the bytes moved (copied and zeroed).
 */
void progress_summary(FILE *err, uint64_t copied, uint64_t discarded,
		      uint64_t zeroed, double seconds);
/*
 * verify's line, on a terminal only: "compared 3.00 GiB, 0 B differ in
 * 12.3 s (250 MiB/s)", the rate being of the bytes compared.
 */
void progress_summary_compared(FILE *err, uint64_t compared,
			       uint64_t mismatched, double seconds);
/*
 * @p draws its bar on this terminal: of two dmrepl sharing one (send |
 * receive), the one whose summary line follows the bar.
 */
bool progress_draws(const struct progress *p);
/* JSON lines to @out, not stdout (send: its stdout carries the stream). */
void progress_set_json_output(struct progress *p, FILE *out);
void progress_free(struct progress *p);

/* "512 B", "1.5 KiB", "3.0 MiB", "2.25 GiB"... into @buf. */
void progress_format_bytes(uint64_t bytes, char *buf, size_t size);

/* ---- For unit tests only ---- */

/* Replace the monotonic clock (nanoseconds); NULL restores it. */
void progress_test_set_clock(uint64_t (*clock_ns)(void));
/* Send output of progress objects created later to @out and @err; NULL: stdout, stderr. */
void progress_test_set_files(FILE *out, FILE *err);
/* The smoothed rate and the ETA (-1 when unknown) of @p. */
uint64_t progress_test_get_rate(const struct progress *p);
int64_t progress_test_get_eta(const struct progress *p);

#endif
