/* A cached image's files checked against its manifest (verify.h). */
#define _GNU_SOURCE
#include "image/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define STAMP_FILE   "verified"
#define STAMP_MAX    256 /* files an image may have checked */
#define LIST_MAX     (1u << 20)
#define READ_CHUNK   (1u << 20)
#define MANIFEST_MAX (1u << 20)

/* The files whose checksums the manifest records, beside the modules. */
static const char *const main_files[] = {"vmlinux", "root.sqfs",
					 "modules/load.list"};
/* Their sizes in the manifest's "sizes" (older manifests have these). */
static const char *const size_keys[] = {"vmlinux", "rootfs", NULL};

int image_file_sha256(const char *path, char out[65], long long *bytes)
{
	autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	uint8_t *buf = malloc(READ_CHUNK);
	if (!buf)
		return -ENOMEM;
	struct sha256_ctx c;
	sha256_init(&c);
	long long total = 0;
	int r = 0;
	for (;;) {
		ssize_t n = util_read_all(fd, buf, READ_CHUNK);
		if (n < 0) {
			r = (int)n;
			break;
		}
		if (n == 0)
			break;
		sha256_update(&c, (size_t)n, buf);
		total += n;
	}
	free(buf);
	if (r < 0)
		return r;
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(&c, sizeof(d), d);
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(d); i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
	if (bytes)
		*bytes += total;
	return 0;
}

/* A name of the manifest's "sha256": a path inside the image directory. */
static bool safe_name(const char *n)
{
	return n[0] && n[0] != '/' && !strstr(n, "..") && strlen(n) < 200;
}

/* ---- the manifest ----------------------------------------------------- */

static json_t *manifest_load(const char *dir, struct ccvm_err *err)
{
	autofree char *p = util_path_join(dir, "manifest.json");
	autofree char *text = NULL;
	size_t len = 0;
	struct ccvm_err e = {0};
	if (!p || util_read_file(p, MANIFEST_MAX, &text, &len, &e) < 0) {
		ccvm_err_set(err, EBADMSG, "manifest.json: %s", e.msg);
		return NULL;
	}
	json_error_t je;
	json_t *m = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(m)) {
		ccvm_err_set(err, EBADMSG, "manifest.json: line %d: %s",
			     je.line, m ? "not an object" : je.text);
		json_decref(m);
		return NULL;
	}
	return m;
}

static int manifest_store(const char *dir, json_t *m, struct ccvm_err *err)
{
	autofree char *p = util_path_join(dir, "manifest.json");
	autofree char *tmp =
	    util_asprintf("%s/.manifest.tmp-%d", dir, getpid());
	if (!p || !tmp)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    dir);
	if (json_dump_file(m, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0) {
		unlink(tmp);
		return ccvm_err_set(err, EIO, "cannot write %s", tmp);
	}
	if (rename(tmp, p) < 0) {
		int e = errno;
		unlink(tmp);
		return ccvm_err_sys(err, e, "%s", p);
	}
	return 0;
}

/* The SHA-256 of each file of dir the image is made of, as a JSON
 * object. */
