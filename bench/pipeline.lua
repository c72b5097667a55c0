-- wrk script for bench/run's pipelined mode: every write carries DEPTH requests
-- (default 16) for the URL's path, and wrk waits for all DEPTH answers before the next.
-- usage: wrk -s bench/pipeline.lua URL -- [DEPTH]

local batch

function init(args)
    local depth = tonumber(args[1]) or 16
    local one = wrk.format(nil, wrk.path)
    local parts = {}
    for i = 1, depth do
        parts[i] = one
    end
    batch = table.concat(parts)
end

function request()
    return batch
end
