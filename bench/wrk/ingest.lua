-- New people to ingest: arguments are a run name and a size. Size 1 posts one record per request
-- to /api/ingest; a larger size posts that many per request to /api/ingest/batch.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  run = args[1] or "run"
  size = tonumber(args[2] or "1")
  wrk.headers["Content-Type"] = "application/json"  -- beside the -H Authorization header
end

local function person()
  counter = counter + 1
  local who = string.format("%s-%d-%d", run, thread_id, counter)
  return string.format(
    '{"data": {"cookie": "bench-%s", "email": "bench-%s@example.com", "created_at": "03/10/2025 15:30", ' ..
    '"location": {"country": "India", "state": "Kerala"}, "demographics": {"age": 33, "gender": "Female"}, ' ..
    '"interests": ["Tech", "Travel"]}}', who, who)
end

request = function()
  if size == 1 then
    return wrk.format("POST", "/api/ingest", nil, person())
  end
  local items = {}
  for i = 1, size do
    items[i] = person()
  end
  return wrk.format("POST", "/api/ingest/batch", nil, '{"batch": [' .. table.concat(items, ",") .. ']}')
end
