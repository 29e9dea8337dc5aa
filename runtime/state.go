package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/state"
	"github.com/meshlet/meshlet/transforms"
)

// Keyed state (package state) in the batch cycle.
//
// State belongs to a task: the partitions of one number across the
// product's input topics, which must be co-partitioned (checked at
// Start) and are assigned together (range balancing). A task has a state
// log, DataDir/state/<n>/log, mirrored to the changelog topic under the
// name meshlet.state-<n> like every change log, and a pebble store,
// DataDir/state/<n>/store. Within a batch, handlers of the task's
// partitions share one state.Txn (transforms.State); a dead-lettered or
// duplicate event's writes are rolled back with its outputs. Before the
// transaction ends, the batch's mutations are appended to the state log
// and queued for the changelog topic, so they commit with the outputs and
// offsets; the store is written only once the transaction committed. An
// abort rewinds the log and discards the Txn. On assignment the log is
// made equal to the committed one in the topic and the store is restored
// from it (state.Restore), so after a kill -9 or on another replica the
// state is the fold of what committed.

// stateTopic names the state logs: meshlet.state-<n>.
const stateTopic = "meshlet.state"

type stateRuntime struct {
	opts  []state.Option
	mu    sync.Mutex
	tasks map[int32]*task
}

// task is one partition number's state.
type task struct {
	part  *partition // the state log; its key is {stateTopic, n}
	store *state.Store
	tx    *state.Txn // the batch's, nil until the batch touches the task
	last  *kgo.Record
	refs  map[string]bool // the input topics of this number assigned here
}

// startState sets up state for a product whose ports keep it. Its
// requirements are checked here, before anything is consumed.
func (r *Runner) startState(ctx context.Context) error {
	m := r.product.Manifest
	if !r.product.stateful() {
		return nil
	}
	if r.clog == nil {
		return fmt.Errorf("%w: %s: the product keeps state, which commits through the changelog topic in the batch's transaction: run it exactly once, without --local-log-only", ErrFatal, m.File())
	}
	if err := r.checkCoPartitioned(ctx, r.clog.cp); err != nil {
		return err
	}
	st := &stateRuntime{tasks: map[int32]*task{}}
	if m.State.Retention != "" {
		d, _ := time.ParseDuration(m.State.Retention) // validated with the manifest
		st.opts = append(st.opts, state.RetainAll(d))
	}
	r.state = st
	return nil
}

// checkCoPartitioned refuses input topics whose partition counts differ:
// a task joins the partitions of one number, which only hold the same
// keys when every topic has as many partitions, keyed alike.
func (r *Runner) checkCoPartitioned(ctx context.Context, cl *kgo.Client) error {
	ins := r.product.Manifest.InputPorts
	if len(ins) < 2 {
		return nil
	}
	var topics []string
	for _, in := range ins {
		topics = append(topics, in.Topic)
	}
	details, err := kadm.NewClient(cl).ListTopics(ctx, topics...)
	if err != nil {
		return fmt.Errorf("state: list input topics to check co-partitioning: %w", err)
	}
	first := ins[0]
	want := len(details[first.Topic].Partitions)
	for _, in := range ins[1:] {
		d, ok := details[in.Topic]
		if !ok || d.Err != nil || want == 0 {
			continue // created later by --create-topics, with the default count
		}
		if n := len(d.Partitions); n != want {
			fewer, more, count := in.Topic, first.Topic, want
			if n > want {
				fewer, more, count = first.Topic, in.Topic, n
			}
			return fmt.Errorf("%w: %w: input port %s (topic %s) has %d partitions and input port %s (topic %s) %d: "+
				"state joins the partitions of one number, so every input topic needs the same count and the same key; "+
				"give %s as many partitions as %s (kafka-topics --alter --topic %s --partitions %d) and key both topics alike, "+
				"or declare the dimension port mode: table over a topic of the same count",
				ErrFatal, ErrNotCoPartitioned, in.Name, in.Topic, n, first.Name, first.Topic, want, fewer, more, fewer, count)
		}
	}
	return nil
}

// ErrNotCoPartitioned marks input topics a stateful product cannot join.
var ErrNotCoPartitioned = errors.New("input topics are not co-partitioned")

// stateful reports whether any port keeps state.
func (p *Product) stateful() bool {
	for _, in := range p.Manifest.InputPorts {
		if in.Mode == "table" {
			return true
		}
	}
	return len(p.ports) > 0
}

