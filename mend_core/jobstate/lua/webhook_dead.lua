-- A delivery that failed for good moves to the dead-letter stream, which is trimmed by
-- age only (entries older than ARGV[4] ms go, as failed jobs expire), never by count.
-- ARGV: prefix, group, entry id, retention_ms, then the dead letter's fields (flat).
-- Returns the dead letter's id, or 0 when the entry was no longer pending.
if redis.call('XACK', WEBHOOKS, ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('XDEL', WEBHOOKS, ARGV[3])
local oldest = math.max(0, now_ms() - tonumber(ARGV[4]))
return redis.call('XADD', DEAD_WEBHOOKS, 'MINID', string.format('%d', oldest), '*',
  unpack(ARGV, 5))
