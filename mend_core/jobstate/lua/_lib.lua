-- Shared by every Mend script; runs after the key names generated from
-- mend_core/jobstate/keys.py (TURNS, job_key(id), ..., on the key prefix in ARGV[1]).
-- Webhook deliveries are never trimmed by count: an entry leaves WEBHOOKS only once it was
-- delivered, scheduled for a retry or dead-lettered (see mend_core/jobstate/webhook_queue.py).
-- A job's event log is a list, one entry per version, oldest first, the last EVENTS_MAXLEN
-- of them (encoding.py; each commit trims it): a job with thousands of progress updates
-- keeps a bounded log. An entry holds what its version changed; the log's first entry, and
-- the entry of every version 1 + a multiple of EVENTS_SNAPSHOT_EVERY (encoding.py,
-- prepended to the scripts), holds the whole job, so that any retained state can be
-- rebuilt from at most that many entries. A finished job's log outlives its end by EVENTS_GRACE_MS: long enough
-- for a watcher to reconnect and resume; later, the job's hash answers with its final state.
local EVENTS_GRACE_MS = 60 * 1000
-- Per-minute throughput counters outlive the 15 minutes the dashboard shows by a margin.
local THROUGHPUT_TTL_MS = 20 * 60 * 1000
-- The weight of the newest job in a type's moving average of slot time (stats `<type>:avg_ms`).
local AVG_WEIGHT = 0.2

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Counts a job into (or, with -1, out of) a status, overall and for its tenant.
local function count(job, status, delta)
  redis.call('HINCRBY', STATS, job.type .. ':' .. status, delta)
  redis.call('HINCRBY', tenant_stats_key(job.tenant), job.type .. ':' .. status, delta)
end

-- Removes a job from the schedule, keeping its tenant's count of them right.
local function unschedule(job)
  if redis.call('ZREM', SCHEDULED, job.id) == 1 then
    redis.call('HINCRBY', tenant_stats_key(job.tenant), 'scheduled', -1)
  end
end

-- Puts a pending job in the schedule until due_ms (a retry's backoff, a delayed job's
-- run_at). The caller then wakes one worker's housekeeping (the global schedule wake list,
-- which a script of one partition may not touch), so that it sleeps until the earliest due
-- time rather than its usual interval.
local function schedule(id, tenant, due_ms)
  redis.call('ZADD', SCHEDULED, due_ms, id)
  redis.call('HINCRBY', tenant_stats_key(tenant), 'scheduled', 1)
end

