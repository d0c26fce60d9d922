-- Reads a job, and while it is pending what its queue estimate needs, in one round trip.
-- ARGV: prefix, id, tenant, worker liveness ms. Returns nil when the job is missing or
-- another tenant's; else {fields, rank, queued, due_ms, live_workers, avg_duration_ms}
-- with -1 or '' for what does not apply.
local id, tenant, liveness = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = job_key(id)
local fields = redis.call('HGETALL', key)
if #fields == 0 or redis.call('HGET', key, 'tenant') ~= tenant then return nil end
if redis.call('HGET', key, 'status') ~= 'pending' then return {fields} end
local now = now_ms()
return {
  fields,
  redis.call('ZRANK', QUEUE, id) or -1,
  redis.call('ZCARD', QUEUE),
  redis.call('ZSCORE', SCHEDULED, id) or '',
  redis.call('ZCOUNT', WORKERS, now - liveness, '+inf'),
  redis.call('HGET', STATS, 'avg_duration_ms') or '',
}
