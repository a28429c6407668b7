/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Progress display: a bar redrawn in place on a terminal, or throttled
 * JSON lines. The rate is an exponential moving average of the rate
 * between samples, so one slow or fast moment does not swing the ETA.
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "json.h"
#include "progress.h"

#define NSEC_PER_SEC 1000000000ull
#define BAR_INTERVAL_NS (NSEC_PER_SEC / 10)
#define JSON_INTERVAL_NS NSEC_PER_SEC
/* A rate measured over less time than this is noise: wait for more. */
#define RATE_SAMPLE_NS (NSEC_PER_SEC / 10)
/* Time constant of the moving average: older samples fade over ~3 s. */
#define RATE_TAU_SEC 3.0
#define DEFAULT_WIDTH 80
#define LINE_MAX_WIDTH 512

struct progress {
	enum progress_mode mode;	/* AUTO became QUIET or the bar */
	bool bar;
	int tty_lock;			/* the terminal, flock()ed, or -1 */
	FILE *out, *err;
	char *what;
	char phase[32];
	uint64_t done, total;
	uint64_t discarded;		/* of done: unmapped, nothing moved */
	bool tracks_discards;
	/* The moving average and the sample it was last updated at. */
	double rate;
	bool have_rate;
	uint64_t sample_ns, sample_done;
	bool have_sample;
	/* When the last line was shown, and whether an update is not shown yet. */
	uint64_t shown_ns;
	bool shown, pending;
};

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t (*clock_fn)(void) = monotonic_ns;
static FILE *test_out, *test_err;

void progress_test_set_clock(uint64_t (*clock_ns)(void))
{
	clock_fn = clock_ns ? clock_ns : monotonic_ns;
}

void progress_test_set_files(FILE *out, FILE *err)
{
	test_out = out;
	test_err = err;
}

void progress_format_bytes(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	unsigned int u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " B", bytes);
		return;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	/* Three significant digits: 1.50 GiB, 15.0 GiB, 150 GiB. */
	if (v < 10)
		snprintf(buf, size, "%.2f %s", v, units[u]);
	else if (v < 100)
		snprintf(buf, size, "%.1f %s", v, units[u]);
	else
		snprintf(buf, size, "%.0f %s", v, units[u]);
}

/*
 * One bar a terminal: in `dmrepl send | dmrepl receive` both ends have
 * the same terminal on stderr, and two bars redrawn in place on one line
 * garble each other. The first to take a lock on the terminal draws; the
 * other shows nothing. (With ssh between them, the far end's terminal is
 * another one, or none.)
 */
static bool own_terminal(struct progress *p, int fd)
{
	char path[256];

	if (ttyname_r(fd, path, sizeof(path)) != 0)
		return true;	/* cannot tell: draw */
	p->tty_lock = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (p->tty_lock < 0)
		return true;
	if (flock(p->tty_lock, LOCK_EX | LOCK_NB) == 0)
		return true;
	close(p->tty_lock);
	p->tty_lock = -1;
	return false;
}

struct progress *progress_new(enum progress_mode mode, const char *what)
{
	struct progress *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->what = strdup(what ? what : "");
	if (!p->what) {
		free(p);
		return NULL;
	}
	p->out = test_out ? test_out : stdout;
	p->err = test_err ? test_err : stderr;
	p->mode = mode;
	p->tty_lock = -1;
	if (mode == PROGRESS_AUTO) {
		int fd = fileno(p->err);

		p->bar = fd >= 0 && isatty(fd) && own_terminal(p, fd);
		if (!p->bar)
			p->mode = PROGRESS_QUIET;
	}
	return p;
}

static void update_rate(struct progress *p, uint64_t now, uint64_t done)
{
	double dt, inst, alpha;

	if (!p->have_sample || done < p->sample_done || now < p->sample_ns) {
		/* The first update, or a count that went back: measure anew. */
		if (p->have_sample && done < p->sample_done)
			p->have_rate = false;
		p->have_sample = true;
		p->sample_ns = now;
		p->sample_done = done;
		return;
	}
	if (now - p->sample_ns < RATE_SAMPLE_NS)
		return;
	dt = (double)(now - p->sample_ns) / NSEC_PER_SEC;
	inst = (double)(done - p->sample_done) / dt;
	alpha = dt / (dt + RATE_TAU_SEC);
	p->rate = p->have_rate ? p->rate + alpha * (inst - p->rate) : inst;
	p->have_rate = true;
	p->sample_ns = now;
	p->sample_done = done;
}

