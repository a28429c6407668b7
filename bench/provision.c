/*
 * provision: make dm-thin map blocks of a thin device, fast.
 *
 * Usage: provision DEVICE BLOCK_BYTES range FIRST COUNT
 *        provision DEVICE BLOCK_BYTES random SEED COUNT NR_BLOCKS
 *
 *   range   writes blocks FIRST .. FIRST+COUNT-1 in order, several whole
 *           blocks per pwrite (device-mapper splits the bio per block)
 *   random  writes COUNT distinct blocks below NR_BLOCKS, drawn with
 *           splitmix64 from SEED, one block per pwrite, in the drawn order
 *
 * Each write covers whole blocks, with O_DIRECT: a write over a whole block
 * makes dm-thin map it (or break its sharing with a snapshot) without
 * zeroing or copying the old block.  The data written is zeros; in the
 * benchmark the pool's data device is dm-zero, which drops it.
 *
 * Prints "provision: wrote N blocks in S s (R blocks/s)" on stdout, and on
 * long runs the rate of every PROGRESS_BLOCKS blocks, to show how the
 * kernel's cost per block changes as the pool fills.
 * Exit status: 0 done, 1 an I/O or memory error, 2 a usage error.
 * Part of bench/, built by bench/mkimages.sh, never installed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_BYTES (1024 * 1024) /* per pwrite in range mode */
#define PROGRESS_BLOCKS 200000

struct target {
	int fd;
	const char *path;
	uint64_t block_bytes;
	void *buf;       /* zeros, CHUNK_BYTES or one block, aligned */
	uint64_t buf_bytes;
	uint64_t written_blocks;
	double t0, last_t;            /* start, last progress line */
	uint64_t last_blocks;
};

static void usage(void)
{
	fprintf(stderr,
		"Usage: provision DEVICE BLOCK_BYTES range FIRST COUNT\n"
		"       provision DEVICE BLOCK_BYTES random SEED COUNT NR_BLOCKS\n");
	exit(2);
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s || *end || *s == '-') {
		fprintf(stderr, "provision: %s: not a number: '%s'\n", what, s);
		usage();
	}
	return v;
}

static double now_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void progress(struct target *t)
{
	double now;

	if (t->written_blocks - t->last_blocks < PROGRESS_BLOCKS)
		return;
	now = now_secs();
	printf("provision: %" PRIu64 " blocks after %.1f s, %.0f blocks/s "
	       "lately\n", t->written_blocks, now - t->t0,
	       (t->written_blocks - t->last_blocks) / (now - t->last_t));
	fflush(stdout);
	t->last_blocks = t->written_blocks;
	t->last_t = now;
}

/* write_blocks: COUNT whole blocks from FIRST, at most buf_bytes at a time. */
static int write_blocks(struct target *t, uint64_t first, uint64_t count)
{
	uint64_t per_write = t->buf_bytes / t->block_bytes;

	while (count > 0) {
		uint64_t n = count < per_write ? count : per_write;
		size_t len = n * t->block_bytes;
		off_t off = (off_t)(first * t->block_bytes);
		ssize_t r = pwrite(t->fd, t->buf, len, off);

		if (r < 0 || (size_t)r != len) {
			int err = r < 0 ? errno : EIO;

			fprintf(stderr, "provision: %s: write of blocks %" PRIu64
				"..%" PRIu64 " failed: %s\n", t->path, first,
				first + n - 1, strerror(err));
			return -err;
		}
		t->written_blocks += n;
		progress(t);
		first += n;
		count -= n;
	}
	return 0;
}

/* splitmix64: a small, well-mixed generator; the seed fixes the pattern. */
static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int write_random(struct target *t, uint64_t seed, uint64_t count,
			uint64_t nr_blocks)
{
	uint8_t *seen;
	uint64_t done = 0;
	int r = 0;

	if (count > nr_blocks) {
		fprintf(stderr, "provision: cannot pick %" PRIu64
			" distinct blocks out of %" PRIu64 "\n", count, nr_blocks);
		return -EINVAL;
	}
	seen = calloc(nr_blocks / 8 + 1, 1);
	if (!seen)
		return -ENOMEM;
	while (done < count && r == 0) {
		uint64_t b = splitmix64(&seed) % nr_blocks;

		if (seen[b / 8] & (1u << (b % 8)))
			continue;
		seen[b / 8] |= 1u << (b % 8);
		r = write_blocks(t, b, 1);
		done++;
	}
	free(seen);
	return r;
}

static int open_target(struct target *t, const char *path,
		       uint64_t block_bytes)
{
	t->path = path;
	t->block_bytes = block_bytes;
	t->buf_bytes = block_bytes > CHUNK_BYTES ? block_bytes :
		       CHUNK_BYTES / block_bytes * block_bytes;
	t->written_blocks = 0;
	if (posix_memalign(&t->buf, 4096, t->buf_bytes))
		return -ENOMEM;
	memset(t->buf, 0, t->buf_bytes);
	t->fd = open(path, O_WRONLY | O_DIRECT);
	if (t->fd < 0) {
		int err = errno;

		fprintf(stderr, "provision: cannot open %s: %s\n", path,
			strerror(err));
		free(t->buf);
		return -err;
	}
	return 0;
}

static int run(struct target *t, int argc, char **argv)
{
	const char *mode = argv[3];

	if (strcmp(mode, "range") == 0 && argc == 6)
		return write_blocks(t, parse_u64(argv[4], "FIRST"),
				    parse_u64(argv[5], "COUNT"));
	if (strcmp(mode, "random") == 0 && argc == 7)
		return write_random(t, parse_u64(argv[4], "SEED"),
				    parse_u64(argv[5], "COUNT"),
				    parse_u64(argv[6], "NR_BLOCKS"));
	usage();
	return -EINVAL;
}

int main(int argc, char **argv)
{
	struct target t;
	uint64_t block_bytes;
	double t0, secs;
	int r;

	if (argc < 4)
		usage();
	block_bytes = parse_u64(argv[2], "BLOCK_BYTES");
	if (block_bytes == 0 || block_bytes % 4096)
		usage();
	if (open_target(&t, argv[1], block_bytes) < 0)
		return 1;
	t0 = now_secs();
	t.t0 = t.last_t = t0;
	t.last_blocks = 0;
	r = run(&t, argc, argv);
	if (r == 0 && fsync(t.fd) < 0) {
		fprintf(stderr, "provision: fsync %s: %s\n", t.path,
			strerror(errno));
		r = -EIO;
	}
	secs = now_secs() - t0;
	close(t.fd);
	free(t.buf);
	printf("provision: wrote %" PRIu64 " blocks in %.1f s (%.0f blocks/s)\n",
	       t.written_blocks, secs, secs > 0 ? t.written_blocks / secs : 0);
	return r == 0 ? 0 : 1;
}
