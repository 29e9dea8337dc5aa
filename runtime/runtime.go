package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/internal/failpoint"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/seal"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// ErrFatal marks an error the product must stop for: continuing would let
// the change log and the output disagree (a corrupt log, a log that belongs
// to another group) or publish what consumers cannot read (an incompatible
// schema). Everything else is retried or dead-lettered.
var ErrFatal = errors.New("fatal")

// Stats counts what a running product has done. Counters move only when a
// batch's transaction commits, so they describe committed output.
type Stats struct {
	EventsIn    atomic.Int64 // input records consumed
	Records     atomic.Int64 // records published (and appended to the change log)
	DeadLetters atomic.Int64 // input records sent to the dead-letter topic
	Skipped     atomic.Int64 // tombstones and heartbeats: recognised, nothing to publish
	Duplicates  atomic.Int64 // events the source sent again, recognised by source position
	Batches     atomic.Int64 // committed transactions
	Aborted     atomic.Int64 // batches abandoned and consumed again
}

// Runner runs one product. Create it with Start; stop it by cancelling the
// context given to Run.
type Runner struct {
	product *Product
	cfg     Config
	log     *slog.Logger

	sess     session
	rdb      *redis.Client // nil without Config.RedisAddr
	registry *schemas.Registry
	encoder  *schemas.Encoder
	schemaID int
	decoders map[string]cdc.Decoder // by input topic
	handler  transforms.Func
	checker  *contracts.Checker // the output port's contract rules

	// parts are the assigned input partitions. Rebalance callbacks change the
	// map only between batches (the client blocks rebalances while a batch is
	// processed), but they run on the client's goroutine, hence the mutex.
	mu    sync.Mutex
	parts map[partitionKey]*partition
	// assignErr is the first failure of a rebalance callback; the loop
	// stops with it, since the callback itself cannot return an error.
	assignErr atomic.Pointer[error]

	whole   wholeTx
	stats   Stats
	metrics *metrics
	serve   serving
	control loopControl
	lineage lineageRun
	mesh    meshMember
	plane   controlPlane
	gov     governance

	// batch holds the buffers one poll batch reuses.
	batch batch
}

type partitionKey struct {
	topic     string
	partition int32
}

// Start prepares a product to run: it loads and registers the output schema
// (refusing an incompatible one before anything is produced), and joins the
// consumer group.
func Start(ctx context.Context, p *Product, cfg Config) (*Runner, error) {
	cfg = cfg.withDefaults(p.Manifest)
	r := &Runner{
		product:  p,
		cfg:      cfg,
		log:      cfg.Logger.With("data_product", p.Manifest.ID),
		decoders: make(map[string]cdc.Decoder),
		handler:  transforms.Chain(p.Handler, transforms.Recover()),
		parts:    make(map[partitionKey]*partition),
	}
	r.control.wake = make(chan struct{})
	reg, err := schemas.NewRegistry([]string{cfg.RegistryURL}, cfg.Security.registryOpts()...)
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", cfg.RegistryURL, err)
	}
	r.registry = reg
	for _, in := range p.Manifest.InputPorts {
		dec, err := cdc.NewDecoder(in.Format, cdc.WithAvro(avroSource{reg}))
		if err != nil {
			return nil, fmt.Errorf("input port %s: %w", in.Name, err)
		}
		r.decoders[in.Topic] = dec
	}
	if r.checker, err = contracts.NewChecker(p.Contract, p.Manifest.OutputPorts[0].Name); err != nil {
		return nil, fmt.Errorf("%w: output port %s: contract: %w", ErrFatal, p.Manifest.OutputPorts[0].Name, err)
	}
	for _, u := range r.checker.Unchecked() {
		r.log.Warn("contract rule cannot be checked one record at a time; not enforced", "rule", u)
	}
	r.metrics = newMetrics(r)
	if cfg.RedisAddr != "" {
		// One client, so one pool, for everything the product keeps in
		// Redis: current state, keys, the mesh registry, control streams.
		r.rdb = redis.NewClient(cfg.Security.redisOptions(cfg.RedisAddr))
	}
	if err := r.startGovernance(); err != nil {
		return nil, err
	}
	if err := r.registerSchema(ctx, reg); err != nil {
		return nil, err
	}
	if err := r.startControl(); err != nil {
		return nil, err
	}
	r.joinMesh()
	if err := r.startServing(ctx); err != nil {
		r.stopServing()
		r.stopControl()
		return nil, err
	}
	r.startMesh()
	if err := r.startLineage(ctx); err != nil {
		return nil, err
	}
	var topics []string
	for _, in := range p.Manifest.InputPorts {
		topics = append(topics, in.Topic)
	}
	extra, err := r.setupWholeTx()
	if err != nil {
		return nil, err
	}
	topics = append(topics, extra...)
	opts := []kgo.Opt{
		kgo.SeedBrokers(cfg.Brokers...),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.WithLogger(kslog{r.log}),
		// Static membership: a restarted replica takes its old place in the
		// group at once, instead of a rebalance that waits for its dead self.
		kgo.InstanceID(groupInstanceID(cfg.Instance)),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onRevoked),
	}
	if cfg.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(cfg.SessionTimeout))
	}
	secure, err := cfg.Security.kafkaOpts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, secure...)
	if cfg.Delivery == AtLeastOnce {
		cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
		if err != nil {
			return nil, fmt.Errorf("kafka client: %w", err)
		}
		r.sess = plainSession{cl}
		return r, nil
	}
	opts = append(opts, kgo.TransactionalID(transactionalID(p.Manifest.ID, cfg.Instance)), kgo.RequireStableFetchOffsets())
	if cfg.TransactionTimeout > 0 {
		opts = append(opts, kgo.TransactionTimeout(cfg.TransactionTimeout))
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka session: %w", err)
	}
	r.sess = txnSession{sess}
	return r, nil
}

