/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The replication stream: encoder and decoder (lib/stream.c).
 *
 * doc/stream-format.md is the specification; this is its C face. The
 * codec knows nothing of pools or devices: send.c feeds it extents and
 * data, receive.c applies what it decodes.
 *
 * Wire layout, all integers little-endian:
 *
 *   header (header_len bytes, >= 264, <= 4096)
 *     0  magic "DMREPLST"          8 bytes
 *     8  version (1)               u16
 *    10  header_len                u16
 *    12  required_flags            u32   unknown bit set: refuse
 *    16  optional_flags            u32   unknown bits: ignore
 *    20  data_block_size (bytes)   u32   > 0, multiple of 512
 *    24  volume_size (bytes)       u64   > 0, multiple of 512
 *    32  resume_offset (bytes)     u64   0 unless FLAG_RESUMED
 *    40  time (sender, unix s)     u64
 *    48  stream_id                 16 bytes, random per send
 *    64  source pool               char[128], NUL-padded, NUL-terminated
 *   192  snapshot identity         32 bytes (see below)
 *   224  base identity             32 bytes, all zero unless FLAG_BASE
 *   256  source name (with OPT_NAME)   char[128], as source pool;
 *        header_len 392 then
 *   ...  (fields of later minor versions, up to header_len - 8)
 *   header_len - 8: XXH3-64 (seed 0) of every header byte before it
 *
 *   identity: thin_id u64, creation_time u32, reserved u32 (0),
 *             mapping root u64, mapped blocks u64
 *
 *   record header (40 bytes), then payload_len bytes of payload
 *     0  type          u16   bit 15 set: optional (unknown: skip)
 *     2  flags         u16   bit 0: payload is a zstd frame (DATA)
 *     4  payload_len   u32   <= DMREPL_STREAM_MAX_PAYLOAD
 *     8  seq           u64   0, 1, 2, ... in this stream
 *    16  offset        u64   bytes into the volume
 *    24  length        u64   bytes of the volume
 *    32  checksum      u64   XXH3-64 (seed 0) of bytes 0..31, then
 *                            the payload as on the wire
 *
 *   DATA        offset, length (multiples of 512, length > 0 and
 *               <= DMREPL_STREAM_MAX_DATA); payload: length bytes, or
 *               a zstd frame that decompresses to exactly length bytes
 *   DISCARD     offset, length; no payload: the range is unmapped
 *   ZERO        offset, length; no payload: the range reads as zeroes
 *   CHECKPOINT  offset (a multiple of 512): every change below it has
 *               been sent; length 0, no payload
 *   END         offset 0, length 0; payload 32 bytes: u64 records
 *               before END, u64 DATA bytes (uncompressed), 16 bytes
 *               XXH3-128 (seed 0) digest of every stream byte before
 *               the END record (high 64 bits first, each little-endian)
 *
 * Ranges (DATA, DISCARD, ZERO) come in order and do not overlap: each
 * starts at or after the end of the one before, and at or after the
 * last CHECKPOINT's offset (and resume_offset); each ends within
 * volume_size. A CHECKPOINT's offset is >= the end of every range
 * before it and never decreases.
 */
#ifndef DMREPL_STREAM_H
#define DMREPL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"
#include "replication.h"

#define DMREPL_STREAM_MAGIC "DMREPLST"
#define DMREPL_STREAM_VERSION 1
#define DMREPL_STREAM_HEADER_LEN 264u
#define DMREPL_STREAM_HEADER_LEN_NAME 392u	/* with the source's name */
#define DMREPL_STREAM_MAX_HEADER_LEN 4096u
#define DMREPL_STREAM_RECORD_LEN 40u
#define DMREPL_STREAM_MAX_DATA (4u << 20)	/* bytes of volume per DATA */
/* A zstd frame may be a little larger than its input. */
#define DMREPL_STREAM_MAX_PAYLOAD (DMREPL_STREAM_MAX_DATA + (64u << 10))
#define DMREPL_STREAM_END_PAYLOAD 32u

