"""Every Lua script the service runs, in one place.

Scripts are how multi-key changes stay atomic: a turn, a close or an acknowledgement is either
fully applied or not at all. Fragments are Lua functions so that /session/ingest can append a
whole transcript and close it in one script, with exactly the rules /ingest and /session/close
apply. Key names are built inside scripts from the prefixes passed in, so the deployment is a
single Redis primary (with replicas), not Redis Cluster.
"""

# append_turn(prefix, session_member, idle_member, fingerprint, turn, now_ms, turn_ms, persona,
#             tenant, user, recent_cap, retention_s, summary_cap) -> stored (0|1), buffer size,
#             turns waiting for the rolling summary
APPEND_TURN_FN = """
local function append_turn(prefix, member, idle_member, fp, turn, now_ms, turn_ms, persona,
                           tenant, user, recent_cap, retention, summary_cap)
  local meta = prefix .. ':s:' .. member
  local profile = prefix .. ':profile'
  local sessions = prefix .. ':sessions'
  if redis.call('SADD', meta .. ':seen', fp) == 0 then
    return {0, redis.call('LLEN', meta .. ':buf'), 0}
  end
  if redis.call('HGET', meta, 'state') ~= 'open' then
    -- A new session, or new turns after a close: both start a new generation, and an open
    -- session never expires (its turns are not in the outbox yet).
    redis.call('HINCRBY', meta, 'generation', 1)
    redis.call('HSET', meta, 'state', 'open', 'openedAtMs', now_ms)
    redis.call('PERSIST', meta)
  end
  if persona ~= '' then redis.call('HSET', meta, 'personaId', persona) end
  local size = redis.call('RPUSH', meta .. ':buf', turn)
  redis.call('RPUSH', meta .. ':recent', turn)
  redis.call('LTRIM', meta .. ':recent', -tonumber(recent_cap), -1)
  redis.call('HSET', meta, 'lastActivityMs', now_ms)
  local pending = redis.call('RPUSH', prefix .. ':summary_pending', turn)
  redis.call('HINCRBY', profile, 'summarySeq', 1)
  if pending > tonumber(summary_cap) then
    redis.call('LTRIM', prefix .. ':summary_pending', -tonumber(summary_cap), -1)
  end
  local last_turn = tonumber(redis.call('HGET', profile, 'lastTurnMs') or '0')
  if tonumber(turn_ms) > last_turn then redis.call('HSET', profile, 'lastTurnMs', turn_ms) end
  -- This incarnation of the user: a write that read the profile before a deletion can tell.
  if redis.call('HEXISTS', profile, 'life') == 0 then
    local t = redis.call('TIME')
    redis.call('HSET', profile, 'life', t[1] .. '.' .. t[2])
  end
  redis.call('HSET', profile, 'tenantId', tenant, 'userId', user, 'lastActivityMs', now_ms)
  redis.call('ZADD', sessions, now_ms, member)
  redis.call('ZADD', 'syn:idle', now_ms, idle_member)
  redis.call('EXPIRE', meta .. ':seen', retention)
  redis.call('EXPIRE', meta .. ':recent', retention)
  -- Forget a few of the user's closed sessions older than the retention (their keys expire
  -- on their own; this keeps the session index from growing with age).
  local cutoff = tonumber(now_ms) - tonumber(retention) * 1000
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', sessions, '-inf', cutoff, 'LIMIT', 0, 8)) do
    local old_meta = prefix .. ':s:' .. old
    if redis.call('HGET', old_meta, 'state') ~= 'open' then
      redis.call('DEL', old_meta, old_meta .. ':seen', old_meta .. ':recent')
      redis.call('ZREM', sessions, old)
    end
  end
  redis.call('EXPIRE', sessions, retention)
  return {1, size, pending}
end
"""

