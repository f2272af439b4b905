"""The Lua scripts of the Redis store; each runs atomically over the keys of ONE Cluster slot.

Scripts touching {tickets}: INTAKE, INTAKE_UNLESS_CANDIDATES, SAVE_TICKET, ENQUEUE, LINK_CANDIDATES,
KEEP_RAW_VERSION. Scripts touching one {lane:NAME}: RELAY,
CLAIM, SETTLE, REAP, REPLAY. Scripts touching {quarantine}: QUARANTINE, RESOLVE_QUARANTINED,
RETURN_QUARANTINED. Keys a script builds from a prefix (a delivery's record and attempts, a ticket's index sets
and echo, a quarantine record) carry the same hash tag as its declared keys, so they live in the same slot.
Writes made before an error inside a script are not rolled back, so every script either checks
before its first write or does its writes in self-consistent steps.
"""

from __future__ import annotations

# Shared by the {tickets} scripts: the search indexes and the outbox.
_TICKET_COMMON = """
local function set_indexes(tkey, prefix, id, at, n)
  for i = 0, n - 1 do
    local name = ARGV[at + 2 * i]
    local value = ARGV[at + 2 * i + 1]
    local old = redis.call('HGET', tkey, 'ix:' .. name)
    if old ~= value then
      if old and old ~= '' then redis.call('SREM', prefix .. name .. ':' .. old, id) end
      if value ~= '' then redis.call('SADD', prefix .. name .. ':' .. value, id) end
      redis.call('HSET', tkey, 'ix:' .. name, value)
    end
  end
end

-- Deadline state: the ticket in the by-due sorted set (due: the day's ordinal, '' for no running limit), and
-- its ended limits ('day\tfield' lines) counted in the per-day on-time hashes, the old lines taken back first.
local function set_deadline_state(tkey, bydue, onprefix, id, due, ended)
  if due == '' then redis.call('ZREM', bydue, id) else redis.call('ZADD', bydue, tonumber(due), id) end
  local old = redis.call('HGET', tkey, 'ended') or ''
  if old == ended then return end
  for line in string.gmatch(old, '[^\\n]+') do
    local day, field = string.match(line, '^([^\\t]+)\\t(.+)$')
    redis.call('HINCRBY', onprefix .. day, field, -1)
  end
  for line in string.gmatch(ended, '[^\\n]+') do
    local day, field = string.match(line, '^([^\\t]+)\\t(.+)$')
    redis.call('HINCRBY', onprefix .. day, field, 1)
  end
  redis.call('HSET', tkey, 'ended', ended)
end

-- Outbox entries: 10 arguments each (delivery id, lane, kind, idempotency key, body, content type,
-- headers JSON, priority, the sequence and the status a status callback reports or '' twice), preceded by
-- their count.
local function add_outbox(outbox, lanes, tdel, tid, at, now)
  local n = tonumber(ARGV[at])
  local ids = {}
  for i = 0, n - 1 do
    local b = at + 1 + i * 10
    local eid = redis.call('XADD', outbox, '*', 'did', ARGV[b], 'lane', ARGV[b + 1], 'ticket', tid,
      'kind', ARGV[b + 2], 'idem', ARGV[b + 3], 'body', ARGV[b + 4], 'ctype', ARGV[b + 5],
      'headers', ARGV[b + 6], 'prio', ARGV[b + 7], 'created', now, 'rseq', ARGV[b + 8], 'rstatus', ARGV[b + 9])
    redis.call('HSET', lanes, ARGV[b], ARGV[b + 1])
    redis.call('HSET', tdel, ARGV[b], ARGV[b + 1])
    ids[#ids + 1] = eid
  end
  return ids
end
"""