// registerSchema registers the output schema, retrying while the registry
// is unreachable; an incompatible schema is fatal at once.
func (r *Runner) registerSchema(ctx context.Context, reg *schemas.Registry) error {
	port := r.product.Manifest.OutputPorts[0]
	s, err := r.product.OutputSchema()
	if err != nil {
		return err
	}
	level, err := schemas.ParseCompat(port.Compatibility)
	if err != nil {
		return fmt.Errorf("%w: output port %s: %w", ErrFatal, port.Name, err)
	}
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	var id int
	for {
		id, err = reg.Register(ctx, port.Subject, s, level)
		if err == nil {
			break
		}
		if errors.Is(err, schemas.ErrIncompatible) {
			return fmt.Errorf("%w: output port %s: %w", ErrFatal, port.Name, err)
		}
		r.log.Warn("schema registry unavailable; retrying", "registry", r.cfg.RegistryURL, "subject", port.Subject, "err", err)
		if werr := b.wait(ctx); werr != nil {
			return fmt.Errorf("output port %s: register schema under subject %s: %w", port.Name, port.Subject, err)
		}
	}
	if r.encoder, err = schemas.NewEncoder(s, id); err != nil {
		return err
	}
	r.schemaID = id
	if err := r.saveSchema(id, s); err != nil {
		return err
	}
	r.log.Info("output schema registered", "port", port.Name, "subject", port.Subject, "schema_id", id)
	return nil
}

// saveSchema keeps the published schema beside the change logs, so auditors
// can decode entries offline without the registry.
func (r *Runner) saveSchema(id int, s *schemas.Schema) error {
	dir := filepath.Join(r.cfg.DataDir, "schemas")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(dir, strconv.Itoa(id)+".avsc")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s.Published()), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Stats returns the live counters.
func (r *Runner) Stats() *Stats { return &r.stats }

// SchemaID is the registry id every output event of this run carries.
func (r *Runner) SchemaID() int { return r.schemaID }

