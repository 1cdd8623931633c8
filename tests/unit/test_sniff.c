/*
 * Unit tests for src/host/net/sniff.c: the egress relay's reader of a
 * connection's first bytes.  The TLS vectors are real ClientHellos:
 * Python 3's ssl module (OpenSSL 3.0) through a memory BIO and
 * `openssl s_client` (3.0) captured on a loopback socket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/sniff.h"

/* Python ssl, server_hostname="example.com" (TLS 1.3 + 1.2 offered) */
static const char PY_NAME[] =
    "1603010200010001fc03031d33710d224d3b7fced81f1526a2d637f95594325a"
    "31efce1f037784b6f11f26209cea43f0cc3ade1fe464cefc701dcbd6fc5bf5f4"
    "610d192d134fa6351aea46710024130213031301c02cc030c02bc02fcca9cca8"
    "c024c028c023c027009f009e006b006700ff0100018f00000010000e00000b65"
    "78616d706c652e636f6d000b000403000102000a00160014001d0017001e0019"
    "001801000101010201030104002300000016000000170000000d002a00280403"
    "05030603080708080809080a080b080408050806040105010601030303010302"
    "040205020602002b00050403040303002d00020101003300260024001d00204d"
    "abae5323893cafcb238c3ff776189810aff5df3e22ddfbd2afc3353b29dd1000"
    "1500e20000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000";

/* Python ssl, server_hostname=None: no server_name */
static const char PY_NOSNI[] =
    "1603010200010001fc0303f21217bfbd327dd5a38c83d765a7332d1b98fc80c7"
    "5e8d930e4f41472cf5cf55207c399ea0b8cd5e288444063355df859102504dc7"
    "e369df8a858a1417fb7b5bba0024130213031301c02cc030c02bc02fcca9cca8"
    "c024c028c023c027009f009e006b006700ff0100018f000b000403000102000a"
    "00160014001d0017001e00190018010001010102010301040023000000160000"
    "00170000000d002a0028040305030603080708080809080a080b080408050806"
    "040105010601030303010302040205020602002b00050403040303002d000201"
    "01003300260024001d0020567dfd077938bd87b9e4e2d86c469f4adb1af4d255"
    "818e2d12b7b5b7d4c18048001500f60000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000000000000000000000000000000000000000000000000000000000"
    "0000000000";

/* Python ssl, maximum_version TLS 1.2, "api.example.org" */
static const char PY_TLS12[] =
    "16030100b5010000b103033a518c953fbe36af60f7d3c1dc650b1fcfe2567271"
    "6dbfaa1c8b5cfab731180000001ec02cc030c02bc02fcca9cca8c024c028c023"
    "c027009f009e006b006700ff0100006a00000014001200000f6170692e657861"
    "6d706c652e6f7267000b000403000102000a000c000a001d0017001e00190018"
    "002300000016000000170000000d002a0028040305030603080708080809080a"
    "080b080408050806040105010601030303010302040205020602";

/* openssl s_client -servername www.Example.NET */
static const char OSSL_NAME[] =
    "160301013c010001380303350c9986cd994bf2120f1ca99763d61f7e632f5fbd"
    "d13bf9cd51f5dd70e9b1cf2059d9c990a48cedf9e06acf58555b9041a4b62f99"
    "9f671a77fa21902a792a0bde003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d"
    "009c003d003c0035002f00ff010000b100000014001200000f7777772e457861"
    "6d706c652e4e4554000b000403000102000a00160014001d0017001e00190018"
    "01000101010201030104002300000016000000170000000d002a002804030503"
    "0603080708080809080a080b0804080508060401050106010303030103020402"
    "05020602002b0009080304030303020301002d00020101003300260024001d00"
    "201cc63b65a32a0555b192df179b85bd22c593ea0f62002ba4cd56570280bce1"
    "14";

/* openssl s_client -noservername */
static const char OSSL_NOSNI[] =
    "1603010124010001200303e3ea11a72ff1416d2a29bb58fe39dca8fc1dda8e89"
    "12342aaeb29f7d2738c32220d46f6622ab62529b87211a1fbf46d70cf29f1e09"
    "2670862f4fc2854c6947ee47003e130213031301c02cc030009fcca9cca8ccaa"
    "c02bc02f009ec024c028006bc023c0270067c00ac0140039c009c0130033009d"
    "009c003d003c0035002f00ff01000099000b000403000102000a00160014001d"
    "0017001e0019001801000101010201030104002300000016000000170000000d"
    "002a0028040305030603080708080809080a080b080408050806040105010601"
    "030303010302040205020602002b0009080304030303020301002d0002010100"
    "3300260024001d00201bcae38127e0453409bc5200dfef03e3514c899e404b62"
    "9ecc41588f864c1671";

