package control

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Status is how a command ended on one instance.
type Status string

const (
	// StatusApplied: the handler succeeded.
	StatusApplied Status = "applied"
	// StatusRejected: the command is invalid, or the handler refused it
	// (ErrRejected) or panicked. It is not retried; issue a corrected
	// command with a new ID.
	StatusRejected Status = "rejected"
	// StatusFailed: the handler kept failing with a transient error until
	// the retries ran out. The instance moved on (on Redis the command is
	// parked on the poison stream); publishing the same ID again retries it.
	StatusFailed Status = "failed"
)

// Outcome is the result of one command on one instance.
type Outcome struct {
	ID       string    `json:"id"`
	Kind     Kind      `json:"kind,omitempty"` // empty when the command could not be decoded
	Instance string    `json:"instance"`
	Status   Status    `json:"status"`
	Error    string    `json:"error,omitempty"` // why, when not applied
	Attempts int       `json:"attempts"`        // handler calls; 0 when rejected before the handler
	Handled  time.Time `json:"handled"`
}

// OK reports whether the command was applied.
func (o Outcome) OK() bool { return o.Status == StatusApplied }

// journal keeps outcomes by command ID, one per instance: an instance that
// handles a command again (after a failure) replaces its own outcome.
type journal interface {
	record(ctx context.Context, o Outcome) error
	results(ctx context.Context, id string) ([]Outcome, error)
}

// redisJournal keeps a hash per command,
// meshlet:<product>:control:outcome:<id>, field = instance, value = the
// outcome as JSON, expiring after the retention period.
type redisJournal struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

func newRedisJournal(rdb redis.UniversalClient, product string, ttl time.Duration) *redisJournal {
	return &redisJournal{rdb: rdb, prefix: "meshlet:" + product + ":control:outcome:", ttl: ttl}
}

func (j *redisJournal) record(ctx context.Context, o Outcome) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	key := j.prefix + o.ID
	_, err = j.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, o.Instance, b)
		p.Expire(ctx, key, j.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("control: record outcome of %s: %w", o.ID, err)
	}
	return nil
}

func (j *redisJournal) results(ctx context.Context, id string) ([]Outcome, error) {
	m, err := j.rdb.HGetAll(ctx, j.prefix+id).Result()
	if err != nil {
		return nil, fmt.Errorf("control: results of %s: %w", id, err)
	}
	out := make([]Outcome, 0, len(m))
	for instance, v := range m {
		var o Outcome
		if err := json.Unmarshal([]byte(v), &o); err != nil {
			return nil, fmt.Errorf("control: results of %s: outcome of instance %s: %w", id, instance, err)
		}
		out = append(out, o)
	}
	sortOutcomes(out)
	return out, nil
}

type memoryJournal struct {
	mu   sync.Mutex
	byID map[string]map[string]Outcome
}

func newMemoryJournal() *memoryJournal {
	return &memoryJournal{byID: map[string]map[string]Outcome{}}
}

func (j *memoryJournal) record(_ context.Context, o Outcome) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.byID[o.ID] == nil {
		j.byID[o.ID] = map[string]Outcome{}
	}
	j.byID[o.ID][o.Instance] = o
	return nil
}

func (j *memoryJournal) results(_ context.Context, id string) ([]Outcome, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	out := make([]Outcome, 0, len(j.byID[id]))
	for _, o := range j.byID[id] {
		out = append(out, o)
	}
	sortOutcomes(out)
	return out, nil
}

func sortOutcomes(out []Outcome) {
	slices.SortFunc(out, func(a, b Outcome) int { return strings.Compare(a.Instance, b.Instance) })
}
