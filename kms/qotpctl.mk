# SPDX-License-Identifier: GPL-2.0
# qotpctl: command-line view and control of the qotp kernel state (libnl-genl), and the
# unit tests of its argument parsers. Included by kms/Makefile.

QOTPCTL_LIBS := $(shell $(PKG_CONFIG) --libs libnl-genl-3.0 libnl-3.0 2>/dev/null)
QOTPCTL_OBJS := qotpctl.o qotpctl_args.o nlclient.o

PROGS += qotpctl
MAN8 += man/qotpctl.8

$(O)/qotpctl: $(addprefix $(O)/,$(QOTPCTL_OBJS))
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(QOTPCTL_LIBS)

UNIT_TESTS += qotpctl_test
$(O)/asan/qotpctl_test.o: tests/qotpctl_test.c | $(O)/asan
	$(CC) $(SAN_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/asan/qotpctl_test: $(addprefix $(O)/asan/,qotpctl_test.o qotpctl_args.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)
