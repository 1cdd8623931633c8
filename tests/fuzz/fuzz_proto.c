/* libFuzzer target: the wire protocol decoder and key=value iterator. */
#include <stddef.h>
#include <stdint.h>

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
			while (proto_kv_next(m.data, m.len, &pos, k, sizeof(k), v, sizeof(v)) > 0)
				;
		}
		off += (size_t)n;
	}
	return 0;
}
