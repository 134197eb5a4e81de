-- append_turn(fp, turn, turn_ms): record one turn in an open session, idempotently.
-- K: meta, buf, seen, recent, profile, sessions, pending, idle
-- A: member, idle_member, now_ms, persona, tenant, user, recent_cap, retention, summary_cap
-- Returns {stored (0|1), buffer size, turns waiting for the rolling summary}.
local function append_turn(fp, turn, turn_ms)
  if redis.call('SADD', K.seen, fp) == 0 then
    return {0, redis.call('LLEN', K.buf), 0}
  end
  if redis.call('HGET', K.meta, SESSION.state) ~= 'open' then
    -- A new session, or new turns after a close: both start a new generation, and an open
    -- session never expires (its turns are not in the outbox yet).
    redis.call('HINCRBY', K.meta, SESSION.generation, 1)
    redis.call('HSET', K.meta, SESSION.state, 'open', SESSION.openedAtMs, A.now_ms)
    redis.call('PERSIST', K.meta)
  end
  if A.persona ~= '' then redis.call('HSET', K.meta, SESSION.personaId, A.persona) end
  local size = redis.call('RPUSH', K.buf, turn)
  redis.call('RPUSH', K.recent, turn)
  redis.call('LTRIM', K.recent, -tonumber(A.recent_cap), -1)
  redis.call('HSET', K.meta, SESSION.lastActivityMs, A.now_ms)
  local pending = redis.call('RPUSH', K.pending, turn)
  redis.call('HINCRBY', K.profile, PROFILE.summarySeq, 1)
  if pending > tonumber(A.summary_cap) then
    redis.call('LTRIM', K.pending, -tonumber(A.summary_cap), -1)
  end
  local last_turn = tonumber(redis.call('HGET', K.profile, PROFILE.lastTurnMs) or '0')
  if tonumber(turn_ms) > last_turn then
    redis.call('HSET', K.profile, PROFILE.lastTurnMs, turn_ms)
  end
  -- This incarnation of the user: a write that read the profile before a deletion can tell.
  if redis.call('HEXISTS', K.profile, PROFILE.life) == 0 then
    local t = redis.call('TIME')
    redis.call('HSET', K.profile, PROFILE.life, t[1] .. '.' .. t[2])
  end
  redis.call('HSET', K.profile, PROFILE.tenantId, A.tenant, PROFILE.userId, A.user,
    PROFILE.lastActivityMs, A.now_ms)
  redis.call('ZADD', K.sessions, A.now_ms, A.member)
  redis.call('ZADD', K.idle, A.now_ms, A.idle_member)
  redis.call('EXPIRE', K.seen, A.retention)
  redis.call('EXPIRE', K.recent, A.retention)
  redis.call('EXPIRE', K.sessions, A.retention)
  return {1, size, pending}
end
