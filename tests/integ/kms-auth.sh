#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# The peer channel refuses whoever is not the configured neighbour:
#
#   1. kms-a dials "kms-b", but the process there holds a valid certificate for kms-x
#   2. an impostor calling itself kms-a, with the kms-x certificate, dials the real kms-b
#   3. a peer whose certificate comes from another CA
#   4. a correctly authenticated peer speaking another protocol version, or sending garbage
#   5. a connection that never completes a TLS handshake
#
# Each must be refused with a log line saying why, and no key may be cached.
. "$(dirname "$0")/kms-lib.sh"

PA=$(free_port); PB=$(free_port)
start_qkdsim -r 2000000

# 1: kms-b runs with the kms-x certificate
write_conf kms-a kms-b "$PA" "$PB" a
CERT_OVERRIDE=kms-x write_conf kms-b kms-a "$PB" "$PA" b
start_kmsd kms-a
start_kmsd kms-b
check "leader refuses a neighbour whose certificate names another id" \
	wait_for 15 'grep -q "closing: TLS: .*certificate verify failed" "$T/kms-a.log"'
check "...and never brings the link up" test "$(link_field kms-a connects)" = 0
kill -9 "$PID_kmsa" "$PID_kmsb"; wait "$PID_kmsa" "$PID_kmsb" 2>/dev/null
rm -f "$T"/*.db*

# 2: impostor kms-a with the kms-x certificate dials the real kms-b
CERT_OVERRIDE=kms-x write_conf kms-a kms-b "$PA" "$PB" a
write_conf kms-b kms-a "$PB" "$PA" b
start_kmsd kms-b
start_kmsd kms-a
check "follower refuses a certificate that names no configured neighbour" \
	wait_for 15 'grep -q "closing: peer certificate names no configured neighbour" "$T/kms-b.log"'
# logged right after the "closing:" line waited for above: wait for it too
refused_logged() { grep -q "refused certificate subject CN \`kms-x'" "$T/kms-b.log"; }
check "...logging the refused identity" wait_for 5 refused_logged
check "...and never brings the link up" test "$(link_field kms-b connects)" = 0

# 3: another CA. The impostor's certificate really says kms-a, but no one vouches for it.
"$QOTP_TOP/scripts/mkpki.sh" "$T/evil" kms-a >/dev/null
out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$PB" -cert "$T/evil/kms-a.crt" \
	-key "$T/evil/kms-a.key" -CAfile "$T/pki/ca.crt" -verify_hostname kms-b -quiet 2>&1)
check "a certificate from another CA is refused during the handshake" \
	wait_for 10 'grep -q "TLS: .*certificate verify failed\|TLS: .*unknown ca\|TLS: .*unable to get" "$T/kms-b.log"'

# 4: right certificate, wrong protocol version
printf '\002\001\000\000\000\000\000\006\005kms-a' >"$T/v2.bin"
(cat "$T/v2.bin"; sleep 2) | timeout 10 openssl s_client -connect "127.0.0.1:$PB" \
	-cert "$T/pki/kms-a.crt" -key "$T/pki/kms-a.key" -CAfile "$T/pki/ca.crt" \
	-verify_hostname kms-b -verify_return_error -quiet >/dev/null 2>&1
check "a peer speaking protocol version 2 is closed with the reason" \
	wait_for 10 'grep -q "closing: bad frame: protocol version mismatch (version byte 2, ours 1)" "$T/kms-b.log"'
# a valid hello and then garbage
printf '\001\001\000\000\000\000\000\006\005kms-a\001\077\000\000\000\000\000\000' >"$T/bad.bin"
(cat "$T/bad.bin"; sleep 2) | timeout 10 openssl s_client -connect "127.0.0.1:$PB" \
	-cert "$T/pki/kms-a.crt" -key "$T/pki/kms-a.key" -CAfile "$T/pki/ca.crt" \
	-verify_hostname kms-b -quiet >/dev/null 2>&1
check "a bad frame after hello is closed with the reason" \
	wait_for 10 'grep -q "closing: bad frame: unknown message type" "$T/kms-b.log"'
# 5: a connection that never starts TLS is dropped
exec 3<>"/dev/tcp/127.0.0.1/$PB"
check "a silent connection is dropped after the handshake timeout" \
	wait_for 20 'grep -q "closing: TLS handshake timeout" "$T/kms-b.log"'
exec 3>&-
check "no verified key anywhere" test "$(count_state kms-b 2)" = 0
finish
