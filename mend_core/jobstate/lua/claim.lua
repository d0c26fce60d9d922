-- Takes the first pending job and leases it: pending -> processing.
-- ARGV: prefix, worker id, lease_ms. Returns {the job's fields or {} when the partition's
-- queue is empty, how many jobs stay queued in the partition}.
local fields = claim_next(ARGV[2], tonumber(ARGV[3])) or {}
return {fields, redis.call('ZCARD', TURNS)}
