/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A streaming JSON writer for --json output. It prints as it goes, so a
 * delta with millions of runs needs no memory for them; libraries such as
 * json-c build the whole tree first.
 */
#ifndef DMREPL_JSON_H
#define DMREPL_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 16

struct json {
	FILE *out;
	int depth;
	bool need_comma[JSON_MAX_DEPTH];
};

void json_init(struct json *j, FILE *out);
/* key is NULL inside arrays and at the top level */
void json_open_object(struct json *j, const char *key);
void json_close_object(struct json *j);
void json_open_array(struct json *j, const char *key);
void json_close_array(struct json *j);
void json_u64(struct json *j, const char *key, uint64_t value);
void json_bool(struct json *j, const char *key, bool value);
void json_string(struct json *j, const char *key, const char *value);
/* ends the top-level value with a newline and flushes */
void json_end(struct json *j);

#endif
