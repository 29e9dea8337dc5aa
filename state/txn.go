package state

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// MutationOp is what a Mutation does to the version it names.
type MutationOp byte

const (
	// OpSet writes the version (a value, or a tombstone when Deleted).
	OpSet MutationOp = 's'
	// OpRemove removes the version from the store: it fell out of the
	// table's retention, or a version at the same valid time replaced it.
	OpRemove MutationOp = 'x'
)

// Mutation is one change to the store, exactly as the change log records
// it: applying a batch's mutations in order to the store as it was before
// the batch gives the store after it. Restore needs nothing else.
type Mutation struct {
	Op         MutationOp
	Table, Key string
	ValidFrom  int64 // unix µs: the version's start of validity
	SystemTime int64 // unix µs: when the store learned the version
	Deleted    bool  // a tombstone: the key holds no value from ValidFrom on
	Value      []byte
}

// version is one stored version of a key.
type version struct {
	validFrom, systemTime int64
	deleted               bool
	value                 []byte
}

// ErrRetention is returned by a Put or Delete whose valid time lies before
// the table's retention window: the version would be dropped at once.
var ErrRetention = errors.New("valid time before the table's retention window")

// Txn is one batch's view of the store: reads see the store as the batch
// began plus the batch's own writes; writes are kept in memory, as
// mutations, until Commit. Savepoint and Rollback take back one event's
// writes (an event that is dead-lettered publishes nothing, state
// included).
type Txn struct {
	s    *Store
	snap *pebble.Snapshot
	it   *pebble.Iterator

	touched map[string]*entity // by entity prefix
	byTable map[string]map[string]*entity
	muts    []Mutation
	undo    []undo
	sysTime int64
	now     func() int64
	key     []byte // scratch
}

// entity is the versions of one key the batch wrote, newest valid time first.
type entity struct {
	table, key string
	versions   []version
}

type undo struct {
	e    *entity
	prev []version
}

// Savepoint marks a place in a Txn to roll back to.
type Savepoint struct{ muts, undo int }

// Begin starts a batch's Txn.
func (s *Store) Begin() *Txn {
	return &Txn{
		s: s, snap: s.db.NewSnapshot(),
		touched: map[string]*entity{}, byTable: map[string]map[string]*entity{},
		now: func() int64 { return time.Now().UnixMicro() },
	}
}

// SetSystemTime fixes the system time of the versions written from now on
// (unix µs), for callers with a clock of their own (tests, replays).
// Without it a Txn stamps max(now, previous+1).
func (t *Txn) SetSystemTime(us int64) { t.sysTime = us; t.now = nil }

func (t *Txn) stamp() int64 {
	if t.now != nil {
		t.sysTime = max(t.now(), t.sysTime+1)
	}
	return t.sysTime
}

// Mutations are the batch's writes so far, in order.
func (t *Txn) Mutations() []Mutation { return t.muts }

// Savepoint marks the Txn's current state.
func (t *Txn) Savepoint() Savepoint { return Savepoint{len(t.muts), len(t.undo)} }

// Rollback takes back every write since sp.
func (t *Txn) Rollback(sp Savepoint) {
	for i := len(t.undo) - 1; i >= sp.undo; i-- {
		t.undo[i].e.versions = t.undo[i].prev
	}
	t.undo = t.undo[:sp.undo]
	t.muts = t.muts[:sp.muts]
}

// Commit writes the batch's mutations and m, the mark of the change-log
// entry that carries the last of them, to the store atomically, and ends
// the Txn. Call it once the batch's Kafka transaction has committed.
func (t *Txn) Commit(m Mark) error {
	defer t.Discard()
	return t.s.Apply(t.muts, m)
}

// Discard ends the Txn without writing anything.
func (t *Txn) Discard() {
	if t.it != nil {
		t.it.Close()
		t.it = nil
	}
	if t.snap != nil {
		t.snap.Close()
		t.snap = nil
	}
}

// versions returns the versions of (table, key), newest valid time first.
// The slice is the Txn's own or fresh: callers must not modify it.
func (t *Txn) versions(table, key string) ([]version, error) {
	t.key = appendEntity(t.key[:0], table, key)
	if e, ok := t.touched[string(t.key)]; ok {
		return e.versions, nil
	}
	return t.load(t.key)
}

// load reads an entity's versions from the snapshot.
func (t *Txn) load(prefix []byte) ([]version, error) {
	var vs []version
	err := t.iterate(prefix, func(k, v []byte) error {
		if len(k) != len(prefix)+8 {
			return nil // a longer key sharing the prefix cannot happen: the terminator ends it
		}
		ver, err := parseStoredValue(v, decodeValidTime(k[len(prefix):]))
		if err != nil {
			return err
		}
		vs = append(vs, ver)
		return nil
	})
	return vs, err
}

