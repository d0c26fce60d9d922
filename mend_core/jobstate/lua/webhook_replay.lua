-- Dead letters back into the delivery stream as fresh deliveries: the same fields and
-- delivery id, a new attempt budget. ARGV: prefix, then dead-letter ids. Returns the ids
-- replayed (an id that is not, or no longer, a dead letter is skipped).
local replayed = {}
for i = 2, #ARGV do
  local found = redis.call('XRANGE', DEAD_WEBHOOKS, ARGV[i], ARGV[i])
  if #found == 1 then
    local flat, fields = found[1][2], {}
    for j = 1, #flat, 2 do
      local name, value = flat[j], flat[j + 1]
      if name == 'attempt' then value = '1' end
      if name ~= 'error' then
        fields[#fields + 1] = name
        fields[#fields + 1] = value
      end
    end
    redis.call('XADD', WEBHOOKS, '*', unpack(fields))
    redis.call('XDEL', DEAD_WEBHOOKS, ARGV[i])
    replayed[#replayed + 1] = ARGV[i]
  end
end
return replayed
