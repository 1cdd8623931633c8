#define _GNU_SOURCE
/* libFuzzer target: the guest output's filter (termfilter.h).  Whatever
 * the input and however it is cut into reads, the output is the same; it
 * passes the filter again unchanged (it is canonical: no C1 control, no
 * broken UTF-8, no dropped sequence); it holds no DCS, APC, PM, SOS or
 * OSC 52; the plain-text form holds no control at all. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "term/termfilter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct termfilter f;

static size_t filter(const uint8_t *in, size_t n, size_t cut, uint8_t *out)
{
	termfilter_init(&f, TERMFILTER_TERMINAL);
	size_t len = termfilter_run(&f, in, cut, out);
	return len + termfilter_run(&f, in + cut, n - cut, out + len);
}

static bool contains(const uint8_t *p, size_t n, const char *s)
{
	return memmem(p, n, s, strlen(s)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 65536)
		return 0;
	size_t cut = data[0] % size;
	size_t cap = 2 * TERMFILTER_OUT_MAX(size);
	uint8_t *a = malloc(cap), *b = malloc(cap), *c = malloc(cap);
	if (!a || !b || !c)
		__builtin_trap();
	size_t na = filter(data, size, 0, a);
	size_t nb = filter(data, size, cut, b);
	if (na != nb || memcmp(a, b, na) != 0)
		__builtin_trap();
	/* Byte by byte. */
	termfilter_init(&f, TERMFILTER_TERMINAL);
	size_t nc = 0;
	for (size_t i = 0; i < size; i++)
		nc += termfilter_run(&f, data + i, 1, c + nc);
	if (nc != na || memcmp(a, c, na) != 0)
		__builtin_trap();
	nc = filter(a, na, 0, c);
	if (nc != na || memcmp(a, c, na) != 0)
		__builtin_trap();
	if (contains(a, na, "\033P") || contains(a, na, "\033_") ||
	    contains(a, na, "\033^") || contains(a, na, "\033X") ||
	    contains(a, na, "\033]52") || contains(a, na, "\005"))
		__builtin_trap();
	char text[256];
	size_t nt = termfilter_text(data, size, text, sizeof(text));
	for (size_t i = 0; i < nt; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			__builtin_trap();
	if (text[nt] != '\0')
		__builtin_trap();
	free(a);
	free(b);
	free(c);
	return 0;
}
