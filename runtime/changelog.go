package runtime

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
)

// The change log on Kafka.
//
// Every entry a batch appends to a partition's log is also produced, in
// the batch's transaction, to the product's changelog topic (partition =
// the input partition's number, key = the log's name), so read_committed
// readers of the topic see exactly the committed log, and the topic is the
// log's durable home: the segments on a replica's disk are a verified cache
// of it. On assignment, reconcileWithTopic makes the cache equal to the
// committed log (see its doc); signed checkpoints go to the checkpoints
// topic beside it.

// changelog is the product's changelog and checkpoint topics.
type changelog struct {
	topic, checkpoints string
	partitions         int32
	opts               []kgo.Opt   // reach the cluster: seeds and security
	cp                 *kgo.Client // produces checkpoints and backfills, outside batch transactions
	log                *slog.Logger

	restored     prometheus.Counter
	remaining    *prometheus.GaugeVec // changelog records a restore in progress has left to read, per log
	restoreTime  prometheus.Histogram
	backfilled   prometheus.Counter
	restoresLive atomic.Int64
}

// startChangelog creates or checks the topics (as many partitions as the
// largest input topic) and publishes the verifier key beside the
// checkpoints.
func startChangelog(ctx context.Context, r *Runner, verifierKey []byte) (*changelog, error) {
	m := r.product.Manifest
	c := &changelog{topic: kafka.ChangelogTopic(m.ID), checkpoints: kafka.CheckpointTopic(m.ID), log: r.log}
	secure, err := r.cfg.kafkaSecurity.Opts()
	if err != nil {
		return nil, err
	}
	c.opts = append([]kgo.Opt{kgo.SeedBrokers(r.cfg.brokers...), kgo.WithLogger(kafka.Logger(r.log))}, secure...)
	c.cp, err = kgo.NewClient(append(append([]kgo.Opt(nil), c.opts...),
		kgo.RecordPartitioner(kafka.Partitioner(c.topic, c.checkpoints)), kgo.ProducerBatchMaxBytes(int32(changelogRecordLimit)))...)
	if err != nil {
		return nil, err
	}
	adm := kadm.NewClient(c.cp)
	var inputs []string
	for topic := range r.inputs {
		inputs = append(inputs, topic)
	}
	details, err := adm.ListTopics(ctx, inputs...)
	if err != nil {
		c.cp.Close()
		return nil, fmt.Errorf("changelog: list input topics: %w", err)
	}
	for _, d := range details {
		if d.Err == nil {
			c.partitions = max(c.partitions, int32(len(d.Partitions)))
		}
	}
	if c.partitions == 0 {
		c.partitions = defaultPartitions
	}
	for _, t := range []string{c.topic, c.checkpoints} {
		if err := kafka.EnsureChangelog(ctx, adm, t, c.partitions, changelogRecordLimit); err != nil {
			c.cp.Close()
			return nil, fmt.Errorf("%w: %w", ErrFatal, err)
		}
	}
	if len(verifierKey) > 0 {
		rec := &kgo.Record{Topic: c.checkpoints, Partition: 0, Key: []byte(kafka.VerifierKey), Value: verifierKey}
		if err := c.cp.ProduceSync(ctx, rec).FirstErr(); err != nil {
			c.cp.Close()
			return nil, fmt.Errorf("changelog: publish the verifier key to %s: %w", c.checkpoints, err)
		}
	}
	labels := prometheus.Labels{"data_product": m.ID}
	c.restored = prometheus.NewCounter(prometheus.CounterOpts{Name: "meshlet_changelog_restored_entries_total", ConstLabels: labels,
		Help: "Change-log entries a replica copied from the changelog topic into its local cache on assignment."})
	c.backfilled = prometheus.NewCounter(prometheus.CounterOpts{Name: "meshlet_changelog_backfilled_entries_total", ConstLabels: labels,
		Help: "Committed entries found only in the local cache (a log from before the changelog topic) and copied to the topic."})
	c.restoreTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "meshlet_changelog_restore_seconds", ConstLabels: labels,
		Help: "Time to make a partition's local change log equal the committed log in the topic, per assignment.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	restoring := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "meshlet_changelog_restores_in_progress", ConstLabels: labels,
		Help: "Partitions being restored from the changelog topic now."}, func() float64 { return float64(c.restoresLive.Load()) })
	c.remaining = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "meshlet_changelog_restore_remaining_records", ConstLabels: labels,
		Help: "Records of the changelog topic partition a long restore has still to read, updated with each progress report (every 2 s)."}, []string{"log"})
	r.metrics.reg.MustRegister(c.restored, c.backfilled, c.restoreTime, restoring, c.remaining)
	return c, nil
}

