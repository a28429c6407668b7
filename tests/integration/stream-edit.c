/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stream-edit - look into and forge dmrepl stream files (lib/stream.h)
 * for tests/integration/stream-faults.sh: streams that the writer
 * refuses to produce, such as a range past the volume's end, but whose
 * checksums are all right, so that the reader's other checks are what
 * catches them.
 *
 *   stream-edit list FILE                 one line per record:
 *                                         POS TYPE FLAGS PAYLOAD SEQ OFFSET LENGTH
 *   stream-edit set FILE POS WIDTH VALUE  store VALUE (decimal) as a
 *                                         little-endian integer of WIDTH
 *                                         bytes (2, 4 or 8) at byte POS
 *   stream-edit resign FILE               recompute every checksum: the
 *                                         header's, each record's, and the
 *                                         END record's counts and digest
 *
 * It walks records by payload_len only and checks nothing else. The
 * file must hold one stream. Exit: 0, 1 on an error, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "stream.h"

struct file {
	uint8_t *b;
	size_t len;
};

static uint64_t rd(const uint8_t *p, unsigned int width)
{
	uint64_t v = 0;

	for (unsigned int i = width; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void wr(uint8_t *p, unsigned int width, uint64_t v)
{
	for (unsigned int i = 0; i < width; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static int load(const char *path, struct file *f)
{
	FILE *fp = fopen(path, "rb");
	long n;

	if (!fp || fseek(fp, 0, SEEK_END) < 0 || (n = ftell(fp)) < 0 ||
	    fseek(fp, 0, SEEK_SET) < 0) {
		fprintf(stderr, "stream-edit: %s: %s\n", path, strerror(errno));
		if (fp)
			fclose(fp);
		return -1;
	}
	f->len = (size_t)n;
	f->b = malloc(f->len ? f->len : 1);
	if (!f->b || fread(f->b, 1, f->len, fp) != f->len) {
		fprintf(stderr, "stream-edit: cannot read %s\n", path);
		fclose(fp);
		return -1;
	}
	fclose(fp);
	return 0;
}

static int save(const char *path, const struct file *f)
{
	FILE *fp = fopen(path, "wb");

	if (!fp || fwrite(f->b, 1, f->len, fp) != f->len || fclose(fp) != 0) {
		fprintf(stderr, "stream-edit: cannot write %s\n", path);
		return -1;
	}
	return 0;
}

static size_t header_len(const struct file *f)
{
	size_t hl;

	if (f->len < DMREPL_STREAM_HEADER_LEN)
		return 0;
	hl = (size_t)rd(f->b + 10, 2);
	return hl >= DMREPL_STREAM_HEADER_LEN && hl <= f->len ? hl : 0;
}

/* The record at @pos: its whole length, or 0 when it does not fit. */
static size_t record_len(const struct file *f, size_t pos)
{
	size_t n;

	if (f->len - pos < DMREPL_STREAM_RECORD_LEN)
		return 0;
	n = DMREPL_STREAM_RECORD_LEN + (size_t)rd(f->b + pos + 4, 4);
	return n <= f->len - pos ? n : 0;
}

static int list(const struct file *f)
{
	size_t pos = header_len(f), n;

	if (!pos) {
		fprintf(stderr, "stream-edit: no stream header\n");
		return 1;
	}
	for (; pos < f->len; pos += n) {
		const uint8_t *r = f->b + pos;
		uint16_t type = (uint16_t)rd(r, 2);

		n = record_len(f, pos);
		if (!n) {
			printf("%zu truncated\n", pos);
			return 0;
		}
		printf("%zu %s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
		       " %" PRIu64 "\n", pos, dmrepl_stream_type_name(type),
		       rd(r + 2, 2), rd(r + 4, 4), rd(r + 8, 8), rd(r + 16, 8),
		       rd(r + 24, 8));
	}
	return 0;
}

static void sign_record(uint8_t *r)
{
	XXH3_state_t *s = XXH3_createState();
	uint32_t payload_len = (uint32_t)rd(r + 4, 4);

	XXH3_64bits_reset(s);
	XXH3_64bits_update(s, r, 32);
	if (payload_len)
		XXH3_64bits_update(s, r + DMREPL_STREAM_RECORD_LEN, payload_len);
	wr(r + 32, 8, XXH3_64bits_digest(s));
	XXH3_freeState(s);
}

static int resign(struct file *f)
{
	size_t hl = header_len(f), pos, n;
	uint64_t records = 0, data_bytes = 0;
	XXH128_hash_t d;

	if (!hl) {
		fprintf(stderr, "stream-edit: no stream header\n");
		return 1;
	}
	wr(f->b + hl - 8, 8, XXH3_64bits(f->b, hl - 8));
	for (pos = hl; pos < f->len; pos += n) {
		uint8_t *r = f->b + pos;
		uint16_t type = (uint16_t)rd(r, 2);

		n = record_len(f, pos);
		if (!n)
			break;	/* a truncated tail stays as it is */
		if (type == DMREPL_REC_END && n == DMREPL_STREAM_RECORD_LEN +
						   DMREPL_STREAM_END_PAYLOAD) {
			d = XXH3_128bits(f->b, pos);
			wr(r + 40, 8, records);
			wr(r + 48, 8, data_bytes);
			wr(r + 56, 8, d.high64);
			wr(r + 64, 8, d.low64);
		} else {
			records++;
			if (type == DMREPL_REC_DATA)
				data_bytes += rd(r + 24, 8);
		}
		sign_record(r);
	}
	return 0;
}

static int usage(void)
{
	fprintf(stderr, "usage: stream-edit list FILE\n"
			"       stream-edit set FILE POS WIDTH VALUE\n"
			"       stream-edit resign FILE\n");
	return 2;
}

int main(int argc, char *argv[])
{
	struct file f = {0};
	unsigned long long pos, width, value;
	int rc;

	if (argc < 3)
		return usage();
	if (load(argv[2], &f) < 0)
		return 1;
	if (strcmp(argv[1], "list") == 0 && argc == 3) {
		rc = list(&f);
	} else if (strcmp(argv[1], "resign") == 0 && argc == 3) {
		rc = resign(&f);
		if (rc == 0 && save(argv[2], &f) < 0)
			rc = 1;
	} else if (strcmp(argv[1], "set") == 0 && argc == 6) {
		pos = strtoull(argv[3], NULL, 10);
		width = strtoull(argv[4], NULL, 10);
		value = strtoull(argv[5], NULL, 10);
		if ((width != 2 && width != 4 && width != 8) || pos > f.len ||
		    f.len - pos < width) {
			free(f.b);
			return usage();
		}
		wr(f.b + pos, (unsigned int)width, value);
		rc = save(argv[2], &f) < 0;
	} else {
		rc = usage();
	}
	free(f.b);
	return rc;
}
