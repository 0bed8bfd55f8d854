-- The job store's state changes (state/redis.rs), each one atomic on the
-- Redis server with the server's clock (TIME). ARGV[1] is the operation,
-- ARGV[2] the key prefix, ARGV[3] a fresh delivery id (used when a job with
-- a callback reaches a terminal state: its outbox entry is written in the
-- same script). Every change is a compare-and-set on the job's `status`
-- (and, for a worker, its fencing `token`). Numbers go back as strings
-- (Lua numbers would be truncated to integers).
--
-- Keys under the prefix P: `job:<id>` (hash, one field per column), `seq`
-- (submission counter: FIFO order), `all`, `own:<owner>`, `tool:<tool>`,
-- `st:<status>` (zsets by seq: listing and counts), `pending` (zset by seq:
-- the queue), `leases` (zset by lease deadline), `fin` (zset by
-- finished_at: the sweep), `idem:<len>:<owner>:<key>` (string: job id),
-- `ev:<id>` (list of event lines), `outbox` (zset by due time), `dead`
-- (zset: deliveries that gave up), `dlv:<id>` (hash).

-- ARGV[3] is also the request id: a call retried after an I/O error (same
-- id) gets the answer of the first one (kept a minute) instead of running
-- twice.

local op, P, DLV = ARGV[1], ARGV[2], ARGV[3]

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.6f', x) end
local function jk(id) return P .. 'job:' .. id end
local TERMINAL = { completed = true, failed = true, cancelled = true }

local function record(id)
  return redis.call('HGETALL', jk(id))
end

-- Move a job between status sets (and in or out of the queue and leases).
local function move(id, from, to)
  local k = jk(id)
  local seq = redis.call('HGET', k, 'seq')
  if from ~= to then
    redis.call('ZREM', P .. 'st:' .. from, id)
    redis.call('ZADD', P .. 'st:' .. to, seq, id)
    redis.call('HSET', k, 'status', to)
  end
  if to == 'pending' then
    redis.call('ZADD', P .. 'pending', seq, id)
  elseif from == 'pending' then
    redis.call('ZREM', P .. 'pending', id)
  end
  if from == 'running' and to ~= 'running' then
    redis.call('ZREM', P .. 'leases', id)
    redis.call('HDEL', k, 'lease')
  end
end

-- A job just reached a terminal state: finished_at, the sweep index, and
-- its callback in the outbox.
local function ended(id, t)
  local k = jk(id)
  redis.call('HSET', k, 'finished_at', fmt(t))
  redis.call('ZADD', P .. 'fin', t, id)
  local url = redis.call('HGET', k, 'callback_url')
  if url then
    redis.call('HSET', P .. 'dlv:' .. DLV, 'job', id, 'url', url, 'attempts', 0)
    redis.call('ZADD', P .. 'outbox', t, DLV)
  end
end

