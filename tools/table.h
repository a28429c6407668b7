/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The listings (ls, replicas) as lvs and zfs print them: named fields
 * picked with -o, aligned columns under headings, sizes in human units
 * unless asked for exact numbers, times in ISO 8601. One place for the
 * options, so every listing takes the same ones.
 */
#ifndef DMREPL_TOOL_TABLE_H
#define DMREPL_TOOL_TABLE_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* One field a listing can show. */
struct table_field {
	const char *name;	/* for -o: "id", "src_pool" */
	const char *heading;	/* "ID", "SRC_POOL" */
	bool left;		/* left-aligned (text); else right (numbers) */
	const char *help;	/* one line for -o help */
};

/* The listing options every listing takes. */
struct table_opts {
	const char *fields;	/* -o FIELDS */
	const char *separator;	/* --separator SEP; NULL: aligned columns */
	char units;		/* --units: 'h' (default), 'b', 'k', 'm', 'g', 't' */
	bool no_headings;	/* --noheadings */
	bool exact;		/* -P/--parsable: bytes and epoch seconds */
};

enum {
	TABLE_OPT_NO_HEADINGS = 0x1000,
	TABLE_OPT_SEPARATOR,
	TABLE_OPT_UNITS,
};

/* Entries for a longopts array, and the short options "o:P". */
#define TABLE_LONGOPTS \
	{ "output", required_argument, NULL, 'o' }, \
	{ "noheadings", no_argument, NULL, TABLE_OPT_NO_HEADINGS }, \
	{ "no-headers", no_argument, NULL, TABLE_OPT_NO_HEADINGS }, \
	{ "separator", required_argument, NULL, TABLE_OPT_SEPARATOR }, \
	{ "units", required_argument, NULL, TABLE_OPT_UNITS }, \
	{ "parsable", no_argument, NULL, 'P' }
#define TABLE_SHORTOPTS "o:P"

/* The --help lines for these options. */
#define TABLE_HELP \
	"  -o, --output FIELDS   the fields to show, comma-separated; +FIELD\n" \
	"                        adds to the default ones; \"-o help\" lists them\n" \
	"      --noheadings      no heading line\n" \
	"      --separator SEP   fields separated by SEP, not aligned\n" \
	"      --units UNIT      sizes in h (human, default), b (bytes), k, m,\n" \
	"                        g or t (KiB ... TiB)\n" \
	"  -P, --parsable        exact numbers: sizes in bytes, times in seconds\n" \
	"                        since the epoch\n"

/*
 * Handle option @c with @arg if it is one of the listing options: 1 when
 * it was, 0 when not, EXIT_USAGE after reporting a bad value.
 */
int table_option(const char *subcmd, int c, const char *arg,
		 struct table_opts *o);

struct table;

/*
 * Check the listing options once parsed: 0; -1 after listing the fields
 * for "-o help"; EXIT_USAGE after reporting an unknown field.
 */
int table_check(const char *subcmd, const struct table_field *fields, size_t n,
		const char *defaults, const struct table_opts *o);

/*
 * A table of @fields (@n of them) showing @o->fields, else @defaults
 * ("id,size,..."), with "+a,b" in @o->fields adding to them. NULL after
 * reporting an unknown field (*@rc = EXIT_USAGE), or for "-o help" after
 * listing the fields (*@rc = EXIT_OK).
 */
struct table *table_new(const char *subcmd, const struct table_field *fields,
			size_t n, const char *defaults,
			const struct table_opts *o, int *rc);
void table_free(struct table *t);

/* @field (an index into the fields) is shown. */
bool table_shows(const struct table *t, size_t field);

/* Start a row, then set its shown fields; unset ones print "-". */
int table_row(struct table *t);
void table_set(struct table *t, size_t field, const char *value);
void table_set_u64(struct table *t, size_t field, uint64_t v);
/* A size in bytes, in the unit the options ask for. */
void table_set_size(struct table *t, size_t field, uint64_t bytes);
/* A time: ISO 8601 in local time with its offset, or epoch seconds (-P). */
void table_set_time(struct table *t, size_t field, time_t when);

/* Print the rows (after the heading line, unless --noheadings). */
int table_print(struct table *t, FILE *out);

/* @when as ISO 8601 UTC, "2026-12-07T14:54:09Z". */
void table_iso8601_utc(time_t when, char *buf, size_t size);

#endif
