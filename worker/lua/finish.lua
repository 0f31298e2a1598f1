--[[ finish.lua: complete one sync attempt as success, retry or dead letter.

KEYS[1] contact HASH   KEYS[2] leases ZSET   KEYS[3] due ZSET   KEYS[4] dead-letter stream
KEYS[5] stats HASH   KEYS[6] lease tokens HASH (email -> token)
ARGV[1] email   ARGV[2] lease token   ARGV[3] outcome: 'success' | 'retry' | 'dead'
ARGV[4] retry delay (ms)   ARGV[5] count this as a failed attempt (1/0)
ARGV[6] confirmed TTL (ms, 0 = keep)
ARGV[7] dead-letter reason   ARGV[8] HTTP status or ""   ARGV[9] errors (JSON)
ARGV[10] stats counter to increment ("" for none)
ARGV[11] most dead letters kept   ARGV[12] oldest dead letter kept (age, ms)
ARGV[13] the contact's ActiveCampaign id, if this attempt learned it ("" otherwise)
ARGV[14] count N, then N attribute names that ActiveCampaign confirmed before the attempt
         ended otherwise (a partial failure: the sync succeeded, one tag call did not)

Guarantees: only the lease holder completes (a stale holder changes nothing). Success moves
in-flight values to confirmed; so do the named attributes of a partial failure, before the
outcome applies to the rest, so a retry sends only what is left. Retry merges in-flight values back under any newer pending
change, so nothing is lost and nothing newer is overwritten. Dead moves them to a dead letter.
Changes that arrived while in flight are due at once: at most one request per email is in
flight, and a follow-up sync sends them. Returns 'stale' or the outcome.
]]
local key, email, token, outcome = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[6], email) ~= token then return 'stale' end
local now = now_ms()

local fields = redis.call('HGETALL', key)
local h = {}
for n = 1, #fields, 2 do h[fields[n]] = fields[n + 1] end

local inflight = {}
for name, stored in pairs(h) do
  if string.sub(name, 1, 2) == 'f:' then
    inflight[string.sub(name, 3)] = stored
    redis.call('HDEL', key, name)
  end
end

redis.call('HDEL', key, 'm:begun')
redis.call('ZREM', KEYS[2], email)
redis.call('HDEL', KEYS[6], email)

local function confirm(code, stored)
  local confirmed = h['c:' .. code]
  if code ~= 'e' and (confirmed == nil or later(stamp_of(stored), stamp_of(confirmed))) then
    redis.call('HSET', key, 'c:' .. code, stored)
  end
end

if ARGV[13] ~= '' then redis.call('HSET', key, 'm:id', ARGV[13], 'm:known', 1) end
for n = 15, 14 + tonumber(ARGV[14] or '0') do
  local code = attribute_code(ARGV[n])
  if inflight[code] then
    confirm(code, inflight[code])
    inflight[code] = nil
    if code == 'e' then redis.call('HSET', key, 'm:known', 1) end
  end
end

if outcome == 'retry' then
  for code, stored in pairs(inflight) do
    local pending = h['p:' .. code]
    if pending == nil or later(stamp_of(stored), stamp_of(pending)) then
      redis.call('HSET', key, 'p:' .. code, stored)
    end
  end
  redis.call('HINCRBY', key, 'm:n', tonumber(h['m:fn'] or '0'))
  redis.call('HDEL', key, 'm:fn')
  if ARGV[5] == '1' then redis.call('HINCRBY', key, 'm:attempt', 1) end
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), email)
else
  if outcome == 'success' then
    for code, stored in pairs(inflight) do confirm(code, stored) end
    redis.call('HSET', key, 'm:known', 1)
  else
    local attributes = {}
    for code, stored in pairs(inflight) do
      local value = code == 'e' and email or value_of(stored)
      attributes[attribute_name(code)] = {value, order_key(stamp_of(stored))}
    end
    redis.call('XADD', KEYS[4], '*', 'reason', ARGV[7], 'email', email, 'status', ARGV[8],
      'errors', ARGV[9], 'attributes', cjson.encode(attributes), 'attempts',
      tonumber(h['m:attempt'] or '0') + 1, 'first_attempt_at', h['m:since'] or now, 'dead_at', now)
    redis.call('HINCRBY', KEYS[5], 'dead_lettered', 1)
    trim_dead_letters(KEYS[4], KEYS[5], now, tonumber(ARGV[11]), tonumber(ARGV[12]))
  end
  redis.call('HDEL', key, 'm:fn', 'm:attempt', 'm:since')
  if redis.call('HEXISTS', key, 'm:n') == 1 then
    redis.call('ZADD', KEYS[3], now, email)
  else
    local ttl = tonumber(ARGV[6])
    if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
  end
end
if ARGV[10] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[10], 1) end
return outcome
