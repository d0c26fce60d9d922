#!/usr/bin/env bash
# The shell walkthrough of Mend's "Job Status" docs, against the REST gateway of
# `make run`: submit a resize, take the job id, poll until the job finishes, show it.
# Defaults match `make run`; override with MEND_URL, MEND_API_KEY, MEND_POLL_SECONDS.
# With the local storage backend, put an image at var/storage/my-bucket/input.jpg first.
set -euo pipefail
MEND_URL=${MEND_URL:-http://localhost:8080}
MEND_API_KEY=${MEND_API_KEY:-dev-key}
MEND_POLL_SECONDS=${MEND_POLL_SECONDS:-2}

# 1. Submit job
RESPONSE=$(curl -sS -X POST "$MEND_URL/api/v1/jobs/image/resize" \
  -H "X-API-Key: $MEND_API_KEY" \
  -H "Content-Type: application/json" \
  -d '{
    "source_bucket": "my-bucket",
    "source_key": "input.jpg",
    "dest_bucket": "my-bucket",
    "dest_key": "output.jpg",
    "width": 800,
    "height": 600
  }')
echo "$RESPONSE"

# 2. Extract job ID
JOB_ID=$(echo "$RESPONSE" | jq -r '.job_id')
if [ -z "$JOB_ID" ] || [ "$JOB_ID" = "null" ]; then
  echo "submit failed" >&2
  exit 1
fi

# 3. Poll for status
while true; do
  STATUS=$(curl -sS "$MEND_URL/api/v1/jobs/$JOB_ID" \
    -H "X-API-Key: $MEND_API_KEY" | jq -r '.status')
  echo "Status: $STATUS"
  if [ "$STATUS" = "completed" ] || [ "$STATUS" = "failed" ] || [ "$STATUS" = "cancelled" ]; then
    break
  fi
  sleep "$MEND_POLL_SECONDS"
done

# 4. Get final result
curl -sS "$MEND_URL/api/v1/jobs/$JOB_ID" -H "X-API-Key: $MEND_API_KEY" | jq
