/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Replication between hosts: a snapshot goes out as a stream
 * (send.c), is applied by the receiver (receive.c), and an interrupted
 * transfer resumes from a token (resume.c). The stream format is
 * lib/stream.h and doc/stream-format.md.
 */
#ifndef DMREPL_TRANSFER_H
#define DMREPL_TRANSFER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "base.h"
#include "replication.h"
#include "stream.h"

/* Progress of a send or a receive: bytes of volume done, and the total. */
typedef void (*dmrepl_transfer_progress_fn)(uint64_t done, uint64_t total,
					    void *userdata);

/* ---- send ---- */

struct dmrepl_send_opts {
	/* A thin snapshot of a live pool, or (pool NULL) a file or device. */
	const char *pool;
	const char *source_name;	/* the source's identity in the stream;
					   NULL: "HOSTNAME:POOL" */
	uint64_t snap_id;
	const char *snap_name;		/* its "VG/LV" in the stream; NULL: asked
					   of LVM when LVM manages the pool */
	uint64_t base_id;		/* DMREPL_THIN_ID_ANY: a full stream */
	const char *device;		/* instead of pool: send this file */
	FILE *extents;			/* with device: these extents (lines),
					   else the whole of it */
	uint64_t size_bytes;		/* 0: of the active device, or --device's */
	const char *resume_token;	/* continue an interrupted receive */
	int zstd_level;			/* 0: no compression */
	bool detect_zeroes;		/* all-zero pieces go as ZERO records */
	/*
	 * Read through a device of its own, never an active one (a live
	 * migration's volume: its own device is suspended).
	 */
	bool own_device;
	enum dmrepl_engine engine;
	unsigned int queue_depth;	/* 0: 32 */
	uint32_t io_size;		/* 0: 1 MiB */
	uint64_t checkpoint_bytes;	/* 0: 256 MiB of data between CHECKPOINTs */
	uint64_t bwlimit;		/* bytes of stream a second; 0: no limit */
	int ioprio;			/* the reads' I/O priority, as
					   IOPRIO_PRIO_VALUE(class, level); 0: the
					   process's */
	bool more;			/* another stream follows (a chain) */
	bool dry_run;			/* identify and count, activate nothing,
					   write no stream (@fd is not used) */
	dmrepl_transfer_progress_fn progress;
	void *progress_data;
	const volatile int *cancel;	/* non-zero: stop (-ECANCELED) */
};

struct dmrepl_send_result {
	struct dmrepl_stream_stats stats;
	uint64_t resume_offset;
	bool incremental;
	unsigned int streams;		/* a chain's: one per link */
	uint64_t volume_size;
	/* what the stream carries (with dry_run: would carry), from
	   resume_offset on; a chain's added up */
	uint64_t extents;
	uint64_t copy_bytes;		/* read and sent, as DATA or ZERO */
	uint64_t discard_bytes;		/* sent as DISCARD */
	uint64_t zero_bytes;		/* of copy_bytes, as ZERO (detect_zeroes;
					   0 in a dry run: nothing is read) */
};

/*
 * Write the stream of @o to @fd (blocking). Reads the source pool's
 * metadata through its metadata snapshot (released before any data is
 * read), activates the snapshot read-only under a temporary name, and
 * always removes it. With @o->dry_run, stops after counting the extents
 * (@ret says what the stream would carry): nothing is activated and
 * nothing written. Return: 0, or -errno (logged).
 */
int dmrepl_send(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		int fd, struct dmrepl_send_result *ret);

/*
 * With @o->base_id set: every snapshot between the base and @o->snap_id
 * (dmrepl_chain_list()), then @o->snap_id, each as its own stream on
 * @fd, all but the last flagged that another follows. Without a size,
 * the links take the target's active size. @ret (may be NULL): the
 * streams' counts added up.
 */
int dmrepl_send_chain(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		      int fd, struct dmrepl_send_result *ret);

/* Grow @fd's buffer when it is a pipe (1 MiB; best effort). */
void dmrepl_pipe_grow(int fd);

/* "HOSTNAME:POOL" into @buf (at most 127 bytes). */
int dmrepl_source_name(const char *pool, char *buf, size_t size);

/*
 * The snapshots of @pool created after @base and before @snap that share
 * blocks with @snap, oldest first (chain.c): the links of a chain.
 * *@ret_ids is malloc'ed (NULL when *@ret_n is 0).
 */
