-- Every chunk of the entry is in the graph: drop it, and note the session generation flushed.
-- K: lease, outbox, entry, entry_turns, due, tenant_entries, meta
-- A: token, entry_id, user_ref, now_ms, generation
if redis.call('GET', K.lease) ~= A.token then return 0 end
redis.call('LREM', K.outbox, 1, A.entry_id)
redis.call('DEL', K.entry, K.entry_turns)
redis.call('ZREM', K.tenant_entries, A.entry_id)
if redis.call('EXISTS', K.meta) == 1 and
   tonumber(redis.call('HGET', K.meta, SESSION.flushedGeneration) or '0')
     < tonumber(A.generation) then
  redis.call('HSET', K.meta, SESSION.flushedGeneration, A.generation)
end
if redis.call('LLEN', K.outbox) == 0 then
  redis.call('ZREM', K.due, A.user_ref)
else
  -- Still leased: the holder goes on with the next entry, others wait for the lease's end.
  redis.call('ZADD', K.due, tonumber(A.now_ms) + redis.call('PTTL', K.lease), A.user_ref)
end
return 1