func (t *Txn) iterate(prefix []byte, fn func(k, v []byte) error) error {
	lower := append([]byte(nil), prefix...)
	upper := upperBound(prefix)
	if t.it == nil {
		it, err := t.snap.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
		if err != nil {
			return fmt.Errorf("state store %s: %w", t.s.dir, err)
		}
		t.it = it
	} else {
		t.it.SetBounds(lower, upper)
	}
	for ok := t.it.First(); ok; ok = t.it.Next() {
		v, err := t.it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("state store %s: %w", t.s.dir, err)
		}
		if err := fn(t.it.Key(), v); err != nil {
			return err
		}
	}
	if err := t.it.Error(); err != nil {
		return fmt.Errorf("state store %s: %w", t.s.dir, err)
	}
	return nil
}

// entity returns the Txn's copy of (table, key), loading it on first touch,
// and records its state for Rollback.
func (t *Txn) entity(table, key string) (*entity, error) {
	t.key = appendEntity(t.key[:0], table, key)
	e, ok := t.touched[string(t.key)]
	if !ok {
		vs, err := t.load(t.key)
		if err != nil {
			return nil, err
		}
		e = &entity{table: table, key: key, versions: vs}
		t.touched[string(t.key)] = e
		m := t.byTable[table]
		if m == nil {
			m = map[string]*entity{}
			t.byTable[table] = m
		}
		m[key] = e
	}
	t.undo = append(t.undo, undo{e: e, prev: e.versions})
	return e, nil
}

// write sets a version (a value, or a tombstone) of (table, key) at
// validFrom, replacing one at the same valid time, and drops the versions
// that fall out of the table's retention.
func (t *Txn) write(table, key string, validFrom int64, deleted bool, value []byte) error {
	if table == "" {
		return fmt.Errorf("state: a table needs a name")
	}
	e, err := t.entity(table, key)
	if err != nil {
		return err
	}
	vs := e.versions
	nv := version{validFrom: validFrom, systemTime: t.stamp(), deleted: deleted, value: value}
	// Copy on write: the undo record keeps the old slice.
	out := make([]version, 0, len(vs)+1)
	i := 0
	for ; i < len(vs) && vs[i].validFrom > validFrom; i++ {
		out = append(out, vs[i])
	}
	ni := len(out)
	out = append(out, nv)
	if i < len(vs) && vs[i].validFrom == validFrom {
		i++ // replaced; the Set below overwrites it in the store
	}
	out = append(out, vs[i:]...)
	t.muts = append(t.muts, Mutation{Op: OpSet, Table: table, Key: key, ValidFrom: validFrom, SystemTime: nv.systemTime, Deleted: deleted, Value: value})
	if r := t.s.retain(table); r > 0 {
		horizon := out[0].validFrom - r
		// Version j holds until version j-1 starts; drop those that end at or before the horizon.
		keep := len(out)
		for j := 1; j < len(out); j++ {
			if out[j-1].validFrom <= horizon {
				keep = j
				break
			}
		}
		if ni >= keep {
			// The new version itself ends before the horizon.
			t.muts = t.muts[:len(t.muts)-1]
			t.undo = t.undo[:len(t.undo)-1]
			return fmt.Errorf("state: table %s key %q: %w (valid from %s, newest version from %s, retention %s)", table, key, ErrRetention,
				fmtMicros(validFrom), fmtMicros(out[0].validFrom), time.Duration(r)*time.Microsecond)
		}
		for _, old := range out[keep:] {
			t.muts = append(t.muts, Mutation{Op: OpRemove, Table: table, Key: key, ValidFrom: old.validFrom, SystemTime: nv.systemTime})
		}
		out = out[:keep]
	}
	e.versions = out
	return nil
}

// scan calls fn with the versions of each key of table starting with
// prefix, in key order, the batch's writes included.
func (t *Txn) scan(table, prefix string, fn func(key string, vs []version) error) error {
	type kv struct {
		key string
		vs  []version
	}
	var stored []kv
	p := appendTablePrefix(nil, table, prefix)
	err := t.iterate(p, func(k, v []byte) error {
		_, key, vf, err := splitVersionKey(k)
		if err != nil {
			return err
		}
		ver, err := parseStoredValue(v, vf)
		if err != nil {
			return err
		}
		if n := len(stored); n > 0 && stored[n-1].key == key {
			stored[n-1].vs = append(stored[n-1].vs, ver)
		} else {
			stored = append(stored, kv{key, []version{ver}})
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The batch's entities replace what the store had for them.
	var mine []kv
	for key, e := range t.byTable[table] {
		if len(key) >= len(prefix) && key[:len(prefix)] == prefix {
			mine = append(mine, kv{key, e.versions})
		}
	}
	slices.SortFunc(mine, func(a, b kv) int { return strings.Compare(a.key, b.key) })
	i, j := 0, 0
	for i < len(stored) || j < len(mine) {
		var next kv
		switch {
		case j >= len(mine) || i < len(stored) && stored[i].key < mine[j].key:
			next = stored[i]
			i++
		case i >= len(stored) || mine[j].key < stored[i].key:
			next = mine[j]
			j++
		default:
			next = mine[j]
			i++
			j++
		}
		if len(next.vs) == 0 {
			continue
		}
		if err := fn(next.key, next.vs); err != nil {
			return err
		}
	}
	return nil
}

func fmtMicros(us int64) string { return time.UnixMicro(us).UTC().Format(time.RFC3339Nano) }
