-- What the rolling summariser folds in next, read in one step: the user's incarnation, the
-- absolute position of the pending list's head, up to `batch` pending turns and the summary.
-- K: pending, profile; A: batch. Returns {life, head_seq, summary|false, turns...}.
local profile = redis.call('HMGET', K.profile, PROFILE.life, PROFILE.summarySeq, PROFILE.summary)
local length = redis.call('LLEN', K.pending)
local head = tonumber(profile[2] or '0') - length
local out = {profile[1] or '', tostring(head), profile[3] or false}
for _, turn in ipairs(redis.call('LRANGE', K.pending, 0, tonumber(A.batch) - 1)) do
  out[#out + 1] = turn
end
return out
