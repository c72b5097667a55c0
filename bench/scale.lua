-- bench/scale.lua: the wrk script of bench/scale.
--
--   wrk -t1 -c64 -d8s -s bench/scale.lua http://127.0.0.1:PORT -- PATHS_FILE [SEED [DEPTH]]
--
-- PATHS_FILE holds one request path a line. init() reads it and formats one complete
-- request (GET, wrk's Host header, keep-alive) per line, so that request() only has to
-- pick one: every request is a GET for a line chosen uniformly at random. The same
-- machinery serves every run (a million distinct paths, or ten paths repeated a million
-- times), so the client does the same work per request whatever the server's table is.
-- SEED (default 1) makes the sequence of picks repeatable from run to run.
--
-- DEPTH (default 1) > 1 pipelines: request() returns DEPTH requests in one string, each
-- line picked independently at random, and wrk writes them together and waits for all
-- DEPTH answers before the next write. wrk learns the depth by parsing what request()
-- returns once at start-up (every batch holds DEPTH requests), and counts every response,
-- so Requests/sec counts requests, not batches. The client's per-request cost is then
-- one random pick and a share of one write and one read, much less than one of each.

local requests = {}
local count = 0
local depth = 1
local picks = {}

function init(args)
   local file = args[1]
   if not file then
      error("bench/scale.lua needs a paths file: wrk ... -s bench/scale.lua URL -- FILE")
   end
   -- wrk.format() once, around a marker path, then only concatenation per line: the
   -- same bytes as wrk.format("GET", line), in half the time (a million lines take ~1 s).
   local marker = "/@PATH@"
   local head, tail = wrk.format("GET", marker):match("^(.-)/@PATH@(.*)$")
   local f = assert(io.open(file, "r"))
   for line in f:lines() do
      if #line > 0 then
         count = count + 1
         requests[count] = head .. line .. tail
      end
   end
   f:close()
   if count == 0 then
      error("bench/scale.lua: no paths in " .. file)
   end
   math.randomseed(tonumber(args[2] or "1"))
   depth = tonumber(args[3] or "1")
   if not depth or depth < 1 or depth ~= math.floor(depth) then
      error("bench/scale.lua: DEPTH must be a positive integer, got " .. tostring(args[3]))
   end
end

function request()
   if depth == 1 then
      return requests[math.random(count)]
   end
   for i = 1, depth do
      picks[i] = requests[math.random(count)]
   end
   return table.concat(picks)
end
