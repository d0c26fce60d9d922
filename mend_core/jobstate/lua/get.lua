-- Reads a job, and while it is pending what its queue estimate needs, in one round trip.
-- ARGV: prefix, id, tenant. Returns nil when the job is missing or another tenant's;
-- {fields} when it is not pending; else {fields, position (0-based place in the
-- partition's claim order, -1 when not queued), queued (in the partition), due_ms or '',
-- now ms, running {type, started_at, ...}, ahead {{count, mix}, ...}, stats}: `ahead`
-- groups the partition's jobs that will be claimed before this one by tenant, each with its
-- tenant's stats hash (whose `<type>:pending` counts give the mix of types), or, when few
-- jobs are ahead, their types in claim order {{'exact', type, ...}}; `stats` holds
-- `<type>:avg_ms`. The caller adds the other partitions and the live workers; or, on a
-- single Redis, gives ARGV[4] = the oldest registration (ms) of a live worker, KEYS[2] = the
-- workers registry and KEYS[3..] = the other partitions' TURNS: a pending job's reply then
-- ends with {live workers, queued in each of those partitions}. Elsewhere (a cluster) the
-- caller may give ARGV[4..] = the other partitions' queue lengths as it last knew them, so
-- that a job with many queued ahead elsewhere is described by groups, not by the type of
-- each job ahead (which the caller would turn into groups anyway).
if #KEYS == 1 then
  local others = nil
  if #ARGV > 3 then
    others = {}
    for i = 4, #ARGV do others[#others + 1] = tonumber(ARGV[i]) end
  end
  return read_job(ARGV[2], ARGV[3], others)
end
local others = {}
for i = 3, #KEYS do others[#others + 1] = redis.call('ZCARD', KEYS[i]) end
local out = read_job(ARGV[2], ARGV[3], others)
if out and #out > 1 then
  out[#out + 1] = {redis.call('ZCOUNT', KEYS[2], ARGV[4], '+inf'), unpack(others)}
end
return out
