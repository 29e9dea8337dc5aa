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
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/contracts"
	"github.com/meshlet/meshlet/internal/failpoint"
	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
	"github.com/meshlet/meshlet/transforms"
)

// ErrFatal marks an error the product must stop for: continuing would let
// the change log and the output disagree (a corrupt log, a log that belongs
// to another group) or publish what consumers cannot read (an incompatible
// schema). Everything else is retried or dead-lettered.
var ErrFatal = errors.New("fatal")

// errTransient marks a failure that is no fault of the event (the registry
// is unreachable): the batch is abandoned and consumed again after a pause.
var errTransient = errors.New("transient")

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
// context given to Run. The Runner keeps the batch loop; what a product
// does around it (serving its ports, control commands, lineage, the mesh,
// metrics) is each on a type of its own.
type Runner struct {
	product *Product
	cfg     config
	log     *slog.Logger

	sess     kafka.Session
	join     func() (kafka.Session, error) // makes a session: at Start, and again by reopen
	reopens  int                           // sessions reopened since the last committed batch
	kcl      atomic.Pointer[kgo.Client]    // the session's client, once it exists
	rdb      *redis.Client                 // nil without Redis
	registry *schemas.Registry
	inputs   map[string]*inputPort // by topic
	outputs  outputs               // the stream output ports, in manifest order
	chain    step                  // the per-event stages, composed once

	parts partitions
	// assignErr is the first failure of a rebalance callback; the loop
	// stops with it, since the callback itself cannot return an error.
	assignErr atomic.Pointer[error]

	limits  recordLimits // what each topic accepts; see limits.go
	whole   wholeTx
	clog    *changelog // nil: the local segments are the only copy (LocalLogOnly, at least once)
	standby *standby
	state   *stateRuntime // nil: the product keeps no state (state.go)
	stats   Stats
	metrics *metrics
	serve   *serving
	control loopControl
	lineage *lineageRun
	mesh    *meshMember
	plane   *controlPlane

	// batch holds the buffers one poll batch reuses.
	batch batch
	// unsettled: a batch's outcome was still unknown when the loop
	// stopped or the session broke, so the logs may hold entries that
	// never committed and no checkpoint may be signed over them until they
	// are reconciled (at the next start, or the next session's assignment).
	unsettled atomic.Bool
}

// stages is the chain every input record goes through; see stage.go.
func (r *Runner) stages() step {
	return compose(done,
		decode(),
		handle(),
		route(r.outputs),
		dedup(),
		contract(r.outputs),
		govern(r.outputs),
		encode(r.outputs, r.cfg.now),
	)
}

