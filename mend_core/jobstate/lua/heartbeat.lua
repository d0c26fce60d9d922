-- Extends a lease. ARGV: prefix, id, fence, lease_ms.
-- Returns 1 while the caller holds the lease; 0 when it lost it (cancelled, reaped,
-- finished elsewhere) and must stop. A job past its timeout gets no extension, so a
-- worker stuck beyond its own timeout loses the job to the reaper.
local id, fence, lease_ms = ARGV[2], ARGV[3], tonumber(ARGV[4])
local job = load(id)
if not held(job, fence) then return 0 end
local now = now_ms()
local deadline = now + lease_ms
local hard_stop = tonumber(job.started_at) + tonumber(job.timeout_seconds) * 1000 + lease_ms
if deadline > hard_stop then deadline = hard_stop end
redis.call('ZADD', INFLIGHT, 'XX', deadline, id)
return 1
