/* Locating a value in a config file's text (jsonpos.h). */
#include "options/jsonpos.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define JSONPOS_DEPTH 64

struct scan {
	const char *s;
	size_t n, i;
	int depth;
};

static void skip_ws(struct scan *sc)
{
	while (sc->i < sc->n && strchr(" \t\r\n", sc->s[sc->i]) &&
	       sc->s[sc->i] != '\0')
		sc->i++;
}

/* At a '"': moves past the string; *start and *end bound its body. */
static bool skip_string(struct scan *sc, size_t *start, size_t *end)
{
	if (sc->i >= sc->n || sc->s[sc->i] != '"')
		return false;
	size_t b = ++sc->i;
	while (sc->i < sc->n && sc->s[sc->i] != '"') {
		if (sc->s[sc->i] == '\\')
			sc->i++;
		sc->i++;
	}
	if (sc->i >= sc->n)
		return false;
	*start = b;
	*end = sc->i++;
	return true;
}

static bool skip_value(struct scan *sc);

/* At '{' or '[': moves past the whole container. */
static bool skip_container(struct scan *sc)
{
	char close = sc->s[sc->i] == '{' ? '}' : ']';
	bool object = close == '}';
	if (++sc->depth > JSONPOS_DEPTH)
		return false;
	sc->i++;
	skip_ws(sc);
	if (sc->i < sc->n && sc->s[sc->i] == close) {
		sc->i++;
		sc->depth--;
		return true;
	}
	for (;;) {
		size_t a, b;
		if (object) {
			if (!skip_string(sc, &a, &b))
				return false;
			skip_ws(sc);
			if (sc->i >= sc->n || sc->s[sc->i++] != ':')
				return false;
		}
		if (!skip_value(sc))
			return false;
		skip_ws(sc);
		if (sc->i >= sc->n)
			return false;
		char c = sc->s[sc->i++];
		if (c == close)
			break;
		if (c != ',')
			return false;
		skip_ws(sc);
	}
	sc->depth--;
	return true;
}

static bool skip_value(struct scan *sc)
{
	skip_ws(sc);
	if (sc->i >= sc->n)
		return false;
	char c = sc->s[sc->i];
	if (c == '{' || c == '[')
		return skip_container(sc);
	size_t a, b;
	if (c == '"')
		return skip_string(sc, &a, &b);
	/* A number or a literal: up to the next delimiter. */
	while (sc->i < sc->n && !strchr(",]} \t\r\n", sc->s[sc->i]))
		sc->i++;
	return true;
}

/* In the object at sc->i, moves to key (klen bytes) and returns true with
 * sc->i at the key's opening quote. */
static bool find_key(struct scan *sc, const char *key, size_t klen)
{
	skip_ws(sc);
	if (sc->i >= sc->n || sc->s[sc->i] != '{')
		return false;
	sc->i++;
	for (;;) {
		skip_ws(sc);
		size_t at = sc->i, a, b;
		if (!skip_string(sc, &a, &b))
			return false;
		if (b - a == klen && memcmp(sc->s + a, key, klen) == 0) {
			sc->i = at;
			return true;
		}
		skip_ws(sc);
		if (sc->i >= sc->n || sc->s[sc->i++] != ':' || !skip_value(sc))
			return false;
		skip_ws(sc);
		if (sc->i >= sc->n || sc->s[sc->i++] != ',')
			return false;
	}
}

/* In the array at sc->i, moves to element idx. */
static bool find_index(struct scan *sc, unsigned long idx)
{
	skip_ws(sc);
	if (sc->i >= sc->n || sc->s[sc->i] != '[')
		return false;
	sc->i++;
	for (unsigned long k = 0;; k++) {
		skip_ws(sc);
		if (k == idx)
			return sc->i < sc->n && sc->s[sc->i] != ']';
		if (!skip_value(sc))
			return false;
		skip_ws(sc);
		if (sc->i >= sc->n || sc->s[sc->i++] != ',')
			return false;
	}
}

/* From a key's opening quote to its value. */
static bool to_value(struct scan *sc)
{
	size_t a, b;
	if (!skip_string(sc, &a, &b))
		return false;
	skip_ws(sc);
	if (sc->i >= sc->n || sc->s[sc->i++] != ':')
		return false;
	skip_ws(sc);
	return true;
}

int jsonpos_find(const char *text, size_t len, const char *path, int *line,
		 int *col)
{
	struct scan sc = {.s = text, .n = len};
	const char *p = path;
	bool at_key = false; /* sc.i is at a key, not at its value */
	while (*p) {
		if (at_key && !to_value(&sc))
			return -ENOENT;
		at_key = false;
		if (*p == '[') {
			char *end;
			unsigned long idx = strtoul(p + 1, &end, 10);
			if (end == p + 1 || *end != ']' ||
			    !find_index(&sc, idx))
				return -ENOENT;
			p = end + 1;
			if (*p == '.')
				p++;
			continue;
		}
		size_t k = strcspn(p, ".[");
		if (k == 0 || !find_key(&sc, p, k))
			return -ENOENT;
		at_key = true;
		p += k;
		if (*p == '.')
			p++;
	}
	if (p == path)
		return -ENOENT;
	int l = 1, c = 1;
	for (size_t i = 0; i < sc.i && i < len; i++) {
		if (text[i] == '\n') {
			l++;
			c = 1;
		} else {
			c++;
		}
	}
	*line = l;
	*col = c;
	return 0;
}
