package state

import (
	"encoding/json"
	"fmt"
	"time"
)

// Table is a typed view of one named table in a batch's Txn. It is a small
// value: make one where it is needed (Use), it costs nothing to keep.
//
// A table holds versions of each key, each valid from its ValidFrom until
// the next version's: Put asserts a value from a valid time on, Delete
// ends the key's value from a valid time on. A write at a valid time that
// already has a version replaces it (a correction); a write with an
// earlier valid time than the newest (back-dated) slots in between.
type Table[T any] struct {
	tx    *Txn
	name  string
	codec Codec[T]
}

// Codec turns a table's values into bytes and back.
type Codec[T any] interface {
	Encode(v *T) ([]byte, error)
	Decode(b []byte, v *T) error
}

// JSON is the default codec: encoding/json.
type JSON[T any] struct{}

func (JSON[T]) Encode(v *T) ([]byte, error) { return json.Marshal(v) }
func (JSON[T]) Decode(b []byte, v *T) error { return json.Unmarshal(b, v) }

// Use is table name of tx, its values read as T with the JSON codec.
func Use[T any](tx *Txn, name string) Table[T] { return Table[T]{tx: tx, name: name, codec: JSON[T]{}} }

// UseCodec is Use with a codec of one's own.
func UseCodec[T any](tx *Txn, name string, c Codec[T]) Table[T] {
	return Table[T]{tx: tx, name: name, codec: c}
}

// Name is the table's name.
func (t Table[T]) Name() string { return t.name }

// Version is one version of a key, with the period it holds for, as
// Kafka Streams' VersionedRecord has it.
type Version[T any] struct {
	Key        string
	Value      T
	ValidFrom  time.Time
	ValidTo    time.Time // zero: until further notice
	SystemTime time.Time // when the store learned it
	Deleted    bool      // a tombstone (only Versions returns them)
}

// Get is the key's newest version (by valid time); ok is false when the
// key has none or its newest is a delete.
func (t Table[T]) Get(key string) (v Version[T], ok bool, err error) {
	vs, err := t.tx.versions(t.name, key)
	if err != nil || len(vs) == 0 || vs[0].deleted {
		return v, false, err
	}
	return t.version(key, vs, 0)
}

// AsOf is the key's version valid at validTime; ok is false when none is
// (before the first version, or within a deleted period).
func (t Table[T]) AsOf(key string, validTime time.Time) (v Version[T], ok bool, err error) {
	vs, err := t.tx.versions(t.name, key)
	if err != nil {
		return v, false, err
	}
	at := validTime.UnixMicro()
	for i := range vs {
		if vs[i].validFrom <= at {
			if vs[i].deleted {
				return v, false, nil
			}
			return t.version(key, vs, i)
		}
	}
	return v, false, nil
}

// Versions are all the key's versions kept, tombstones included, newest
// valid time first.
func (t Table[T]) Versions(key string) ([]Version[T], error) {
	vs, err := t.tx.versions(t.name, key)
	if err != nil {
		return nil, err
	}
	out := make([]Version[T], 0, len(vs))
	for i := range vs {
		v, _, err := t.version(key, vs, i)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Put asserts value for key from validFrom on (until the key's next
// version, if a later one exists).
func (t Table[T]) Put(key string, validFrom time.Time, value T) error {
	b, err := t.codec.Encode(&value)
	if err != nil {
		return fmt.Errorf("state: table %s key %q: encode: %w", t.name, key, err)
	}
	return t.tx.write(t.name, key, validFrom.UnixMicro(), false, b)
}

// Delete ends key's value from validFrom on (until a later version, if
// one exists). The tombstone is kept even where nothing holds yet: a
// back-dated Put arriving after it then holds only up to the delete.
func (t Table[T]) Delete(key string, validFrom time.Time) error {
	return t.tx.write(t.name, key, validFrom.UnixMicro(), true, nil)
}

// Scan calls fn with the newest version of every key that starts with
// prefix and is not deleted, in key order.
func (t Table[T]) Scan(prefix string, fn func(v Version[T]) error) error {
	return t.tx.scan(t.name, prefix, func(key string, vs []version) error {
		if vs[0].deleted {
			return nil
		}
		v, _, err := t.version(key, vs, 0)
		if err != nil {
			return err
		}
		return fn(v)
	})
}

func (t Table[T]) version(key string, vs []version, i int) (Version[T], bool, error) {
	s := &vs[i]
	v := Version[T]{Key: key, ValidFrom: time.UnixMicro(s.validFrom), SystemTime: time.UnixMicro(s.systemTime), Deleted: s.deleted}
	if i > 0 {
		v.ValidTo = time.UnixMicro(vs[i-1].validFrom)
	}
	if !s.deleted {
		if err := t.codec.Decode(s.value, &v.Value); err != nil {
			return v, false, fmt.Errorf("%w: table %s key %q valid from %s: %w", ErrCorrupt, t.name, key, fmtMicros(s.validFrom), err)
		}
	}
	return v, true, nil
}