-- The partition's next arrival number: the time since 2025 in units of 1/128 ms (7.8 µs,
-- finer than two submits one after the other), or one more than the last when that is not
-- below it. Unique and increasing within the partition, and creation order across the
-- partitions of one Redis (across a cluster's nodes, as close as their clocks), so that
-- ListJobs merges the partitions' indexes newest first by it; below 1e14 for 24 years.
local SEQ_EPOCH_MS = 1735689600000
local function next_seq()
  local t = redis.call('TIME')
  local tick = math.floor(((tonumber(t[1]) - SEQ_EPOCH_MS / 1000) * 1e6 + tonumber(t[2])) * 0.128)
  local seq = math.max(tonumber(redis.call('GET', SEQ) or 0) + 1, tick)
  redis.call('SET', SEQ, string.format('%d', seq))
  return seq
end

-- Priority 9 runs first; within a priority, arrival order (seq, below 1e14) decides.
local function queue_score(priority, seq)
  return (9 - tonumber(priority)) * 1e14 + tonumber(seq)
end

-- Fair queuing: each tenant has its own queue (priority, then arrival), and tenants take
-- turns. TURNS holds one entry per queued job, `<round>:<turn>:<tenant>` scored by turn:
-- a tenant's queued jobs hold its consecutive turns from the one in FAIR, its first job the
-- first of them. A claim takes the lowest turn (ties: the tenant that joined first, since
-- `<round>` is a zero-padded arrival number) and runs that tenant's first job. A tenant
-- whose queue was empty joins at the turn claimed last (CLOCK), behind the tenants already
-- there, or at its own next turn if it already had that one (so it cannot jump the line
-- by draining and refilling). A job's place in the claim order is the ZRANK of its
-- tenant's turn `first + its rank in the tenant's queue`: O(log n).
local function turn_member(round, turn, tenant)
  return string.format('%016d:%d:%s', round, turn, tenant)
end

-- The tenant's round and first turn, or nil when it has no queued jobs.
local function fair_state(tenant)
  local state = redis.call('HGET', FAIR, tenant)
  if not state then return nil end
  local round, first = string.match(state, '^(%d+) (%d+)$')
  return tonumber(round), tonumber(first)
end

-- The tenant's queue emptied: remember the turn it would have had next.
local function leave_turns(tenant, next_turn)
  redis.call('HDEL', FAIR, tenant)
  redis.call('HSET', tenant_stats_key(tenant), 'next_turn', next_turn)
end

-- Pushes n tokens (at most WAKE_MAXLEN) on a global wake list, given as one of the script's
-- extra KEYS: only on a single Redis (partitions.single_node); on a cluster the list is on
-- another node and the caller pushes.
local function wake(list, token, n)
  local tokens, total = {}, math.min(n, WAKE_MAXLEN)
  for i = 1, total do
    tokens[#tokens + 1] = token
    if #tokens == 1000 or i == total then  -- unpack's limit on the Lua stack
      redis.call('RPUSH', list, unpack(tokens))
      tokens = {}
    end
  end
  redis.call('LTRIM', list, -WAKE_MAXLEN, -1)
end

-- Queues a pending job. The caller then wakes an idle worker (a token naming the partition
-- on the global wake list; submit.lua can push it itself).
local function enqueue(id, priority, seq, tenant)
  local queue = queue_key(tenant)
  if redis.call('ZADD', queue, queue_score(priority, seq), id) == 0 then return end
  local queued = redis.call('ZCARD', queue)
  local round, first
  if queued == 1 then
    local clock = tonumber(redis.call('GET', CLOCK) or 0)
    local own = tonumber(redis.call('HGET', tenant_stats_key(tenant), 'next_turn') or 0)
    round, first = redis.call('INCR', ROUNDS), math.max(clock, own)
    redis.call('HSET', FAIR, tenant, round .. ' ' .. first)
  else
    round, first = fair_state(tenant)
  end
  local turn = first + queued - 1
  redis.call('ZADD', TURNS, turn, turn_member(round, turn, tenant))
end

-- Takes a queued job out of the queue (not claimed): its tenant gives up its last turn.
local function dequeue(tenant, id)
  local queue = queue_key(tenant)
  if redis.call('ZREM', queue, id) == 0 then return end
  local round, first = fair_state(tenant)
  local queued = redis.call('ZCARD', queue)
  redis.call('ZREM', TURNS, turn_member(round, first + queued, tenant))
  if queued == 0 then leave_turns(tenant, first) end
end

-- Moves a job between the per-tenant status indexes and the per-type counters.
local function move_status(job, from, to)
  local tenant, id = job.tenant, job.id
  redis.call('ZREM', index_key(tenant, 'status:' .. from), id)
  redis.call('ZADD', index_key(tenant, 'status:' .. to), job.seq, id)
  count(job, from, -1)
  count(job, to, 1)
end

-- The job hash stores its fields under short names (F, FULL_NAMES: encoding.py's FIELDS);
-- the scripts use the full names. A job's fields (HGETALL) by full name, with its id.
local function as_job(id, flat)
  local job = {id = id}
  for i = 1, #flat, 2 do job[FULL_NAMES[flat[i]] or flat[i]] = flat[i + 1] end
  return job
end

local function load(id)
  local flat = redis.call('HGETALL', job_key(id))
  if #flat == 0 then return nil end
  return as_job(id, flat)
end

-- Some fields of a job by full name (HMGET), under whichever names it was stored.
local function peek(id, names)
  local asked, n = {}, #names
  for i, name in ipairs(names) do
    asked[i] = F[name]
    asked[n + i] = name
  end
  local got = redis.call('HMGET', job_key(id), unpack(asked))
  local out = {}
  for i = 1, n do out[i] = got[i] or got[n + i] end
  return out
end

-- Full names -> stored names in a flat list of names and values (in place).
local function stored_names(flat)
  for i = 1, #flat, 2 do flat[i] = F[flat[i]] or flat[i] end
  return flat
end

-- A job stored under the full names (and an `id` field), by Mend before F, takes the
-- short names at its first change.
local function rename_fields(key)
  if redis.call('HEXISTS', key, 'tenant') == 0 then return end
  local flat, ttl = redis.call('HGETALL', key), redis.call('PTTL', key)
  local renamed = {}
  for i = 1, #flat, 2 do
    if flat[i] ~= 'id' then
      renamed[#renamed + 1] = F[flat[i]] or flat[i]
      renamed[#renamed + 1] = flat[i + 1]
    end
  end
  redis.call('DEL', key)
  redis.call('HSET', key, unpack(renamed))
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
end

-- Whether the job's log exists. A log of a job stored before the log was a list is a stream:
-- it goes, and the list starts over with the whole job.
local function has_log(log)
  local kind = redis.call('TYPE', log)['ok']
  if kind == 'list' then return true end
  if kind ~= 'none' then redis.call('DEL', log) end
  return false
end

-- Every change goes through here: bump the version, record the change in the job's event
-- log, and only then announce it (pub/sub is a wake-up, the log is the truth). An entry is
-- a JSON array `[<version>, name, value, ...]`: the fields set, as stored (stored names
-- too), and under `-` the names of those removed (space separated); or the whole job (see
-- EVENTS_SNAPSHOT_EVERY).
-- A list rather than a stream: Redis 7.0 gives every stream a 4 KB node up front, and a
-- list stays a few compact listpacks.
-- Returns the new version and the job's fields as recorded (HGETALL), for a caller to answer with.
local function commit(id, now, changes, removed)
  local key, log = job_key(id), events_key(id)
  rename_fields(key)
  local gone = {}
  for _, name in ipairs(removed or {}) do
    name = F[name] or name
    if redis.call('HDEL', key, name) == 1 then gone[#gone + 1] = name end
  end
  local version = redis.call('HINCRBY', key, F.version, 1)
  changes[#changes + 1] = 'updated_at'
  changes[#changes + 1] = now
  redis.call('HSET', key, unpack(stored_names(changes)))
  local fields = redis.call('HGETALL', key)
  local entry = {version}
  if not has_log(log) or version % EVENTS_SNAPSHOT_EVERY == 1 then
    for i = 1, #fields do entry[i + 1] = fields[i] end
  else
    local stored = {}  -- the values as the hash holds them (strings, whatever was given)
    for i = 1, #fields, 2 do stored[fields[i]] = fields[i + 1] end
    for i = 1, #changes, 2 do
      entry[#entry + 1] = changes[i]
      entry[#entry + 1] = stored[changes[i]]
    end
    if #gone > 0 then
      entry[#entry + 1] = '-'
      entry[#entry + 1] = table.concat(gone, ' ')
    end
  end
  redis.call('RPUSH', log, cjson.encode(entry))
  redis.call('LTRIM', log, -EVENTS_MAXLEN, -1)
  -- Nobody can watch a job before it exists: its first version wakes no one (on a cluster
  -- a SPUBLISH also travels to the shard's replicas).
  if version > 1 then redis.call('SPUBLISH', CHANGES, id .. ':' .. version) end
  return version, fields
end

-- A finished job: kept for its retention period, its log only for the grace after its end.
local function expire(id, ttl_ms)
  redis.call('PEXPIRE', job_key(id), ttl_ms)
  redis.call('PEXPIRE', events_key(id), math.min(ttl_ms, EVENTS_GRACE_MS))
end

-- A finished job -> gone (DeleteJob, PurgeJobs): its hash, event log, index entries,
-- request_id (if it still names this job), place in its batch's list, and its count.
local function remove(job)
  local id, tenant = job.id, job.tenant
  redis.call('DEL', job_key(id), events_key(id))
  redis.call('ZREM', index_key(tenant, 'all'), id)
  redis.call('ZREM', index_key(tenant, 'status:' .. job.status), id)
  redis.call('ZREM', index_key(tenant, 'type:' .. job.type), id)
  count(job, job.status, -1)
  if (job.request_id or '') ~= '' then
    local rkey = request_key(tenant, job.request_id)
    local stored = redis.call('GET', rkey)
    if stored and string.match(stored, '^%S+') == id then redis.call('DEL', rkey) end
  end
  if (job.batch_id or '') ~= '' then
    redis.call('ZREM', batch_jobs_key(tenant, job.batch_id), id)
  end
end

local function finished(job)
  return job.status == 'completed' or job.status == 'failed' or job.status == 'cancelled'
end

-- A worker may change a job only while it holds the lease: processing, same fence token.
local function held(job, fence)
  return job ~= nil and job.status == 'processing' and job.fence == fence
end

local function queue_webhook(event, url, style, fields)
  redis.call('XADD', WEBHOOKS, '*',
    'event', event, 'url', url, 'style', style ~= '' and style or 'default', unpack(fields))
end

-- Counts a finished job into its minute's throughput, overall and for its tenant: O(1)
-- per job, and the counters expire by themselves.
local function tally(job, status, now)
  local key = throughput_key(math.floor(now / 60000))
  redis.call('HINCRBY', key, status, 1)
  redis.call('HINCRBY', key, status .. ':' .. job.tenant, 1)
  redis.call('PEXPIRE', key, THROUGHPUT_TTL_MS)
end

local settle

-- pending | processing -> cancelled. Returns the job's fields as cancelled.
local function cancel(job, now, reason, ttl_ms)
  dequeue(job.tenant, job.id)
  unschedule(job)
  -- A running job's worker sees the change on its next heartbeat and stops.
  redis.call('ZREM', INFLIGHT, job.id)
  move_status(job, job.status, 'cancelled')
  local _, fields = commit(job.id, now,
    {'status', 'cancelled', 'error', reason, 'completed_at', now}, {'worker', 'scheduled_at'})
  expire(job.id, ttl_ms)
  settle(job, 'cancelled', now, ttl_ms)
  return fields
end

-- After every move to a terminal state: count completions and failures per minute, queue
-- the job's webhook, and settle its batch (fail_fast cancels the batch's unstarted jobs;
-- the last job queues batch.completed).
settle = function(job, status, now, ttl_ms)
  if status ~= 'cancelled' then tally(job, status, now) end
  if (job.webhook_url or '') ~= '' and status ~= 'cancelled' then
    queue_webhook('job.' .. status, job.webhook_url, job.webhook_style or '', {'job_id', job.id})
  end
  if (job.batch_id or '') == '' then return end
  local bkey = batch_key(job.tenant, job.batch_id)
  local bjobs = batch_jobs_key(job.tenant, job.batch_id)
  if redis.call('EXISTS', bkey) == 0 then return end
  local remaining = redis.call('HINCRBY', bkey, 'remaining', -1)
  redis.call('HINCRBY', bkey, status, 1)
  if status == 'failed' and redis.call('HGET', bkey, 'fail_fast') == '1' then
    local reason = 'cancelled: job ' .. job.id .. ' of batch ' .. job.batch_id .. ' failed (fail_fast)'
    local cancelled_any = false
    for _, sibling_id in ipairs(redis.call('ZRANGE', bjobs, 0, -1)) do
      local sibling = load(sibling_id)
      if sibling and sibling.status == 'pending' then
        cancel(sibling, now, reason, ttl_ms)
        cancelled_any = true
      end
    end
    -- The sibling whose cancellation finished the batch has already settled it.
    if cancelled_any then return end
  end
  if remaining == 0 then
    local url = redis.call('HGET', bkey, 'webhook_url')
    if url and url ~= '' then
      queue_webhook('batch.completed', url, redis.call('HGET', bkey, 'webhook_style') or '',
        {'batch_id', job.batch_id, 'tenant', job.tenant})
    end
    redis.call('PEXPIRE', bkey, ttl_ms)
    redis.call('PEXPIRE', bjobs, ttl_ms)
  end
end

-- Moves scheduled jobs that are due into the queue (at most `limit`); a delayed job's
-- scheduled_at goes, with a new version, so that its watchers see it queued. Returns the
-- number moved and the ms until the next one is due (-1: none is scheduled).
local function promote_due(now, limit)
  local promoted = 0
  for _, id in ipairs(redis.call('ZRANGE', SCHEDULED, '-inf', now, 'BYSCORE', 'LIMIT', 0, limit)) do
    local job = load(id)
    if job then unschedule(job) else redis.call('ZREM', SCHEDULED, id) end
    if job and job.status == 'pending' then
      if job.scheduled_at then commit(id, now, {}, {'scheduled_at'}) end
      enqueue(id, job.priority, job.seq, job.tenant)
      promoted = promoted + 1
    end
  end
  local next_due = redis.call('ZRANGE', SCHEDULED, 0, 0, 'WITHSCORES')
  if #next_due == 0 then return promoted, -1 end
  return promoted, math.max(0, tonumber(next_due[2]) - now)
end

-- Leases the job whose turn is next (pending -> processing) and returns its fields, or nil.
local function claim_next(worker, lease_ms)
  while true do
    local popped = redis.call('ZPOPMIN', TURNS)
    if #popped == 0 then return nil end
    local turn = tonumber(popped[2])
    local round, tenant = string.match(popped[1], '^(%d+):%d+:(.*)$')
    local queue = queue_key(tenant)
    local head = redis.call('ZPOPMIN', queue)
    redis.call('SET', CLOCK, turn)
    if redis.call('ZCARD', queue) == 0 then
      leave_turns(tenant, turn + 1)
    else
      redis.call('HSET', FAIR, tenant, round .. ' ' .. (turn + 1))
    end
    local id = head[1]
    local job = id and load(id)
    if job and job.status == 'pending' then
      local now = now_ms()
      redis.call('ZADD', INFLIGHT, now + lease_ms, id)
      move_status(job, 'pending', 'processing')
      local _, fields = commit(id, now, {
        'status', 'processing', 'attempt', tonumber(job.attempt) + 1,
        'fence', tonumber(job.fence) + 1, 'started_at', now, 'worker', worker,
      }, {'progress_percent', 'progress_message'})
      fields[#fields + 1] = 'id'  -- the caller knows no id: the job's key holds it
      fields[#fields + 1] = id
      return fields
    end
    -- Not pending any more (or expired): drop the stale queue entry and look further.
  end
end

-- Reads a job, and while it is pending what its queue estimate needs: GetJob (get.lua
-- describes the reply), and RetryJob's answer (requeue.lua).
local MAX_TENANTS = 256  -- beyond this many queued tenants, one group with the global mix
local MAX_EXACT = 256  -- up to this many jobs ahead, their types one by one

-- others: the other partitions' queue lengths when the caller knows them (get.lua on a
-- single Redis): the jobs they hold count as ahead up to as many as are ahead here (as
-- store.py's _read counts them), so the types are listed one by one only when few jobs are
-- ahead overall.
local function read_job(id, tenant, others)
  local fields = redis.call('HGETALL', job_key(id))
  local job = as_job(id, fields)
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
    local other = peek(rid, {'type', 'started_at'})
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

  local elsewhere = 0
  if others and position >= 0 then
    for _, n in ipairs(others) do elsewhere = elsewhere + math.min(n, position) end
  end

  local ahead = {}
  if rank and position + elsewhere <= MAX_EXACT then
    -- Each tenant's first jobs, as many as it has turns before ours, in turn order.
    local turns = {}
    for _, t in ipairs(tenants_ahead()) do
      local other, round, first, count = t[1], t[2], t[3], t[4]
      if count > 0 then
        for j, qid in ipairs(redis.call('ZRANGE', queue_key(other), 0, count - 1)) do
          turns[#turns + 1] = {first + j - 1, round, peek(qid, {'type'})[1] or ''}
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
      if count > 0 then
        ahead[#ahead + 1] = {count, redis.call('HGETALL', tenant_stats_key(other))}
      end
    end
  end
  return {
    fields, position, queued,
    redis.call('ZSCORE', SCHEDULED, id) or '',
    now, running, ahead, redis.call('HGETALL', STATS),
  }
end
