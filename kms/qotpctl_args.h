/* SPDX-License-Identifier: GPL-2.0 */
/* Argument parsers of qotpctl, apart so they can be unit tested (tests/qotpctl_test.c). */
#ifndef QOTPCTL_ARGS_H
#define QOTPCTL_ARGS_H

#include <stdbool.h>
#include <stdint.h>

struct qotpctl_cidr {
	uint16_t family;	/* AF_INET or AF_INET6 */
	uint8_t len;
	uint8_t addr[16];
};

/* Decimal (or 0x hex) without sign; with @suffixes, one of K, M, G (powers of 1024).
 * False on anything else, including overflow. */
bool qotpctl_parse_u64(const char *s, uint64_t *out, bool suffixes);
bool qotpctl_parse_u32(const char *s, uint32_t *out);

/* "ADDR/LEN". 0; -EINVAL: not an IPv4 or IPv6 prefix; -EDOM: host bits set. */
int qotpctl_parse_cidr(const char *s, struct qotpctl_cidr *c);

/* "encrypt"/"enc" -> QOTP_DIR_ENCRYPT, "decrypt"/"dec" -> QOTP_DIR_DECRYPT, else -1. */
int qotpctl_parse_dir(const char *s);

#endif
