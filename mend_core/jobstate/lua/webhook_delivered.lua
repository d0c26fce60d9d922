-- A delivery that succeeded leaves the stream. ARGV: prefix, group, entry id.
redis.call('XACK', WEBHOOKS, ARGV[2], ARGV[3])
redis.call('XDEL', WEBHOOKS, ARGV[3])
return 1
