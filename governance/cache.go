package governance

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// DefaultCacheSize is the number of subjects Cached keeps when given a
// size below 1.
const DefaultCacheSize = 65536

// CachedKeys is a KeyStore with a bounded, least-recently-used cache of
// keys in front of another. It caches keys only, never their absence: a
// subject without a key may get one from another replica at any moment.
type CachedKeys struct {
	ks   KeyStore
	size int

	mu        sync.Mutex
	bySubject map[string]*list.Element // of *cachedKey
	lru       list.List                // front: most recently used
	epoch     uint64                   // bumped by every Invalidate
}

type cachedKey struct {
	subject string
	key     Key
}

// Cached puts a cache of up to size subjects in front of ks. Cached keys
// outlive a Destroy made through another CachedKeys (another replica), so
// every replica must call Invalidate when a forget command arrives.
func Cached(ks KeyStore, size int) *CachedKeys {
	if size < 1 {
		size = DefaultCacheSize
	}
	return &CachedKeys{ks: ks, size: size, bySubject: map[string]*list.Element{}}
}

// Invalidate drops the subject's key from the cache, and makes any fill
// that started before it be thrown away rather than cached.
func (c *CachedKeys) Invalidate(subject string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if e, ok := c.bySubject[subject]; ok {
		c.lru.Remove(e)
		delete(c.bySubject, subject)
	}
}

func (c *CachedKeys) Current(ctx context.Context, subject string) (Key, error) {
	return c.fill(ctx, subject, c.ks.Current)
}

func (c *CachedKeys) Lookup(ctx context.Context, subject string) (Key, error) {
	return c.fill(ctx, subject, c.ks.Lookup)
}

func (c *CachedKeys) fill(ctx context.Context, subject string, from func(context.Context, string) (Key, error)) (Key, error) {
	c.mu.Lock()
	if e, ok := c.bySubject[subject]; ok {
		c.lru.MoveToFront(e)
		k := e.Value.(*cachedKey).key
		c.mu.Unlock()
		return k, nil
	}
	epoch := c.epoch
	c.mu.Unlock()

	k, err := from(ctx, subject)
	if err != nil {
		return k, err
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	// A key read before an Invalidate may be the one it dropped.
	if c.epoch != epoch {
		return k, nil
	}
	if e, ok := c.bySubject[subject]; ok {
		c.lru.MoveToFront(e)
		e.Value.(*cachedKey).key = k
		return k, nil
	}
	if c.lru.Len() >= c.size {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.bySubject, old.Value.(*cachedKey).subject)
	}
	c.bySubject[subject] = c.lru.PushFront(&cachedKey{subject: subject, key: k})
	return k, nil
}

func (c *CachedKeys) Destroy(ctx context.Context, subject string) error {
	err := c.ks.Destroy(ctx, subject)
	c.Invalidate(subject)
	return err
}

func (c *CachedKeys) Forgotten(ctx context.Context, subject string) (time.Time, bool, error) {
	return c.ks.Forgotten(ctx, subject)
}

// Len is the number of subjects cached.
func (c *CachedKeys) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