// Start prepares a product to run: it loads and registers the output schema
// (refusing an incompatible one before anything is produced), starts the
// management port, the control plane and the mesh membership, and joins the
// consumer group.
func Start(ctx context.Context, p *Product, opts ...Option) (*Runner, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.group == "" {
		cfg.group = p.Manifest.ID
	}
	r := &Runner{
		product: p,
		cfg:     cfg,
		log:     cfg.logger.With("data_product", p.Manifest.ID),
		inputs:  make(map[string]*inputPort),
	}
	r.control.wake = make(chan struct{})
	reg, err := schemas.NewRegistry([]string{cfg.registryURL}, cfg.registryOpts()...)
	if err != nil {
		return nil, fmt.Errorf("schema registry %s: %w", cfg.registryURL, err)
	}
	r.registry = reg
	for i, out := range p.Manifest.OutputPorts {
		checker, err := contracts.NewChecker(p.Contracts[i], out.Name)
		if err != nil {
			return nil, fmt.Errorf("%w: output port %s: contract: %w", ErrFatal, out.Name, err)
		}
		for _, u := range checker.Unchecked() {
			r.log.Warn("contract rule cannot be checked one record at a time; not enforced", "port", out.Name, "rule", u)
		}
		r.outputs = append(r.outputs, &outputPort{name: out.Name, topic: out.Topic, subject: out.Subject, index: i, checker: checker})
	}
	r.metrics = newMetrics(measured{
		product: p.Manifest, maxBatch: cfg.maxBatch, now: cfg.now, outputs: r.outputs,
		parts: &r.parts, client: r.kcl.Load, group: cfg.group,
	})
	handler := transforms.Chain(p.Handler, transforms.Recover())
	for _, in := range p.Manifest.InputPorts {
		dec, err := r.newDecoder(in.Format, in.Topic)
		if err != nil {
			return nil, fmt.Errorf("input port %s: %w", in.Name, err)
		}
		r.inputs[in.Topic] = &inputPort{name: in.Name, topic: in.Topic, format: in.Format, decoder: dec, handler: p.portHandler(in, handler)}
	}
	if cfg.redisAddr != "" {
		// One client, so one pool, for everything the product keeps in
		// Redis: current state, keys, the mesh registry, control streams.
		r.rdb = redis.NewClient(cfg.redisOptions())
	}
	if err := r.startGovernance(); err != nil {
		return nil, err
	}
	if err := r.registerSchema(ctx); err != nil {
		return nil, err
	}
	r.chain = r.stages()
	bus, owned, err := r.controlBus()
	if err != nil {
		return nil, err
	}
	r.plane = startControlPlane(bus, owned, r.handleCommand, r.log)
	r.mesh = joinMesh(r.rdb, cfg.meshTTL)
	if r.serve, err = startServing(ctx, r.servingDeps()); err != nil {
		r.plane.stop()
		return nil, err
	}
	r.mesh.start(r.meshProduct, cfg.instance, r.log)
	r.lineage = startLineage(ctx, r.lineageSpec())
	var topics []string
	for _, in := range p.Manifest.InputPorts {
		topics = append(topics, in.Topic)
	}
	extra, err := r.setupWholeTx()
	if err != nil {
		return nil, err
	}
	topics = append(topics, extra...)
	g := kafka.Group{
		Brokers: cfg.brokers, Group: cfg.group, Topics: topics, Instance: cfg.instance, Product: p.Manifest.ID,
		Security: cfg.kafkaSecurity, Logger: kafka.Logger(r.log),
		OnAssigned: r.onAssigned, OnRevoked: r.onRevoked,
	}
	standbys := cfg.standbys
	if standbys < 0 {
		standbys = p.Manifest.Standbys
	}
	// Made before the session: the group's balancer asks it, at every
	// join, which logs this replica holds warm.
	r.standby = &standby{n: standbys}
	g.Warm = r.standby.warmSet
	if cfg.sessionTimeout > 0 {
		g.Extra = append(g.Extra, kgo.SessionTimeout(cfg.sessionTimeout))
	}
	// Record batches are cut to what each topic accepts (limits.go).
	g.Extra = append(g.Extra, kgo.ProducerBatchMaxBytesFn(r.limits.batchMax))
	mirror := cfg.delivery == ExactlyOnce && !cfg.localLogOnly
	if p.stateful() {
		// A task's partitions (one number of every input) go together.
		g.Extra = append(g.Extra, kgo.Balancers(kgo.RangeBalancer()))
	}
	if mirror {
		// Changelog records name their partition: the input partition's.
		g.Extra = append(g.Extra, kgo.RecordPartitioner(kafka.Partitioner(kafka.ChangelogTopic(p.Manifest.ID))))
	}
	if mirror {
		// Before the session: joining the group may assign partitions,
		// whose reconciliation reads the changelog, at once.
		pub, _ := os.ReadFile(filepath.Join(cfg.dataDir, auditlog.VerifierFile))
		if r.clog, err = startChangelog(ctx, r, pub); err != nil {
			return nil, err
		}
		r.serve.publish = r.clog.publishCheckpoint
	}
	if err := r.startState(ctx); err != nil {
		r.clog.close()
		return nil, err
	}
	if cfg.delivery == AtLeastOnce {
		r.join = func() (kafka.Session, error) { return kafka.AtLeastOnce(g) }
	} else {
		if cfg.transactionTimeout > 0 {
			g.Extra = append(g.Extra, kgo.TransactionTimeout(cfg.transactionTimeout))
		}
		r.join = func() (kafka.Session, error) { return kafka.Transactional(g) }
	}
	if r.sess, err = r.join(); err != nil {
		r.clog.close()
		return nil, err
	}
	r.kcl.Store(r.sess.Client())
	r.startStandby()
	if cfg.createTopics {
		if err := r.createTopics(ctx); err != nil {
			r.sess.Close()
			return nil, err
		}
	}
	r.readLimits(ctx, r.sess.Client())
	return r, nil
}

