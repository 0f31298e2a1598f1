--[[ bulk_steps.lua: hand out the batches whose next step is due.

KEYS[1] batches ZSET (batch id -> next step due, ms)
ARGV[1] most batches to hand out   ARGV[2] how long a handed-out step may run (ms)

A step handed out is due again after ARGV[2] ms, so one whose worker died is handed out
again. Its new score is the step's token: bulk_save.lua refuses the writes of a step whose
token is no longer the batch's score (a worker that was presumed dead). Returns
{id1, token1, id2, token2, ...}.
]]
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local result, token = {}, now + tonumber(ARGV[2])
for _, id in ipairs(ids) do
  redis.call('ZADD', KEYS[1], token, id)
  result[#result + 1] = id
  result[#result + 1] = tostring(token)
end
return result