_CANDIDATES = """
local function candidates(keys, highest, lowest, limit, prefix)
  local newest, ids = {}, {}
  for _, key in ipairs(keys) do
    local hits = redis.call('ZREVRANGEBYSCORE', key, highest, lowest, 'WITHSCORES', 'LIMIT', 0, limit)
    for i = 1, #hits, 2 do
      local id, score = hits[i], tonumber(hits[i + 1])
      if newest[id] == nil then
        ids[#ids + 1] = id
        newest[id] = score
      elseif score > newest[id] then
        newest[id] = score
      end
    end
  end
  table.sort(ids, function(a, b)
    if newest[a] ~= newest[b] then return newest[a] > newest[b] end
    return a > b
  end)
  local bodies = {}
  for i = 1, math.min(#ids, limit) do
    local body = redis.call('HGET', prefix .. ids[i], 'json')
    if body then bodies[#bodies + 1] = body end
  end
  return bodies
end
"""

# INTAKE's writes, after its checks (idempotency key, partner's number; and INTAKE_UNLESS_CANDIDATES's look-up):
# `number` is the partner's number field, set by those checks.
_STORE_NEW = """
local tid = ARGV[1]
local now = ARGV[4]
redis.call('SET', KEYS[1], tid)
redis.call('HSET', KEYS[9], number, tid)
redis.call('HSET', KEYS[2], 'json', ARGV[2], 'rev', ARGV[3], 'created', now, 'updated', now)
redis.call('HSET', KEYS[3], 'body', ARGV[5], 'ctype', ARGV[6], 'received', now)
redis.call('ZADD', KEYS[4], now, tid)
set_deadline_state(KEYS[2], KEYS[8], ARGV[9], tid, ARGV[7], ARGV[8])
local n = tonumber(ARGV[11])
set_indexes(KEYS[2], ARGV[10], tid, 12, n)
local at = 12 + 2 * n
local ids = add_outbox(KEYS[5], KEYS[6], KEYS[7], tid, at, now)
local links = at + 1 + 10 * tonumber(ARGV[at])
for i = 1, tonumber(ARGV[links + 2]) do
  redis.call('ZADD', ARGV[links] .. ARGV[links + 2 + i], ARGV[links + 1], tid)
end
table.insert(ids, 1, 1)
return ids
"""

# KEYS: idempotency, ticket, raw, tickets-by-time, outbox, delivery-lanes, ticket-deliveries, tickets-by-due,
#       source numbers
# ARGV: ticket id, json, revision, now, raw body, raw content type, due, ended, on-time prefix, index prefix,
#       index count, index (name, value) pairs, outbox entries, link-key prefix,
#       received (ms), link key count, link keys, source number field (the last)
# -> {1, outbox ids...} when stored, {0, existing ticket id} for a known idempotency key, {2, holder's ticket id}
# when another ticket holds the partner's number (another version of the matter)
INTAKE = _TICKET_COMMON + """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local number = ARGV[#ARGV]
local holder = redis.call('HGET', KEYS[9], number)
if holder then return {2, holder} end
""" + _STORE_NEW

# The link look-up (LINK_CANDIDATES) and INTAKE in one round trip, for a ticket that usually has no duplicate:
# a known idempotency key answers {0, existing id} and a partner's number another ticket holds {2, holder} first,
# as INTAKE answers them; then, when any ticket is found under the query's marks, nothing is written and the
# candidates' JSON bodies come back (newest received first), {3, bodies...}, for the gateway to score before it
# stores the ticket (INTAKE); otherwise the ticket is stored as INTAKE stores it.
# KEYS: as INTAKE's   ARGV: as INTAKE's (the source number field after the link keys), then the look-up's highest
#       score, lowest score (ms), limit, ticket key prefix, mark key count, mark keys (built with the link-key
#       prefix: same slot)
INTAKE_UNLESS_CANDIDATES = _TICKET_COMMON + _CANDIDATES + """
local existing = redis.call('GET', KEYS[1])
if existing then return {0, existing} end
local n0 = tonumber(ARGV[11])
local links0 = 12 + 2 * n0 + 1 + 10 * tonumber(ARGV[12 + 2 * n0])
local q = links0 + 3 + tonumber(ARGV[links0 + 2])
local number = ARGV[q]
local holder = redis.call('HGET', KEYS[9], number)
if holder then return {2, holder} end
local marks = {}
for i = 1, tonumber(ARGV[q + 5]) do marks[i] = ARGV[links0] .. ARGV[q + 5 + i] end
local found = candidates(marks, ARGV[q + 1], ARGV[q + 2], tonumber(ARGV[q + 3]), ARGV[q + 4])
if #found > 0 then
  table.insert(found, 1, 3)
  return found
end
""" + _STORE_NEW

