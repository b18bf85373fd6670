// SPDX-License-Identifier: GPL-2.0
/* Wipe-on-free allocator (see wipe.h). */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <sqlite3.h>

#include "wipe.h"

void wipe_free(void *p)
{
	if (p) {
		explicit_bzero(p, malloc_usable_size(p));
		free(p);
	}
}

/* Never let realloc move a block and leave the old copy behind unwiped. */
static void *wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return malloc(n);
	if (n == 0) {		/* realloc(p, 0) frees, as OpenSSL's CRYPTO_realloc expects */
		wipe_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (n <= old)
		return p;
	q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, old);
	wipe_free(p);
	return q;
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	return malloc(n);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
	return wipe_realloc(p, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	wipe_free(p);
}

static void *sq_malloc(int n)
{
	return malloc(n > 0 ? (size_t)n : 1);
}

static void sq_free(void *p)
{
	wipe_free(p);
}

static void *sq_realloc(void *p, int n)
{
	return wipe_realloc(p, n > 0 ? (size_t)n : 1);
}

static int sq_size(void *p)
{
	return p ? (int)malloc_usable_size(p) : 0;
}

static int sq_roundup(int n)
{
	return (n + 15) & ~15;
}

static int sq_init(void *arg)
{
	return SQLITE_OK;
}

static void sq_shutdown(void *arg)
{
}

int wipe_alloc_init(void)
{
	static const sqlite3_mem_methods sq = {
		sq_malloc, sq_free, sq_realloc, sq_size, sq_roundup, sq_init, sq_shutdown, NULL,
	};

	event_set_mem_functions(malloc, wipe_realloc, wipe_free);
	if (!CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free))
		return -1;
	if (sqlite3_config(SQLITE_CONFIG_MALLOC, &sq) != SQLITE_OK)
		return -1;
	return 0;
}
