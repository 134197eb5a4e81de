-- POST /brief for users the benchmark seeded (ten turns each, timezone remembered), round robin.
-- Args: tenant, number of seeded users.
local counter = 0
local tenant = "bench"
local users = 1000
local thread_index = 0
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  tenant = args[1] or tenant
  users = tonumber(args[2] or users)
  counter = thread_index * 7919
end

request = function()
  local user = counter % users
  counter = counter + 1
  local body = string.format(
    '{"tenantId":"%s","userId":"u-%d","sessionId":"s-%d","timezone":"Europe/Paris"}',
    tenant, user, user)
  return wrk.format("POST", "/brief", { ["Content-Type"] = "application/json" }, body)
end