// assignState opens the tasks of newly assigned partitions, restoring
// each from its committed log. It runs after their input partitions were
// reconciled, so no transaction of a previous owner is still open.
func (r *Runner) assignState(ctx context.Context, cl *kgo.Client, k partitionKey) error {
	st := r.state
	if st == nil {
		return nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if t, ok := st.tasks[k.partition]; ok {
		t.refs[k.topic] = true
		return nil
	}
	dir := filepath.Join(r.cfg.dataDir, "state", strconv.Itoa(int(k.partition)))
	l, err := openLogWaiting(ctx, r, filepath.Join(dir, "log"))
	if err != nil {
		return err
	}
	p := &partition{key: partitionKey{stateTopic, k.partition}, log: l}
	// The topic holds the committed state log: everything past it never
	// committed (committed 0, marked: no marker reaches further).
	if err := r.clog.reconcileWithTopic(ctx, r, p, 0, true); err != nil {
		p.log.Close()
		return err
	}
	s, err := state.Open(filepath.Join(dir, "store"), st.opts...)
	if err != nil {
		p.log.Close()
		return fmt.Errorf("%w: %w", ErrFatal, err)
	}
	done, err := state.Restore(s, p.log)
	if err != nil {
		s.Close()
		p.log.Close()
		return fmt.Errorf("%w: restore state of task %d: %w", ErrFatal, k.partition, err)
	}
	if done.Entries > 0 || done.Rebuilt {
		r.log.Info("state restored from the change log", "task", k.partition, "entries", done.Entries, "rebuilt", done.Rebuilt)
	}
	st.tasks[k.partition] = &task{part: p, store: s, refs: map[string]bool{k.topic: true}}
	return nil
}

// revokeState closes a task once none of its partitions is assigned here.
func (r *Runner) revokeState(k partitionKey) {
	st := r.state
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	t, ok := st.tasks[k.partition]
	if !ok {
		return
	}
	delete(t.refs, k.topic)
	if len(t.refs) == 0 {
		t.close(r)
		delete(st.tasks, k.partition)
	}
}

func (t *task) close(r *Runner) {
	if t.tx != nil {
		t.tx.Discard()
		t.tx = nil
	}
	if err := t.store.Close(); err != nil {
		r.log.Error("close state store", "dir", t.store.Dir(), "err", err)
	}
	if err := t.part.log.Close(); err != nil {
		r.log.Error("close state log", "dir", t.part.log.Dir(), "err", err)
	}
}

// stateFor returns ctx carrying the batch's Txn of partition n's task,
// begun on first use, and the task (nil without state).
func (r *Runner) stateFor(ctx context.Context, n int32) (context.Context, *task) {
	st := r.state
	if st == nil {
		return ctx, nil
	}
	st.mu.Lock()
	t := st.tasks[n]
	st.mu.Unlock()
	if t == nil {
		return ctx, nil
	}
	if t.tx == nil {
		t.tx = t.store.Begin()
		t.part.batchStart, _, _ = t.part.log.Tail()
	}
	return transforms.WithState(ctx, t.tx), t
}

// appendState appends each task's mutations of the batch to its state log
// and queues them for the changelog topic, before the transaction ends.
func (r *Runner) appendState(b *batch) error {
	if r.state == nil {
		return nil
	}
	var err error
	r.state.each(func(t *task) {
		if err != nil || t.tx == nil || len(t.tx.Mutations()) == 0 {
			return
		}
		entries := state.AppendEntries(nil, t.tx.Mutations())
		seq, sysTime, _ := t.part.log.Tail()
		for i := range entries {
			seq++
			sysTime = max(r.cfg.now(), sysTime+1)
			e := &entries[i]
			e.Seq, e.SystemTime = seq, sysTime
			if t.last != nil {
				e.Prov = auditlog.Provenance{Topic: t.last.Topic, Partition: t.last.Partition, Offset: t.last.Offset}
			}
		}
		t.part.appended = true
		if aerr := t.part.log.Append(entries); aerr != nil {
			err = fmt.Errorf("%w: state log %s: %w", ErrFatal, t.part.log.Dir(), aerr)
			return
		}
		r.clog.queue(b, t.part, entries)
	})
	return err
}

// commitState writes each task's committed mutations to its store.
func (r *Runner) commitState() error {
	if r.state == nil {
		return nil
	}
	var err error
	r.state.each(func(t *task) {
		if t.tx == nil {
			return
		}
		seq, _, hash := t.part.log.Tail()
		if cerr := t.tx.Commit(state.Mark{Seq: seq, Hash: hash}); cerr != nil && err == nil {
			err = fmt.Errorf("%w: state store %s: %w (it is rebuilt from the log on the next start)", ErrFatal, t.store.Dir(), cerr)
		}
		t.tx, t.last, t.part.appended = nil, nil, false
	})
	return err
}

// takeBackState undoes an aborted batch: its entries leave the state logs
// and its Txns are discarded.
func (r *Runner) takeBackState() error {
	if r.state == nil {
		return nil
	}
	var err error
	r.state.each(func(t *task) {
		if t.tx != nil {
			t.tx.Discard()
			t.tx = nil
		}
		t.last = nil
		if !t.part.appended {
			return
		}
		start := t.part.batchStart
		if _, rerr := t.part.log.Rewind(func(e *auditlog.Entry) bool { return e.Seq > start }); rerr != nil && err == nil {
			err = fmt.Errorf("%w: take back aborted batch from %s: %w", ErrFatal, t.part.log.Dir(), rerr)
		}
		t.part.appended = false
	})
	return err
}

// reconcileState makes every task agree with the topic again, after a
// transaction whose outcome is unknown.
func (r *Runner) reconcileState(ctx context.Context) error {
	if r.state == nil {
		return nil
	}
	var err error
	r.state.each(func(t *task) {
		if t.tx != nil {
			t.tx.Discard()
			t.tx = nil
		}
		t.part.appended = false
		if err != nil {
			return
		}
		if err = r.clog.reconcileWithTopic(ctx, r, t.part, 0, true); err != nil {
			return
		}
		if _, rerr := state.Restore(t.store, t.part.log); rerr != nil {
			err = fmt.Errorf("%w: %w", ErrFatal, rerr)
		}
	})
	return err
}

func (r *Runner) closeState() {
	if r.state == nil {
		return
	}
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	for n, t := range r.state.tasks {
		t.close(r)
		delete(r.state.tasks, n)
	}
}

func (st *stateRuntime) each(fn func(*task)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	ns := make([]int32, 0, len(st.tasks))
	for n := range st.tasks {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	for _, n := range ns {
		fn(st.tasks[n])
	}
}

// materialize is the handler of a table input port: it writes each row to
// the port's state table, then runs the port's own handler, if any.
func materialize(in InputPort, next transforms.Func) transforms.Func {
	table := in.Table
	if table == "" {
		table = in.Name
	}
	return func(ctx context.Context, c *cdc.Change, out []transforms.Output) ([]transforms.Output, error) {
		st := transforms.State(ctx)
		if st == nil {
			return out, transforms.ErrNoState
		}
		row := c.After
		if c.Op == cdc.OpDelete {
			row = c.Before
			if len(row) == 0 || string(row) == "null" {
				row = c.Key
			}
		}
		key, err := column(row, in.Key)
		if err != nil {
			return out, fmt.Errorf("table port %s: key column %s: %w", in.Name, in.Key, err)
		}
		at := c.CommitTime
		if in.ValidTime != "" && c.Op != cdc.OpDelete {
			if at, err = timeColumn(row, in.ValidTime); err != nil {
				return out, fmt.Errorf("table port %s: validTime column %s: %w", in.Name, in.ValidTime, err)
			}
		}
		tb := state.Use[json.RawMessage](st, table)
		switch c.Op {
		case cdc.OpCreate, cdc.OpRead, cdc.OpUpdate:
			err = tb.Put(key, at, json.RawMessage(bytes.Clone(c.After)))
		case cdc.OpDelete:
			err = tb.Delete(key, at)
		default:
			err = fmt.Errorf("%w: op %q on table port %s", transforms.ErrUnsupportedOp, c.Op, in.Name)
		}
		if err != nil {
			return out, err
		}
		if next == nil {
			return out, nil
		}
		return next(ctx, c, out)
	}
}

// column is a row's column as a key: a string as it is, a number as its
// JSON text.
func column(row json.RawMessage, name string) (string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(row, &m); err != nil {
		return "", fmt.Errorf("row is not a JSON object: %w", err)
	}
	v, ok := m[name]
	if !ok || string(v) == "null" {
		return "", fmt.Errorf("the row has no value for it")
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s, nil
	}
	return string(v), nil
}

// timeColumn reads a valid time: unix microseconds (Debezium's
// MicroTimestamp) or an RFC 3339 string (ZonedTimestamp).
func timeColumn(row json.RawMessage, name string) (time.Time, error) {
	s, err := column(row, name)
	if err != nil {
		return time.Time{}, err
	}
	if us, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.UnixMicro(us), nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither unix microseconds nor an RFC 3339 time", s)
	}
	return t, nil
}

func (t *task) savepoint() state.Savepoint {
	if t == nil || t.tx == nil {
		return state.Savepoint{}
	}
	return t.tx.Savepoint()
}

func (t *task) rollback(sp state.Savepoint) {
	if t != nil && t.tx != nil {
		t.tx.Rollback(sp)
	}
}

// saw notes the last input record of the task's batch, for provenance.
func (t *task) saw(in *kgo.Record) {
	if t != nil {
		t.last = in
	}
}
