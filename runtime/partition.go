package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/kafka"
)

// partition is what the runtime keeps for one assigned input partition: its
// change log and the identities of its recent records.
type partition struct {
	key  partitionKey
	log  *auditlog.Log
	seen *window

	// batchStart is the log's last seq before the current batch appended,
	// so an aborted batch can be taken back exactly; appended says the
	// current batch appended to this log (it is reset as each begins).
	batchStart uint64
	appended   bool
	// committed holds the batch's entries until the batch commits, for the
	// current-state store (only when one is configured).
	committed []auditlog.Entry
	// reprocess is the reprocessing in progress, nil when none.
	reprocess *reprocessState
}

// openPartition opens the partition's change log and makes it agree with
// what the group committed: entries past the committed input offset belong to
// a batch whose transaction never committed, and are taken back.
func (r *Runner) openPartition(ctx context.Context, cl *kgo.Client, k partitionKey) (*partition, error) {
	dir := filepath.Join(r.cfg.dataDir, "changelog", k.topic+"-"+strconv.Itoa(int(k.partition)))
	l, err := openLogWaiting(ctx, r, dir)
	if err != nil {
		return nil, err
	}
	if rec := l.Recovery(); rec.TruncatedBytes > 0 {
		r.log.Warn("change log had a torn tail; cut it", "dir", dir, "segment", rec.Segment, "bytes", rec.TruncatedBytes)
	}
	p := &partition{key: k, log: l}
	if err := r.reconcile(ctx, cl, p); err != nil {
		l.Close()
		return nil, err
	}
	return p, nil
}

// openLogWaiting opens a change log, waiting while another instance still
// holds it: during a rebalance the previous owner closes it between batches.
func openLogWaiting(ctx context.Context, r *Runner, dir string) (*auditlog.Log, error) {
	b := backoff{min: 20 * time.Millisecond, max: time.Second}
	for {
		l, err := auditlog.Open(dir, auditlog.WithMetrics(r.metrics.changelog))
		if err == nil {
			return l, nil
		}
		if errors.Is(err, auditlog.ErrCorrupt) || !errors.Is(err, auditlog.ErrLocked) {
			return nil, fmt.Errorf("%w: change log %s: %w", ErrFatal, dir, err)
		}
		if b.attempt%20 == 19 {
			r.log.Warn("waiting for another instance to release the change log", "dir", dir)
		}
		if err := b.wait(ctx); err != nil {
			return nil, err
		}
	}
}

