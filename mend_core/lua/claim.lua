-- Takes the first pending job and leases it: pending -> processing.
-- ARGV: prefix, worker id, lease_ms. Returns the job's fields, or nil when the queue is empty.
local worker, lease_ms = ARGV[2], tonumber(ARGV[3])
while true do
  local popped = redis.call('ZPOPMIN', QUEUE)
  if #popped == 0 then return nil end
  local id = popped[1]
  local job = load(id)
  if job and job.status == 'pending' then
    local now = now_ms()
    redis.call('ZADD', INFLIGHT, now + lease_ms, id)
    move_status(job, 'pending', 'processing')
    commit(id, now, {
      'status', 'processing', 'attempt', tonumber(job.attempt) + 1,
      'fence', tonumber(job.fence) + 1, 'started_at', now, 'worker', worker,
    }, {'progress_percent', 'progress_message'})
    return redis.call('HGETALL', job_key(id))
  end
  -- Not pending any more (or expired): drop the stale queue entry and look further.
end
