--[[ ingest.lua: merge a batch of validated events and dead-letter the invalid ones.

KEYS[1]  events stream          KEYS[2] due ZSET        KEYS[3] leases ZSET
KEYS[4]  dead-letter stream     KEYS[5] stats HASH      KEYS[6] bulk leases ZSET
KEYS[7..] one contact HASH per email
ARGV[1]  consumer group         ARGV[2] debounce (ms)   ARGV[3] number of valid events V
then V times:  entry id, contact key index (into KEYS), email, stamp (_layout.lua),
               attribute count A, A pairs of attribute name and value (the email not among them)
then:          number of invalid entries I
then I times:  entry id, reason (invalid_event, unknown_destination), errors (JSON),
               raw entry (truncated), event id or ""
then:          number of rejected-attribute letters R
then R times:  email, reason, errors (JSON), attributes (JSON {name: [value, order key]}),
               event id
then:          most dead letters kept, oldest dead letter kept (age, ms)

Guarantees, atomically per batch:
- per attribute, last write wins by stamp (occurred_at, then stream position); an event
  older than what is pending, in flight or confirmed for an attribute changes nothing;
- the email itself is a change (p:e, so the contact gets created) only until ActiveCampaign
  knows the contact (m:known);
- the first change to an idle email is due `debounce` ms later; later changes never push it
  back; an email under lease, a sync's or a bulk batch's, is not scheduled (the lease's
  completion will do it), so a change never overtakes a batch in flight;
- every entry is acknowledged and deleted in the same step as its merge or dead letter,
  so an entry is never merged twice and never lost.
Returns {merged events, stale events, invalid entries}.
]]
local now = now_ms()
local group = ARGV[1]
local debounce = tonumber(ARGV[2])
local i = 3
local valid = tonumber(ARGV[i]); i = i + 1
local merged, stale = 0, 0

local function merge(key, code, stamp, value)
  local stored = redis.call('HMGET', key, 'p:' .. code, 'f:' .. code, 'c:' .. code)
  for n = 1, 3 do
    if stored[n] and not later(stamp, stamp_of(stored[n])) then return false end
  end
  redis.call('HSET', key, 'p:' .. code, stamp .. value)
  return true
end

for _ = 1, valid do
  local entry, key, email, stamp = ARGV[i], KEYS[tonumber(ARGV[i + 1])], ARGV[i + 2], ARGV[i + 3]
  local count = tonumber(ARGV[i + 4])
  i = i + 5
  local changed = false
  if redis.call('HEXISTS', key, 'm:known') == 0 then changed = merge(key, 'e', stamp, '') end
  for _ = 1, count do
    if merge(key, attribute_code(ARGV[i]), stamp, ARGV[i + 1]) then changed = true end
    i = i + 2
  end
  if changed then
    merged = merged + 1
    redis.call('HINCRBY', key, 'm:n', 1)
    redis.call('PERSIST', key)
    if not redis.call('ZSCORE', KEYS[3], email) and not redis.call('ZSCORE', KEYS[6], email) then
      redis.call('ZADD', KEYS[2], 'NX', now + debounce, email)
    end
  else
    stale = stale + 1
  end
  redis.call('XACK', KEYS[1], group, entry)
  redis.call('XDEL', KEYS[1], entry)
end

local invalid = tonumber(ARGV[i]); i = i + 1
for _ = 1, invalid do
  local entry, reason, errors, raw, event_id = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
    ARGV[i + 4]
  i = i + 5
  redis.call('XADD', KEYS[4], '*', 'reason', reason, 'errors', errors, 'raw', raw,
    'event_id', event_id, 'entry', entry, 'dead_at', now)
  redis.call('XACK', KEYS[1], group, entry)
  redis.call('XDEL', KEYS[1], entry)
end

-- Attributes the pump could not resolve (worker/resolve.py); the rest of their event was
-- merged above, in this same step, so none is lost and none is dead-lettered twice.
local rejected = tonumber(ARGV[i]); i = i + 1
for _ = 1, rejected do
  redis.call('XADD', KEYS[4], '*', 'reason', ARGV[i + 1], 'email', ARGV[i], 'errors', ARGV[i + 2],
    'attributes', ARGV[i + 3], 'event_id', ARGV[i + 4], 'dead_at', now)
  i = i + 5
end
if rejected > 0 then redis.call('HINCRBY', KEYS[5], 'dead_lettered', rejected) end

if invalid + rejected > 0 then
  trim_dead_letters(KEYS[4], KEYS[5], now, tonumber(ARGV[i]), tonumber(ARGV[i + 1]))
end

if merged + stale > 0 then redis.call('HINCRBY', KEYS[5], 'events_ingested', merged + stale) end
if stale > 0 then redis.call('HINCRBY', KEYS[5], 'events_stale', stale) end
if invalid > 0 then
  redis.call('HINCRBY', KEYS[5], 'events_invalid', invalid)
  redis.call('HINCRBY', KEYS[5], 'dead_lettered', invalid)
end
return {merged, stale, invalid}
