# SPDX-License-Identifier: GPL-2.0
# qotpctl: command-line view and control of the qotp kernel state (libnl-genl).
# Included by kms/Makefile.

QOTPCTL_LIBS := $(shell $(PKG_CONFIG) --libs libnl-genl-3.0 libnl-3.0 2>/dev/null)
QOTPCTL_OBJS := qotpctl.o nlclient.o

PROGS += qotpctl
MAN8 += man/qotpctl.8

$(O)/qotpctl: $(addprefix $(O)/,$(QOTPCTL_OBJS))
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(QOTPCTL_LIBS)
