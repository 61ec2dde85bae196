-- wrk script for `make bench`: POST /v1/projects with a fresh project name and a fresh
-- Idempotency-Key on every request, as a careful client sends its writes.
--
-- Usage: wrk ... -s post_projects.lua URL -- TAG API_KEY
-- Names are unique per account, so a repeated name would measure the 409 path instead of a
-- create. Each name is "b<TAG>-<thread>-<counter>": TAG differs per wrk run (run.py passes the
-- round number), thread numbers differ per wrk thread and the counter per request, so no two
-- requests of one benchmark share a name. All parts are [a-z0-9-], within the 63-char limit.
-- The Idempotency-Key is the name with a per-process random prefix (keys live 24 h per
-- account, so a later benchmark on the same account must not replay this one's answers).

local threads = {}

function setup(thread)
   -- setup() runs in the main Lua state; thread:set() copies the number into the thread's own.
   table.insert(threads, thread)
   thread:set("thread_no", #threads)
end

function init(args)
   tag = args[1] or "0"
   local key = args[2]
   if key == nil or key == "" then
      error("post_projects.lua needs the API key as its second argument")
   end
   counter = 0
   math.randomseed(os.time() + thread_no)
   prefix = string.format("%08x", math.random(0, 0x7fffffff))
   wrk.method = "POST"
   wrk.headers["Authorization"] = "Bearer " .. key
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local name = string.format("b%s-%d-%d", tag, thread_no, counter)
   -- wrk.format takes the request's whole header table: the key joins wrk.headers' own.
   local headers = {["Idempotency-Key"] = prefix .. "-" .. name}
   for field, value in pairs(wrk.headers) do
      headers[field] = value
   end
   return wrk.format(nil, nil, headers, string.format('{"name":"%s"}', name))
end
