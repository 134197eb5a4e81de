-- K: lease, due; A: token, at_ms, user_ref. Only the holder reschedules its user.
if redis.call('GET', K.lease) ~= A.token then return 0 end
redis.call('ZADD', K.due, A.at_ms, A.user_ref)
return 1
