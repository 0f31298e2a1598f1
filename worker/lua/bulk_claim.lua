--[[ bulk_claim.lua: lease a batch of the due backlog for bulk import.

KEYS[1] due ZSET   KEYS[2] bulk leases ZSET   KEYS[3] lease tokens HASH   KEYS[4] claims counter
KEYS[5] bulk mode STRING   KEYS[6] batches ZSET (batch id -> next step due, ms)
KEYS[7] the new batch's HASH   KEYS[8] sync-only ZSET (email -> until, ms)
KEYS[9] bulk pause-until STRING (ms)
ARGV[1] due emails that start backlog mode   ARGV[2] most emails in a batch
ARGV[3] fewest emails in a batch   ARGV[4] how long an email must have been due (ms)
ARGV[5] lease length (ms)   ARGV[6] most batches at once   ARGV[7] the new batch's id
ARGV[8] how long backlog mode lasts without a new batch (ms)

Backlog mode starts when ARGV[1] emails are due, and lasts while at least ARGV[3] emails
have been due for ARGV[4] ms, or while batches wait for room or for a bulk pause to end: the whole backlog drains, its last partial batch included,
while the emails that just became due (live traffic) are left to the sync path, which
takes the newest first in backlog mode (claim.lua). Emails marked sync-only (something bulk
import cannot express, or it failed them) are skipped. A claimed email gets a lease token
exactly as in claim.lua, so the sync path cannot take it while its batch is in flight.
Returns {mode on (1/0), due count, batch id, email1, token1, ...} (no id: no batch).
]]
local now = now_ms()
local min_backlog, max_batch, min_batch = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local settled_ms, lease, max_batches = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])

redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now)
local due = redis.call('ZCOUNT', KEYS[1], '-inf', now)
if redis.call('EXISTS', KEYS[5]) == 0 and due < min_backlog then return {0, due} end
-- The most batches in flight, or bulk import paused: still backlog mode, so keep it on.
-- Left to expire, the sync path would take the whole backlog at the account's rate, leave
-- no request for the polls that finish the batches in flight, and never give it back.
if redis.call('ZCARD', KEYS[6]) >= max_batches
    or tonumber(redis.call('GET', KEYS[9]) or '0') > now then
  redis.call('SET', KEYS[5], '1', 'PX', ARGV[8])
  return {1, due}
end

local candidates = redis.call(
  'ZRANGEBYSCORE', KEYS[1], '-inf', now - settled_ms, 'LIMIT', 0, 2 * max_batch)
local picked = {}
for _, email in ipairs(candidates) do
  if #picked >= max_batch then break end
  if not redis.call('ZSCORE', KEYS[8], email) then picked[#picked + 1] = email end
end
if #picked < min_batch then
  redis.call('DEL', KEYS[5])  -- drained: the few left go through the sync path
  return {0, due}
end
redis.call('SET', KEYS[5], '1', 'PX', ARGV[8])

local result, members = {1, due, ARGV[7]}, {}
for _, email in ipairs(picked) do
  local token = now .. '-' .. redis.call('INCR', KEYS[4])
  redis.call('ZREM', KEYS[1], email)
  redis.call('ZADD', KEYS[2], now + lease, email)
  redis.call('HSET', KEYS[3], email, token)
  members[#members + 1] = {email, token}
  result[#result + 1] = email
  result[#result + 1] = token
end
redis.call('HSET', KEYS[7], 'state', 'claimed', 'created_ms', now, 'step', '0',
  'members', cjson.encode(members))
redis.call('ZADD', KEYS[6], now, ARGV[7])
return result
