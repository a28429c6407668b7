/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LVM names: what a "VG/LV" is, asked of lvm2 itself (`lvm lvs
 * --reportformat json`), and the dm device of a thin pool LV. dmrepl
 * reads an LVM pool's metadata directly, through the held root, as it
 * does any pool's; only names, sizes and (later) changes to the set of
 * thin devices go through lvm.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"
#include "lvm.h"

#define OUTPUT_MAX (256 * 1024)

extern char **environ;

static const char *lvm_binary(void)
{
	const char *p = secure_getenv("DMREPL_LVM");

	return p && *p ? p : "lvm";
}

/*
 * lvm's output goes to files, not pipes: a dmrepl killed while lvm runs
 * must not kill lvm in the middle of its transaction (a write to a pipe
 * with no reader is SIGPIPE), which left a thin in the kernel that the
 * VG's metadata did not show. Read back once it has exited.
 */
static int output_file(void)
{
	int fd = memfd_create("dmrepl-lvm", MFD_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* Up to @size - 1 bytes of @fd from its start into @buf, NUL-ended. */
static void read_back(int fd, char *buf, size_t size)
{
	size_t n = 0;
	ssize_t got;

	while (n + 1 < size && (got = pread(fd, buf + n, size - 1 - n, (off_t)n)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			break;
		n += (size_t)got;
	}
	buf[n] = '\0';
}

/*
 * ---- listings kept for lookups ----
 *
 * A command resolves several names of one VG (--snap VG/LV, its pool,
 * --base): they share one `lvs` of the VG. A listing answers lookups
 * while this context has run no lvm command that changes anything, for
 * at most CACHE_SECONDS (what one command spans: the names an operator
 * gave are resolved as it starts). dmrepl_lvm_list() always asks lvm,
 * and what it hears refreshes the cache. Decisions that must see the
 * present (the destination, under its lock) list afresh.
 */
#define CACHE_SECONDS 10
#define CACHE_VGS 4

struct lvm_cache {
	pthread_mutex_t lock;
	struct {
		char vg[128];
		struct dmrepl_lvm_lv *lvs;
		size_t n;
		time_t when;		/* CLOCK_MONOTONIC seconds */
	} vgs[CACHE_VGS];
	unsigned int next;		/* the slot to reuse */
};

static void *cache_create(void)
{
	struct lvm_cache *c = calloc(1, sizeof(*c));

	if (c)
		pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void cache_clear(struct lvm_cache *c)
{
	for (size_t i = 0; i < CACHE_VGS; i++) {
		free(c->vgs[i].lvs);
		c->vgs[i].lvs = NULL;
		c->vgs[i].vg[0] = '\0';
	}
}

static void cache_destroy(void *cache)
{
	struct lvm_cache *c = cache;

	if (!c)
		return;
	cache_clear(c);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct lvm_cache *cache_of(struct dmrepl_ctx *ctx)
{
	return dmrepl_ctx_lvm_cache(ctx, cache_create, cache_destroy);
}

static time_t now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static void cache_forget(struct dmrepl_ctx *ctx)
{
	struct lvm_cache *c = cache_of(ctx);

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	cache_clear(c);
	pthread_mutex_unlock(&c->lock);
}

/* Keep a copy of @vg's listing; a failure to keep it costs a lookup. */
static void cache_store(struct dmrepl_ctx *ctx, const char *vg,
			const struct dmrepl_lvm_lv *lvs, size_t n)
{
	struct lvm_cache *c = cache_of(ctx);
	struct dmrepl_lvm_lv *copy;
	size_t i;

	if (!c || strlen(vg) >= sizeof(c->vgs[0].vg))
		return;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	if (!copy)
		return;
	memcpy(copy, lvs, n * sizeof(*copy));
	pthread_mutex_lock(&c->lock);
	for (i = 0; i < CACHE_VGS; i++)
		if (strcmp(c->vgs[i].vg, vg) == 0)
			break;
	if (i == CACHE_VGS)
		i = c->next++ % CACHE_VGS;
	free(c->vgs[i].lvs);
	snprintf(c->vgs[i].vg, sizeof(c->vgs[i].vg), "%s", vg);
	c->vgs[i].lvs = copy;
	c->vgs[i].n = n;
	c->vgs[i].when = now_seconds();
	pthread_mutex_unlock(&c->lock);
}

/* @lv of @vg from a kept listing: 1 found, 0 not in it, -ENOENT none kept. */
static int cache_find(struct dmrepl_ctx *ctx, const char *vg, const char *lv,
		      struct dmrepl_lvm_lv *ret)
{
	struct lvm_cache *c = cache_of(ctx);
	int r = -ENOENT;

	if (!c)
		return -ENOENT;
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < CACHE_VGS && r == -ENOENT; i++) {
		if (!c->vgs[i].vg[0] || strcmp(c->vgs[i].vg, vg) != 0 ||
		    now_seconds() - c->vgs[i].when > CACHE_SECONDS)
			continue;
		r = 0;
		for (size_t j = 0; j < c->vgs[i].n && !r; j++)
			if (strcmp(c->vgs[i].lvs[j].lv, lv) == 0) {
				*ret = c->vgs[i].lvs[j];
				r = 1;
			}
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

int dmrepl_lvm_run(struct dmrepl_ctx *ctx, const char *const *args,
		   char **ret_out, char *ret_err, size_t err_size)
{
	posix_spawn_file_actions_t fa;
	int out = -1, errf = -1, status, r;
	char *argv[32], *outbuf = NULL, errbuf[4096];
	size_t argc = 0;
	pid_t pid;

	if (strcmp(args[0], "lvs") != 0 && strcmp(args[0], "vgs") != 0)
		cache_forget(ctx);	/* it may change what lvs shows */
	argv[argc++] = (char *)lvm_binary();
	for (; args[argc - 1] && argc < ARRAY_SIZE(argv) - 1; argc++)
		argv[argc] = (char *)args[argc - 1];
	argv[argc] = NULL;
	outbuf = malloc(OUTPUT_MAX);
	if (!outbuf)
		return -ENOMEM;
	out = output_file();
	errf = out < 0 ? out : output_file();
	if (out < 0 || errf < 0) {
		r = out < 0 ? out : errf;
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
					 O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out, STDOUT_FILENO);
	posix_spawn_file_actions_adddup2(&fa, errf, STDERR_FILENO);
	/*
	 * Nothing else: lvm warns of every descriptor it inherits, and that
	 * warning would be the first line of error read as the cause.
	 */
	posix_spawn_file_actions_addclosefrom_np(&fa, STDERR_FILENO + 1);
	r = -posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r < 0) {
		err(ctx, "cannot run %s: %s%s", argv[0], strerror(-r),
		    r == -ENOENT ? " (is lvm2 installed?)" : "");
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	read_back(out, outbuf, OUTPUT_MAX);
	read_back(errf, errbuf, sizeof(errbuf));
	if (r == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		/* lvm's first line of error, for the caller's message */
		const char *e = errbuf + strspn(errbuf, " \n");

		if (ret_err && err_size)
			snprintf(ret_err, err_size, "%.*s", (int)strcspn(e, "\n"),
				 *e ? e : "lvm failed with no message");
		r = -EIO;
	}
	dbg(ctx, "lvm %s ...: %s", args[0], r == 0 ? "ok" : strerror(-r));
out:
	if (out >= 0)
		close(out);
	if (errf >= 0)
		close(errf);
	if (r == 0 && ret_out) {
		*ret_out = outbuf;
		outbuf = NULL;
	}
	free(outbuf);
	return r;
}

static const char *field(json_object *lv, const char *key)
{
	json_object *v;

	if (!json_object_object_get_ex(lv, key, &v))
		return "";
	return json_object_get_string(v) ?: "";
}

static int copy_field(json_object *lv, const char *key, char *buf, size_t size)
{
	const char *v = field(lv, key);

	if (snprintf(buf, size, "%s", v) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

/* The LVs of lvs' JSON report, or NULL. */
static json_object *report_lvs(json_object *root)
{
	json_object *report, *first, *lvs;

	if (!json_object_object_get_ex(root, "report", &report) ||
	    !json_object_is_type(report, json_type_array) ||
	    json_object_array_length(report) < 1)
		return NULL;
	first = json_object_array_get_idx(report, 0);
	if (!json_object_object_get_ex(first, "lv", &lvs) ||
	    !json_object_is_type(lvs, json_type_array))
		return NULL;
	return lvs;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EBADMSG;
	errno = 0;
	*ret = strtoull(s, &end, 10);
	return errno || *end || *ret > max ? -EBADMSG : 0;
}

static int parse_one(json_object *o, struct dmrepl_lvm_lv *ret)
{
	struct dmrepl_lvm_lv lv = {0};
	const char *id;
	int r;

	if (!json_object_is_type(o, json_type_object))
		return -EBADMSG;
	r = copy_field(o, "vg_name", lv.vg, sizeof(lv.vg));
	r = r ?: copy_field(o, "lv_name", lv.lv, sizeof(lv.lv));
	r = r ?: copy_field(o, "vg_uuid", lv.vg_uuid, sizeof(lv.vg_uuid));
	r = r ?: copy_field(o, "lv_uuid", lv.lv_uuid, sizeof(lv.lv_uuid));
	r = r ?: copy_field(o, "segtype", lv.segtype, sizeof(lv.segtype));
	r = r ?: copy_field(o, "pool_lv", lv.pool_lv, sizeof(lv.pool_lv));
	r = r ?: copy_field(o, "origin", lv.origin, sizeof(lv.origin));
	r = r ?: copy_field(o, "lv_tags", lv.tags, sizeof(lv.tags));
	if (r < 0)
		return r;
	if (!lv.vg[0] || !lv.lv[0] || !lv.segtype[0])
		return -EBADMSG;
	id = field(o, "thin_id");
	lv.thin_id = DMREPL_THIN_ID_ANY;
	if (*id && parse_u64(id, DMREPL_THIN_ID_MAX, &lv.thin_id) < 0)
		return -EBADMSG;
	if (parse_u64(field(o, "lv_size"), UINT64_MAX, &lv.size_bytes) < 0)
		return -EBADMSG;
	/* absent in older answers and tests: 0, unknown */
	if (*field(o, "vg_extent_size") &&
	    parse_u64(field(o, "vg_extent_size"), UINT64_MAX, &lv.extent_bytes) < 0)
		return -EBADMSG;
	*ret = lv;
	return 0;
}

int dmrepl_lvm_parse_lv(const char *json, struct dmrepl_lvm_lv *ret)
{
	json_object *root, *lvs;
	int r = -EBADMSG;

	root = json_tokener_parse(json);
	if (!root)
		return -EBADMSG;
	lvs = report_lvs(root);
	if (lvs && json_object_array_length(lvs) == 1)
		r = parse_one(json_object_array_get_idx(lvs, 0), ret);
	json_object_put(root);
	return r;
}

int dmrepl_lvm_parse_lvs(const char *json, struct dmrepl_lvm_lv **ret,
			 size_t *ret_n)
{
	struct dmrepl_lvm_lv *all = NULL;
	json_object *root, *lvs;
	size_t n = 0;
	int r = -EBADMSG;

	root = json_tokener_parse(json);
	if (!root)
		return -EBADMSG;
	lvs = report_lvs(root);
	if (!lvs)
		goto out;
	n = json_object_array_length(lvs);
	all = calloc(n ? n : 1, sizeof(*all));
	r = all ? 0 : -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++)
		r = parse_one(json_object_array_get_idx(lvs, i), &all[i]);
out:
	json_object_put(root);
	if (r < 0) {
		free(all);
		return r;
	}
	*ret = all;
	*ret_n = n;
	return 0;
}

#define LV_FIELDS "vg_name,lv_name,vg_uuid,lv_uuid,segtype,pool_lv,thin_id," \
		  "lv_size,origin,lv_tags,vg_extent_size"

/* @what names the lookup behind the listing, in messages. */
static int list_vg(struct dmrepl_ctx *ctx, const char *vg,
		   struct dmrepl_lvm_lv **ret, size_t *ret_n, const char *what)
{
	const char *args[] = {"lvs", "-a", "--reportformat", "json", "--units",
			      "b", "--nosuffix", "-o", LV_FIELDS, "--", vg,
			      NULL};
	char *out = NULL, why[256] = "";
	int r;

	r = dmrepl_lvm_run(ctx, args, &out, why, sizeof(why));
	if (r == -EIO) {
		if (what)
			err(ctx, "%s: no such LVM logical volume (lvs: %s)",
			    what, why);
		else
			err(ctx, "%s: cannot list its logical volumes (lvs: %s)",
			    vg, why);
		return -ENOENT;
	}
	if (r < 0)
		return r;
	r = dmrepl_lvm_parse_lvs(out, ret, ret_n);
	if (r < 0)
		err(ctx, "%s: cannot read lvs' answer: %.200s", vg, out);
	else
		cache_store(ctx, vg, *ret, *ret_n);
	free(out);
	return r;
}

int dmrepl_lvm_list(struct dmrepl_ctx *ctx, const char *vg,
		    struct dmrepl_lvm_lv **ret, size_t *ret_n)
{
	return list_vg(ctx, vg, ret, ret_n, NULL);
}

int dmrepl_lvm_list_kept(struct dmrepl_ctx *ctx, const char *vg,
			 struct dmrepl_lvm_lv **ret, size_t *ret_n)
{
	struct lvm_cache *c = cache_of(ctx);
	int r = -ENOENT;

	if (c) {
		pthread_mutex_lock(&c->lock);
		for (size_t i = 0; i < CACHE_VGS && r == -ENOENT; i++) {
			if (!c->vgs[i].vg[0] || strcmp(c->vgs[i].vg, vg) != 0 ||
			    now_seconds() - c->vgs[i].when > CACHE_SECONDS)
				continue;
			*ret = malloc((c->vgs[i].n ? c->vgs[i].n : 1) * sizeof(**ret));
			r = *ret ? 0 : -ENOMEM;
			if (r == 0) {
				memcpy(*ret, c->vgs[i].lvs, c->vgs[i].n * sizeof(**ret));
				*ret_n = c->vgs[i].n;
			}
		}
		pthread_mutex_unlock(&c->lock);
	}
	return r == -ENOENT ? list_vg(ctx, vg, ret, ret_n, NULL) : r;
}

int dmrepl_lvm_lookup(struct dmrepl_ctx *ctx, const char *vg_lv,
		      struct dmrepl_lvm_lv *ret)
{
	const char *slash;
	struct dmrepl_lvm_lv *lvs = NULL;
	char vg[128];
	size_t n = 0;
	int r;

	if (!ctx || !vg_lv || !ret)
		return -EINVAL;
	slash = strchr(vg_lv, '/');
	if (!slash || slash != strrchr(vg_lv, '/') || slash == vg_lv ||
	    !slash[1] || (size_t)(slash - vg_lv) >= sizeof(vg)) {
		err(ctx, "'%s' is not an LVM name: expected VG/LV", vg_lv);
		return -EINVAL;
	}
	snprintf(vg, sizeof(vg), "%.*s", (int)(slash - vg_lv), vg_lv);
	/* not in a kept listing: perhaps made since; ask lvm */
	r = cache_find(ctx, vg, slash + 1, ret);
	if (r <= 0) {
		r = list_vg(ctx, vg, &lvs, &n, vg_lv);
		if (r < 0)
			return r;
		r = 0;
		for (size_t i = 0; i < n && !r; i++)
			if (strcmp(lvs[i].lv, slash + 1) == 0) {
				*ret = lvs[i];
				r = 1;
			}
		free(lvs);
	}
	if (r == 0) {
		err(ctx, "%s: no such LVM logical volume (%s has none of that "
			 "name)", vg_lv, vg);
		return -ENOENT;
	}
	return 0;
}

/* @s with every dash doubled, as LVM writes names into dm names. */
static int escape(const char *s, char *buf, size_t size)
{
	size_t n = 0;

	for (; *s; s++) {
		if (n + 3 > size)
			return -ENAMETOOLONG;
		buf[n++] = *s;
		if (*s == '-')
			buf[n++] = '-';
	}
	buf[n] = '\0';
	return 0;
}

bool dmrepl_lvm_tag_valid(const char *tag)
{
	return strlen(tag) <= 128 && strspn(tag, DMREPL_LVM_TAG_CHARS) == strlen(tag);
}

int dmrepl_lvm_dm_name(const char *vg, const char *lv, char *buf, size_t size)
{
	size_t n;
	int r = escape(vg, buf, size);

	if (r < 0)
		return r;
	n = strlen(buf);
	if (n + 2 > size)
		return -ENAMETOOLONG;
	buf[n++] = '-';
	return escape(lv, buf + n, size - n);
}

/* LVM's dm UUID of @lv's layer: "LVM-" VG UUID, LV UUID, no dashes. */
static void dm_uuid(const struct dmrepl_lvm_lv *lv, const char *layer,
		    char *buf, size_t size)
{
	size_t n = (size_t)snprintf(buf, size, "LVM-");

	for (const char *p = lv->vg_uuid; *p && n + 1 < size; p++)
		if (*p != '-')
			buf[n++] = *p;
	for (const char *p = lv->lv_uuid; *p && n + 1 < size; p++)
		if (*p != '-')
			buf[n++] = *p;
	buf[n] = '\0';
	if (layer)
		snprintf(buf + n, size - n, "-%s", layer);
}

/*
 * The active dm device of pool @vg/@lv into @buf: in use, the pool is
 * the "-tpool" layer; unused, the LV itself, with the same dm UUID
 * (LVM's "-tpool" suffix). @uuid is that UUID, or NULL to take any of
 * LVM's ("LVM-...-tpool"): LVM alone names dm devices so, and its names
 * are unambiguous (dashes in VG and LV names doubled).
 */
static int find_pool_dm(struct dmrepl_ctx *ctx, const char *vg_name,
			const char *lv_name, const char *uuid, char *buf,
			size_t size)
{
	static const char *const layers[] = {"tpool", NULL};
	char vg[256], name[256];
	int r;

	r = escape(vg_name, vg, sizeof(vg));
	r = r ?: escape(lv_name, name, sizeof(name));
	if (r < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(layers); i++) {
		struct dmrepl_dm_target t = {0};
		bool match;
		size_t n;

		if (layers[i])
			snprintf(buf, size, "%s-%s-%s", vg, name, layers[i]);
		else
			snprintf(buf, size, "%s-%s", vg, name);
		if (dmrepl_dm_get_table_quiet(ctx, buf, &t) < 0)
			continue;
		match = t.type && strcmp(t.type, "thin-pool") == 0 && t.uuid;
		if (match && uuid)
			match = strcmp(t.uuid, uuid) == 0;
		else if (match)
			match = strncmp(t.uuid, "LVM-", 4) == 0 &&
				(n = strlen(t.uuid)) > 10 &&
				strcmp(t.uuid + n - 6, "-tpool") == 0;
		dmrepl_dm_target_clear(&t);
		if (match)
			return 0;
	}
	return -ENODEV;
}

int dmrepl_lvm_pool_dm_name(struct dmrepl_ctx *ctx,
			    const struct dmrepl_lvm_lv *lv, char *buf,
			    size_t size)
{
	char want[160];
	int r;

	if (strcmp(lv->segtype, "thin-pool") != 0) {
		err(ctx, "%s/%s is not a thin pool (its type is %s)", lv->vg,
		    lv->lv, lv->segtype);
		return -EINVAL;
	}
	dm_uuid(lv, "tpool", want, sizeof(want));
	r = find_pool_dm(ctx, lv->vg, lv->lv, want, buf, size);
	if (r == -ENODEV)
		err(ctx, "%s/%s: the thin pool is not active (activate it "
			 "with: vgchange -ay %s)",
		    lv->vg, lv->lv, lv->vg);
	return r;
}

int dmrepl_lvm_active_pool(struct dmrepl_ctx *ctx, const char *vg_pool,
			   char *buf, size_t size)
{
	const char *slash = strchr(vg_pool, '/');
	char vg[128];

	if (!slash || slash == vg_pool || strchr(slash + 1, '/') ||
	    !slash[1] || (size_t)(slash - vg_pool) >= sizeof(vg))
		return -EINVAL;
	snprintf(vg, sizeof(vg), "%.*s", (int)(slash - vg_pool), vg_pool);
	return find_pool_dm(ctx, vg, slash + 1, NULL, buf, size);
}

/* ---- tags ---- */

/* lvs lists tags separated by commas; LVM allows none in a tag. */
static bool next_tag(const char **p, const char **ret, size_t *ret_len)
{
	const char *s = *p;

	if (!*s)
		return false;
	*ret = s;
	*ret_len = strcspn(s, ",");
	*p = s + *ret_len + (s[*ret_len] == ',');
	return true;
}

bool dmrepl_lvm_has_tag(const struct dmrepl_lvm_lv *lv, const char *tag)
{
	const char *p = lv->tags, *t;
	size_t n, want = strlen(tag);

	while (next_tag(&p, &t, &n))
		if (n == want && memcmp(t, tag, n) == 0)
			return true;
	return false;
}

int dmrepl_lvm_tag_value(const struct dmrepl_lvm_lv *lv, const char *prefix,
			 char *buf, size_t size)
{
	const char *p = lv->tags, *t;
	size_t n, plen = strlen(prefix);

	while (next_tag(&p, &t, &n)) {
		if (n < plen || memcmp(t, prefix, plen) != 0)
			continue;
		if (n - plen >= size)
			return -ENAMETOOLONG;
		memcpy(buf, t + plen, n - plen);
		buf[n - plen] = '\0';
		return 0;
	}
	return -ENOENT;
}

/* Allowed in a tag by LVM, and not one of our separators. */
static bool tag_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("_+.-/!:", c) != NULL);
}

int dmrepl_lvm_tag_escape(const char *s, char *buf, size_t size)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (n + 4 > size)
			return -ENAMETOOLONG;
		if (tag_plain(c)) {
			buf[n++] = (char)c;
			continue;
		}
		buf[n++] = '#';
		buf[n++] = hex[c >> 4];
		buf[n++] = hex[c & 15];
	}
	if (n + 1 > size)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return 0;
}

static int unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int dmrepl_lvm_tag_unescape(const char *s, size_t len, char *buf, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int hi, lo;

		if (n + 1 >= size)
			return -ENAMETOOLONG;
		if (tag_plain((unsigned char)s[i])) {
			buf[n++] = s[i];
			continue;
		}
		if (s[i] != '#' || len - i < 3)
			return -EINVAL;
		hi = unhex(s[i + 1]);
		lo = unhex(s[i + 2]);
		/* one spelling per byte: plain bytes are never escaped */
		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0) ||
		    tag_plain((unsigned char)(hi << 4 | lo)))
			return -EINVAL;
		buf[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	buf[n] = '\0';
	return 0;
}

bool dmrepl_lvm_name_valid(const char *name)
{
	static const char *const reserved[] = {
	    "_cdata", "_cmeta", "_corig", "_cpool", "_cvol", "_imeta",
	    "_iorig", "_mimage", "_mlog", "_pmspare", "_rimage", "_rmeta",
	    "_tdata", "_tmeta", "_vdata", "_vorigin", "_wcorig"};
	size_t n = strlen(name);

	if (n == 0 || n > 127 || name[0] == '-' || strcmp(name, ".") == 0 ||
	    strcmp(name, "..") == 0 || strcmp(name, "snapshot") == 0 ||
	    strcmp(name, "pvmove") == 0 || strncmp(name, "pvmove", 6) == 0 ||
	    strncmp(name, "snapshot", 8) == 0)
		return false;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || strchr("+_.-", *p)))
			return false;
	for (size_t i = 0; i < ARRAY_SIZE(reserved); i++)
		if (strstr(name, reserved[i]))
			return false;
	return true;
}