# KEYS: ticket, outbox, delivery-lanes, ticket-deliveries, tickets-by-due
# ARGV: ticket id, json, revision, expected revision ('' for any), now, due, ended, on-time prefix, index prefix,
#       index count, pairs, outbox
# -> {1, outbox ids...}; {-1} unknown ticket; {-2, stored revision} on a revision conflict (a ticket stored
# before revisions were kept is at revision 0)
SAVE_TICKET = _TICKET_COMMON + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local rev = redis.call('HGET', KEYS[1], 'rev') or '0'
if ARGV[4] ~= '' and rev ~= ARGV[4] then return {-2, rev} end
local tid = ARGV[1]
redis.call('HSET', KEYS[1], 'json', ARGV[2], 'rev', ARGV[3], 'updated', ARGV[5])
set_deadline_state(KEYS[1], KEYS[5], ARGV[8], tid, ARGV[6], ARGV[7])
local n = tonumber(ARGV[10])
set_indexes(KEYS[1], ARGV[9], tid, 11, n)
local ids = add_outbox(KEYS[2], KEYS[3], KEYS[4], tid, 11 + 2 * n, ARGV[5])
table.insert(ids, 1, 1)
return ids
"""

# The tickets under any of a new ticket's link marks, received in a range: one range read per mark, the newest
# `limit` of them (a ticket under several marks once), their bodies read in the same call.
# KEYS: the marks' sorted sets   ARGV: highest score, lowest score (ms), limit, ticket key prefix
# -> ticket JSON bodies, newest received first
LINK_CANDIDATES = _CANDIDATES + """
return candidates(KEYS, ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4])
"""

# KEYS: ticket, raw version   ARGV: body, content type, now   -> 1 kept; 0 no such ticket
KEEP_RAW_VERSION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], 'body', ARGV[1], 'ctype', ARGV[2], 'received', ARGV[3])
return 1
"""

# KEYS: outbox, delivery-lanes, ticket-deliveries   ARGV: ticket id, now, outbox entries
ENQUEUE = _TICKET_COMMON + """
return add_outbox(KEYS[1], KEYS[2], KEYS[3], ARGV[1], 3, ARGV[2])
"""

# One ticket's deliveries on one lane go in the order they were enqueued. Each lane keeps, per ticket, a
# sorted set (order prefix + ticket id) of the deliveries not yet delivered or dead, scored by enqueue order.
# A delivery read from a stream while an earlier one of its ticket is outstanding is parked: its entry is
# dropped and its record marked `parked` (its state stays pending or retrying); when the one ahead of it
# is delivered or dead, SETTLE puts the next one back on its stream.
_LANE_ORDER = """
local function order_key(op, rk)
  local t = redis.call('HGET', rk, 'ticket')
  if t then return op .. t end
  return nil
end

-- Put the ticket's first outstanding delivery back on its stream if it was parked; forget deliveries that
-- are no longer outstanding (settled by an older gateway, or gone).
local function unpark_head(ok, rp, streams)
  while true do
    local head = redis.call('ZRANGE', ok, 0, 0)[1]
    if not head then return end
    local hk = rp .. head
    local h = redis.call('HMGET', hk, 'state', 'parked', 'prio')
    if h[1] == 'pending' or h[1] == 'retrying' or h[1] == 'in_flight' then
      if h[2] == '1' then
        local urgent = tonumber(h[3]) <= 0
        local s = urgent and streams[2] or streams[4]  -- streams: urgent, urgent-retry, normal, normal-retry
        if h[1] == 'pending' then s = urgent and streams[1] or streams[3] end
        local eid = redis.call('XADD', s, '*', 'd', head)
        redis.call('HSET', hk, 'entry', eid, 'stream', s)
        redis.call('HDEL', hk, 'parked')
      end
      return
    end
    redis.call('ZREM', ok, head)
  end
end

-- Whether an earlier delivery of the same ticket on this lane is still outstanding.
local function waits_behind(ok, did, rp, streams)
  if not ok then return false end
  local head = redis.call('ZRANGE', ok, 0, 0)[1]
  if (not head) or head == did then return false end
  local hs = redis.call('HGET', rp .. head, 'state')
  if hs == 'pending' or hs == 'retrying' or hs == 'in_flight' then return true end
  unpark_head(ok, rp, streams)  -- a stale head: drop it (and let a parked successor go)
  head = redis.call('ZRANGE', ok, 0, 0)[1]
  return head ~= nil and head ~= did
end
"""

