-- Housekeeping, safe to run from any number of workers at once:
--  * a job whose lease expired (its worker died or hung) goes back to pending, or fails
--    when it has used all its attempts;
--  * scheduled jobs that are due (retries after their backoff, delayed jobs at their
--    run_at) move from the schedule to the queue.
-- ARGV: prefix, failed ttl_ms, limit. Returns {requeued, failed, promoted, ms until the
-- next scheduled job is due or -1}.
local ttl, limit = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = now_ms()
local requeued, failed, promoted = 0, 0, 0
for _, id in ipairs(redis.call('ZRANGE', INFLIGHT, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
  redis.call('ZREM', INFLIGHT, id)
  local job = load(id)
  if job and job.status == 'processing' then
    local why = 'worker lost the job (lease expired) during attempt ' .. job.attempt
    if tonumber(job.attempt) < tonumber(job.max_attempts) then
      move_status(job, 'processing', 'pending')
      commit(id, now, {'status', 'pending', 'error', why},
        {'worker', 'progress_percent', 'progress_message'})
      enqueue(id, job.priority, job.seq, job.tenant)
      requeued = requeued + 1
    else
      move_status(job, 'processing', 'failed')
      commit(id, now, {'status', 'failed', 'error', why .. ' of ' .. job.max_attempts,
        'completed_at', now}, {'worker'})
      expire(id, ttl)
      settle(job, 'failed', now, ttl)
      failed = failed + 1
    end
  end
end
local promoted, next_due = promote_due(now, limit)
return {requeued, failed, promoted, next_due}
