-- bench/scale.lua: the wrk script of bench/scale.
--
--   wrk -t1 -c64 -d8s -s bench/scale.lua http://127.0.0.1:PORT -- PATHS_FILE [SEED]
--
-- PATHS_FILE holds one request path a line. init() reads it and formats one complete
-- request (GET, wrk's Host header, keep-alive) per line, so that request() only has to
-- pick one: every request is a GET for a line chosen uniformly at random. The same
-- machinery serves every run (a million distinct paths, or ten paths repeated a million
-- times), so the client does the same work per request whatever the server's table is.
-- SEED (default 1) makes the sequence of picks repeatable from run to run.

local requests = {}
local count = 0

function init(args)
   local file = args[1]
   if not file then
      error("bench/scale.lua needs a paths file: wrk ... -s bench/scale.lua URL -- FILE")
   end
   local f = assert(io.open(file, "r"))
   for line in f:lines() do
      if #line > 0 then
         count = count + 1
         requests[count] = wrk.format("GET", line)
      end
   end
   f:close()
   if count == 0 then
      error("bench/scale.lua: no paths in " .. file)
   end
   math.randomseed(tonumber(args[2] or "1"))
end

function request()
   return requests[math.random(count)]
end
