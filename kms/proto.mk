# SPDX-License-Identifier: GPL-2.0
# Key routing, key transfer + PPETP relay, key distribution and the kernel key interface:
# libraries linked into kmsd (PROTO_OBJS), their unit tests and the protocol fuzzer.
# Included by kms/Makefile. Explicit rules for our own test/fuzz objects so this fragment
# does not depend on pattern rules defined in other fragments.

PROTO_OBJS := route.o ppetp.o distrib.o kernel_keys.o
PROTO_LIBS := $(shell $(PKG_CONFIG) --libs libnl-genl-3.0 libnl-3.0 libcrypto 2>/dev/null)
PROTO_TEST_LIBS := $(shell $(PKG_CONFIG) --libs cmocka libcrypto 2>/dev/null)

UNIT_TESTS += route_test ppetp_test distrib_test kernel_keys_test
FUZZERS += fuzz_proto

$(O)/asan/route_test.o: tests/route_test.c | $(O)/asan
	$(CC) $(SAN_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/asan/ppetp_test.o: tests/ppetp_test.c | $(O)/asan
	$(CC) $(SAN_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/asan/distrib_test.o: tests/distrib_test.c | $(O)/asan
	$(CC) $(SAN_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/asan/kernel_keys_test.o: tests/kernel_keys_test.c | $(O)/asan
	$(CC) $(SAN_CFLAGS) -I. -MMD -MP -c -o $@ $<

$(O)/asan/route_test: $(addprefix $(O)/asan/,route_test.o route.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(PROTO_TEST_LIBS)
$(O)/asan/ppetp_test: $(addprefix $(O)/asan/,ppetp_test.o ppetp.o route.o distrib.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(PROTO_TEST_LIBS)
$(O)/asan/distrib_test: $(addprefix $(O)/asan/,distrib_test.o distrib.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(PROTO_TEST_LIBS)
$(O)/asan/kernel_keys_test: $(addprefix $(O)/asan/,kernel_keys_test.o kernel_keys.o nlclient.o)
	$(CC) $(SAN_CFLAGS) -o $@ $^ $(PROTO_TEST_LIBS) $(PROTO_LIBS)

$(O)/fuzz/fuzz_proto.o: fuzz/fuzz_proto.c | $(O)/fuzz
	$(FUZZ_CC) $(FUZZ_CFLAGS) -I. -MMD -MP -c -o $@ $<
$(O)/fuzz/fuzz_proto: $(addprefix $(O)/fuzz/,fuzz_proto.o route.o ppetp.o distrib.o)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ $(PROTO_TEST_LIBS:-lcmocka=)

# Builds the protocol objects alone (what kmsd will link) with the production flags.
proto-objs: $(addprefix $(O)/,$(PROTO_OBJS))
.PHONY: proto-objs
