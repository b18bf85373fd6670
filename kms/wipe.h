/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Wipe-on-free allocator for the libraries that touch key bytes (libevent buffers holding
 * QKD blocks, SQLite's page cache and statements, OpenSSL's HMAC state). Freed memory is
 * zeroed with explicit_bzero, so key bytes do not outlive their use in the heap.
 */
#ifndef KMS_WIPE_H
#define KMS_WIPE_H

/* Call first in main(), before any libevent, OpenSSL or SQLite call. 0 or -1. */
int wipe_alloc_init(void);
/* free() that zeroes the whole block first (for libraries that take a free hook: jansson). */
void wipe_free(void *p);

#endif
