#!/usr/bin/env bash
# The paper's Fig. 1 star end to end, as `make demo` runs it (scripts/demo-inside.sh): sites
# A (centre, nginx-rtmp behind it), B and C, each a kmsd + gateway encryptor, quantum links
# A-B and A-C (qkdsimd), tshark on the internet netns joining the encryptors. ffmpeg
# publishes from behind B and plays from behind C; the script asserts every frame played
# equals the source, nothing dissectable or plaintext on the wire, and that each kernel
# ring holds exactly what its kmsd delivered (every key used came through the chain).
# The demo's report, pictures and logs go to build/test-artifacts/kms-star-demo/.
# qotp-timeout: 720
export QOTP_DEMO_OUT=$QOTP_TOP/build/test-artifacts/kms-star-demo
rm -rf "$QOTP_DEMO_OUT"
exec "$QOTP_TOP/scripts/demo-inside.sh"