// reconcile takes back the entries of p's log that the group never
// committed and refills p's identity window from what remains. The
// committed offset's marker names the last committed entry exactly (see
// commitMarker); without one, entries at or past the committed input offset
// are the ones that never committed.
func (r *Runner) reconcile(ctx context.Context, cl *kgo.Client, p *partition) error {
	committed, meta, ok, err := r.committedOffset(ctx, cl, p.key)
	if err != nil {
		return err
	}
	if !ok {
		committed = -1 // nothing committed yet: every entry is from a batch that never committed
	}
	rs, err := r.loadReprocess(p.key)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrFatal, err)
	}
	m, marked := parseMarker(meta)
	marked = marked && ok
	if r.clog != nil {
		// The changelog topic holds the committed log: the cache is made
		// equal to it (changelog.go); the marker says how far committed
		// history reaches for a log older than its mirror.
		if err := r.clog.reconcileWithTopic(ctx, r, p, m.seq, marked); err != nil {
			return err
		}
		switch {
		case rs != nil && marked:
			if err := r.resumeReprocess(p, rs, committed, m); err != nil {
				return err
			}
		case rs != nil:
			r.restartReprocess(rs)
		}
		return r.refillWindow(p)
	}
	if marked {
		if seq, _, _ := p.log.Tail(); seq < m.seq {
			return fmt.Errorf("%w: change log %s ends at seq %d but group %s committed %s/%d with seq %d: committed entries are missing (a log from another copy of the data directory?)",
				ErrFatal, p.log.Dir(), seq, r.cfg.group, p.key.topic, p.key.partition, m.seq)
		}
		dropped, err := p.log.Rewind(func(e *auditlog.Entry) bool { return e.Seq > m.seq })
		if err != nil {
			return fmt.Errorf("%w: rewind change log %s: %w", ErrFatal, p.log.Dir(), err)
		}
		if dropped > 0 {
			r.log.Info("took back change-log entries of a batch that never committed",
				"topic", p.key.topic, "partition", p.key.partition, "entries", dropped, "committed_seq", m.seq)
		}
		if rs != nil {
			if err := r.resumeReprocess(p, rs, committed, m); err != nil {
				return err
			}
		}
		return r.refillWindow(p)
	}
	if rs != nil {
		// Offsets committed without a marker: nothing says how far the
		// reprocessing got; start it again once the log agrees.
		r.restartReprocess(rs)
	}
	if err := r.checkRewindSpan(p, committed); err != nil {
		return err
	}
	dropped, err := p.log.Rewind(func(e *auditlog.Entry) bool { return e.Prov.Offset >= committed })
	if err != nil {
		return fmt.Errorf("%w: rewind change log %s: %w", ErrFatal, p.log.Dir(), err)
	}
	if dropped > 0 {
		r.log.Info("took back change-log entries of a batch that never committed",
			"topic", p.key.topic, "partition", p.key.partition, "entries", dropped, "committed_offset", committed)
	}
	return r.refillWindow(p)
}

// checkRewindSpan refuses to take back entries that cannot all come from one
// uncommitted batch. A batch reads at most MaxBatch records, so the input
// offsets of its entries span fewer than MaxBatch offsets (plus the few that
// transaction markers take). A wider span means the group's committed offset
// moved back, or vanished (someone reset the group, or its offsets expired
// under offsets.retention.minutes while the product was down): the log's
// committed history must not be erased on that ground.
func (r *Runner) checkRewindSpan(p *partition, committed int64) error {
	seq, _, _ := p.log.Tail()
	if seq == 0 {
		return nil
	}
	var first, last int64 = -1, -1
	if committed < 0 {
		if err := p.log.Scan(1, func(e *auditlog.Entry) error { first = e.Prov.Offset; return errStopScan }); err != nil && !errors.Is(err, errStopScan) {
			return fmt.Errorf("%w: change log %s: %w", ErrFatal, p.log.Dir(), err)
		}
	} else {
		first = committed
	}
	if err := p.log.Scan(seq, func(e *auditlog.Entry) error { last = e.Prov.Offset; return nil }); err != nil {
		return fmt.Errorf("%w: change log %s: %w", ErrFatal, p.log.Dir(), err)
	}
	if last < first {
		return nil // nothing past the committed offset
	}
	span := 2*int64(r.cfg.maxBatch) + 1000
	if last-first >= span {
		state := fmt.Sprintf("the committed offset is %d", committed)
		if committed < 0 {
			state = "group " + r.cfg.group + " has no committed offset"
		}
		return fmt.Errorf("%w: change log %s reaches input offset %d but %s for %s/%d: more than one batch (%d records) "+
			"would be taken back, so the group's offsets were reset, deleted or expired, or the log belongs to another group; "+
			"refusing to erase committed history (restore the group's offsets to %d)",
			ErrFatal, p.log.Dir(), last, state, p.key.topic, p.key.partition, r.cfg.maxBatch, last+1)
	}
	return nil
}

