package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/cdc"
)

// Whole source transactions.
//
// An input port with `transactions: whole` publishes the changes of a
// Debezium source transaction only together, in one Kafka transaction, once
// the transaction's END (from the connector's transaction topic) and every
// change it counts for the tables the product reads have arrived.
//
// Each poll batch is assembled afresh (cdc.TxAssembler): transactions that
// complete within the batch are processed; each input partition is processed
// in offset order up to its first record that belongs to a transaction not
// complete yet (its stop), and put back from there: the batch's offset
// commit is amended to the stop (commitStamp) and the consumer set back to
// it after the commit, so the committed offset never passes a held change
// and a crash loses nothing. The commit marker keeps reconciliation exact. A transaction released in a batch whose parts cannot all be
// processed (one part sits behind another partition's stop) is held too.
//
// Put-back records are fetched again by the next poll, together with what
// arrived since. So a source transaction must fit in one batch (MaxBatch
// records across its tables); a batch that can release nothing while it is
// full is reported, since raising MaxBatch is the way out.
//
// While a batch holds a transaction back, gatherWhole pauses the
// partitions that have a stop and polls the others for the rest of it, so
// a backlog in one partition cannot keep a transaction's other parts and
// its END out of every batch. Records behind a stop do not count against
// MaxBatch there, so when the transaction completes, the batch can exceed
// MaxBatch by as many records.

// wholeTx is what whole-transaction mode knows of the input ports.
type wholeTx struct {
	enabled bool
	// collections maps an input topic to the table name Debezium's END
	// messages use for it ("inventory.products" for dbserver1.inventory.products).
	collections map[string]string
	txTopics    map[string]bool
	idle        backoff // waits while nothing can be released
}

// setupWholeTx reads the input ports' transaction settings: it returns the
// extra topics (transaction metadata) to consume.
func (r *Runner) setupWholeTx() ([]string, error) {
	w := &r.whole
	w.collections = map[string]string{}
	w.txTopics = map[string]bool{}
	var extra []string
	for _, in := range r.product.Manifest.InputPorts {
		if in.Transactions != "whole" {
			continue
		}
		w.enabled = true
		prefix := strings.TrimSuffix(in.TransactionTopic, ".transaction")
		w.collections[in.Topic] = strings.TrimPrefix(in.Topic, prefix+".")
		if !w.txTopics[in.TransactionTopic] {
			w.txTopics[in.TransactionTopic] = true
			extra = append(extra, in.TransactionTopic)
			dec, err := r.newDecoder(in.Format, in.TransactionTopic)
			if err != nil {
				return nil, err
			}
			r.inputs[in.TransactionTopic] = &inputPort{name: in.Name + " (transactions)", topic: in.TransactionTopic, format: in.Format, decoder: dec,
				handler: r.inputs[in.Topic].handler}
		}
	}
	w.idle = backoff{min: 20 * time.Millisecond, max: time.Second}
	return extra, nil
}

// decodedRecord is one input record and the changes it holds.
type decodedRecord struct {
	rec     *kgo.Record
	changes []cdc.Change
}

// wholeStops decides how far each partition of the batch is processed: it
// returns the offset to stop at per partition (absent: all of it). decoded
// keeps each record's changes, so a record is decoded once however often
// the batch is planned again, and processing reuses them.
func (r *Runner) wholeStops(ctx context.Context, fetches kgo.Fetches, decoded map[*kgo.Record][]cdc.Change) (map[partitionKey]int64, int, error) {
	w := &r.whole
	consumed := map[string]bool{}
	for _, c := range w.collections {
		consumed[c] = true
	}
	asm := cdc.TxAssembler{Consumed: func(c string) bool { return consumed[c] }}
	parts := map[partitionKey][]decodedRecord{}
	var order []partitionKey
	var err error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) == 0 || err != nil {
			return
		}
		k := partitionKey{fp.Topic, fp.Partition}
		order = append(order, k)
		for _, rec := range fp.Records {
			d := decodedRecord{rec: rec}
			if changes, ok := decoded[rec]; ok {
				d.changes = changes
			} else {
				// A malformed record holds no transaction; it is not kept,
				// so the decode stage dead-letters it when processed.
				var derr error
				d.changes, derr = cdc.DecodeAll(ctx, r.inputs[fp.Topic].decoder, rec.Key, rec.Value, nil)
				switch {
				case derr == nil:
					decoded[rec] = d.changes
				case !errors.Is(derr, cdc.ErrMalformed):
					err = fmt.Errorf("%w: decode %s/%d@%d: %w", errTransient, rec.Topic, rec.Partition, rec.Offset, derr)
					return
				}
			}
			for _, c := range d.changes {
				if _, _, aerr := asm.Add(c); aerr != nil && !errors.Is(aerr, cdc.ErrTxOverflow) {
					err = fmt.Errorf("%w: %s/%d@%d: %w", ErrFatal, rec.Topic, rec.Partition, rec.Offset, aerr)
					return
				}
			}
			parts[k] = append(parts[k], d)
		}
	})
	if err != nil {
		return nil, 0, err
	}
	// A transaction is publishable when the assembler released it and all
	// of its records lie before their partitions' stops; holding one moves
	// stops, so repeat until nothing changes.
	held := func(d *decodedRecord) bool {
		for i := range d.changes {
			c := &d.changes[i]
			if id := txOf(c); id != "" && !asm.Released(id) {
				return true
			}
		}
		return false
	}
	stops := map[partitionKey]int64{}
	for changed := true; changed; {
		changed = false
		for _, k := range order {
			stop := int64(math.MaxInt64)
			for i := range parts[k] {
				if held(&parts[k][i]) {
					stop = parts[k][i].rec.Offset
					break
				}
			}
			stops[k] = stop
		}
		for _, k := range order {
			for i := range parts[k] {
				d := &parts[k][i]
				if d.rec.Offset < stops[k] {
					continue
				}
				for j := range d.changes {
					if id := txOf(&d.changes[j]); id != "" && asm.Released(id) {
						asm.Hold(id)
						changed = true
					}
				}
			}
		}
	}
	heldRecords := 0
	for _, k := range order {
		if stops[k] == math.MaxInt64 {
			delete(stops, k)
			continue
		}
		for i := range parts[k] {
			if parts[k][i].rec.Offset >= stops[k] {
				heldRecords++
			}
		}
	}
	if heldRecords > 0 {
		r.log.Debug("holding changes of incomplete source transactions", "records", heldRecords, "stops", fmt.Sprint(stops))
	}
	return stops, heldRecords, nil
}

