#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Store file system reserve: below store-min-free bytes free on the file system that holds
# its store, kmsd takes no QKD block on any link (says so, with the free space), and takes
# them again once the reserve is met (here: a reload that lowers it to 0, "off"). A real
# full disk is not made here; a reserve larger than any disk (1 TiB) stands for it.
#
#   kmsd kms-a <== TLS ==> kmsd kms-b      kms-a: store-min-free 1 TiB, then 0
#         \____ qkdsimd 8 Mbit/s ____/
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
write_conf kms-a kms-b "$PA" "$PB" a "store-min-free 1099511627776"
write_conf kms-b kms-a "$PB" "$PA" b
start_qkdsim -r 8000000
start_kmsd kms-a
start_kmsd kms-b
check "intake pauses below store-min-free, with the free space in the message" \
	wait_for 30 'grep -Eq "link kms-b: [0-9]+ MiB free for the store, below store-min-free \(1048576 MiB\), QKD intake paused" "$T/kms-a.log"'
intake_stays kms-a "no QKD block taken while below the reserve"
v2=$(link_field kms-a qkd_blocks); c2=$(link_field kms-a verified_total)
sed -i 's/^store-min-free .*/store-min-free 0/' "$T/kms-a.conf"
kill -HUP "$PID_kmsa"
check "a reload with store-min-free 0 resumes intake" \
	wait_for 30 'grep -q "link kms-b: store below link-max-bytes and store-min-free, QKD intake resumed" "$T/kms-a.log"'
check "QKD blocks are taken again" wait_for 30 "[ \"\$(link_field kms-a qkd_blocks)\" -gt $v2 ]"
check "caching verifies blocks again" wait_for 30 "[ \"\$(link_field kms-a verified_total)\" -gt $c2 ]"
finish