# close_session(prefix, session_member, idle_member, user_ref, entry_base, now_ms, cutoff_ms,
#               tenant, user, session, tenant_entries, retention_s) -> status, entry id or '',
#               generation
CLOSE_SESSION_FN = """
local function close_session(prefix, member, idle_member, user_ref, entry_base, now_ms,
                             cutoff_ms, tenant, user, session, tenant_entries, retention)
  local meta = prefix .. ':s:' .. member
  local state = redis.call('HGET', meta, 'state')
  if not state then
    redis.call('ZREM', 'syn:idle', idle_member)
    return {'unknown', '', '0'}
  end
  local generation = redis.call('HGET', meta, 'generation') or '1'
  if state ~= 'open' then return {'already_closed', '', generation} end
  if cutoff_ms ~= '' then
    -- The sweep read the idle index earlier: a turn may have arrived since.
    local last = tonumber(redis.call('HGET', meta, 'lastActivityMs') or '0')
    if last > tonumber(cutoff_ms) then return {'active', '', generation} end
  end
  redis.call('HSET', meta, 'state', 'closed', 'closedAtMs', now_ms)
  redis.call('ZREM', 'syn:idle', idle_member)
  -- A closed session's keys expire after the retention; its turns live on in the outbox
  -- entry until the graph has them. The session index outlives every session it lists.
  redis.call('EXPIRE', meta, retention)
  local sessions = prefix .. ':sessions'
  local activity = redis.call('HGET', meta, 'lastActivityMs') or now_ms
  redis.call('ZADD', sessions, activity, member)
  redis.call('EXPIRE', sessions, retention)
  local turns = redis.call('LLEN', meta .. ':buf')
  if turns == 0 then return {'empty', '', generation} end
  local id = entry_base .. ':' .. generation
  local entry = 'syn:ob:e:' .. id
  redis.call('RENAME', meta .. ':buf', entry .. ':turns')
  redis.call('HSET', entry, 'tenantId', tenant, 'userId', user, 'sessionId', session,
    'generation', generation, 'personaId', redis.call('HGET', meta, 'personaId') or '',
    'createdAtMs', now_ms, 'attempts', 0, 'state', 'pending', 'chunksDone', 0,
    'turns', turns, 'nextAttemptMs', now_ms)
  redis.call('RPUSH', prefix .. ':outbox', id)
  redis.call('ZADD', 'syn:ob:due', 'NX', now_ms, user_ref)
  redis.call('ZADD', tenant_entries, now_ms, id)
  return {'closed', id, generation}
end
"""

APPEND_TURN = (
    APPEND_TURN_FN
    + """
return append_turn(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
                   ARGV[9], ARGV[10], ARGV[11], ARGV[12], ARGV[13])
"""
)

CLOSE_SESSION = (
    CLOSE_SESSION_FN
    + """
return close_session(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8],
                     ARGV[9], ARGV[10], ARGV[11], ARGV[12])
"""
)

# ARGV: the 11 close arguments, recent_cap, retention_s, summary_cap, persona, then
# (fingerprint, turn, turn_ms) for every message. Returns stored count, then the close result.
INGEST_TRANSCRIPT = (
    APPEND_TURN_FN
    + CLOSE_SESSION_FN
    + """
local stored = 0
local i = 16
while i <= #ARGV do
  local result = append_turn(ARGV[1], ARGV[2], ARGV[3], ARGV[i], ARGV[i + 1], ARGV[6],
                             ARGV[i + 2], ARGV[15], ARGV[8], ARGV[9], ARGV[12], ARGV[13],
                             ARGV[14])
  stored = stored + result[1]
  i = i + 3
end
local closed = close_session(ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7],
                             ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[13])
return {stored, closed[1], closed[2], closed[3]}
"""
)

READ_BRIEF = """
-- ARGV: user_prefix, session_member ('' for none), turns
local prefix = ARGV[1]
local profile = redis.call('HMGET', prefix .. ':profile',
  'timezone', 'name', 'summary', 'lastTurnMs')
local n = tonumber(ARGV[3])
local member = ARGV[2]
if member == '' then
  member = redis.call('ZREVRANGE', prefix .. ':sessions', 0, 0)[1] or ''
end
local buffered = 0
local turns = {}
if member ~= '' then
  local session = prefix .. ':s:' .. member
  buffered = redis.call('LLEN', session .. ':buf')
  if n > 0 then turns = redis.call('LRANGE', session .. ':recent', -n, -1) end
end
if #turns == 0 and n > 0 then
  -- An empty or new session: continue from the user's most recent other session.
  for _, other in ipairs(redis.call('ZREVRANGE', prefix .. ':sessions', 0, 1)) do
    if other ~= member then
      turns = redis.call('LRANGE', prefix .. ':s:' .. other .. ':recent', -n, -1)
      break
    end
  end
end
return {profile, buffered, turns}
"""

