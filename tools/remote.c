/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl replicate --to ssh://[USER@]HOST/POOL: replication to another
 * host. One connection through the transport (ssh, or --transport):
 *
 *   1. the far side runs `dmrepl receive --pool POOL --negotiate`, which
 *      prints one JSON line: the replicas POOL holds, and the resume
 *      tokens of interrupted receives
 *   2. this side picks the base: the newest snapshot of its own pool
 *      that the far side holds an intact replica of, with the same
 *      identity here (none, or --full: a full stream)
 *   3. it sends the stream (resuming when the far side has a token for
 *      exactly this stream), closes it, and reads the far side's result
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dmrepl.h"
#include "remote.h"
#include "transfer.h"

static const char *const subcmd = "replicate";

struct peer {
	pid_t pid;
	int to_fd;			/* its standard input: the stream */
	FILE *from;			/* its standard output: JSON lines */
	json_object *hello;
};

/* ---- the URL and the command line ---- */

static int parse_url(const char *url, char *host, size_t hsize, const char **pool)
{
	const char *p = url + strlen("ssh://"), *slash;

	if (strncmp(url, "ssh://", 6) != 0)
		return -EINVAL;
	slash = strchr(p, '/');
	if (!slash || slash == p || !slash[1] || (size_t)(slash - p) >= hsize)
		return -EINVAL;
	memcpy(host, p, (size_t)(slash - p));
	host[slash - p] = '\0';
	*pool = slash + 1;
	return 0;
}

/* 'word' for a POSIX shell, appended to @buf. */
static int quote(char *buf, size_t size, const char *word)
{
	size_t n = strlen(buf);

	if (n + 3 >= size)
		return -ENAMETOOLONG;
	buf[n++] = ' ';
	buf[n++] = '\'';
	for (const char *c = word; *c; c++) {
		const char *piece = *c == '\'' ? "'\\''" : NULL;
		size_t len = piece ? 4 : 1;

		if (n + len + 2 >= size)
			return -ENAMETOOLONG;
		memcpy(buf + n, piece ? piece : c, len);
		n += len;
	}
	buf[n++] = '\'';
	buf[n] = '\0';
	return 0;
}

static int remote_command(const struct remote_opts *ro, const char *pool,
			  char *buf, size_t size)
{
	int r;

	snprintf(buf, size, "%s", "");
	r = quote(buf, size, ro->remote_dmrepl ? ro->remote_dmrepl : "dmrepl");
	r = r ?: quote(buf, size, "receive");
	r = r ?: quote(buf, size, "--pool");
	r = r ?: quote(buf, size, pool);
	r = r ?: quote(buf, size, "--negotiate");
	if (ro->remote_state_dir) {
		r = r ?: quote(buf, size, "--state-dir");
		r = r ?: quote(buf, size, ro->remote_state_dir);
	}
	return r;
}

/* ---- the far side ---- */

static int start_peer(const char *transport, const char *cmdline, struct peer *p)
{
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -errno;
	}
	p->pid = fork();
	if (p->pid < 0)
		return -errno;
	if (p->pid == 0) {
		char script[4096];

		dup2(in[0], STDIN_FILENO);
		dup2(out[1], STDOUT_FILENO);
		signal(SIGPIPE, SIG_DFL);
		snprintf(script, sizeof(script), "%s \"$1\"", transport);
		execl("/bin/sh", "sh", "-c", script, "sh", cmdline, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->to_fd = in[1];
	p->from = fdopen(out[0], "r");
	return p->from ? 0 : -ENOMEM;
}

static json_object *read_line(struct peer *p, const char *type)
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
		    strcmp(json_object_get_string(t), type) == 0)
			break;
		json_object_put(obj);	/* progress lines and the like */
	}
	free(line);
	return obj;
}