uint64_t progress_test_get_rate(const struct progress *p)
{
	return p && p->have_rate ? (uint64_t)(p->rate + 0.5) : 0;
}

/* Seconds left at the current rate, rounded up; -1 when unknown. */
static int64_t eta_seconds(const struct progress *p)
{
	double left;

	if (p->total == 0)
		return -1;
	if (p->done >= p->total)
		return 0;
	if (!p->have_rate || p->rate < 1)
		return -1;
	left = (double)(p->total - p->done) / p->rate;
	if (left > 1e9)
		return -1;
	return (int64_t)left + (left > (double)(int64_t)left);
}

int64_t progress_test_get_eta(const struct progress *p)
{
	return p ? eta_seconds(p) : -1;
}

static void print_json(struct progress *p)
{
	int64_t eta = eta_seconds(p);
	struct json j;

	json_init(&j, p->out);
	json_open_object(&j, NULL);
	json_string(&j, "type", "progress");
	json_string(&j, "what", p->what);
	json_string(&j, "phase", p->phase);
	json_u64(&j, "done_bytes", p->done);
	json_u64(&j, "total_bytes", p->total);
	if (p->tracks_discards)
		json_u64(&j, "discarded_bytes", p->discarded);
	json_u64(&j, "rate_bytes_per_sec", progress_test_get_rate(p));
	if (eta >= 0)
		json_u64(&j, "eta_seconds", (uint64_t)eta);
	json_close_object(&j);
	json_end(&j);
}

static void format_eta(int64_t eta, char *buf, size_t size)
{
	if (eta < 0 || eta >= 100 * 3600)
		snprintf(buf, size, "--:--");
	else if (eta >= 3600)
		snprintf(buf, size, "%d:%02d:%02d", (int)(eta / 3600),
			 (int)(eta / 60 % 60), (int)(eta % 60));
	else
		snprintf(buf, size, "%d:%02d", (int)(eta / 60), (int)(eta % 60));
}

static unsigned int terminal_width(FILE *f)
{
	struct winsize ws;

	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col < LINE_MAX_WIDTH ? ws.ws_col : LINE_MAX_WIDTH;
	return DEFAULT_WIDTH;
}

/* "[#####.....]" of @width columns in all, or nothing when too narrow. */
static void format_bar(char *buf, size_t width, double fraction)
{
	size_t inner, filled;

	buf[0] = '\0';
	if (width < 7)
		return;
	inner = width - 2;
	filled = (size_t)(fraction * (double)inner);
	if (filled > inner)
		filled = inner;
	buf[0] = '[';
	memset(buf + 1, '#', filled);
	memset(buf + 1 + filled, '.', inner - filled);
	buf[inner + 1] = ']';
	buf[inner + 2] = '\0';
}

/*
 * "verify hash  1.50 GiB / 10.0 GiB  15% [###....]  150 MiB/s  ETA 1:02",
 * the bar taking what the terminal has left, the line one column short of
 * the width so the cursor never wraps.
 */
static void draw_bar(struct progress *p)
{
	char done[32], total[32], rate[32], eta[32], head[200], tail[96];
	char label[96];
	char disc[48] = "";
	char bar[LINE_MAX_WIDTH], line[LINE_MAX_WIDTH * 2];
	unsigned int width = terminal_width(p->err) - 1;
	size_t used;

	progress_format_bytes(p->done, done, sizeof(done));
	progress_format_bytes(p->total, total, sizeof(total));
	progress_format_bytes(progress_test_get_rate(p), rate, sizeof(rate));
	format_eta(eta_seconds(p), eta, sizeof(eta));
	if (p->discarded) {
		char d[32];

		progress_format_bytes(p->discarded, d, sizeof(d));
		snprintf(disc, sizeof(disc), " (%s discarded)", d);
	}
	/* "verify compare", but "copy", not "copy copy" */
	if (strcmp(p->what, p->phase) == 0 || !p->phase[0])
		snprintf(label, sizeof(label), "%s", p->what);
	else
		snprintf(label, sizeof(label), "%s %s", p->what, p->phase);
	if (p->total)
		snprintf(head, sizeof(head), "%s  %s / %s%s %4.0f%% ", label, done,
			 total, disc,
			 p->done >= p->total ? 100.0 : 100.0 * (double)p->done / (double)p->total);
	else
		snprintf(head, sizeof(head), "%s  %s%s ", label, done, disc);
	snprintf(tail, sizeof(tail), " %s/s  ETA %s", p->have_rate ? rate : "--", eta);

	used = strlen(head) + strlen(tail);
	bar[0] = '\0';
	if (p->total && used < width)
		format_bar(bar, width - used, (double)p->done / (double)p->total);
	snprintf(line, sizeof(line), "%s%s%s", head, bar, tail);
	if (strlen(line) > width)
		line[width] = '\0';
	fprintf(p->err, "\r%-*s", (int)width, line);
	fflush(p->err);
}

