-- Reads a job's event log for WatchJob (store.py's events). ARGV: prefix, id, the version
-- to read from (a whole-job entry's: encoding.log_start), the version the caller has seen,
-- and how many entries at most. Returns {'log', {entry, ...}}: the entries from that
-- version on ({} when the log holds nothing after the version seen); or, when the log does
-- not reach back that far (it expired after the job's end, or was trimmed), {'job', fields}:
-- the job as it is now (HGETALL; {} when there is no job).
-- The log's entries are consecutive versions (commit appends one per version), so the
-- first entry's version places every other; a log shorter than EVENTS_MAXLEN was never
-- trimmed, and its first entry is the whole job.
local id, from, seen, count = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local log = events_key(id)
-- (An error: the log of a job stored before the log was a list, a stream; it cannot say.)
local head = redis.pcall('LINDEX', log, 0)
if type(head) == 'string' then
  local first = tonumber(string.match(head, '^%[(%d+)'))
  local length = redis.call('LLEN', log)
  if first + length - 1 <= seen then return {'log', {}} end
  if first <= from or length < EVENTS_MAXLEN then
    local start = math.max(from, first) - first
    return {'log', redis.call('LRANGE', log, start, start + count - 1)}
  end
end
return {'job', redis.call('HGETALL', job_key(id))}
