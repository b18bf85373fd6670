// SPDX-License-Identifier: GPL-2.0
/* Argument parsers of qotpctl (see qotpctl_args.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <linux/qotp.h>

#include "qotpctl_args.h"

bool qotpctl_parse_u64(const char *s, uint64_t *out, bool suffixes)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ' || *s == '\t')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return false;
	if (suffixes && *end) {
		unsigned int shift;

		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return false;
		}
		end++;
		if (v > (UINT64_MAX >> shift))
			return false;
		v <<= shift;
	}
	if (*end)
		return false;
	*out = v;
	return true;
}

bool qotpctl_parse_u32(const char *s, uint32_t *out)
{
	uint64_t v;

	if (!qotpctl_parse_u64(s, &v, false) || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

int qotpctl_parse_cidr(const char *s, struct qotpctl_cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long len;
	unsigned int bits, i;

	if (!s || strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (!slash)
		return -EINVAL;
	*slash++ = 0;
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		bits = 128;
	} else {
		return -EINVAL;
	}
	if (*slash < '0' || *slash > '9')
		return -EINVAL;
	errno = 0;
	len = strtoul(slash, &end, 10);
	if (errno || *end || len > bits)
		return -EINVAL;
	c->len = (uint8_t)len;
	for (i = c->len; i < bits; i++)
		if (c->addr[i / 8] & (0x80 >> (i % 8)))
			return -EDOM;
	return 0;
}

int qotpctl_parse_dir(const char *s)
{
	if (!strcmp(s, "encrypt") || !strcmp(s, "enc"))
		return QOTP_DIR_ENCRYPT;
	if (!strcmp(s, "decrypt") || !strcmp(s, "dec"))
		return QOTP_DIR_DECRYPT;
	return -1;
}
