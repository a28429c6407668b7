/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replication to a pool on another host, through a transport (ssh, or
 * any command that carries standard input and output). One connection:
 *
 *   1. the far side runs `dmrepl receive --pool POOL --negotiate`, which
 *      prints one JSON line (dmrepl_remote_hello() below): the replicas
 *      POOL holds, and the resume tokens of interrupted receives
 *   2. this side picks the base: the newest snapshot of its own pool
 *      older than the one to send that the far side holds an intact
 *      replica of, with the same identity here (none, or full: a full
 *      stream); when the far side holds the snapshot already, nothing
 *      is sent
 *   3. it sends the stream (resuming when the far side has a token for
 *      exactly this stream; a chain sends the snapshots in between too),
 *      closes it, and reads the far side's result line
 *
 * Both sides are here; doc/stream-format.md, "Negotiation", is the
 * specification.
 */
#include "replication.h"
#include "config.h"

#include <errno.h>
#include <fnmatch.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "transfer.h"

extern char **environ;

/* ---- the URL and the command line ---- */

int dmrepl_remote_parse_url(const char *url, char *host, size_t hsize,
			    const char **ret_pool)
{
	const char *p, *slash;

	if (!url || strncmp(url, "ssh://", 6) != 0)
		return -EINVAL;
	p = url + 6;
	slash = strchr(p, '/');
	if (!slash || slash == p || !slash[1] || (size_t)(slash - p) >= hsize ||
	    strlen(slash + 1) > 127)
		return -EINVAL;
	memcpy(host, p, (size_t)(slash - p));
	host[slash - p] = '\0';
	*ret_pool = slash + 1;
	return 0;
}

void dmrepl_remote_transport(const char *transport, const char *host, char *buf,
			     size_t size)
{
	if (transport)
		snprintf(buf, size, "%s", transport);
	else
		snprintf(buf, size, "ssh -o BatchMode=yes -- '%s'", host);
}