// txOf is the source transaction a change or boundary belongs to.
func txOf(c *cdc.Change) string {
	switch {
	case c.Kind == cdc.KindTxBoundary && c.Boundary != nil:
		return c.Boundary.ID
	case c.Kind == cdc.KindChange && c.Tx != nil:
		return c.Tx.ID
	}
	return ""
}

// putBack sets the consumer of each stopped partition back to its stop
// once the batch committed (the commit itself was amended to the stops, see
// commitStamp), so the next poll fetches the held records again.
func (r *Runner) putBack(stops map[partitionKey]int64) {
	if len(stops) == 0 {
		return
	}
	set := map[string]map[int32]kgo.EpochOffset{}
	for k, off := range stops {
		if set[k.topic] == nil {
			set[k.topic] = map[int32]kgo.EpochOffset{}
		}
		set[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
	}
	r.sess.Client().SetOffsets(set)
}

// holdPlan is how far each partition of a batch is processed in
// whole-transaction mode (see wholeStops).
type holdPlan struct {
	stops   map[partitionKey]int64
	held    int // records put back
	decoded map[*kgo.Record][]cdc.Change
	err     error
}

// gatherWhole polls again, briefly, while the batch holds changes of
// transactions whose other parts may already be fetched for other
// partitions: a transaction spread over partitions completes only when all
// of it is in one batch. It stops when a poll brings nothing new or the
// batch has MaxBatch records it can process, and returns the plan for the
// batch it gathered.
//
// Records behind a partition's stop cannot be processed in this batch, so
// they do not count against MaxBatch, and those partitions are paused while
// gathering: otherwise one partition's backlog (after a restart, say) fills
// every poll, the parts and END the held transaction waits for never fit
// in, and the product stalls for good. Pausing drops a partition's buffered
// records without moving its position; putBack sets it to its stop.
func (r *Runner) gatherWhole(ctx context.Context, fetches kgo.Fetches) (kgo.Fetches, holdPlan) {
	decoded := map[*kgo.Record][]cdc.Change{}
	cl := r.sess.Client()
	paused := map[string][]int32{}
	defer func() {
		if len(paused) > 0 {
			cl.ResumeFetchPartitions(paused)
		}
	}()
	for {
		h := holdPlan{decoded: decoded}
		h.stops, h.held, h.err = r.wholeStops(ctx, fetches, decoded)
		room := r.cfg.maxBatch - (fetches.NumRecords() - h.held)
		if h.err != nil || h.held == 0 || room <= 0 {
			return fetches, h
		}
		pause := map[string][]int32{}
		for k := range h.stops {
			if !slices.Contains(paused[k.topic], k.partition) {
				pause[k.topic] = append(pause[k.topic], k.partition)
				paused[k.topic] = append(paused[k.topic], k.partition)
			}
		}
		if len(pause) > 0 {
			cl.PauseFetchPartitions(pause)
		}
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		more := r.sess.PollRecords(pctx, room)
		cancel()
		if more.NumRecords() == 0 {
			return fetches, h
		}
		fetches = mergeFetches(fetches, more)
	}
}

// mergeFetches joins two polls into one, each partition's records in one
// run in offset order, as the batch loop expects.
func mergeFetches(a, b kgo.Fetches) kgo.Fetches {
	type run struct {
		topic string
		part  int32
		recs  []*kgo.Record
	}
	var runs []*run
	index := map[partitionKey]*run{}
	add := func(fs kgo.Fetches) {
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if len(fp.Records) == 0 {
				return
			}
			k := partitionKey{fp.Topic, fp.Partition}
			x := index[k]
			if x == nil {
				x = &run{topic: fp.Topic, part: fp.Partition}
				index[k] = x
				runs = append(runs, x)
			}
			x.recs = append(x.recs, fp.Records...)
		})
	}
	add(a)
	add(b)
	var f kgo.Fetch
	for _, x := range runs {
		f.Topics = append(f.Topics, kgo.FetchTopic{Topic: x.topic, Partitions: []kgo.FetchPartition{{Partition: x.part, Records: x.recs}}})
	}
	return kgo.Fetches{f}
}
