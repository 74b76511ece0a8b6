-- wrk script of the performance reference workload: each request is a
-- random one of the signed module URLs in the file named by the
-- REFERENCE_URLS environment variable (written by
-- `tenon loadtest --install-only --urls-out`), sent as a path and query
-- to the host wrk was started with.
local paths = {}

local function load()
  local file = os.getenv("REFERENCE_URLS")
  if not file then
    error("set REFERENCE_URLS to a file of signed URLs")
  end
  for line in io.lines(file) do
    local path = line:match("^https?://[^/]+(/.*)$")
    if path then
      paths[#paths + 1] = path
    end
  end
  if #paths == 0 then
    error("no URLs in " .. file)
  end
end

function init(args)
  load()
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
