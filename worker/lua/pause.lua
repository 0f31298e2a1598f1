--[[ pause.lua: stop every worker from sending until now + ARGV[1] ms (a 429's Retry-After).

KEYS[1] pause-until STRING (ms, Redis clock)   ARGV[1] pause length (ms)
Guarantees: a pause only ever grows; it never shortens one already in force.
Returns the pause-until time in ms.
]]
local now = now_ms()
local target = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= target then return current end
redis.call('SET', KEYS[1], target, 'PX', tonumber(ARGV[1]) + 1000)
return target
