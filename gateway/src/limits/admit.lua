-- Admits one request against every scope, or against none (gateway/src/limits/gcra.rs is
-- the same arithmetic in Rust). Times are microseconds from Redis' own clock, so replicas
-- with skewed clocks still share one limit.
-- KEYS: per scope, its requests TAT, tokens TAT and leases (a sorted set scored by expiry).
-- ARGV: now (empty: Redis TIME), lease id, lease TTL in ms; then per scope: request interval,
-- burst, token interval, concurrent (0 = no such limit).
-- Returns {1, then per scope: req remaining, req reset, tok remaining, tok reset (-1: none)}
-- or {0, scope index (0-based), limit (1 requests, 2 tokens, 3 concurrent), retry after}.
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local lease, ttl_ms = ARGV[2], tonumber(ARGV[3])
local minute = 60000000
-- TAT keys expire a second after the TAT passes: a missing key and a past TAT mean the same.
local n = #KEYS / 3

local function spec(i)
  local b = 4 + i * 4
  return tonumber(ARGV[b]), tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
end

local function tat(key)
  return math.max(tonumber(redis.call('GET', key)) or now, now)
end

for i = 0, n - 1 do
  local rint, burst, tint, conc = spec(i)
  local rk, tk, ck = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  if rint > 0 then
    local allow_at = tat(rk) + rint - burst * rint
    if now < allow_at then return {0, i, 1, math.ceil(allow_at - now)} end
  end
  if tint > 0 then
    local t = tat(tk)
    if t - now >= minute then return {0, i, 2, math.ceil(t - now - minute + tint)} end
  end
  if conc > 0 then
    redis.call('ZREMRANGEBYSCORE', ck, '-inf', math.floor(now / 1000))
    if redis.call('ZCARD', ck) >= conc then return {0, i, 3, 1000000} end
  end
end

local out = {1}
for i = 0, n - 1 do
  local rint, burst, tint, conc = spec(i)
  local rk, tk, ck = KEYS[i * 3 + 1], KEYS[i * 3 + 2], KEYS[i * 3 + 3]
  if rint > 0 then
    local new = tat(rk) + rint
    redis.call('SET', rk, string.format('%.17g', new), 'PX', math.ceil((new - now) / 1000) + 1000)
    out[#out + 1] = math.max(0, math.floor((burst * rint - (new - now)) / rint))
    out[#out + 1] = math.ceil(new - now)
  else
    out[#out + 1] = -1
    out[#out + 1] = 0
  end
  if tint > 0 then
    local t = tat(tk)
    out[#out + 1] = math.max(0, math.floor((minute - (t - now)) / tint))
    out[#out + 1] = math.ceil(t - now)
  else
    out[#out + 1] = -1
    out[#out + 1] = 0
  end
  if conc > 0 then
    redis.call('ZADD', ck, math.floor(now / 1000) + ttl_ms, lease)
    redis.call('PEXPIRE', ck, ttl_ms)
  end
end
return out