// Run processes poll batches until ctx is cancelled or a fatal error occurs.
// On cancellation the batch in flight is finished and committed first; then
// the session and the change logs are closed.
func (r *Runner) Run(ctx context.Context) (err error) {
	defer func() { r.close(err) }()
	retry := backoff{min: 50 * time.Millisecond, max: 5 * time.Second}
	for {
		if err := r.waitWhilePaused(ctx); err != nil {
			return err
		}
		pctx, cancel := r.control.pollContext(ctx)
		fetches := r.poll(pctx)
		interrupted := pctx.Err() != nil
		cancel()
		if p := r.assignErr.Load(); p != nil {
			return *p
		}
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		var hold holdPlan
		if r.whole.enabled {
			if fetches, hold = r.gatherWhole(ctx, fetches); hold.err != nil && !errors.Is(hold.err, errTransient) {
				return hold.err
			}
		}
		if took, err := r.startReprocessing(ctx, fetches); err != nil {
			return err
		} else if took {
			r.sess.AllowRebalance()
			continue
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if !interrupted {
				r.log.Warn("fetch failed; retrying", "topic", topic, "partition", partition, "err", err)
			}
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		// A batch that started is finished even if shutdown is asked for
		// meanwhile: committing it is the clean way out.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.BatchTimeout)
		committed, err := r.runBatch(bctx, fetches, hold)
		cancel()
		if err != nil {
			return err
		}
		if committed {
			retry = backoff{min: retry.min, max: retry.max}
			continue
		}
		// Back-pressure: an aborted batch is consumed again, after a pause
		// that grows while the cause (a broker outage, say) persists.
		if err := retry.wait(ctx); err != nil {
			return nil
		}
	}
}

func (r *Runner) poll(ctx context.Context) kgo.Fetches {
	if r.cfg.MaxBatch > 0 {
		return r.sess.PollRecords(ctx, r.cfg.MaxBatch)
	}
	return r.sess.PollFetches(ctx)
}

// runBatch is one cycle of the batch loop; see the package doc. It reports
// whether the batch committed; an error is fatal. hold says how far each
// partition goes in whole-transaction mode (zero: all of every partition).
func (r *Runner) runBatch(ctx context.Context, fetches kgo.Fetches, hold holdPlan) (bool, error) {
	defer r.sess.AllowRebalance()
	if err := r.sess.Begin(); err != nil {
		return false, fmt.Errorf("begin transaction: %w", err)
	}
	b := &r.batch
	b.reset()
	stops, held, procErr := hold.stops, hold.held, hold.err
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if procErr == nil {
			procErr = r.processPartition(ctx, p, stopAt(stops, p))
		}
	})
	if procErr != nil {
		r.sess.End(ctx, false)
		if errors.Is(procErr, errTransient) {
			r.log.Warn("batch abandoned; it will be consumed again", "err", procErr)
			r.stats.Aborted.Add(1)
			r.metrics.batches.WithLabelValues("aborted").Inc()
			return false, r.takeBackBatch()
		}
		return false, procErr
	}
	failpoint.Hit("runtime/after-append")

	var produceErr atomic.Pointer[error]
	for _, rec := range b.produce {
		r.sess.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			if err != nil {
				err = fmt.Errorf("produce to %s: %w", rec.Topic, err)
				produceErr.CompareAndSwap(nil, &err)
			}
		})
	}
	stamp := r.stamp(stops)
	failpoint.Hit("runtime/before-commit")
	committed, err := r.sess.End(stamp.context(ctx), produceErr.Load() == nil)
	if err != nil {
		// The outcome is unknown to us: ask the group what committed and
		// make the logs agree with it, as after a crash.
		r.log.Warn("ending the transaction failed; reconciling change logs with the committed offsets", "err", err)
		return false, r.reconcileAll(ctx)
	}
	failpoint.Hit("runtime/after-commit")
	if !committed {
		if p := produceErr.Load(); p != nil {
			r.log.Warn("batch aborted; it will be consumed again", "err", *p)
		} else {
			r.log.Warn("batch aborted by a rebalance; it will be consumed again")
		}
		r.stats.Aborted.Add(1)
		r.metrics.batches.WithLabelValues("aborted").Inc()
		return false, r.takeBackBatch()
	}
	r.putBack(stops)
	in := 0
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) { in += len(processed(fp, stopAt(stops, fp))) })
	r.stats.EventsIn.Add(int64(in))
	r.stats.Records.Add(int64(b.records))
	r.stats.DeadLetters.Add(int64(b.deadLetters))
	r.stats.Skipped.Add(int64(b.skipped))
	r.stats.Duplicates.Add(int64(b.duplicates))
	r.stats.Batches.Add(1)
	inByTopic := make(map[string]int, len(r.decoders))
	heads := make(map[partitionKey]int64)
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		recs := processed(fp, stopAt(stops, fp))
		if n := len(recs); n > 0 {
			inByTopic[fp.Topic] += n
			heads[partitionKey{fp.Topic, fp.Partition}] = recs[n-1].Offset + 1
		}
	})
	r.reprocessProgress(heads)
	r.metrics.committed(r, b, inByTopic)
	r.afterCommit(ctx)
	if held > 0 && in == 0 {
		// Every record waits for a transaction to complete: wait for more
		// input instead of fetching the same records again at once.
		if r.cfg.MaxBatch > 0 && fetches.NumRecords() >= r.cfg.MaxBatch {
			r.log.Warn("a source transaction does not fit in one batch; raise the batch size (--max-batch)", "max_batch", r.cfg.MaxBatch)
		}
		r.whole.idle.wait(ctx)
	} else {
		r.whole.idle.attempt = 0
	}
	return true, nil
}

