--[[ begin.lua: start the sync of one email: pending -> in flight, minus what is confirmed.

KEYS[1] contact HASH   KEYS[2] leases ZSET   KEYS[3] due ZSET   KEYS[4] stats HASH
KEYS[5] lease tokens HASH (email -> token)
ARGV[1] email   ARGV[2] lease token   ARGV[3] lease length (ms)   ARGV[4] confirmed TTL (ms, 0 = keep)

Hash layout (values and stamps: _layout.lua): p:<code> pending, f:<code> in flight,
c:<code> confirmed; m:n merged pending events, m:fn merged in-flight events, m:attempt
failed attempts so far, m:since ms of the first attempt, m:known 1 once ActiveCampaign
confirmed this contact, m:id its ActiveCampaign id once known, m:begun the lease token
that began sending (cleared by finish.lua).
The lease token itself lives in KEYS[5], not in the hash: claim.lua can then hand out
leases without touching contact hashes it could not declare.

Guarantees: only the lease holder proceeds, and only once per token (so a crashed attempt's
request is never overtaken under the same lease); the lease is renewed; pending merges into
what a dead worker may have left in flight (the later stamp wins); attributes equal to the
confirmed value are dropped, and so is the email of a known contact. If nothing is left the
sync completes here as `unchanged`, with no request.
Returns {'stale'} | {'unchanged', merged} |
        {'send', merged, attempt, known, since_ms, now_ms, contact id or '', attr1, value1, ...}.
]]
local key, email, token = KEYS[1], ARGV[1], ARGV[2]
if redis.call('HGET', KEYS[5], email) ~= token then return {'stale'} end
-- A token that already began is a redelivered task whose first run died mid-sync (Celery
-- requeues it at once: task_reject_on_worker_lost). That request may still be in flight at
-- the API, so a second one now could overtake it; the email is sent again when the lease
-- runs out (claim.lua), as after any crash.
if redis.call('HGET', key, 'm:begun') == token then return {'stale'} end
local now = now_ms()
redis.call('ZADD', KEYS[2], 'XX', now + tonumber(ARGV[3]), email)

local fields = redis.call('HGETALL', key)
local h = {}
for n = 1, #fields, 2 do h[fields[n]] = fields[n + 1] end

-- Collect first: adding keys to a Lua table while pairs() walks it is undefined behaviour.
local pending = {}
for name, stored in pairs(h) do
  if string.sub(name, 1, 2) == 'p:' then pending[#pending + 1] = {string.sub(name, 3), stored} end
end
for _, item in ipairs(pending) do
  local code, stored = item[1], item[2]
  local current = h['f:' .. code]
  if current == nil or later(stamp_of(stored), stamp_of(current)) then
    h['f:' .. code] = stored
    redis.call('HSET', key, 'f:' .. code, stored)
  end
  redis.call('HDEL', key, 'p:' .. code)
end
local merged = tonumber(h['m:fn'] or '0') + tonumber(h['m:n'] or '0')
redis.call('HSET', key, 'm:fn', merged)
redis.call('HDEL', key, 'm:n')

local known = h['m:known'] or '0'
local send = {}
for name, stored in pairs(h) do
  if string.sub(name, 1, 2) == 'f:' then
    local code = string.sub(name, 3)
    local confirmed = h['c:' .. code]
    if code == 'e' and known == '1' then
      redis.call('HDEL', key, name)
    elseif confirmed and same_value(code, value_of(confirmed), value_of(stored)) then
      -- Already confirmed: keep the later stamp so older events stay ignored.
      if later(stamp_of(stored), stamp_of(confirmed)) then
        redis.call('HSET', key, 'c:' .. code, stored)
      end
      redis.call('HDEL', key, name)
    else
      send[#send + 1] = attribute_name(code)
      send[#send + 1] = code == 'e' and email or value_of(stored)
    end
  end
end

if #send == 0 then
  redis.call('HDEL', key, 'm:fn', 'm:attempt', 'm:since')
  redis.call('ZREM', KEYS[2], email)
  redis.call('HDEL', KEYS[5], email)
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
local result = {'send', merged, tonumber(h['m:attempt'] or '0') + 1, known, since, now,
  h['m:id'] or ''}
for _, item in ipairs(send) do result[#result + 1] = item end
return result