-- Set (pairs) then delete fields, from ARGV[i]: "<nset> <ndel> k v … k …".
local function apply(id, i)
  local k = jk(id)
  local nset, ndel = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  for _ = 1, nset do
    redis.call('HSET', k, ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  for _ = 1, ndel do
    redis.call('HDEL', k, ARGV[i])
    i = i + 1
  end
  return i
end

local function finish(t, id, token, status, i)
  local k = jk(id)
  if redis.call('HGET', k, 'status') ~= 'running' or redis.call('HGET', k, 'token') ~= token then
    return false
  end
  apply(id, i)
  move(id, 'running', status)
  ended(id, t)
  return true
end

-- Take the oldest pending job (a preferred tool's first, among the first 256).
local function claim(t, lease, prefer)
  local id = nil
  if #prefer > 0 then
    local want = {}
    for _, p in ipairs(prefer) do want[p] = true end
    for _, cand in ipairs(redis.call('ZRANGE', P .. 'pending', 0, 255)) do
      if want[redis.call('HGET', jk(cand), 'tool')] then
        id = cand
        break
      end
    end
  end
  while true do
    if not id then
      id = redis.call('ZRANGE', P .. 'pending', 0, 0)[1]
      if not id then return false end
    end
    if redis.call('HGET', jk(id), 'status') == 'pending' then break end
    redis.call('ZREM', P .. 'pending', id) -- stale entry
    id = nil
  end
  move(id, 'pending', 'running')
  local k = jk(id)
  local token = redis.call('HINCRBY', k, 'token', 1)
  redis.call('HSET', k, 'started_at', fmt(t), 'lease', fmt(t + lease), 'cancel', '0')
  redis.call('ZADD', P .. 'leases', t + lease, id)
  local out = { id, tostring(token), fmt(t + lease) }
  for _, v in ipairs(record(id)) do out[#out + 1] = v end
  return out
end

local function rest(from)
  local out = {}
  for i = from, #ARGV do out[#out + 1] = ARGV[i] end
  return out
end

local function run()
  if op == 'now' then
    return fmt(now())
  elseif op == 'submit' then
    -- id owner tool status idem_key ttl nset ndel pairs…
    local t = now()
    local id, owner, tool, status, key, ttl = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
    local ik = P .. 'idem:' .. string.len(owner) .. ':' .. owner .. ':' .. key
    if key ~= '' then
      local old = redis.call('GET', ik)
      if old then
        local c = redis.call('HGET', jk(old), 'created_at')
        if c and tonumber(c) >= t - ttl then return { 'existing', old } end
      end
    end
    local seq = redis.call('INCR', P .. 'seq')
    apply(id, 10)
    redis.call('HSET', jk(id), 'created_at', fmt(t), 'seq', seq, 'token', 0, 'status', status)
    redis.call('ZADD', P .. 'all', seq, id)
    redis.call('ZADD', P .. 'own:' .. owner, seq, id)
    redis.call('ZADD', P .. 'tool:' .. tool, seq, id)
    redis.call('ZADD', P .. 'st:' .. status, seq, id)
    if status == 'pending' then redis.call('ZADD', P .. 'pending', seq, id) end
    if key ~= '' then
      redis.call('SET', ik, id, 'EX', math.max(1, math.ceil(ttl)))
    end
    return { 'new', fmt(t) }
  elseif op == 'claim' then
    -- lease prefer…
    return claim(now(), tonumber(ARGV[4]), rest(5))
  elseif op == 'heartbeat' then
    -- id token lease
    local t, id = now(), ARGV[4]
    local k = jk(id)
    if redis.call('HGET', k, 'status') ~= 'running' or redis.call('HGET', k, 'token') ~= ARGV[5] then
      return '0'
    end
    local until_ = t + tonumber(ARGV[6])
    redis.call('HSET', k, 'lease', fmt(until_))
    redis.call('ZADD', P .. 'leases', until_, id)
    return '1'
  elseif op == 'finish' then
    -- id token status claim(0/1) lease nprefer prefer… nset ndel pairs…
    local t, id = now(), ARGV[4]
    local np = tonumber(ARGV[9])
    local prefer = {}
    for i = 1, np do prefer[i] = ARGV[9 + i] end
    local done = finish(t, id, ARGV[5], ARGV[6], 10 + np)
    local out = { done and 'done' or 'superseded' }
    if done then
      for _, v in ipairs(record(id)) do out[#out + 1] = v end
    end
    local c = false
    if ARGV[7] == '1' then c = claim(t, tonumber(ARGV[8]), prefer) end
    return { out, c or {} }
  elseif op == 'transition' then
    -- id to ends(0/1) nfrom from… nset ndel pairs…
    local t, id, to = now(), ARGV[4], ARGV[5]
    local s = redis.call('HGET', jk(id), 'status')
    local nfrom = tonumber(ARGV[7])
    local ok = false
    for i = 1, nfrom do
      if ARGV[7 + i] == s then ok = true end
    end
    if not s or not ok then return false end
    apply(id, 8 + nfrom)
    move(id, s, to)
    if ARGV[6] == '1' then ended(id, t) end
    return record(id)
  elseif op == 'cancel' then
    local t, id = now(), ARGV[4]
    local s = redis.call('HGET', jk(id), 'status')
    if not s then return { 'notfound' } end
    local kind
    if TERMINAL[s] then
      kind = 'terminal'
    elseif s == 'running' then
      redis.call('HSET', jk(id), 'cancel', '1')
      kind = 'requested'
    else
      move(id, s, 'cancelled')
      redis.call('HSET', jk(id), 'reason', 'cancelled')
      ended(id, t)
      kind = 'cancelled'
    end
    local out = { kind }
    for _, v in ipairs(record(id)) do out[#out + 1] = v end
    return out
  elseif op == 'reclaim' then
    -- id requeue(0/1): only a running job whose lease ran out
    local t, id = now(), ARGV[4]
    local k = jk(id)
    if redis.call('HGET', k, 'status') ~= 'running' then return false end
    local l = redis.call('ZSCORE', P .. 'leases', id)
    if l and tonumber(l) >= t then return false end
    if ARGV[5] == '1' then
      move(id, 'running', 'pending')
      redis.call('HDEL', k, 'started_at', 'envelope')
      redis.call('HSET', k, 'cancel', '0')
      redis.call('DEL', P .. 'ev:' .. id)
    else
      move(id, 'running', 'failed')
      redis.call('HSET', k, 'reason', 'interrupted')
      redis.call('HDEL', k, 'envelope')
      ended(id, t)
    end
    return record(id)
  elseif op == 'expire' then
    -- id before
    local t, id = now(), ARGV[4]
    local k = jk(id)
    if redis.call('HGET', k, 'status') ~= 'awaiting_approval' then return false end
    if tonumber(redis.call('HGET', k, 'created_at')) >= tonumber(ARGV[5]) then return false end
    move(id, 'awaiting_approval', 'failed')
    redis.call('HSET', k, 'reason', 'approval_expired')
    ended(id, t)
    return record(id)
  elseif op == 'drop' then
    -- before id…: terminal jobs finished before `before`
    local before, out = tonumber(ARGV[4]), {}
    for i = 5, #ARGV do
      local id = ARGV[i]
      local k = jk(id)
      local h = redis.call('HMGET', k, 'status', 'finished_at', 'owner', 'tool')
      if h[1] and TERMINAL[h[1]] and h[2] and tonumber(h[2]) < before then
        redis.call('DEL', k, P .. 'ev:' .. id)
        redis.call('ZREM', P .. 'all', id)
        redis.call('ZREM', P .. 'own:' .. h[3], id)
        redis.call('ZREM', P .. 'tool:' .. h[4], id)
        redis.call('ZREM', P .. 'st:' .. h[1], id)
        out[#out + 1] = id
      end
      redis.call('ZREM', P .. 'fin', id)
    end
    for _, d in ipairs(redis.call('ZRANGEBYSCORE', P .. 'dead', '-inf', '(' .. before)) do
      redis.call('DEL', P .. 'dlv:' .. d)
      redis.call('ZREM', P .. 'dead', d)
    end
    return out
  elseif op == 'outbox_due' then
    -- limit claim_for: due deliveries are claimed (moved claim_for ahead) so
    -- one instance sends each attempt
    local t = now()
    local out = {}
    for _, d in ipairs(redis.call('ZRANGEBYSCORE', P .. 'outbox', '-inf', fmt(t), 'LIMIT', 0, tonumber(ARGV[4]))) do
      local h = redis.call('HMGET', P .. 'dlv:' .. d, 'job', 'url', 'attempts')
      if h[1] then
        redis.call('ZADD', P .. 'outbox', t + tonumber(ARGV[5]), d)
        out[#out + 1] = { d, h[1], h[2], h[3] }
      else
        redis.call('ZREM', P .. 'outbox', d)
      end
    end
    return out
  elseif op == 'events' then
    -- id line…: a job's event lines
    local k = P .. 'ev:' .. ARGV[4]
    for i = 5, #ARGV, 256 do
      redis.call('RPUSH', k, unpack(ARGV, i, math.min(i + 255, #ARGV)))
    end
    return true
  elseif op == 'outbox_next' then
    local t = now()
    local first = redis.call('ZRANGE', P .. 'outbox', 0, 0, 'WITHSCORES')
    if not first[1] then return false end
    return fmt(math.max(0, tonumber(first[2]) - t))
  elseif op == 'outbox_retry' then
    -- id delay error give_up
    local t, d = now(), ARGV[4]
    local k = P .. 'dlv:' .. d
    if redis.call('EXISTS', k) == 0 then return false end
    redis.call('HINCRBY', k, 'attempts', 1)
    redis.call('HSET', k, 'error', ARGV[6])
    local at = t + tonumber(ARGV[5])
    if ARGV[7] == '1' then
      redis.call('ZREM', P .. 'outbox', d)
      redis.call('ZADD', P .. 'dead', at, d)
    else
      redis.call('ZADD', P .. 'outbox', at, d)
    end
    return true
  end
  return redis.error_reply('unknown job store operation ' .. tostring(op))
end

if op == 'now' or op == 'outbox_next' then
  return run()
end
local rk = P .. 'reply:' .. DLV
local before = redis.call('GET', rk)
if before then
  return cjson.decode(before)
end
local r = run()
redis.call('SET', rk, cjson.encode(r), 'EX', 60)
return r