static json_t *hash_files(const char *dir, struct ccvm_err *err)
{
	json_t *sums = json_object();
	if (!sums) {
		ccvm_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	autofree char *listp = util_path_join(dir, "modules/load.list");
	autofree char *list = NULL;
	size_t len = 0;
	int r = listp ? util_read_file(listp, LIST_MAX, &list, &len, err)
		      : ccvm_err_set(err, ENAMETOOLONG, "%s", dir);
	if (r == -ENOENT)
		r = ccvm_err_set(err, EBADMSG, "modules/load.list is missing");
	for (size_t i = 0; r == 0 && i < ARRAY_LEN(main_files); i++) {
		autofree char *p = util_path_join(dir, main_files[i]);
		char h[65];
		r = p ? image_file_sha256(p, h, NULL) : -ENAMETOOLONG;
		if (r == -ENOENT)
			r = ccvm_err_set(err, EBADMSG, "%s is missing",
					 main_files[i]);
		else if (r < 0)
			r = ccvm_err_sys(err, -r, "%s/%s", dir, main_files[i]);
		else
			json_object_set_new(sums, main_files[i],
					    json_string(h));
	}
	char *save = NULL;
	for (char *n = r == 0 ? strtok_r(list, "\n", &save) : NULL; n && !r;
	     n = strtok_r(NULL, "\n", &save)) {
		autofree char *rel = util_asprintf("modules/%s", n);
		autofree char *p = rel ? util_path_join(dir, rel) : NULL;
		char h[65];
		if (!p || strchr(n, '/') || !safe_name(rel)) {
			r = ccvm_err_set(err, EBADMSG,
					 "modules/load.list: bad entry '%s'",
					 n);
			break;
		}
		r = image_file_sha256(p, h, NULL);
		if (r == -ENOENT)
			r = ccvm_err_set(err, EBADMSG, "%s is missing", rel);
		else if (r < 0)
			r = ccvm_err_sys(err, -r, "%s", p);
		else
			json_object_set_new(sums, rel, json_string(h));
	}
	if (r < 0) {
		json_decref(sums);
		return NULL;
	}
	return sums;
}

int image_seal(const char *dir, struct ccvm_err *err)
{
	json_t *m = manifest_load(dir, err);
	if (!m)
		return -EBADMSG;
	json_t *sums = hash_files(dir, err);
	int r = sums ? 0 : (err->code ? err->code : -EIO);
	if (r == 0) {
		json_object_set_new(m, "sha256", sums);
		r = manifest_store(dir, m, err);
	}
	json_decref(m);
	return r;
}

/* ---- what was checked when ------------------------------------------------
 */

struct stamp {
	char name[200];
	char sha[65];
	unsigned long long dev, ino;
	long long size, mt_s, mt_ns, ct_s, ct_ns;
};

struct stamps {
	struct stamp v[STAMP_MAX];
	size_t n;
	bool changed;
};

static void stamp_of(struct stamp *s, const char *name, const char *sha,
		     const struct stat *st)
{
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->sha, sizeof(s->sha), "%s", sha);
	s->dev = st->st_dev;
	s->ino = st->st_ino;
	s->size = st->st_size;
	s->mt_s = st->st_mtim.tv_sec;
	s->mt_ns = st->st_mtim.tv_nsec;
	s->ct_s = st->st_ctim.tv_sec;
	s->ct_ns = st->st_ctim.tv_nsec;
}

static bool stamp_same(const struct stamp *a, const struct stamp *b)
{
	return !strcmp(a->name, b->name) && !strcmp(a->sha, b->sha) &&
	       a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mt_s == b->mt_s && a->mt_ns == b->mt_ns &&
	       a->ct_s == b->ct_s && a->ct_ns == b->ct_ns;
}

/* Reads dir/verified; a missing or malformed file is no stamps. */
static void stamps_read(const char *dir, struct stamps *s)
{
	s->n = 0;
	s->changed = false;
	autofree char *p = util_path_join(dir, STAMP_FILE);
	autofree char *text = NULL;
	size_t len = 0;
	struct ccvm_err e = {0};
	if (!p || util_read_file(p, 64u << 10, &text, &len, &e) < 0)
		return;
	char *save = NULL;
	for (char *l = strtok_r(text, "\n", &save); l && s->n < STAMP_MAX;
	     l = strtok_r(NULL, "\n", &save)) {
		struct stamp *t = &s->v[s->n];
		if (sscanf(l, "%64s %llu %llu %lld %lld.%lld %lld.%lld %199s",
			   t->sha, &t->dev, &t->ino, &t->size, &t->mt_s,
			   &t->mt_ns, &t->ct_s, &t->ct_ns, t->name) == 9)
			s->n++;
	}
}

static void stamps_write(const char *dir, const struct stamps *s)
{
	autofree char *p = util_path_join(dir, STAMP_FILE);
	autofree char *tmp =
	    util_asprintf("%s/.%s.tmp-%d", dir, STAMP_FILE, getpid());
	if (!p || !tmp)
		return;
	FILE *f = fopen(tmp, "we");
	if (!f)
		return; /* a read-only cache: hashed again next time */
	for (size_t i = 0; i < s->n; i++) {
		const struct stamp *t = &s->v[i];
		autofree char *fp = util_path_join(dir, t->name);
		struct stat sb;
		if (!fp || lstat(fp, &sb) < 0)
			continue; /* gone (a pruned saved boot) */
		fprintf(f, "%s %llu %llu %lld %lld.%09lld %lld.%09lld %s\n",
			t->sha, t->dev, t->ino, t->size, t->mt_s, t->mt_ns,
			t->ct_s, t->ct_ns, t->name);
	}
	if (fclose(f) != 0 || rename(tmp, p) < 0)
		unlink(tmp);
}

