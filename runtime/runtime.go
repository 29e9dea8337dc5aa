package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// Stats counts what a running product has done. Counters move only when a
// batch's transaction commits, so they describe committed output.
type Stats struct {
	EventsIn    atomic.Int64 // input records consumed
	Records     atomic.Int64 // records published (and appended to the change log)
	DeadLetters atomic.Int64 // input records sent to the dead-letter topic
	Skipped     atomic.Int64 // tombstones and heartbeats: recognised, nothing to publish
	Batches     atomic.Int64 // committed transactions
}

// Runner runs one product. Create it with Start; stop it by cancelling the
// context given to Run.
type Runner struct {
	product *Product
	cfg     Config
	log     *slog.Logger

	sess     session
	encoder  *schemas.Encoder
	schemaID int
	decoders map[string]cdc.Decoder // by input topic
	handler  transforms.Func
	logs     map[partitionKey]*auditlog.Log

	stats Stats

	// batch holds the buffers one poll batch reuses.
	batch batch
}

type partitionKey struct {
	topic     string
	partition int32
}

// Start prepares a product to run: it loads and registers the output schema
// (refusing an incompatible one before anything is produced), and joins the
// consumer group in a transactional session.
func Start(ctx context.Context, p *Product, cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults(p.Manifest)
	r := &Runner{
		product:  p,
		cfg:      cfg,
		log:      cfg.Logger.With("data_product", p.Manifest.ID),
		decoders: make(map[string]cdc.Decoder),
		handler:  transforms.Chain(p.Handler, transforms.Recover()),
		logs:     make(map[partitionKey]*auditlog.Log),
	}
	for _, in := range p.Manifest.InputPorts {
		dec, err := cdc.NewDecoder(in.Format)
		if err != nil {
			return nil, fmt.Errorf("input port %s: %w", in.Name, err)
		}
		r.decoders[in.Topic] = dec
	}
	if err := r.registerSchema(ctx); err != nil {
		return nil, err
	}
	var topics []string
	for _, in := range p.Manifest.InputPorts {
		topics = append(topics, in.Topic)
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithLogger(kslog{r.log}),
	}
	if cfg.Delivery == AtLeastOnce {
		cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
		if err != nil {
			return nil, fmt.Errorf("kafka client: %w", err)
		}
		r.sess = plainSession{cl}
		return r, nil
	}
	sess, err := kgo.NewGroupTransactSession(append(opts,
		kgo.TransactionalID(transactionalID(p.Manifest.ID, cfg.Instance)),
		kgo.RequireStableFetchOffsets(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka session: %w", err)
	}
	r.sess = txnSession{sess}
	return r, nil
}

func (r *Runner) registerSchema(ctx context.Context) error {
	port := r.product.Manifest.OutputPorts[0]
	s, err := r.product.OutputSchema()
	if err != nil {
		return err
	}
	reg, err := schemas.NewRegistry([]string{r.cfg.RegistryURL})
	if err != nil {
		return fmt.Errorf("schema registry %s: %w", r.cfg.RegistryURL, err)
	}
	id, err := reg.Register(ctx, port.Subject, s, schemas.Compat(port.Compatibility))
	if err != nil {
		return fmt.Errorf("output port %s: register schema under subject %s: %w", port.Name, port.Subject, err)
	}
	if r.encoder, err = schemas.NewEncoder(s, id); err != nil {
		return err
	}
	r.schemaID = id
	r.log.Info("output schema registered", "port", port.Name, "subject", port.Subject, "schema_id", id)
	return nil
}

// Stats returns the live counters.
func (r *Runner) Stats() *Stats { return &r.stats }

// SchemaID is the registry id every output event of this run carries.
func (r *Runner) SchemaID() int { return r.schemaID }

// Run processes poll batches until ctx is cancelled or a fatal error occurs.
// It closes the session and the change logs before it returns.
func (r *Runner) Run(ctx context.Context) error {
	defer r.close()
	for {
		fetches := r.sess.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			r.log.Warn("fetch failed; retrying", "topic", topic, "partition", partition, "err", err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := r.runBatch(ctx, fetches); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// runBatch is one cycle of the batch loop; see the package doc.
func (r *Runner) runBatch(ctx context.Context, fetches kgo.Fetches) error {
	if err := r.sess.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	b := &r.batch
	b.reset()
	var procErr error
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if procErr == nil {
			procErr = r.processPartition(ctx, p)
		}
	})
	if procErr != nil {
		_, _ = r.sess.End(ctx, false)
		return procErr
	}

	var produceErr atomic.Pointer[error]
	for _, rec := range b.produce {
		r.sess.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			if err != nil {
				err = fmt.Errorf("produce to %s: %w", rec.Topic, err)
				produceErr.CompareAndSwap(nil, &err)
			}
		})
	}
	committed, err := r.sess.End(ctx, produceErr.Load() == nil)
	if err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if !committed {
		if p := produceErr.Load(); p != nil {
			r.log.Warn("batch aborted; it will be consumed again", "err", *p)
		} else {
			r.log.Warn("batch aborted by a rebalance; it will be consumed again")
		}
		return nil
	}
	r.stats.EventsIn.Add(int64(fetches.NumRecords()))
	r.stats.Records.Add(int64(b.records))
	r.stats.DeadLetters.Add(int64(b.deadLetters))
	r.stats.Skipped.Add(int64(b.skipped))
	r.stats.Batches.Add(1)
	return nil
}

// processPartition turns one partition's records into output records and
// change-log entries, and appends the entries.
func (r *Runner) processPartition(ctx context.Context, p kgo.FetchTopicPartition) error {
	if len(p.Records) == 0 {
		return nil
	}
	clog, err := r.changeLog(p.Topic, p.Partition)
	if err != nil {
		return err
	}
	b := &r.batch
	b.entries = b.entries[:0]
	seq, sysTime, _ := clog.Tail()
	dec := r.decoders[p.Topic]
	for _, in := range p.Records {
		b.change = cdc.Change{}
		if err := dec.Decode(in.Key, in.Value, &b.change); err != nil {
			b.deadLetter(r, in, "malformed", err)
			continue
		}
		c := &b.change
		c.Origin = cdc.Origin{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}
		if c.Kind != cdc.KindChange {
			b.skipped++
			continue
		}
		b.outputs, err = r.handler(ctx, c, b.outputs[:0])
		if err != nil {
			class := "handler"
			if errors.Is(err, transforms.ErrPanic) {
				class = "panic"
			}
			b.deadLetter(r, in, class, err)
			continue
		}
		// All records of one change go out, or none: remember where the
		// change started so a bad record rolls the whole change back.
		mark := b.mark()
		nextSeq, nextSys := seq, sysTime
		for i := range b.outputs {
			nextSeq++
			nextSys = max(r.cfg.Now(), nextSys+1)
			if err = b.addRecord(r, in, c, &b.outputs[i], nextSeq, nextSys); err != nil {
				break
			}
		}
		if err != nil {
			b.rollback(mark)
			b.deadLetter(r, in, "schema", err)
			continue
		}
		seq, sysTime = nextSeq, nextSys
	}
	if len(b.entries) == 0 {
		return nil
	}
	if err := clog.Append(b.entries); err != nil {
		return fmt.Errorf("change log %s: %w", clog.Dir(), err)
	}
	return nil
}

func (r *Runner) changeLog(topic string, partition int32) (*auditlog.Log, error) {
	k := partitionKey{topic, partition}
	if l, ok := r.logs[k]; ok {
		return l, nil
	}
	dir := filepath.Join(r.cfg.DataDir, "changelog", topic+"-"+strconv.Itoa(int(partition)))
	l, err := auditlog.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("open change log for %s/%d: %w", topic, partition, err)
	}
	if rec := l.Recovery(); rec.TruncatedBytes > 0 {
		r.log.Warn("change log had a torn tail; cut it", "dir", dir, "segment", rec.Segment, "bytes", rec.TruncatedBytes)
	}
	r.logs[k] = l
	return l, nil
}

