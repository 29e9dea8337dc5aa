package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// loopControl is what control commands change in a running product: whether it
// consumes (pause/resume) and which partitions to consume again from an
// earlier offset (reprocess).
type loopControl struct {
	paused atomic.Bool

	mu      sync.Mutex
	wake    chan struct{}      // closed and replaced on resume and on a request
	pending []reprocessRequest // carried out by the loop between batches
	// stopPoll cancels the poll the loop is blocked in, so a control
	// command is carried out without waiting for input to arrive.
	stopPoll context.CancelFunc
}

// interrupt wakes the loop: a paused wait, or a poll waiting for input.
func (c *loopControl) interrupt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.wake)
	c.wake = make(chan struct{})
	if c.stopPoll != nil {
		c.stopPoll()
	}
}

// pollContext is ctx, cancelled also by interrupt.
func (c *loopControl) pollContext(ctx context.Context) (context.Context, context.CancelFunc) {
	pctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.stopPoll = cancel
	c.mu.Unlock()
	return pctx, cancel
}

// ErrRefused marks a control request that cannot be carried out as asked
// (a reprocess of a partition this instance does not own, an offset past
// the committed one). Retrying it does not help.
var ErrRefused = errors.New("refused")

// errNotOwned refuses a reprocess of a partition another replica owns.
var errNotOwned = errors.New("not owned here")

// Pause stops consuming after the batch in flight commits. The group
// membership stays, so the partitions stay with this instance.
func (r *Runner) Pause() {
	if !r.control.paused.Swap(true) {
		r.metrics.paused.Set(1)
		r.control.interrupt()
		r.log.Info("paused by a control command")
	}
}

// Resume continues consuming.
func (r *Runner) Resume() {
	if r.control.paused.Swap(false) {
		r.metrics.paused.Set(0)
		r.control.interrupt()
		r.log.Info("resumed by a control command")
	}
}

// Paused reports whether the product is paused.
func (r *Runner) Paused() bool { return r.control.paused.Load() }

// waitWhilePaused blocks while the product is paused, carrying out the
// reprocess requests that arrive meanwhile.
func (r *Runner) waitWhilePaused(ctx context.Context) error {
	for r.control.paused.Load() {
		r.control.mu.Lock()
		wake := r.control.wake
		r.control.mu.Unlock()
		if _, err := r.startReprocessing(ctx, kgo.Fetches{}); err != nil {
			return err
		}
		if !r.control.paused.Load() {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
	}
	return nil
}

// reprocessRequest asks to run the handler again over an input partition
// from an offset up to where the product had got.
type reprocessRequest struct {
	Topic     string
	Partition int32
	From      int64
	done      chan error
}

// Reprocess consumes topic/partition again from offset from up to the
// group's committed offset, running the handler on every event, the
// events the source already sent included: their records are appended as
// new versions (new system time), so the change log keeps what was
// believed before and an auditor sees the reprocessing as corrections. It
// is carried out between batches; it returns once the reprocessing has
// started, or with an error wrapping ErrRefused when this instance does
// not own the partition or there is nothing before the committed offset.
func (r *Runner) Reprocess(ctx context.Context, topic string, partition int32, from int64) error {
	req := reprocessRequest{Topic: topic, Partition: partition, From: from, done: make(chan error, 1)}
	r.control.mu.Lock()
	r.control.pending = append(r.control.pending, req)
	r.control.mu.Unlock()
	r.control.interrupt()
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// reprocessState is a partition's reprocessing, kept in a file beside the
// change logs from the request until a batch that reaches Until commits.
// It says what to do on assignment when the committed marker cannot: a
// reprocessing that had not committed a batch yet is started again (see
// resumeReprocess). The rule that keeps the log and the output in agreement
// is the commit marker's, which holds whatever the input offsets do.
type reprocessState struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int64  `json:"from"`
	Until     int64  `json:"until"`     // the committed offset when it began
	StartSeq  uint64 `json:"start_seq"` // the log's last seq when it began
}

func (r *Runner) reprocessFile(k partitionKey) string {
	return filepath.Join(r.cfg.dataDir, "reprocess", k.topic+"-"+strconv.Itoa(int(k.partition))+".json")
}

func (r *Runner) loadReprocess(k partitionKey) (*reprocessState, error) {
	data, err := os.ReadFile(r.reprocessFile(k))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s reprocessState
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("reprocess state %s: %w", r.reprocessFile(k), err)
	}
	return &s, nil
}

