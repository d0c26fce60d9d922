-- processing -> failed. ARGV: prefix, id, fence, error, ttl_ms. Returns 1, or 0 without the lease.
local id, fence = ARGV[2], ARGV[3]
local job = load(id)
if not held(job, fence) then return 0 end
local now = now_ms()
redis.call('ZREM', INFLIGHT, id)
move_status(job, 'processing', 'failed')
commit(id, now, {'status', 'failed', 'error', ARGV[4], 'completed_at', now}, {'worker'})
expire(id, tonumber(ARGV[5]))
settle(job, 'failed', now, tonumber(ARGV[5]))
return 1
