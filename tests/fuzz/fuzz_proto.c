/* libFuzzer target: the wire protocol decoder, key=value iterator and NET_OPEN
 * payloads. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
		off += (size_t)n;
	}
	return 0;
}
