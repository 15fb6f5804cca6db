-- Settle or release one reservation: replace what it reserved by what was really used.
--
-- KEYS[1]  hash  reservation id -> JSON record (see admit.lua)
-- KEYS[2]  zset  reservation id scored by its expiry
-- KEYS[2+i] key the reservation holds: a budget window or a concurrency counter
-- ARGV[1] reservation id   ARGV[2] timeout (us)
-- ARGV[1 + 2i] kind of KEYS[2+i] ("w" budget, "c" slot), ARGV[2 + 2i] actual amount
--   (0 for a release; ignored for slots)
-- If the reservation already expired (and was refunded), the actual usage is still charged
-- and no slot is freed twice.  Returns 1 if the reservation was still held, else 0.

local function num(v)
  return tonumber(v) or 0
end

local raw = redis.call('HGET', KEYS[1], ARGV[1])
local reserved = {}
local held = false
if raw then
  held = true
  local rec = cjson.decode(raw)
  for _, w in ipairs(rec.w) do reserved[w[1]] = tonumber(w[2]) end
  redis.call('HDEL', KEYS[1], ARGV[1])
end
redis.call('ZREM', KEYS[2], ARGV[1])

local keep = math.ceil(tonumber(ARGV[2]) / 1000) + 60000
for i = 3, #KEYS do
  local key = KEYS[i]
  local kind, actual = ARGV[2 * i - 3], tonumber(ARGV[2 * i - 2])
  if kind == 'c' then
    if held then
      local n = num(redis.call('GET', key))
      if n <= 1 then redis.call('DEL', key) else redis.call('DECR', key) end
    end
  elseif reserved[key] ~= nil or actual > 0 then
    local v = redis.call('HMGET', key, 'u', 'r')
    local r = num(v[2]) - (reserved[key] or 0)
    if r < 0 then r = 0 end
    redis.call('HSET', key, 'u', string.format('%.0f', num(v[1]) + actual),
      'r', string.format('%.0f', r))
    if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, keep) end
  end
end
return held and 1 or 0