static void show(struct progress *p, uint64_t now)
{
	if (p->mode == PROGRESS_JSON)
		print_json(p);
	else
		draw_bar(p);
	p->shown = true;
	p->shown_ns = now;
	p->pending = false;
}

void progress_set_discarded(struct progress *p, uint64_t discarded_bytes)
{
	if (!p)
		return;
	p->discarded = discarded_bytes;
	p->tracks_discards = true;
}

void progress_update(struct progress *p, const char *phase, uint64_t done_bytes,
		     uint64_t total_bytes)
{
	uint64_t now, interval;

	if (!p || p->mode == PROGRESS_QUIET)
		return;
	now = clock_fn();
	snprintf(p->phase, sizeof(p->phase), "%s", phase ? phase : "");
	/* the rate is of bytes moved: a discard moves none, at once */
	update_rate(p, now, done_bytes - (p->discarded < done_bytes ? p->discarded
								    : done_bytes));
	p->done = done_bytes;
	p->total = total_bytes;
	interval = p->mode == PROGRESS_JSON ? JSON_INTERVAL_NS : BAR_INTERVAL_NS;
	if (!p->shown || now - p->shown_ns >= interval)
		show(p, now);
	else
		p->pending = true;
}

/* "@counts in T s (R/s)" on @err's terminal, R of @moved bytes. */
static void summary_line(FILE *err, const char *counts, uint64_t moved,
			 double seconds)
{
	char r[32];
	FILE *f = test_err ? test_err : err;

	if (!test_err && !isatty(fileno(f)))
		return;
	progress_format_bytes(seconds > 0 ? (uint64_t)((double)moved / seconds) : 0,
			      r, sizeof(r));
	fprintf(f, "%s in %.1f s (%s/s)\n", counts, seconds, r);
	fflush(f);
}

void progress_summary(FILE *err, uint64_t copied, uint64_t discarded,
		      uint64_t zeroed, double seconds)
{
	char c[32], d[32], z[32], counts[160];

	progress_format_bytes(copied, c, sizeof(c));
	progress_format_bytes(discarded, d, sizeof(d));
	progress_format_bytes(zeroed, z, sizeof(z));
	snprintf(counts, sizeof(counts), "copied %s, discarded %s, zeroed %s", c,
		 d, z);
	summary_line(err, counts, copied + zeroed, seconds);
}

void progress_summary_compared(FILE *err, uint64_t compared,
			       uint64_t mismatched, double seconds)
{
	char c[32], m[32], counts[160];

	progress_format_bytes(compared, c, sizeof(c));
	progress_format_bytes(mismatched, m, sizeof(m));
	snprintf(counts, sizeof(counts), "compared %s, %s differ", c, m);
	summary_line(err, counts, compared, seconds);
}

bool progress_draws(const struct progress *p)
{
	return p && p->bar;
}

void progress_set_json_output(struct progress *p, FILE *out)
{
	if (p && out)
		p->out = out;
}

void progress_free(struct progress *p)
{
	if (!p)
		return;
	if (p->pending)
		show(p, clock_fn());
	if (p->bar && p->shown) {
		fputc('\n', p->err);
		fflush(p->err);
	}
	if (p->tty_lock >= 0)
		close(p->tty_lock);
	free(p->what);
	free(p);
}
