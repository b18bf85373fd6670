/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kmsd node ids: [A-Za-z0-9._-]{1,63}. The id is also the TLS identity a peer's certificate
 * must carry, and it travels in routing, PPETP and distribution messages, so every parser of
 * those uses this one rule. Header-only so the protocol libraries stay free of kmsd's config.
 */
#ifndef KMS_NODEID_H
#define KMS_NODEID_H

#include <string.h>

#define KMS_NODE_ID_MAX 63

static inline int node_id_valid(const char *s)
{
	size_t n;

	if (!s)
		return 0;
	n = strnlen(s, KMS_NODE_ID_MAX + 1);
	if (n == 0 || n > KMS_NODE_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

#endif /* KMS_NODEID_H */
