-- The chunk's episode is in the graph: remember it, and book its cost to the user, in one step
-- that only the lease holder can take (a fenced-out janitor books nothing, even for a user
-- deleted meanwhile). cost is '' when the episode was already processed (nothing was spent).
-- K: lease, entry, episodes, usage, costs
-- A: token, chunks_done, episode_uuid, keep, llm_calls, input_tokens, output_tokens, cost,
--    costs_keep
if redis.call('GET', K.lease) ~= A.token then return 0 end
redis.call('HSET', K.entry, ENTRY.chunksDone, A.chunks_done)
local done = redis.call('HGET', K.entry, ENTRY.episodeUuids)
redis.call('HSET', K.entry, ENTRY.episodeUuids,
  done and (done .. ',' .. A.episode_uuid) or A.episode_uuid)
redis.call('RPUSH', K.episodes, A.episode_uuid)
redis.call('LTRIM', K.episodes, -tonumber(A.keep), -1)
if A.cost ~= '' then
  redis.call('HINCRBY', K.usage, USAGE.episodes, 1)
  redis.call('HINCRBY', K.usage, USAGE.llmCalls, A.llm_calls)
  redis.call('HINCRBY', K.usage, USAGE.inputTokens, A.input_tokens)
  redis.call('HINCRBY', K.usage, USAGE.outputTokens, A.output_tokens)
  redis.call('LPUSH', K.costs, A.cost)
  redis.call('LTRIM', K.costs, 0, tonumber(A.costs_keep) - 1)
end
return 1