/* required_flags */
enum {
	DMREPL_STREAM_FLAG_ZSTD = 1u << 0,	/* DATA payloads may be zstd */
	DMREPL_STREAM_FLAG_BASE = 1u << 1,	/* incremental: base identity set */
	DMREPL_STREAM_FLAG_RESUMED = 1u << 2,	/* continues at resume_offset */
	DMREPL_STREAM_KNOWN_REQUIRED = 0x7u,
};

/* optional_flags */
enum {
	/* Another stream follows this one on the same channel (a chain). */
	DMREPL_STREAM_OPT_MORE = 1u << 0,
	/* The header holds the source snapshot's name ("VG/LV"). */
	DMREPL_STREAM_OPT_NAME = 1u << 1,
};

enum dmrepl_stream_type {
	DMREPL_REC_DATA = 1,
	DMREPL_REC_DISCARD = 2,
	DMREPL_REC_ZERO = 3,
	DMREPL_REC_CHECKPOINT = 4,
	DMREPL_REC_END = 5,
	DMREPL_REC_OPTIONAL = 0x8000,	/* a bit of the type */
};

enum {
	DMREPL_REC_FLAG_ZSTD = 1u << 0,
};

struct dmrepl_stream_header {
	uint32_t required_flags;
	uint32_t optional_flags;
	uint32_t data_block_size;
	uint64_t volume_size;
	uint64_t resume_offset;
	uint64_t time;
	uint8_t stream_id[16];
	char src_pool[128];
	char src_name[128];		/* "" unless DMREPL_STREAM_OPT_NAME */
	struct dmrepl_thin_ident snap;
	struct dmrepl_thin_ident base;	/* valid with DMREPL_STREAM_FLAG_BASE */
};

/* What the reader returns; also the END totals. */
struct dmrepl_stream_record {
	uint16_t type;			/* DMREPL_REC_* (never an optional one) */
	uint64_t seq;
	uint64_t offset;
	uint64_t length;
	const void *data;		/* DATA: length bytes, decompressed;
					   valid until the next read */
};

struct dmrepl_stream_stats {
	uint64_t records;		/* written or read, END excluded,
					   skipped optional ones included */
	uint64_t data_bytes;		/* DATA bytes of volume */
	uint64_t wire_bytes;		/* stream bytes, header included */
};

/* ---- writer ---- */

struct dmrepl_stream_writer;

/*
 * A writer on @fd (a pipe, a socket or a file; blocking). Writes the
 * header at once. With @zstd_level > 0, DATA payloads are compressed
 * (and sent raw when that does not make them smaller), and the header
 * gets DMREPL_STREAM_FLAG_ZSTD. The caller fills @h but for the flags
 * the writer sets itself (ZSTD) and stream_id (random when all zero).
 * Return: 0, -EINVAL (a field out of range), -ENOMEM, or the write's
 * -errno (-EPIPE when the reader went away); logged, naming @name.
 */
int dmrepl_stream_writer_new(struct dmrepl_ctx *ctx, int fd, const char *name,
			     const struct dmrepl_stream_header *h,
			     int zstd_level,
			     struct dmrepl_stream_writer **ret);
/* @len <= DMREPL_STREAM_MAX_DATA; the writer checks the ordering rules. */
int dmrepl_stream_write_data(struct dmrepl_stream_writer *w, uint64_t offset,
			     const void *buf, uint32_t len);
int dmrepl_stream_write_discard(struct dmrepl_stream_writer *w,
				uint64_t offset, uint64_t len);
int dmrepl_stream_write_zero(struct dmrepl_stream_writer *w, uint64_t offset,
			     uint64_t len);
/* Also flushes the writer's buffer. */
int dmrepl_stream_write_checkpoint(struct dmrepl_stream_writer *w,
				   uint64_t offset);
