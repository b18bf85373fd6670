/* SPDX-License-Identifier: GPL-2.0 */
/* Logging for the kms daemons, in the tmux style: stderr or syslog, levels, fatal(). */
#ifndef KMS_LOG_H
#define KMS_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_init(const char *progname, int use_syslog, int verbosity);
void log_set_verbosity(int verbosity);
/* Route libevent's internal messages into our log. */
void log_route_libevent(void);

void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));   /* adds strerror */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn)); /* strerror */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
