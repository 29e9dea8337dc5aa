package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/governance"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/ports/query"
	"github.com/redis/go-redis/v9"
)

// serving is what a product does with committed batches beyond Kafka: sign
// checkpoints of its change logs, keep the current state in Redis for the
// query port, and serve the management port.
type serving struct {
	log                *slog.Logger
	checkpointInterval time.Duration
	// publish sends each signed checkpoint to Kafka too; nil: kept beside
	// the log only.
	publish func(ctx context.Context, key partitionKey, size uint64, note []byte)

	signer         note.Signer
	lastCheckpoint time.Time
	// checkpointing is a background round of checkpoints; logs are not
	// closed while it runs.
	checkpointing sync.WaitGroup
	busy          atomic.Bool

	rdb     *redis.Client // nil without Redis
	current *query.RedisStore
	pending []auditlog.Fact // committed facts Redis has not taken yet
	// behind: an apply to Redis failed, or Redis lost what it held. Redis
	// may come back empty (a restart without persistence), so it catches
	// up from the logs, from its applied marks, not from pending alone.
	behind bool
	marks  map[string]uint64 // the applied mark this replica last set per log

	store *auditlog.Store
	mgmt  *mgmt.Server
	http  *http.Server
	addr  net.Addr
}

// maxPendingFacts bounds what is kept for Redis while it is unreachable.
const maxPendingFacts = 1_000_000

// servingDeps is what serving needs to start.
type servingDeps struct {
	dataDir, product, registryURL string
	httpAddr                      string
	rdb                           *redis.Client // nil: no current-state store
	keys                          governance.KeyStore
	checkpointInterval            time.Duration
	ports                         []string // the output ports, first first
	log                           *slog.Logger
	// management builds the listener's routes around the query handler.
	management func(query http.Handler) *mgmt.Server
}

func (r *Runner) servingDeps() servingDeps {
	d := servingDeps{
		dataDir: r.cfg.dataDir, product: r.product.Manifest.ID, registryURL: r.cfg.registryURL,
		httpAddr: r.cfg.httpAddr, rdb: r.rdb, checkpointInterval: r.cfg.checkpointInterval,
		log: r.log, management: r.management, ports: r.outputs.names(),
	}
	if k := r.keys(); k != nil {
		d.keys = k
	}
	return d
}

func startServing(ctx context.Context, d servingDeps) (*serving, error) {
	s := &serving{log: d.log, checkpointInterval: d.checkpointInterval}
	var err error
	var verifier note.Verifier
	s.signer, verifier, err = auditlog.LoadOrCreateKey(d.dataDir, d.product)
	if err != nil {
		return nil, fmt.Errorf("checkpoint key: %w", err)
	}
	if d.rdb != nil {
		if err := d.rdb.Ping(ctx).Err(); err != nil {
			s.log.Warn("redis unreachable; current state will catch up when it is back", "addr", d.rdb.Options().Addr, "err", err)
		}
		s.rdb, s.current = d.rdb, query.NewRedisStore(d.rdb, d.product)
	}
	if d.httpAddr == "" {
		return s, nil
	}
	logs := filepath.Join(d.dataDir, "changelog")
	if err := os.MkdirAll(logs, 0o750); err != nil {
		return nil, err
	}
	if s.store, err = auditlog.OpenStore(logs); err != nil {
		return nil, fmt.Errorf("query port: %w", err)
	}
	dec, err := query.NewDecoder(query.SchemaDir(d.dataDir), d.registryURL)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("query port: %w", err)
	}
	if d.keys != nil {
		dec.Keys = d.keys
	}
	q := &query.Handler{Store: s.store, Current: s.current, Decoder: dec, Verifier: verifier, Log: s.log, Ports: d.ports}
	s.mgmt = d.management(q)
	ln, err := s.mgmt.Listen(d.httpAddr)
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("management port %s: %w", d.httpAddr, err)
	}
	s.addr = ln.Addr()
	s.http = s.mgmt.HTTPServer()
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("management port stopped", "addr", s.addr, "err", err)
		}
	}()
	s.log.Info("management port listening", "addr", s.addr)
	return s, nil
}