// newDecoder is the decoder of an input topic, reading Avro through the
// registry and counted in the product's metrics.
func (r *Runner) newDecoder(format, topic string) (cdc.Decoder, error) {
	dec, err := cdc.NewDecoder(format, cdc.WithAvro(avroSource{r.registry}))
	if err != nil {
		return nil, err
	}
	return cdc.Counted(dec, format, topic, r.metrics.cdc), nil
}

// registerSchema registers each output port's schema under its subject,
// retrying while the registry is unreachable; an incompatible schema is
// fatal at once.
func (r *Runner) registerSchema(ctx context.Context) error {
	for i, port := range r.product.Manifest.OutputPorts {
		if err := r.registerPort(ctx, i, port); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) registerPort(ctx context.Context, i int, port OutputPort) error {
	s, err := r.product.PortSchema(i)
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
		id, err = r.registry.Register(ctx, port.Subject, s, level)
		if err == nil {
			break
		}
		if errors.Is(err, schemas.ErrIncompatible) {
			return fmt.Errorf("%w: output port %s: %w", ErrFatal, port.Name, err)
		}
		r.log.Warn("schema registry unavailable; retrying", "registry", r.cfg.registryURL, "subject", port.Subject, "err", err)
		if werr := b.wait(ctx); werr != nil {
			return fmt.Errorf("output port %s: register schema under subject %s: %w", port.Name, port.Subject, err)
		}
	}
	enc, err := schemas.NewEncoder(s, id)
	if err != nil {
		return err
	}
	o := r.outputs[i]
	o.encoder, o.schemaID, o.schema = enc, id, s
	if err := r.saveSchema(id, s); err != nil {
		return err
	}
	r.log.Info("output schema registered", "port", port.Name, "subject", port.Subject, "schema_id", id)
	return nil
}

// saveSchema keeps the published schema beside the change logs, so auditors
// can decode entries offline without the registry.
func (r *Runner) saveSchema(id int, s *schemas.Schema) error {
	dir := filepath.Join(r.cfg.dataDir, "schemas")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	path := filepath.Join(dir, strconv.Itoa(id)+".avsc")
	// A temporary file of its own: replicas sharing a data directory
	// save the same schema at the same moment.
	f, err := os.CreateTemp(dir, strconv.Itoa(id)+".avsc.*.tmp")
	if err != nil {
		return err
	}
	_, werr := f.WriteString(s.Published())
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chmod(f.Name(), 0o640)
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
	}
	return werr
}

// Stats returns the live counters.
func (r *Runner) Stats() *Stats { return &r.stats }

// SchemaID is the registry id every event of the first output port
// carries in this run.
func (r *Runner) SchemaID() int { return r.outputs[0].schemaID }

// PortStats is what one output port published.
type PortStats struct {
	Name, Topic, Subject string
	SchemaID             int
	Records              int64 // records published, counted when their batch commits
}

