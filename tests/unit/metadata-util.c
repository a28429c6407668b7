/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metadata-util.h"
#include "unit.h"

#define SUPERBLOCK_XOR 160774u
#define NODE_XOR 121107u

const char *fixture_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s.bin", FIXTURE_DIR, name);
	return path;
}

bool fixture_exists(const char *name)
{
	return access(fixture_path(name), R_OK) == 0;
}

int image_load(const char *name, struct image *img)
{
	struct stat st;
	FILE *f;

	memset(img, 0, sizeof(*img));
	f = fopen(fixture_path(name), "rb");
	if (!f)
		return -1;
	if (fstat(fileno(f), &st) == 0)
		img->size = (size_t)st.st_size;
	img->data = malloc(img->size);
	if (img->data && fread(img->data, 1, img->size, f) != img->size) {
		free(img->data);
		img->data = NULL;
	}
	fclose(f);
	img->nr_blocks = img->size / DMREPL_MD_BLOCK_SIZE;
	return img->data ? 0 : -1;
}

void image_free(struct image *img)
{
	free(img->data);
	img->data = NULL;
}

uint8_t *image_block(struct image *img, uint64_t blocknr)
{
	return img->data + blocknr * DMREPL_MD_BLOCK_SIZE;
}

char *image_write_temp(const struct image *img, size_t size)
{
	char *path = strdup("/tmp/dmrepl-test-XXXXXX");
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, img->data, size) != (ssize_t)size) {
		CU_FAIL("cannot write a temporary image");
		if (fd >= 0)
			close(fd);
		free(path);
		return NULL;
	}
	close(fd);
	return path;
}

uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

void put64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static void reseal(struct image *img, uint64_t blocknr, uint32_t xor)
{
	uint8_t *b = image_block(img, blocknr);

	put32(b, dmrepl_crc32c(0xffffffffu, b + 4, DMREPL_MD_BLOCK_SIZE - 4) ^
		     xor);
}

void reseal_node(struct image *img, uint64_t blocknr)
{
	reseal(img, blocknr, NODE_XOR);
}

void reseal_superblock(struct image *img, uint64_t blocknr)
{
	reseal(img, blocknr, SUPERBLOCK_XOR);
}

uint32_t node_nr_entries(struct image *img, uint64_t blocknr)
{
	return get32(image_block(img, blocknr) + NODE_NR_ENTRIES_OFF);
}

uint64_t node_key(struct image *img, uint64_t blocknr, uint32_t i)
{
	return get64(image_block(img, blocknr) + NODE_HEADER + 8 * i);
}

uint8_t *node_value(struct image *img, uint64_t blocknr, uint32_t i)
{
	uint8_t *b = image_block(img, blocknr);
	uint32_t max = get32(b + NODE_MAX_ENTRIES_OFF);
	uint32_t size = get32(b + NODE_VALUE_SIZE_OFF);

	return b + NODE_HEADER + 8 * max + size * i;
}

bool node_is_leaf(struct image *img, uint64_t blocknr)
{
	return get32(image_block(img, blocknr) + NODE_FLAGS_OFF) == 2;
}

uint64_t leftmost_leaf(struct image *img, uint64_t blocknr)
{
	while (!node_is_leaf(img, blocknr))
		blocknr = get64(node_value(img, blocknr, 0));
	return blocknr;
}

uint64_t image_thin_root(struct image *img, uint64_t thin_id)
{
	uint64_t top = get64(image_block(img, 0) + SB_MAPPING_ROOT_OFF);

	/* The fixtures' top-level trees are single leaves. */
	for (uint32_t i = 0; i < node_nr_entries(img, top); i++)
		if (node_key(img, top, i) == thin_id)
			return get64(node_value(img, top, i));
	return 0;
}

