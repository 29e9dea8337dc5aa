package bench

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/examples/inventory/products"
)

// verifySample is how many outputs of each run are checked.
const verifySample = 300

// verify reads the first outputs of a run as a read_committed consumer and
// checks that each is what the job must make of its input event, so no
// contender is fast because it skipped part of the job.
func (h *harness) verify(ctx context.Context, s runSpec) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(s.out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	wantID := 0
	if s.c.Avro {
		ss, err := h.reg.Client().SchemaByVersion(ctx, s.out+"-value", -1)
		if err != nil {
			return 0, fmt.Errorf("subject %s-value: %w", s.out, err)
		}
		wantID = ss.ID
	}
	checked := 0
	for checked < verifySample {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return checked, fmt.Errorf("read %d of %d outputs of %s", checked, verifySample, s.out)
		}
		var bad error
		fs.EachRecord(func(r *kgo.Record) {
			if bad != nil || checked >= verifySample {
				return
			}
			if s.c.Avro {
				bad = h.checkAvro(ctx, r, wantID)
			} else {
				bad = checkCopy(r)
			}
			if bad != nil {
				bad = fmt.Errorf("%s %d@%d: %w", r.Topic, r.Partition, r.Offset, bad)
			}
			checked++
		})
		if bad != nil {
			return checked, bad
		}
	}
	return checked, nil
}

func (h *harness) checkAvro(ctx context.Context, r *kgo.Record, wantID int) error {
	var row products.Product
	id, meta, err := h.reg.Decode(ctx, r.Value, &row)
	if err != nil {
		return err
	}
	if id != wantID {
		return fmt.Errorf("schema id %d, want %d (the subject's)", id, wantID)
	}
	e := expectFor(eventIndex(meta.ValidFrom))
	switch {
	case meta.ValidFrom != e.validFrom:
		return fmt.Errorf("_valid_from %d is no event's commit time", meta.ValidFrom)
	case row.ID != e.id || row.Name != e.name || row.Description == nil || *row.Description != e.description ||
		row.WeightKg == nil || *row.WeightKg != e.weightKg:
		return fmt.Errorf("row %+v is not the mapping of event %d", row, eventIndex(meta.ValidFrom))
	case string(r.Key) != strconv.Itoa(int(e.id)):
		return fmt.Errorf("key %q, want %d", r.Key, e.id)
	case meta.Deleted || meta.ValidTo != 0 || meta.SystemFrom <= 0:
		return fmt.Errorf("meta %+v of an update", meta)
	}
	return nil
}

// checkCopy checks that a pipe output is an input event, byte for byte.
func checkCopy(r *kgo.Record) error {
	const field = `"txId":`
	at := bytes.Index(r.Value, []byte(field))
	if at < 0 {
		return fmt.Errorf("value %.60q... is no input event", r.Value)
	}
	rest := r.Value[at+len(field):]
	end := bytes.IndexByte(rest, ',')
	tx, err := strconv.Atoi(string(rest[:max(end, 0)]))
	if err != nil {
		return fmt.Errorf("value %.60q... is no input event", r.Value)
	}
	k, v := Event(tx - 602)
	if !bytes.Equal(k, r.Key) || !bytes.Equal(v, r.Value) {
		return fmt.Errorf("value %.60q... differs from input event %d", r.Value, tx-602)
	}
	return nil
}
