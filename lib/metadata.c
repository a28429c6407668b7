/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Thin-pool metadata: open an image or device, read and check the
 * superblock (and, on request, the held metadata snapshot's copy of it),
 * and read 4096-byte metadata blocks: from memory, or from a file or
 * device through the read-ahead pool (lib/readahead.c).
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base.h"
#include "metadata.h"
#include "dm.h"

#define THIN_SUPERBLOCK_MAGIC 27022010u
#define SUPERBLOCK_CSUM_XOR 160774u
#define THIN_VERSION_MIN 1u
#define THIN_VERSION_MAX 2u
#define METADATA_BLOCK_SIZE_SECTORS (DMREPL_MD_BLOCK_SIZE / 512)
#define MAX_METADATA_BLOCKS (UINT64_C(1) << 32)

/* Byte offsets in the superblock. */
enum {
	SB_CSUM = 0,
	SB_BLOCKNR = 8,
	SB_MAGIC = 32,
	SB_VERSION = 40,
	SB_TIME = 44,
	SB_TRANS_ID = 48,
	SB_HELD_ROOT = 56,
	SB_DATA_SM_ROOT = 64,	   /* starts with le64 nr_blocks */
	SB_METADATA_SM_ROOT = 192, /* likewise */
	SB_DATA_MAPPING_ROOT = 320,
	SB_DEVICE_DETAILS_ROOT = 328,
	SB_DATA_BLOCK_SIZE = 336,
	SB_METADATA_BLOCK_SIZE = 340,
};

struct dmrepl_metadata {
	int refcount;
	struct dmrepl_ctx *ctx;
	char *name;
	int fd;
	const uint8_t *mem; /* memory-backed source, or NULL */
	size_t mem_size;
	struct dmrepl_readahead *ra; /* NULL: memory, or DMREPL_READAHEAD=off */
	struct dmrepl_pool_info info;
	uint64_t mapping_root;
	uint64_t details_root;
	uint64_t blocks_read;
	void (*release_fn)(void *data);
	void *release_data;
};

/* The fields of one superblock that the reader uses. */
struct superblock {
	uint64_t held_root;
	uint64_t trans_id;
	uint64_t nr_data_blocks;
	uint64_t nr_metadata_blocks;
	uint64_t mapping_root;
	uint64_t details_root;
	uint32_t time;
	uint32_t data_block_size;
};

void *dmrepl_metadata_block_alloc(void)
{
	void *buf;

	if (posix_memalign(&buf, DMREPL_MD_BLOCK_SIZE, DMREPL_MD_BLOCK_SIZE))
		return NULL;
	return buf;
}

static int read_mem(struct dmrepl_metadata *md, uint64_t off, void *buf,
		    size_t *ret_got)
{
	size_t n = 0;

	if (off < md->mem_size) {
		n = md->mem_size - off;
		if (n > DMREPL_MD_BLOCK_SIZE)
			n = DMREPL_MD_BLOCK_SIZE;
		memcpy(buf, md->mem + off, n);
	}
	*ret_got = n;
	return 0;
}

static int read_fd(struct dmrepl_metadata *md, uint64_t off, void *buf,
		   size_t *ret_got)
{
	size_t got = 0;

	while (got < DMREPL_MD_BLOCK_SIZE) {
		ssize_t n =
		    pread(md->fd, (uint8_t *)buf + got,
			  DMREPL_MD_BLOCK_SIZE - got, (off_t)(off + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	*ret_got = got;
	return 0;
}

/* Read without the bounds check: used for the superblock itself. */
static int read_raw(struct dmrepl_metadata *md, uint64_t blocknr, void *buf)
{
	uint64_t off = blocknr * DMREPL_MD_BLOCK_SIZE;
	size_t got = 0;
	int r;

	if (md->mem)
		r = read_mem(md, off, buf, &got);
	else if (md->ra)
		r = dmrepl_readahead_read(md->ra, blocknr, buf, &got);
	else
		r = read_fd(md, off, buf, &got);
	if (r < 0) {
		err(md->ctx, "%s: cannot read metadata block %" PRIu64 ": %s",
		    md->name, blocknr, strerror(-r));
		return -EIO;
	}
	if (got < DMREPL_MD_BLOCK_SIZE) {
		err(md->ctx,
		    "%s: metadata block %" PRIu64 ": short read (%zu of "
		    "%u bytes): is the image truncated?",
		    md->name, blocknr, got, DMREPL_MD_BLOCK_SIZE);
		return -EIO;
	}
	md->blocks_read++;
	return 0;
}

int dmrepl_metadata_read_block(struct dmrepl_metadata *md, uint64_t blocknr,
			       void *buf)
{
	if (blocknr >= md->info.nr_metadata_blocks) {
		err(md->ctx,
		    "%s: metadata block %" PRIu64 " is past the end of "
		    "the metadata (%" PRIu64
		    " blocks)" DAMAGED_HINT,
		    md->name, blocknr, md->info.nr_metadata_blocks);
		return -EBADMSG;
	}
	return read_raw(md, blocknr, buf);
}

static int check_superblock(struct dmrepl_metadata *md, const uint8_t *b,
			    uint64_t blocknr, const char *what)
{
	uint32_t csum, version;

	if (get_le64(b, SB_MAGIC) != THIN_SUPERBLOCK_MAGIC) {
		err(md->ctx,
		    "%s: %s (block %" PRIu64 "): bad magic %" PRIu64
		    ", expected %u: not thin-pool metadata",
		    md->name, what, blocknr, get_le64(b, SB_MAGIC),
		    THIN_SUPERBLOCK_MAGIC);
		return -EBADMSG;	/* not a damage: not thin metadata */
	}
	csum = dmrepl_crc32c(0xffffffffu, b + 4, DMREPL_MD_BLOCK_SIZE - 4) ^
	       SUPERBLOCK_CSUM_XOR;
	if (csum != get_le32(b, SB_CSUM)) {
		err(md->ctx,
		    "%s: %s (block %" PRIu64 "): bad checksum 0x%08" PRIx32
		    ", computed 0x%08" PRIx32 DAMAGED_HINT,
		    md->name, what, blocknr, get_le32(b, SB_CSUM), csum);
		return -EBADMSG;
	}
	if (get_le64(b, SB_BLOCKNR) != blocknr) {
		err(md->ctx,
		    "%s: %s (block %" PRIu64 "): records block number %" PRIu64 DAMAGED_HINT,
		    md->name, what, blocknr, get_le64(b, SB_BLOCKNR));
		return -EBADMSG;
	}
	version = get_le32(b, SB_VERSION);
	if (version < THIN_VERSION_MIN || version > THIN_VERSION_MAX) {
		err(md->ctx,
		    "%s: %s (block %" PRIu64 "): unsupported metadata "
		    "version %" PRIu32 " (this reader knows %u to %u)",
		    md->name, what, blocknr, version, THIN_VERSION_MIN,
		    THIN_VERSION_MAX);
		return -EBADMSG;	/* not a damage: a newer format */
	}
	if (get_le32(b, SB_METADATA_BLOCK_SIZE) !=
	    METADATA_BLOCK_SIZE_SECTORS) {
		err(md->ctx,
		    "%s: %s (block %" PRIu64 "): metadata block size %" PRIu32
		    " sectors, expected %u" DAMAGED_HINT,
		    md->name, what, blocknr,
		    get_le32(b, SB_METADATA_BLOCK_SIZE),
		    METADATA_BLOCK_SIZE_SECTORS);
		return -EBADMSG;
	}
	return 0;
}

static void parse_superblock(const uint8_t *b, struct superblock *sb)
{
	sb->held_root = get_le64(b, SB_HELD_ROOT);
	sb->trans_id = get_le64(b, SB_TRANS_ID);
	sb->nr_data_blocks = get_le64(b, SB_DATA_SM_ROOT);
	sb->nr_metadata_blocks = get_le64(b, SB_METADATA_SM_ROOT);
	sb->mapping_root = get_le64(b, SB_DATA_MAPPING_ROOT);
	sb->details_root = get_le64(b, SB_DEVICE_DETAILS_ROOT);
	sb->time = get_le32(b, SB_TIME);
	sb->data_block_size = get_le32(b, SB_DATA_BLOCK_SIZE);
}

static int read_superblock(struct dmrepl_metadata *md, uint64_t blocknr,
			   const char *what, void *buf, struct superblock *sb)
{
	int r;

	r = read_raw(md, blocknr, buf);
	if (r < 0)
		return r;
	r = check_superblock(md, buf, blocknr, what);
	if (r < 0)
		return r;
	parse_superblock(buf, sb);
	return 0;
}

static int check_geometry(struct dmrepl_metadata *md,
			  const struct superblock *sb)
{
	if (sb->data_block_size == 0) {
		err(md->ctx, "%s: superblock (block 0): data block size is 0" DAMAGED_HINT,
		    md->name);
		return -EBADMSG;
	}
	/* dm-thin metadata is at most 16 GiB (2^22 blocks): far below this */
	if (sb->nr_metadata_blocks == 0 ||
	    sb->nr_metadata_blocks > MAX_METADATA_BLOCKS) {
		err(md->ctx,
		    "%s: superblock (block 0): the metadata space map "
		    "has %" PRIu64 " blocks" DAMAGED_HINT,
		    md->name, sb->nr_metadata_blocks);
		return -EBADMSG;
	}
	return 0;
}

static void set_info(struct dmrepl_metadata *md, const struct superblock *sb,
		     const struct superblock *roots)
{
	md->info = (struct dmrepl_pool_info){
	    .transaction_id = roots->trans_id,
	    .held_root_block = sb->held_root,
	    .data_block_size_sectors = sb->data_block_size,
	    .nr_data_blocks = sb->nr_data_blocks,
	    .nr_metadata_blocks = sb->nr_metadata_blocks,
	    .time = roots->time,
	    .using_held_root = roots != sb,
	};
	md->mapping_root = roots->mapping_root;
	md->details_root = roots->details_root;
}

/*
 * The held snapshot is a copy of the superblock, written at reservation
 * time to its own block; its space map roots are zeroed, so the sizes
 * come from the live superblock.
 */
static int read_held_root(struct dmrepl_metadata *md, void *buf,
			  const struct superblock *sb, struct superblock *held)
{
	if (sb->held_root == 0) {
		err(md->ctx,
		    "%s: no metadata snapshot is held: reserve one with "
		    "'dmsetup message POOL 0 reserve_metadata_snap'",
		    md->name);
		return -ENODATA;
	}
	if (sb->held_root >= sb->nr_metadata_blocks) {
		err(md->ctx,
		    "%s: superblock (block 0): held root %" PRIu64 " is "
		    "past the end of the metadata (%" PRIu64 " blocks)" DAMAGED_HINT,
		    md->name, sb->held_root, sb->nr_metadata_blocks);
		return -EBADMSG;
	}
	return read_superblock(md, sb->held_root, "held metadata snapshot", buf,
			       held);
}

static int load_superblocks(struct dmrepl_metadata *md, unsigned int flags)
{
	struct superblock sb, held;
	void *buf;
	int r;

	buf = dmrepl_metadata_block_alloc();
	if (!buf)
		return -ENOMEM;
	r = read_superblock(md, 0, "superblock", buf, &sb);
	if (r == 0)
		r = check_geometry(md, &sb);
	if (r == 0 && (flags & DMREPL_METADATA_USE_HELD_ROOT))
		r = read_held_root(md, buf, &sb, &held);
	if (r == 0)
		set_info(md, &sb,
			 flags & DMREPL_METADATA_USE_HELD_ROOT ? &held : &sb);
	free(buf);
	return r;
}

static struct dmrepl_metadata *metadata_alloc(struct dmrepl_ctx *ctx,
					      const char *name)
{
	struct dmrepl_metadata *md;

	md = calloc(1, sizeof(*md));
	if (!md)
		return NULL;
	md->name = strdup(name);
	if (!md->name) {
		free(md);
		return NULL;
	}
	md->refcount = 1;
	md->fd = -1;
	md->ctx = dmrepl_ref(ctx);
	return md;
}

static void metadata_free(struct dmrepl_metadata *md)
{
	dmrepl_readahead_free(md->ra);
	if (md->fd >= 0)
		close(md->fd);
	if (md->release_fn)
		md->release_fn(md->release_data);
	dbg(md->ctx, "%s: metadata closed after %" PRIu64 " block reads",
	    md->name, md->blocks_read);

	dmrepl_unref(md->ctx);
	free(md->name);
	free(md);
}

/*
 * The superblock copy at @blocknr of the metadata device @path, read
 * with O_DIRECT (the kernel writes past the page cache) and checked as a
 * superblock: magic, checksum, and the block number it records.
 */
int dmrepl_metadata_read_copy(struct dmrepl_ctx *ctx, const char *path,
			      uint64_t blocknr, struct dmrepl_snap_copy *ret)
{
	struct dmrepl_metadata *md;
	struct superblock sb;
	void *buf = NULL;
	int r;

	if (!ctx || !path || !ret)
		return -EINVAL;
	md = metadata_alloc(ctx, path);
	if (!md)
		return -ENOMEM;
	r = -ENOMEM;
	buf = dmrepl_metadata_block_alloc();
	if (!buf)
		goto out;
	md->fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (md->fd < 0) {
		r = -errno;
		err(ctx, "cannot open %s: %s", path, strerror(-r));
		goto out;
	}
	r = read_superblock(md, blocknr, "held metadata snapshot", buf, &sb);
	if (r == 0)
		*ret = (struct dmrepl_snap_copy){
		    .trans_id = sb.trans_id,
		    .mapping_root = sb.mapping_root,
		    .details_root = sb.details_root,
		    .time = sb.time,
		};
out:
	free(buf);
	metadata_free(md);
	return r;
}

/*
 * A pool's kernel writes its metadata device with bios, past the block
 * device's page cache: a buffered read can return a stale block. Block
 * devices are therefore always read with O_DIRECT.
 */
static int direct_for_block_device(struct dmrepl_metadata *md)
{
	struct stat st;
	int fl;

	if (fstat(md->fd, &st) < 0 || !S_ISBLK(st.st_mode))
		return 0;
	fl = fcntl(md->fd, F_GETFL);
	if (fl >= 0 && (fl & O_DIRECT))
		return 0;
	if (fl < 0 || fcntl(md->fd, F_SETFL, fl | O_DIRECT) < 0) {
		int e = errno;

		err(md->ctx, "%s: cannot read the block device with O_DIRECT: %s",
		    md->name, strerror(e));
		return -e;
	}
	return 0;
}

/* The read-ahead pool, as DMREPL_READAHEAD says (see the header). */
static int setup_readahead(struct dmrepl_metadata *md)
{
	enum dmrepl_readahead_mode mode = DMREPL_READAHEAD_URING;
	unsigned int nr_blocks = DMREPL_READAHEAD_BLOCKS;
	const char *env = secure_getenv("DMREPL_READAHEAD");

	if (env && dmrepl_readahead_parse(env, &mode, &nr_blocks) < 0) {
		warn(md->ctx,
		     "ignoring DMREPL_READAHEAD='%s': expected uring, sync "
		     "or off, optionally followed by :BLOCKS (8-4096)",
		     env);
		mode = DMREPL_READAHEAD_URING;
		nr_blocks = DMREPL_READAHEAD_BLOCKS;
	}
	if (mode == DMREPL_READAHEAD_OFF)
		return 0;
	/*
	 * The walk reads ahead exactly the blocks it needs; the kernel's
	 * read-ahead around each of them (on a file read through the page
	 * cache) would only read more.
	 */
	posix_fadvise(md->fd, 0, 0, POSIX_FADV_RANDOM);
	return dmrepl_readahead_new(md->ctx, md->fd, md->name, mode, nr_blocks,
				    &md->ra);
}

static int open_device(struct dmrepl_metadata *md, unsigned int flags)
{
	int oflags = O_RDONLY | O_CLOEXEC;
	int e;

	if (flags & DMREPL_METADATA_DIRECT)
		oflags |= O_DIRECT;
	md->fd = open(md->name, oflags);
	if (md->fd >= 0) {
		int r = direct_for_block_device(md);

		return r < 0 ? r : setup_readahead(md);
	}
	e = errno;
	if (e == EINVAL && (flags & DMREPL_METADATA_DIRECT))
		err(md->ctx, "cannot open %s: it does not support O_DIRECT reads",
		    md->name);
	else
		err(md->ctx, "cannot open %s: %s", md->name, strerror(e));
	return -e;
}

static int finish_open(struct dmrepl_metadata *md, unsigned int flags,
		       struct dmrepl_metadata **ret_md)
{
	int r;

	r = load_superblocks(md, flags);
	if (r < 0) {
		metadata_free(md);
		return r;
	}
	dbg(md->ctx,
	    "%s: transaction %" PRIu64 ", mapping root %" PRIu64
	    ", details root %" PRIu64 "%s",
	    md->name, md->info.transaction_id, md->mapping_root,
	    md->details_root,
	    md->info.using_held_root ? " (held snapshot)" : "");
	*ret_md = md;
	return 0;
}

static bool valid_flags(unsigned int flags)
{
	return !(flags & ~(unsigned int)(DMREPL_METADATA_USE_HELD_ROOT |
					 DMREPL_METADATA_DIRECT));
}

DMREPL_EXPORT int dmrepl_metadata_open(struct dmrepl_ctx *ctx, const char *path,
				       unsigned int flags,
				       struct dmrepl_metadata **ret_md)
{
	struct dmrepl_metadata *md;
	int r;

	if (!ctx || !path || !ret_md || !valid_flags(flags))
		return -EINVAL;
	md = metadata_alloc(ctx, path);
	if (!md)
		return -ENOMEM;
	r = open_device(md, flags);
	if (r < 0) {
		metadata_free(md);
		return r;
	}
	return finish_open(md, flags, ret_md);
}

int dmrepl_metadata_open_memory(struct dmrepl_ctx *ctx, const void *data,
				size_t size, const char *name,
				unsigned int flags,
				struct dmrepl_metadata **ret_md)
{
	struct dmrepl_metadata *md;

	if (!ctx || (!data && size) || !name || !ret_md || !valid_flags(flags))
		return -EINVAL;
	md = metadata_alloc(ctx, name);
	if (!md)
		return -ENOMEM;
	md->mem = data;
	md->mem_size = size;
	return finish_open(md, flags, ret_md);
}

DMREPL_EXPORT struct dmrepl_metadata *
dmrepl_metadata_ref(struct dmrepl_metadata *md)
{
	if (md)
		md->refcount++;
	return md;
}

DMREPL_EXPORT struct dmrepl_metadata *
dmrepl_metadata_unref(struct dmrepl_metadata *md)
{
	if (md && --md->refcount == 0)
		metadata_free(md);
	return NULL;
}

DMREPL_EXPORT int
dmrepl_metadata_get_pool_info(struct dmrepl_metadata *md,
			      struct dmrepl_pool_info *ret_info)
{
	if (!md || !ret_info)
		return -EINVAL;
	*ret_info = md->info;
	return 0;
}

void dmrepl_metadata_set_release_fn(struct dmrepl_metadata *md,
				    void (*fn)(void *data), void *data)
{
	md->release_fn = fn;
	md->release_data = data;
}

struct dmrepl_ctx *dmrepl_metadata_get_ctx(const struct dmrepl_metadata *md)
{
	return md->ctx;
}

const char *dmrepl_metadata_get_name(const struct dmrepl_metadata *md)
{
	return md->name;
}

uint64_t dmrepl_metadata_get_mapping_root(const struct dmrepl_metadata *md)
{
	return md->mapping_root;
}

uint64_t dmrepl_metadata_get_details_root(const struct dmrepl_metadata *md)
{
	return md->details_root;
}

uint64_t dmrepl_metadata_get_blocks_read(const struct dmrepl_metadata *md)
{
	return md->blocks_read;
}

unsigned int dmrepl_metadata_prefetch_room(const struct dmrepl_metadata *md)
{
	return md->ra ? dmrepl_readahead_room(md->ra) : 0;
}

size_t dmrepl_metadata_prefetch(struct dmrepl_metadata *md,
				const uint64_t *blocks, size_t n)
{
	uint64_t ok[DMREPL_READAHEAD_BATCH_MAX];
	size_t nr = 0;

	if (!md->ra)
		return 0;
	if (n > ARRAY_SIZE(ok))
		n = ARRAY_SIZE(ok);
	for (size_t i = 0; i < n; i++)
		if (blocks[i] < md->info.nr_metadata_blocks)
			ok[nr++] = blocks[i];
	dmrepl_readahead_submit(md->ra, ok, nr);
	return n;
}

void dmrepl_metadata_prefetch_forget(struct dmrepl_metadata *md,
				     uint64_t blocknr)
{
	if (md->ra)
		dmrepl_readahead_forget(md->ra, blocknr);
}

const void *dmrepl_metadata_prefetch_peek(struct dmrepl_metadata *md,
					  uint64_t blocknr)
{
	return md->ra ? dmrepl_readahead_peek(md->ra, blocknr) : NULL;
}

void dmrepl_metadata_prefetch_mark(struct dmrepl_metadata *md,
				   uint64_t blocknr)
{
	if (md->ra)
		dmrepl_readahead_mark(md->ra, blocknr);
}

void dmrepl_metadata_set_refill(struct dmrepl_metadata *md,
				void (*fn)(void *data), void *data)
{
	if (md->ra)
		dmrepl_readahead_set_refill(md->ra, fn, data);
}

int dmrepl_metadata_get_readahead_stats(const struct dmrepl_metadata *md,
					struct dmrepl_readahead_stats *ret)
{
	if (!md->ra)
		return -ENODATA;
	dmrepl_readahead_get_stats(md->ra, ret);
	return 0;
}
