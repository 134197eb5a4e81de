-- What /brief needs, in one step. K: profile, sessions, buf, recent (of the asked session);
-- A: member ('' when the user has no session), n (working-memory turns).
-- Returns {profile fields, buffered turns, recent turns, fallback member or ''}: when the
-- session has no recent turns, the member of the user's most recent other session, whose turns
-- the caller reads next (a script reads only the keys it was given).
local profile = redis.call('HMGET', K.profile,
  PROFILE.timezone, PROFILE.name, PROFILE.summary, PROFILE.lastTurnMs)
local n = tonumber(A.n)
local buffered = 0
local turns = {}
if A.member ~= '' then
  buffered = redis.call('LLEN', K.buf)
  if n > 0 then turns = redis.call('LRANGE', K.recent, -n, -1) end
end
local fallback = ''
if #turns == 0 and n > 0 then
  for _, other in ipairs(redis.call('ZREVRANGE', K.sessions, 0, 1)) do
    if other ~= A.member then
      fallback = other
      break
    end
  end
end
return {profile, buffered, turns, fallback}
