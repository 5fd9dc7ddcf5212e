-- POST a fixed JSON body on every request (keep-alive).
-- The body is read from the file named by the BENCH_BODY_FILE environment variable;
-- headers (Authorization, Content-Type) are passed on the wrk command line with -H.
local path = os.getenv("BENCH_BODY_FILE")
if path == nil then
  error("BENCH_BODY_FILE is not set")
end
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