int dmrepl_lvm_name_of_thin(struct dmrepl_ctx *ctx, const char *vg_pool,
			    uint64_t thin_id, char *buf, size_t size)
{
	const char *slash = strchr(vg_pool, '/');
	struct dmrepl_lvm_lv *lvs = NULL;
	char vg[128];
	size_t n = 0;
	int r;

	if (!slash || (size_t)(slash - vg_pool) >= sizeof(vg))
		return -EINVAL;
	snprintf(vg, sizeof(vg), "%.*s", (int)(slash - vg_pool), vg_pool);
	r = dmrepl_lvm_list(ctx, vg, &lvs, &n);
	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < n && r == -ENOENT; i++)
		if (lvs[i].thin_id == thin_id &&
		    strcmp(lvs[i].pool_lv, slash + 1) == 0)
			r = snprintf(buf, size, "%s/%s", vg, lvs[i].lv) >= (int)size
				? -ENAMETOOLONG
				: 0;
	free(lvs);
	return r;
}

/* The origin checked, and the snapshot's name (@name, or LV-DATE-TIME). */
static int snapshot_name(struct dmrepl_ctx *ctx, const char *vg_lv,
			 const char *name, char *buf, size_t size)
{
	struct dmrepl_lvm_lv origin;
	time_t now = time(NULL);
	char stamp[32];
	struct tm tm;
	int r;

	r = dmrepl_lvm_lookup(ctx, vg_lv, &origin);
	if (r < 0)
		return r;
	if (strcmp(origin.segtype, "thin") != 0) {
		err(ctx, "%s is not a thin volume (its type is %s)", vg_lv,
		    origin.segtype);
		return -EINVAL;
	}
	if (!name) {
		gmtime_r(&now, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tm);
		snprintf(buf, size, "%.100s-%.15s", origin.lv, stamp);
	} else {
		snprintf(buf, size, "%s", name);
	}
	if (!dmrepl_lvm_name_valid(buf)) {
		err(ctx, "'%s' is not a name LVM allows for a volume", buf);
		return -EINVAL;
	}
	return 0;
}

