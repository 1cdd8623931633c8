#pragma once
/*
 * The egress relay's reader of a connection's first bytes: is it a TLS
 * ClientHello or an HTTP/1.x request head, and which server does it name
 * (the TLS server_name, the HTTP Host or the request target's authority)?
 * Nothing is decrypted.  Pure code over what the guest sent: no I/O, no
 * allocation, every length checked; hostile input is the normal case.
 *
 * The answer for a prefix is MORE (wait for more bytes) or decided, and a
 * decided answer never changes when more bytes arrive: the bytes are read
 * in order, and a decision only uses the bytes read up to it.  At most
 * SNIFF_MAX bytes are read; at SNIFF_MAX the answer is decided.  What
 * looked like TLS or HTTP but broke its rules is kind OTHER with malformed
 * set (and a reason); the relay refuses it in allowlist mode.
 *
 * TLS (first byte 22): the ClientHello is reassembled from consecutive
 * handshake records (record versions 0x0301-0x0304, lengths 1-16384) and
 * must end at a record boundary.  Malformed: another record type before it
 * ends, another handshake type, legacy_version outside 0x0301-0x0304, a
 * session_id over 32 bytes, an odd or empty cipher_suites, no compression
 * method, any length that overruns its container or leaves bytes after it,
 * two server_name or two encrypted_client_hello extensions, a server_name
 * list that is not exactly one host_name, a host_name that is not a DNS
 * name (an IP literal included: RFC 6066).  An SSLv2-format ClientHello is
 * malformed too.  No server_name: TLS, has_name false.  ech: the
 * encrypted_client_hello extension (0xfe0d) is present; name is then the
 * outer (public) name.
 *
 * HTTP: "METHOD SP target SP HTTP/1.x CRLF", header lines, an empty line.
 * A first byte that is a token character (or CR or LF) may start a
 * request: MORE until a space, another byte or 17 token bytes (OTHER); a
 * first byte with the high bit set waits for 5 bytes (SSLv2).  A line that
 * starts as a method token and a space but turns out not to be
 * HTTP is OTHER, unless its method is a well-known HTTP one (GET, POST, ...)
 * or the line already reached " HTTP/": then it is malformed.  Strict once
 * HTTP: CRLF only, no obs-fold, no whitespace before a colon, no control
 * characters, versions 1.0 and 1.1 only (HTTP/2's preface is malformed),
 * empty lines before the request line malformed.  The name: CONNECT's
 * authority-form target; an absolute-form target's authority (http or
 * https, no userinfo; a Host must name the same host); else the one Host
 * header.  Two Hosts, or none in HTTP/1.1 (but CONNECT), are malformed; an
 * empty Host gives no name.  Ports are stripped, not checked.
 *
 * Names: lowercased, one trailing dot dropped, letters, digits, '-', '_'
 * and '.', labels of 1-63 bytes, at most 253 bytes.  A name whose last label
 * is numeric ("10.1", "0x7f") is malformed unless it is a dotted-quad IPv4
 * address (no leading zeros); HTTP names may be IPv4 or [IPv6] literals
 * (is_ip; IPv6 in its canonical text, without brackets).
 *
 * Not seen by a reader of first bytes: later requests on a kept-alive HTTP
 * connection, a second ClientHello after a HelloRetryRequest, what runs
 * inside TLS (a Host there may differ from the server_name).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNIFF_MAX 16384 /* bytes the relay waits for at most */

enum sniff_kind {
	SNIFF_MORE = 0, /* cannot tell yet: more bytes needed (only while len <
			   SNIFF_MAX) */
	SNIFF_TLS,   /* a TLS ClientHello (record type 22, handshake type 1) */
	SNIFF_HTTP,  /* an HTTP/1.x request head */
	SNIFF_OTHER, /* neither, or a malformed ClientHello or head */
};

struct sniff {
	enum sniff_kind kind;
	/* TLS: a server_name host_name; HTTP: a Host, CONNECT or absolute
	 * target's host.  name is NUL-terminated, empty without one. */
	bool has_name;
	char name[254];
	bool is_ip; /* HTTP only: name is an IPv4 or IPv6 address */
	bool ech;   /* TLS: encrypted_client_hello (0xfe0d) is present */
	/* Kind OTHER, but it looked like TLS or HTTP and broke the rules: the
	 * relay refuses it in allowlist mode.  has_name, is_ip and ech are
	 * then false. */
	bool malformed;
	/* malformed: a one-line reason, "TLS ..." or "HTTP ..."; else empty */
	char why[128];
};

/*
 * Reads buf[0..len) (at most SNIFF_MAX bytes of it), the first bytes the
 * client sent.  Fills *out (always) and returns out->kind: SNIFF_MORE when
 * more bytes could change the answer (never once len >= SNIFF_MAX).
 */
enum sniff_kind sniff_stream(const uint8_t *buf, size_t len, struct sniff *out);

/*
 * The same, when no more bytes will come (the client waits, closed, or the
 * relay's time is up): never SNIFF_MORE.  An unfinished ClientHello or
 * request head is malformed; an unfinished anything else is OTHER.  Equal
 * to sniff_stream's answer whenever that one is decided.
 */
enum sniff_kind sniff_final(const uint8_t *buf, size_t len, struct sniff *out);
