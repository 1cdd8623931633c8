#pragma once
/*
 * Where a value sits in a config file's text, for messages that say
 * "file:line:column": jansson reports positions of syntax errors only, so
 * a problem found later (a wrong type, an unknown key) is located here by
 * walking the text again.
 */
#include <stddef.h>

/*
 * The 1-based line and column (in bytes) of the member or element path
 * names in text, a JSON document jansson has already parsed: "a.b" is key
 * b of object a, "a[2]" element 2 of array a; a key is matched as written
 * between its quotes, without escapes.  0, or -ENOENT when path is not
 * found (or not well formed); *line and *col are set on success only.
 */
int jsonpos_find(const char *text, size_t len, const char *path, int *line,
		 int *col);