/* openssl s_client -servername tls12.example.com -tls1_2 */
static const char OSSL_TLS12[] =
    "16030100d1010000cd030326c5a324fc202e9b959fb8004ea815f9c5659130c9"
    "3825f38a0bb05117aabbfd000038c02cc030009fcca9cca8ccaac02bc02f009e"
    "c024c028006bc023c0270067c00ac0140039c009c0130033009d009c003d003c"
    "0035002f00ff0100006c000000160014000011746c7331322e6578616d706c65"
    "2e636f6d000b000403000102000a000c000a001d0017001e0019001800230000"
    "0016000000170000000d002a0028040305030603080708080809080a080b0804"
    "08050806040105010601030303010302040205020602";

static uint8_t buf[3 * SNIFF_MAX];
static uint8_t tmp[3 * SNIFF_MAX];
static struct sniff sn;

static size_t unhex(const char *h, uint8_t *out)
{
	size_t n = strlen(h) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		assert_int_equal(sscanf(h + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/*
 * b[0..n) at once into sn, and every prefix: MORE or exactly the same
 * answer (a decided answer never changes), sniff_final agreeing with every
 * decided one and never MORE.  Returns the kind.
 */
static enum sniff_kind check(const uint8_t *b, size_t n)
{
	struct sniff p, f;
	enum sniff_kind k = sniff_stream(b, n, &sn);
	assert_int_equal(k, sn.kind);
	assert_true(k != SNIFF_MORE || n < SNIFF_MAX);
	assert_non_null(memchr(sn.name, '\0', sizeof(sn.name)));
	assert_non_null(memchr(sn.why, '\0', sizeof(sn.why)));
	assert_true(sn.has_name || sn.name[0] == '\0');
	assert_true(sn.malformed == (sn.why[0] != '\0'));
	assert_true(!sn.malformed || (k == SNIFF_OTHER && !sn.has_name));
	for (size_t i = 0; i <= n; i++) {
		enum sniff_kind pk = sniff_stream(b, i, &p);
		enum sniff_kind fk = sniff_final(b, i, &f);
		assert_int_not_equal(fk, SNIFF_MORE);
		if (pk == SNIFF_MORE)
			continue;
		if (k == SNIFF_MORE || memcmp(&p, &sn, sizeof(p)) != 0)
			fail_msg(
			    "prefix %zu of %zu: kind %d (%s), all: %d (%s)", i,
			    n, pk, p.why, k, sn.why);
		assert_memory_equal(&f, &p, sizeof(p));
	}
	return k;
}

/* A valid answer needs all of it: every proper prefix is MORE. */
static void all_needed(const uint8_t *b, size_t n)
{
	struct sniff p;
	for (size_t i = 0; i < n; i++)
		if (sniff_stream(b, i, &p) != SNIFF_MORE)
			fail_msg("prefix %zu of %zu decided: %d %s", i, n,
				 p.kind, p.why);
}

static void is_tls(const uint8_t *b, size_t n, const char *name, bool ech)
{
	if (check(b, n) != SNIFF_TLS)
		fail_msg("not TLS: %d %s", sn.kind, sn.why);
	assert_false(sn.malformed);
	assert_int_equal(sn.has_name, name != NULL);
	assert_string_equal(sn.name, name ? name : "");
	assert_false(sn.is_ip);
	assert_int_equal(sn.ech, ech);
	all_needed(b, n);
	/* What follows the ClientHello changes nothing. */
	struct sniff more;
	memcpy(tmp, b, n);
	memcpy(tmp + n, "\x17\x03\x03\x00\x01x", 6);
	assert_int_equal(sniff_stream(tmp, n + 6, &more), SNIFF_TLS);
	assert_memory_equal(&more, &sn, sizeof(sn));
}

/* Malformed, with a reason that contains what. */
static void is_bad(const uint8_t *b, size_t n, const char *what)
{
	enum sniff_kind k = check(b, n);
	if (k != SNIFF_OTHER || !sn.malformed || !strstr(sn.why, what))
		fail_msg("kind %d malformed %d \"%s\", want \"...%s...\"", k,
			 sn.malformed, sn.why, what);
	assert_null(strchr(sn.why, '\n'));
}

static void put16(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * The ClientHello in hello (one record) re-framed: first bytes of the
 * handshake message in the first record, then at most piece a record: the
 * size.
 */
static size_t reframe(const uint8_t *hello, size_t n, size_t first,
		      size_t piece, uint8_t *out)
{
	size_t body = (size_t)hello[3] << 8 | hello[4];
	assert_int_equal(body + 5, n);
	size_t o = 0;
	for (size_t off = 0, k; off < body; off += k) {
		k = off ? piece : first;
		k = body - off < k ? body - off : k;
		memcpy(out + o, hello, 3);
		put16(out + o + 3, k);
		memcpy(out + o + 5, hello + 5 + off, k);
		o += 5 + k;
	}
	return o;
}

/* Offset of the extensions' length in a one-record ClientHello. */
static size_t ext_off(const uint8_t *h)
{
	size_t o = 5 + 4 + 2 + 32;
	o += 1 + h[o];
	o += 2 + ((size_t)h[o] << 8 | h[o + 1]);
	o += 1 + h[o];
	return o;
}

/* ext (k bytes: type, length, data) inserted first among the
 * extensions of a one-record ClientHello, every length fixed: the size. */
static size_t add_ext(const uint8_t *h, size_t n, const uint8_t *ext, size_t k,
		      uint8_t *out)
{
	size_t eo = ext_off(h);
	memcpy(out, h, eo + 2);
	memcpy(out + eo + 2, ext, k);
	memcpy(out + eo + 2 + k, h + eo + 2, n - eo - 2);
	put16(out + 3, n - 5 + k);
	size_t hl = n - 9 + k;
	out[6] = (uint8_t)(hl >> 16);
	put16(out + 7, hl);
	put16(out + eo, ((size_t)h[eo] << 8 | h[eo + 1]) + k);
	return n + k;
}

/* A small ClientHello: TLS 1.2, no session id, one suite, null
 * compression, then the extensions given. */
static size_t hello(const uint8_t *ext, size_t k, uint8_t *out)
{
	size_t o = 0;
	memcpy(out, "\x16\x03\x01\x00\x00\x01\x00\x00\x00\x03\x03", 11);
	o = 11;
	memset(out + o, 0xab, 32);
	o += 32;
	memcpy(out + o, "\x00\x00\x02\x13\x01\x01\x00", 7);
	o += 7;
	put16(out + o, k);
	memcpy(out + o + 2, ext, k);
	o += 2 + k;
	put16(out + 3, o - 5);
	put16(out + 7, o - 9);
	return o;
}

/* A server_name extension with one host_name. */
static size_t sni(const char *name, size_t nl, uint8_t *out)
{
	put16(out, 0);
	put16(out + 2, nl + 5);
	put16(out + 4, nl + 3);
	out[6] = 0;
	put16(out + 7, nl);
	memcpy(out + 9, name, nl);
	return nl + 9;
}

static size_t hello_sni(const char *name, uint8_t *out)
{
	uint8_t e[512];
	size_t k = sni(name, strlen(name), e);
	return hello(e, k, out);
}

static void test_tls_real(void **state)
{
	(void)state;
	static const struct {
		const char *hex, *name;
	} v[] = {
	    {PY_NAME, "example.com"},
	    {PY_NOSNI, NULL},
	    {PY_TLS12, "api.example.org"},
	    {OSSL_NAME, "www.example.net"},
	    {OSSL_NOSNI, NULL},
	    {OSSL_TLS12, "tls12.example.com"},
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = unhex(v[i].hex, buf);
		is_tls(buf, n, v[i].name, false);
	}
}

static void test_tls_split(void **state)
{
	(void)state;
	size_t n = unhex(PY_NAME, buf);
	/* Two records, cut in the body; in the handshake header; a byte of
	 * handshake per record (512 records). */
	static const size_t pieces[][2] = {
	    {100, SNIFF_MAX}, {2, SNIFF_MAX}, {1, 1}, {511, SNIFF_MAX}};
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		size_t m = reframe(buf, n, pieces[i][0], pieces[i][1], tmp);
		static uint8_t b2[3 * SNIFF_MAX];
		memcpy(b2, tmp, m);
		is_tls(b2, m, "example.com", false);
	}
	/* A second record of another type before it ends. */
	size_t m = reframe(buf, n, 100, SNIFF_MAX, tmp);
	tmp[105] = 0x15;
	is_bad(tmp, m, "record type 21");
	/* The second record's version. */
	m = reframe(buf, n, 100, SNIFF_MAX, tmp);
	put16(tmp + 106, 0x0300);
	is_bad(tmp, m, "record version 0x0300");
	/* Ending inside a record: the message's last byte then another. */
	m = reframe(buf, n, 100, SNIFF_MAX, tmp);
	tmp[m] = 0x01;
	put16(tmp + 108, ((size_t)tmp[108] << 8 | tmp[109]) + 1);
	is_bad(tmp, m + 1, "record boundary");
	/* Split records pass only when all of them came. */
	m = reframe(buf, n, 100, SNIFF_MAX, tmp);
	struct sniff p;
	assert_int_equal(sniff_stream(tmp, 105, &p), SNIFF_MORE);
	assert_int_equal(sniff_final(tmp, 105, &p), SNIFF_OTHER);
	assert_true(p.malformed);
	assert_non_null(strstr(p.why, "incomplete"));
}

static void test_tls_ech(void **state)
{
	(void)state;
	size_t n = unhex(PY_NAME, buf);
	static const uint8_t ech[] = {0xfe, 0x0d, 0x00, 0x04, 0, 1, 2, 3};
	size_t m = add_ext(buf, n, ech, sizeof(ech), tmp);
	is_tls(tmp, m, "example.com", true);
	/* Twice. */
	static uint8_t two[2 * SNIFF_MAX];
	size_t m2 = add_ext(tmp, m, ech, sizeof(ech), two);
	is_bad(two, m2, "two encrypted_client_hello");
	/* Without a server name. */
	n = unhex(PY_NOSNI, buf);
	m = add_ext(buf, n, ech, sizeof(ech), tmp);
	is_tls(tmp, m, NULL, true);
	/* Some other extension added changes nothing. */
	static const uint8_t grease[] = {0x0a, 0x0a, 0x00, 0x00};
	n = unhex(OSSL_NAME, buf);
	m = add_ext(buf, n, grease, sizeof(grease), tmp);
	is_tls(tmp, m, "www.example.net", false);
}

static void test_tls_lengths(void **state)
{
	(void)state;
	size_t n = hello_sni("a.example", buf);
	is_tls(buf, n, "a.example", false);
	/* Offsets in this hello: record 0, handshake 5, version 9, random
	 * 11, session_id 43, suites 44, compression 48, extensions 50, the
	 * server_name extension 52 (its length 54, list 56, type 58, name
	 * length 59, name 61). */
	assert_int_equal(buf[61], 'a');
#define MUT(off, v, what)                                                      \
	do {                                                                   \
		memcpy(tmp, buf, n);                                           \
		tmp[off] = (uint8_t)(v);                                       \
		is_bad(tmp, n, what);                                          \
	} while (0)
	MUT(4, buf[4] + 1, "record boundary"); /* record past the message */
	MUT(5, 2, "handshake type 2");
	MUT(5 + 3, buf[8] - 1, "record boundary");
	MUT(9 + 1, 0, "version 0x0300");
	MUT(9 + 1, 5, "version 0x0305");
	MUT(43, 33, "session_id");
	MUT(43, 200, "session_id"); /* overruns */
	MUT(45, 3, "cipher_suites");
	MUT(45, 0, "cipher_suites");
	MUT(44, 0x40, "cipher_suites");
	MUT(48, 0, "compression_methods");
	MUT(48, 200, "compression_methods");
	MUT(51, buf[51] + 1, "extensions length");
	MUT(51, buf[51] - 1, "extensions length");
	MUT(55, buf[55] + 1, "extension overruns");
	MUT(55, buf[55] - 1, "server_name");
	MUT(57, buf[57] + 1, "list length");
	MUT(57, buf[57] - 1, "list length");
	MUT(58, 1, "first entry not a host_name");
	MUT(60, buf[60] + 1, "host_name length");
	MUT(60, buf[60] - 1, "more than one entry");
	MUT(61, '/', "character not allowed");
	MUT(61, 0, "character not allowed");
	MUT(61, ' ', "character not allowed");
	MUT(61, '.', "empty label");
#undef MUT
	/* Record lengths: 0, over 2^14; a record header alone; the
	 * handshake's length beyond what the relay waits for. */
	memcpy(tmp, "\x16\x03\x01\x00\x00", 5);
	is_bad(tmp, 5, "record length 0");
	memcpy(tmp, "\x16\x03\x01\x40\x01", 5);
	is_bad(tmp, 5, "record length 16385");
	memcpy(tmp, "\x16\x03\x01\x40\x00\x01\x01\x00\x00", 9);
	is_bad(tmp, 9, "ClientHello of");
	memcpy(tmp, "\x16\x03\x00\x00\x30", 5);
	is_bad(tmp, 5, "record version 0x0300");
	memcpy(tmp, "\x16\xfe\xff\x00\x30", 5);
	is_bad(tmp, 5, "record version");
	/* Under five bytes: MORE. */
	struct sniff p;
	assert_int_equal(
	    sniff_stream((const uint8_t *)"\x16\x03\x01\x02", 4, &p),
	    SNIFF_MORE);
	assert_int_equal(sniff_stream((const uint8_t *)"\x16", 1, &p),
			 SNIFF_MORE);
	/* The message longer than its record, nothing after: MORE. */
	memcpy(tmp, buf, n);
	tmp[8]++;
	assert_int_equal(check(tmp, n), SNIFF_MORE);
	assert_int_equal(sniff_final(tmp, n, &p), SNIFF_OTHER);
	assert_non_null(strstr(p.why, "incomplete"));
	/* No extensions at all (TLS 1.2 may). */
	memcpy(tmp, buf, 50);
	put16(tmp + 3, 45);
	put16(tmp + 7, 41);
	is_tls(tmp, 50, NULL, false);
	/* A ServerHello sent first. */
	memcpy(tmp, buf, n);
	tmp[5] = 2;
	is_bad(tmp, n, "not a ClientHello");
}

static void test_tls_sni(void **state)
{
	(void)state;
	size_t n = hello_sni("Mixed.Case.Example.", buf);
	is_tls(buf, n, "mixed.case.example", false);
	n = hello_sni("_dmarc.x-y.example", buf);
	is_tls(buf, n, "_dmarc.x-y.example", false);
	n = hello_sni("10.0.0.1", buf);
	is_bad(buf, n, "IP address");
	n = hello_sni("10.1", buf);
	is_bad(buf, n, "numeric last label");
	n = hello_sni("a.0x7f", buf);
	is_bad(buf, n, "numeric last label");
	n = hello_sni("a@b.example", buf);
	is_bad(buf, n, "character not allowed");
	n = hello_sni("[::1]", buf);
	is_bad(buf, n, "character not allowed");
	n = hello_sni(".", buf);
	is_bad(buf, n, "empty name");
	n = hello_sni("a..b", buf);
	is_bad(buf, n, "empty label");
	char big[300];
	memset(big, 'a', 64);
	strcpy(big + 64, ".example");
	n = hello_sni(big, buf);
	is_bad(buf, n, "label longer than 63");
	big[63] = '\0';
	n = hello_sni(big, buf);
	is_tls(buf, n, big, false);
	/* 253 bytes pass, 254 do not (a trailing dot is not counted). */
	for (int i = 0; i < 254; i++)
		big[i] = i % 2 ? '.' : 'a';
	big[253] = '\0';
	n = hello_sni(big, buf);
	is_tls(buf, n, big, false);
	big[253] = '.';
	big[254] = '\0';
	n = hello_sni(big, buf);
	big[253] = '\0';
	is_tls(buf, n, big, false);
	memcpy(big + 253, "bb", 3);
	n = hello_sni(big, buf);
	is_bad(buf, n, "longer than 253");
	/* An embedded NUL. */
	uint8_t e[64];
	size_t k = sni("a\0b.example", 11, e);
	n = hello(e, k, buf);
	is_bad(buf, n, "character not allowed");
	/* Two host_names in one list. */
	static const uint8_t two[] = {0, 0,   0,   11, 0, 9, 0,	 0,
				      2, 'a', 'b', 0,  0, 1, 'c'};
	n = hello(two, sizeof(two), buf);
	is_bad(buf, n, "two host_names");
	/* Two server_name extensions (each valid). */
	k = sni("a.example", 9, e);
	k += sni("b.example", 9, e + k);
	n = hello(e, k, buf);
	is_bad(buf, n, "two server_name");
	/* An empty list; an empty extension. */
	static const uint8_t empty[] = {0, 0, 0, 2, 0, 0};
	n = hello(empty, sizeof(empty), buf);
	is_bad(buf, n, "empty list");
	static const uint8_t none[] = {0, 0, 0, 0};
	n = hello(none, sizeof(none), buf);
	is_bad(buf, n, "list length");
	/* SSLv2-format hellos; other high-bit bytes are OTHER. */
	is_bad((const uint8_t *)"\x80\x2e\x01\x03\x01\x00\x15", 7, "SSLv2");
	is_bad((const uint8_t *)"\x80\x2e\x01\x00\x02\x00\x15", 7, "SSLv2");
	assert_int_equal(check((const uint8_t *)"\x80\x2e\x02\x03\x01", 5),
			 SNIFF_OTHER);
	assert_false(sn.malformed);
	assert_int_equal(check((const uint8_t *)"\xff\xfe", 2), SNIFF_MORE);
}

/* s is HTTP naming name (NULL: none), is_ip as given. */
static void http_ok(const char *s, const char *name, bool ip)
{
	size_t n = strlen(s);
	if (check((const uint8_t *)s, n) != SNIFF_HTTP)
		fail_msg("%s: kind %d (%s)", s, sn.kind, sn.why);
	assert_false(sn.malformed);
	assert_int_equal(sn.has_name, name != NULL);
	assert_string_equal(sn.name, name ? name : "");
	assert_int_equal(sn.is_ip, ip);
	assert_false(sn.ech);
	all_needed((const uint8_t *)s, n);
	/* A body after the head changes nothing. */
	struct sniff more;
	memcpy(tmp, s, n);
	memcpy(tmp + n, "\x00\x16GET x", 7);
	assert_int_equal(sniff_stream(tmp, n + 7, &more), SNIFF_HTTP);
	assert_memory_equal(&more, &sn, sizeof(sn));
}

static void http_bad(const char *s, const char *what)
{
	is_bad((const uint8_t *)s, strlen(s), what);
}

static void http_other(const char *s)
{
	if (check((const uint8_t *)s, strlen(s)) != SNIFF_OTHER || sn.malformed)
		fail_msg("%s: kind %d malformed %d (%s)", s, sn.kind,
			 sn.malformed, sn.why);
}

static void test_http(void **state)
{
	(void)state;
	http_ok("GET / HTTP/1.1\r\nHost: Example.COM\r\n\r\n", "example.com",
		false);
	http_ok("GET /x?y=1 HTTP/1.1\r\nUser-Agent: t\r\nHost: a.b:8080\r\n"
		"Accept: */*\r\n\r\n",
		"a.b", false);
	http_ok("POST /p HTTP/1.1\r\nHOST:a.b.\t\r\nContent-Length: 0\r\n\r\n",
		"a.b", false);
	http_ok("GET / HTTP/1.0\r\n\r\n", NULL, false);
	http_ok("GET / HTTP/1.0\r\nHost: a.b\r\n\r\n", "a.b", false);
	http_ok("GET / HTTP/1.1\r\nHost:\r\n\r\n", NULL, false);
	http_ok("GET / HTTP/1.1\r\nHost: 10.0.0.1:80\r\n\r\n", "10.0.0.1",
		true);
	http_ok("GET / HTTP/1.1\r\nHost: [0:0::1]:8080\r\n\r\n", "::1", true);
	http_ok("get / HTTP/1.1\r\nHost: a.b\r\n\r\n", "a.b", false);
	http_ok("FROB / HTTP/1.1\r\nHost: a.b\r\n\r\n", "a.b", false);
	http_ok("OPTIONS * HTTP/1.1\r\nHost: a.b\r\n\r\n", "a.b", false);
	/* Absolute form: the target names the server, a Host must agree. */
	http_ok("GET http://A.b/x HTTP/1.1\r\nHost: a.b:80\r\n\r\n", "a.b",
		false);
	http_ok("GET https://a.b?q HTTP/1.0\r\n\r\n", "a.b", false);
	http_bad("GET http://a.b/ HTTP/1.1\r\nHost: c.d\r\n\r\n",
		 "does not match");
	http_bad("GET http://a.b/ HTTP/1.1\r\nHost:\r\n\r\n", "does not match");
	http_bad("GET http://u@a.b/ HTTP/1.1\r\nHost: a.b\r\n\r\n", "userinfo");
	http_bad("GET ftp://a.b/ HTTP/1.1\r\nHost: a.b\r\n\r\n",
		 "not origin-form");
	http_bad("GET http:/// HTTP/1.0\r\n\r\n", "empty name");
	/* CONNECT: the authority-form target. */
	http_ok("CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n", "a.b",
		false);
	http_ok("CONNECT a.b:443 HTTP/1.1\r\n\r\n", "a.b", false);
	http_ok("CONNECT [::1]:443 HTTP/1.0\r\n\r\n", "::1", true);
	http_bad("CONNECT a.b HTTP/1.1\r\n\r\n", "no port");
	http_bad("CONNECT a.b:443 HTTP/1.1\r\nHost: c.d:443\r\n\r\n",
		 "does not match");
	http_bad("CONNECT /x HTTP/1.1\r\nHost: a.b\r\n\r\n", "character");
	http_bad("GET a.b:443 HTTP/1.1\r\nHost: a.b\r\n\r\n", "not origin");
	http_bad("GET * HTTP/1.1\r\nHost: a.b\r\n\r\n", "OPTIONS");
	/* Host rules. */
	http_bad("GET / HTTP/1.1\r\n\r\n", "without Host");
	http_bad("GET / HTTP/1.1\r\nHost: a.b\r\nhost: a.b\r\n\r\n",
		 "two Host");
	http_bad("GET / HTTP/1.0\r\nHost: a.b\r\nHost: c.d\r\n\r\n",
		 "two Host");
	http_bad("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "character");
	http_bad("GET / HTTP/1.1\r\nHost: %65vil.com\r\n\r\n", "character");
	http_bad("GET / HTTP/1.1\r\nHost: u@a.b\r\n\r\n", "character");
	http_bad("GET / HTTP/1.1\r\nHost: a.b:99999\r\n\r\n", "port");
	http_bad("GET / HTTP/1.1\r\nHost: a.b:\r\n\r\n", "port");
	http_bad("GET / HTTP/1.1\r\nHost: a.b:80x\r\n\r\n", "port");
	http_bad("GET / HTTP/1.1\r\nHost: 1.2.3\r\n\r\n", "numeric");
	http_bad("GET / HTTP/1.1\r\nHost: 010.0.0.1\r\n\r\n", "numeric");
	http_bad("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "']'");
	http_bad("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", "IPv6");
	http_bad("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "after ']'");
	/* Framing. */
	http_bad("GET / HTTP/1.1\nHost: a.b\n\n", "CRLF");
	http_bad("GET / HTTP/1.1\r\nHost: a.b\n\r\n", "bare LF");
	http_bad("GET / HTTP/1.1\r\nHost: a.b\r\n\n", "bare LF");
	http_bad("GET / HTTP/1.1\r\nHost: a.b\r\nX: 1\r\n 2\r\n\r\n",
		 "obs-fold");
	http_bad("GET / HTTP/1.1\r\nHost : a.b\r\n\r\n", "before a header");
	http_bad("GET / HTTP/1.1\r\nHo(st: a.b\r\n\r\n", "header name");
	http_bad("GET / HTTP/1.1\r\n: a.b\r\n\r\n", "empty header name");
	http_bad("GET / HTTP/1.1\r\nHost: a.b\r\nX: \x01\r\n\r\n", "control");
	http_bad("GET / HTTP/1.1\r\nHost: a.b\rX\r\n\r\n", "CR without LF");
	http_bad("GET / HTTP/1.1\r\nHost: a.b\r\n\rX", "CR without LF");
	http_bad("GET / HTTP/1.2\r\nHost: a.b\r\n\r\n", "version");
	http_bad("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "version");
	http_bad("\r\nGET / HTTP/1.1\r\nHost: a.b\r\n\r\n", "empty line");
	http_bad("\nFROB / HTTP/1.1\r\nHost: a.b\r\n\r\n", "empty line");
	http_bad("GET /\r\n", "without HTTP/");
	http_bad("GET  / HTTP/1.1\r\n", "empty request target");
	http_bad("GET /\x80 HTTP/1.1\r\n", "bad byte");
	http_bad("GET /#f HTTP/1.1\r\nHost: a.b\r\n\r\n", "'#'");
	/* Other protocols. */
	http_other("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n");
	http_other("FROB /\r\n");
	http_other("EHLO mail.example\r\n");
	http_other("*1\r\n$4\r\nPING\r\n");
	http_other("\r\n\r\n*1\r\n");
	assert_int_equal(check((const uint8_t *)"\x00\x00\x00\x08\x04\xd2", 6),
			 SNIFF_OTHER);
	assert_false(sn.malformed);
}

static void test_http_partial(void **state)
{
	(void)state;
	struct sniff p;
	/* A method so far: MORE; over 16 token bytes: OTHER. */
	assert_int_equal(sniff_stream((const uint8_t *)"G", 1, &p), SNIFF_MORE);
	assert_int_equal(sniff_stream((const uint8_t *)"GET / HTTP/1.", 13, &p),
			 SNIFF_MORE);
	assert_int_equal(sniff_stream((const uint8_t *)"", 0, &p), SNIFF_MORE);
	assert_int_equal(sniff_final((const uint8_t *)"", 0, &p), SNIFF_OTHER);
	assert_false(p.malformed);
	const char *m16 = "ABCDEFGHIJKLMNOP";
	assert_int_equal(sniff_stream((const uint8_t *)m16, 16, &p),
			 SNIFF_MORE);
	assert_int_equal(
	    sniff_stream((const uint8_t *)"ABCDEFGHIJKLMNOPQ", 17, &p),
	    SNIFF_OTHER);
	http_ok("ABCDEFGHIJKLMNOP / HTTP/1.0\r\n\r\n", NULL, false);
	/* Stopped early: a known method is malformed, an unknown one OTHER. */
	assert_int_equal(sniff_final((const uint8_t *)"GET /", 5, &p),
			 SNIFF_OTHER);
	assert_true(p.malformed);
	assert_int_equal(sniff_final((const uint8_t *)"FROB /", 6, &p),
			 SNIFF_OTHER);
	assert_false(p.malformed);
	assert_int_equal(sniff_final((const uint8_t *)"FROB / HTTP/", 12, &p),
			 SNIFF_OTHER);
	assert_true(p.malformed);
	/* Byte by byte, the same answer as at once: check() does it for each
	 * input; here a long one. */
	const char *s = "POST /v1/messages HTTP/1.1\r\n"
			"Host: api.anthropic.com\r\n"
			"Content-Type: application/json\r\n"
			"Content-Length: 2\r\n"
			"\r\n{}";
	check((const uint8_t *)s, strlen(s));
	assert_int_equal(sn.kind, SNIFF_HTTP);
	assert_string_equal(sn.name, "api.anthropic.com");
}

static void test_bounds(void **state)
{
	(void)state;
	/* A head that does not end within SNIFF_MAX. */
	size_t n = 0;
	memcpy(buf, "GET / HTTP/1.1\r\nHost: a.b\r\n", 27);
	n = 27;
	while (n < SNIFF_MAX + 100) {
		memcpy(buf + n, "X-Pad: 0123456789abcdef\r\n", 25);
		n += 25;
	}
	struct sniff p, q;
	assert_int_equal(sniff_stream(buf, SNIFF_MAX - 1, &p), SNIFF_MORE);
	assert_int_equal(sniff_stream(buf, SNIFF_MAX, &p), SNIFF_OTHER);
	assert_true(p.malformed);
	assert_non_null(strstr(p.why, "longer than 16384"));
	assert_int_equal(sniff_stream(buf, n, &q), SNIFF_OTHER);
	assert_memory_equal(&p, &q, sizeof(p));
	/* A head that ends within it, however long the input. */
	memcpy(buf + SNIFF_MAX - 200, "\r\n\r\n", 4);
	assert_int_equal(sniff_stream(buf, n, &p), SNIFF_HTTP);
	assert_string_equal(p.name, "a.b");
	/* Token bytes forever: OTHER at 17. */
	memset(buf, 'A', SNIFF_MAX + 10);
	assert_int_equal(sniff_stream(buf, SNIFF_MAX + 10, &p), SNIFF_OTHER);
	assert_false(p.malformed);
	/* Blank lines forever: OTHER at SNIFF_MAX. */
	memset(buf, '\n', SNIFF_MAX + 10);
	assert_int_equal(sniff_stream(buf, SNIFF_MAX - 1, &p), SNIFF_MORE);
	assert_int_equal(sniff_stream(buf, SNIFF_MAX, &p), SNIFF_OTHER);
	assert_false(p.malformed);
	/* A ClientHello that fits in one record but not, framed a byte per
	 * record, in SNIFF_MAX. */
	size_t h = unhex(PY_NAME, tmp);
	size_t m = reframe(tmp, h, 1, 1, buf);
	assert_true(m < SNIFF_MAX);
	static uint8_t big[3 * SNIFF_MAX];
	/* 3000-byte padding extension, a byte a record: 6 bytes per byte. */
	static uint8_t pad[3004];
	memset(pad, 0, sizeof(pad));
	pad[0] = 0x00;
	pad[1] = 0x15;
	put16(pad + 2, 3000);
	m = add_ext(tmp, h, pad, sizeof(pad), buf);
	is_tls(buf, m, "example.com", false);
	size_t mb = reframe(buf, m, 1, 1, big);
	assert_true(mb > SNIFF_MAX);
	assert_int_equal(sniff_stream(big, SNIFF_MAX - 1, &p), SNIFF_MORE);
	assert_int_equal(sniff_stream(big, mb, &p), SNIFF_OTHER);
	assert_true(p.malformed);
	assert_non_null(strstr(p.why, "longer than"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tls_real),
	    cmocka_unit_test(test_tls_split),
	    cmocka_unit_test(test_tls_ech),
	    cmocka_unit_test(test_tls_lengths),
	    cmocka_unit_test(test_tls_sni),
	    cmocka_unit_test(test_http),
	    cmocka_unit_test(test_http_partial),
	    cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
