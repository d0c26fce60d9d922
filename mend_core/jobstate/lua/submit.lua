-- Stores and enqueues jobs in one atomic step, all or none.
-- ARGV: prefix, tenant, request_ttl_ms, batch JSON ("" for single jobs:
--   {"id", "fail_fast", "webhook_url", "webhook_style"}), the tenant's quota
--   "<max pending (0: no limit)> <its pending jobs in the other partitions> <submit rate
--   refused: 0, or the burst it was refused for> <retry after ms>" (the rate bucket is
--   taken before, by submit_rate.lua in the tenant's home partition), the partition's wake
--   token ('': the caller wakes the workers; else KEYS[2] and KEYS[3] are the global wake
--   and schedule wake lists, on a single Redis), then one JSON document per job:
--   {"id", "request_id", "fingerprint", "priority", "type", "fields": {...}}, and for a
--   delayed job "run_at_ms" (epoch ms) or "delay_ms"
-- Returns {id, created (1) or replayed (0), ...} in request order, {'batch_exists'}, or
-- {'over_quota', 'pending' | 'rate', limit, retry after ms (-1: never, the request alone is
-- over the limit)}, or
-- {'request_conflict', index, job id, ...} for each job (1-based) whose request_id was
-- already used by another request: a batch job's at all, a single job's for a different
-- request (same fingerprint: the original job is returned, AIP-155).
local tenant, request_ttl = ARGV[2], tonumber(ARGV[3])
local batch = ARGV[4] ~= '' and cjson.decode(ARGV[4]) or nil
local bkey = batch and batch_key(tenant, batch.id)
local bjobs = batch and batch_jobs_key(tenant, batch.id)
if bkey and redis.call('EXISTS', bkey) == 1 then return {'batch_exists'} end

-- Every check comes before the first write: a script's writes are not undone by a return.
local docs, replays, conflicts = {}, {}, {}
for i = 7, #ARGV do
  local doc = cjson.decode(ARGV[i])
  docs[#docs + 1] = doc
  if doc.request_id and doc.request_id ~= '' then
    doc.request_key = request_key(tenant, doc.request_id)
    -- "<job id> <fingerprint>"; keys written before fingerprints hold only the id. A batch
    -- item's key recorded outside its batch's partition (store.py _record_requests) ends
    -- with " elsewhere": its job is in another partition, which this script cannot read, so
    -- it counts as existing for as long as the key lives.
    local stored = redis.call('GET', doc.request_key)
    if stored then
      local id, fingerprint, where = string.match(stored, '^(%S+) ?(%S*) ?(%S*)$')
      if where == 'elsewhere' or redis.call('EXISTS', job_key(id)) == 1 then
        if bkey or (fingerprint ~= '' and fingerprint ~= doc.fingerprint) then
          conflicts[#conflicts + 1] = #docs
          conflicts[#conflicts + 1] = id
        else
          replays[#docs] = id
        end
      end
    end
  end
end
if #conflicts > 0 then return {'request_conflict', unpack(conflicts)} end

-- Quotas count the jobs this request creates (replays create none), all or none.
local now = now_ms()
local max_pending, elsewhere, rate_refused, rate_retry =
  string.match(ARGV[5], '^(%S+) (%S+) (%S+) (%S+)$')
max_pending, elsewhere = tonumber(max_pending), tonumber(elsewhere)
local new_jobs = #docs
for _ in pairs(replays) do new_jobs = new_jobs - 1 end
if new_jobs > 0 and max_pending > 0 then
  if new_jobs > max_pending then return {'over_quota', 'pending', max_pending, -1} end
  local pending = elsewhere + redis.call('ZCARD', index_key(tenant, 'status:pending'))
  if pending + new_jobs > max_pending then return {'over_quota', 'pending', max_pending, 1000} end
end
if new_jobs > 0 and rate_refused ~= '0' then
  return {'over_quota', 'rate', tonumber(rate_refused), tonumber(rate_retry)}
end

redis.call('SADD', TENANTS, tenant)
if bkey then
  redis.call('HSET', bkey, 'total', #docs, 'remaining', #docs, 'created_at', now,
    'fail_fast', batch.fail_fast and '1' or '0', 'webhook_url', batch.webhook_url or '',
    'webhook_style', batch.webhook_style or '')
end
local out, queued, scheduled = {}, 0, 0
for i, doc in ipairs(docs) do
  if replays[i] then
    out[#out + 1] = replays[i]
    out[#out + 1] = 0
  else
    local id = doc.id
    local seq = next_seq()
    local fields = {'status', 'pending', 'created_at', now, 'seq', seq, 'attempt', 0, 'fence', 0}
    -- A delayed job waits in the schedule, pending with scheduled_at, until it is due.
    local due = doc.run_at_ms or (doc.delay_ms and now + doc.delay_ms)
    local delayed = due ~= nil and due > now
    if delayed then
      fields[#fields + 1] = 'scheduled_at'
      fields[#fields + 1] = string.format('%d', due)
    end
    for k, v in pairs(doc.fields) do
      fields[#fields + 1] = k
      fields[#fields + 1] = v
    end
    redis.call('HSET', job_key(id), unpack(stored_names(fields)))
    redis.call('ZADD', index_key(tenant, 'all'), seq, id)
    redis.call('ZADD', index_key(tenant, 'status:pending'), seq, id)
    redis.call('ZADD', index_key(tenant, 'type:' .. doc.type), seq, id)
    count({type = doc.type, tenant = tenant}, 'pending', 1)
    if doc.request_key then
      redis.call('SET', doc.request_key, id .. ' ' .. doc.fingerprint, 'PX', request_ttl)
    end
    if bjobs then redis.call('ZADD', bjobs, seq, id) end
    commit(id, now, {})
    if delayed then
      schedule(id, tenant, due)
      scheduled = scheduled + 1
    else
      enqueue(id, doc.priority, seq, tenant)
      queued = queued + 1
    end
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
if ARGV[6] ~= '' then
  if queued > 0 then wake(KEYS[2], ARGV[6], queued) end
  if scheduled > 0 then wake(KEYS[3], '1', 1) end
end
return out
