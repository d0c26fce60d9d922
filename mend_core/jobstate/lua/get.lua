-- Reads a job, and while it is pending what its queue estimate needs, in one round trip.
-- ARGV: prefix, id, tenant, worker liveness ms. Returns nil when the job is missing or
-- another tenant's; {fields} when it is not pending; else {fields, position (0-based
-- place in the claim order, -1 when not queued), queued, due_ms or '', live workers, now ms,
-- running {type, started_at, ...}, ahead {{count, mix}, ...}, stats}: `ahead` groups the
-- jobs that will be claimed before this one by tenant, each with its tenant's stats hash
-- (whose `<type>:pending` counts give the mix of types), or, when few jobs are ahead, their
-- types in claim order {{'exact', type, ...}}; `stats` holds `<type>:avg_ms`.
local MAX_TENANTS = 256  -- beyond this many queued tenants, one group with the global mix
local MAX_EXACT = 256  -- up to this many jobs ahead, their types one by one
local id, tenant, liveness = ARGV[2], ARGV[3], tonumber(ARGV[4])
local fields = redis.call('HGETALL', job_key(id))
local job = {}
for i = 1, #fields, 2 do job[fields[i]] = fields[i + 1] end
if job.tenant ~= tenant then return nil end
if job.status ~= 'pending' then return {fields} end
local now = now_ms()
local queued = redis.call('ZCARD', TURNS)
local position, my_turn, my_round, rank = -1, nil, nil, redis.call('ZRANK', queue_key(tenant), id)
if rank then
  my_round, my_turn = fair_state(tenant)
  my_turn = my_turn + rank
  position = redis.call('ZRANK', TURNS, turn_member(my_round, my_turn, tenant)) or -1
end

local running = {}
for _, rid in ipairs(redis.call('ZRANGE', INFLIGHT, 0, -1)) do
  local other = redis.call('HMGET', job_key(rid), 'type', 'started_at')
  if other[1] and other[2] then
    running[#running + 1] = other[1]
    running[#running + 1] = other[2]
  end
end

-- Each queued tenant (FAIR) with its round, its first turn, and how many of its turns
-- come before ours: those below our turn, and our turn itself when it joined the round
-- before us (our own tenant: our rank in its queue).
local function tenants_ahead()
  local out = {}
  local states = redis.call('HGETALL', FAIR)
  for i = 1, #states, 2 do
    local other = states[i]
    local round, first = string.match(states[i + 1], '^(%d+) (%d+)$')
    round, first = tonumber(round), tonumber(first)
    local before = nil
    if other == tenant and rank then
      before = rank
    elseif rank then
      before = my_turn - first + (round < my_round and 1 or 0)
    end
    out[#out + 1] = {other, round, first, before}
  end
  return out
end

local ahead = {}
if rank and position <= MAX_EXACT then
  -- Each tenant's first jobs, as many as it has turns before ours, in turn order.
  local turns = {}
  for _, t in ipairs(tenants_ahead()) do
    local other, round, first, count = t[1], t[2], t[3], t[4]
    if count > 0 then
      for j, qid in ipairs(redis.call('ZRANGE', queue_key(other), 0, count - 1)) do
        turns[#turns + 1] = {first + j - 1, round, redis.call('HGET', job_key(qid), 'type') or ''}
      end
    end
  end
  table.sort(turns, function(a, b) return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2]) end)
  local exact = {'exact'}
  for _, t in ipairs(turns) do exact[#exact + 1] = t[3] end
  ahead[1] = exact
elseif redis.call('HLEN', FAIR) > MAX_TENANTS then
  ahead[1] = {position >= 0 and position or queued, redis.call('HGETALL', STATS)}
else
  for _, t in ipairs(tenants_ahead()) do
    local other, before = t[1], t[4]
    local count = redis.call('ZCARD', queue_key(other))
    if before then count = math.max(0, math.min(count, before)) end
    if count > 0 then ahead[#ahead + 1] = {count, redis.call('HGETALL', tenant_stats_key(other))} end
  end
end
return {
  fields, position, queued,
  redis.call('ZSCORE', SCHEDULED, id) or '',
  redis.call('ZCOUNT', WORKERS, now - liveness, '+inf'),
  now, running, ahead, redis.call('HGETALL', STATS),
}
