package query

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/meshlet/meshlet/auditlog"
)

// RedisStore keeps every entity's current belief in Redis, so any number
// of replicas can answer "what is K now" without the change log.
//
// Per entity it stores the belief timeline over valid time: pieces
// [from, to) each owned by the entry that last asserted or retracted it,
// retractions included (as tombstones), each with the system time since
// which it has been believed with exactly those bounds - the version's
// _system_from in auditlog's terms (see its "Bitemporal queries"). Apply
// merges an entry in with a Lua script: over its valid period, every piece
// owned by an entry earlier in the change logs' merged order (system time,
// log name, seq) gives way to it, and every piece owned by a later or the
// same entry stays. That is a pointwise maximum, so applying the same
// entries again, or entries of several logs in any interleaving, gives the
// same pieces: a write with an older or equal position never overwrites a
// newer one, which is what a write made outside the Kafka transaction
// needs. What is left of a piece an entry cut is believed since that
// entry's system time.
//
// The bounds, owners and payloads never depend on the order entries
// arrive in; the believed-since times are exact when each entity's entries
// arrive in merged order, as the runtime applies them (Apply sorts each
// call). An entry applied after a later one of the same entity cannot
// know every entry that cut it before, and takes its pieces as believed
// since the later neighbours' system times, which can be later than the
// index's answer. Pieces that ended more than the prune margin before the
// apply time are dropped; current reads only look at valid time now.
//
// The value is text, one piece per line: "from to system log seq op
// payload since", to "-" when open, payload in base64 ("-" when empty);
// a line without since (written before it was kept) is believed since its
// entry's system time.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
	margin time.Duration
	now    func() time.Time
}

// RedisOption configures NewRedisStore.
type RedisOption func(*RedisStore)

// PruneMargin keeps pieces whose valid period ended less than d before the
// apply time (default 24h): readers whose clocks lag by less than d still
// see the right piece. A negative d keeps every piece.
func PruneMargin(d time.Duration) RedisOption { return func(s *RedisStore) { s.margin = d } }

// Clock replaces time.Now, for tests.
func Clock(now func() time.Time) RedisOption { return func(s *RedisStore) { s.now = now } }

