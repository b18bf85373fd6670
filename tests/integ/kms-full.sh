#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Store high watermark: with link-max-bytes reached, kmsd stops reading its QKD source
# (the simulator then stops generating: its output to that end stays full), and the store
# stops growing instead of filling the disk.
#
#   kmsd kms-a <== TLS ==> kmsd kms-b      link-max-bytes 1 MiB at both ends
#         \____ qkdsimd 8 Mbit/s ____/
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
write_conf kms-a kms-b "$PA" "$PB" a "link-max-bytes 1048576"
write_conf kms-b kms-a "$PB" "$PA" b "link-max-bytes 1048576"
start_qkdsim -r 8000000
start_kmsd kms-a
start_kmsd kms-b
check "intake pauses at link-max-bytes" \
	wait_for 30 'grep -q "store reached link-max-bytes, QKD intake paused" "$T/kms-a.log"'
intake_stays kms-a "no QKD block taken while paused"
live=$(sql kms-a "SELECT sum(len) FROM blocks WHERE state IN (0,1,2)")
check "store holds about link-max-bytes of key ($live bytes, < 3 MiB)" test "$live" -lt 3145728
finish
