-- An episode's LLM spending added to a tenant's totals, all fields or none.
-- K: usage; A: llm_calls, input_tokens, output_tokens
redis.call('HINCRBY', K.usage, USAGE.episodes, 1)
redis.call('HINCRBY', K.usage, USAGE.llmCalls, A.llm_calls)
redis.call('HINCRBY', K.usage, USAGE.inputTokens, A.input_tokens)
redis.call('HINCRBY', K.usage, USAGE.outputTokens, A.output_tokens)
return 1
