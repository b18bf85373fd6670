# SPDX-License-Identifier: GPL-2.0
# kmesimd: a pair of simulated ETSI GS QKD 014 KMEs for tests, on the reusable KME server
# e14srv.o (HTTPS, mutual TLS) and the etsi014.o JSON codec. Included by kms/Makefile.

# wipe.o sets SQLite's allocator too, hence sqlite3
KMESIM_LIBS := $(shell $(PKG_CONFIG) --libs libevent libevent_openssl openssl jansson sqlite3 \
	2>/dev/null)
KMESIMD_OBJS := kmesimd.o e14srv.o etsi014.o log.o wipe.o

PROGS += kmesimd
MAN8 += man/kmesimd.8

$(O)/kmesimd: $(addprefix $(O)/,$(KMESIMD_OBJS))
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(KMESIM_LIBS)
