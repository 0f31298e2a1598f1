--[[ begin.lua: start the sync of one email: pending -> in flight, minus what is confirmed.

KEYS[1] contact HASH   KEYS[2] leases ZSET   KEYS[3] due ZSET   KEYS[4] stats HASH
ARGV[1] email   ARGV[2] lease token   ARGV[3] lease length (ms)   ARGV[4] confirmed TTL (ms, 0 = keep)

Hash layout: p:<attr>/pt:<attr> pending value/order key, f:/ft: in flight, c:/ct: confirmed;
m:n merged pending events, m:fn merged in-flight events, m:lease lease token, m:attempt failed attempts so far, m:since ms of the first attempt,
m:known 1 once ActiveCampaign confirmed this contact, m:claims claims so far (claim.lua),
m:begun the lease token that began sending (cleared by finish.lua).

Guarantees: only the lease holder proceeds, and only once per token (so a crashed attempt's
request is never overtaken under the same lease); the lease is renewed; pending merges into
what a dead worker may have left in flight (newer order key wins); attributes equal to the
confirmed value are dropped. If nothing is left the sync completes here as `unchanged`, with no request.
Returns {'stale'} | {'unchanged', merged} |
        {'send', merged, attempt, known, since_ms, now_ms, attr1, value1, ...}.
]]
local key, email, token = KEYS[1], ARGV[1], ARGV[2]
local lease = redis.call('HMGET', key, 'm:lease', 'm:begun')
if lease[1] ~= token then return {'stale'} end
-- A token that already began is a redelivered task whose first run died mid-sync (Celery
-- requeues it at once: task_reject_on_worker_lost). That request may still be in flight at
-- the API, so a second one now could overtake it; the email is sent again when the lease
-- runs out (claim.lua), as after any crash.
if lease[2] == token then return {'stale'} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), email)

local fields = redis.call('HGETALL', key)
local h = {}
for n = 1, #fields, 2 do h[fields[n]] = fields[n + 1] end

-- Collect first: adding keys to a Lua table while pairs() walks it is undefined behaviour.
local pending = {}
for name, value in pairs(h) do
  if string.sub(name, 1, 2) == 'p:' then pending[#pending + 1] = {string.sub(name, 3), value} end
end
for _, item in ipairs(pending) do
  local attr, value = item[1], item[2]
  local order = h['pt:' .. attr]
  local current = h['ft:' .. attr]
  if current == nil or order > current then
    h['f:' .. attr], h['ft:' .. attr] = value, order
    redis.call('HSET', key, 'f:' .. attr, value, 'ft:' .. attr, order)
  end
  redis.call('HDEL', key, 'p:' .. attr, 'pt:' .. attr)
end
local merged = tonumber(h['m:fn'] or '0') + tonumber(h['m:n'] or '0')
redis.call('HSET', key, 'm:fn', merged)
redis.call('HDEL', key, 'm:n')

local send = {}
for name, value in pairs(h) do
  if string.sub(name, 1, 2) == 'f:' then
    local attr = string.sub(name, 3)
    if h['c:' .. attr] == value then
      -- Already confirmed: remember the newer stamp so older events stay ignored.
      if h['ct:' .. attr] == nil or h['ft:' .. attr] > h['ct:' .. attr] then
        redis.call('HSET', key, 'ct:' .. attr, h['ft:' .. attr])
      end
      redis.call('HDEL', key, name, 'ft:' .. attr)
    else
      send[#send + 1] = attr
      send[#send + 1] = value
    end
  end
end

if #send == 0 then
  redis.call('HDEL', key, 'm:fn', 'm:lease', 'm:attempt', 'm:since')
  redis.call('ZREM', KEYS[2], email)
  redis.call('HINCRBY', KEYS[4], 'unchanged', 1)
  local ttl = tonumber(ARGV[4])
  if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  return {'unchanged', merged}
end

local since = h['m:since']
if since == nil then
  since = now
  redis.call('HSET', key, 'm:since', now)
end
redis.call('HSET', key, 'm:begun', token)
local result = {'send', merged, tonumber(h['m:attempt'] or '0') + 1, h['m:known'] or '0', since, now}
for _, item in ipairs(send) do result[#result + 1] = item end
return result
