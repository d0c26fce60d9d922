#!/usr/bin/env bash
# Streams a job's states until it finishes: ./watch_job.sh JOB_ID [FROM_VERSION]
# Each change prints {"job": {...}}; quiet periods print {"heartbeat": {}}. With
# FROM_VERSION (the "version" of the last state you saw) it resumes after that state.
set -euo pipefail
. "$(dirname "$0")/_env.sh"
JOB_ID=${1:?usage: $0 JOB_ID [FROM_VERSION]}
FROM=${2:+, \"from_version\": \"$2\"}

"$GRPCURL" -plaintext -H "x-api-key: $MEND_API_KEY" -d "{\"id\": \"$JOB_ID\"${FROM:-}}" \
  "$MEND_ADDRESS" mend.v1.JobService/WatchJob
