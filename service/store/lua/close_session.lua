-- Returns {status, entry id or '', generation, stale session members...}.
local result = close_session()
for _, member in ipairs(stale_sessions()) do table.insert(result, member) end
return result
