-- A user's whole Redis footprint, gone in one step (service/store/users.py lists it).
-- K: idle, due, dead, tenant_entries, then every key to delete in `doomed`
-- ARGV[2]: the user's ref; ARGV[3 .. 2 + A.sessions]: idle members; the rest: entry ids.
-- Returns how many keys were deleted. Commands take at most BATCH arguments at a time: Lua's
-- stack is bounded, and a user may have thousands of sessions.
local BATCH = 500
local function each_batch(list, first, last, fn)
  local i = first
  while i <= last do
    local j = math.min(i + BATCH - 1, last)
    fn({unpack(list, i, j)})
    i = j + 1
  end
end
local removed = 0
each_batch(K.doomed, 1, #K.doomed, function(keys)
  removed = removed + redis.call('DEL', unpack(keys))
end)
local sessions = tonumber(A.sessions)
each_batch(ARGV, 3, 2 + sessions, function(members)
  redis.call('ZREM', K.idle, unpack(members))
end)
each_batch(ARGV, 3 + sessions, #ARGV, function(ids)
  redis.call('ZREM', K.dead, unpack(ids))
  redis.call('ZREM', K.tenant_entries, unpack(ids))
end)
redis.call('ZREM', K.due, ARGV[2])
return removed
