-- Operators' "emit now": every queued entry of the user becomes due now. Entries acknowledged
-- since the caller listed them are skipped (an HSET would recreate a stub of them).
-- K: due, then the listed entries' hashes in `entries`; A: now_ms, user_ref
local touched = 0
for _, entry in ipairs(K.entries) do
  if redis.call('EXISTS', entry) == 1 then
    redis.call('HSET', entry, ENTRY.nextAttemptMs, A.now_ms)
    touched = touched + 1
  end
end
if touched > 0 then redis.call('ZADD', K.due, A.now_ms, A.user_ref) end
return touched
