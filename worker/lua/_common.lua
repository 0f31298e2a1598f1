--[[ _common.lua: put in front of every script (worker/_lua.py). Redis scripts cannot
import one another, so what several of them share lives here.
]]

-- Milliseconds by the Redis server's clock: every host shares one timeline.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Bound the dead-letter stream after writing to it: at most `max_count` entries, none
-- older than `max_age_ms`. Exact trimming: dead letters are rare, so its cost is small,
-- and the bounds hold to the entry. Counts what was dropped in stats 'dead_trimmed'.
local function trim_dead_letters(dead, stats, now, max_count, max_age_ms)
  local trimmed = redis.call('XTRIM', dead, 'MAXLEN', max_count)
    + redis.call('XTRIM', dead, 'MINID', math.max(0, now - max_age_ms))
  if trimmed > 0 then redis.call('HINCRBY', stats, 'dead_trimmed', trimmed) end
end
