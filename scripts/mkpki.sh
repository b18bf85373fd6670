#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Creates a test PKI for kmsd peer channels: one CA and, per node id, a key and a
# certificate whose CN and subjectAltName DNS are that id (what kmsd checks); an id that is
# an IPv4 address (127.0.0.1: a test KME's server certificate) gets an IP subjectAltName too.
#   scripts/mkpki.sh DIR ID...     ->  DIR/ca.crt DIR/ca.key DIR/ID.crt DIR/ID.key
# For tests only: keys are unencrypted and the CA key lies beside the certificates.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: $0 DIR ID..." >&2; exit 2; }
dir=$1
shift
mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.crt" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" -days 3650 -subj "/CN=qotp test CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
for id in "$@"; do
	case $id in
	*[!A-Za-z0-9._-]*|'') echo "$0: invalid node id: \`$id'" >&2; exit 1 ;;
	esac
	san="DNS:$id"
	[[ $id =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] && san="$san,IP:$id"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$dir/$id.key" -out "$dir/$id.csr" -subj "/CN=$id" 2>/dev/null
	openssl x509 -req -in "$dir/$id.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
		-CAcreateserial -out "$dir/$id.crt" -days 825 \
		-extfile <(printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n' "$san") 2>/dev/null
	rm -f "$dir/$id.csr"
done
chmod 0644 "$dir"/*.crt
