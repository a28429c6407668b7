/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * lib/lvm.c: what LVM says and does, asked of lvm2 itself (`lvm lvs
 * --reportformat json`, `lvm lvcreate` ...). dmrepl reads an LVM pool's
 * metadata directly, through the held root, as it does any pool's; names,
 * sizes, tags and every change to the set of thin devices go through lvm.
 */
#ifndef DMREPL_LVM_H
#define DMREPL_LVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

/*
 * One LV as lvs reports it. @tags is lvs' comma-separated list; @origin
 * a thin snapshot's origin while that exists.
 */
struct dmrepl_lvm_lv {
	char vg[128], lv[128];
	char vg_uuid[40], lv_uuid[40];
	char segtype[32];		/* "thin", "thin-pool", ... */
	char pool_lv[128];		/* a thin LV's pool */
	char origin[128];
	char tags[2048];
	uint64_t thin_id;		/* a thin LV's; else DMREPL_THIN_ID_ANY */
	uint64_t size_bytes;
	uint64_t extent_bytes;		/* the VG's extent size; 0: unknown */
};

/*
 * Run `lvm ARGS...` (NULL-ended; $DMREPL_LVM replaces "lvm", for tests),
 * stdin from /dev/null; its standard output in *@ret_out (free() it; may
 * be NULL). When lvm fails: -EIO and its first line of error in @ret_err,
 * for the caller's message (not logged).
 */
int dmrepl_lvm_run(struct dmrepl_ctx *ctx, const char *const *args,
		   char **ret_out, char *ret_err, size_t err_size);
/* One "VG/LV" (-ENOENT: no such LV, logged). */
int dmrepl_lvm_lookup(struct dmrepl_ctx *ctx, const char *vg_lv,
		      struct dmrepl_lvm_lv *ret);
/* Every LV of @vg, hidden ones too; *@ret is malloc'ed. */
int dmrepl_lvm_list(struct dmrepl_ctx *ctx, const char *vg,
		    struct dmrepl_lvm_lv **ret, size_t *ret_n);
/*
 * As dmrepl_lvm_list(), from this context's last listing of @vg when no
 * lvm command that changes anything ran since (and it is at most seconds
 * old): for a second look within one decision.
 */
int dmrepl_lvm_list_kept(struct dmrepl_ctx *ctx, const char *vg,
			 struct dmrepl_lvm_lv **ret, size_t *ret_n);
/* "VG/LV" of the thin LV with @thin_id in pool "VG/POOL"; -ENOENT: none. */
int dmrepl_lvm_name_of_thin(struct dmrepl_ctx *ctx, const char *vg_pool,
			    uint64_t thin_id, char *buf, size_t size);
/*
 * An LVM thin snapshot of thin LV "VG/LV" named @name (NULL: LV-DATE-TIME,
 * UTC), tagged @tag (NULL: none), by lvcreate -s: LVM suspends the origin
 * and picks the id. *@ret describes it.
 */
int dmrepl_lvm_snapshot(struct dmrepl_ctx *ctx, const char *vg_lv,
			const char *name, const char *tag,
			struct dmrepl_lvm_lv *ret);
/*
 * Its dry run: the origin checked, the name chosen and free; *@ret_vg_lv
 * is the snapshot's "VG/NAME" to be. Nothing is created.
 */
int dmrepl_lvm_snapshot_dry_run(struct dmrepl_ctx *ctx, const char *vg_lv,
				const char *name, char *ret_vg_lv, size_t size);
/* lvs' JSON answers (pure, for tests and fuzzing): exactly one LV; all. */
int dmrepl_lvm_parse_lv(const char *json, struct dmrepl_lvm_lv *ret);
int dmrepl_lvm_parse_lvs(const char *json, struct dmrepl_lvm_lv **ret,
			 size_t *ret_n);
/* The dm name of a thin pool LV's thin-pool device, checked by dm UUID. */
int dmrepl_lvm_pool_dm_name(struct dmrepl_ctx *ctx,
			    const struct dmrepl_lvm_lv *lv, char *buf,
			    size_t size);
/*
 * The dm device of the active LVM pool "VG/POOL" into @buf, from
 * device-mapper alone (no lvm command): 0, -ENODEV when no active
 * device of LVM's is that pool (then look it up, for the reason).
 */
int dmrepl_lvm_active_pool(struct dmrepl_ctx *ctx, const char *vg_pool,
			   char *buf, size_t size);

/* @lv carries tag @tag exactly. */
bool dmrepl_lvm_has_tag(const struct dmrepl_lvm_lv *lv, const char *tag);
/*
 * The first of @lv's tags that starts with @prefix, copied into @buf
 * without the prefix. Return: 0, -ENOENT, -ENAMETOOLONG.
 */
int dmrepl_lvm_tag_value(const struct dmrepl_lvm_lv *lv, const char *prefix,
			 char *buf, size_t size);
/*
 * @s as a tag's text: the characters LVM allows in a tag, except the
 * separators '=', '&' and '#', stay; every other byte becomes "#XX"
 * (hex). dmrepl_lvm_tag_unescape() is the reverse (-EINVAL: malformed).
 */
int dmrepl_lvm_tag_escape(const char *s, char *buf, size_t size);
int dmrepl_lvm_tag_unescape(const char *s, size_t len, char *buf, size_t size);
/* LVM's dm name of VG/LV: each "-" doubled, then VG-LV. 0 or -ENAMETOOLONG. */
int dmrepl_lvm_dm_name(const char *vg, const char *lv, char *buf, size_t size);
/* The characters an LVM tag may hold. */
#define DMREPL_LVM_TAG_CHARS \
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+.-/=!:&#"
/* @tag is at most 128 of DMREPL_LVM_TAG_CHARS (LVM takes it). */
bool dmrepl_lvm_tag_valid(const char *tag);
/* @name is a valid LV name that LVM does not reserve. */
bool dmrepl_lvm_name_valid(const char *name);

#endif
