#!/usr/bin/env bash
# Inside UML: load qotp.ko and qotp_test.ko (whose KUnit suites run at load time), then
# unload both and print the KTAP the suites wrote to the kernel log on stdout.
set -u
kmod=${QOTP_KMOD:?}
dmesg -C
insmod "$kmod/qotp.ko" || { echo "kunit: insmod qotp.ko failed"; exit 1; }
rc=0
insmod "$kmod/qotp_test.ko" || rc=1
rmmod qotp_test 2>/dev/null
rmmod qotp || rc=1
# KTAP lines, without the printk timestamps.
dmesg --notime | sed -n '/KTAP version\|# Subtest\|^ *\(not \)\{0,1\}ok \|^ *# /p' | sed 's/^/KTAP: /'
exit $rc
