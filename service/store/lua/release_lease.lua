-- K: lease; A: token. Only the holder releases.
if redis.call('GET', K.lease) == A.token then return redis.call('DEL', K.lease) end
return 0
