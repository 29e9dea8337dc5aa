package state

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// Store is the state of one task (the partitions of one number across the
// product's co-partitioned input topics): every table's versions in one
// embedded pebble database on disk, and the mark of the last change-log
// entry they reflect. Memory stays bounded whatever the number of keys:
// pebble keeps a block cache and memtables of fixed size and the rest on
// disk.
//
// A Store is used by one goroutine at a time: Begin a Txn per batch,
// Commit or Discard it, then Begin the next.
type Store struct {
	db        *pebble.DB
	dir       string
	mark      Mark
	retention map[string]int64 // µs per table; 0 keeps every version
	retainAll int64
}

// Mark names the last change-log entry a store reflects: its sequence
// number and chain hash, so a store can tell whether the log it is caught
// up from is the history it was built from (see Restore).
type Mark struct {
	Seq  uint64
	Hash [32]byte
}

// Option configures Open.
type Option func(*options)

type options struct {
	cacheBytes    int64
	memtableBytes uint64
	retention     map[string]time.Duration
	retainAll     time.Duration
}

// CacheSize sets pebble's block cache (default 8 MiB).
func CacheSize(n int64) Option { return func(o *options) { o.cacheBytes = n } }

// MemtableSize sets the size of each of pebble's memtables (default 4 MiB).
func MemtableSize(n uint64) Option { return func(o *options) { o.memtableBytes = n } }

// Retain keeps, for table, the versions still valid within d of the newest
// version of each key, and drops older ones as newer versions arrive (a
// key's newest version is always kept). Zero, the default, keeps all.
func Retain(table string, d time.Duration) Option {
	return func(o *options) {
		if o.retention == nil {
			o.retention = map[string]time.Duration{}
		}
		o.retention[table] = d
	}
}

// RetainAll is Retain for every table without one of its own.
func RetainAll(d time.Duration) Option { return func(o *options) { o.retainAll = d } }

// ErrCorrupt marks a store whose contents cannot be read back; rebuild it
// from the change log (Clear, then Restore).
var ErrCorrupt = errors.New("state store corrupt")

// Open opens (creating if needed) the store in dir.
func Open(dir string, opts ...Option) (*Store, error) {
	o := options{cacheBytes: 8 << 20, memtableBytes: 4 << 20}
	for _, opt := range opts {
		opt(&o)
	}
	cache := pebble.NewCache(o.cacheBytes)
	defer cache.Unref()
	db, err := pebble.Open(dir, &pebble.Options{
		Cache:        cache,
		MemTableSize: o.memtableBytes,
		Logger:       quietLogger{},
	})
	if err != nil {
		return nil, fmt.Errorf("state store %s: %w", dir, err)
	}
	s := &Store{db: db, dir: dir, retention: map[string]int64{}, retainAll: o.retainAll.Microseconds()}
	for t, d := range o.retention {
		s.retention[t] = d.Microseconds()
	}
	if err := s.readMark(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) readMark() error {
	b, closer, err := s.db.Get([]byte(markKey))
	if errors.Is(err, pebble.ErrNotFound) {
		s.mark = Mark{}
		return nil
	}
	if err != nil {
		return fmt.Errorf("state store %s: read mark: %w", s.dir, err)
	}
	defer closer.Close()
	if len(b) != 8+32 {
		return fmt.Errorf("%w: %s: mark of %d bytes, want 40", ErrCorrupt, s.dir, len(b))
	}
	s.mark.Seq = beUint64(b)
	copy(s.mark.Hash[:], b[8:])
	return nil
}

// Dir is where the store lives.
func (s *Store) Dir() string { return s.dir }

// Mark is the last change-log entry the store reflects (zero: none).
func (s *Store) Mark() Mark { return s.mark }

// Close closes the store. What Commit and Apply wrote survives a crash of
// the process; an OS crash may lose the newest batches, which Restore then
// applies again from the log, since the mark is written with them.
func (s *Store) Close() error { return s.db.Close() }

// retain is table's retention in µs (0: keep all).
func (s *Store) retain(table string) int64 {
	if d, ok := s.retention[table]; ok {
		return d
	}
	return s.retainAll
}

// Apply writes mutations read back from the change log, and the mark of
// the entry that carried the last of them, in one atomic pebble batch.
func (s *Store) Apply(muts []Mutation, m Mark) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := writeMutations(b, muts, m); err != nil {
		return err
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("state store %s: %w", s.dir, err)
	}
	s.mark = m
	return nil
}

// Clear removes every version and the mark, so the store can be rebuilt
// from the change log from its first entry.
func (s *Store) Clear() error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.DeleteRange([]byte{0}, []byte{0xFF}, nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("state store %s: clear: %w", s.dir, err)
	}
	s.mark = Mark{}
	return nil
}

func writeMutations(b *pebble.Batch, muts []Mutation, m Mark) error {
	var k, v []byte
	for i := range muts {
		mu := &muts[i]
		k = appendValidTime(appendEntity(k[:0], mu.Table, mu.Key), mu.ValidFrom)
		switch mu.Op {
		case OpSet:
			v = appendStoredValue(v[:0], &version{validFrom: mu.ValidFrom, systemTime: mu.SystemTime, deleted: mu.Deleted, value: mu.Value})
			if err := b.Set(k, v, nil); err != nil {
				return err
			}
		case OpRemove:
			if err := b.Delete(k, nil); err != nil {
				return err
			}
		default:
			return fmt.Errorf("state: mutation %d of table %s key %q has unknown op %d", i, mu.Table, mu.Key, mu.Op)
		}
	}
	mb := make([]byte, 8, 40)
	putBeUint64(mb, m.Seq)
	mb = append(mb, m.Hash[:]...)
	return b.Set([]byte(markKey), mb, nil)
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

func putBeUint64(b []byte, v uint64) {
	for i := 7; i >= 0; i-- {
		b[i] = byte(v)
		v >>= 8
	}
}

// quietLogger keeps pebble's routine notices (WAL recovery, compactions)
// out of the product's log and passes its errors on.
type quietLogger struct{}

func (quietLogger) Infof(string, ...any) {}
func (quietLogger) Errorf(format string, args ...any) {
	slog.Error("state store: pebble: " + fmt.Sprintf(format, args...))
}
func (quietLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}
