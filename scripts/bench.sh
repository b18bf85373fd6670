#!/usr/bin/env bash
# make bench: ratios measured side by side in one run. Not built yet (see the open issues).
echo "bench: not built yet; see the open issues." >&2
exit 2
