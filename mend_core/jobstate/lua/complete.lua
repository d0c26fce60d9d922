-- processing -> completed. ARGV: prefix, id, fence, the result's fields as a JSON object,
-- duration seconds, ttl_ms, and optionally worker id and lease_ms to lease the next job in
-- the same round trip. Returns {1} or, when asked for the next job, {1, its fields or {}
-- when the partition's queue is empty, how many jobs stay queued in the partition}; {0}
-- when the caller no longer holds the lease (its result is dropped).
local id, fence = ARGV[2], ARGV[3]
local job = load(id)
if not held(job, fence) then return {0} end
local now = now_ms()
redis.call('ZREM', INFLIGHT, id)
move_status(job, 'processing', 'completed')
-- A moving average per type of the time a job holds its worker (claim to completion, as
-- Redis saw it) feeds estimated_wait_seconds.
local slot_ms = now - tonumber(job.started_at)
local avg_field = job.type .. ':avg_ms'
local avg = tonumber(redis.call('HGET', STATS, avg_field) or slot_ms)
redis.call('HSET', STATS, avg_field, math.floor(avg * (1 - AVG_WEIGHT) + slot_ms * AVG_WEIGHT))
-- The result's fields (encoding.py's result_fields); a completed job's progress is implied.
local changes = {'status', 'completed', 'completed_at', now, 'duration_seconds', ARGV[5]}
for name, value in pairs(cjson.decode(ARGV[4])) do
  changes[#changes + 1] = name
  changes[#changes + 1] = value
end
commit(id, now, changes, {'error', 'worker', 'progress_percent', 'progress_message'})
expire(id, tonumber(ARGV[6]))
settle(job, 'completed', now, tonumber(ARGV[6]))
if ARGV[7] then
  local following = claim_next(ARGV[7], tonumber(ARGV[8])) or {}
  return {1, following, redis.call('ZCARD', TURNS)}
end
return {1}
