package governance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrForgotten means a subject has no key: it was destroyed, or never
// made. It is the only error that lets a reader treat sealed fields as
// erased.
var ErrForgotten = errors.New("seal: subject forgotten: no key")

// ErrKeyStore wraps a failure to get a subject's key while sealing (the
// store is unreachable): no fault of the record, so worth retrying.
var ErrKeyStore = errors.New("seal: key store")

// KeyID names one key of a subject. It is stored with every envelope, so
// data sealed under a destroyed key stays unreadable after the subject is
// given a new one.
type KeyID [8]byte

func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// Key is a subject's AES-256 key.
type Key struct {
	ID     KeyID
	Secret [32]byte
}

// newKey draws a key from crypto/rand, which cannot fail.
func newKey() Key {
	var k Key
	rand.Read(k.ID[:])
	rand.Read(k.Secret[:])
	return k
}

// KeyStore holds the current key of every data subject.
type KeyStore interface {
	// Current returns the subject's key, creating it if there is none.
	// Concurrent callers, in any process sharing the store, get the same
	// key.
	Current(ctx context.Context, subject string) (Key, error)
	// Lookup returns the subject's key for reading, or ErrForgotten. Any
	// other error (the store unreachable) must not be taken for erasure.
	Lookup(ctx context.Context, subject string) (Key, error)
	// Destroy records the forget of the subject, then deletes its key, in
	// that order (Open relies on it). Destroying a subject with no key
	// records the forget all the same; it is safe to retry.
	Destroy(ctx context.Context, subject string) error
	// Forgotten reports whether, and when last, a forget of the subject
	// was recorded.
	Forgotten(ctx context.Context, subject string) (at time.Time, ok bool, err error)
}

// keyValue is how a key is stored: a version byte, the id, the secret.
const keyValueLen = 1 + 8 + 32

func (k Key) value() []byte {
	b := make([]byte, 0, keyValueLen)
	b = append(b, 1)
	b = append(b, k.ID[:]...)
	return append(b, k.Secret[:]...)
}

func parseKeyValue(b []byte) (Key, error) {
	var k Key
	if len(b) != keyValueLen || b[0] != 1 {
		return k, fmt.Errorf("seal: stored key is %d bytes with version %d, want %d bytes with version 1", len(b), firstByte(b), keyValueLen)
	}
	copy(k.ID[:], b[1:9])
	copy(k.Secret[:], b[9:])
	return k, nil
}

func firstByte(b []byte) int {
	if len(b) == 0 {
		return -1
	}
	return int(b[0])
}

// RedisKeys keeps a product's subject keys in Redis: the key of a subject
// under meshlet:<product>:keys:<subject>, forget times in the hash
// meshlet:<product>:forgotten (subject -> unix milliseconds).
//
// Redis must be as durable as the change log is long-lived: a lost key is
// a forgotten subject. Put Cached in front of it on the write path.
func RedisKeys(rdb redis.UniversalClient, product string) KeyStore {
	return &redisKeys{rdb: rdb, prefix: "meshlet:" + product + ":keys:", forgotten: "meshlet:" + product + ":forgotten"}
}

type redisKeys struct {
	rdb       redis.UniversalClient
	prefix    string
	forgotten string
}

func (s *redisKeys) Current(ctx context.Context, subject string) (Key, error) {
	name := s.prefix + subject
	// A Destroy can land between SET NX and the re-read; then try again,
	// a few times, rather than return a key that no longer exists.
	for range 3 {
		k, err := s.get(ctx, name)
		if !errors.Is(err, ErrForgotten) {
			return k, err
		}
		if err := s.rdb.SetNX(ctx, name, newKey().value(), 0).Err(); err != nil {
			return Key{}, fmt.Errorf("seal: redis: create key: %w", err)
		}
		// Re-read rather than trust our own SET: a racing replica's may
		// have won, and every replica must seal under the same key.
		k, err = s.get(ctx, name)
		if !errors.Is(err, ErrForgotten) {
			return k, err
		}
	}
	return Key{}, errors.New("seal: redis: the subject's key is destroyed as fast as it is created")
}

func (s *redisKeys) Lookup(ctx context.Context, subject string) (Key, error) {
	return s.get(ctx, s.prefix+subject)
}

func (s *redisKeys) get(ctx context.Context, name string) (Key, error) {
	b, err := s.rdb.Get(ctx, name).Bytes()
	if errors.Is(err, redis.Nil) {
		return Key{}, ErrForgotten
	}
	if err != nil {
		return Key{}, fmt.Errorf("seal: redis: read key: %w", err)
	}
	return parseKeyValue(b)
}

func (s *redisKeys) Destroy(ctx context.Context, subject string) error {
	// Record first, delete second: a reader finding no key checks that a
	// forget was recorded (see Open), so it must never see the key gone
	// and the record not yet there. If the delete fails, the caller
	// retries; recording again only moves the time.
	if err := s.rdb.HSet(ctx, s.forgotten, subject, time.Now().UnixMilli()).Err(); err != nil {
		return fmt.Errorf("seal: redis: record forget: %w", err)
	}
	if err := s.rdb.Del(ctx, s.prefix+subject).Err(); err != nil {
		return fmt.Errorf("seal: redis: forget recorded, but destroying the key failed (retry): %w", err)
	}
	return nil
}

func (s *redisKeys) Forgotten(ctx context.Context, subject string) (time.Time, bool, error) {
	v, err := s.rdb.HGet(ctx, s.forgotten, subject).Result()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("seal: redis: read forget: %w", err)
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("seal: redis: forget time %q: %w", v, err)
	}
	return time.UnixMilli(ms), true, nil
}

// MemoryKeys keeps keys in this process only, for tests and `meshlet dev`
// without Redis. Its keys die with the process, which forgets everyone.
func MemoryKeys() KeyStore {
	return &memoryKeys{keys: map[string]Key{}, forgotten: map[string]time.Time{}}
}

type memoryKeys struct {
	mu        sync.Mutex
	keys      map[string]Key
	forgotten map[string]time.Time
}

func (s *memoryKeys) Current(_ context.Context, subject string) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[subject]
	if !ok {
		k = newKey()
		s.keys[subject] = k
	}
	return k, nil
}

func (s *memoryKeys) Lookup(_ context.Context, subject string) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.keys[subject]; ok {
		return k, nil
	}
	return Key{}, ErrForgotten
}

func (s *memoryKeys) Destroy(_ context.Context, subject string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, subject)
	s.forgotten[subject] = time.Now()
	return nil
}

func (s *memoryKeys) Forgotten(_ context.Context, subject string) (time.Time, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.forgotten[subject]
	return at, ok, nil
}
