package bench

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partitions is the partition count of every topic the harness creates.
const partitions = 3

// admin wraps the harness's own Kafka client: topic set-up, pre-loading and
// the progress counts it polls during a run.
type admin struct {
	cl  *kgo.Client
	adm *kadm.Client
}

func newAdmin(brokers []string) (*admin, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		return nil, err
	}
	return &admin{cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (a *admin) close() { a.cl.Close() }

func (a *admin) createTopics(ctx context.Context, topics ...string) error {
	for _, t := range topics {
		resp, err := a.adm.CreateTopic(ctx, partitions, -1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

// forget deletes a run's topics and group, so the broker does not keep
// every run's output in memory. Errors are ignored: the next run uses new
// names anyway.
func (a *admin) forget(ctx context.Context, group string, topics ...string) {
	if group != "" {
		_, _ = a.adm.DeleteGroups(ctx, group)
	}
	if len(topics) > 0 {
		_, _ = a.adm.DeleteTopics(ctx, topics...)
	}
}

// endOffsets sums the high watermarks of topic's partitions: the records a
// non-transactional producer has written to it.
func (a *admin) endOffsets(ctx context.Context, topic string) (int64, error) {
	lo, err := a.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	if err := lo.Error(); err != nil {
		return 0, err
	}
	var n int64
	lo.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n, nil
}

// groupOffsets sums the offsets group has committed on topic: for a
// transactional contender, the input events whose outputs committed with them.
func (a *admin) groupOffsets(ctx context.Context, group, topic string) (int64, error) {
	os, err := a.adm.FetchOffsets(ctx, group)
	if err != nil {
		if errors.Is(err, kerr.GroupIDNotFound) || errors.Is(err, kerr.CoordinatorLoadInProgress) {
			return 0, nil
		}
		return 0, err
	}
	var n int64
	os.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n, nil
}

// preload writes events [from, from+n) to topic, uncompressed, as a
// connector would have before the product started.
func (a *admin) preload(ctx context.Context, topic string, from, n int) error {
	var failed atomic.Pointer[error]
	for i := from; i < from+n; i++ {
		k, v := Event(i)
		a.cl.Produce(ctx, &kgo.Record{Topic: topic, Key: k, Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, &err)
			}
		})
		if i%100_000 == 0 && failed.Load() != nil {
			break
		}
	}
	if err := a.cl.Flush(ctx); err != nil {
		return err
	}
	if p := failed.Load(); p != nil {
		return fmt.Errorf("preload %s: %w", topic, *p)
	}
	return nil
}

// readAll reads the first n records of topic once, without a group. Done
// after the pre-load, it makes the broker serve the backlog once before the
// first contender is measured: the first runs were up to 2x slower without
// it.
func (a *admin) readAll(ctx context.Context, brokers []string, topic string, n int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer cl.Close()
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fs.Err0(); err != nil {
			return fmt.Errorf("read %s: %w", topic, err)
		}
		got += fs.NumRecords()
	}
	return nil
}