// stopAt is where partition fp's processing stops in this batch.
func stopAt(stops map[partitionKey]int64, fp kgo.FetchTopicPartition) int64 {
	if s, ok := stops[partitionKey{fp.Topic, fp.Partition}]; ok {
		return s
	}
	return math.MaxInt64
}

// processed are fp's records below stop.
func processed(fp kgo.FetchTopicPartition, stop int64) []*kgo.Record {
	for i, rec := range fp.Records {
		if rec.Offset >= stop {
			return fp.Records[:i]
		}
	}
	return fp.Records
}

// takeBackBatch removes what the aborted batch appended to each change log
// and refills the identity windows the batch had added to.
func (r *Runner) takeBackBatch() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.parts {
		if !p.appended {
			continue
		}
		start := p.batchStart
		if _, err := p.log.Rewind(func(e *auditlog.Entry) bool { return e.Seq > start }); err != nil {
			return fmt.Errorf("%w: take back aborted batch from %s: %w", ErrFatal, p.log.Dir(), err)
		}
		p.appended = false
		p.committed = p.committed[:0]
		if err := r.refillWindow(p); err != nil {
			return fmt.Errorf("%w: %w", ErrFatal, err)
		}
	}
	return nil
}

func (r *Runner) reconcileAll(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.parts {
		p.appended = false
		p.committed = p.committed[:0]
		if err := r.reconcile(ctx, r.sess.Client(), p); err != nil {
			return err
		}
	}
	return nil
}

// processPartition turns one partition's records into output records and
// change-log entries, and appends the entries.
func (r *Runner) processPartition(ctx context.Context, fp kgo.FetchTopicPartition, stop int64) error {
	fp.Records = processed(fp, stop)
	if len(fp.Records) == 0 {
		return nil
	}
	k := partitionKey{fp.Topic, fp.Partition}
	r.mu.Lock()
	p := r.parts[k]
	r.mu.Unlock()
	if p == nil {
		return fmt.Errorf("%w: records for %s/%d, which is not assigned to this instance", ErrFatal, k.topic, k.partition)
	}
	b := &r.batch
	b.entries = b.entries[:0]
	seq, sysTime, _ := p.log.Tail()
	p.batchStart = seq
	dec := r.decoders[fp.Topic]
	for _, in := range fp.Records {
		var err error
		b.changes, err = cdc.DecodeAll(ctx, dec, in.Key, in.Value, b.changes[:0])
		if err != nil {
			if errors.Is(err, cdc.ErrMalformed) {
				b.deadLetter(r, in, "malformed", err)
				continue
			}
			return fmt.Errorf("%w: decode %s/%d@%d: %w", errTransient, in.Topic, in.Partition, in.Offset, err)
		}
		// All records of one input event go out, or none: remember where
		// the event started so a failure rolls the whole event back.
		mark := b.mark()
		nextSeq, nextSys := seq, sysTime
		var class string
		for i := range b.changes {
			c := &b.changes[i]
			c.Origin = cdc.Origin{Topic: in.Topic, Partition: in.Partition, Offset: in.Offset}
			if c.Kind != cdc.KindChange {
				b.skipped++
				continue
			}
			if class, err = r.handleChange(ctx, p, in, c, &nextSeq, &nextSys); err != nil || class == "duplicate" {
				break
			}
		}
		switch {
		case errors.Is(err, ErrFatal):
			return err
		case err != nil:
			b.rollback(mark)
			b.deadLetter(r, in, class, err)
		case class == "duplicate":
			b.rollback(mark)
			b.duplicates++
		default:
			seq, sysTime = nextSeq, nextSys
			for _, id := range b.eventIDs {
				p.seen.add(id)
			}
		}
		b.eventIDs = b.eventIDs[:0]
	}
	if len(b.entries) == 0 {
		return nil
	}
	p.appended = true
	if err := p.log.Append(b.entries); err != nil {
		return fmt.Errorf("%w: change log %s: %w", ErrFatal, p.log.Dir(), err)
	}
	if r.serve.current != nil {
		p.committed = append(p.committed, b.entries...) // published once the batch commits
	}
	return nil
}

// errTransient marks a failure that is no fault of the event (the registry
// is unreachable): the batch is abandoned and consumed again after a pause.
var errTransient = errors.New("transient")