static int stop_peer(struct peer *p)
{
	int status = 0;

	if (p->to_fd >= 0)
		close(p->to_fd);
	p->to_fd = -1;
	if (p->from)
		fclose(p->from);
	p->from = NULL;
	if (p->pid > 0) {
		while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
			;
		p->pid = 0;
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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

/*
 * The newest snapshot here, older than the one to send, whose replica
 * the far side holds with the identity it has here.
 */
static bool same_ident(json_object *rep, const struct dmrepl_thin_ident *id)
{
	return id->creation_time == get_u64(rep, "src_creation_time") &&
	       id->root == get_u64(rep, "src_root") &&
	       id->mapped_blocks == get_u64(rep, "src_mapped_blocks");
}

static int pick_base(struct dmrepl_ctx *ctx, const struct remote_opts *ro,
		     json_object *replicas, const char *name, uint64_t *ret,
		     uint64_t *ret_have)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_ident snap, id;
	uint32_t best_time = 0;
	int r;

	*ret = *ret_have = DMREPL_THIN_ID_ANY;
	r = dmrepl_metadata_open_pool(ctx, ro->pool, &md);
	if (r < 0)
		return r;
	r = dmrepl_thin_ident_read(md, ro->snap_id, &snap);
	for (size_t i = 0; r == 0 && i < json_object_array_length(replicas); i++) {
		json_object *rep = json_object_array_get_idx(replicas, i);
		uint64_t src_id = get_u64(rep, "src_id");

		if (strcmp(get_str(rep, "src_pool"), name) != 0)
			continue;
		if (src_id == ro->snap_id) {
			if (same_ident(rep, &snap))
				*ret_have = get_u64(rep, "replica");
			continue;
		}
		if (ro->base_id != DMREPL_THIN_ID_ANY && src_id != ro->base_id)
			continue;
		if (dmrepl_thin_ident_read(md, src_id, &id) < 0 ||
		    !same_ident(rep, &id) || id.creation_time >= snap.creation_time)
			continue;
		if (*ret == DMREPL_THIN_ID_ANY || id.creation_time > best_time) {
			*ret = src_id;
			best_time = id.creation_time;
		}
	}
	dmrepl_metadata_unref(md);
	if (r == -ENOENT)
		tool_fail(subcmd, "%s: no thin %" PRIu64 " to replicate", ro->pool,
			  ro->snap_id);
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
static int plan(struct dmrepl_ctx *ctx, const struct remote_opts *ro,
		json_object *hello, struct dmrepl_send_opts *so)
{
	json_object *replicas = NULL, *resumable = NULL;
	uint64_t have, base;
	int r;

	if (!json_object_object_get_ex(hello, "replicas", &replicas) ||
	    !json_object_object_get_ex(hello, "resumable", &resumable)) {
		tool_fail(subcmd, "the far side said: %s", get_str(hello, "error"));
		return -EPROTO;
	}
	r = pick_base(ctx, ro, replicas, so->source_name, &base, &have);
	if (r < 0)
		return r;
	if (have != DMREPL_THIN_ID_ANY) {
		if (!ro->quiet)
			fprintf(stderr, "%s: thin %" PRIu64 " of %s is already replicated "
					"as thin %" PRIu64 " of %s\n",
				program_name, ro->snap_id, ro->pool, have, ro->url);
		return 1;
	}
	so->base_id = ro->full ? DMREPL_THIN_ID_ANY : base;
	if (ro->base_id != DMREPL_THIN_ID_ANY && !ro->full &&
	    so->base_id == DMREPL_THIN_ID_ANY) {
		tool_fail(subcmd, "the far side holds no intact replica of thin %" PRIu64
				  " of %s: replicate it first, or in full (--full)",
			  ro->base_id, so->source_name);
		return -ENOENT;
	}
	if (!ro->chain)
		so->resume_token = pick_token(resumable, ro->snap_id, so->base_id);
	return 0;
}

/* ---- sending ---- */

static int send_all(struct dmrepl_ctx *ctx, const struct remote_opts *ro,
		    struct dmrepl_send_opts *so, int fd)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	int r = 0;

	if (ro->chain && so->base_id != DMREPL_THIN_ID_ANY)
		r = dmrepl_chain_list(ctx, ro->pool, so->base_id, ro->snap_id, &ids, &n);
	for (size_t i = 0; i <= n && r == 0; i++) {
		so->snap_id = i < n ? ids[i] : ro->snap_id;
		so->more = i < n;
		r = dmrepl_send(ctx, so, fd, NULL);
		so->base_id = so->snap_id;
	}
	free(ids);
	return r;
}

static void describe(const struct remote_opts *ro, const struct dmrepl_send_opts *so,
		     const char *url)
{
	if (ro->quiet)
		return;
	if (so->base_id == DMREPL_THIN_ID_ANY)
		fprintf(stderr, "%s: thin %" PRIu64 " of %s to %s: full\n",
			program_name, ro->snap_id, ro->pool, url);
	else
		fprintf(stderr, "%s: thin %" PRIu64 " of %s to %s: from base %" PRIu64
				"%s%s\n",
			program_name, ro->snap_id, ro->pool, url, so->base_id,
			ro->chain ? ", with the snapshots between" : "",
			so->resume_token ? ", resuming" : "");
}

int remote_replicate(struct dmrepl_ctx *ctx, const struct remote_opts *ro,
		     struct dmrepl_send_opts *so)
{
	struct peer p = {.to_fd = -1};
	char host[256], transport[1024], cmdline[2048], name[128];
	const char *pool;
	json_object *hello = NULL, *result = NULL, *ok;
	int r, status;

	if (parse_url(ro->url, host, sizeof(host), &pool) < 0)
		return tool_usage_error(subcmd, "--to: '%s' is not ssh://[USER@]HOST/POOL", ro->url);
	if (ro->transport)
		snprintf(transport, sizeof(transport), "%s", ro->transport);
	else
		snprintf(transport, sizeof(transport), "ssh -o BatchMode=yes -- '%s'", host);
	if (!so->source_name) {
		if (dmrepl_source_name(ro->pool, name, sizeof(name)) < 0)
			return EXIT_FAILURE_OP;
		so->source_name = name;
	}
	if (remote_command(ro, pool, cmdline, sizeof(cmdline)) < 0)
		return tool_usage_error(subcmd, "--to: the pool name is too long");
	signal(SIGPIPE, SIG_IGN);
	r = start_peer(transport, cmdline, &p);
	if (r == 0) {
		hello = read_line(&p, "hello");
		if (!hello) {
			tool_fail(subcmd, "%s: no answer from the far side (%s%s)",
				  ro->url, transport, cmdline);
			r = -EPROTO;
		}
	}
	if (r == 0)
		r = plan(ctx, ro, hello, so);
	if (r == 1) {	/* nothing to send: the far side sees an empty stream */
		close(p.to_fd);
		p.to_fd = -1;
		stop_peer(&p);
		json_object_put(hello);
		return EXIT_OK;
	}
	if (r == 0) {
		describe(ro, so, ro->url);
		r = send_all(ctx, ro, so, p.to_fd);
		close(p.to_fd);
		p.to_fd = -1;
		result = read_line(&p, "result");
	}
	status = stop_peer(&p);
	if (result && ro->json)
		printf("%s\n", json_object_to_json_string_ext(result, JSON_C_TO_STRING_PLAIN));
	if (r == 0 && (!result || !json_object_object_get_ex(result, "ok", &ok) ||
		       !json_object_get_boolean(ok) || status != 0))
		r = -EPROTO;
	if (r == 0 && !ro->json && !ro->quiet)
		printf("thin %" PRIu64 " of %s replicated to %s as thin %" PRIu64 "\n",
		       ro->snap_id, ro->pool, ro->url, get_u64(result, "replica"));
	json_object_put(hello);
	json_object_put(result);
	if (r == -ECANCELED && tool_interrupted)
		return tool_interrupted_exit(subcmd);
	if (r < 0) {
		tool_fail(subcmd, "thin %" PRIu64 " of %s was not replicated to %s%s",
			  ro->snap_id, ro->pool, ro->url,
			  r == -EPIPE || r == -EPROTO ? " (see the far side's messages)" : "");
		return EXIT_FAILURE_OP;
	}
	return EXIT_OK;
}