// NewRedisStore stores product's entities under "meshlet:<product>:entity:<key>".
func NewRedisStore(rdb redis.UniversalClient, product string, opts ...RedisOption) *RedisStore {
	s := &RedisStore{rdb: rdb, prefix: "meshlet:" + product + ":entity:", margin: 24 * time.Hour, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

func (s *RedisStore) key(k []byte) string { return s.prefix + string(k) }

// applyScript merges one entry into an entity's timeline. Numbers are
// compared with tonumber (exact below 2^53: microseconds until year 2255)
// and never formatted back: bounds keep the text they arrived with.
var applyScript = redis.NewScript(`
local function parse(s)
  local out = {}
  if not s then return out end
  for line in string.gmatch(s, "[^\n]+") do
    local f = {}
    for w in string.gmatch(line, "[^ ]+") do f[#f+1] = w end
    out[#out+1] = {vf=f[1], vt=f[2], sys=f[3], log=f[4], seq=f[5], op=f[6], p=f[7], since=f[8] or f[3]}
  end
  return out
end
local function stop(x) if x.vt == "-" then return math.huge end return tonumber(x.vt) end
local function bytesLess(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local function before(p, q)
  local ps, qs = tonumber(p.sys), tonumber(q.sys)
  if ps ~= qs then return ps < qs end
  if p.log ~= q.log then return bytesLess(p.log, q.log) end
  return tonumber(p.seq) < tonumber(q.seq)
end
local function with(p, vf, vt, since)
  return {vf=vf, vt=vt, sys=p.sys, log=p.log, seq=p.seq, op=p.op, p=p.p, since=since}
end
local function later(x, y) if tonumber(y) > tonumber(x) then return y end return x end

local new = {vf=ARGV[1], vt=ARGV[2], sys=ARGV[3], log=ARGV[4], seq=ARGV[5], op=ARGV[6], p=ARGV[7], since=ARGV[3]}
local a, b = tonumber(new.vf), stop(new)
if b <= a then return 0 end
local old = redis.call("GET", KEYS[1])
local out, held = {}, {}
for _, p in ipairs(parse(old)) do
  local pa, pb = tonumber(p.vf), stop(p)
  if pb <= a or pa >= b then
    out[#out+1] = p
  elseif before(p, new) then
    local since = later(p.since, new.sys)
    if pa < a then out[#out+1] = with(p, p.vf, new.vf, since) end
    if pb > b then out[#out+1] = with(p, new.vt, p.vt, since) end
  else
    out[#out+1] = p
    held[#held+1] = p
  end
end
table.sort(held, function(x, y) return tonumber(x.vf) < tonumber(y.vf) end)
-- What the held pieces leave of the new entry's period is its own; where
-- a later entry's piece cut it, it is believed since that entry at least.
local at, atText, cut = a, new.vf, nil
for _, h in ipairs(held) do
  local ha, hb = tonumber(h.vf), stop(h)
  if ha > at then
    local since = new.sys
    if cut then since = later(since, cut.sys) end
    out[#out+1] = with(new, atText, h.vf, later(since, h.sys))
  end
  if hb > at then at, atText, cut = hb, h.vt, h end
end
if at < b then
  local since = new.sys
  if cut then since = later(since, cut.sys) end
  out[#out+1] = with(new, atText, new.vt, since)
end
local prune = ARGV[8]
local kept = {}
for _, p in ipairs(out) do
  if prune == "-" or p.vt == "-" or tonumber(p.vt) > tonumber(prune) then kept[#kept+1] = p end
end
table.sort(kept, function(x, y) return tonumber(x.vf) < tonumber(y.vf) end)
local lines = {}
for i, p in ipairs(kept) do
  lines[i] = table.concat({p.vf, p.vt, p.sys, p.log, p.seq, p.op, p.p, p.since}, " ")
end
local value = table.concat(lines, "\n")
if value == (old or "") then return 0 end
if value == "" then redis.call("DEL", KEYS[1]) else redis.call("SET", KEYS[1], value) end
return 1
`)

// Apply merges the entries into the entities' current state. The runtime
// calls it after each committed batch; calling it again with entries
// already applied, or late with entries of another log, is harmless.
func (s *RedisStore) Apply(ctx context.Context, facts ...auditlog.Fact) error {
	if len(facts) == 0 {
		return nil
	}
	// In merged order each entity's believed-since times come out exact.
	facts = slices.Clone(facts)
	slices.SortStableFunc(facts, func(a, b auditlog.Fact) int {
		return cmp.Or(cmp.Compare(a.SystemTime, b.SystemTime), strings.Compare(a.Log, b.Log), cmp.Compare(a.Seq, b.Seq))
	})
	prune := strconv.FormatInt(s.now().Add(-s.margin).UnixMicro(), 10)
	if s.margin < 0 {
		prune = "-"
	}
	args := make([][]any, len(facts))
	for i := range facts {
		f := &facts[i]
		if f.Log == "" || strings.ContainsAny(f.Log, " \n") {
			return fmt.Errorf("query: apply %q seq %d: log name must be non-empty, without spaces or newlines", f.Log, f.Seq)
		}
		vt, payload := "-", "-"
		if f.ValidTo != 0 {
			vt = strconv.FormatInt(f.ValidTo, 10)
		}
		if len(f.Payload) > 0 {
			payload = base64.StdEncoding.EncodeToString(f.Payload)
		}
		args[i] = []any{strconv.FormatInt(f.ValidFrom, 10), vt, strconv.FormatInt(f.SystemTime, 10), f.Log,
			strconv.FormatUint(f.Seq, 10), string(f.Op), payload, prune}
	}
	for attempt := 0; ; attempt++ {
		cmds, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range facts {
				applyScript.EvalSha(ctx, p, []string{s.key(facts[i].Entity())}, args[i]...)
			}
			return nil
		})
		if err != nil && attempt == 0 && noScript(cmds) {
			// A restarted or flushed Redis lost the script: load it and run
			// the whole batch again, which the merge makes safe.
			if err := applyScript.Load(ctx, s.rdb).Err(); err != nil {
				return fmt.Errorf("query: load apply script: %w", err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("query: apply %d entries to redis: %w", len(facts), err)
		}
		return nil
	}
}

func noScript(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if err := c.Err(); err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
			return true
		}
	}
	return false
}

