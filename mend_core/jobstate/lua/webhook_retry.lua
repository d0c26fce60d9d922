-- A failed delivery leaves the stream for WEBHOOK_RETRIES until its next attempt is due,
-- so no process holds it (pending) while it waits and a restart loses nothing.
-- ARGV: prefix, group, entry id, delay_ms, the next attempt's fields as a flat JSON array.
-- Returns 1, or 0 when the entry was no longer pending (another process settled it).
if redis.call('XACK', WEBHOOKS, ARGV[2], ARGV[3]) == 0 then return 0 end
redis.call('XDEL', WEBHOOKS, ARGV[3])
redis.call('ZADD', WEBHOOK_RETRIES, now_ms() + tonumber(ARGV[4]), ARGV[5])
return 1