/* A file's stamp as it is now equals the one recorded: not hashed. */
static bool stamps_match(const struct stamps *s, const struct stamp *now)
{
	for (size_t i = 0; i < s->n; i++)
		if (stamp_same(&s->v[i], now))
			return true;
	return false;
}

static void stamps_put(struct stamps *s, const struct stamp *now)
{
	size_t i = 0;
	while (i < s->n && strcmp(s->v[i].name, now->name))
		i++;
	if (i == s->n) {
		if (s->n == STAMP_MAX)
			return;
		s->n++;
	}
	s->v[i] = *now;
	s->changed = true;
}

/* ---- the check ---------------------------------------------------------- */

/* Manifests from before checksums: the sizes they recorded, then the
 * checksums of the files as they are; 1 when they could not be written. */
static int seal_old(const char *dir, json_t *m, struct ccvm_err *err)
{
	json_t *sizes = json_object_get(m, "sizes");
	for (size_t i = 0; size_keys[i]; i++) {
		json_t *v = json_object_get(sizes, size_keys[i]);
		autofree char *p = util_path_join(dir, main_files[i]);
		struct stat st;
		if (!json_is_integer(v) || !p)
			continue;
		if (stat(p, &st) < 0)
			return ccvm_err_set(err, EBADMSG, "%s is missing",
					    main_files[i]);
		if (st.st_size != json_integer_value(v))
			return ccvm_err_set(
			    err, EBADMSG,
			    "%s is %lld bytes, the manifest says %lld",
			    main_files[i], (long long)st.st_size,
			    (long long)json_integer_value(v));
	}
	struct ccvm_err e = {0};
	int r = image_seal(dir, &e);
	if (r == -EBADMSG)
		return ccvm_err_set(err, EBADMSG, "%s", e.msg);
	/* Not written (a read-only cache): checked by its sizes only. */
	return r < 0 ? 1 : 0;
}

static int check_one(const char *dir, const char *name, const char *want,
		     struct stamps *st, long long *hashed, struct ccvm_err *err)
{
	if (!safe_name(name) || strlen(want) != 64)
		return ccvm_err_set(
		    err, EBADMSG, "manifest.json: bad sha256 entry '%s'", name);
	autofree char *p = util_path_join(dir, name);
	struct stat sb;
	if (!p || lstat(p, &sb) < 0 || !S_ISREG(sb.st_mode))
		return ccvm_err_set(err, EBADMSG, "%s is missing", name);
	struct stamp now = {0};
	stamp_of(&now, name, want, &sb);
	if (stamps_match(st, &now))
		return 0;
	char h[65];
	int r = image_file_sha256(p, h, hashed);
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s", p);
	if (strcmp(h, want))
		return ccvm_err_set(err, EBADMSG,
				    "%s (%lld bytes) does not match the "
				    "checksum in its manifest",
				    name, (long long)sb.st_size);
	stamps_put(st, &now);
	return 0;
}

