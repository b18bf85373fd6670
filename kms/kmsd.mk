# SPDX-License-Identifier: GPL-2.0
# kmsd (key management daemon), qkdsimd (QKD link simulator), kmsctl (control client),
# their unit tests and fuzzers. Included by kms/Makefile.

KMS_LIBS := $(shell $(PKG_CONFIG) --libs libevent libevent_openssl openssl sqlite3 2>/dev/null)
KMSD_LIBS := $(KMS_LIBS) $(shell $(PKG_CONFIG) --libs jansson 2>/dev/null)
KMS_TEST_LIBS := $(shell $(PKG_CONFIG) --libs cmocka openssl sqlite3 2>/dev/null)

KMSD_OBJS := kmsd.o log.o config.o codec.o store.o caching.o qkd.o peer.o ctl.o wipe.o \
	route.o routing.o distrib.o kdist.o kernel_keys.o nlclient.o ppetp.o xfer.o \
	qkd_etsi.o etsi014.o e14cli.o e14srv.o nbkme.o
QKDSIMD_OBJS := qkdsimd.o log.o wipe.o
KMSCTL_OBJS := kmsctl.o

PROGS += kmsd qkdsimd kmsctl
MAN8 += man/kmsd.8 man/kmsctl.8 man/qkdsimd.8
MAN5 += man/kmsd.conf.5

$(O)/kmsd: $(addprefix $(O)/,$(KMSD_OBJS))
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(KMSD_LIBS) $(PROTO_LIBS)
$(O)/qkdsimd: $(addprefix $(O)/,$(QKDSIMD_OBJS))
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(KMS_LIBS) -lm
$(O)/kmsctl: $(addprefix $(O)/,$(KMSCTL_OBJS))
	$(CC) $(ALL_CFLAGS) -o $@ $^

# Unit tests (cmocka, ASan/UBSan). Sources in tests/, objects flat in $(O)/asan/.
UNIT_TESTS += codec_test config_test store_test caching_test
$(O)/asan/%_test.o: tests/%_test.c | $(O)/asan
	$(CC) $(SAN_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/asan/codec_test: $(addprefix $(O)/asan/,codec_test.o codec.o config.o route.o distrib.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(KMS_TEST_LIBS)
$(O)/asan/config_test: $(addprefix $(O)/asan/,config_test.o config.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(KMS_TEST_LIBS)
$(O)/asan/store_test: $(addprefix $(O)/asan/,store_test.o store.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(KMS_TEST_LIBS)
$(O)/asan/caching_test: $(addprefix $(O)/asan/,caching_test.o caching.o store.o codec.o \
		config.o log.o route.o distrib.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(KMS_TEST_LIBS) $(shell $(PKG_CONFIG) --libs libevent)

# libFuzzer targets: the peer message decoder and the config parser.
FUZZERS += fuzz_codec fuzz_config
$(O)/fuzz/fuzz_%.o: fuzz/fuzz_%.c | $(O)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/fuzz/fuzz_codec: $(addprefix $(O)/fuzz/,fuzz_codec.o codec.o config.o route.o distrib.o)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^
$(O)/fuzz/fuzz_config: $(addprefix $(O)/fuzz/,fuzz_config.o config.o)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^

# Crash-test driver for the store (not installed; used by tests/integ/kms-takeonce.sh).
build-all: $(O)/store_torture
$(O)/store_torture.o: tests/store_torture.c | $(O)
	$(CC) $(ALL_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/store_torture: $(O)/store_torture.o $(O)/store.o
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(KMS_LIBS)
