-- wrk script for `make bench`: POST /v1/projects with a fresh project name on every request.
--
-- Usage: wrk ... -s post_projects.lua URL -- TAG API_KEY
-- Names are unique per account, so a repeated name would measure the 409 path instead of a
-- create. Each name is "b<TAG>-<thread>-<counter>": TAG differs per wrk run (run.py passes the
-- round number), thread numbers differ per wrk thread and the counter per request, so no two
-- requests of one benchmark share a name. All parts are [a-z0-9-], within the 63-char limit.

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
   wrk.method = "POST"
   wrk.headers["Authorization"] = "Bearer " .. key
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   counter = counter + 1
   local body = string.format('{"name":"b%s-%d-%d"}', tag, thread_no, counter)
   return wrk.format(nil, nil, nil, body)
end
