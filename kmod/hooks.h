/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _QOTP_HOOKS_H
#define _QOTP_HOOKS_H

#include <linux/types.h>

struct qotp_net;

/* The netfilter hooks of one netns; see hooks.c for their priorities and why. */
struct qotp_dp {
	u32 mode;		/* QOTP_MODE_* bits whose hooks are registered */
};

#endif /* _QOTP_HOOKS_H */