# A user's lease, and its fencing token: a number that grows with every acquisition, so that a
# write can tell a stale holder from the current one (service/graph/fencing.py). It is Redis's
# clock in microseconds, kept strictly above the last token handed out for the user, so it also
# says when the lease was taken. A leased user's score in the due index is moved to the lease's
# expiry: other janitors skip the user while it is being worked, and take it over if the holder
# dies. `steal` (a user's deletion) takes the lease from whoever holds it.
# KEYS: lease, fence, due; ARGV: token, ttl_ms, user_ref, steal ('1'|''), fence_ttl_ms
# Returns the token as a decimal string, or false when another holds the lease.
ACQUIRE_LEASE = """
if ARGV[4] == '' then
  if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
else
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local fence = string.format('%.0f', math.max(last + 1, now_ms * 1000))
redis.call('SET', KEYS[2], fence, 'PX', ARGV[5])
redis.call('ZADD', KEYS[3], 'XX', 'GT', now_ms + tonumber(ARGV[2]), ARGV[3])
return fence
"""

# KEYS: lease, due; ARGV: token, ttl_ms, user_ref
RENEW_LEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[2], 'XX', 'GT', now_ms + tonumber(ARGV[2]), ARGV[3])
return 1
"""

# KEYS: lease, due; ARGV: token, at_ms, user_ref. Only the holder reschedules its user.
SCHEDULE_USER = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
"""

RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

SETTLE_IF_EMPTY = """
-- KEYS: user_outbox, due; ARGV: user_ref. Atomic, so a close cannot slip in between.
if redis.call('LLEN', KEYS[1]) == 0 then return redis.call('ZREM', KEYS[2], ARGV[1]) end
return 0
"""

# The chunk's episode is in the graph: remember it, and book its cost to the user, in one step
# that only the lease holder can take (a fenced-out janitor books nothing, even for a user
# deleted meanwhile). cost is '' when the episode was already processed (nothing was spent).
CHUNK_DONE = """
-- KEYS: lease, entry, user_episodes, user_usage, user_costs
-- ARGV: token, chunks_done, episode_uuid, keep, llm_calls, input_tokens, output_tokens, cost,
--       costs_keep
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], 'chunksDone', ARGV[2])
local done = redis.call('HGET', KEYS[2], 'episodeUuids')
redis.call('HSET', KEYS[2], 'episodeUuids', done and (done .. ',' .. ARGV[3]) or ARGV[3])
redis.call('RPUSH', KEYS[3], ARGV[3])
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[4]), -1)
if ARGV[8] ~= '' then
  redis.call('HINCRBY', KEYS[4], 'episodes', 1)
  redis.call('HINCRBY', KEYS[4], 'llmCalls', ARGV[5])
  redis.call('HINCRBY', KEYS[4], 'inputTokens', ARGV[6])
  redis.call('HINCRBY', KEYS[4], 'outputTokens', ARGV[7])
  redis.call('LPUSH', KEYS[5], ARGV[8])
  redis.call('LTRIM', KEYS[5], 0, tonumber(ARGV[9]) - 1)
end
return 1
"""

ACK_ENTRY = """
-- KEYS: lease, user_outbox, entry, entry_turns, due, tenant_entries, meta
-- ARGV: token, entry_id, user_ref, now_ms, generation
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('LREM', KEYS[2], 1, ARGV[2])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[6], ARGV[2])
if redis.call('EXISTS', KEYS[7]) == 1 and
   tonumber(redis.call('HGET', KEYS[7], 'flushedGeneration') or '0') < tonumber(ARGV[5]) then
  redis.call('HSET', KEYS[7], 'flushedGeneration', ARGV[5])
end
if redis.call('LLEN', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[5], ARGV[3])
else
  -- Still leased: the holder goes on with the next entry, others wait for the lease's end.
  redis.call('ZADD', KEYS[5], tonumber(ARGV[4]) + redis.call('PTTL', KEYS[1]), ARGV[3])
end
return 1
"""