// Ports reports each output port's registry id and committed record count,
// in manifest order.
func (r *Runner) Ports() []PortStats {
	out := make([]PortStats, len(r.outputs))
	for i, o := range r.outputs {
		out[i] = PortStats{Name: o.name, Topic: o.topic, Subject: o.subject, SchemaID: o.schemaID, Records: o.records.Load()}
	}
	return out
}

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
		if r.serve.lagging() {
			// Redis is behind: an idle loop still lets it catch up.
			var stop context.CancelFunc
			pctx, stop = context.WithTimeout(pctx, time.Second)
			release := cancel
			cancel = func() { stop(); release() }
		}
		fetches := r.poll(pctx)
		interrupted := pctx.Err() != nil
		cancel()
		if p := r.assignErr.Load(); p != nil {
			return *p
		}
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		var plan holdPlan
		if r.whole.enabled {
			if fetches, plan = r.gatherWhole(ctx, fetches); plan.err != nil && !errors.Is(plan.err, errTransient) {
				return plan.err
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
			if plan.held == 0 {
				r.sess.Settle(ctx)
			}
			// Before a rebalance may come: the partitions stand still.
			r.serve.catchUp(ctx, &r.parts)
			// An interrupted poll returns its error as a fetch, which
			// blocks rebalances like records do: nothing is in flight.
			r.sess.AllowRebalance()
			continue
		}
		// A batch that started is finished even if shutdown is asked for
		// meanwhile: committing it is the clean way out.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.batchTimeout)
		committed, err := r.runBatch(bctx, ctx, fetches, plan)
		cancel()
		if errors.Is(err, errSessionBroken) {
			err = r.reopen(ctx, err)
		}
		if err != nil {
			return err
		}
		if committed {
			r.reopens = 0
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
	if r.cfg.maxBatch > 0 {
		return r.sess.PollRecords(ctx, r.cfg.maxBatch)
	}
	return r.sess.PollFetches(ctx)
}

// runBatch is one cycle of the batch loop; see the package doc. It reports
// whether the batch committed; an error is fatal. plan says how far each
// partition goes in whole-transaction mode (zero: all of every partition).
//
// ctx bounds the batch; outer is the loop's, for what must outlast a
// batch that failed (settle).
func (r *Runner) runBatch(ctx, outer context.Context, fetches kgo.Fetches, plan holdPlan) (bool, error) {
	defer r.sess.AllowRebalance()
	if err := r.sess.Begin(); err != nil {
		return false, fmt.Errorf("%w: begin transaction: %w", errSessionBroken, err)
	}
	b := &r.batch
	b.reset()
	// appended marks what this batch adds: a partition the batch does not
	// reach must not be taken back to where an earlier batch began.
	r.parts.each(func(p *partition) { p.appended = false })
	stops, procErr := plan.stops, plan.err
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if procErr == nil {
			procErr = r.processPartition(ctx, p, stopAt(stops, p), plan.decoded)
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
	if err := r.appendState(b); err != nil {
		r.sess.End(ctx, false)
		return false, err
	}
	failpoint.Hit("runtime/after-append")

	produceErr := r.produceAll(ctx, b.produce)
	stamp := r.stamp(stops)
	failpoint.Hit("runtime/before-commit")
	committed, err := r.sess.End(stamp.context(ctx), produceErr == nil)
	if err != nil {
		// The outcome is unknown to us: ask the group what committed and
		// make the logs agree with it, as after a crash.
		r.log.Warn("ending the transaction failed; reconciling change logs with the committed offsets", "err", err)
		var settled bool
		if committed, settled, err = r.settle(outer, fetches, stops); err != nil || !settled {
			// Shutting down, or the session broke: the next start, or the
			// next session's assignment, reconciles.
			r.unsettled.Store(true)
			return false, err
		}
		if !committed {
			r.stats.Aborted.Add(1)
			r.metrics.batches.WithLabelValues("aborted").Inc()
			return false, nil
		}
	}
	failpoint.Hit("runtime/after-commit")
	if !committed {
		if produceErr != nil {
			r.log.Warn("batch aborted: a record was not acknowledged; it will be consumed again", "err", produceErr)
			if errors.Is(produceErr, kerr.MessageTooLarge) {
				// A topic's limit went down since it was read: read it
				// again, so the batch consumed again meets it.
				r.readLimits(ctx, r.sess.Client())
			}
		} else {
			r.log.Warn("batch aborted (a rebalance, or the brokers refused its offset commit or EndTxn); it will be consumed again")
		}
		r.stats.Aborted.Add(1)
		r.metrics.batches.WithLabelValues("aborted").Inc()
		return false, r.takeBackBatch()
	}
	if err := r.commitState(); err != nil {
		return false, err
	}
	r.counted(ctx, fetches, plan)
	return true, nil
}

// produceAll sends the batch's records and waits for the result of every
// one: those results, not End, decide whether the batch commits. End
// commits whatever the brokers acknowledged, so a record one refused (too
// large, say) would otherwise be missing from a batch that committed. It
// returns the first failure.
func (r *Runner) produceAll(ctx context.Context, recs []*kgo.Record) error {
	var (
		first   atomic.Pointer[error]
		pending sync.WaitGroup
	)
	pending.Add(len(recs))
	for _, rec := range recs {
		r.sess.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			defer pending.Done()
			if err != nil {
				err = fmt.Errorf("produce %d bytes to %s/%d: %w", len(rec.Value), rec.Topic, rec.Partition, err)
				first.CompareAndSwap(nil, &err)
			}
		})
	}
	if err := r.sess.Flush(ctx); err != nil {
		return fmt.Errorf("waiting for the batch's %d records to be acknowledged: %w", len(recs), err)
	}
	// A record failed before it was buffered may have its result
	// delivered apart from the flush.
	pending.Wait()
	if p := first.Load(); p != nil {
		return *p
	}
	return nil
}

