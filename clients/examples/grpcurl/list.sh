#!/usr/bin/env bash
# The services the server offers (via server reflection; no API key needed), then the
# methods of mend.v1.JobService.
set -euo pipefail
. "$(dirname "$0")/_env.sh"

"$GRPCURL" -plaintext "$MEND_ADDRESS" list
"$GRPCURL" -plaintext "$MEND_ADDRESS" list mend.v1.JobService
