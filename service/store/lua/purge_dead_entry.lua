-- A dead letter past its retention: gone with its transcript. ZREM first, so an entry that an
-- operator re-drove meanwhile (it left the dead set) is never deleted.
-- K: dead, entry, entry_turns, tenant_entries; A: entry_id
if redis.call('ZREM', K.dead, A.entry_id) == 0 then return 0 end
redis.call('DEL', K.entry, K.entry_turns)
redis.call('ZREM', K.tenant_entries, A.entry_id)
return 1
