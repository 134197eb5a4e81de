-- K: outbox, due; A: user_ref. Atomic, so a close cannot slip in between.
if redis.call('LLEN', K.outbox) == 0 then return redis.call('ZREM', K.due, A.user_ref) end
return 0