void write_internal_node(struct image *img, uint64_t blocknr, uint32_t n,
			 const uint64_t *keys, const uint64_t *children)
{
	uint8_t *b = image_block(img, blocknr);
	const uint32_t max = 252;

	memset(b, 0, DMREPL_MD_BLOCK_SIZE);
	put32(b + NODE_FLAGS_OFF, 1);
	put64(b + NODE_BLOCKNR_OFF, blocknr);
	put32(b + NODE_NR_ENTRIES_OFF, n);
	put32(b + NODE_MAX_ENTRIES_OFF, max);
	put32(b + NODE_VALUE_SIZE_OFF, 8);
	for (uint32_t i = 0; i < n; i++) {
		put64(b + NODE_HEADER + 8 * i, keys[i]);
		put64(b + NODE_HEADER + 8 * max + 8 * i, children[i]);
	}
	reseal_node(img, blocknr);
}

__attribute__((format(printf, 6, 0))) static void
capture_fn(struct dmrepl_ctx *ctx, int priority, const char *file, int line,
	   const char *fn, const char *format, va_list args, void *userdata)
{
	struct log_capture *log = userdata;
	size_t len = strlen(log->text);

	if (priority <= LOG_ERR)
		log->errors++;
	if (len + 2 >= sizeof(log->text))
		return;
	vsnprintf(log->text + len, sizeof(log->text) - len - 1, format, args);
	strcat(log->text, "\n");
}

struct dmrepl_ctx *capture_ctx(struct log_capture *log)
{
	struct dmrepl_ctx *ctx = NULL;

	memset(log, 0, sizeof(*log));
	if (dmrepl_new(&ctx) < 0)
		return NULL;
	dmrepl_set_log_priority(ctx, LOG_ERR);
	dmrepl_set_log_fn(ctx, capture_fn, log);
	return ctx;
}

bool log_has(const struct log_capture *log, const char *needle)
{
	if (strstr(log->text, needle))
		return true;
	fprintf(stderr, "\n  log lacks \"%s\"; it has:\n%s", needle, log->text);
	return false;
}

void run_list_add(struct run_list *l, enum dmrepl_run_kind kind, uint64_t begin,
		  uint64_t length)
{
	struct dmrepl_run *last = l->n ? &l->runs[l->n - 1] : NULL;

	if (last && last->kind == kind &&
	    last->begin_blocks + last->length_blocks == begin) {
		last->length_blocks += length;
		return;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->runs = realloc(l->runs, l->cap * sizeof(*l->runs));
		if (!l->runs)
			abort();
	}
	l->runs[l->n++] = (struct dmrepl_run){kind, begin, length};
}

void run_list_free(struct run_list *l)
{
	free(l->runs);
	memset(l, 0, sizeof(*l));
}

bool run_list_equal(const struct run_list *a, const struct run_list *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (a->runs[i].kind != b->runs[i].kind ||
		    a->runs[i].begin_blocks != b->runs[i].begin_blocks ||
		    a->runs[i].length_blocks != b->runs[i].length_blocks)
			return false;
	return true;
}

void run_list_print(const char *what, const struct run_list *l)
{
	fprintf(stderr, "\n  %s: %zu runs\n", what, l->n);
	for (size_t i = 0; i < l->n && i < 20; i++)
		fprintf(stderr, "    %s %" PRIu64 " +%" PRIu64 "\n",
			dmrepl_run_kind_name(l->runs[i].kind),
			l->runs[i].begin_blocks, l->runs[i].length_blocks);
}

int delta_collect(struct dmrepl_metadata *md, uint64_t a, uint64_t b,
		  unsigned int flags, struct run_list *out)
{
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_run run;
	int r;

	r = dmrepl_delta_new(md, a, b, flags, &delta);
	while (r == 0 && (r = dmrepl_delta_next_run(delta, &run)) == 0) {
		/* runs come out maximal: never merged by run_list_add */
		size_t before = out->n;

		run_list_add(out, run.kind, run.begin_blocks,
			     run.length_blocks);
		CU_ASSERT_EQUAL(out->n, before + 1);
	}
	dmrepl_delta_unref(delta);
	return r == 1 ? 0 : r;
}

/* Every mapping of one device, in key order: keys and data blocks. */
struct mapping_list {
	uint64_t *keys;
	uint64_t *blocks;
	size_t n;
};

static int read_all(struct dmrepl_metadata *md, uint64_t thin_id,
		    struct mapping_list *m)
{
	struct btree_cursor c;
	const void *value;
	uint64_t root, key, v;
	size_t cap = 0;
	int r;

