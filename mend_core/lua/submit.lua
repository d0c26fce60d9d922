-- Stores and enqueues jobs in one atomic step, all or none.
-- ARGV: prefix, tenant, request_ttl_ms, batch JSON ("" for single jobs:
--   {"id", "fail_fast", "webhook_url", "webhook_style"}), then one JSON document per job:
--   {"id", "request_id", "priority", "type", "fields": {...}}
-- Returns {id, created (1) or replayed (0), ...} in request order, or {'batch_exists'}.
local tenant, request_ttl = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local out = {}
redis.call('SADD', TENANTS, tenant)
local bkey
if ARGV[4] ~= '' then
  local batch = cjson.decode(ARGV[4])
  bkey = batch_key(tenant, batch.id)
  if redis.call('EXISTS', bkey) == 1 then return {'batch_exists'} end
  redis.call('HSET', bkey, 'total', #ARGV - 4, 'remaining', #ARGV - 4, 'created_at', now,
    'fail_fast', batch.fail_fast and '1' or '0', 'webhook_url', batch.webhook_url or '',
    'webhook_style', batch.webhook_style or '')
end
for i = 5, #ARGV do
  local doc = cjson.decode(ARGV[i])
  local existing = false
  local request_key
  if doc.request_id and doc.request_id ~= '' then
    request_key = PREFIX .. 'request:' .. tenant .. ':' .. doc.request_id
    existing = redis.call('GET', request_key)
  end
  if existing and redis.call('EXISTS', job_key(existing)) == 1 then
    out[#out + 1] = existing
    out[#out + 1] = 0
    -- A replayed job is not part of this batch.
    if bkey then redis.call('HINCRBY', bkey, 'total', -1) redis.call('HINCRBY', bkey, 'remaining', -1) end
  else
    local id = doc.id
    local seq = redis.call('INCR', PREFIX .. 'seq')
    local fields = {'status', 'pending', 'created_at', now, 'seq', seq, 'attempt', 0, 'fence', 0}
    for k, v in pairs(doc.fields) do
      fields[#fields + 1] = k
      fields[#fields + 1] = v
    end
    redis.call('HSET', job_key(id), unpack(fields))
    redis.call('ZADD', index_key(tenant, 'all'), seq, id)
    redis.call('ZADD', index_key(tenant, 'status:pending'), seq, id)
    redis.call('ZADD', index_key(tenant, 'type:' .. doc.type), seq, id)
    count({type = doc.type, tenant = tenant}, 'pending', 1)
    if request_key then redis.call('SET', request_key, id, 'PX', request_ttl) end
    if bkey then redis.call('ZADD', bkey .. ':jobs', seq, id) end
    commit(id, now, {})
    enqueue(id, doc.priority, seq)
    out[#out + 1] = id
    out[#out + 1] = 1
  end
end
return out
