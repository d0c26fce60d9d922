-- Takes the first pending job and leases it: pending -> processing.
-- ARGV: prefix, worker id, lease_ms. Returns the job's fields, or nil when the queue is empty.
return claim_next(ARGV[2], tonumber(ARGV[3]))
