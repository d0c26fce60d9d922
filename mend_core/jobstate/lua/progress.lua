-- Records a progress update of a running job. ARGV: prefix, id, fence, percent, message.
local id, fence = ARGV[2], ARGV[3]
local job = load(id)
if not held(job, fence) then return 0 end
commit(id, now_ms(), {'progress_percent', ARGV[4], 'progress_message', ARGV[5]})
return 1
