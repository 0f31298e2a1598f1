--[[ bulk_extend.lua: renew (or end) the leases a batch holds on its emails.

KEYS[1] bulk leases ZSET   KEYS[2] lease tokens HASH
ARGV[1] new lease length (ms; 0 ends the leases now, so claim.lua returns the emails to due)
ARGV[2..] email, token pairs

Only leases still held by the batch's token change. Returns how many did.
]]
local until_ms = now_ms() + tonumber(ARGV[1])
local renewed = 0
for n = 2, #ARGV, 2 do
  local email, token = ARGV[n], ARGV[n + 1]
  if redis.call('HGET', KEYS[2], email) == token then
    redis.call('ZADD', KEYS[1], 'XX', until_ms, email)
    renewed = renewed + 1
  end
end
return renewed
