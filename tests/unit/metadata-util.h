/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Helpers for the metadata and delta tests: fixture images (made from
 * tests/fixtures/NAME.xml by thin_restore at `make check` time), patching
 * blocks in memory, capturing the library's log, a per-block reference
 * delta and thin_delta's own output.
 */
#ifndef DMREPL_METADATA_UTIL_H
#define DMREPL_METADATA_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libdmrepl-private.h"

/* On-disk layout, for tests that patch images. */
#define SB_MAGIC_OFF 32
#define SB_VERSION_OFF 40
#define SB_TRANS_ID_OFF 48
#define SB_HELD_ROOT_OFF 56
#define SB_DATA_SM_ROOT_OFF 64
#define SB_METADATA_SM_ROOT_OFF 192
#define SB_MAPPING_ROOT_OFF 320
#define SB_DETAILS_ROOT_OFF 328
#define SB_METADATA_BLOCK_SIZE_OFF 340
#define NODE_FLAGS_OFF 4
#define NODE_BLOCKNR_OFF 8
#define NODE_NR_ENTRIES_OFF 16
#define NODE_MAX_ENTRIES_OFF 20
#define NODE_VALUE_SIZE_OFF 24
#define NODE_HEADER 32

struct image {
	uint8_t *data;
	size_t size;
	uint64_t nr_blocks;
};

/* The build directory's tests/fixtures/NAME.bin exists. */
bool fixture_exists(const char *name);
const char *fixture_path(const char *name);
/*
 * 0 when every fixture in @names exists; otherwise print why the test is
 * skipped and return 77, the automake skip status.
 */
int require_fixtures(const char *const *names, size_t n);
/* Load a fixture into memory: 0, or -1 if it cannot be read. */
int image_load(const char *name, struct image *img);
void image_free(struct image *img);
uint8_t *image_block(struct image *img, uint64_t blocknr);
/* Write the image to a new temporary file; returns its malloc'd path. */
char *image_write_temp(const struct image *img, size_t size);

uint32_t get32(const uint8_t *p);
uint64_t get64(const uint8_t *p);
void put32(uint8_t *p, uint32_t v);
void put64(uint8_t *p, uint64_t v);

/* Recompute the checksum of a node or of a superblock copy. */
void reseal_node(struct image *img, uint64_t blocknr);
void reseal_superblock(struct image *img, uint64_t blocknr);

/* Node accessors on a patched image. */
uint32_t node_nr_entries(struct image *img, uint64_t blocknr);
uint64_t node_key(struct image *img, uint64_t blocknr, uint32_t i);
uint8_t *node_value(struct image *img, uint64_t blocknr, uint32_t i);
bool node_is_leaf(struct image *img, uint64_t blocknr);
/* The leftmost leaf below @blocknr. */
uint64_t leftmost_leaf(struct image *img, uint64_t blocknr);

/* The mapping-tree root of @thin_id in a pristine image, or 0. */
uint64_t image_thin_root(struct image *img, uint64_t thin_id);
/*
 * Write an internal node at @blocknr, holding @n children with @keys:
 * used to build trees that share subtrees, cycles and deep chains.
 */
void write_internal_node(struct image *img, uint64_t blocknr, uint32_t n,
			 const uint64_t *keys, const uint64_t *children);

/* A context whose log goes to a buffer. */
struct log_capture {
	int errors;
	char text[8192]; /* every message, one per line */
};
struct dmrepl_ctx *capture_ctx(struct log_capture *log);
bool log_has(const struct log_capture *log, const char *needle);

struct run_list {
	struct dmrepl_run *runs;
	size_t n, cap;
};
void run_list_add(struct run_list *l, enum dmrepl_run_kind kind, uint64_t begin,
		  uint64_t length);
void run_list_free(struct run_list *l);
bool run_list_equal(const struct run_list *a, const struct run_list *b);
void run_list_print(const char *what, const struct run_list *l);

/* All runs of a delta; returns 0 or the iterator's error. */
int delta_collect(struct dmrepl_metadata *md, uint64_t a, uint64_t b,
		  unsigned int flags, struct run_list *out);
/*
 * The reference: read both devices' mappings in full and classify every
 * block, with no sharing shortcuts. @with_same: include same runs.
 */
int reference_runs(struct dmrepl_metadata *md, uint64_t a, uint64_t b,
		   bool with_same, struct run_list *out);
/* The runs thin_delta prints for @path; -ENOENT if it is not installed. */
int thin_delta_runs(const char *path, uint64_t a, uint64_t b,
		    struct run_list *out);

#endif
