#pragma once
/*
 * The agent user: /etc/passwd, /etc/group and /etc/shadow entries, its
 * home directory, and the FILE frames written under it.  The editors of
 * the account files are pure (old content in, new content out) and
 * unit-tested; user_create() applies them to a root directory.
 */
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "setup.h"

#define USER_SUDO_GROUP "ccvm-sudo"
#define USER_GROUPS_MAX 64

/*
 * passwd: drops entries with the same name or (for uid != 0) the same uid,
 * appends "name:x:uid:gid:name:home:/bin/bash".
 */
int user_passwd_edit(const char *old, const struct guest_setup *s, char **out);
/*
 * group: keeps a group that already has gid (it becomes the primary
 * group), else appends "name:x:gid:" (dropping a same-named group with
 * another gid); adds the user to USER_SUDO_GROUP when that group exists.
 */
int user_group_edit(const char *old, const struct guest_setup *s, char **out);
/* shadow: drops the user's entry, appends one with a locked password. */
int user_shadow_edit(const char *old, const struct guest_setup *s, char **out);
/*
 * The user's groups from a group file: gid first, then every group whose
 * member list names the user.  Returns the count (at most max).
 */
size_t user_groups(const char *group, const char *name, gid_t gid, gid_t *out,
		   size_t max);

/*
 * Creates the user in the tree at root ("/" in the guest): account files,
 * and home (0700, owned by uid/gid).
 */
int user_create(const char *root, const struct guest_setup *s,
		struct ccvm_err *err);

/*
 * mkdir -p path; the components strictly below base (a prefix of path) are
 * created with mode and owned by uid/gid, the others 0755 root-owned.
 */
int user_mkdir_owned(const char *path, const char *base, mode_t mode, uid_t uid,
		     gid_t gid, struct ccvm_err *err);

/* Writes a FILE frame under home: rel is relative without "..", parents
 * 0700, everything owned by the user. */
int user_write_file(const struct guest_setup *s, const char *rel, uint32_t mode,
		    bool append, const void *data, size_t len,
		    struct ccvm_err *err);
