-- The circuit breaker of one tool, atomically on the Redis server: the same
-- state machine as src/breaker.rs (gate, success, failure, release, reset),
-- over the same JSON record, with the server's clock (TIME).
-- KEYS[1]: the record. ARGV: op, threshold, recovery_timeout, holder,
-- lease_ttl, now (empty: the server's TIME; tests pass a time).
-- Returns {result, record-json-or-empty}; numbers travel as strings.
local op, threshold, recovery = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local holder, lease_ttl = ARGV[4], tonumber(ARGV[5])
local now
if ARGV[6] ~= '' then
  now = tonumber(ARGV[6])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function none(x) return x == nil or x == cjson.null end
local raw = redis.call('GET', KEYS[1])
local r = {}
if raw then
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then r = v end
end
r.schema_version = r.schema_version or 1
r.state = r.state or 'closed'
r.failures = r.failures or 0
r.total_failures = r.total_failures or 0
local function save()
  redis.call('SET', KEYS[1], cjson.encode(r))
end
local function lease_live(l)
  return now >= l.granted_at - 1.0 and now < l.granted_at + l.ttl
end
local function remaining_open()
  local opened = 0
  if not none(r.opened_at) then opened = r.opened_at end
  local elapsed = now - opened
  if elapsed < -math.max(recovery, 1.0) then return 0 end
  return math.max(recovery - elapsed, 0)
end
if op == 'gate' then
  if r.state ~= 'open' then
    -- 'clean': a success would change nothing (the caller may skip it).
    if r.state == 'closed' and r.failures == 0 and none(r.probe) then
      return {'allow', 'clean'}
    end
    return {'allow', ''}
  end
  local left = remaining_open()
  if left > 0 then return {'reject', tostring(left)} end
  if not none(r.probe) and lease_live(r.probe) then
    return {'reject', tostring(math.max(r.probe.granted_at + r.probe.ttl - now, 0))}
  end
  r.probe = {holder = holder, granted_at = now, ttl = lease_ttl}
  save()
  return {'probe', ''}
elseif op == 'success' then
  if r.state == 'closed' and r.failures == 0 and none(r.probe) then
    return {'unchanged', cjson.encode(r)}
  end
  r.state = 'closed'; r.failures = 0; r.opened_at = cjson.null; r.probe = cjson.null
  save()
  return {'ok', cjson.encode(r)}
elseif op == 'failure' then
  r.failures = r.failures + 1
  r.total_failures = r.total_failures + 1
  r.last_failure = now
  r.probe = cjson.null
  if r.failures >= threshold then
    r.state = 'open'; r.opened_at = now
  end
  save()
  return {'ok', cjson.encode(r)}
elseif op == 'release' then
  if not none(r.probe) and r.probe.holder == holder then
    r.probe = cjson.null
    save()
  end
  return {'ok', ''}
elseif op == 'reset' then
  r.state = 'closed'; r.failures = 0; r.opened_at = cjson.null; r.probe = cjson.null
  save()
  return {'ok', ''}
elseif op == 'read' then
  return {'ok', cjson.encode(r)}
end
return redis.error_reply('unknown breaker op ' .. op)