func (r *Runner) saveReprocess(k partitionKey, s *reprocessState) error {
	path := r.reprocessFile(k)
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	data, _ := json.Marshal(s)
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// resumeReprocess decides, on assignment, what a reprocess state file
// means given the committed marker: a reprocessing batch committed (the
// marker carries until) and the committed offset is short of it: still in
// progress; reached it: finished; no reprocessing batch committed: start it
// again (consuming from From again is what it asked).
func (r *Runner) resumeReprocess(p *partition, s *reprocessState, committed int64, m commitMarker) error {
	switch {
	case m.until > 0 && committed < m.until:
		p.reprocess = s
		return nil
	case m.until > 0:
		return r.finishReprocess(p, s)
	}
	r.restartReprocess(s)
	return nil
}

func (r *Runner) restartReprocess(s *reprocessState) {
	r.log.Info("a reprocessing had not committed a batch when the product stopped; starting it again", "topic", s.Topic, "partition", s.Partition, "from", s.From)
	r.control.mu.Lock()
	r.control.pending = append(r.control.pending, reprocessRequest{Topic: s.Topic, Partition: s.Partition, From: s.From, done: make(chan error, 1)})
	r.control.mu.Unlock()
}

func (r *Runner) finishReprocess(p *partition, s *reprocessState) error {
	if err := os.Remove(r.reprocessFile(p.key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	p.reprocess = nil
	r.log.Info("reprocessing finished", "topic", s.Topic, "partition", s.Partition, "from", s.From, "until", s.Until)
	return nil
}

// startReprocessing carries out the pending reprocess requests. It runs
// after a poll, while rebalances are blocked, and reports whether it took
// over this cycle: the polled records are then put back (every polled
// partition is set back to its first polled offset) and consumed again,
// the reprocessed partition from the requested offset.
//
// Nothing commits here: the first reprocessing batch commits the earlier
// offset with a marker saying where the reprocessing ends (commitMarker), in
// the same transaction as its records, so a crash before it leaves the
// group's offsets, and the log, as they were.
func (r *Runner) startReprocessing(ctx context.Context, fetches kgo.Fetches) (bool, error) {
	r.control.mu.Lock()
	reqs := r.control.pending
	r.control.pending = nil
	r.control.mu.Unlock()
	if len(reqs) == 0 {
		return false, nil
	}
	set := map[string]map[int32]kgo.EpochOffset{}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			first := fp.Records[0]
			if set[fp.Topic] == nil {
				set[fp.Topic] = map[int32]kgo.EpochOffset{}
			}
			set[fp.Topic][fp.Partition] = kgo.EpochOffset{Epoch: first.LeaderEpoch, Offset: first.Offset}
		}
	})
	type started struct {
		req *reprocessRequest
		s   *reprocessState
		p   *partition
	}
	var ok []started
	for i := range reqs {
		req := &reqs[i]
		s, p, err := r.prepareReprocess(ctx, req)
		if err != nil {
			req.done <- err
			continue
		}
		if set[req.Topic] == nil {
			set[req.Topic] = map[int32]kgo.EpochOffset{}
		}
		set[req.Topic][req.Partition] = kgo.EpochOffset{Epoch: -1, Offset: req.From}
		ok = append(ok, started{req, s, p})
	}
	if len(ok) == 0 {
		return false, nil
	}
	cl := r.sess.Client()
	cl.SetOffsets(set)
	now := cl.CommittedOffsets()
	for _, st := range ok {
		if o, found := now[st.req.Topic][st.req.Partition]; !found || o.Offset != st.req.From {
			os.Remove(r.reprocessFile(st.p.key))
			st.req.done <- fmt.Errorf("reprocess %s/%d: the consumer has not read the partition yet; retry", st.req.Topic, st.req.Partition)
			continue
		}
		st.p.reprocess = st.s
		r.log.Info("reprocessing", "topic", st.req.Topic, "partition", st.req.Partition, "from", st.s.From, "until", st.s.Until)
		st.req.done <- nil
	}
	return true, nil
}

// prepareReprocess checks a request and writes its state file.
func (r *Runner) prepareReprocess(ctx context.Context, req *reprocessRequest) (*reprocessState, *partition, error) {
	k := partitionKey{req.Topic, req.Partition}
	p := r.parts.get(k)
	if p == nil {
		return nil, nil, fmt.Errorf("%w: %w: %s/%d is not assigned to instance %s", ErrRefused, errNotOwned, req.Topic, req.Partition, r.cfg.instance)
	}
	if p.reprocess != nil {
		return nil, nil, fmt.Errorf("%w: %s/%d is already being reprocessed from %d until %d", ErrRefused, req.Topic, req.Partition, p.reprocess.From, p.reprocess.Until)
	}
	until, _, ok, err := r.committedOffset(ctx, r.sess.Client(), k)
	if err != nil {
		return nil, nil, err
	}
	if !ok || req.From < 0 || req.From >= until {
		return nil, nil, fmt.Errorf("%w: %s/%d: offset %d is not before the committed offset %d: nothing to reprocess", ErrRefused, req.Topic, req.Partition, req.From, until)
	}
	seq, _, _ := p.log.Tail()
	s := &reprocessState{Topic: req.Topic, Partition: req.Partition, From: req.From, Until: until, StartSeq: seq}
	if err := r.saveReprocess(k, s); err != nil {
		return nil, nil, fmt.Errorf("reprocess %s/%d: %w", req.Topic, req.Partition, err)
	}
	return s, p, nil
}

// reprocessProgress removes the state of reprocessings the committed batch
// completed: heads holds, per partition, the offset after its last record.
func (r *Runner) reprocessProgress(heads map[partitionKey]int64) {
	for k, head := range heads {
		p := r.parts.get(k)
		if p == nil || p.reprocess == nil || head < p.reprocess.Until {
			continue
		}
		if err := r.finishReprocess(p, p.reprocess); err != nil {
			r.log.Error("remove reprocess state; it is removed on the next assignment", "topic", k.topic, "partition", k.partition, "err", err)
		}
	}
}
