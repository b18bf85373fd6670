// SPDX-License-Identifier: GPL-2.0
/* ETSI 014 SAE client helpers (see e14cli.h). */
#include <stdio.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "e14cli.h"

void e14cli_reason(struct bufferevent *bev, enum evhttp_request_error err, char *buf,
		   size_t len)
{
	unsigned long e, tls = 0;
	const char *what;

	/* libevent queues OpenSSL's errors, and SSL_ERROR_SYSCALL (5) for a TCP failure */
	while (bev && (e = bufferevent_get_openssl_error(bev)))
		if (ERR_GET_LIB(e))
			tls = e;
	/* what OpenSSL queued outside libevent's view (an alert from the KME) */
	while ((e = ERR_get_error()))
		if (ERR_GET_LIB(e))
			tls = e;
	switch (err) {
	case EVREQ_HTTP_TIMEOUT:
		what = "no answer in time";
		break;
	case EVREQ_HTTP_EOF:
		what = "connection closed before an answer";
		break;
	case EVREQ_HTTP_INVALID_HEADER:
		what = "not an HTTP answer";
		break;
	case EVREQ_HTTP_DATA_TOO_LONG:
		what = "answer too large";
		break;
	default:
		what = "connection refused, reset or closed";
		break;
	}
	if (tls) {
		char s[120];

		ERR_error_string_n(tls, s, sizeof(s));
		snprintf(buf, len, "%s (TLS: %s)", what, s);
	} else {
		snprintf(buf, len, "%s", what);
	}
}
