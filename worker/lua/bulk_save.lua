--[[ bulk_save.lua: record a batch step's result, if the step still owns the batch.

KEYS[1] batches ZSET   KEYS[2] the batch's HASH
ARGV[1] batch id   ARGV[2] the step's token (its score when handed out)
ARGV[3] when the next step is due, ms from now (-1: the batch is done, delete it)
ARGV[4..] field, value pairs to set

Returns the step's new token (the batch's new score; 'done' once deleted), or 0 when another
step owns the batch now (this one was presumed dead).
]]
local id = ARGV[1]
local score = redis.call('ZSCORE', KEYS[1], id)
if not score or tonumber(score) ~= tonumber(ARGV[2]) then return 0 end
if tonumber(ARGV[3]) < 0 then
  redis.call('ZREM', KEYS[1], id)
  redis.call('DEL', KEYS[2])
  return 'done'
end
if #ARGV > 3 then redis.call('HSET', KEYS[2], unpack(ARGV, 4)) end
local token = now_ms() + tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], token, id)
return tostring(token)