FAIL_ENTRY = """
-- KEYS: lease, entry, user_outbox, due, dead
-- ARGV: token, entry_id, user_ref, now_ms, error, max_attempts, base_ms, cap_ms, retry_after_ms|''
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost', 0, 0} end
local attempts = redis.call('HINCRBY', KEYS[2], 'attempts', 1)
local now = tonumber(ARGV[4])
redis.call('HSET', KEYS[2], 'lastError', ARGV[5], 'lastAttemptMs', ARGV[4])
if attempts >= tonumber(ARGV[6]) then
  redis.call('HSET', KEYS[2], 'state', 'dead', 'diedAtMs', ARGV[4])
  redis.call('LREM', KEYS[3], 1, ARGV[2])
  redis.call('ZADD', KEYS[5], now, ARGV[2])
  if redis.call('LLEN', KEYS[3]) == 0 then
    redis.call('ZREM', KEYS[4], ARGV[3])
  else
    redis.call('ZADD', KEYS[4], now, ARGV[3])
  end
  return {'dead', attempts, now}
end
local delay = math.min(tonumber(ARGV[7]) * 2 ^ (attempts - 1), tonumber(ARGV[8]))
if ARGV[9] ~= '' then delay = math.max(delay, tonumber(ARGV[9])) end
local next_at = now + math.floor(delay)
redis.call('HSET', KEYS[2], 'state', 'retrying', 'nextAttemptMs', next_at)
redis.call('ZADD', KEYS[4], next_at, ARGV[3])
return {'retrying', attempts, next_at}
"""

# A dead letter past its retention: gone with its transcript. ZREM first, so an entry that an
# operator re-drove meanwhile (it left the dead set) is never deleted.
# KEYS: dead, entry, entry_turns, tenant_entries; ARGV: entry_id
PURGE_DEAD_ENTRY = """
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
return 1
"""

REDRIVE_ENTRY = """
-- KEYS: dead, entry, user_outbox, due; ARGV: entry_id, user_ref, now_ms
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'state', 'pending', 'attempts', 0, 'nextAttemptMs', ARGV[3])
redis.call('LPUSH', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
return 1
"""

# What the rolling summariser folds in next, read in one step: the user's incarnation, the
# absolute position of the pending list's head, up to `batch` pending turns and the summary.
# KEYS: pending, profile; ARGV: batch. Returns {life, head_seq, summary|false, turns...}.
READ_SUMMARY_INPUT = """
local profile = redis.call('HMGET', KEYS[2], 'life', 'summarySeq', 'summary')
local length = redis.call('LLEN', KEYS[1])
local head = tonumber(profile[2] or '0') - length
local out = {profile[1] or '', tostring(head), profile[3] or false}
for _, turn in ipairs(redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  out[#out + 1] = turn
end
return out
"""

# Write the new summary and drop exactly the turns it folded in, unless the user was deleted
# (and perhaps came back) since they were read: then the summary is of data that no longer
# exists, and nothing is written. Turns trimmed meanwhile by the backlog cap are not dropped
# twice: positions are absolute (the profile's summarySeq counts every pending turn ever).
# KEYS: pending, profile; ARGV: life, consumed_until_seq, summary, name|''
CONSUME_SUMMARY_LINES = """
local profile = redis.call('HMGET', KEYS[2], 'life', 'summarySeq')
if ARGV[1] == '' or profile[1] ~= ARGV[1] then return 0 end
local head = tonumber(profile[2] or '0') - redis.call('LLEN', KEYS[1])
local drop = tonumber(ARGV[2]) - head
if drop > 0 then redis.call('LTRIM', KEYS[1], drop, -1) end
redis.call('HSET', KEYS[2], 'summary', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'name', ARGV[4]) end
return 1
"""

ADMIT = """
-- Token bucket for requests per second, then the daily turn quota; Redis's own clock, so every
-- API replica shares one bucket. KEYS: bucket; ARGV: rate, capacity, turns, turns_limit,
-- turns_key_prefix. Returns {allowed, which ('rate'|'turns'|''), remaining, wait_seconds}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or capacity
local ts = tonumber(state[2]) or now
if now > ts then tokens = math.min(capacity, tokens + (now - ts) * rate / 1000) end
if tokens < 1 then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', math.max(now, ts))
  return {0, 'rate', 0, math.ceil((1 - tokens) / rate)}
end
tokens = tokens - 1
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', math.max(now, ts))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
local turns = tonumber(ARGV[3])
if turns == 0 then return {1, '', math.floor(tokens), 0} end
local seconds = tonumber(t[1])
local day_key = ARGV[5] .. math.floor(seconds / 86400)
local until_midnight = 86400 - seconds % 86400
local limit = tonumber(ARGV[4])
local used = tonumber(redis.call('GET', day_key) or '0')
if used + turns > limit then return {0, 'turns', math.max(0, limit - used), until_midnight} end
used = redis.call('INCRBY', day_key, turns)
redis.call('EXPIRE', day_key, until_midnight + 3600)
return {1, '', limit - used, 0}
"""
