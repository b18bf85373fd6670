/* SPDX-License-Identifier: GPL-2.0 */
/* What an ETSI 014 SAE client (kmsd's qkd-etsi014 source, bench/e14bench) shares: evhttp. */
#ifndef KMS_E14CLI_H
#define KMS_E14CLI_H

#include <stddef.h>

#include <event2/http.h>

struct bufferevent;

/*
 * Why a request got no HTTP answer, from evhttp's error (its request error callback; a
 * refused connect never calls it: pass EVREQ_HTTP_BUFFER_ERROR as the default) and the
 * OpenSSL errors queued on the connection's bufferevent bev (NULL if none), which this
 * drains: "no answer in time", "connection closed before an answer (TLS: ...)".
 */
void e14cli_reason(struct bufferevent *bev, enum evhttp_request_error err, char *buf,
		   size_t len);

#endif
