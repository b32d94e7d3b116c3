-- wrk script for `manage.py bench_feed` (config/devtools/bench/feed/wrk.py).
--
-- Usage: wrk -t T -c C -d Ds -s rotate.lua URL -- LIST OFFSET T REPORT
--   LIST    the request list: one request per line, tab-separated:
--           METHOD <tab> PATH <tab> TOKEN (empty: no Authorization) [<tab> JSON BODY]
--   OFFSET  where in the list this run starts (a measured run starts after its warm-up's)
--   T       the thread count again: wrk does not tell a script how many threads it runs
--   REPORT  where done() writes its JSON
--
-- Thread k takes entries OFFSET+k, OFFSET+k+T, ... and its connections take them in turn, so
-- no two requests of a run share an entry until the whole list has been used (then it wraps).
-- Each thread counts response statuses; done() collects them with thread:get.

local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

-- Per-thread globals (thread:get reads globals only).
statuses = {}
report_path = nil
local list = {}
local index, step = 0, 1

function init(args)
   local path, offset, nthreads = args[1], tonumber(args[2]), tonumber(args[3])
   report_path = args[4]
   for line in io.lines(path) do
      local method, target, token, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]*)\t?(.*)$")
      if method == nil then
         error("bad request line: " .. line)
      end
      -- Production serves https behind a proxy; DEBUG=0 redirects plain http without this.
      local headers = { ["X-Forwarded-Proto"] = "https" }
      if token ~= "" then
         headers["Authorization"] = "Bearer " .. token
      end
      if body == "" then
         body = nil
      else
         headers["Content-Type"] = "application/json"
      end
      list[#list + 1] = wrk.format(method, target, headers, body)
   end
   if #list == 0 then
      error("empty request list: " .. path)
   end
   step = nthreads
   index = offset + tid
end

function request()
   local r = list[(index % #list) + 1]
   index = index + step
   return r
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local counts, non_2xx = {}, 0
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(counts) do
      parts[#parts + 1] = string.format('"%d": %d', status, n)
      if status < 200 or status > 299 then
         non_2xx = non_2xx + n
      end
   end
   local e = summary.errors
   local ms = function(us) return us / 1000.0 end
   local out = assert(io.open(threads[1]:get("report_path"), "w"))
   out:write(string.format(
      '{"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, "statuses": {%s}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_ms": {"p50": %.3f, "p90": %.3f, "p99": %.3f, "mean": %.3f, "max": %.3f}}\n',
      summary.requests, summary.duration, summary.bytes, non_2xx, table.concat(parts, ", "),
      e.connect, e.read, e.write, e.status, e.timeout,
      ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
      ms(latency.mean), ms(latency.max)))
   out:close()
end
