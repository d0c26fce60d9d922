#!/usr/bin/env bash
# Describes a service or message from the server's reflection, e.g.
#   ./describe.sh                      # mend.v1.JobService and its RPCs
#   ./describe.sh mend.v1.Job          # the Job message
set -euo pipefail
. "$(dirname "$0")/_env.sh"

"$GRPCURL" -plaintext "$MEND_ADDRESS" describe "${1:-mend.v1.JobService}"
