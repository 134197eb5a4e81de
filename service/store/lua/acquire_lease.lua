-- A user's lease, and its fencing token: a number that grows with every acquisition, so that a
-- write can tell a stale holder from the current one (service/graph/fencing.py). It is Redis's
-- clock in microseconds, kept strictly above the last token handed out for the user, so it also
-- says when the lease was taken. A leased user's score in the due index is moved to the lease's
-- expiry: other janitors skip the user while it is being worked, and take it over if the holder
-- dies. `steal` (a user's deletion) takes the lease from whoever holds it.
-- K: lease, fence, due; A: token, ttl_ms, user_ref, steal ('1'|''), fence_ttl_ms
-- Returns the token as a decimal string, or false when another holds the lease.
if A.steal == '' then
  if not redis.call('SET', K.lease, A.token, 'NX', 'PX', A.ttl_ms) then return false end
else
  redis.call('SET', K.lease, A.token, 'PX', A.ttl_ms)
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local last = tonumber(redis.call('GET', K.fence) or '0')
local fence = string.format('%.0f', math.max(last + 1, now_ms * 1000))
redis.call('SET', K.fence, fence, 'PX', A.fence_ttl_ms)
redis.call('ZADD', K.due, 'XX', 'GT', now_ms + tonumber(A.ttl_ms), A.user_ref)
return fence
