--[[ ratelimit.lua: take one send slot from the account-wide sliding-window limiter.

KEYS[1] LIST of recent send times (ms, newest first)   KEYS[2] pause-until STRING (ms)
ARGV[1] requests allowed per window   ARGV[2] window (ms, including the jitter margin)

Uses the Redis server's clock, so hosts with skewed clocks still share one timeline.
Guarantees: no more than ARGV[1] slots are handed out in any window of ARGV[2] ms, and none
before the pause a 429 set has run out. Returns 0 when a slot was taken, else the ms to wait.
]]
local now = now_ms()
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > now then return pause - now end
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local oldest = redis.call('LINDEX', KEYS[1], limit - 1)
if oldest and now - tonumber(oldest) < window then
  return window - (now - tonumber(oldest))
end
redis.call('LPUSH', KEYS[1], now)
redis.call('LTRIM', KEYS[1], 0, limit - 1)
redis.call('PEXPIRE', KEYS[1], window * 2)
return 0
