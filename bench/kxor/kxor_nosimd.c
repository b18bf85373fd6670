// SPDX-License-Identifier: GPL-2.0
/*
 * kmod/xor.c's qotp_xor() again, built with the flags an x86-64 kernel builds every file
 * with (no SSE, MMX or AVX; Kbuild), so kxor can show what that kernel's code does.
 */
#include <linux/types.h>
#include <linux/export.h>
#include <asm/unaligned.h>

#define qotp_xor kxor_nosimd
#define qotp_xor_skb kxor_nosimd_skb_unused
void kxor_nosimd(u8 *dst, const u8 *src, const u8 *key, size_t len);
#include "xor.c"
