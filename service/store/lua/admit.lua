-- Token bucket for requests per second, then the daily turn quota; Redis's own clock, so every
-- API replica shares one bucket. K: rate, quota (one tenant's)
-- A: rate, capacity, turns, turns_limit
-- Returns {allowed, which ('rate'|'turns'|''), remaining, wait_seconds}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(A.rate)
local capacity = tonumber(A.capacity)
local state = redis.call('HMGET', K.rate, RATE.tokens, RATE.ts)
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
if now > ts then tokens = math.min(capacity, tokens + (now - ts) * rate / 1000) end
if tokens < 1 then
  redis.call('HSET', K.rate, RATE.tokens, tostring(tokens), RATE.ts, math.max(now, ts))
  return {0, 'rate', 0, math.ceil((1 - tokens) / rate)}
end
tokens = tokens - 1
redis.call('HSET', K.rate, RATE.tokens, tostring(tokens), RATE.ts, math.max(now, ts))
redis.call('PEXPIRE', K.rate, math.ceil(capacity / rate * 1000) + 1000)
local turns = tonumber(A.turns)
if turns == 0 then return {1, '', math.floor(tokens), 0} end
-- The day's count lives in one hash with the day it counts, so no key is named per day.
local seconds = tonumber(t[1])
local day = math.floor(seconds / 86400)
local until_midnight = 86400 - seconds % 86400
local limit = tonumber(A.turns_limit)
local quota = redis.call('HMGET', K.quota, RATE.day, RATE.used)
local used = 0
if tonumber(quota[1]) == day then used = tonumber(quota[2] or '0') end
if used + turns > limit then return {0, 'turns', math.max(0, limit - used), until_midnight} end
used = used + turns
redis.call('HSET', K.quota, RATE.day, day, RATE.used, used)
redis.call('EXPIRE', K.quota, until_midnight + 3600)
return {1, '', limit - used, 0}
