/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The progress display: JSON lines and their throttling, the smoothed
 * rate and ETA, human units, and the bar on a terminal (a pty) and its
 * absence elsewhere. The clock is a fake one the tests move.
 */
#include <fcntl.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "../tools/progress.h"
#include "unit.h"

#define MS 1000000ull
#define SEC 1000000000ull

static uint64_t fake_now;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static int setup(void)
{
	progress_test_set_clock(fake_clock);
	return 0;
}

static int teardown(void)
{
	progress_test_set_clock(NULL);
	progress_test_set_files(NULL, NULL);
	return 0;
}

static void expect_bytes(uint64_t bytes, const char *want)
{
	char buf[32];

	progress_format_bytes(bytes, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, want);
	if (strcmp(buf, want) != 0)
		fprintf(stderr, "\n  %llu bytes: got '%s', want '%s'",
			(unsigned long long)bytes, buf, want);
}

static void test_human_units(void)
{
	expect_bytes(0, "0 B");
	expect_bytes(1023, "1023 B");
	expect_bytes(1024, "1.00 KiB");
	expect_bytes(1536, "1.50 KiB");
	expect_bytes(10ull << 20, "10.0 MiB");
	expect_bytes(999ull << 20, "999 MiB");
	expect_bytes(1023ull << 20, "1023 MiB");
	expect_bytes(3ull << 30, "3.00 GiB");
	expect_bytes((150ull << 30) + (1ull << 29), "150 GiB");
	expect_bytes(2ull << 40, "2.00 TiB");
	expect_bytes(UINT64_MAX, "16.0 EiB");
}

/* Everything written to a memory stream, as a string to free(). */
struct capture {
	char *buf;
	size_t len;
	FILE *f;
};

static void capture_open(struct capture *c)
{
	c->buf = NULL;
	c->len = 0;
	c->f = open_memstream(&c->buf, &c->len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c->f);
}

static void capture_close(struct capture *c)
{
	fclose(c->f);
}

/* A steady 100 MB/s toward 1 GB, reported every 250 ms from t=0 to @until. */
static void steady_updates(struct progress *p, uint64_t until_ns)
{
	for (fake_now = 0; fake_now <= until_ns; fake_now += 250 * MS)
		progress_update(p, "copy", fake_now / 10, 1000000000);
}

static void test_json_lines(void)
{
	struct capture out, err;
	struct progress *p;

	capture_open(&out);
	capture_open(&err);
	progress_test_set_files(out.f, err.f);
	p = progress_new(PROGRESS_JSON, "replicate");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	/* Nine updates: only those at 0, 1 s and 2 s are printed. */
	steady_updates(p, 2 * SEC);
	fflush(out.f);
	CU_ASSERT_STRING_EQUAL(out.buf,
		"{\"type\":\"progress\",\"what\":\"replicate\",\"phase\":\"copy\","
		"\"done_bytes\":0,\"total_bytes\":1000000000,\"rate_bytes_per_sec\":0}\n"
		"{\"type\":\"progress\",\"what\":\"replicate\",\"phase\":\"copy\","
		"\"done_bytes\":100000000,\"total_bytes\":1000000000,"
		"\"rate_bytes_per_sec\":100000000,\"eta_seconds\":9}\n"
		"{\"type\":\"progress\",\"what\":\"replicate\",\"phase\":\"copy\","
		"\"done_bytes\":200000000,\"total_bytes\":1000000000,"
		"\"rate_bytes_per_sec\":100000000,\"eta_seconds\":8}\n");

	/* Held back by the throttle, then shown by progress_free(). */
	fake_now = 2500 * MS;
	progress_update(p, "copy", 250000000, 1000000000);
	fflush(out.f);
	CU_ASSERT_PTR_NULL(strstr(out.buf, "250000000"));
	progress_free(p);
	fflush(out.f);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf,
		"\"done_bytes\":250000000,\"total_bytes\":1000000000,"
		"\"rate_bytes_per_sec\":100000000,\"eta_seconds\":8}\n"));
	CU_ASSERT_EQUAL(err.len, 0);
	capture_close(&out);
	capture_close(&err);
	if (CU_get_number_of_failures())
		fprintf(stderr, "\n  printed:\n%s", out.buf);
	free(out.buf);
	free(err.buf);
}

