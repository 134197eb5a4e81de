-- Forget sessions past their retention, unless one was reopened since it was listed.
-- K: sessions, then per session (meta, seen, recent) in `stale`; ARGV[2..]: their members.
-- Returns how many were forgotten.
local forgotten = 0
for i = 2, #ARGV do
  local base = (i - 2) * 3
  local meta = K.stale[base + 1]
  if redis.call('HGET', meta, SESSION.state) ~= 'open' then
    redis.call('DEL', meta, K.stale[base + 2], K.stale[base + 3])
    redis.call('ZREM', K.sessions, ARGV[i])
    forgotten = forgotten + 1
  end
end
return forgotten
