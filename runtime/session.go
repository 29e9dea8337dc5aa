package runtime

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Delivery is what a product promises its consumers about duplicates.
type Delivery int

const (
	// ExactlyOnce commits outputs, dead letters and input offsets in one Kafka
	// transaction per batch, and keeps the change log equal to what committed.
	ExactlyOnce Delivery = iota
	// AtLeastOnce produces, waits for acknowledgement, then commits offsets. A
	// crash in between publishes the batch again. It exists to measure what
	// exactly-once costs.
	AtLeastOnce
)

func (d Delivery) String() string {
	if d == AtLeastOnce {
		return "at-least-once"
	}
	return "exactly-once"
}

// session is the part of a Kafka client the batch loop uses, so the loop is
// the same code for both deliveries.
type session interface {
	PollFetches(ctx context.Context) kgo.Fetches
	PollRecords(ctx context.Context, max int) kgo.Fetches
	// AllowRebalance lets a rebalance that waited for the batch proceed.
	AllowRebalance()
	Begin() error
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	// End publishes the batch: commit true makes outputs and offsets
	// visible together; false abandons it. It reports whether it committed.
	End(ctx context.Context, commit bool) (bool, error)
	Client() *kgo.Client
	// Close leaves the group and closes the client.
	Close()
}

// txnSession is exactly-once: a franz-go GroupTransactSession.
type txnSession struct{ *kgo.GroupTransactSession }

// Close leaves the group; rebalances are blocked while polling, so the
// revoke that leaving causes must be let through.
func (s txnSession) Close() { s.CloseAllowingRebalance() }

func (s txnSession) End(ctx context.Context, commit bool) (bool, error) {
	return s.GroupTransactSession.End(ctx, kgo.TransactionEndTry(commit))
}

// plainSession is at-least-once: produce, flush, then commit offsets.
type plainSession struct{ cl *kgo.Client }

func (s plainSession) PollFetches(ctx context.Context) kgo.Fetches { return s.cl.PollFetches(ctx) }
func (s plainSession) AllowRebalance()                             { s.cl.AllowRebalance() }

func (s plainSession) PollRecords(ctx context.Context, n int) kgo.Fetches {
	return s.cl.PollRecords(ctx, n)
}
func (s plainSession) Begin() error        { return nil }
func (s plainSession) Client() *kgo.Client { return s.cl }
func (s plainSession) Close()              { s.cl.CloseAllowingRebalance() }

func (s plainSession) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	s.cl.Produce(ctx, r, promise)
}

func (s plainSession) End(ctx context.Context, commit bool) (bool, error) {
	if err := s.cl.Flush(ctx); err != nil {
		return false, err
	}
	if !commit {
		return false, nil
	}
	if err := s.cl.CommitUncommittedOffsets(ctx); err != nil {
		return false, err
	}
	return true, nil
}
