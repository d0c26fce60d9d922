-- Finished jobs that match a filter -> gone (PurgeJobs), checked and removed in one step
-- so that a job retried meanwhile is never deleted. ARGV: prefix, tenant, statuses
-- (space-separated), type ('' any), finished before ms ('' any), dry run ('1': delete
-- nothing), then candidate ids. Jobs that are missing, another tenant's, unfinished or
-- do not match are skipped. Returns the ids deleted (dry run: that would be).
local tenant, statuses, jtype = ARGV[2], ' ' .. ARGV[3] .. ' ', ARGV[4]
local before, dry_run = tonumber(ARGV[5]), ARGV[6] == '1'
local matched = {}
for i = 7, #ARGV do
  local job = load(ARGV[i])
  if job and job.tenant == tenant and finished(job)
      and string.find(statuses, ' ' .. job.status .. ' ', 1, true)
      and (jtype == '' or job.type == jtype)
      and (not before or tonumber(job.completed_at or 0) < before) then
    if not dry_run then remove(job) end
    matched[#matched + 1] = job.id
  end
end
return matched
