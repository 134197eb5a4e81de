-- close_session(): move an open session's transcript into the user's outbox as a new entry.
-- K: meta, buf, sessions, idle, outbox, due, tenant_entries, entry, entry_turns
-- A: member, idle_member, user_ref, entry_id, now_ms, cutoff_ms ('' or the sweep's cutoff),
--    tenant, user, session, retention
-- Returns {status, entry id or '', generation}.
local function close_session()
  local state = redis.call('HGET', K.meta, SESSION.state)
  if not state then
    redis.call('ZREM', K.idle, A.idle_member)
    return {'unknown', '', '0'}
  end
  local generation = redis.call('HGET', K.meta, SESSION.generation) or '1'
  if state ~= 'open' then return {'already_closed', '', generation} end
  if A.cutoff_ms ~= '' then
    -- The sweep read the idle index earlier: a turn may have arrived since.
    local last = tonumber(redis.call('HGET', K.meta, SESSION.lastActivityMs) or '0')
    if last > tonumber(A.cutoff_ms) then return {'active', '', generation} end
  end
  redis.call('HSET', K.meta, SESSION.state, 'closed', SESSION.closedAtMs, A.now_ms)
  redis.call('ZREM', K.idle, A.idle_member)
  -- A closed session's keys expire after the retention; its turns live on in the outbox
  -- entry until the graph has them. The session index outlives every session it lists.
  redis.call('EXPIRE', K.meta, A.retention)
  local activity = redis.call('HGET', K.meta, SESSION.lastActivityMs) or A.now_ms
  redis.call('ZADD', K.sessions, activity, A.member)
  redis.call('EXPIRE', K.sessions, A.retention)
  local turns = redis.call('LLEN', K.buf)
  if turns == 0 then return {'empty', '', generation} end
  redis.call('RENAME', K.buf, K.entry_turns)
  redis.call('HSET', K.entry, ENTRY.tenantId, A.tenant, ENTRY.userId, A.user,
    ENTRY.sessionId, A.session, ENTRY.generation, generation,
    ENTRY.personaId, redis.call('HGET', K.meta, SESSION.personaId) or '',
    ENTRY.createdAtMs, A.now_ms, ENTRY.attempts, 0, ENTRY.state, 'pending',
    ENTRY.chunksDone, 0, ENTRY.turns, turns, ENTRY.nextAttemptMs, A.now_ms)
  redis.call('RPUSH', K.outbox, A.entry_id)
  redis.call('ZADD', K.due, 'NX', A.now_ms, A.user_ref)
  redis.call('ZADD', K.tenant_entries, A.now_ms, A.entry_id)
  return {'closed', A.entry_id, generation}
end

-- A few of the user's sessions last active before the retention: their keys expire on their
-- own, and the caller forgets them (forget_sessions) so the session index does not grow with
-- age. Read here, in the same step, because a script names only the keys it was given.
local function stale_sessions()
  local cutoff = tonumber(A.now_ms) - tonumber(A.retention) * 1000
  return redis.call('ZRANGEBYSCORE', K.sessions, '-inf', cutoff, 'LIMIT', 0, 8)
end
