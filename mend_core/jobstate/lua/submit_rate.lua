-- A tenant's submit rate: a token bucket of `burst` tokens, refilled at `rate` per second,
-- kept in the tenant's home partition; each job submitted takes one. Runs before the
-- submit (in the job's own partition, which may be another), which gives back what it did
-- not use (a refused submit, replays). ARGV: prefix, tenant, jobs (negative: give back),
-- rate per s, burst. Returns {0} when taken (or given back), or {burst, retry after ms (-1:
-- never, the request alone is over the limit)} when refused, taking nothing.
local tenant, jobs, rate, burst = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
if jobs > burst then return {burst, -1} end
local now = now_ms()
local key = submit_rate_key(tenant)
local bucket = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
tokens = math.min(burst, tokens + (now - (tonumber(bucket[2]) or now)) * rate / 1000)
if tokens < jobs then return {burst, math.ceil((jobs - tokens) * 1000 / rate)} end
redis.call('HSET', key, 'tokens', tostring(math.min(burst, tokens - jobs)), 'at', now)
-- A full bucket is the same as none.
redis.call('PEXPIRE', key, math.ceil(burst * 1000 / rate) + 1000)
return {0}