int dmrepl_chain_list(struct dmrepl_ctx *ctx, const char *pool, uint64_t base,
		      uint64_t snap, uint64_t **ret_ids, size_t *ret_n);

/* ---- receive ---- */

struct dmrepl_receive_opts {
	const char *pool;		/* a live pool; or: */
	const char *device;		/* a file or device, written in place
					   (no lineage, no atomicity) */
	const char *state_dir;		/* NULL: the default */
	bool allow_empty;		/* no stream at all is not an error */
	/*
	 * Read and check every stream whole (header, every record's
	 * checksum, order and length, END's counts and digest), and with
	 * @pool whether the pool could take it (its base, a replay, what a
	 * resumed one continues), with @device whether it is big enough;
	 * write nothing, record nothing. Neither @pool nor @device: the
	 * stream alone is checked.
	 */
	bool dry_run;
	/*
	 * Only streams whose source (HOST:POOL, or --source-name) matches
	 * one of these fnmatch(3) patterns (NULL-terminated) are taken; any
	 * other is refused (-EPERM) before anything is written. NULL: any.
	 * (dmrepl serve's keys.)
	 */
	const char *const *only_sources;
	/* An LVM tag the replica gets in its commit (a sync job's), or NULL. */
	const char *replica_tag;
	enum dmrepl_engine engine;
	unsigned int queue_depth;
	dmrepl_transfer_progress_fn progress;
	void *progress_data;
	const volatile int *cancel;
};

struct dmrepl_receive_result {
	struct dmrepl_stream_stats stats;
	uint64_t dst_thin_id;
	uint64_t base_dst_thin_id;	/* DMREPL_THIN_ID_ANY: a full stream */
	uint64_t src_thin_id;
	char src_pool[128];
	bool resumed;
	unsigned int streams;		/* applied (a chain sends several) */
	char dst_lv[256];		/* "VG/LV" of an LVM replica, or "" */
	uint64_t discard_bytes;		/* of DISCARD records */
	uint64_t zero_bytes;		/* of ZERO records */
	bool full;			/* the last stream had no base */
};

/*
 * Apply the stream(s) on @fd: each is checked (base, identity) before
 * any write, written into a new staging device, and committed as a
 * replica only after its END verified. A stream that ends early keeps
 * its staging device to resume from the last checkpoint; any other
 * failure deletes it. Several streams may follow one another (a chain);
 * each is committed on its own. With @o->dry_run, nothing is written
 * (see there); @ret says what the streams carry, dst_thin_id is
 * DMREPL_THIN_ID_ANY unless one resumes a staging device.
 * Return: 0, or -errno (logged).
 */
int dmrepl_receive(struct dmrepl_ctx *ctx, const struct dmrepl_receive_opts *o,
		   int fd, struct dmrepl_receive_result *ret);

/* One resumable receive in @pool: its resume token. */
typedef int (*dmrepl_resumable_fn)(const char *token,
				   const struct dmrepl_lineage_record *rec,
				   void *userdata);
int dmrepl_receive_foreach_resumable(struct dmrepl_ctx *ctx, const char *pool,
				     const char *state_dir,
				     dmrepl_resumable_fn fn, void *userdata);
/* The same without cleaning what killed runs left first (dry runs). */
int dmrepl_receive_foreach_resumable_readonly(struct dmrepl_ctx *ctx,
					      const char *pool,
					      const char *state_dir,
					      dmrepl_resumable_fn fn,
					      void *userdata);
/* Delete every resumable staging device of @pool; *@ret_n: how many. */
int dmrepl_receive_abort(struct dmrepl_ctx *ctx, const char *pool,
			 const char *state_dir, unsigned int *ret_n);
/*
 * Read only (dry runs): the staging devices of @pool, as the records
 * say: resumable receives (what dmrepl_receive_abort() would drop) and
 * unfinished replications (what opening the destination would delete).
 */
int dmrepl_receive_count_left(struct dmrepl_ctx *ctx, const char *pool,
			      const char *state_dir,
			      unsigned int *ret_resumable,
			      unsigned int *ret_unfinished);

/*
 * dmrepl_pool_recover()'s dry run: the same checks and refusals, with
 * what it would do in @ret (devices_removed: would remove, and so on)
 * and *@ret_unfinished, the unfinished replications it would delete;
 * nothing is removed, released, deleted or recorded.
 */
int dmrepl_pool_recover_dry_run(struct dmrepl_ctx *ctx, const char *pool_dm_name,
				const char *state_dir,
				struct dmrepl_recover_result *ret,
				unsigned int *ret_unfinished);