# Moves one outbox entry into its lane; a repeat (relay crashed and ran again) does nothing. A status callback
# (its reported sequence given) also moves the ticket's echo: the newest status reported, and since when the
# partner is behind (unless it already was, or heard this status or a newer one).
# KEYS: record, target stream, state:pending, the ticket's echo, the lane's behind set, the ticket's echo-waiting
# ARGV: delivery id, ticket id, kind, idempotency key, body, content type, headers, priority, created, lane,
#       enqueue order (score), order prefix, reported sequence ('' for none), reported status
RELAY = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local eid = redis.call('XADD', KEYS[2], '*', 'd', ARGV[1])
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'ticket', ARGV[2], 'kind', ARGV[3], 'idem', ARGV[4],
  'body', ARGV[5], 'ctype', ARGV[6], 'headers', ARGV[7], 'prio', ARGV[8], 'created', ARGV[9],
  'due', ARGV[9], 'lane', ARGV[10], 'state', 'pending', 'attempts', 0, 'entry', eid, 'stream', KEYS[2],
  'order', ARGV[11])
redis.call('ZADD', KEYS[3], ARGV[9], ARGV[1])
redis.call('ZADD', ARGV[12] .. ARGV[2], ARGV[11], ARGV[1])
if ARGV[13] ~= '' then
  local seq = tonumber(ARGV[13])
  redis.call('HSET', KEYS[1], 'rseq', ARGV[13], 'rstatus', ARGV[14])
  local e = redis.call('HMGET', KEYS[4], 'latest_seq', 'heard_seq', 'behind_since')
  if (not e[1]) or seq >= tonumber(e[1]) then
    redis.call('HSET', KEYS[4], 'ticket', ARGV[2], 'lane', ARGV[10], 'latest_seq', ARGV[13],
      'latest_status', ARGV[14], 'latest_at', ARGV[9])
  end
  if (not e[2]) or seq > tonumber(e[2]) then  -- nothing heard yet, or only an older status
    redis.call('ZADD', KEYS[6], seq, ARGV[1])
    if not e[3] then
      redis.call('HSET', KEYS[4], 'behind_since', ARGV[9])
      redis.call('ZADD', KEYS[5], ARGV[9], ARGV[2])
    end
  end
end
return 1
"""

# KEYS: urgent, urgent-retry, normal, normal-retry, delayed, leases, autoclaim cursors,
#       state:pending, state:retrying, state:in_flight
# ARGV: group, consumer, now, lease ms, limit, token base, record prefix, order prefix
# -> {groups re-created, entries reported deleted, record1 (flat HGETALL), record2, ...}
CLAIM = _LANE_ORDER + """
local g, consumer = ARGV[1], ARGV[2]
local now, lease, limit = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local rp, op = ARGV[7], ARGV[8]
local streams = {KEYS[1], KEYS[2], KEYS[3], KEYS[4]}
local out = {}
local recreated, deleted = 0, 0

