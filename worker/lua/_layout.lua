--[[ _layout.lua: the contact hash's layout, put in front of ingest, begin, finish and migrate.

Fields: '<state>:<code>' = stamp .. value, with state p (pending), f (in flight) or
c (confirmed), and code the attribute's short name: e email, f firstName, l lastName,
p phone, a account, <id> field:<id>, L<id> list:<id>, #<name> tag:<name>. The email is
the hash's own key, so its value is never stored
and it is never confirmed: `m:known` says ActiveCampaign has the contact.

A stamp is the order of the event a value came from, 17 bytes big-endian (worker/stamp.py
builds them): occurred_at in µs (7 bytes), then the stream entry id's ms (6) and
sequence (4). Stamps are compared as numbers, never with Lua's `<` on strings, which
follows the server's locale (strcoll) and is not byte order.
]]
local STAMP_BYTES = 17
local CODES = {email = 'e', firstName = 'f', lastName = 'l', phone = 'p', account = 'a'}
local NAMES = {e = 'email', f = 'firstName', l = 'lastName', p = 'phone', a = 'account'}

-- field:<id> -> <id>, list:<id> -> L<id>, tag:<lower-case name> -> #<name>.
local function attribute_code(name)
  local code = CODES[name] or string.match(name, '^field:(%d+)$')
  if code then return code end
  local list = string.match(name, '^list:(%d+)$')
  if list then return 'L' .. list end
  local tag = string.match(name, '^tag:(.+)$')
  if tag then return '#' .. tag end
  error('contact-sync: no code for attribute ' .. name)
end

local function attribute_name(code)
  if NAMES[code] then return NAMES[code] end
  local kind = string.sub(code, 1, 1)
  if kind == 'L' then return 'list:' .. string.sub(code, 2) end
  if kind == '#' then return 'tag:' .. string.sub(code, 2) end
  return 'field:' .. code
end

-- Whether two values of one attribute mean the same to ActiveCampaign. A tag's value is
-- its flag (1 on, 0 off) and then its name as last written; only the flag counts.
local function same_value(code, a, b)
  if string.sub(code, 1, 1) == '#' then return string.sub(a, 1, 1) == string.sub(b, 1, 1) end
  return a == b
end

local function stamp_of(stored)
  return string.sub(stored, 1, STAMP_BYTES)
end

local function value_of(stored)
  return string.sub(stored, STAMP_BYTES + 1)
end

-- True when stamp `a` orders after stamp `b`; a missing `b` (nil or false) orders first.
local function later(a, b)
  if not b then return true end
  if a == b then return false end
  local a1, a2, a3 = struct.unpack('>I7I6I4', a)
  local b1, b2, b3 = struct.unpack('>I7I6I4', b)
  if a1 ~= b1 then return a1 > b1 end
  if a2 ~= b2 then return a2 > b2 end
  return a3 > b3
end

-- The 39-digit decimal order key dead letters carry (worker/stamp.py order_key).
local function order_key(stamp)
  local occurred, ms, seq = struct.unpack('>I7I6I4', stamp)
  return string.format('%016.0f%013.0f%010.0f', occurred, ms, seq)
end
