/*
 * libFuzzer target: the egress relay's reader of first bytes
 * (net/sniff.h).  The input is what a guest's client sends first.  The
 * answer's invariants (a name is NUL-terminated and a valid name or
 * address, a malformed answer is OTHER with a one-line reason, MORE only
 * below SNIFF_MAX), and its stability: fed prefix by prefix, the answer is
 * MORE until the first decided one, and every decided one is the answer
 * for the whole input; bytes after the input change no decided answer;
 * sniff_final never says MORE and agrees with every decided answer.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "net/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x))                                                      \
			__builtin_trap();                                      \
	} while (0)

static void check_name(const struct sniff *s)
{
	size_t n = strnlen(s->name, sizeof(s->name));
	CHECK(n < sizeof(s->name));
	if (!s->has_name) {
		CHECK(n == 0 && !s->is_ip);
		return;
	}
	CHECK(n >= 1 && n <= 253);
	if (s->is_ip) {
		uint8_t a[16];
		CHECK(inet_pton(AF_INET, s->name, a) == 1 ||
		      inet_pton(AF_INET6, s->name, a) == 1);
		return;
	}
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s->name[i];
		CHECK((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '_' || ch == '.');
		if (ch == '.') {
			CHECK(label >= 1);
			label = 0;
		} else {
			CHECK(++label <= 63);
		}
	}
	CHECK(label >= 1); /* no trailing dot, no empty last label */
}

static void check_one(const struct sniff *s, enum sniff_kind k, size_t len)
{
	CHECK(k == s->kind);
	CHECK(k >= SNIFF_MORE && k <= SNIFF_OTHER);
	CHECK(k != SNIFF_MORE || len < SNIFF_MAX);
	size_t w = strnlen(s->why, sizeof(s->why));
	CHECK(w < sizeof(s->why));
	CHECK(s->malformed == (w > 0));
	CHECK(!memchr(s->why, '\n', w));
	CHECK(!s->malformed || (k == SNIFF_OTHER && !s->has_name && !s->ech));
	CHECK(!s->ech || k == SNIFF_TLS);
	CHECK(!s->is_ip || k == SNIFF_HTTP);
	CHECK(!s->has_name || k == SNIFF_TLS || k == SNIFF_HTTP);
	check_name(s);
}

static uint8_t ext[SNIFF_MAX + 64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sniff all, p, f;
	enum sniff_kind k = sniff_stream(data, size, &all);
	check_one(&all, k, size);
	enum sniff_kind fk = sniff_final(data, size, &f);
	check_one(&f, fk, size);
	CHECK(fk != SNIFF_MORE);
	if (k != SNIFF_MORE)
		CHECK(memcmp(&f, &all, sizeof(f)) == 0);
	/* Every prefix up to 2 KiB, then a sample: MORE until decided, then
	 * the same answer. */
	bool decided = false;
	for (size_t i = 0; i <= size; i += i < 2048 ? 1 : 1 + size / 64) {
		enum sniff_kind pk = sniff_stream(data, i, &p);
		check_one(&p, pk, i);
		if (pk == SNIFF_MORE) {
			CHECK(!decided);
			continue;
		}
		decided = true;
		CHECK(k != SNIFF_MORE && memcmp(&p, &all, sizeof(p)) == 0);
		CHECK(sniff_final(data, i, &f) == pk);
		CHECK(memcmp(&f, &p, sizeof(f)) == 0);
	}
	/* More bytes after it: a decided answer stays. */
	if (k != SNIFF_MORE && size <= SNIFF_MAX) {
		memcpy(ext, data, size);
		memset(ext + size, size ? data[0] : 'A', 64);
		CHECK(sniff_stream(ext, size + 64, &p) == k);
		CHECK(memcmp(&p, &all, sizeof(p)) == 0);
	}
	/* Only SNIFF_MAX bytes count. */
	if (size > SNIFF_MAX) {
		CHECK(sniff_stream(data, SNIFF_MAX, &p) == k);
		CHECK(memcmp(&p, &all, sizeof(p)) == 0);
	}
	return 0;
}
