--[[ claim.lua: hand out leases on emails whose sync is due.

KEYS[1] due ZSET   KEYS[2] leases ZSET   KEYS[3] claims counter STRING
ARGV[1] key prefix of contact hashes ("<prefix>:contact:")
ARGV[2] most leases that may exist at once (the rate budget for the near future)
ARGV[3] lease length (ms)

Guarantees: an email is in at most one of due and leases; a claimed email carries a fresh
lease token in its hash (never reused: the claims counter is part of it), so only the
holder of that token may complete its sync. Leases whose time has run out (a worker died
mid-sync) return to due first, so they are claimed again.
Returns {expired lease count, email1, token1, email2, token2, ...}.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prefix, budget, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])

local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, email in ipairs(expired) do
  redis.call('ZREM', KEYS[2], email)
  redis.call('HDEL', prefix .. email, 'm:lease')
  redis.call('ZADD', KEYS[1], now, email)
end

local result = {#expired}
local room = budget - redis.call('ZCARD', KEYS[2])
if room <= 0 then return result end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, room)
for _, email in ipairs(due) do
  -- A counter, not the time alone: an email claimed again within the same millisecond must
  -- not get its predecessor's token, or an old task would pass as holder.
  local token = now .. '-' .. redis.call('INCR', KEYS[3])
  redis.call('ZREM', KEYS[1], email)
  redis.call('ZADD', KEYS[2], now + lease, email)
  redis.call('HSET', prefix .. email, 'm:lease', token)
  result[#result + 1] = email
  result[#result + 1] = token
end
return result