-- Due retries move from the sorted set to their retry stream, in due order.
local due = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, 256)
for _, did in ipairs(due) do
  local f = redis.call('HMGET', rp .. did, 'state', 'prio')
  if f[1] == 'retrying' then
    local s = (tonumber(f[2]) <= 0) and KEYS[2] or KEYS[4]
    local eid = redis.call('XADD', s, '*', 'd', did)
    redis.call('HSET', rp .. did, 'entry', eid, 'stream', s)
  end
  redis.call('ZREM', KEYS[5], did)
end

local function drop(s, id)
  redis.call('XACK', s, g, id)
  redis.call('XDEL', s, id)
end

local function take(s, id, fields)
  local did = nil
  if fields then
    for i = 1, #fields, 2 do if fields[i] == 'd' then did = fields[i + 1] end end
  end
  if not did then drop(s, id) return end
  local rk = rp .. did
  local f = redis.call('HMGET', rk, 'state', 'entry', 'lease_until', 'created', 'return_state')
  local st = f[1]
  if (not st) or f[2] ~= id then drop(s, id) return end  -- settled long ago, or a stale duplicate
  local ret = st
  if st == 'in_flight' then
    if tonumber(f[3]) > now then return end  -- another worker still holds a live lease
    ret = f[5] or 'pending'
  elseif st == 'pending' or st == 'retrying' then
    if waits_behind(order_key(op, rk), did, rp, streams) then  -- park it until the one ahead is settled
      drop(s, id)
      redis.call('HSET', rk, 'parked', '1')
      redis.call('HDEL', rk, 'entry', 'stream')
      return
    end
    redis.call('ZREM', (st == 'pending') and KEYS[8] or KEYS[9], did)
    redis.call('ZADD', KEYS[10], f[4], did)
  else
    drop(s, id) return
  end
  local until_ms = now + lease
  redis.call('HSET', rk, 'state', 'in_flight', 'lease_token', ARGV[6] .. ':' .. (#out + 1),
    'lease_until', until_ms, 'worker', consumer, 'return_state', ret)
  redis.call('ZADD', KEYS[6], until_ms, did)
  out[#out + 1] = redis.call('HGETALL', rk)
end

for i = 1, 4 do
  if #out >= limit then break end
  local s = KEYS[i]
  -- Expired leases first: entries idle longer than a lease were claimed by a worker that is gone.
  local cursor = redis.call('HGET', KEYS[7], s) or '0-0'
  local r = redis.pcall('XAUTOCLAIM', s, g, consumer, lease, cursor, 'COUNT', limit - #out)
  if type(r) == 'table' and r.err then
    if string.sub(r.err, 1, 7) ~= 'NOGROUP' then return redis.error_reply(r.err) end
    -- The group is gone (Redis restarted without persistence, or someone deleted it): re-create it
    -- from the start of the stream; entries already settled were deleted, the rest are work.
    redis.call('XGROUP', 'CREATE', s, g, '0', 'MKSTREAM')
    recreated = recreated + 1
  else
    redis.call('HSET', KEYS[7], s, r[1])
    for _, e in ipairs(r[2]) do
      if #out < limit then take(s, e[1], e[2]) end
    end
    if r[3] then deleted = deleted + #r[3] end
  end
  local rounds = 0
  while #out < limit and rounds < 8 do
    rounds = rounds + 1
    local rr = redis.call('XREADGROUP', 'GROUP', g, consumer, 'COUNT', limit - #out, 'STREAMS', s, '>')
    if not rr or not rr[1] or #rr[1][2] == 0 then break end
    for _, e in ipairs(rr[1][2]) do take(s, e[1], e[2]) end
  end
end
table.insert(out, 1, deleted)
table.insert(out, 1, recreated)
return out
"""

# A delivered status callback moves its ticket's echo: the partner heard its status (unless it heard a newer one
# already), and is behind since the oldest callback still waiting with a newer status, or no longer.
# KEYS: record, attempts, leases, delayed, dead stream, state:in_flight, state:<new state>,
#       urgent, urgent-retry, normal, normal-retry, the lane's behind set
# ARGV: group, lease token, new state, attempt JSON, error class ('' none), status code ('' none),
#       now, due (retrying only), record prefix, order prefix, echo prefix, echo-waiting prefix
# -> attempts after this one; 0 when the lease is no longer held
SETTLE = _LANE_ORDER + """
local rk = KEYS[1]
local f = redis.call('HMGET', rk, 'state', 'lease_token', 'entry', 'stream', 'created', 'id')
if f[1] ~= 'in_flight' or f[2] ~= ARGV[2] then return 0 end
local did = f[6]
if f[3] and f[4] then
  redis.call('XACK', f[4], ARGV[1], f[3])
  redis.call('XDEL', f[4], f[3])
end
redis.call('ZREM', KEYS[3], did)
redis.call('ZREM', KEYS[6], did)
redis.call('RPUSH', KEYS[2], ARGV[4])
local n = redis.call('HINCRBY', rk, 'attempts', 1)
redis.call('HDEL', rk, 'lease_token', 'lease_until', 'worker', 'return_state', 'entry', 'stream')
if ARGV[5] == '' then redis.call('HDEL', rk, 'last_error') else redis.call('HSET', rk, 'last_error', ARGV[5]) end
if ARGV[6] == '' then redis.call('HDEL', rk, 'last_status') else redis.call('HSET', rk, 'last_status', ARGV[6]) end
local state = ARGV[3]
redis.call('HSET', rk, 'state', state)
redis.call('ZADD', KEYS[7], f[5], did)
if state == 'delivered' then
  redis.call('HSET', rk, 'delivered_at', ARGV[7])
elseif state == 'retrying' then
  redis.call('HSET', rk, 'due', ARGV[8])
  redis.call('ZADD', KEYS[4], ARGV[8], did)
elseif state == 'dead' then
  local de = redis.call('XADD', KEYS[5], '*', 'd', did, 'error', ARGV[5], 'status', ARGV[6])
  redis.call('HSET', rk, 'dead_entry', de, 'dead_at', ARGV[7])
end
if state == 'delivered' or state == 'dead' then  -- no longer ahead of its ticket's next delivery
  local ok = order_key(ARGV[10], rk)
  if ok then
    redis.call('ZREM', ok, did)
    unpark_head(ok, ARGV[9], {KEYS[8], KEYS[9], KEYS[10], KEYS[11]})
  end
end
if state == 'delivered' then
  local r = redis.call('HMGET', rk, 'rseq', 'rstatus', 'ticket')
  if r[1] and r[3] then
    local ek, wk = ARGV[11] .. r[3], ARGV[12] .. r[3]
    local seq = tonumber(r[1])
    local heard = redis.call('HGET', ek, 'heard_seq')  -- nil until something is heard (sequences start at -1)
    if (not heard) or seq > tonumber(heard) then
      redis.call('HSET', ek, 'heard_seq', r[1], 'heard_status', r[2], 'heard_at', ARGV[7])
      heard = seq
    else
      heard = tonumber(heard)
    end
    redis.call('ZREMRANGEBYSCORE', wk, '-inf', heard)
    local first = redis.call('ZRANGE', wk, 0, 0)[1]
    local since = first and redis.call('HGET', ARGV[9] .. first, 'created')
    if since then
      redis.call('HSET', ek, 'behind_since', since)
      redis.call('ZADD', KEYS[12], since, r[3])
    else
      redis.call('HDEL', ek, 'behind_since')
      redis.call('ZREM', KEYS[12], r[3])
    end
  end
end
return n
"""

# A leased delivery back to the state it was claimed from (a fresh delivery stays ahead of retries), at the
# end of its lane's stream, with no attempt counted. f: state, lease_until, entry, stream, return_state,
# priority, created. KEYS as REAP's and RELEASE's.
_PUT_BACK = """
local function put_back(g, rk, did, f)
  if f[3] and f[4] then
    redis.call('XACK', f[4], g, f[3])
    redis.call('XDEL', f[4], f[3])
  end
  local ret = f[5] or 'pending'
  local urgent = tonumber(f[6]) <= 0
  local s
  if ret == 'pending' then s = urgent and KEYS[1] or KEYS[3] else s = urgent and KEYS[2] or KEYS[4] end
  local eid = redis.call('XADD', s, '*', 'd', did)
  redis.call('HSET', rk, 'state', ret, 'entry', eid, 'stream', s)
  redis.call('HDEL', rk, 'lease_token', 'lease_until', 'worker', 'return_state')
  redis.call('ZREM', KEYS[6], did)
  redis.call('ZADD', (ret == 'pending') and KEYS[7] or KEYS[8], f[7], did)
  redis.call('ZREM', KEYS[5], did)
end
"""
_FIELDS = "'state', 'lease_until', 'entry', 'stream', 'return_state', 'prio', 'created'"

# KEYS: urgent, urgent-retry, normal, normal-retry, leases, state:in_flight, state:pending, state:retrying
# ARGV: group, now, record prefix, batch size   -> how many deliveries went back to their lane
REAP = _PUT_BACK + f"""
local g, now, rp = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local ids = redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, did in ipairs(ids) do
  local rk = rp .. did
  local f = redis.call('HMGET', rk, {_FIELDS})
  if f[1] == 'in_flight' and tonumber(f[2]) <= now then
    put_back(g, rk, did, f)
    n = n + 1
  elseif f[1] == 'in_flight' then
    redis.call('ZADD', KEYS[5], f[2], did)  -- re-leased since: keep it under its new end
  else
    redis.call('ZREM', KEYS[5], did)
  end
end
return n
"""

# KEYS: as REAP's.  ARGV: group, record key, delivery id, lease token
# -> 1 when the claim went back to its lane unsent, 0 when its lease is no longer held
RELEASE = _PUT_BACK + f"""
local rk, did = ARGV[2], ARGV[3]
local f = redis.call('HMGET', rk, {_FIELDS}, 'lease_token')
if f[1] ~= 'in_flight' or f[8] ~= ARGV[4] then return 0 end
put_back(ARGV[1], rk, did, f)
return 1
"""

# KEYS: urgent, normal, dead stream, state:dead, state:pending, delayed
# ARGV: now, record prefix, order prefix, ids...
# -> the ids put back (dead ones) or made due now (retrying ones)
REPLAY = """
local now, rp, op = ARGV[1], ARGV[2], ARGV[3]
local out = {}
for i = 4, #ARGV do
  local did = ARGV[i]
  local rk = rp .. did
  local f = redis.call('HMGET', rk, 'state', 'prio', 'created', 'dead_entry', 'attempts', 'order', 'ticket')
  if f[1] == 'dead' then
    -- back in its place among its ticket's outstanding deliveries (if one after it is in flight, that one
    -- finishes first; any others wait for this one)
    if f[6] and f[7] then redis.call('ZADD', op .. f[7], f[6], did) end
    local s = (tonumber(f[2]) <= 0) and KEYS[1] or KEYS[2]
    local eid = redis.call('XADD', s, '*', 'd', did)
    -- the retry policy's budget starts again from the replay; the attempts so far stay on record
    redis.call('HSET', rk, 'state', 'pending', 'entry', eid, 'stream', s, 'due', now,
      'budget_attempts', f[5] or '0', 'budget_since', now)
    redis.call('HDEL', rk, 'dead_entry', 'dead_at')
    if f[4] then redis.call('XDEL', KEYS[3], f[4]) end
    redis.call('ZREM', KEYS[4], did)
    redis.call('ZADD', KEYS[5], f[3], did)
    out[#out + 1] = did
  elseif f[1] == 'retrying' then
    -- retry now: due at once (a parked or already promoted one keeps its place), its budget counted from now
    if redis.call('ZSCORE', KEYS[6], did) then redis.call('ZADD', KEYS[6], now, did) end
    redis.call('HSET', rk, 'due', now, 'budget_attempts', f[5] or '0', 'budget_since', now)
    out[#out + 1] = did
  end
end
return out
"""

# Drops the bodies of delivered deliveries created before a cutoff, and their attempts' response bodies, keeping
# the rest of each. Goes through the lane's delivered set in creation order from where the last call stopped.
# KEYS: state:delivered, compacted-until   ARGV: cutoff ms, limit, record prefix, attempts prefix, now
# -> {compacted, scanned}
COMPACT = """
local from = redis.call('GET', KEYS[2]) or '-inf'
local items = redis.call('ZRANGEBYSCORE', KEYS[1], from, '(' .. ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local n, last = 0, nil
for i = 1, #items, 2 do
  local did = items[i]
  last = items[i + 1]
  local rk = ARGV[3] .. did
  local f = redis.call('HMGET', rk, 'state', 'compacted')
  if f[1] == 'delivered' and not f[2] then
    redis.call('HSET', rk, 'body', '', 'compacted', ARGV[5])
    local ak = ARGV[4] .. did
    for j = 0, redis.call('LLEN', ak) - 1 do
      local a = cjson.decode(redis.call('LINDEX', ak, j))
      if a['response_body'] ~= nil and a['response_body'] ~= cjson.null then
        a['response_body'] = cjson.null
        redis.call('LSET', ak, j, cjson.encode(a))
      end
    end
    n = n + 1
  end
end
local scanned = #items / 2
if scanned < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[1])  -- all before the cutoff is done
elseif last then
  if last == from then last = tostring(tonumber(last) + 1) end  -- one creation time filled a whole batch
  redis.call('SET', KEYS[2], last)
end
return {n, scanned}
"""

# A payload that did not map: one more sighting of the same payload's open record, or a new record.
# KEYS: the open record's pointer (adapter + digest), the new record, quarantine by-time, by-adapter
# ARGV: new id, now, adapter id, content type, body, errors JSON, digest, record prefix   -> the record's id
QUARANTINE = """
local existing = redis.call('GET', KEYS[1])
if existing then
  local rk = ARGV[8] .. existing
  if redis.call('EXISTS', rk) == 1 and not redis.call('HGET', rk, 'resolved') then
    redis.call('HINCRBY', rk, 'seen', 1)
    redis.call('HSET', rk, 'last_seen', ARGV[2], 'errors', ARGV[6])
    return existing
  end
end
redis.call('HSET', KEYS[2], 'id', ARGV[1], 'adapter', ARGV[3], 'received', ARGV[2], 'ctype', ARGV[4],
  'body', ARGV[5], 'errors', ARGV[6], 'digest', ARGV[7], 'seen', 1, 'last_seen', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
"""

# Resolve a record (only one that exists: no half-record for an unknown id); a later same payload is a new record.
# KEYS: the record   ARGV: ticket id, open-pointer prefix   -> 1, or -1 for an unknown id
RESOLVE_QUARANTINED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'resolved', ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'id', 'adapter', 'digest')
if f[3] then
  local pk = ARGV[2] .. f[2] .. ':' .. f[3]
  if redis.call('GET', pk) == f[1] then redis.call('DEL', pk) end
end
return 1
"""

# KEYS: the record   ARGV: the 退单's notes (errors JSON)   -> 1 noted, -1 no such record (nothing made)
RETURN_QUARANTINED = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('HSET', KEYS[1], 'errors', ARGV[1])
return 1
"""

# KEYS: lock   ARGV: owner, ttl ms   -> 1 taken or renewed, 0 held by another owner
TRY_LOCK = """
local cur = redis.call('GET', KEYS[1])
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""

# KEYS: lock   ARGV: stale owner, new owner, ttl ms
TAKE_OVER_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end
return 0
"""

# KEYS: lock   ARGV: owner
RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
