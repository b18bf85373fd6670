# SPDX-License-Identifier: GPL-2.0
# The ETSI GS QKD 014 JSON codec (etsi014.o: jansson + OpenSSL, and wipe.o for jansson's
# wiping free), its unit test and its two fuzzers (server-side request parsers, client-side
# response parsers). Included by kms/Makefile. Explicit rules for our own test/fuzz objects
# so this fragment does not depend on pattern rules defined in other fragments.

E14_LIBS := $(shell $(PKG_CONFIG) --libs jansson openssl 2>/dev/null)
E14_CFLAGS := $(shell $(PKG_CONFIG) --cflags jansson 2>/dev/null)
# wipe.o references libevent, OpenSSL and SQLite (it sets their allocators too)
E14_WIPE_LIBS := $(shell $(PKG_CONFIG) --libs libevent openssl sqlite3 2>/dev/null)
E14_TEST_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

$(O)/etsi014.o: ALL_CFLAGS += $(E14_CFLAGS)
$(O)/asan/etsi014.o: SAN_CFLAGS += $(E14_CFLAGS)
$(O)/fuzz/etsi014.o: FUZZ_CFLAGS += $(E14_CFLAGS)
$(O)/asan/etsi014_test.o: SAN_CFLAGS += $(E14_CFLAGS)

UNIT_TESTS += etsi014_test
$(O)/asan/etsi014_test.o: tests/etsi014_test.c | $(O)/asan
	$(CC) $(SAN_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/asan/etsi014_test: $(addprefix $(O)/asan/,etsi014_test.o etsi014.o wipe.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(E14_TEST_LIBS) $(E14_LIBS) $(E14_WIPE_LIBS)

FUZZERS += fuzz_e14req fuzz_e14resp
$(O)/fuzz/fuzz_e14req.o: fuzz/fuzz_e14req.c | $(O)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/fuzz/fuzz_e14resp.o: fuzz/fuzz_e14resp.c | $(O)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/fuzz/fuzz_e14req: $(addprefix $(O)/fuzz/,fuzz_e14req.o etsi014.o wipe.o)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(E14_LIBS) $(E14_WIPE_LIBS)
$(O)/fuzz/fuzz_e14resp: $(addprefix $(O)/fuzz/,fuzz_e14resp.o etsi014.o wipe.o)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(E14_LIBS) $(E14_WIPE_LIBS)
