-- processing -> pending at once, for a worker shutting down before the job finished. The
-- attempt is given back: stopping was not the job's fault. ARGV: prefix, id, fence.
local id, fence = ARGV[2], ARGV[3]
local job = load(id)
if not held(job, fence) then return 0 end
redis.call('ZREM', INFLIGHT, id)
move_status(job, 'processing', 'pending')
commit(id, now_ms(), {'status', 'pending', 'attempt', tonumber(job.attempt) - 1},
  {'worker', 'progress_percent', 'progress_message'})
enqueue(id, job.priority, job.seq, job.tenant)
return 1
