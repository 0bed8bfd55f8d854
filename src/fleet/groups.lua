-- Concurrency-group slots shared by a fleet, atomically on the Redis server
-- with its clock (TIME). KEYS: [1] holders (zset holder -> lease expiry),
-- [2] waiters (zset holder -> ticket, FIFO), [3] waiters' liveness (zset
-- holder -> expiry), [4] the ticket counter. ARGV: op, max, queue, holder,
-- ttl (s), nowait ('1'/'0'). A holder or waiter whose lease lapsed (its
-- process died and stopped renewing) is dropped, so a crash never leaves
-- the count high for longer than the lease.
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local op, max, queue, holder, ttl =
  ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, w in ipairs(dead) do
  redis.call('ZREM', KEYS[2], w)
  redis.call('ZREM', KEYS[3], w)
end
if op == 'renew' then
  if redis.call('ZSCORE', KEYS[1], holder) then
    redis.call('ZADD', KEYS[1], now + ttl, holder)
    return {'ok'}
  end
  return {'lost'}
elseif op == 'release' then
  redis.call('ZREM', KEYS[1], holder)
  redis.call('ZREM', KEYS[2], holder)
  redis.call('ZREM', KEYS[3], holder)
  return {'ok'}
elseif op == 'occupancy' then
  return {tostring(redis.call('ZCARD', KEYS[1])), tostring(redis.call('ZCARD', KEYS[2]))}
end
-- acquire: a free slot goes to the first live waiter, or to a newcomer
-- when nobody waits.
local held = redis.call('ZCARD', KEYS[1])
local first = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
if held < max and (first == nil or first == holder) then
  redis.call('ZADD', KEYS[1], now + ttl, holder)
  redis.call('ZREM', KEYS[2], holder)
  redis.call('ZREM', KEYS[3], holder)
  return {'ok', tostring(held)}
end
if ARGV[6] == '1' then
  return {'busy'}
end
if not redis.call('ZSCORE', KEYS[2], holder) then
  local waiting = redis.call('ZCARD', KEYS[2])
  if waiting >= queue then
    return {'full', tostring(waiting)}
  end
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), holder)
end
redis.call('ZADD', KEYS[3], now + ttl, holder)
return {'wait'}