int image_verify(const char *dir, long long *hashed, struct ccvm_err *err)
{
	long long dummy = 0;
	if (!hashed)
		hashed = &dummy;
	json_t *m = manifest_load(dir, err);
	if (!m)
		return -EBADMSG;
	int r = 0;
	if (!json_object_get(m, "sha256")) {
		r = seal_old(dir, m, err);
		json_decref(m);
		if (r != 0)
			return r < 0 ? r : 0;
		if (!(m = manifest_load(dir, err)))
			return -EBADMSG;
	}
	json_t *sums = json_object_get(m, "sha256");
	/* Truncation first: the recorded sizes say it without hashing. */
	json_t *sizes = json_object_get(m, "sizes");
	for (size_t i = 0; r == 0 && size_keys[i]; i++) {
		json_t *v = json_object_get(sizes, size_keys[i]);
		autofree char *p = util_path_join(dir, main_files[i]);
		struct stat sb;
		if (json_is_integer(v) && p && stat(p, &sb) == 0 &&
		    sb.st_size != json_integer_value(v))
			r = ccvm_err_set(
			    err, EBADMSG,
			    "%s is %lld bytes, the manifest says %lld",
			    main_files[i], (long long)sb.st_size,
			    (long long)json_integer_value(v));
	}
	for (size_t i = 0; r == 0 && i < ARRAY_LEN(main_files); i++)
		if (!json_is_string(json_object_get(sums, main_files[i])))
			r = ccvm_err_set(err, EBADMSG,
					 "manifest.json has no checksum for %s",
					 main_files[i]);
	struct stamps *st = calloc(1, sizeof(*st));
	if (r == 0 && !st)
		r = ccvm_err_set(err, ENOMEM, "out of memory");
	if (r == 0)
		stamps_read(dir, st);
	const char *name;
	json_t *v;
	json_object_foreach(sums, name, v)
	{
		if (r < 0)
			break;
		if (!strncmp(name, "initrd-", 7))
			continue; /* the current one: image_verify_file */
		r = check_one(dir, name,
			      json_is_string(v) ? json_string_value(v) : "", st,
			      hashed, err);
	}
	if (r == 0 && st->changed)
		stamps_write(dir, st);
	free(st);
	json_decref(m);
	return r;
}

int image_verify_file(const char *dir, const char *name, struct ccvm_err *err)
{
	json_t *m = manifest_load(dir, err);
	if (!m)
		return -EBADMSG;
	const char *want = json_string_value(
	    json_object_get(json_object_get(m, "sha256"), name));
	int r = -ENOENT;
	struct stamps *st = want ? calloc(1, sizeof(*st)) : NULL;
	if (st) {
		stamps_read(dir, st);
		r = check_one(dir, name, want, st, NULL, err);
		if (r == 0 && st->changed)
			stamps_write(dir, st);
		free(st);
	} else if (want) {
		r = ccvm_err_set(err, ENOMEM, "out of memory");
	}
	json_decref(m);
	return r;
}

int image_record(const char *dir, const char *name, struct ccvm_err *err)
{
	autofree char *p = util_path_join(dir, name);
	char h[65];
	int r = p ? image_file_sha256(p, h, NULL) : -ENAMETOOLONG;
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s/%s", dir, name);
	json_t *m = manifest_load(dir, err);
	if (!m)
		return -EBADMSG;
	json_t *sums = json_object_get(m, "sha256");
	if (!json_is_object(sums)) {
		json_decref(m);
		return ccvm_err_set(err, EBADMSG,
				    "manifest.json has no sha256");
	}
	json_object_set_new(sums, name, json_string(h));
	r = manifest_store(dir, m, err);
	json_decref(m);
	/* Checked as of now: not hashed again at the next start. */
	struct stamps *st = calloc(1, sizeof(*st));
	struct stat sb;
	if (r == 0 && st && lstat(p, &sb) == 0) {
		stamps_read(dir, st);
		struct stamp now = {0};
		stamp_of(&now, name, h, &sb);
		stamps_put(st, &now);
		stamps_write(dir, st);
	}
	free(st);
	return r;
}

bool image_stamp_ok(const char *dir, const char *name, const char *sha,
		    const struct stat *sb)
{
	struct stamps *st = calloc(1, sizeof(*st));
	if (!st)
		return false;
	stamps_read(dir, st);
	struct stamp now = {0};
	stamp_of(&now, name, sha, sb);
	bool ok = safe_name(name) && stamps_match(st, &now);
	free(st);
	return ok;
}

void image_stamp_put(const char *dir, const char *name, const char *sha,
		     const struct stat *sb)
{
	struct stamps *st = calloc(1, sizeof(*st));
	if (!st || !safe_name(name)) {
		free(st);
		return;
	}
	stamps_read(dir, st);
	struct stamp now = {0};
	stamp_of(&now, name, sha, sb);
	stamps_put(st, &now);
	stamps_write(dir, st);
	free(st);
}
