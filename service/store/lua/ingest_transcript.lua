-- Append every turn not stored before, then close the session: one atomic step with exactly
-- the rules of /ingest and /session/close. ARGV[2..]: (fingerprint, turn, turn_ms) per message.
-- Returns {stored count, status, entry id or '', generation, stale session members...}.
local stored = 0
for i = 2, #ARGV, 3 do
  stored = stored + append_turn(ARGV[i], ARGV[i + 1], ARGV[i + 2])[1]
end
local closed = close_session()
local result = {stored, closed[1], closed[2], closed[3]}
for _, member in ipairs(stale_sessions()) do table.insert(result, member) end
return result