	memset(m, 0, sizeof(*m));
	r = dmrepl_thin_get_mapping_root(md, thin_id, &root);
	if (r < 0)
		return r;
	btree_cursor_init(&c, md, "reference", root, 8);
	while ((r = btree_cursor_next(&c, &key, &value)) == 0) {
		if (m->n == cap) {
			cap = cap ? 2 * cap : 1024;
			m->keys = realloc(m->keys, cap * sizeof(uint64_t));
			m->blocks = realloc(m->blocks, cap * sizeof(uint64_t));
			if (!m->keys || !m->blocks)
				abort();
		}
		memcpy(&v, value, sizeof(v));
		m->keys[m->n] = key;
		m->blocks[m->n++] = le64toh(v) >> DMREPL_BLOCK_TIME_SHIFT;
	}
	btree_cursor_release(&c);
	return r == 1 ? 0 : r;
}

static void classify(const struct mapping_list *l, const struct mapping_list *r,
		     bool with_same, struct run_list *out)
{
	size_t i = 0, j = 0;

	while (i < l->n || j < r->n) {
		enum dmrepl_run_kind kind;
		uint64_t key;

		if (j == r->n || (i < l->n && l->keys[i] < r->keys[j])) {
			kind = DMREPL_RUN_LEFT_ONLY;
			key = l->keys[i++];
		} else if (i == l->n || r->keys[j] < l->keys[i]) {
			kind = DMREPL_RUN_RIGHT_ONLY;
			key = r->keys[j++];
		} else {
			kind = l->blocks[i] == r->blocks[j]
				   ? DMREPL_RUN_SAME
				   : DMREPL_RUN_DIFFERENT;
			key = l->keys[i++];
			j++;
		}
		if (kind != DMREPL_RUN_SAME || with_same)
			run_list_add(out, kind, key, 1);
	}
}

int reference_runs(struct dmrepl_metadata *md, uint64_t a, uint64_t b,
		   bool with_same, struct run_list *out)
{
	struct mapping_list l, r;
	int ret;

	ret = read_all(md, a, &l);
	if (ret == 0) {
		ret = read_all(md, b, &r);
		if (ret == 0)
			classify(&l, &r, with_same, out);
		free(r.keys);
		free(r.blocks);
	}
	free(l.keys);
	free(l.blocks);
	return ret;
}

static int parse_thin_delta_line(const char *line, struct run_list *out)
{
	static const char *const kinds[] = {"same", "different", "left_only",
					    "right_only"};
	char kind[32];
	uint64_t begin, length;

	if (sscanf(line,
		   " <%31[a-z_] begin=\"%" SCNu64 "\" length=\"%" SCNu64 "\"",
		   kind, &begin, &length) != 3)
		return 0;
	for (size_t k = 0; k < 4; k++) {
		if (strcmp(kind, kinds[k]) == 0) {
			run_list_add(out, (enum dmrepl_run_kind)k, begin,
				     length);
			return 0;
		}
	}
	return -EBADMSG;
}

int thin_delta_runs(const char *path, uint64_t a, uint64_t b,
		    struct run_list *out)
{
	char cmd[4200], line[512];
	FILE *p;
	int r = 0, status;

	if (system("command -v thin_delta >/dev/null 2>&1") != 0)
		return -ENOENT;
	snprintf(cmd, sizeof(cmd),
		 "thin_delta --snap1 %" PRIu64 " --snap2 %" PRIu64 " '%s'", a,
		 b, path);
	p = popen(cmd, "r");
	if (!p)
		return -errno;
	while (fgets(line, sizeof(line), p))
		if (parse_thin_delta_line(line, out) < 0)
			r = -EBADMSG;
	status = pclose(p);
	return r < 0 ? r : status == 0 ? 0 : -EIO;
}

int require_fixtures(const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!fixture_exists(names[i])) {
			printf("SKIP: %s is missing (thin_restore from "
			       "thin-provisioning-tools makes it)\n",
			       fixture_path(names[i]));
			return 77;
		}
	}
	return 0;
}
