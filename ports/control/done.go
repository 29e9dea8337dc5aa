package control

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Done remembers which command IDs one instance has handled, so a command
// delivered again (redelivery after a crash, or an issuer publishing the
// same ID twice) does not run again. The bus asks Has before running a
// handler and calls Add only after the handler finished and its outcome was
// recorded.
type Done interface {
	Has(ctx context.Context, id string) (bool, error)
	Add(ctx context.Context, id string) error
}

// DefaultRetention is how long Redis keeps done records and outcomes: a
// redelivery or an issuer's retry comes long before it.
const DefaultRetention = 7 * 24 * time.Hour

// RedisDone keeps one key per handled command,
// meshlet:<product>:control:done:<instance>:<id>, expiring after the
// retention period.
type RedisDone struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRedisDone records the commands instance of product handled; ttl <= 0
// means DefaultRetention.
func NewRedisDone(rdb redis.UniversalClient, product, instance string, ttl time.Duration) *RedisDone {
	if ttl <= 0 {
		ttl = DefaultRetention
	}
	return &RedisDone{rdb: rdb, prefix: "meshlet:" + product + ":control:done:" + instance + ":", ttl: ttl}
}

// Has reports whether id was recorded.
func (d *RedisDone) Has(ctx context.Context, id string) (bool, error) {
	n, err := d.rdb.Exists(ctx, d.prefix+id).Result()
	return n > 0, err
}

// Add records id with SET NX: the first record, and its time, stay.
func (d *RedisDone) Add(ctx context.Context, id string) error {
	return d.rdb.SetNX(ctx, d.prefix+id, time.Now().UTC().Format(time.RFC3339Nano), d.ttl).Err()
}

// MemoryDone keeps handled IDs in memory, for the channel bus: they live as
// long as the process, as the bus itself does.
type MemoryDone struct {
	mu  sync.Mutex
	ids map[string]struct{}
}

// NewMemoryDone returns an empty MemoryDone.
func NewMemoryDone() *MemoryDone { return &MemoryDone{ids: map[string]struct{}{}} }

// Has reports whether id was recorded.
func (d *MemoryDone) Has(_ context.Context, id string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.ids[id]
	return ok, nil
}

// Add records id.
func (d *MemoryDone) Add(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ids[id] = struct{}{}
	return nil
}