// checkDropSpan refuses to take back the entries of p's log past seq s
// when their input offsets span more than one batch can read (see
// checkRewindSpan): without a commit marker, that much is committed
// history, not an uncommitted batch.
func (r *Runner) checkDropSpan(p *partition, s uint64) error {
	n, _, _ := p.log.Tail()
	if n <= s {
		return nil
	}
	var first, last int64 = -1, -1
	err := p.log.Scan(s+1, func(e *auditlog.Entry) error {
		if first < 0 {
			first = e.Prov.Offset
		}
		last = e.Prov.Offset
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: change log %s: %w", ErrFatal, p.log.Dir(), err)
	}
	if span := 2*int64(r.cfg.maxBatch) + 1000; last-first >= span {
		return fmt.Errorf("%w: change log %s holds %d entries (input offsets %d..%d) that neither the changelog topic nor a commit marker of group %s records for %s/%d: "+
			"more than one batch (%d records) would be taken back, so the group's offsets were reset, deleted or expired, or the log belongs to another group; "+
			"refusing to erase committed history (restore the group's offsets to %d)",
			ErrFatal, p.log.Dir(), n-s, first, last, r.cfg.group, p.key.topic, p.key.partition, r.cfg.maxBatch, last+1)
	}
	return nil
}

var errStopScan = errors.New("stop scan")

func (r *Runner) refillWindow(p *partition) error {
	p.seen = newWindow(r.cfg.dedupWindow)
	seq, _, _ := p.log.Tail()
	from := uint64(1)
	if seq > uint64(r.cfg.dedupWindow) {
		from = seq - uint64(r.cfg.dedupWindow) + 1
	}
	return p.log.Scan(from, func(e *auditlog.Entry) error {
		if e.Prov.SourcePosition != "" {
			p.seen.add(identity(e.Prov.SourcePosition, string(e.Key)))
		}
		return nil
	})
}

// committedOffset is the group's committed offset for k, read stably: it
// waits out a transaction still pending on the partition (a crashed
// instance's), so it never reports an offset that may yet be aborted.
//
// It takes the client as an argument: rebalance callbacks may run before
// Start has stored the session.
func (r *Runner) committedOffset(ctx context.Context, cl *kgo.Client, k partitionKey) (int64, string, bool, error) {
	if r.cfg.delivery == ExactlyOnce {
		// The pending transaction is most often this instance's own, from
		// before a crash. Loading our producer id fences that process and
		// aborts its transaction now; franz-go would load it only at the
		// first batch, after this wait, which then lasted the whole
		// transaction timeout.
		if _, _, err := cl.ProducerID(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("could not initialise the transactional producer before reading committed offsets; a crashed predecessor's transaction is waited out",
				"transactional_id", kafka.TransactionalID(r.product.Manifest.ID, r.cfg.instance), "err", err)
		}
	}
	adm := kadm.NewClient(cl)
	b := backoff{min: 50 * time.Millisecond, max: 2 * time.Second}
	for {
		resps, err := adm.FetchOffsets(kadm.RequireStable(ctx), r.cfg.group)
		if err == nil {
			o, ok := resps.Lookup(k.topic, k.partition)
			switch {
			case !ok:
				return 0, "", false, nil
			case o.Err == nil:
				return o.At, o.Metadata, o.At >= 0, nil
			case !errors.Is(o.Err, kerr.UnstableOffsetCommit):
				err = o.Err
			}
		}
		if err != nil && !kerr.IsRetriable(err) && !errors.Is(err, kerr.UnstableOffsetCommit) {
			return 0, "", false, fmt.Errorf("fetch committed offset of %s/%d for group %s: %w", k.topic, k.partition, r.cfg.group, err)
		}
		if b.attempt%10 == 9 {
			r.log.Warn("waiting for a stable committed offset (a transaction is still pending)", "topic", k.topic, "partition", k.partition, "err", err)
		}
		if err := b.wait(ctx); err != nil {
			return 0, "", false, err
		}
	}
}

// backoff doubles a wait from min to max.
type backoff struct {
	min, max time.Duration
	attempt  int
}

func (b *backoff) wait(ctx context.Context) error {
	d := b.min << min(b.attempt, 16)
	if d > b.max || d <= 0 {
		d = b.max
	}
	b.attempt++
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
