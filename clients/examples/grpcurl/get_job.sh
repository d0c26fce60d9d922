#!/usr/bin/env bash
# Shows a job's current state: ./get_job.sh JOB_ID
set -euo pipefail
. "$(dirname "$0")/_env.sh"
JOB_ID=${1:?usage: $0 JOB_ID}

"$GRPCURL" -plaintext -H "x-api-key: $MEND_API_KEY" -d "{\"id\": \"$JOB_ID\"}" \
  "$MEND_ADDRESS" mend.v1.JobService/GetJob