// close sends the checkpoints still buffered, then closes the producer.
func (c *changelog) close() {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.cp.Flush(ctx); err != nil {
		c.log.Warn("checkpoints not all published to Kafka before stopping; the next start publishes newer ones", "err", err)
	}
	c.cp.Close()
}

// changelogRecordLimit is the largest changelog record, the changelog and
// checkpoint topics' max.message.bytes: the largest event (see limits.go).
// An entry holds the record published plus its provenance and hash, so an
// entry that would not fit makes its event too large.
const changelogRecordLimit = schemas.MaxEventBytes

// chunkBytes bounds a changelog record holding several entries: far under
// the topic's limit, and small enough for brokers' default fetch sizes.
const chunkBytes = 256 << 10

// queue adds entries (just appended to p's log, their chain hashes set) to
// the batch as changelog records, to commit with it: runs of consecutive
// entries in one chunk each, so the topic takes a few records per batch.
func (c *changelog) queue(b *batch, p *partition, entries []auditlog.Entry) {
	name := p.key.String()
	for i := 0; i < len(entries); {
		start := len(b.arena)
		for n := 0; i < len(entries) && (n == 0 || n+auditlog.ChunkLen(&entries[i]) <= chunkBytes); i++ {
			n += auditlog.ChunkLen(&entries[i])
			b.arena = auditlog.AppendChunk(b.arena, &entries[i])
		}
		b.produce = append(b.produce, kafka.ChangelogRecord(c.topic, p.key.partition, name, b.arena[start:len(b.arena):len(b.arena)]))
	}
}

// publishCheckpoint sends a signed checkpoint of p's log to the checkpoints
// topic. It is outside any transaction: a checkpoint only states what the
// log held, and is signed over committed entries only.
func (c *changelog) publishCheckpoint(ctx context.Context, key partitionKey, size uint64, noteText []byte) {
	rec := kafka.CheckpointRecord(c.checkpoints, key.partition, key.String(), size, noteText)
	c.cp.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			c.log.Warn("checkpoint not published to Kafka; the next one will be", "log", key.String(), "size", size, "topic", c.checkpoints, "err", err)
		}
	})
}

// position is where a log's cache last agreed with the topic: entry seq,
// with its chain hash, is the record at offset. Kept beside the log, it lets
// a restore read the topic from there instead of from its start; it is only
// a hint, checked against the topic before it is used.
type position struct {
	Seq    uint64 `json:"seq"`
	Offset int64  `json:"offset"`
	Hash   string `json:"hash"`
}

const positionFile = "changelog.position"

func readPosition(dir string) (position, bool) {
	var pos position
	b, err := os.ReadFile(filepath.Join(dir, positionFile))
	if err != nil || json.Unmarshal(b, &pos) != nil || pos.Seq == 0 {
		return position{}, false
	}
	return pos, true
}

func writePosition(dir string, pos position) error {
	b, _ := json.Marshal(pos)
	tmp := filepath.Join(dir, positionFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, positionFile))
}

// errDiverged ends a read of the topic: the cache is not a prefix of the
// committed log (a disk from another history, a log restored from an old
// backup), so it is set aside and the log restored afresh.
var errDiverged = errors.New("the local change log differs from the changelog topic")

// errStale ends a read begun at a position the topic does not confirm.
var errStale = errors.New("stale position")