// HTTPAddr is where the management port listens, nil when it is off.
func (r *Runner) HTTPAddr() net.Addr { return r.serve.addr }

// afterCommit runs once a batch's transaction committed: its entries go to
// Redis, and the logs are checkpointed when the interval has passed. Neither
// may fail the batch: Redis catches up later, checkpoints are retried.
func (s *serving) afterCommit(ctx context.Context, parts *partitions) {
	if s.current != nil {
		parts.each(func(p *partition) {
			name := p.key.String()
			for i := range p.committed {
				f := auditlog.Fact{Log: name, Entry: p.committed[i]}
				s.pending = append(s.pending, f.Clone())
			}
			p.committed = p.committed[:0]
		})
		if !s.behind {
			s.checkMarks(ctx)
		}
		if s.behind {
			s.catchUp(ctx, parts)
		} else {
			err := s.current.Apply(ctx, s.pending...)
			if err == nil {
				err = s.markApplied(ctx, s.pending)
			}
			if err != nil {
				s.behind = true
				s.log.Warn("redis apply failed; the current state catches up from the change logs once it answers", "pending", len(s.pending), "err", err)
			} else {
				s.pending = s.pending[:0]
			}
		}
		if len(s.pending) > maxPendingFacts {
			// The logs hold them all: catching up rebuilds from there.
			s.pending = s.pending[len(s.pending)-maxPendingFacts:]
		}
	}
	if time.Since(s.lastCheckpoint) >= s.checkpointInterval && !s.busy.Load() {
		s.checkpointInBackground(parts)
	}
}

// checkMarks compares Redis's applied marks of the logs about to be
// applied with the ones this replica set: a lower mark means Redis lost
// its state (restarted without persistence, flushed), which its answers
// to applies would never show.
func (s *serving) checkMarks(ctx context.Context) {
	seen := map[string]bool{}
	for i := range s.pending {
		log := s.pending[i].Log
		if seen[log] || s.marks[log] == 0 {
			continue
		}
		seen[log] = true
		got, err := s.current.Applied(ctx, log)
		if err != nil || got < s.marks[log] {
			s.behind = true
			if err == nil {
				s.log.Warn("redis lost the current state (restarted or flushed); rebuilding it from the change logs", "log", log, "applied_mark", got, "set", s.marks[log])
			}
			return
		}
	}
}

// lagging reports that Redis's current state is behind the committed logs.
func (s *serving) lagging() bool { return s != nil && s.behind }

// catchUp brings Redis level with the open logs after it failed: each
// log's entries past its applied mark, which covers a Redis that lost
// everything as well as one that only missed the pending updates. It runs
// between batches (after a commit, or when the loop is idle).
func (s *serving) catchUp(ctx context.Context, parts *partitions) {
	if s == nil || !s.behind {
		return
	}
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return // still down: the next commit or idle poll tries again
	}
	ok := true
	parts.each(func(p *partition) {
		if ok && s.rebuild(ctx, p) != nil {
			ok = false
		}
	})
	if ok {
		s.behind = false
		s.pending = s.pending[:0]
		s.log.Info("redis answers again; the current state caught up from the change logs")
	}
}

// markApplied raises each log's applied mark in Redis to the last entry of
// it in facts.
func (s *serving) markApplied(ctx context.Context, facts []auditlog.Fact) error {
	last := map[string]uint64{}
	for i := range facts {
		last[facts[i].Log] = max(last[facts[i].Log], facts[i].Seq)
	}
	for log, seq := range last {
		if err := s.current.MarkApplied(ctx, log, seq); err != nil {
			return err
		}
		if s.marks == nil {
			s.marks = map[string]uint64{}
		}
		s.marks[log] = max(s.marks[log], seq)
	}
	return nil
}

