-- A finished job -> gone (DeleteJob). ARGV: prefix, id, tenant.
-- Returns {'ok'}, {'not_found'} (missing or another tenant's) or {'unfinished', fields...}.
local id, tenant = ARGV[2], ARGV[3]
local job = load(id)
if not job or job.tenant ~= tenant then return {'not_found'} end
if not finished(job) then return {'unfinished', unpack(redis.call('HGETALL', job_key(id)))} end
remove(job)
return {'ok'}
