-- All-or-nothing admission over several sliding windows, atomically on the
-- Redis server: the same arithmetic as src/ratelimit.rs (prune, check), with
-- the server's clock (TIME). Each KEYS[i] is a sorted set of admitted calls
-- scored by time. ARGV: window, now (empty: TIME), then capacity_i for each
-- key. Returns {allowed (1/0), index of the tightest or refusing key (1-based),
-- remaining, retry_after}; numbers travel as strings.
local window = tonumber(ARGV[1])
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function f(x) return string.format('%.17g', x) end
local allowed = 1
local tight, remaining, retry = 0, nil, 0
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[2 + i])
  -- Keep hits with now - t < window and t <= now + window.
  redis.call('ZREMRANGEBYSCORE', key, '-inf', f(now - window))
  redis.call('ZREMRANGEBYSCORE', key, '(' .. f(now + window), '+inf')
  local used = redis.call('ZCARD', key)
  if used < cap then
    local rem = cap - used - 1
    if remaining == nil or rem < remaining then
      remaining = rem; tight = i
    end
  else
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local wait = math.max(tonumber(oldest[2]) + window - now, 0)
    tight = i
    allowed = 0
    remaining = 0
    retry = math.max(retry, wait)
  end
end
if allowed == 1 then
  local seq = redis.call('INCR', 'gathm:ratelimit:seq')
  for _, key in ipairs(KEYS) do
    redis.call('ZADD', key, f(now), f(now) .. ':' .. seq)
    redis.call('PEXPIRE', key, math.ceil(window * 2000))
  end
end
return {tostring(allowed), tostring(tight), tostring(remaining or 0), f(retry)}
