-- An operator re-drives a dead letter: back at the head of its user's queue, due now.
-- K: dead, entry, outbox, due; A: entry_id, user_ref, now_ms
if redis.call('ZREM', K.dead, A.entry_id) == 0 then return 0 end
redis.call('HSET', K.entry, ENTRY.state, 'pending', ENTRY.attempts, 0,
  ENTRY.nextAttemptMs, A.now_ms)
redis.call('LPUSH', K.outbox, A.entry_id)
redis.call('ZADD', K.due, A.now_ms, A.user_ref)
return 1
