package runtime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/ports/query"
)

// serving is what a product does with committed batches beyond Kafka: sign
// checkpoints of its change logs, keep the current state in Redis for the
// query port, and serve that port.
type serving struct {
	signer         note.Signer
	lastCheckpoint time.Time
	// checkpointing is a background round of checkpoints; logs are not
	// closed while it runs.
	checkpointing sync.WaitGroup
	busy          atomic.Bool

	current *query.RedisStore
	pending []auditlog.Fact // committed facts Redis has not taken yet

	store *auditlog.Store
	mgmt  *mgmt.Server
	http  *http.Server
	addr  net.Addr
}

// maxPendingFacts bounds what is kept for Redis while it is unreachable.
const maxPendingFacts = 1_000_000

func (r *Runner) startServing(ctx context.Context) error {
	signer, verifier, err := auditlog.LoadOrCreateKey(r.cfg.DataDir, r.product.Manifest.ID)
	r.serve.signer = signer
	if err != nil {
		return fmt.Errorf("checkpoint key: %w", err)
	}
	if r.cfg.RedisAddr != "" {
		if err := r.rdb.Ping(ctx).Err(); err != nil {
			r.log.Warn("redis unreachable; current state will catch up when it is back", "addr", r.cfg.RedisAddr, "err", err)
		}
		r.serve.current = query.NewRedisStore(r.rdb, r.product.Manifest.ID)
	}
	if r.cfg.HTTPAddr == "" {
		return nil
	}
	logs := filepath.Join(r.cfg.DataDir, "changelog")
	if err := os.MkdirAll(logs, 0o750); err != nil {
		return err
	}
	if r.serve.store, err = auditlog.OpenStore(logs); err != nil {
		return fmt.Errorf("query port: %w", err)
	}
	dec, err := query.NewDecoder(query.SchemaDir(r.cfg.DataDir), r.cfg.RegistryURL)
	if err != nil {
		return fmt.Errorf("query port: %w", err)
	}
	if r.gov.keys != nil {
		dec.Keys = r.gov.keys
	}
	q := &query.Handler{Store: r.serve.store, Current: r.serve.current, Decoder: dec, Verifier: verifier, Log: r.log}
	r.serve.mgmt = r.management(q)
	ln, err := net.Listen("tcp", r.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("management port %s: %w", r.cfg.HTTPAddr, err)
	}
	r.serve.addr = ln.Addr()
	r.serve.http = &http.Server{Handler: r.serve.mgmt.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := r.serve.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("management port stopped", "addr", r.serve.addr, "err", err)
		}
	}()
	r.log.Info("management port listening", "addr", r.serve.addr)
	return nil
}

// HTTPAddr is where the management port listens, nil when it is off.
func (r *Runner) HTTPAddr() net.Addr { return r.serve.addr }

// afterCommit runs once a batch's transaction committed: its entries go to
// Redis, and the logs are checkpointed when the interval has passed. Neither
// may fail the batch: Redis catches up later, checkpoints are retried.
func (r *Runner) afterCommit(ctx context.Context) {
	if r.serve.current != nil {
		r.mu.Lock()
		for _, p := range r.parts {
			name := p.key.topic + "-" + strconv.Itoa(int(p.key.partition))
			for i := range p.committed {
				f := auditlog.Fact{Log: name, Entry: p.committed[i]}
				r.serve.pending = append(r.serve.pending, f.Clone())
			}
			p.committed = p.committed[:0]
		}
		r.mu.Unlock()
		if err := r.serve.current.Apply(ctx, r.serve.pending...); err != nil {
			if len(r.serve.pending) > maxPendingFacts {
				r.log.Error("redis unreachable too long; current state dropped the oldest updates, restart to rebuild it",
					"dropped", len(r.serve.pending)-maxPendingFacts)
				r.serve.pending = r.serve.pending[len(r.serve.pending)-maxPendingFacts:]
			}
			r.log.Warn("redis apply failed; will retry with the next batch", "pending", len(r.serve.pending), "err", err)
		} else {
			r.serve.pending = r.serve.pending[:0]
		}
	}
	if time.Since(r.serve.lastCheckpoint) >= r.cfg.CheckpointInterval && !r.serve.busy.Load() {
		r.checkpointInBackground()
	}
}

// checkpointInBackground signs a checkpoint of every open change log up to
// the entries committed now, while the next batches run: signing reads back
// every entry since the last checkpoint, which would stall the loop for as
// long. The sizes are taken here, after the commit, so a checkpoint never
// covers an entry that a later abort could take back.
func (r *Runner) checkpointInBackground() {
	type target struct {
		log  *auditlog.Log
		size uint64
	}
	var targets []target
	r.mu.Lock()
	for _, p := range r.parts {
		seq, _, _ := p.log.Tail()
		targets = append(targets, target{p.log, seq})
	}
	r.mu.Unlock()
	r.serve.lastCheckpoint = time.Now()
	r.serve.busy.Store(true)
	r.serve.checkpointing.Add(1)
	go func() {
		defer r.serve.checkpointing.Done()
		defer r.serve.busy.Store(false)
		for _, t := range targets {
			if _, err := t.log.CheckpointAt(r.serve.signer, t.size); err != nil {
				r.log.Error("checkpoint failed; will retry", "dir", t.log.Dir(), "err", err)
			}
		}
	}()
}

// checkpoint signs a checkpoint of p's whole log. It runs between batches
// (on revoke, on close), when every entry is committed, after any
// background round has finished.
func (r *Runner) checkpoint(p *partition) {
	if r.serve.signer == nil {
		return
	}
	r.serve.checkpointing.Wait()
	if _, err := p.log.Checkpoint(r.serve.signer); err != nil {
		r.log.Error("checkpoint failed; will retry", "dir", p.log.Dir(), "err", err)
	}
}

func (r *Runner) stopServing() {
	if r.serve.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.serve.http.Shutdown(ctx)
		cancel()
	}
	if r.serve.store != nil {
		r.serve.store.Close()
	}
	if r.serve.current != nil {
		if len(r.serve.pending) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := r.serve.current.Apply(ctx, r.serve.pending...); err != nil {
				r.log.Warn("redis: current state left behind on stop", "pending", len(r.serve.pending), "err", err)
			}
			cancel()
		}
	}
}
