/* libFuzzer target: the wire protocol decoder, key=value iterator, NET_OPEN
 * and CLIP_REQ/CLIP_END payloads, and the host's clipboard type filter. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "term/clipboard.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	struct proto_msg m;
	while (off < size) {
		ssize_t n = proto_decode(data + off, size - off, &m);
		if (n <= 0)
			break;
		if (m.type == PROTO_SETUP) {
			char k[64], v[256];
			size_t pos = 0;
			while (proto_kv_next(m.data, m.len, &pos, k, sizeof(k),
					     v, sizeof(v)) > 0)
				;
		}
		if (m.type == PROTO_NET_OPEN) {
			struct proto_net_open o;
			uint8_t back[PROTO_NET_OPEN_MAX];
			if (proto_net_open_decode(m.data, m.len, &o) == 0 &&
			    (proto_net_open_encode(&o, back) != m.len ||
			     memcmp(back, m.data, m.len) != 0))
				__builtin_trap();
		}
		if (m.type == PROTO_CLIP_REQ) {
			struct proto_clip_req q;
			uint8_t back[PROTO_CLIP_REQ_MAX];
			if (proto_clip_req_decode(m.data, m.len, &q) == 0 &&
			    (proto_clip_req_encode(&q, back) != m.len ||
			     memcmp(back, m.data, m.len) != 0))
				__builtin_trap();
			if (q.op == PROTO_CLIP_GET &&
			    clip_mime_allowed(q.mime) &&
			    strncmp(q.mime, "image/", 6) != 0)
				__builtin_trap();
		}
		if (m.type == PROTO_CLIP_END) {
			uint8_t st;
			if (proto_clip_end_decode(m.data, m.len, &st) == 0 &&
			    st > PROTO_CLIP_STATUS_MAX)
				__builtin_trap();
		}
		if (m.type == PROTO_CLIP_DATA) {
			/* A type list from a hostile tool: only image
			 * types come out, each a whole line. */
			char out[256];
			size_t k = clip_filter_targets((const char *)m.data,
						       m.len, out, sizeof(out));
			for (size_t i = 0; i < k;) {
				const char *nl = memchr(out + i, '\n', k - i);
				if (!nl)
					__builtin_trap();
				char t[64];
				size_t tl = (size_t)(nl - out - i);
				if (tl >= sizeof(t))
					__builtin_trap();
				memcpy(t, out + i, tl);
				t[tl] = '\0';
				if (!clip_mime_allowed(t))
					__builtin_trap();
				i += tl + 1;
			}
		}
		off += (size_t)n;
	}
	return 0;
}