// reconcileWithTopic makes p's cache equal the committed log. The topic
// holds the committed entries 1..T of the log (read_committed, read once the
// group's offsets are stable, so no transaction of a previous owner is still
// open); committed, when marked, is the sequence number S the group's
// commit marker names, which commits in the same transaction as the entries
// and so is never below T. The cache holds 1..N.
//
//   - The cache must agree with the topic on 1..min(N, T): it is checked at
//     that one entry, since the hash chain covers everything before it.
//     When it does not, the cache is set aside (renamed, for forensics) and
//     the log restored from the topic.
//   - Entries T+1.. the cache lacks are appended from the topic, each one's
//     chain hash checked against the one the topic carries.
//   - T < S happens only for history committed before the product mirrored
//     its log (an upgrade): the cache's entries T+1..S are produced to the
//     topic, so from then on it holds the whole log.
//   - Entries past S (or past T without a marker) never committed: they are
//     rewound.
func (c *changelog) reconcileWithTopic(ctx context.Context, r *Runner, p *partition, committed uint64, marked bool) error {
	if p.key.partition >= c.partitions {
		return fmt.Errorf("%w: input partition %s has no changelog partition (%s has %d): add partitions to it (kafka-topics --alter --topic %s --partitions %d)",
			ErrFatal, p.key, c.topic, c.partitions, c.topic, p.key.partition+1)
	}
	c.restoresLive.Add(1)
	defer c.restoresLive.Add(-1)
	began := time.Now()
	dir := p.log.Dir()
	from, pos := int64(0), position{}
	if hint, ok := readPosition(dir); ok && c.agrees(p, hint) {
		from, pos = hint.Offset, hint
	}
	t, last, err := c.readLog(ctx, p, from, pos)
	if errors.Is(err, errStale) {
		t, last, err = c.readLog(ctx, p, 0, position{})
	}
	if errors.Is(err, errDiverged) {
		if err := c.setAside(r, p); err != nil {
			return err
		}
		t, last, err = c.readLog(ctx, p, 0, position{})
	}
	if err != nil {
		return err
	}
	n, _, _ := p.log.Tail()
	if n > t && t > 0 {
		// The cache is longer: it must hold the topic's entry T.
		if h, err := hashAt(p.log, t); err != nil {
			return fmt.Errorf("%w: change log %s: %w", ErrFatal, dir, err)
		} else if h != last.hash {
			if err := c.setAside(r, p); err != nil {
				return err
			}
			if t, last, err = c.readLog(ctx, p, 0, position{}); err != nil {
				return err
			}
		}
	}
	if marked && t < committed && from > 0 {
		// A read from the position found less than the group committed:
		// before concluding the topic lacks entries (and backfilling
		// them, which would double any it has), read it whole.
		if t, last, err = c.readLog(ctx, p, 0, position{}); err != nil {
			return err
		}
	}
	s := t
	if marked {
		s = max(committed, t)
	}
	if n, _, _ = p.log.Tail(); n < s {
		return fmt.Errorf("%w: log %s: the group committed %d entries but the changelog topic %s holds %d and the local log %d: committed entries are missing",
			ErrFatal, p.key, s, c.topic, t, n)
	}
	if t < s {
		if err := c.backfill(ctx, p, t, s); err != nil {
			return err
		}
	}
	if !marked {
		// Nothing committed says how far history reaches, and the topic has
		// less than the cache: the rest may be history committed before the
		// mirror whose group offsets were reset or expired. Only what one
		// uncommitted batch can leave is taken back.
		if err := r.checkDropSpan(p, s); err != nil {
			return err
		}
	}
	dropped, err := p.log.Rewind(func(e *auditlog.Entry) bool { return e.Seq > s })
	if err != nil {
		return fmt.Errorf("%w: rewind change log %s: %w", ErrFatal, dir, err)
	}
	if dropped > 0 {
		r.log.Info("took back change-log entries that never committed", "log", p.key.String(), "entries", dropped, "committed_seq", s)
	}
	if last.seq > 0 && last.seq <= s {
		if err := writePosition(dir, position{Seq: last.seq, Offset: last.offset, Hash: hex.EncodeToString(last.hash[:])}); err != nil {
			r.log.Warn("could not keep the changelog position beside the log; the next restore reads the topic from its start", "dir", dir, "err", err)
		}
	}
	c.restoreTime.Observe(time.Since(began).Seconds())
	return nil
}