int dmrepl_remote_quote(char *buf, size_t size, const char *word)
{
	size_t n = strlen(buf);

	if (n + 3 >= size)
		return -ENAMETOOLONG;
	buf[n++] = ' ';
	buf[n++] = '\'';
	for (const char *c = word; *c; c++) {
		const char *piece = *c == '\'' ? "'\\''" : c;
		size_t len = *c == '\'' ? 4 : 1;

		if (n + len + 2 >= size)
			return -ENAMETOOLONG;
		memcpy(buf + n, piece, len);
		n += len;
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return 0;
}

static int remote_command(const struct dmrepl_remote_opts *o, const char *pool,
			  char *buf, size_t size)
{
	int r;

	buf[0] = '\0';
	r = dmrepl_remote_quote(buf, size, o->remote_dmrepl ? o->remote_dmrepl : "dmrepl");
	r = r ?: dmrepl_remote_quote(buf, size, "receive");
	r = r ?: dmrepl_remote_quote(buf, size, "--pool");
	r = r ?: dmrepl_remote_quote(buf, size, pool);
	r = r ?: dmrepl_remote_quote(buf, size, "--negotiate");
	if (o->remote_state_dir) {
		r = r ?: dmrepl_remote_quote(buf, size, "--state-dir");
		r = r ?: dmrepl_remote_quote(buf, size, o->remote_state_dir);
	}
	if (o->replica_tag) {
		char keep[16];

		r = r ?: dmrepl_remote_quote(buf, size, "--tag");
		r = r ?: dmrepl_remote_quote(buf, size, o->replica_tag);
		snprintf(keep, sizeof(keep), "%u", o->keep);
		if (o->keep) {
			r = r ?: dmrepl_remote_quote(buf, size, "--keep");
			r = r ?: dmrepl_remote_quote(buf, size, keep);
		}
	}
	return r;
}

/* ---- the far side ---- */

int dmrepl_peer_start(struct dmrepl_ctx *ctx, const char *transport,
		      const char *cmdline, struct dmrepl_peer *p)
{
	posix_spawn_file_actions_t fa;
	char script[4096];
	char *argv[] = {"sh", "-c", script, "sh", (char *)cmdline, NULL};
	int in[2], out[2], r;

	/* exec: stopping the shell's pid stops the transport itself. */
	snprintf(script, sizeof(script), "exec %s \"$1\"", transport);
	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		r = -errno;
		close(in[0]);
		close(in[1]);
		return r;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	r = -posix_spawn(&p->pid, "/bin/sh", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (r < 0) {
		err(ctx, "cannot start the transport '%s': %s", transport,
		    strerror(-r));
		close(in[1]);
		close(out[0]);
		p->pid = 0;
		return r;
	}
	p->to_fd = in[1];
	p->from = fdopen(out[0], "r");
	return p->from ? 0 : -ENOMEM;
}

json_object *dmrepl_peer_read(struct dmrepl_peer *p, const char *type)
{
	char *line = NULL;
	size_t cap = 0;
	json_object *obj, *t;

	for (;;) {
		if (getline(&line, &cap, p->from) < 0) {
			free(line);
			return NULL;
		}
		obj = json_tokener_parse(line);
		if (obj && json_object_object_get_ex(obj, "type", &t) &&
		    (!type || strcmp(json_object_get_string(t), type) == 0))
			break;
		json_object_put(obj);
	}
	free(line);
	return obj;
}

int dmrepl_peer_stop(struct dmrepl_peer *p)
{
	int status = 0;

	if (p->to_fd >= 0)
		close(p->to_fd);
	p->to_fd = -1;
	if (p->from)
		fclose(p->from);
	p->from = NULL;
	if (p->pid <= 0)
		return 0;
	while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
		;
	p->pid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- the far side: what it holds ---- */

bool dmrepl_source_allowed(const char *const *patterns, const char *source)
{
	if (!patterns)
		return true;
	for (; *patterns; patterns++)
		if (fnmatch(*patterns, source, 0) == 0)
			return true;
	return false;
}

/* What the hello lists: into @arr, of the sources @only (NULL: all) allows. */
struct hello_list {
	json_object *arr;
	const char *const *only;
};

static int hello_replica(const struct dmrepl_replica_info *rep, void *data)
{
	struct hello_list *l = data;
	json_object *arr = l->arr, *o;

	if (rep->state != DMREPL_REPLICA_OK)
		return 0;
	if (!dmrepl_source_allowed(l->only, rep->src_pool))
		return 0;	/* another source's: not this peer's business */
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "src_pool", json_object_new_string(rep->src_pool));
	json_object_object_add(o, "src_id", json_object_new_int64((int64_t)rep->src_thin_id));
	json_object_object_add(o, "src_creation_time",
			       json_object_new_int64(rep->src_creation_time));
	json_object_object_add(o, "src_root", json_object_new_int64((int64_t)rep->src_root));
	json_object_object_add(o, "src_mapped_blocks",
			       json_object_new_int64((int64_t)rep->src_mapped_blocks));
	json_object_object_add(o, "replica", json_object_new_int64((int64_t)rep->dst_thin_id));
	if (rep->dst_lv)
		json_object_object_add(o, "replica_lv", json_object_new_string(rep->dst_lv));
	return json_object_array_add(arr, o) == 0 ? 0 : -ENOMEM;
}

static int hello_token(const char *token, const struct dmrepl_lineage_record *rec,
		       void *data)
{
	struct hello_list *l = data;
	json_object *arr = l->arr, *o;

	if (!dmrepl_source_allowed(l->only, rec->src_pool))
		return 0;
	o = json_object_new_object();
	if (!o)
		return -ENOMEM;
	json_object_object_add(o, "token", json_object_new_string(token));
	json_object_object_add(o, "src_pool", json_object_new_string(rec->src_pool));
	json_object_object_add(o, "snap", json_object_new_int64((int64_t)rec->src.thin_id));
	json_object_object_add(o, "staging", json_object_new_int64((int64_t)rec->dst.thin_id));
	json_object_object_add(o, "offset", json_object_new_int64((int64_t)rec->checkpoint));
	return json_object_array_add(arr, o) == 0 ? 0 : -ENOMEM;
}

int dmrepl_remote_hello(struct dmrepl_ctx *ctx, const char *pool,
			const char *state_dir, const char *const *only_sources,
			FILE *out)
{
	json_object *o = json_object_new_object();
	json_object *replicas = json_object_new_array();
	json_object *resumable = json_object_new_array();
	int r = -ENOMEM;

	if (!o || !replicas || !resumable) {
		json_object_put(replicas);
		json_object_put(resumable);
		goto out;
	}
	json_object_object_add(o, "type", json_object_new_string("hello"));
	json_object_object_add(o, "version", json_object_new_int(1));
	json_object_object_add(o, "pool", json_object_new_string(pool));
	json_object_object_add(o, "replicas", replicas);
	json_object_object_add(o, "resumable", resumable);
	r = dmrepl_replicas_foreach(ctx, state_dir, pool, hello_replica,
				    &(struct hello_list){replicas, only_sources});
	if (r == 0)
		r = dmrepl_receive_foreach_resumable(ctx, pool, state_dir, hello_token,
						     &(struct hello_list){resumable, only_sources});
	if (r < 0)
		json_object_object_add(o, "error",
				       json_object_new_string(strerror(-r)));
	fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	fflush(out);
out:
	json_object_put(o);
	return r;
}

/* ---- choosing the base ---- */

static uint64_t get_u64(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? (uint64_t)json_object_get_int64(v)
						     : UINT64_MAX;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : "";
}

static bool same_ident(json_object *rep, const struct dmrepl_thin_ident *id)
{
	return id->creation_time == get_u64(rep, "src_creation_time") &&
	       id->root == get_u64(rep, "src_root") &&
	       id->mapped_blocks == get_u64(rep, "src_mapped_blocks");
}

struct plan {
	uint64_t base;			/* the newest common base, or ANY */
	uint64_t have;			/* the far side's replica of snap, or ANY */
	char have_lv[256];		/* its VG/LV, when LVM's */
};

static int pick_base(struct dmrepl_ctx *ctx, const struct dmrepl_remote_opts *o,
		     const struct dmrepl_send_opts *so, json_object *replicas,
		     struct plan *pl)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_ident snap, id;
	uint32_t best_time = 0;
	int r;

	pl->base = pl->have = DMREPL_THIN_ID_ANY;
	r = dmrepl_metadata_open_pool(ctx, so->pool, &md);
	if (r < 0)
		return r;
	r = dmrepl_thin_ident_read(md, so->snap_id, &snap);
	if (r == -ENOENT)
		err(ctx, "%s: no thin %" PRIu64 " to replicate", so->pool, so->snap_id);
	for (size_t i = 0; r == 0 && i < json_object_array_length(replicas); i++) {
		json_object *rep = json_object_array_get_idx(replicas, i);
		uint64_t src_id = get_u64(rep, "src_id");

		if (!dmrepl_source_matches(get_str(rep, "src_pool"), so->source_name))
			continue;
		if (src_id == so->snap_id) {
			if (same_ident(rep, &snap)) {
				pl->have = get_u64(rep, "replica");
				snprintf(pl->have_lv, sizeof(pl->have_lv), "%s",
					 get_str(rep, "replica_lv"));
			}
			continue;
		}
		if (o->base_id != DMREPL_THIN_ID_ANY && src_id != o->base_id)
			continue;
		if (dmrepl_thin_ident_read(md, src_id, &id) < 0 ||
		    !same_ident(rep, &id) || id.creation_time >= snap.creation_time)
			continue;
		if (pl->base == DMREPL_THIN_ID_ANY || id.creation_time > best_time) {
			pl->base = src_id;
			best_time = id.creation_time;
		}
	}
	dmrepl_metadata_unref(md);
	return r;
}

/* A token of the far side for exactly this stream's snapshot and base. */
static const char *pick_token(json_object *resumable, uint64_t snap, uint64_t base)
{
	struct dmrepl_resume_token t;

	for (size_t i = 0; i < json_object_array_length(resumable); i++) {
		const char *s = get_str(json_object_array_get_idx(resumable, i), "token");

		if (dmrepl_resume_token_parse(s, &t) == 0 && t.snap_id == snap &&
		    t.base_id == base)
			return s;
	}
	return NULL;
}

/* Return: 0, 1 when the far side holds the snapshot already, or -errno. */
static int plan(struct dmrepl_ctx *ctx, const struct dmrepl_remote_opts *o,
		json_object *hello, struct dmrepl_send_opts *so,
		struct dmrepl_remote_result *res)
{
	json_object *replicas = NULL, *resumable = NULL;
	struct plan pl;
	int r;

	if (!json_object_object_get_ex(hello, "replicas", &replicas) ||
	    !json_object_object_get_ex(hello, "resumable", &resumable)) {
		err(ctx, "%s: the far side said: %s", o->url, get_str(hello, "error"));
		return -EPROTO;
	}
	r = pick_base(ctx, o, so, replicas, &pl);
	if (r < 0)
		return r;
	if (pl.have != DMREPL_THIN_ID_ANY) {
		notice(ctx, "thin %" PRIu64 " of %s is already replicated as thin %" PRIu64
			    " of %s",
		       so->snap_id, so->pool, pl.have, o->url);
		res->dst_thin_id = pl.have;
		res->already_replicated = true;
		snprintf(res->dst_lv, sizeof(res->dst_lv), "%s", pl.have_lv);
		return 1;
	}
	if (o->base_id != DMREPL_THIN_ID_ANY && !o->full &&
	    pl.base == DMREPL_THIN_ID_ANY) {
		err(ctx, "%s holds no intact replica of thin %" PRIu64 " of %s: "
			 "replicate it first, or in full",
		    o->url, o->base_id, so->source_name);
		return -ENOENT;
	}
	so->base_id = o->full ? DMREPL_THIN_ID_ANY : pl.base;
	so->resume_token = o->chain ? NULL : pick_token(resumable, so->snap_id, so->base_id);
	res->base_src_id = so->base_id;
	if (so->base_id == DMREPL_THIN_ID_ANY)
		info(ctx, "thin %" PRIu64 " of %s to %s: full", so->snap_id, so->pool,
		     o->url);
	else
		info(ctx, "thin %" PRIu64 " of %s to %s: from base %" PRIu64 "%s%s",
		     so->snap_id, so->pool, o->url, so->base_id,
		     o->chain ? ", with the snapshots between" : "",
		     so->resume_token ? ", resuming" : "");
	return 0;
}

/* ---- sending ---- */

static int send_all(const struct dmrepl_remote_opts *o, struct dmrepl_ctx *ctx,
		    struct dmrepl_send_opts *so, int fd)
{
	if (o->chain && so->base_id != DMREPL_THIN_ID_ANY)
		return dmrepl_send_chain(ctx, so, fd, NULL);
	return dmrepl_send(ctx, so, fd, NULL);
}

/* The far side's retention: its result's "pruned" names, into @res. */
static void get_pruned(json_object *result, struct dmrepl_remote_result *res)
{
	json_object *arr;
	size_t n;

	if (!json_object_object_get_ex(result, "pruned", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return;
	n = json_object_array_length(arr);
	res->pruned = calloc(n ? n : 1, sizeof(*res->pruned));
	for (size_t i = 0; res->pruned && i < n; i++) {
		const char *name = json_object_get_string(json_object_array_get_idx(arr, i));

		if (name && (res->pruned[res->nr_pruned] = strdup(name)))
			res->nr_pruned++;
	}
}

static int read_result(struct dmrepl_ctx *ctx, const struct dmrepl_remote_opts *o,
		       struct dmrepl_peer *p, struct dmrepl_remote_result *res)
{
	json_object *result = dmrepl_peer_read(p, "result"), *ok;
	int r = 0;

	if (!result || !json_object_object_get_ex(result, "ok", &ok) ||
	    !json_object_get_boolean(ok)) {
		err(ctx, "%s: the far side did not commit the replica%s%s", o->url,
		    result ? ": " : "", result ? get_str(result, "error") : "");
		r = -EPROTO;
	} else {
		res->dst_thin_id = get_u64(result, "replica");
		snprintf(res->dst_lv, sizeof(res->dst_lv), "%s",
			 get_str(result, "replica_lv"));
		res->base_dst_thin_id = get_u64(result, "base_replica");
		res->streams = (unsigned int)get_u64(result, "streams");
		res->resumed = strcmp(get_str(result, "resumed"), "true") == 0;
		res->data_bytes = get_u64(result, "data_bytes");
		res->stream_bytes = get_u64(result, "stream_bytes");
		get_pruned(result, res);
	}
	json_object_put(result);
	return r;
}

int dmrepl_remote_replicate(struct dmrepl_ctx *ctx,
			    const struct dmrepl_remote_opts *o,
			    struct dmrepl_remote_result *ret)
{
	struct dmrepl_remote_result res = {.base_src_id = DMREPL_THIN_ID_ANY,
					   .base_dst_thin_id = DMREPL_THIN_ID_ANY};
	struct dmrepl_send_opts so = o->send;
	struct dmrepl_peer p = {.to_fd = -1};
	char host[256], transport[1024], cmdline[2048], name[128];
	const char *pool;
	json_object *hello = NULL;
	int r, status;

	if (dmrepl_remote_parse_url(o->url, host, sizeof(host), &pool) < 0) {
		err(ctx, "'%s' is not ssh://[USER@]HOST/POOL", o->url ? o->url : "");
		return -EINVAL;
	}
	dmrepl_remote_transport(o->transport, host, transport, sizeof(transport));
	if (!so.source_name) {
		if (dmrepl_source_name(so.pool, name, sizeof(name)) < 0)
			return -ENAMETOOLONG;
		so.source_name = name;
	}
	if (remote_command(o, pool, cmdline, sizeof(cmdline)) < 0)
		return -ENAMETOOLONG;
	r = dmrepl_peer_start(ctx, transport, cmdline, &p);
	if (r == 0 && o->ret_peer_pid)
		__atomic_store_n(o->ret_peer_pid, p.pid, __ATOMIC_RELEASE);
	if (r == 0 && !(hello = dmrepl_peer_read(&p, "hello"))) {
		err(ctx, "%s: no answer from the far side (%s%s)", o->url,
		    transport, cmdline);
		r = -EPROTO;
	}
	if (r == 0)
		r = plan(ctx, o, hello, &so, &res);
	if (r == 0) {
		r = send_all(o, ctx, &so, p.to_fd);
		close(p.to_fd);
		p.to_fd = -1;
		if (r == 0)
			r = read_result(ctx, o, &p, &res);
	}
	if (o->ret_peer_pid)
		__atomic_store_n(o->ret_peer_pid, 0, __ATOMIC_RELEASE);
	status = dmrepl_peer_stop(&p);
	json_object_put(hello);
	if (r == 1)
		r = 0;	/* already there: the far side saw an empty stream */
	else if (r == 0 && status != 0)
		r = -EPROTO;
	if (ret)
		*ret = res;
	return r;
}
