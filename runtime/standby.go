package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/meshlet/meshlet/auditlog"
)

// Standby replicas.
//
// With Standbys(n), a replica keeps warm copies of logs it does not own:
// for each input partition p it owns, the logs of partitions p+1..p+n
// (modulo the partition count), caught up with the changelog topic every
// standbyEvery. When one of those partitions fails over to it, the
// reconciliation on assignment reads only what the topic gained since the
// copy's last catch-up (the changelog.position hint), instead of the whole
// log. The copies are ordinary caches: reconciled like any other when the
// partition is assigned.
//
// The group's balancer (kafka.StandbyBalancer) learns at every join which
// copies caught up in their last round, and gives a partition left without
// an owner to a replica holding it warm, as far as balance allows.

// standbyEvery is how often the warm copies catch up.
const standbyEvery = 2 * time.Second

type standby struct {
	n      int
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu   sync.Mutex
	warm map[partitionKey]bool // copies caught up in their last round
}

// warmSet is the set of caught-up copies, for the group's join metadata.
func (s *standby) warmSet() map[string][]int32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]int32, len(s.warm))
	for k := range s.warm {
		out[k.topic] = append(out[k.topic], k.partition)
	}
	return out
}

func (s *standby) setWarm(k partitionKey, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warm == nil {
		s.warm = map[partitionKey]bool{}
	}
	if ok {
		s.warm[k] = true
	} else {
		delete(s.warm, k)
	}
}

// startStandby starts the catch-up loop of r.standby, when it has work.
func (r *Runner) startStandby() {
	s := r.standby
	n := s.n
	if n <= 0 || r.clog == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(standbyEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.catchUpStandbys(ctx, n)
			}
		}
	}()
}

func (s *standby) stop() {
	if s == nil || s.cancel == nil {
		return
	}
	s.cancel()
	s.done.Wait()
}

// standbyFor lists the input partitions whose logs this replica keeps warm
// while it owns owned: the n after each, by number, that it does not own.
func standbyFor(owned []partitionKey, counts map[string]int32, n int) []partitionKey {
	mine := map[partitionKey]bool{}
	for _, k := range owned {
		mine[k] = true
	}
	seen := map[partitionKey]bool{}
	var out []partitionKey
	for _, k := range owned {
		total := counts[k.topic]
		for i := int32(1); i <= int32(n) && i < total; i++ {
			c := partitionKey{k.topic, (k.partition + i) % total}
			if !mine[c] && !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// catchUpStandbys brings this replica's warm copies up to the topic.
func (r *Runner) catchUpStandbys(ctx context.Context, n int) {
	var owned []partitionKey
	r.parts.each(func(p *partition) { owned = append(owned, p.key) })
	if len(owned) == 0 {
		return
	}
	var topics []string
	for t := range r.inputs {
		topics = append(topics, t)
	}
	details, err := kadm.NewClient(r.clog.cp).ListTopics(ctx, topics...)
	if err != nil {
		return
	}
	counts := map[string]int32{}
	for t, d := range details {
		counts[t] = int32(len(d.Partitions))
	}
	want := map[partitionKey]bool{}
	for _, k := range standbyFor(owned, counts, n) {
		want[k] = true
		if ctx.Err() != nil || r.parts.get(k) != nil {
			return
		}
		r.standby.setWarm(k, r.catchUp(ctx, k))
	}
	r.standby.mu.Lock()
	for k := range r.standby.warm {
		if !want[k] {
			delete(r.standby.warm, k) // no longer a neighbour of ours
		}
	}
	r.standby.mu.Unlock()
}

// catchUp makes the local copy of k's log equal the committed log in the
// topic, unless the log is in use (this replica was just assigned it). It
// reports whether the copy caught up.
func (r *Runner) catchUp(ctx context.Context, k partitionKey) bool {
	dir := filepath.Join(r.cfg.dataDir, "changelog", k.String())
	if err := os.MkdirAll(filepath.Dir(dir), 0o750); err != nil {
		return false
	}
	l, err := auditlog.Open(dir, auditlog.WithMetrics(r.metrics.changelog))
	if errors.Is(err, auditlog.ErrLocked) {
		return false
	}
	if err != nil {
		r.log.Warn("standby: cannot open the warm copy of a log", "log", k.String(), "err", err)
		return false
	}
	p := &partition{key: k, log: l}
	defer p.log.Close()
	if err := r.clog.reconcileWithTopic(ctx, r, p, 0, false); err != nil {
		if ctx.Err() == nil {
			r.log.Warn("standby: the warm copy of a log did not catch up", "log", k.String(), "err", err)
		}
		return false
	}
	return true
}