// handleChange runs the handler on one change, checks its records against
// the port's contract, and stamps, encodes and queues them. It returns the
// dead-letter class with an error, or "duplicate" for a change the source
// sent again.
func (r *Runner) handleChange(ctx context.Context, p *partition, in *kgo.Record, c *cdc.Change, seq *uint64, sysTime *int64) (string, error) {
	b := &r.batch
	var err error
	b.outputs, err = r.handler(ctx, c, b.outputs[:0])
	if err != nil {
		if errors.Is(err, transforms.ErrPanic) {
			return "panic", err
		}
		return "handler", err
	}
	if len(b.outputs) == 0 {
		return "", nil
	}
	pos := c.Source.Position.String()
	again := p.reprocess != nil && in.Offset < p.reprocess.Until // consumed again on purpose
	if pos != "" && !again && p.seen.has(identity(pos, b.outputs[0].Key)) {
		return "duplicate", nil
	}
	for i := range b.outputs {
		out := &b.outputs[i]
		if out.Deleted {
			r.checker.Retract(out.Key)
			continue
		}
		if b.violations, err = r.checker.Check(out.Key, out.Value, b.violations[:0]); err != nil {
			return "", fmt.Errorf("%w: output port contract: %w", ErrFatal, err)
		}
		for _, v := range b.violations {
			if v.DeadLetter {
				return "contract", fmt.Errorf("contract: %s", v.String())
			}
		}
	}
	for i := range b.outputs {
		*seq++
		*sysTime = max(r.cfg.Now(), *sysTime+1)
		if err := b.addRecord(ctx, r, in, c, pos, &b.outputs[i], *seq, *sysTime); err != nil {
			if errors.Is(err, errTransient) || errors.Is(err, ErrFatal) {
				return "", err
			}
			return "schema", err
		}
	}
	if pos != "" { // remembered once the whole event is through
		for i := range b.outputs {
			b.eventIDs = append(b.eventIDs, identity(pos, b.outputs[i].Key))
		}
	}
	return "", nil
}

// onAssigned opens and reconciles the change logs of newly assigned
// partitions. It runs between batches.
func (r *Runner) onAssigned(ctx context.Context, cl *kgo.Client, assigned map[string][]int32) {
	for topic, ps := range assigned {
		for _, n := range ps {
			k := partitionKey{topic, n}
			p, err := r.openPartition(ctx, cl, k)
			if err != nil {
				if ctx.Err() == nil {
					err = fmt.Errorf("assigned %s/%d: %w", topic, n, err)
					r.assignErr.CompareAndSwap(nil, &err)
				}
				return
			}
			r.mu.Lock()
			if old := r.parts[k]; old != nil {
				old.log.Close()
			}
			r.parts[k] = p
			r.mu.Unlock()
			r.log.Info("partition assigned", "topic", topic, "partition", n)
		}
	}
}

// onRevoked closes the change logs of partitions this instance no longer
// owns, so their new owner can open them.
func (r *Runner) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for topic, ps := range revoked {
		for _, n := range ps {
			k := partitionKey{topic, n}
			if p := r.parts[k]; p != nil {
				r.checkpoint(p) // between batches: every entry is committed
				if err := p.log.Close(); err != nil {
					r.log.Error("close change log", "topic", topic, "partition", n, "err", err)
				}
				delete(r.parts, k)
				r.log.Info("partition revoked", "topic", topic, "partition", n)
			}
		}
	}
}

