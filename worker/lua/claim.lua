--[[ claim.lua: hand out leases on emails whose sync is due.

KEYS[1] due ZSET   KEYS[2] leases ZSET (email -> lease end, ms)
KEYS[3] lease tokens HASH (email -> token)   KEYS[4] claims counter STRING
KEYS[5] rate-limiter pause-until STRING (ms)   KEYS[6] bulk mode STRING (bulk_claim.lua)
KEYS[7] bulk leases ZSET (email -> lease end, ms: emails in a bulk import batch)
ARGV[1] most leases that may exist at once (the rate budget for the near future)
ARGV[2] lease length (ms)   ARGV[3] how long an email must have been due to count as
backlog in backlog mode (ms)   ARGV[4] most sync leases on backlog emails in backlog mode

Every key it touches is declared, so the script is legal on Redis Cluster when the prefix
is a hash tag. Guarantees: an email is in at most one of due and leases; a claimed email
gets a fresh token (never reused: the claims counter is part of it), so only the holder
of that token may begin and complete its sync. Leases whose time has run out (a worker
died mid-sync) return to due first, so they are claimed again. While the limiter is
paused (a 429's Retry-After) nothing is claimed: a lease then could only wait or be
handed back, and handing back every 100 ms is how a long pause used to spin.
Returns {expired lease count, ms left of the pause (0 if none), email1, token1, ...}.
]]
local now = now_ms()
local budget, lease = tonumber(ARGV[1]), tonumber(ARGV[2])

local expired = 0
for _, leases in ipairs({KEYS[2], KEYS[7]}) do
  for _, email in ipairs(redis.call('ZRANGEBYSCORE', leases, '-inf', now)) do
    redis.call('ZREM', leases, email)
    redis.call('HDEL', KEYS[3], email)
    redis.call('ZADD', KEYS[1], now, email)
    expired = expired + 1
  end
end

local pause = tonumber(redis.call('GET', KEYS[5]) or '0')
if pause > now then return {expired, pause - now} end

local result = {expired, 0}
local held = redis.call('ZCARD', KEYS[2])
local room = budget - held
if room <= 0 then return result end
local due
if redis.call('EXISTS', KEYS[6]) == 1 then
  local settled = now - tonumber(ARGV[3])
  due = redis.call('ZREVRANGEBYSCORE', KEYS[1], now, '(' .. settled, 'LIMIT', 0, room)
  local backlog = math.min(room - #due, tonumber(ARGV[4]) - held)
  if backlog > 0 then
    local older = redis.call('ZREVRANGEBYSCORE', KEYS[1], settled, '-inf', 'LIMIT', 0, backlog)
    for _, email in ipairs(older) do due[#due + 1] = email end
  end
else
  due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, room)
end
for _, email in ipairs(due) do
  -- A counter, not the time alone: an email claimed again within the same millisecond must
  -- not get its predecessor's token, or an old task would pass as holder.
  local token = now .. '-' .. redis.call('INCR', KEYS[4])
  redis.call('ZREM', KEYS[1], email)
  redis.call('ZADD', KEYS[2], now + lease, email)
  redis.call('HSET', KEYS[3], email, token)
  result[#result + 1] = email
  result[#result + 1] = token
end
return result
