-- failed | cancelled -> pending with a fresh attempt budget (RetryJob): a dead letter
-- goes back to the queue under the same id, by its priority and submission order.
-- ARGV: prefix, id, tenant. Returns {'ok', the job as get.lua reads
-- it (with its place in the queue)}, {'not_found'} (missing or another tenant's) or
-- {'state', fields...} (neither failed nor cancelled; the job as is).
local id, tenant = ARGV[2], ARGV[3]
local job = load(id)
if not job or job.tenant ~= tenant then return {'not_found'} end
if job.status ~= 'failed' and job.status ~= 'cancelled' then
  return {'state', unpack(redis.call('HGETALL', job_key(id)))}
end
-- Kept until it finishes again; its retention starts over then.
redis.call('PERSIST', job_key(id))
redis.call('PERSIST', events_key(id))
-- Its batch counts it as unfinished again, and completes again when it finishes.
if (job.batch_id or '') ~= '' then
  local bkey = batch_key(tenant, job.batch_id)
  if redis.call('EXISTS', bkey) == 1 then
    redis.call('HINCRBY', bkey, 'remaining', 1)
    redis.call('HINCRBY', bkey, job.status, -1)
    redis.call('PERSIST', bkey)
    redis.call('PERSIST', batch_jobs_key(tenant, job.batch_id))
  end
end
move_status(job, job.status, 'pending')
-- The fence token goes on counting: a worker of an earlier run can never match it.
commit(id, now_ms(), {'status', 'pending', 'attempt', 0}, {
  'error', 'result', 'output_url', 'file_size', 'image', 'details', 'started_at', 'completed_at',
  'duration_seconds', 'worker',
  'progress_percent', 'progress_message', 'scheduled_at',
})
enqueue(id, job.priority, job.seq, job.tenant)
return {'ok', read_job(id, tenant)}
