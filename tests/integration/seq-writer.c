/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * seq-writer - a volume's user for tests/integration/migrate.sh: writes
 * that carry their sequence number, each acknowledged only once it is
 * on stable storage, and a check of a copy against the acknowledgements.
 *
 *   seq-writer write DEV BLOCKS RATE_KIB   write 4 KiB records at random
 *                                          blocks of the first BLOCKS (of
 *                                          4 KiB) of DEV, O_DIRECT|O_DSYNC,
 *                                          about RATE_KIB KiB/s (0: as
 *                                          fast as it can), until killed;
 *                                          after each write returns, print
 *                                          "SEQ BLOCK" (the ack), flushed
 *   seq-writer load DEV RATE_KIB BS_KIB    a load, not a check (bench/
 *                                          migrate.sh): BS_KIB writes at
 *                                          random BS-aligned offsets of
 *                                          all of DEV, O_DIRECT, about
 *                                          RATE_KIB KiB/s, until SIGTERM;
 *                                          then "written BYTES" and exit 0
 *   seq-writer check DEV ACKS              for each block, the newest
 *                                          acknowledged SEQ in file ACKS
 *                                          must be on DEV (or a newer one:
 *                                          a write in flight lands too)
 *
 * A record: "dmrepl-seq" magic, SEQ and BLOCK as 64-bit numbers, the rest
 * a pattern of SEQ. Exit: 0; 1 a check failed (each bad block printed);
 * 2 usage or I/O error.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REC 4096
#define MAGIC "dmrepl-seq"

struct hdr {
	char magic[16];
	uint64_t seq, block;
};

static int usage(void)
{
	fprintf(stderr, "usage: seq-writer write DEV BLOCKS RATE_KIB | load DEV RATE_KIB BS_KIB |"
			" check DEV ACKS\n");
	return 2;
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int do_write(const char *dev, uint64_t blocks, uint64_t rate_kib)
{
	unsigned char *buf;
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32), seq = 0;
	struct timespec t0, now;
	int fd = open(dev, O_WRONLY | O_DIRECT | O_DSYNC);

	if (fd < 0 || !blocks || posix_memalign((void **)&buf, REC, REC)) {
		perror(dev);
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct hdr h = { MAGIC, ++seq, rnd(&seed) % blocks };

		memset(buf, (int)(seq & 0xff), REC);
		memcpy(buf, &h, sizeof(h));
		if (pwrite(fd, buf, REC, (off_t)(h.block * REC)) != REC) {
			perror("pwrite");
			return 2;
		}
		printf("%" PRIu64 " %" PRIu64 "\n", h.seq, h.block);
		if (rate_kib) {
			double want = (double)seq * 4 / (double)rate_kib, el;

			clock_gettime(CLOCK_MONOTONIC, &now);
			el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
			if (want > el)
				usleep((useconds_t)((want - el) * 1e6));
		}
	}
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static int do_load(const char *dev, uint64_t rate_kib, uint64_t bs_kib)
{
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32), n = 0, size = 0;
	size_t bs = (size_t)bs_kib * 1024;
	struct timespec t0, now;
	struct sigaction sa = { .sa_handler = on_term };
	unsigned char *buf;
	int fd = open(dev, O_WRONLY | O_DIRECT);

	if (fd < 0 || !bs || ioctl(fd, BLKGETSIZE64, &size) < 0 || size < bs ||
	    posix_memalign((void **)&buf, 4096, bs)) {
		perror(dev);
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!stop) {
		for (size_t i = 0; i < bs; i += 8) {	/* never all zeroes */
			uint64_t v = rnd(&seed) | 1;

			memcpy(buf + i, &v, 8);
		}
		if (pwrite(fd, buf, bs, (off_t)(rnd(&seed) % (size / bs) * bs)) != (ssize_t)bs) {
			if (stop)
				break;
			perror("pwrite");
			return 2;
		}
		n++;
		if (rate_kib) {
			double want = (double)n * (double)bs_kib / (double)rate_kib, el;

			clock_gettime(CLOCK_MONOTONIC, &now);
			el = (double)(now.tv_sec - t0.tv_sec) + (double)(now.tv_nsec - t0.tv_nsec) / 1e9;
			if (want > el && !stop)
				usleep((useconds_t)((want - el) * 1e6));
		}
	}
	printf("written %" PRIu64 "\n", n * bs);
	return 0;
}

static int do_check(const char *dev, const char *acks)
{
	FILE *f = fopen(acks, "r");
	uint64_t seq, block, max_block = 0, *want = NULL;
	unsigned char buf[REC];
	struct hdr h;
	int fd = open(dev, O_RDONLY), bad = 0, n = 0;

	if (!f || fd < 0) {
		perror(f ? dev : acks);
		return 2;
	}
	while (fscanf(f, "%" SCNu64 " %" SCNu64, &seq, &block) == 2) {
		if (block >= max_block) {
			uint64_t *w = realloc(want, (block + 1) * sizeof(*w));

			if (!w)
				return 2;
			memset(w + max_block, 0, (block + 1 - max_block) * sizeof(*w));
			want = w;
			max_block = block + 1;
		}
		if (seq > want[block])
			want[block] = seq;
	}
	fclose(f);
	for (uint64_t b = 0; b < max_block; b++) {
		if (!want[b])
			continue;
		n++;
		if (pread(fd, buf, REC, (off_t)(b * REC)) != REC) {
			perror("pread");
			return 2;
		}
		memcpy(&h, buf, sizeof(h));
		if (memcmp(h.magic, MAGIC, sizeof(MAGIC)) != 0 || h.block != b || h.seq < want[b] ||
		    buf[REC - 1] != (unsigned char)(h.seq & 0xff)) {
			printf("block %" PRIu64 ": acknowledged seq %" PRIu64 ", found %s %" PRIu64 "\n",
			       b, want[b],
			       memcmp(h.magic, MAGIC, sizeof(MAGIC)) ? "no record, seq" : "seq",
			       h.seq);
			bad++;
		}
	}
	printf("%d blocks acknowledged, %d wrong\n", n, bad);
	free(want);
	close(fd);
	return bad ? 1 : 0;
}

int main(int argc, char *argv[])
{
	if (argc == 5 && !strcmp(argv[1], "write"))
		return do_write(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	if (argc == 5 && !strcmp(argv[1], "load"))
		return do_load(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
	if (argc == 4 && !strcmp(argv[1], "check"))
		return do_check(argv[2], argv[3]);
	return usage();
}