func (r *Runner) close(cause error) {
	r.sess.Close()
	r.stopLineage(cause)
	r.stopMesh()
	r.stopControl()
	r.stopServing()
	if r.rdb != nil {
		r.rdb.Close()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, p := range r.parts {
		r.checkpoint(p)
		if err := p.log.Close(); err != nil {
			r.log.Error("close change log", "topic", k.topic, "partition", k.partition, "err", err)
		}
		delete(r.parts, k)
	}
}

// batch holds one poll batch's work. Its slices are reused batch to batch;
// the arena is not, because produced records point into it until the
// transaction ends.
type batch struct {
	changes    []cdc.Change
	outputs    []transforms.Output
	violations []contracts.Violation
	eventIDs   []uint64 // identities of the event being processed
	entries    []auditlog.Entry
	produce    []*kgo.Record
	arena      []byte
	// eventTimes holds the source commit time (unix µs) of each record's
	// event, for the publish-latency histogram.
	eventTimes        []int64
	deadLetterClasses map[deadLetterKey]int

	records, deadLetters, skipped, duplicates int
}

type deadLetterKey struct{ topic, class string }

func (b *batch) reset() {
	b.produce = b.produce[:0]
	b.arena = make([]byte, 0, max(cap(b.arena), 64<<10))
	b.records, b.deadLetters, b.skipped, b.duplicates = 0, 0, 0, 0
	b.eventTimes = b.eventTimes[:0]
	clear(b.deadLetterClasses)
}

type batchMark struct{ entries, produce, records int }

func (b *batch) mark() batchMark { return batchMark{len(b.entries), len(b.produce), b.records} }

func (b *batch) rollback(m batchMark) {
	b.entries, b.produce, b.records = b.entries[:m.entries], b.produce[:m.produce], m.records
	b.eventTimes = b.eventTimes[:m.records]
}

func (b *batch) deadLetter(r *Runner, in *kgo.Record, class string, err error) {
	m := r.product.Manifest
	r.log.Warn("dead letter", "class", class, "topic", in.Topic, "partition", in.Partition, "offset", in.Offset, "err", err)
	b.produce = append(b.produce, ports.DeadLetter(m.DeadLetter.Topic, m.ID, in, class, err))
	b.deadLetters++
	if b.deadLetterClasses == nil {
		b.deadLetterClasses = make(map[deadLetterKey]int)
	}
	b.deadLetterClasses[deadLetterKey{in.Topic, class}]++
}

// addRecord stamps, encodes and queues one handler output.
func (b *batch) addRecord(ctx context.Context, r *Runner, in *kgo.Record, c *cdc.Change, pos string, out *transforms.Output, seq uint64, sysTime int64) error {
	meta := schemas.Meta{SystemFrom: sysTime, Deleted: out.Deleted, ValidFrom: c.CommitTime.UnixMicro()}
	if !out.ValidFrom.IsZero() {
		meta.ValidFrom = out.ValidFrom.UnixMicro()
	}
	if !out.ValidTo.IsZero() {
		meta.ValidTo = out.ValidTo.UnixMicro()
	}
	logged, sealed, published, redacted, err := r.gov.apply(ctx, out.Key, out.Value)
	if err != nil {
		return fmt.Errorf("policy for key %q: %w", out.Key, err)
	}
	start := len(b.arena)
	b.arena, err = r.encoder.Append(b.arena, logged, meta)
	if err != nil {
		b.arena = b.arena[:start]
		return fmt.Errorf("encode record for key %q: %w", out.Key, err)
	}
	payload := b.arena[start:len(b.arena):len(b.arena)]
	wire := payload
	if sealed != nil {
		at := len(b.arena)
		b.arena = seal.Frame(b.arena, sealed, payload)
		payload = b.arena[at:len(b.arena):len(b.arena)]
	}
	if redacted || sealed != nil {
		// The topic gets the policy's view of the full record, not the
		// log's sealed one.
		at := len(b.arena)
		if b.arena, err = r.encoder.Append(b.arena, published, meta); err != nil {
			b.arena = b.arena[:start]
			return fmt.Errorf("encode record for key %q: %w", out.Key, err)
		}
		wire = b.arena[at:len(b.arena):len(b.arena)]
	}
	keyStart := len(b.arena)
	b.arena = append(b.arena, out.Key...)
	key := b.arena[keyStart:len(b.arena):len(b.arena)]

	op := auditlog.OpAssert
	if out.Deleted {
		op = auditlog.OpRetract
	}
	b.entries = append(b.entries, auditlog.Entry{
		Seq: seq, SystemTime: sysTime, ValidFrom: meta.ValidFrom, ValidTo: meta.ValidTo, Op: op,
		Key: key, Payload: payload,
		Prov: auditlog.Provenance{
			Topic: in.Topic, Partition: in.Partition, Offset: in.Offset,
			SourcePosition: pos, SchemaID: uint32(r.schemaID),
		},
	})
	b.produce = append(b.produce, &kgo.Record{Topic: r.product.Manifest.OutputPorts[0].Topic, Key: key, Value: wire})
	b.records++
	b.eventTimes = append(b.eventTimes, c.CommitTime.UnixMicro())
	return nil
}

// groupInstanceID is the replica's static group membership id (KIP-345).
func groupInstanceID(instance string) string { return "meshlet-" + instance }

// transactionalID is stable per product and instance, so a restarted
// instance fences the zombie it replaces.
func transactionalID(productID, instance string) string {
	return "meshlet." + strings.ReplaceAll(productID, ":", ".") + "." + instance
}
