-- Moves retries that are due back into the delivery stream, where any dispatcher takes
-- them. ARGV: prefix, limit. Returns {moved, ms until the next retry is due or -1}.
local now = now_ms()
local due = redis.call('ZRANGEBYSCORE', WEBHOOK_RETRIES, '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, member in ipairs(due) do
  redis.call('ZREM', WEBHOOK_RETRIES, member)
  redis.call('XADD', WEBHOOKS, '*', unpack(cjson.decode(member)))
end
local next_due = redis.call('ZRANGE', WEBHOOK_RETRIES, 0, 0, 'WITHSCORES')
if #next_due == 0 then return {#due, -1} end
return {#due, math.max(0, tonumber(next_due[2]) - now)}
