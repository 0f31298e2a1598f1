--[[ migrate.lua: convert one contact hash from layout 1 (before 0.1.0) to layout 2 (_layout.lua).

KEYS[1] contact HASH
Layout 1 kept each value under <state>:<name> and its 39-digit decimal order key under
<state>t:<name> (state p, f or c; name email, firstName, lastName, phone or field:<id>),
the email's own value included, plus a claim counter m:claims.

Guarantees: idempotent; a hash already in layout 2 is left alone. Where both layouts hold a
value for the same state and attribute, the later stamp wins. A confirmed email becomes
nothing (m:known says the same). Returns the number of values converted.
]]
local key = KEYS[1]
local fields = redis.call('HGETALL', key)
local h = {}
for n = 1, #fields, 2 do h[fields[n]] = fields[n + 1] end

local function stamp_from(order)
  local occurred = math.min(tonumber(string.sub(order, 1, 16)), 9007199254740991)
  return struct.pack('>I7I6I4', occurred, tonumber(string.sub(order, 17, 29)),
    math.min(tonumber(string.sub(order, 30, 39)), 4294967295))
end

local converted = 0
for name, order in pairs(h) do
  local state, attr = string.match(name, '^([pfc])t:(.+)$')
  if state then
    local value, code = h[state .. ':' .. attr], attribute_code(attr)
    redis.call('HDEL', key, name, state .. ':' .. attr)
    if value and not (state == 'c' and code == 'e') then
      local stamp = stamp_from(order)
      local stored = stamp .. (code == 'e' and '' or value)
      local current = redis.call('HGET', key, state .. ':' .. code)
      if not current or later(stamp, stamp_of(current)) then
        redis.call('HSET', key, state .. ':' .. code, stored)
      end
    end
    converted = converted + 1
  end
end
redis.call('HDEL', key, 'm:claims')
return converted