int dmrepl_lvm_snapshot_dry_run(struct dmrepl_ctx *ctx, const char *vg_lv,
				const char *name, char *ret_vg_lv, size_t size)
{
	const char *slash = strchr(vg_lv, '/');
	struct dmrepl_lvm_lv *lvs = NULL;
	char new_name[128], vg[128];
	size_t n = 0;
	int r;

	if (!slash || (size_t)(slash - vg_lv) >= sizeof(vg))
		return -EINVAL;
	r = snapshot_name(ctx, vg_lv, name, new_name, sizeof(new_name));
	if (r < 0)
		return r;
	snprintf(ret_vg_lv, size, "%.*s/%s", (int)(slash - vg_lv), vg_lv,
		 new_name);
	/* lvcreate refuses a name that is taken: so does its dry run */
	snprintf(vg, sizeof(vg), "%.*s", (int)(slash - vg_lv), vg_lv);
	r = dmrepl_lvm_list(ctx, vg, &lvs, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		if (strcmp(lvs[i].lv, new_name) == 0) {
			err(ctx, "%s exists already", ret_vg_lv);
			r = -EEXIST;
		}
	free(lvs);
	return r;
}

int dmrepl_lvm_snapshot(struct dmrepl_ctx *ctx, const char *vg_lv,
			const char *name, const char *tag,
			struct dmrepl_lvm_lv *ret)
{
	char new_name[128], why[512] = "", full[300];
	const char *slash = strchr(vg_lv, '/');
	const char *args[12];
	size_t n = 0;
	int r;

	r = snapshot_name(ctx, vg_lv, name, new_name, sizeof(new_name));
	if (r < 0)
		return r;
	name = new_name;
	args[n++] = "lvcreate";
	args[n++] = "-qq";
	args[n++] = "-y";
	args[n++] = "-s";
	args[n++] = "-n";
	args[n++] = name;
	if (tag) {
		/* made and tagged in one command: never an untagged snapshot */
		args[n++] = "--addtag";
		args[n++] = tag;
	}
	args[n++] = "--";
	args[n++] = vg_lv;
	args[n] = NULL;
	r = dmrepl_lvm_run(ctx, args, NULL, why, sizeof(why));
	if (r == -EIO) {
		err(ctx, "%s: lvcreate -s failed: %s", vg_lv, why);
		return r;
	}
	if (r < 0)
		return r;
	snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - vg_lv), vg_lv, name);
	return dmrepl_lvm_lookup(ctx, full, ret);
}