// counted accounts for a batch that committed: the counters, reprocessing
// progress, Redis and checkpoints move only now.
func (r *Runner) counted(ctx context.Context, fetches kgo.Fetches, plan holdPlan) {
	b, stops := &r.batch, plan.stops
	r.putBack(stops)
	in := 0
	inByTopic := make(map[string]int, len(r.inputs))
	heads := make(map[partitionKey]int64)
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		recs := processed(fp, stopAt(stops, fp))
		if n := len(recs); n > 0 {
			in += n
			inByTopic[fp.Topic] += n
			heads[partitionKey{fp.Topic, fp.Partition}] = recs[n-1].Offset + 1
		}
	})
	r.stats.EventsIn.Add(int64(in))
	r.stats.Records.Add(int64(b.records))
	r.stats.DeadLetters.Add(int64(b.deadLetters))
	r.stats.Skipped.Add(int64(b.skipped))
	r.stats.Duplicates.Add(int64(b.duplicates))
	r.stats.Batches.Add(1)
	r.unsettled.Store(false) // every open log was reconciled when it was assigned
	r.reprocessProgress(heads)
	r.metrics.committed(b, inByTopic)
	r.serve.afterCommit(ctx, &r.parts)
	if plan.held > 0 && in == 0 {
		// Every record waits for a transaction to complete: wait for more
		// input instead of fetching the same records again at once.
		if r.cfg.maxBatch > 0 && fetches.NumRecords() >= r.cfg.maxBatch {
			r.log.Warn("a source transaction does not fit in one batch; raise the batch size (--max-batch)", "max_batch", r.cfg.maxBatch)
		}
		r.whole.idle.wait(ctx)
	} else {
		r.whole.idle.attempt = 0
	}
}

// settle finds out what became of a batch whose End failed (a lost
// connection, a timeout: the commit may or may not have happened). It
// ends the transaction as aborted, which clears franz-go's unconfirmed
// state and bumps the producer epoch, fencing whatever may still be open
// on the brokers; then it reads what the group committed, stably, makes
// the change logs agree with it, and sets the consumer there. The batch
// committed when the group's offset of a partition it processed moved past
// where the batch began. ctx is the loop's: settling waits out a broker
// that is down, for as long as it takes, until shutdown.
func (r *Runner) settle(ctx context.Context, fetches kgo.Fetches, stops map[partitionKey]int64) (committed, settled bool, err error) {
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		_, err := r.sess.End(ctx, false)
		if err == nil {
			break
		}
		if !kerr.IsRetriable(err) && b.attempt >= 3 || b.attempt >= 30 {
			// The session will not heal: a new one reconciles on
			// assignment what this one could not.
			return false, false, fmt.Errorf("%w: end the failed transaction: %w", errSessionBroken, err)
		}
		if b.attempt%10 == 0 {
			r.log.Warn("cannot end the failed transaction yet; retrying", "err", err)
		}
		if err := b.wait(ctx); err != nil {
			return false, false, r.stopping(err)
		}
	}
	cl := r.sess.Client()
	set := map[string]map[int32]kgo.EpochOffset{}
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 || err != nil {
			return
		}
		k := partitionKey{fp.Topic, fp.Partition}
		var at int64
		var ok bool
		if at, _, ok, err = r.committedOffset(ctx, cl, k); err != nil || !ok {
			return
		}
		if recs := processed(fp, stopAt(stops, fp)); len(recs) > 0 && at > recs[0].Offset {
			committed = true
		}
		if set[k.topic] == nil {
			set[k.topic] = map[int32]kgo.EpochOffset{}
		}
		set[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: at}
	})
	if err == nil {
		err = r.reconcileAll(ctx, committed)
	}
	if err != nil {
		return false, false, r.stopping(err)
	}
	cl.SetOffsets(set)
	if committed {
		r.log.Info("the failed transaction end had committed; the batch stands")
	} else {
		r.log.Info("the failed transaction end had not committed; the batch will be consumed again")
	}
	return committed, true, nil
}