static unsigned int count_lines(const char *s)
{
	unsigned int n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

static void test_json_throttle_last(void)
{
	struct capture out;
	struct progress *p;

	capture_open(&out);
	progress_test_set_files(out.f, NULL);
	p = progress_new(PROGRESS_JSON, "verify");
	/* 100 updates within one second: the first, and the last at free. */
	for (int i = 0; i < 100; i++) {
		fake_now = (uint64_t)i * 9 * MS;
		progress_update(p, "hash", (uint64_t)i, 99);
	}
	fflush(out.f);
	CU_ASSERT_EQUAL(count_lines(out.buf), 1);
	progress_free(p);
	fflush(out.f);
	CU_ASSERT_EQUAL(count_lines(out.buf), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf, "\"done_bytes\":99,\"total_bytes\":99,"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf, "\"eta_seconds\":0}\n"));

	/* Nothing pending: free prints nothing more. */
	p = progress_new(PROGRESS_JSON, "verify");
	fake_now = 0;
	progress_update(p, "hash", 1, 2);
	progress_free(p);
	fflush(out.f);
	CU_ASSERT_EQUAL(count_lines(out.buf), 3);
	capture_close(&out);
	free(out.buf);
}

/* A "copy" progress writing JSON lines into @out, at time 0. */
static struct progress *json_copy_progress(struct capture *out)
{
	capture_open(out);
	progress_test_set_files(out->f, NULL);
	fake_now = 0;
	return progress_new(PROGRESS_JSON, "copy");
}

static void test_rate_eta(void)
{
	struct capture out;
	struct progress *p = json_copy_progress(&out);

	progress_update(p, "copy", 0, 1000000000);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 0);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), -1);

	/* Less than 100 ms after the last sample: not a sample yet. */
	fake_now = 50 * MS;
	progress_update(p, "copy", 50000000, 1000000000);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 0);

	/* 100 MB in 1 s: 100 MB/s, 9 s left. */
	fake_now = 1 * SEC;
	progress_update(p, "copy", 100000000, 1000000000);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 100000000);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), 9);

	/* A stalled second weighs 1/(1+3): 75 MB/s; 900 MB left: 12 s. */
	fake_now = 2 * SEC;
	progress_update(p, "copy", 100000000, 1000000000);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 75000000);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), 12);

	/* 875 MB left at 75 MB/s: 11.67 s, rounded up. */
	fake_now = 3 * SEC;
	progress_update(p, "copy", 175000000, 1000000000);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 75000000);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), 11);

	/* Done: ETA 0 whatever the rate. */
	fake_now = 4 * SEC;
	progress_update(p, "copy", 1000000000, 1000000000);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), 0);

	/* A count that goes back (a new phase) forgets the rate. */
	fake_now = 5 * SEC;
	progress_update(p, "sync", 0, 1000);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 0);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), -1);

	/* No total: no ETA. */
	fake_now = 6 * SEC;
	progress_update(p, "sync", 500, 0);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 500);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), -1);
	progress_free(p);
	capture_close(&out);
	free(out.buf);
}

/*
 * Discards move nothing and finish at once: the rate counts the bytes
 * moved only, and the JSON lines show the discards apart.
 */
static void test_discards_apart(void)
{
	struct capture out;
	struct progress *p = json_copy_progress(&out);

	progress_set_discarded(p, 0);
	progress_update(p, "copy", 0, 1000000000);
	/* in 1 s: 100 MB copied and 500 MB discarded: 100 MB/s, not 600 */
	fake_now = 1 * SEC;
	progress_set_discarded(p, 500000000);
	progress_update(p, "copy", 600000000, 1000000000);
	CU_ASSERT_EQUAL(progress_test_get_rate(p), 100000000);
	CU_ASSERT_EQUAL(progress_test_get_eta(p), 4);
	fflush(out.f);
	CU_ASSERT_PTR_NOT_NULL(strstr(out.buf,
		"\"done_bytes\":600000000,\"total_bytes\":1000000000,"
		"\"discarded_bytes\":500000000,\"rate_bytes_per_sec\":100000000,"));
	progress_free(p);
	capture_close(&out);
	free(out.buf);
}

/* AUTO on a stderr that is not a terminal, and QUIET: not a byte. */
static void test_silent_modes(void)
{
	enum progress_mode modes[] = { PROGRESS_AUTO, PROGRESS_QUIET };
	FILE *out = tmpfile(), *err = tmpfile();

	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	progress_test_set_files(out, err);
	for (size_t m = 0; m < 2; m++) {
		struct progress *p = progress_new(modes[m], "copy");

		CU_ASSERT_PTR_NOT_NULL(p);
		steady_updates(p, 3 * SEC);
		progress_free(p);
	}
	fflush(out);
	fflush(err);
	CU_ASSERT_EQUAL(ftell(out), 0);
	CU_ASSERT_EQUAL(ftell(err), 0);
	fclose(out);
	fclose(err);

	/* NULL is accepted everywhere. */
	progress_update(NULL, "copy", 1, 2);
	progress_free(NULL);
}