// rebuild applies to Redis the entries of p's log after its applied mark:
// what Redis lost while this or another replica was down, or all of it
// after a flush. It runs on assignment; a Redis that is down is left to
// the next assignment (and to the batches, for what they commit).
func (s *serving) rebuild(ctx context.Context, p *partition) error {
	if s == nil || s.current == nil {
		return nil
	}
	name := p.key.String()
	from, err := s.current.Applied(ctx, name)
	if err != nil {
		s.behind = true
		s.log.Warn("redis: cannot read what it holds of a log; its current state is rebuilt once it answers", "log", name, "err", err)
		return err
	}
	n, _, _ := p.log.Tail()
	if from >= n {
		return nil
	}
	var facts []auditlog.Fact
	applied := uint64(0)
	flush := func() error {
		if err := s.current.Apply(ctx, facts...); err != nil {
			return err
		}
		if err := s.markApplied(ctx, facts); err != nil {
			return err
		}
		applied += uint64(len(facts))
		facts = facts[:0]
		return nil
	}
	err = p.log.Scan(from+1, func(e *auditlog.Entry) error {
		f := auditlog.Fact{Log: name, Entry: *e}
		facts = append(facts, f.Clone())
		if len(facts) >= 1000 {
			return flush()
		}
		return nil
	})
	if err == nil && len(facts) > 0 {
		err = flush()
	}
	if err != nil {
		s.behind = true
		s.log.Warn("redis: rebuilding the current state from the change log stopped; it goes on once Redis answers", "log", name, "applied", applied, "err", err)
		return err
	}
	s.log.Info("redis: current state rebuilt from the change log", "log", name, "entries", applied, "from_seq", from+1)
	return nil
}

// checkpointInBackground signs a checkpoint of every open change log up to
// the entries committed now, while the next batches run: signing reads back
// every entry since the last checkpoint, which would stall the loop for as
// long. The sizes are taken here, after the commit, so a checkpoint never
// covers an entry that a later abort could take back.
func (s *serving) checkpointInBackground(parts *partitions) {
	type target struct {
		key  partitionKey
		log  *auditlog.Log
		size uint64
	}
	var targets []target
	parts.each(func(p *partition) {
		seq, _, _ := p.log.Tail()
		targets = append(targets, target{p.key, p.log, seq})
	})
	s.lastCheckpoint = time.Now()
	s.busy.Store(true)
	s.checkpointing.Add(1)
	go func() {
		defer s.checkpointing.Done()
		defer s.busy.Store(false)
		for _, t := range targets {
			msg, err := t.log.CheckpointAt(s.signer, t.size)
			if err != nil {
				s.log.Error("checkpoint failed; will retry", "dir", t.log.Dir(), "err", err)
				continue
			}
			s.published(t.key, t.size, msg)
		}
	}()
}

// checkpoint signs a checkpoint of p's whole log. It runs between batches
// (on revoke, on close), when every entry is committed, after any
// background round has finished.
func (s *serving) checkpoint(p *partition) {
	if s == nil || s.signer == nil {
		return
	}
	s.checkpointing.Wait()
	msg, err := p.log.Checkpoint(s.signer)
	if err != nil {
		s.log.Error("checkpoint failed; will retry", "dir", p.log.Dir(), "err", err)
		return
	}
	seq, _, _ := p.log.Tail()
	s.published(p.key, seq, msg)
}

// published sends a signed checkpoint to Kafka, when the product mirrors
// its logs there. A checkpoint of an empty log states nothing and is not
// sent.
func (s *serving) published(key partitionKey, size uint64, msg []byte) {
	if s.publish == nil || size == 0 || msg == nil {
		return
	}
	s.publish(context.Background(), key, size, msg)
}

func (s *serving) stop() {
	if s == nil {
		return
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		s.http.Shutdown(ctx)
		cancel()
	}
	if s.store != nil {
		s.store.Close()
	}
	if s.current != nil && len(s.pending) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.current.Apply(ctx, s.pending...); err != nil {
			s.log.Warn("redis: current state left behind on stop", "pending", len(s.pending), "err", err)
		}
		cancel()
	}
}