// errSessionBroken marks a Kafka session the client cannot go on with:
// franz-go refuses to begin another transaction once some broker errors
// failed its producer id for good, and a failed End that cannot even be
// ended as aborted leaves it stuck.
var errSessionBroken = errors.New("the Kafka session is broken")

// reopen replaces a broken session with a new one, as a restart would: the
// old one leaves (its partitions are revoked and their logs closed), the
// new one joins under the same static member and transactional ids, which
// fences whatever the old producer left open, and reconciles each
// partition it is assigned with what committed. A fenced producer is not
// reopened (another replica runs under this instance id), nor is one that
// keeps breaking without a batch committing in between.
func (r *Runner) reopen(ctx context.Context, cause error) error {
	var ke *kerr.Error
	if errors.As(cause, &ke) && (ke == kerr.ProducerFenced || ke == kerr.InvalidProducerEpoch || ke == kerr.TransactionalIDAuthorizationFailed) {
		return fmt.Errorf("%w: %w", ErrFatal, cause)
	}
	if r.reopens++; r.reopens > 5 {
		return fmt.Errorf("%w: %w (reopened %d times without a batch committing)", ErrFatal, cause, r.reopens-1)
	}
	r.log.Warn("the Kafka session cannot go on; leaving the group and joining again", "err", cause, "attempt", r.reopens)
	r.sess.Close()
	b := backoff{min: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		sess, err := r.join()
		if err == nil {
			r.sess = sess
			r.kcl.Store(sess.Client())
			return nil
		}
		r.log.Warn("cannot join the group again yet; retrying", "err", err)
		if err := b.wait(ctx); err != nil {
			return nil
		}
	}
}

