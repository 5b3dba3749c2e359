-- wrk script for tests/test_load.py: every response must be a complete /feed.xml of a known version.
-- args: a file of "ETAG LENGTH" lines, one per content version the test will publish.
local allowed = {}
local threads = {}
ok, bad = 0, 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    local etag, length = line:match("^(%S+) (%d+)$")
    allowed[etag] = tonumber(length)
  end
end

function response(status, headers, body)
  local etag = headers["etag"] or headers["ETag"]
  local expected = etag and allowed[etag]
  if status == 200 and expected == #body and body:sub(-7) == "</rss>\n" then
    ok = ok + 1
  else
    bad = bad + 1
    if bad <= 3 then
      io.stderr:write(string.format("bad response: status %d etag %s length %d\n", status, tostring(etag), #body))
    end
  end
end

function done(summary, latency, requests)
  local total_ok, total_bad = 0, 0
  for _, thread in ipairs(threads) do
    total_ok = total_ok + thread:get("ok")
    total_bad = total_bad + thread:get("bad")
  end
  io.write(string.format("checked ok=%d bad=%d\n", total_ok, total_bad))
end
