// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Listings as lvs and zfs print them; see table.h.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmrepl.h"
#include "table.h"

/* At most this many fields in one listing. */
#define MAX_SHOWN 32

struct table {
	const struct table_field *fields;
	size_t nr_fields;
	const struct table_opts *o;
	size_t shown[MAX_SHOWN];	/* field indexes, in display order */
	size_t nr_shown;
	char **cells;			/* nr_rows * nr_shown; NULL: "-" */
	size_t nr_rows, alloc_rows;
};

int table_option(const char *subcmd, int c, const char *arg,
		 struct table_opts *o)
{
	switch (c) {
	case 'o':
		o->fields = arg;
		return 1;
	case 'P':
		o->exact = true;
		o->units = 'b';
		return 1;
	case TABLE_OPT_NO_HEADINGS:
		o->no_headings = true;
		return 1;
	case TABLE_OPT_SEPARATOR:
		o->separator = arg;
		return 1;
	case TABLE_OPT_UNITS:
		if (strlen(arg) != 1 || !strchr("hbkmgtHBKMGT", arg[0]))
			return tool_usage_error(subcmd, "--units: '%s' is not one of "
						"h, b, k, m, g, t", arg);
		o->units = (char)(arg[0] | 0x20);
		return 1;
	}
	return 0;
}

static void list_fields(const char *subcmd, const struct table_field *fields,
			size_t n, const char *defaults)
{
	printf("Fields of %s %s (default: %s):\n", program_name, subcmd, defaults);
	for (size_t i = 0; i < n; i++)
		printf("  %-14s %s\n", fields[i].name, fields[i].help);
}

/* Append the fields named in comma list @spec to @t's shown ones. */
static int add_fields(struct table *t, const char *subcmd, const char *spec)
{
	const char *p = spec;

	for (;;) {
		size_t len = strcspn(p, ","), i;

		for (i = 0; i < t->nr_fields; i++)
			if (strlen(t->fields[i].name) == len &&
			    strncmp(t->fields[i].name, p, len) == 0)
				break;
		if (len == 0 || i == t->nr_fields) {
			char names[512] = "";

			for (size_t k = 0; k < t->nr_fields; k++) {
				if (k)
					strncat(names, ", ", sizeof(names) - strlen(names) - 1);
				strncat(names, t->fields[k].name, sizeof(names) - strlen(names) - 1);
			}
			return tool_usage_error(subcmd, "-o: unknown field '%.*s' (fields: %s)",
						(int)len, p, names);
		}
		if (t->nr_shown == MAX_SHOWN)
			return tool_usage_error(subcmd, "-o: too many fields");
		t->shown[t->nr_shown++] = i;
		p += len;
		if (!*p)
			return 0;
		p++;	/* the comma: a field must follow */
	}
}

struct table *table_new(const char *subcmd, const struct table_field *fields,
			size_t n, const char *defaults,
			const struct table_opts *o, int *rc)
{
	struct table *t;
	const char *spec = o->fields;
	int r;

	if (spec && strcmp(spec, "help") == 0) {
		list_fields(subcmd, fields, n, defaults);
		*rc = EXIT_OK;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		*rc = EXIT_FAILURE_OP;
		return NULL;
	}
	t->fields = fields;
	t->nr_fields = n;
	t->o = o;
	if (!spec || spec[0] == '+') {
		r = add_fields(t, subcmd, defaults);
		if (r == 0 && spec)
			r = add_fields(t, subcmd, spec + 1);
	} else {
		r = add_fields(t, subcmd, spec);
	}
	if (r) {
		free(t);
		*rc = r;
		return NULL;
	}
	return t;
}

