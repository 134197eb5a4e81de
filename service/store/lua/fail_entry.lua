-- An attempt failed: retry later with exponential backoff (at least Retry-After), or, after
-- max_attempts, dead-letter the entry (out of the queue, kept and visible, re-drivable).
-- K: lease, entry, outbox, due, dead
-- A: token, entry_id, user_ref, now_ms, error, max_attempts, base_ms, cap_ms, retry_after_ms|''
if redis.call('GET', K.lease) ~= A.token then return {'lost', 0, 0} end
local attempts = redis.call('HINCRBY', K.entry, ENTRY.attempts, 1)
local now = tonumber(A.now_ms)
redis.call('HSET', K.entry, ENTRY.lastError, A.error, ENTRY.lastAttemptMs, A.now_ms)
if attempts >= tonumber(A.max_attempts) then
  redis.call('HSET', K.entry, ENTRY.state, 'dead', ENTRY.diedAtMs, A.now_ms)
  redis.call('LREM', K.outbox, 1, A.entry_id)
  redis.call('ZADD', K.dead, now, A.entry_id)
  if redis.call('LLEN', K.outbox) == 0 then
    redis.call('ZREM', K.due, A.user_ref)
  else
    redis.call('ZADD', K.due, now, A.user_ref)
  end
  return {'dead', attempts, now}
end
local delay = math.min(tonumber(A.base_ms) * 2 ^ (attempts - 1), tonumber(A.cap_ms))
if A.retry_after_ms ~= '' then delay = math.max(delay, tonumber(A.retry_after_ms)) end
local next_at = now + math.floor(delay)
redis.call('HSET', K.entry, ENTRY.state, 'retrying', ENTRY.nextAttemptMs, next_at)
redis.call('ZADD', K.due, next_at, A.user_ref)
return {'retrying', attempts, next_at}
