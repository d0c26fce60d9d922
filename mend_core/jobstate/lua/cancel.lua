-- pending | processing -> cancelled. ARGV: prefix, id, tenant, ttl_ms.
-- Returns {code, fields...}: code 'ok', 'not_found' (missing or another tenant's) or
-- 'finished' (already terminal; fields are the job as it is).
local id, tenant = ARGV[2], ARGV[3]
local job = load(id)
if not job or job.tenant ~= tenant then return {'not_found'} end
if job.status ~= 'pending' and job.status ~= 'processing' then
  return {'finished', unpack(redis.call('HGETALL', job_key(id)))}
end
return {'ok', unpack(cancel(job, now_ms(), 'cancelled by request', tonumber(ARGV[4])))}
