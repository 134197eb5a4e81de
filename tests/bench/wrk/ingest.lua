-- POST /ingest with a new turn every request (a unique messageId, so no request is a dedupe
-- hit), ten turns per session, one session per user: the shape of the janitor benchmark.
-- Args: tenant, nonce (unique per run, so a rerun on the same Redis never dedupes).
local counter = 0
local tenant = "bench"
local nonce = "0"
local thread_index = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  tenant = args[1] or tenant
  nonce = args[2] or nonce
end

local texts = {
  "Let's plan tomorrow. I need to book the dentist before Friday and call my sister.",
  "Sure. I will remind you about the dentist and your sister tomorrow morning.",
}
local roles = { "user", "assistant" }

request = function()
  local n = counter
  counter = counter + 1
  local user = math.floor(n / 10)
  local side = n % 2 + 1
  local body = string.format(
    '{"tenantId":"%s","userId":"u%s-%d-%d","personaId":"persona-1","sessionId":"s-%d",' ..
    '"role":"%s","text":"%s","timestamp":"2026-02-03T18:%02d:%02dZ","messageId":"m-%s-%d-%d"}',
    tenant, nonce, thread_index, user, user, roles[side], texts[side], math.floor(n % 600 / 10),
    n % 60, nonce, thread_index, n)
  return wrk.format("POST", "/ingest", { ["Content-Type"] = "application/json" }, body)
end
