/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Wire format between qkdsimd and the two ends of a simulated quantum link.
 *
 * The client sends one line: "QKDSIM 1 <end>\n" with end "a" or "b". The simulator then
 * sends frames: u8 type | u8 flags (0) | u16 reserved (0) | u32 length | u64 value |
 * length bytes, big endian. Type 1 (block): value is the block id, the bytes are the key
 * block. Type 2 (status): value 1 = link up, 0 = link down, no bytes.
 */
#ifndef KMS_QKDSIM_H
#define KMS_QKDSIM_H

#define QKDSIM_HELLO "QKDSIM 1 "
#define QKDSIM_HDR_LEN 16
#define QKDSIM_BLOCK 1
#define QKDSIM_STATUS 2
#define QKDSIM_MAX_BLOCK 65536

#endif