// stopping is err, or nil when it only says the product is shutting down:
// what did not settle then is reconciled at the next start.
func (r *Runner) stopping(err error) error {
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
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
func (r *Runner) takeBackBatch() (err error) {
	r.parts.each(func(p *partition) {
		if !p.appended || err != nil {
			return
		}
		start := p.batchStart
		if _, rerr := p.log.Rewind(func(e *auditlog.Entry) bool { return e.Seq > start }); rerr != nil {
			err = fmt.Errorf("%w: take back aborted batch from %s: %w", ErrFatal, p.log.Dir(), rerr)
			return
		}
		p.appended = false
		p.committed = p.committed[:0]
		if rerr := r.refillWindow(p); rerr != nil {
			err = fmt.Errorf("%w: %w", ErrFatal, rerr)
		}
	})
	if serr := r.takeBackState(); err == nil {
		err = serr
	}
	return err
}

// reconcileAll makes every open change log agree with what the group
// committed. committed says the batch in flight did commit, so its entries
// stay queued for Redis.
func (r *Runner) reconcileAll(ctx context.Context, committed bool) (err error) {
	r.parts.each(func(p *partition) {
		if err != nil {
			return
		}
		p.appended = false
		if !committed {
			p.committed = p.committed[:0]
		}
		err = r.reconcile(ctx, r.sess.Client(), p)
	})
	if err == nil {
		err = r.reconcileState(ctx)
	}
	return err
}

// processPartition runs one partition's records through the stages and
// appends the partition's entries to its change log. decoded holds the
// records' changes when they were decoded to plan the batch.
func (r *Runner) processPartition(ctx context.Context, fp kgo.FetchTopicPartition, stop int64, decoded map[*kgo.Record][]cdc.Change) error {
	fp.Records = processed(fp, stop)
	if len(fp.Records) == 0 {
		return nil
	}
	k := partitionKey{fp.Topic, fp.Partition}
	p := r.parts.get(k)
	if p == nil {
		return fmt.Errorf("%w: records for %s/%d, which is not assigned to this instance", ErrFatal, k.topic, k.partition)
	}
	port := r.inputs[fp.Topic]
	b := &r.batch
	b.entries = b.entries[:0]
	seq, sysTime, _ := p.log.Tail()
	p.batchStart = seq
	ctx, st := r.stateFor(ctx, fp.Partition)
	ev := &b.ev
	for _, in := range fp.Records {
		ev.reset(in, port, p, b, seq, sysTime)
		if changes, ok := decoded[in]; ok {
			ev.changes, ev.predecoded = append(ev.changes, changes...), true
		}
		mark, sp := b.mark(), st.savepoint()
		err := r.chain(ctx, ev)
		st.saw(in)
		b.skipped += ev.skipped
		if poison, ok := ports.AsPoison(err); ok {
			b.rollback(mark)
			st.rollback(sp)
			r.log.Warn("dead letter", "class", poison.Class.String(), "topic", in.Topic, "partition", in.Partition, "offset", in.Offset, "err", poison.Err)
			dlq := r.product.Manifest.DeadLetter.Topic
			b.deadLetter(dlq, r.product.Manifest.ID, in, poison, r.limits.of(dlq))
			continue
		}
		if err != nil {
			return err
		}
		if ev.duplicate {
			b.rollback(mark)
			st.rollback(sp)
			b.duplicates++
			continue
		}
		seq, sysTime = ev.seq, ev.sysTime
	}
	if len(b.entries) == 0 {
		return nil
	}
	p.appended = true
	if err := p.log.Append(b.entries); err != nil {
		return fmt.Errorf("%w: change log %s: %w", ErrFatal, p.log.Dir(), err)
	}
	if r.clog != nil {
		r.clog.queue(b, p, b.entries)
	}
	if r.serve.current != nil {
		p.committed = append(p.committed, b.entries...) // published once the batch commits
	}
	return nil
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
			if old := r.parts.put(p); old != nil {
				old.log.Close()
			}
			if err := r.assignState(ctx, cl, k); err != nil {
				if ctx.Err() == nil {
					err = fmt.Errorf("assigned %s/%d: %w", topic, n, err)
					r.assignErr.CompareAndSwap(nil, &err)
				}
				return
			}
			r.serve.rebuild(ctx, p)
			r.log.Info("partition assigned", "topic", topic, "partition", n)
		}
	}
}

// onRevoked closes the change logs of partitions this instance no longer
// owns, so their new owner can open them.
func (r *Runner) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	for topic, ps := range revoked {
		for _, n := range ps {
			r.revokeState(partitionKey{topic, n})
			if p := r.parts.remove(partitionKey{topic, n}); p != nil {
				if !r.unsettled.Load() {
					r.serve.checkpoint(p) // between batches: every entry is committed
				}
				if err := p.log.Close(); err != nil {
					r.log.Error("close change log", "topic", topic, "partition", n, "err", err)
				}
				r.log.Info("partition revoked", "topic", topic, "partition", n)
			}
		}
	}
}

func (r *Runner) close(cause error) {
	r.standby.stop()
	r.sess.Close()
	defer r.clog.close()
	r.lineage.stop(cause)
	r.mesh.stop()
	r.plane.stop()
	r.serve.stop()
	if r.rdb != nil {
		r.rdb.Close()
	}
	var open []*partition
	r.closeState()
	r.parts.each(func(p *partition) { open = append(open, p) })
	for _, p := range open {
		r.parts.remove(p.key)
		if !r.unsettled.Load() {
			r.serve.checkpoint(p)
		}
		if err := p.log.Close(); err != nil {
			r.log.Error("close change log", "topic", p.key.topic, "partition", p.key.partition, "err", err)
		}
	}
}