/* END, then flush. Nothing may be written after it. */
int dmrepl_stream_write_end(struct dmrepl_stream_writer *w);
void dmrepl_stream_writer_get_stats(const struct dmrepl_stream_writer *w,
				    struct dmrepl_stream_stats *ret);
/* Frees without writing END: the reader sees a truncated stream. */
void dmrepl_stream_writer_free(struct dmrepl_stream_writer *w);

/* ---- reader ---- */

struct dmrepl_stream_reader;

/*
 * A reader of @fd; @name ("standard input") names it in errors. It reads
 * exactly the stream's bytes and nothing after END, so a chain's next
 * stream (DMREPL_STREAM_OPT_MORE) is left on @fd for the next reader.
 */
int dmrepl_stream_reader_new(struct dmrepl_ctx *ctx, int fd, const char *name,
			     struct dmrepl_stream_reader **ret);
/* A reader of @len bytes at @buf (not copied; tests and fuzzing). */
int dmrepl_stream_reader_new_mem(struct dmrepl_ctx *ctx, const void *buf,
				 size_t len, struct dmrepl_stream_reader **ret);
/*
 * Read and check the header: magic, version, length, checksum, known
 * required flags, sizes. Must be called once, first.
 * Return: 0, or -errno as for read_record.
 */
int dmrepl_stream_read_header(struct dmrepl_stream_reader *r,
			      struct dmrepl_stream_header *ret);
/*
 * Read the next record, checked: checksum, seq, type, payload length,
 * ranges within volume_size and in order, DATA decompressed to exactly
 * length bytes. Optional records of unknown type are checked and
 * skipped. END is checked against the counts and the digest of what was
 * read; then the reader returns it (type DMREPL_REC_END) and the next
 * call returns -EINVAL.
 * Return: 0 (a record in @ret), or
 *   -ENODATA          the stream ended early (cleanly, between bytes:
 *                     a sender that was killed)
 *   -EBADMSG          a checksum, digest or count does not match, bad magic
 *   -EPROTO           a field breaks the format (order, seq, lengths,
 *                     payload of a record that has none, zstd errors)
 *   -EPROTONOSUPPORT  another version, an unknown required flag or
 *                     required record type; zstd without zstd support
 *   -ERANGE           a range past volume_size
 *   -ENOMEM, or the read's -errno
 * Each error is logged once, naming the reader, the record's seq and its
 * byte position in the stream, and what is wrong.
 */
int dmrepl_stream_read_record(struct dmrepl_stream_reader *r,
			      struct dmrepl_stream_record *ret);
void dmrepl_stream_reader_get_stats(const struct dmrepl_stream_reader *r,
				    struct dmrepl_stream_stats *ret);
void dmrepl_stream_reader_free(struct dmrepl_stream_reader *r);

/*
 * With @cancel set, a read or write that a signal interrupts returns
 * -ECANCELED (not logged) once *@cancel is non-zero, instead of going
 * on: a receiver waiting for a stalled sender can be stopped.
 */
void dmrepl_stream_writer_set_cancel(struct dmrepl_stream_writer *w,
				     const volatile int *cancel);
/* At most @bytes_per_sec bytes of the stream a second (0: no limit). */
void dmrepl_stream_writer_set_bwlimit(struct dmrepl_stream_writer *w,
				      uint64_t bytes_per_sec);
void dmrepl_stream_reader_set_cancel(struct dmrepl_stream_reader *r,
				     const volatile int *cancel);

/* An input with no byte at all gives -ENODATA without a log message. */
void dmrepl_stream_reader_set_quiet_empty(struct dmrepl_stream_reader *r);

/* The names used in messages and in doc/stream-format.md. */
const char *dmrepl_stream_type_name(uint16_t type);

/* XXH3-64 of the identity fields, for resume tokens (send.c). */
uint64_t dmrepl_stream_identity_hash(const struct dmrepl_stream_header *h);

#endif