int table_check(const char *subcmd, const struct table_field *fields, size_t n,
		const char *defaults, const struct table_opts *o)
{
	int rc;
	struct table *t = table_new(subcmd, fields, n, defaults, o, &rc);

	if (!t)
		return rc == EXIT_OK ? -1 : rc;
	table_free(t);
	return 0;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nr_rows * t->nr_shown; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

bool table_shows(const struct table *t, size_t field)
{
	for (size_t i = 0; i < t->nr_shown; i++)
		if (t->shown[i] == field)
			return true;
	return false;
}

int table_row(struct table *t)
{
	if (t->nr_rows == t->alloc_rows) {
		size_t alloc = t->alloc_rows ? 2 * t->alloc_rows : 64;
		char **cells = realloc(t->cells, alloc * t->nr_shown * sizeof(*cells));

		if (!cells)
			return -ENOMEM;
		t->cells = cells;
		t->alloc_rows = alloc;
	}
	memset(t->cells + t->nr_rows * t->nr_shown, 0, t->nr_shown * sizeof(*t->cells));
	t->nr_rows++;
	return 0;
}

void table_set(struct table *t, size_t field, const char *value)
{
	char **row = t->cells + (t->nr_rows - 1) * t->nr_shown;

	/* a field may be shown twice (-o id,id): set each */
	for (size_t i = 0; i < t->nr_shown; i++) {
		if (t->shown[i] != field)
			continue;
		free(row[i]);
		row[i] = value ? strdup(value) : NULL;
	}
}

void table_set_u64(struct table *t, size_t field, uint64_t v)
{
	char buf[24];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	table_set(t, field, buf);
}

/* Three significant digits, binary units: 512, 1.50K, 15.0M, 150G. */
static void human(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";
	double v = (double)bytes;
	unsigned int u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64, bytes);
		return;
	}
	v /= 1024;
	while (v >= 1023.995 && u + 1 < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	if (v < 9.995)
		snprintf(buf, size, "%.2f%c", v, units[u]);
	else if (v < 99.95)
		snprintf(buf, size, "%.1f%c", v, units[u]);
	else
		snprintf(buf, size, "%.0f%c", v, units[u]);
}

void table_set_size(struct table *t, size_t field, uint64_t bytes)
{
	static const char units[] = "kmgt";
	char buf[32];
	const char *u = t->o->units ? strchr(units, t->o->units) : NULL;

	if (t->o->units == 'b') {
		snprintf(buf, sizeof(buf), "%" PRIu64, bytes);
	} else if (u) {
		double v = (double)bytes;

		for (const char *k = units; k <= u; k++)
			v /= 1024;
		snprintf(buf, sizeof(buf), "%.2f%c", v, *u & ~0x20);
	} else {
		human(bytes, buf, sizeof(buf));
	}
	table_set(t, field, buf);
}

void table_iso8601_utc(time_t when, char *buf, size_t size)
{
	struct tm tm;

	if (!gmtime_r(&when, &tm) || !strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, size, "%lld", (long long)when);
}

void table_set_time(struct table *t, size_t field, time_t when)
{
	char buf[40];
	struct tm tm;
	size_t n;

	if (t->o->exact) {
		snprintf(buf, sizeof(buf), "%lld", (long long)when);
	} else if (!localtime_r(&when, &tm) ||
		   !(n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S%z", &tm))) {
		snprintf(buf, sizeof(buf), "%lld", (long long)when);
	} else if (n >= 5 && (buf[n - 5] == '+' || buf[n - 5] == '-')) {
		/* ISO 8601's extended form: +01:00, not +0100 */
		memmove(buf + n - 1, buf + n - 2, 3);
		buf[n - 2] = ':';
	}
	table_set(t, field, buf);
}

static void print_cell(const struct table *t, FILE *out, size_t col,
		       const char *text, const size_t *width)
{
	const struct table_field *f = &t->fields[t->shown[col]];
	bool last = col + 1 == t->nr_shown;

	if (col)
		fputs(t->o->separator ? t->o->separator : "  ", out);
	if (t->o->separator || (f->left && last))
		fputs(text, out);	/* no trailing blanks */
	else if (f->left)
		fprintf(out, "%-*s", (int)width[col], text);
	else
		fprintf(out, "%*s", (int)width[col], text);
}

int table_print(struct table *t, FILE *out)
{
	size_t width[MAX_SHOWN];

	for (size_t c = 0; c < t->nr_shown; c++) {
		width[c] = t->o->no_headings ? 1 : strlen(t->fields[t->shown[c]].heading);
		for (size_t r = 0; r < t->nr_rows; r++) {
			const char *cell = t->cells[r * t->nr_shown + c];
			size_t len = cell ? strlen(cell) : 1;

			if (len > width[c])
				width[c] = len;
		}
	}
	if (!t->o->no_headings) {
		for (size_t c = 0; c < t->nr_shown; c++)
			print_cell(t, out, c, t->fields[t->shown[c]].heading, width);
		fputc('\n', out);
	}
	for (size_t r = 0; r < t->nr_rows; r++) {
		for (size_t c = 0; c < t->nr_shown; c++) {
			const char *cell = t->cells[r * t->nr_shown + c];

			print_cell(t, out, c, cell ? cell : "-", width);
		}
		fputc('\n', out);
	}
	return ferror(out) ? -EIO : 0;
}
