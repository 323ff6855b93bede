-- Charges the tokens a request used and releases its lease in every scope.
-- KEYS: per scope, its tokens TAT and leases. ARGV: now (empty: Redis TIME), lease id,
-- tokens; then per scope: token interval (0 = none), concurrent (0 = none).
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
local lease, tokens = ARGV[2], tonumber(ARGV[3])
for i = 0, #KEYS / 2 - 1 do
  local tint, conc = tonumber(ARGV[4 + i * 2]), tonumber(ARGV[5 + i * 2])
  local tk, ck = KEYS[i * 2 + 1], KEYS[i * 2 + 2]
  if tint > 0 and tokens > 0 then
    local t = math.max(tonumber(redis.call('GET', tk)) or now, now) + tokens * tint
    redis.call('SET', tk, string.format('%.17g', t), 'PX', math.ceil((t - now) / 1000) + 1000)
  end
  if conc > 0 then redis.call('ZREM', ck, lease) end
end
return 1