// Current is an entity's current version as Redis holds it.
type Current struct {
	Key        []byte
	Log        string
	Seq        uint64
	SystemTime int64 // when the entry was recorded
	ValidFrom  int64 // the part of the entry's valid period still believed
	ValidTo    int64 // 0 = open
	SystemFrom int64 // since when that part has been believed (see RedisStore)
	Payload    []byte
}

// Get returns what is believed now about key at valid time validAt
// (normally now: earlier times may have been pruned). ok is false when the
// key is unknown or retracted at that time. Entities of a product's other
// output ports than the first are stored, and read, by their
// auditlog.EntityKey.
func (s *RedisStore) Get(ctx context.Context, key []byte, validAt int64) (Current, bool, error) {
	v, err := s.rdb.Get(ctx, s.key(key)).Result()
	if errors.Is(err, redis.Nil) {
		return Current{}, false, nil
	}
	if err != nil {
		return Current{}, false, fmt.Errorf("query: redis get %q: %w", key, err)
	}
	for _, line := range strings.Split(v, "\n") {
		f := strings.Split(line, " ")
		if len(f) == 7 {
			f = append(f, f[2]) // written before since was kept
		}
		if len(f) != 8 {
			return Current{}, false, fmt.Errorf("query: redis value of %q: bad piece %q", key, line)
		}
		vf, err1 := strconv.ParseInt(f[0], 10, 64)
		var vt int64
		var err2 error
		if f[1] != "-" {
			vt, err2 = strconv.ParseInt(f[1], 10, 64)
		}
		sys, err3 := strconv.ParseInt(f[2], 10, 64)
		seq, err4 := strconv.ParseUint(f[4], 10, 64)
		since, err5 := strconv.ParseInt(f[7], 10, 64)
		if err := errors.Join(err1, err2, err3, err4, err5); err != nil {
			return Current{}, false, fmt.Errorf("query: redis value of %q: %w", key, err)
		}
		if validAt < vf || (vt != 0 && validAt >= vt) {
			continue
		}
		if f[5] != string(auditlog.OpAssert) {
			return Current{}, false, nil
		}
		c := Current{Key: key, Log: f[3], Seq: seq, SystemTime: sys, ValidFrom: vf, ValidTo: vt, SystemFrom: since}
		if f[6] != "-" {
			if c.Payload, err = base64.StdEncoding.DecodeString(f[6]); err != nil {
				return Current{}, false, fmt.Errorf("query: redis value of %q: payload: %w", key, err)
			}
		}
		return c, true, nil
	}
	return Current{}, false, nil
}

// The applied mark of a log is the last seq of it Redis is known to hold:
// the runtime raises it after each Apply that succeeded, and on assignment
// applies the log's entries after it, so what Redis lacks (updates lost in
// an outage while the process restarted, a flushed Redis) is rebuilt from
// the change log.

func (s *RedisStore) appliedKey(log string) string {
	return strings.TrimSuffix(s.prefix, "entity:") + "applied:" + log
}

// raiseScript sets a mark to ARGV[1] unless it already is higher.
var raiseScript = redis.NewScript(`
local cur = tonumber(redis.call("GET", KEYS[1]) or "0")
if tonumber(ARGV[1]) > cur then redis.call("SET", KEYS[1], ARGV[1]) end
return 1
`)

// Applied is the last seq of log Redis holds (0: none known).
func (s *RedisStore) Applied(ctx context.Context, log string) (uint64, error) {
	v, err := s.rdb.Get(ctx, s.appliedKey(log)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("query: applied mark of %s: %w", log, err)
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("query: applied mark of %s is %q", log, v)
	}
	return n, nil
}

// MarkApplied raises log's mark to seq.
func (s *RedisStore) MarkApplied(ctx context.Context, log string, seq uint64) error {
	if err := raiseScript.Run(ctx, s.rdb, []string{s.appliedKey(log)}, strconv.FormatUint(seq, 10)).Err(); err != nil {
		return fmt.Errorf("query: raise applied mark of %s: %w", log, err)
	}
	return nil
}