func (r *Runner) close() {
	r.sess.Close()
	for k, l := range r.logs {
		if err := l.Close(); err != nil {
			r.log.Error("close change log", "topic", k.topic, "partition", k.partition, "err", err)
		}
	}
}

// batch holds one poll batch's work. Its slices are reused batch to batch;
// the arena is not, because produced records point into it until the
// transaction ends.
type batch struct {
	change  cdc.Change
	outputs []transforms.Output
	entries []auditlog.Entry
	produce []*kgo.Record
	arena   []byte

	records, deadLetters, skipped int
}

func (b *batch) reset() {
	b.produce = b.produce[:0]
	b.arena = make([]byte, 0, max(cap(b.arena), 64<<10))
	b.records, b.deadLetters, b.skipped = 0, 0, 0
}

type batchMark struct{ entries, produce, records int }

func (b *batch) mark() batchMark { return batchMark{len(b.entries), len(b.produce), b.records} }

func (b *batch) rollback(m batchMark) {
	b.entries, b.produce, b.records = b.entries[:m.entries], b.produce[:m.produce], m.records
}

func (b *batch) deadLetter(r *Runner, in *kgo.Record, class string, err error) {
	m := r.product.Manifest
	r.log.Warn("dead letter", "class", class, "topic", in.Topic, "partition", in.Partition, "offset", in.Offset, "err", err)
	b.produce = append(b.produce, ports.DeadLetter(m.DeadLetter.Topic, m.ID, in, class, err))
	b.deadLetters++
}

