-- Admit one request: refund expired reservations, evaluate every limit, reserve all or none.
--
-- KEYS[1]  hash  reservation id -> JSON {w = {{key, "amount"}, ...}, c = {key, ...}}
-- KEYS[2]  zset  reservation id scored by its expiry (microseconds)
-- KEYS[2+i] base key of check i (budgets append ":<window id>")
-- ARGV[1] reservation id   ARGV[2] timeout (us)   ARGV[3] clock offset (us, tests only)
-- ARGV[4]  the checks, one line each, in KEYS order: "kind limit amount param"
--   "g"  GCRA request rate: limit = burst, param = emission interval (us)
--   "m", "d", "M"  budget in the current UTC minute, day or month
--   "c"  concurrency slots
-- Time is the Redis server's, so gateways on different machines share one clock.
-- Returns {admitted, refused index (1-based, 0 if none), retry (us), now (us), states}
-- where states has one line per check: "remaining reset(us) used key" (one string, so the
-- client parses one reply element instead of four per check).

-- Redis before 5 replicates scripts verbatim and refuses writes after TIME without this;
-- from Redis 5 on it is the default and the call is a no-op.
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[3])
local timeout = tonumber(ARGV[2])
local US = 1000000
local EPS = 1

local function days_from_civil(y, m)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m > 2) and (m - 3) or (m + 9)
  local doy = math.floor((153 * mp + 2) / 5)
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = (mp < 10) and (mp + 3) or (mp - 9)
  if m <= 2 then y = y + 1 end
  return y, m
end

-- window id and end (us) of the window `kind` that `now` falls in
local function window(kind)
  local s = math.floor(now / US)
  if kind == 'm' then
    local id = math.floor(s / 60)
    return id, (id + 1) * 60 * US
  elseif kind == 'd' then
    local id = math.floor(s / 86400)
    return id, (id + 1) * 86400 * US
  end
  local y, m = civil_from_days(math.floor(s / 86400))
  local id = y * 12 + m - 1
  local ny, nm = y, m + 1
  if nm > 12 then ny, nm = y + 1, 1 end
  return id, days_from_civil(ny, nm) * 86400 * US
end

local function num(v)
  return tonumber(v) or 0
end

local function unreserve(key, amount)
  if redis.call('EXISTS', key) == 1 then
    local r = num(redis.call('HGET', key, 'r')) - amount
    if r < 0 then r = 0 end
    redis.call('HSET', key, 'r', string.format('%.0f', r))
  end
end

local function free_slot(key)
  local n = num(redis.call('GET', key))
  if n <= 1 then redis.call('DEL', key) else redis.call('DECR', key) end
end

-- 1. refund reservations whose worker never settled them
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 256)
for _, id in ipairs(expired) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local rec = cjson.decode(raw)
    for _, w in ipairs(rec.w) do unreserve(w[1], tonumber(w[2])) end
    for _, c in ipairs(rec.c) do free_slot(c) end
    redis.call('HDEL', KEYS[1], id)
  end
  redis.call('ZREM', KEYS[2], id)
end

-- 2. evaluate every check without writing
local n = #KEYS - 2
local specs = {}
for kind, limit, amount, param in string.gmatch(ARGV[4], '(%a) (%d+) (%d+) ([%d.e+-]+)') do
  specs[#specs + 1] = {kind, tonumber(limit), tonumber(amount), tonumber(param)}
end
if #specs ~= n then
  return redis.error_reply('admit: ' .. n .. ' keys but ' .. #specs .. ' checks')
end
local plan = {}
local out = {}
local refused, retry = 0, 0
for i = 1, n do
  local kind, limit, amount, param = specs[i][1], specs[i][2], specs[i][3], specs[i][4]
  local key = KEYS[2 + i]
  local ok, left, reset, used, wait, value = true, 0, 0, 0, 0, 0
  if kind == 'g' then
    local tat = tonumber(redis.call('GET', key)) or now
    if tat < now then tat = now end
    local new = tat + param
    local tolerance = limit * param
    if new - now <= tolerance + EPS then
      left = math.floor((tolerance - (new - now)) / param + 1e-9)
      reset, value = new - now, new
    else
      ok, reset, wait = false, tat - now, new - now - tolerance
    end
  elseif kind == 'c' then
    used = num(redis.call('GET', key))
    if used + 1 <= limit then left = limit - used - 1 else ok, wait = false, US end
  else
    local id, ends = window(kind)
    key = key .. ':' .. id
    local u = redis.call('HMGET', key, 'u', 'r')
    used = num(u[1]) + num(u[2])
    reset = ends - now
    value = ends
    if used < limit and used + amount <= limit then
      left = limit - used - amount
    else
      ok, wait, left = false, ends - now, math.max(0, limit - used)
    end
  end
  if not ok and (refused == 0 or wait > retry) then refused, retry = i, wait end
  plan[i] = {kind, key, amount, value}
  out[i] = string.format('%.0f %.0f %.0f %s', left, math.ceil(reset), used, key)
end
local states = table.concat(out, '\n')

if refused > 0 then
  return {0, refused, math.ceil(retry), now, states}
end

-- 3. reserve on every check
local rec = {w = {}, c = {}}
for i = 1, n do
  local kind, key, amount, value = plan[i][1], plan[i][2], plan[i][3], plan[i][4]
  if kind == 'g' then
    redis.call('SET', key, string.format('%.17g', value), 'PX',
      math.ceil((value - now) / 1000) + 1000)
  elseif kind == 'c' then
    redis.call('INCR', key)
    redis.call('PEXPIRE', key, math.ceil(2 * timeout / 1000) + 60000)
    rec.c[#rec.c + 1] = key
  else
    redis.call('HINCRBY', key, 'r', string.format('%.0f', amount))
    redis.call('PEXPIRE', key, math.ceil((value - now + timeout) / 1000) + 60000)
    rec.w[#rec.w + 1] = {key, string.format('%.0f', amount)}
  end
end
if #rec.w > 0 or #rec.c > 0 then
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
  redis.call('ZADD', KEYS[2], now + timeout, ARGV[1])
end
return {1, 0, 0, now, states}
