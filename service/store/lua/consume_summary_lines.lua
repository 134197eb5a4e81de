-- Write the new summary and drop exactly the turns it folded in, unless the user was deleted
-- (and perhaps came back) since they were read: then the summary is of data that no longer
-- exists, and nothing is written. Turns trimmed meanwhile by the backlog cap are not dropped
-- twice: positions are absolute (the profile's summarySeq counts every pending turn ever).
-- K: pending, profile; A: life, consumed_until_seq, summary, name|''
local profile = redis.call('HMGET', K.profile, PROFILE.life, PROFILE.summarySeq)
if A.life == '' or profile[1] ~= A.life then return 0 end
local head = tonumber(profile[2] or '0') - redis.call('LLEN', K.pending)
local drop = tonumber(A.consumed_until_seq) - head
if drop > 0 then redis.call('LTRIM', K.pending, drop, -1) end
redis.call('HSET', K.profile, PROFILE.summary, A.summary)
if A.name ~= '' then redis.call('HSET', K.profile, PROFILE.name, A.name) end
return 1
