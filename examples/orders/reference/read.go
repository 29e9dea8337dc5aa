package reference

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReadAll reads every committed record of topic (read_committed), up to
// the end offsets it has when called.
func ReadAll(ctx context.Context, brokers []string, topic string) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	if err := ends.Error(); err != nil {
		return nil, err
	}
	// A transaction's last offset is its commit marker, which a reader
	// never sees: a partition is read once a record at or past end-2
	// arrived, or a poll comes back with nothing more.
	var recs []*kgo.Record
	pos := map[int32]int64{}
	left := func() bool {
		more := false
		ends.Each(func(o kadm.ListedOffset) {
			if p, ok := pos[o.Partition]; o.Offset > 0 && (!ok || p < o.Offset-2) {
				more = true
			}
		})
		return more
	}
	for left() {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %d records so far: %w", topic, len(recs), err)
		}
		if fs.IsClientClosed() || errors.Is(fs.Err0(), context.DeadlineExceeded) {
			break // only markers, or aborted records, are left
		}
		if err := fs.Err0(); err != nil {
			return nil, fmt.Errorf("read %s: %w", topic, err)
		}
		empty := true
		fs.EachRecord(func(r *kgo.Record) {
			recs = append(recs, r)
			pos[r.Partition] = r.Offset
			empty = false
		})
		if empty {
			break // only markers, or aborted records, are left
		}
	}
	return recs, nil
}

// Published reads topic's records (ReadAll) as the decoder decodes them,
// in each partition's order.
func (d *Decoder) Published(ctx context.Context, brokers []string, topic string) ([]Published, error) {
	recs, err := ReadAll(ctx, brokers, topic)
	if err != nil {
		return nil, err
	}
	out := make([]Published, 0, len(recs))
	for _, r := range recs {
		p, err := d.Decode(topic, r.Key, r.Value)
		if err != nil {
			return nil, fmt.Errorf("%s/%d@%d: %w", topic, r.Partition, r.Offset, err)
		}
		out = append(out, p)
	}
	return out, nil
}