// addRecord stamps, encodes and queues one handler output.
func (b *batch) addRecord(r *Runner, in *kgo.Record, c *cdc.Change, out *transforms.Output, seq uint64, sysTime int64) error {
	meta := schemas.Meta{SystemFrom: sysTime, Deleted: out.Deleted, ValidFrom: c.CommitTime.UnixMicro()}
	if !out.ValidFrom.IsZero() {
		meta.ValidFrom = out.ValidFrom.UnixMicro()
	}
	if !out.ValidTo.IsZero() {
		meta.ValidTo = out.ValidTo.UnixMicro()
	}
	start := len(b.arena)
	var err error
	b.arena, err = r.encoder.Append(b.arena, out.Value, meta)
	if err != nil {
		b.arena = b.arena[:start]
		return fmt.Errorf("encode record for key %q: %w", out.Key, err)
	}
	wire := b.arena[start:len(b.arena):len(b.arena)]
	keyStart := len(b.arena)
	b.arena = append(b.arena, out.Key...)
	key := b.arena[keyStart:len(b.arena):len(b.arena)]

	op := auditlog.OpAssert
	if out.Deleted {
		op = auditlog.OpRetract
	}
	b.entries = append(b.entries, auditlog.Entry{
		Seq: seq, SystemTime: sysTime, ValidFrom: meta.ValidFrom, ValidTo: meta.ValidTo, Op: op,
		Key: key, Payload: wire,
		Prov: auditlog.Provenance{
			Topic: in.Topic, Partition: in.Partition, Offset: in.Offset,
			SourcePosition: c.Source.Position.String(), SchemaID: uint32(r.schemaID),
		},
	})
	b.produce = append(b.produce, &kgo.Record{Topic: r.product.Manifest.OutputPorts[0].Topic, Key: key, Value: wire})
	b.records++
	return nil
}

func (c Config) withDefaults(m *Manifest) Config {
	if c.Group == "" {
		c.Group = m.ID
	}
	if c.Instance == "" {
		c.Instance = "0"
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = func() int64 { return time.Now().UnixMicro() }
	}
	return c
}

// transactionalID is stable per product and instance, so a restarted
// instance fences the zombie it replaces.
func transactionalID(productID, instance string) string {
	return "meshlet." + strings.ReplaceAll(productID, ":", ".") + "." + instance
}