/* Read what the pty master has, without waiting for more. */
static size_t drain(int master, char *buf, size_t size)
{
	size_t len = 0;
	ssize_t n;

	fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
	while (len + 1 < size && (n = read(master, buf + len, size - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	return len;
}

static void test_tty_bar(void)
{
	struct winsize ws = { .ws_row = 24, .ws_col = 100 };
	struct termios tio;
	int master, slave;
	unsigned int redraws = 0, updates = 0;
	static char buf[65536];
	struct progress *p;
	char *line, *save;
	FILE *err;

	if (openpty(&master, &slave, NULL, NULL, &ws) < 0) {
		fprintf(stderr, "\n  no pty available: tty bar not tested");
		CU_FAIL("openpty");
		return;
	}
	tcgetattr(slave, &tio);
	cfmakeraw(&tio);	/* no \n to \r\n translation */
	tcsetattr(slave, TCSANOW, &tio);
	err = fdopen(slave, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	progress_test_set_files(NULL, err);

	p = progress_new(PROGRESS_AUTO, "replicate");
	/* Every 40 ms for 2 s: redrawn at most every 100 ms. */
	for (fake_now = 0; fake_now <= 2 * SEC; fake_now += 40 * MS, updates++)
		progress_update(p, "copy", fake_now / 10 * 3, 1ull << 30);
	progress_free(p);
	fclose(err);
	drain(master, buf, sizeof(buf));
	close(master);

	CU_ASSERT(updates == 51);
	CU_ASSERT_EQUAL(buf[strlen(buf) - 1], '\n');
	for (line = strtok_r(buf, "\r\n", &save); line; line = strtok_r(NULL, "\r\n", &save)) {
		redraws++;
		/* One column short of the terminal, so the cursor never wraps. */
		CU_ASSERT_EQUAL(strlen(line), 99);
		CU_ASSERT(strncmp(line, "replicate copy  ", 16) == 0);
		CU_ASSERT_PTR_NOT_NULL(strstr(line, " / 1.00 GiB"));
		CU_ASSERT_PTR_NOT_NULL(strchr(line, '%'));
		CU_ASSERT_PTR_NOT_NULL(strstr(line, "ETA "));
		if (redraws == 10) {
			/* t = 1080 ms: 324 MB of 1 GiB at 300 MB/s, 2.5 s left. */
			CU_ASSERT_PTR_NOT_NULL(strstr(line, "309 MiB / 1.00 GiB   30% ["));
			CU_ASSERT_PTR_NOT_NULL(strstr(line, "] 286 MiB/s  ETA 0:03"));
			/* 99 - 41 - 20 columns for the bar: 36 inside, 30% filled. */
			CU_ASSERT_PTR_NOT_NULL(strstr(line, "% [##########..........................] "));
		}
	}
	/* 0, 120, 240, ... 1920 ms (each >= 100 ms after the last), then the last at free. */
	CU_ASSERT_EQUAL(redraws, 18);
	if (redraws != 18)
		fprintf(stderr, "\n  %u redraws", redraws);
}

/* On a narrow terminal the bar goes first, then the line is cut. */
static void test_tty_narrow(void)
{
	struct winsize ws = { .ws_row = 24, .ws_col = 50 };
	static char buf[4096];
	int master, slave;
	struct progress *p;
	FILE *err;

	if (openpty(&master, &slave, NULL, NULL, &ws) < 0) {
		CU_FAIL("openpty");
		return;
	}
	err = fdopen(slave, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(err);
	progress_test_set_files(NULL, err);
	p = progress_new(PROGRESS_AUTO, "verify");
	fake_now = 0;
	progress_update(p, "compare", 512ull << 20, 1ull << 30);
	progress_free(p);
	fclose(err);
	drain(master, buf, sizeof(buf));
	close(master);
	CU_ASSERT(strncmp(buf, "\rverify compare  512 MiB / 1.00 GiB   50% ", 42) == 0);
	CU_ASSERT_PTR_NULL(strchr(buf, '['));
	/* 49 columns, then the line end (\r\n: the pty's output processing). */
	CU_ASSERT_EQUAL(strcspn(buf + 1, "\r\n"), 49);
}

int main(void)
{
	static CU_TestInfo tests[] = {
		{ "human units", test_human_units },
		{ "JSON lines at most once a second", test_json_lines },
		{ "JSON: the last update is printed at free", test_json_throttle_last },
		{ "rate (moving average) and ETA", test_rate_eta },
		{ "AUTO without a TTY and QUIET print nothing", test_silent_modes },
		{ "TTY bar: width, content, throttle", test_tty_bar },
		{ "TTY bar on a narrow terminal", test_tty_narrow },
		{"discards counted apart", test_discards_apart},
    CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "progress", setup, teardown, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};

	return unit_run(suites);
}