/* ---- to another host (remote.c) ---- */

struct dmrepl_remote_opts {
	const char *url;		/* ssh://[USER@]HOST/POOL */
	const char *transport;		/* NULL: ssh -o BatchMode=yes HOST */
	const char *remote_dmrepl;	/* NULL: "dmrepl" */
	const char *remote_state_dir;	/* NULL: the far side's default */
	/* receive --tag: the far side's replica gets it (an LVM pool's) */
	const char *replica_tag;
	/* receive --keep: then only the N newest replicas tagged so stay */
	unsigned int keep;
	uint64_t base_id;		/* DMREPL_THIN_ID_ANY: the newest common one */
	bool full, chain;
	/* pool, snap_id and how to send; base_id and resume are chosen */
	struct dmrepl_send_opts send;
	/* set to the transport's pid while it runs (to stop it), else 0 */
	pid_t *ret_peer_pid;
};

struct dmrepl_remote_result {
	uint64_t dst_thin_id;		/* the far side's replica */
	uint64_t base_dst_thin_id;	/* DMREPL_THIN_ID_ANY: a full stream */
	uint64_t base_src_id;		/* the base chosen here, or ANY */
	uint64_t data_bytes, stream_bytes;
	unsigned int streams;
	bool resumed, already_replicated;
	char dst_lv[256];		/* "VG/LV" of an LVM replica, or "" */
	/*
	 * The far side's retention (opts keep): the replicas it removed,
	 * "VG/LV" each; the caller frees them (free() each, then the array).
	 */
	char **pruned;
	size_t nr_pruned;
};

/*
 * The far side's first line (`dmrepl receive --negotiate`): one JSON
 * object on @out, the intact replicas @pool holds and the tokens of its
 * resumable receives (doc/stream-format.md, "Negotiation"). An error
 * goes into the line too. Return: 0 or -errno.
 */
int dmrepl_remote_hello(struct dmrepl_ctx *ctx, const char *pool,
			const char *state_dir, const char *const *only_sources,
			FILE *out);
/* @source matches one of @patterns (NULL: every source does). */
bool dmrepl_source_allowed(const char *const *patterns, const char *source);
/*
 * The far side: a transport (ssh, or a command that carries standard
 * input and output) running a command line there.
 */
struct json_object;
struct dmrepl_peer {
	pid_t pid;
	int to_fd;			/* its standard input */
	FILE *from;			/* its standard output: JSON lines */
};
/* Start "TRANSPORT CMDLINE" (through sh: @transport may hold options). */
int dmrepl_peer_start(struct dmrepl_ctx *ctx, const char *transport,
		      const char *cmdline, struct dmrepl_peer *p);
/* Its next JSON line of @type (others skipped; NULL: any); NULL at its end. */
struct json_object *dmrepl_peer_read(struct dmrepl_peer *p, const char *type);
/* Close both pipes and wait: its exit status (128+N: killed by N). */
int dmrepl_peer_stop(struct dmrepl_peer *p);
/* @transport, or "ssh -o BatchMode=yes -- 'HOST'" when it is NULL, into @buf. */
void dmrepl_remote_transport(const char *transport, const char *host, char *buf,
			     size_t size);
/* " 'WORD'" (quoted for a POSIX shell) appended to @buf. */
int dmrepl_remote_quote(char *buf, size_t size, const char *word);
/* URL -> HOST and POOL. Return: 0 or -EINVAL. */
int dmrepl_remote_parse_url(const char *url, char *host, size_t hsize,
			    const char **ret_pool);
/* Negotiate, send, collect the far side's result. Return: 0 or -errno. */
int dmrepl_remote_replicate(struct dmrepl_ctx *ctx,
			    const struct dmrepl_remote_opts *o,
			    struct dmrepl_remote_result *ret);

/* ---- resume tokens (resume.c) ---- */

struct dmrepl_resume_token {
	uint64_t snap_id;
	uint64_t base_id;		/* DMREPL_THIN_ID_ANY: a full stream */
	uint64_t identity_hash;		/* dmrepl_stream_identity_hash() */
	uint64_t offset;		/* continue at this byte */
};

#define DMREPL_RESUME_TOKEN_MAX 128
int dmrepl_resume_token_format(const struct dmrepl_resume_token *t, char *buf,
			       size_t size);
/* Return: 0, or -EINVAL for anything malformed or mistyped. */
int dmrepl_resume_token_parse(const char *s, struct dmrepl_resume_token *ret);

#endif
