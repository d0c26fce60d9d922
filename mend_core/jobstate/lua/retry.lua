-- processing -> pending after a transient error, due again after a backoff.
-- ARGV: prefix, id, fence, error, delay_ms. Returns 1, or 0 without the lease.
local id, fence = ARGV[2], ARGV[3]
local job = load(id)
if not held(job, fence) then return 0 end
local now = now_ms()
redis.call('ZREM', INFLIGHT, id)
schedule(id, job.tenant, now + tonumber(ARGV[5]))
move_status(job, 'processing', 'pending')
commit(id, now, {'status', 'pending', 'error', ARGV[4]}, {'worker', 'progress_percent', 'progress_message'})
return 1