// agrees reports whether the cache holds the entry a position names.
func (c *changelog) agrees(p *partition, pos position) bool {
	if n, _, _ := p.log.Tail(); n < pos.Seq {
		return false
	}
	h, err := hashAt(p.log, pos.Seq)
	return err == nil && hex.EncodeToString(h[:]) == pos.Hash
}

// lastRecord is the topic's last entry of a log seen by a read.
type lastRecord struct {
	seq    uint64
	hash   [32]byte
	offset int64
}

// readLog reads p's log from the topic, from offset from, appending to the
// cache what it lacks. When from is a position's offset, the first record
// of the log read must be that position's entry (errStale otherwise). It
// returns the topic's last seq T for the log and its record.
func (c *changelog) readLog(ctx context.Context, p *partition, from int64, pos position) (uint64, lastRecord, error) {
	name := p.key.String()
	n, _, nHash := p.log.Tail()
	var (
		last    lastRecord // with a position, its entry is the first one that counts
		pending []auditlog.Entry
		want    [][32]byte // the hashes the topic carries for pending
		added   uint64
		start         = time.Now()
		tick          = start
		end     int64 = -1 // asked for at the first progress report: most reads end sooner
	)
	defer c.remaining.DeleteLabelValues(name)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := p.log.Append(pending); err != nil {
			return fmt.Errorf("%w: restore %s: %w", ErrFatal, p.log.Dir(), err)
		}
		for i := range pending {
			if pending[i].Hash != want[i] {
				return fmt.Errorf("%w: changelog topic %s/%d, log %s seq %d: its chain hash does not follow from the entries before it: the topic was altered",
					ErrFatal, c.topic, p.key.partition, name, pending[i].Seq)
			}
		}
		added += uint64(len(pending))
		c.restored.Add(float64(len(pending)))
		pending, want = pending[:0], want[:0]
		return nil
	}
	each := func(rec *kgo.Record, value []byte) error {
		var e auditlog.Entry
		if err := auditlog.ParseRecord(value, &e); err != nil {
			return fmt.Errorf("%w: changelog topic %s/%d@%d: %w", ErrFatal, c.topic, p.key.partition, rec.Offset, err)
		}
		if pos.Seq > 0 && last.seq < pos.Seq { // the chunk a position names, up to its entry
			switch {
			case e.Seq < pos.Seq:
				return nil
			case e.Seq != pos.Seq || hex.EncodeToString(e.Hash[:]) != pos.Hash:
				return errStale
			}
		} else if e.Seq != last.seq+1 {
			return fmt.Errorf("%w: changelog topic %s/%d@%d: log %s seq %d follows seq %d: entries are missing or doubled in the topic",
				ErrFatal, c.topic, p.key.partition, rec.Offset, name, e.Seq, last.seq)
		}
		switch {
		case e.Seq == n && e.Hash != nHash:
			return errDiverged
		case e.Seq > n:
			e.Key, e.Payload = append([]byte(nil), e.Key...), append([]byte(nil), e.Payload...)
			pending, want = append(pending, e), append(want, e.Hash)
			if len(pending) >= 1024 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		last = lastRecord{seq: e.Seq, hash: e.Hash, offset: rec.Offset}
		if time.Since(tick) > 2*time.Second {
			tick = time.Now()
			if end < 0 {
				end = c.endOffset(ctx, p.key.partition)
			}
			if end > 0 {
				c.remaining.WithLabelValues(name).Set(float64(max(end-rec.Offset-1, 0)))
			}
			c.logProgress(name, added+uint64(len(pending)), from, rec.Offset, end, tick.Sub(start))
		}
		return nil
	}
	_, err := kafka.ReadPartition(ctx, c.opts, c.topic, p.key.partition, from, func(rec *kgo.Record) error {
		if string(rec.Key) != name {
			return nil
		}
		err := auditlog.EachInChunk(rec.Value, func(value []byte) error { return each(rec, value) })
		if err != nil && !errors.Is(err, errStale) && !errors.Is(err, errDiverged) && !errors.Is(err, ErrFatal) {
			return fmt.Errorf("%w: changelog topic %s/%d@%d: %w", ErrFatal, c.topic, p.key.partition, rec.Offset, err)
		}
		return err
	})
	if err != nil {
		return 0, lastRecord{}, err
	}
	if err := flush(); err != nil {
		return 0, lastRecord{}, err
	}
	if added > 0 {
		c.log.Info("restored change log from the changelog topic", "log", name, "entries", added, "seq", last.seq)
	}
	return last.seq, last, nil
}

