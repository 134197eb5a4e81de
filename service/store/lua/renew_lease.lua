-- K: lease, due; A: token, ttl_ms, user_ref. Returns 1 while the lease is still held.
if redis.call('GET', K.lease) ~= A.token then return 0 end
redis.call('PEXPIRE', K.lease, A.ttl_ms)
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', K.due, 'XX', 'GT', now_ms + tonumber(A.ttl_ms), A.user_ref)
return 1
