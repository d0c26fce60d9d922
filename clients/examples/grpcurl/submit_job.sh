#!/usr/bin/env bash
# Queues an image resize: my-bucket/input.jpg -> my-bucket/output.jpg at 800x600.
# Prints {"jobId": "...", "status": "JOB_STATUS_PENDING", "message": "Job queued for processing"}.
set -euo pipefail
. "$(dirname "$0")/_env.sh"

"$GRPCURL" -plaintext -H "x-api-key: $MEND_API_KEY" -d @ \
  "$MEND_ADDRESS" mend.v1.JobService/SubmitJob <<'JSON'
{
  "source_bucket": "my-bucket",
  "source_key": "input.jpg",
  "dest_bucket": "my-bucket",
  "dest_key": "output.jpg",
  "parameters": {"image_resize": {"width": 800, "height": 600, "quality": 85}},
  "options": {"priority": 5}
}
JSON