// endOffset is the end of the changelog topic's partition n, or 0 when
// the broker does not say (progress then shows no estimate).
func (c *changelog) endOffset(ctx context.Context, n int32) int64 {
	ends, err := kadm.NewClient(c.cp).ListEndOffsets(ctx, c.topic)
	if err != nil {
		return 0
	}
	o, ok := ends.Lookup(c.topic, n)
	if !ok || o.Err != nil {
		return 0
	}
	return o.Offset
}

// logProgress reports a long restore: entries so far, their rate, and
// when it should end, from the rate the topic's offsets go by.
func (c *changelog) logProgress(log string, entries uint64, from, at, end int64, took time.Duration) {
	secs := took.Seconds()
	args := []any{"log", log, "entries", entries, "entries_per_second", int64(float64(entries) / secs), "at_offset", at}
	if end > at && at > from {
		perSec := float64(at-from) / secs
		args = append(args, "end_offset", end, "eta", time.Duration(float64(end-at)/perSec*float64(time.Second)).Round(time.Second))
	}
	c.log.Info("restoring change log from the changelog topic", args...)
}

// setAside moves a cache that disagrees with the topic out of the way and
// opens an empty log in its place.
func (c *changelog) setAside(r *Runner, p *partition) error {
	dir := p.log.Dir()
	if err := p.log.Close(); err != nil {
		return fmt.Errorf("%w: close change log %s: %w", ErrFatal, dir, err)
	}
	aside := dir + ".diverged-" + strconv.FormatInt(time.Now().Unix(), 10)
	if err := os.Rename(dir, aside); err != nil {
		return fmt.Errorf("%w: set aside change log %s: %w", ErrFatal, dir, err)
	}
	r.log.Warn("the local change log is not a prefix of the committed log in the changelog topic; set it aside and restoring from the topic",
		"log", p.key.String(), "set_aside", aside, "topic", c.topic)
	l, err := auditlog.Open(dir, auditlog.WithMetrics(r.metrics.changelog))
	if err != nil {
		return fmt.Errorf("%w: change log %s: %w", ErrFatal, dir, err)
	}
	p.log = l
	return nil
}

// backfill produces the cache's entries from+1..to, committed before the
// log was mirrored, to the topic.
func (c *changelog) backfill(ctx context.Context, p *partition, from, to uint64) error {
	var recs []*kgo.Record
	err := p.log.Scan(from+1, func(e *auditlog.Entry) error {
		if e.Seq > to {
			return errStopScan
		}
		recs = append(recs, kafka.ChangelogRecord(c.topic, p.key.partition, p.key.String(), auditlog.AppendChunk(nil, e)))
		if len(recs) >= 1024 {
			if err := c.cp.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return err
			}
			recs = recs[:0]
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return fmt.Errorf("%w: backfill %s to %s: %w", ErrFatal, p.key, c.topic, err)
	}
	if err := c.cp.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("%w: backfill %s to %s: %w", ErrFatal, p.key, c.topic, err)
	}
	c.backfilled.Add(float64(to - from))
	c.log.Info("copied committed entries the changelog topic lacked to it", "log", p.key.String(), "from_seq", from+1, "to_seq", to)
	return nil
}

// hashAt is the chain hash of entry seq of l.
func hashAt(l *auditlog.Log, seq uint64) ([32]byte, error) {
	var h [32]byte
	found := false
	err := l.Scan(seq, func(e *auditlog.Entry) error {
		h, found = e.Hash, e.Seq == seq
		return errStopScan
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return h, err
	}
	if !found {
		return h, fmt.Errorf("no entry %d", seq)
	}
	return h, nil
}
