#pragma once
/*
 * A cached image's files checked against its manifest before a boot.
 *
 * manifest.json's "sha256" object holds the SHA-256 of vmlinux, root.sqfs,
 * modules/load.list and each module it lists.  Hashing the whole image on
 * every start would cost about half a second (root.sqfs is ~300 MB, SHA-256
 * runs at ~700 MB/s here), as long as a restored session takes.  So a file
 * is hashed only when it is new to this check or changed since: the file
 * "verified" in the image directory records, per file, the checksum it
 * matched and the file's device, inode, size, modification and change times
 * when it did.  Any write, truncation, replacement or touch of a file
 * changes its change time (which no user tool can set back), so the next
 * start hashes it again.  Not caught: damage that bypasses the file system
 * (a failing disk, the block device written directly).
 *
 * An image made before checksums were recorded gets them at its first
 * check, after its files' sizes were found to match the manifest's "sizes".
 * The initramfs (initrd-<h>.cpio), which ccvm writes beside the image for
 * each ccvm-init, is recorded when written and checked the same way; a
 * damaged one is written again.
 */
#include <stdbool.h>
#include <sys/stat.h>

#include "err.h"

/* 0 when dir's files match its manifest; -EBADMSG (err names the file and
 * what is wrong) when one does not or the manifest is unreadable; another
 * -errno when the check could not run.  *hashed: bytes hashed (may be
 * NULL). */
int image_verify(const char *dir, long long *hashed, struct ccvm_err *err);

/* Adds the "sha256" object for dir's files to dir/manifest.json (the build
 * calls it before the image is renamed into place). */
int image_seal(const char *dir, struct ccvm_err *err);

/* The SHA-256 (hex) of the file at path; 0 or -errno. */
int image_file_sha256(const char *path, char out[65], long long *bytes);

/* dir/name (an initramfs) against the manifest's checksum for it: 0,
 * -EBADMSG when it does not match (err says how), -ENOENT when the
 * manifest has none. */
int image_verify_file(const char *dir, const char *name, struct ccvm_err *err);

/* Records the checksum of dir/name in dir's manifest.  0 or -errno. */
int image_record(const char *dir, const char *name, struct ccvm_err *err);

/* The record of what was checked (the file "verified" in dir), for other
 * files of the image directory (saved boots): whether dir/name, as sb
 * describes it now, matched the checksum sha (hex) and is unchanged since;
 * and recording that it does. */
bool image_stamp_ok(const char *dir, const char *name, const char *sha,
		    const struct stat *sb);
void image_stamp_put(const char *dir, const char *name, const char *sha,
		     const struct stat *sb);
