package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Session is the part of a Kafka client the batch loop uses, so the loop is
// the same code whether a product publishes exactly once or at least once.
type Session interface {
	PollFetches(ctx context.Context) kgo.Fetches
	PollRecords(ctx context.Context, max int) kgo.Fetches
	// AllowRebalance lets a rebalance that waited for the batch proceed.
	AllowRebalance()
	Begin() error
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	// Flush waits until every record produced so far has its result. The
	// batch loop decides on those results: End commits whatever the
	// brokers acknowledged, so a record one refused would silently be
	// missing from a committed batch.
	Flush(ctx context.Context) error
	// End publishes the batch: commit true makes outputs and offsets
	// visible together; false abandons it and sets the consumer back to
	// the committed offsets, so the batch is consumed again. It reports
	// whether it committed.
	End(ctx context.Context, commit bool) (bool, error)
	// Settle, called between batches when the last poll brought nothing
	// and no polled record waits, makes sure the next revocation reaches
	// OnRevoked (see txnSession.Settle).
	Settle(ctx context.Context)
	Client() *kgo.Client
	// Close leaves the group and closes the client.
	Close()
}

// Group says how a product's replica joins its consumer group.
type Group struct {
	Brokers  []string
	Group    string   // the consumer group
	Topics   []string // consumed, read_committed, from the start when the group has no offset
	Instance string   // stable per replica: the static member id and part of the transactional id
	Product  string   // the product id, part of the transactional id
	Security Security
	Logger   kgo.Logger
	// OnAssigned and OnRevoked run between batches (rebalances are blocked
	// while a batch is processed); a lost partition is reported as revoked.
	OnAssigned, OnRevoked func(context.Context, *kgo.Client, map[string][]int32)
	// Warm reports the partitions whose change logs this replica holds
	// caught up without owning them (standbys); the balancer prefers such a
	// replica for a partition that lost its owner. May be nil.
	Warm func() map[string][]int32
	// Extra options, after Meshlet's own (timeouts, for instance).
	Extra []kgo.Opt
}

// opts are the client options every replica's consumer has.
func (g Group) opts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(g.Brokers...),
		kgo.ConsumerGroup(g.Group),
		kgo.ConsumeTopics(g.Topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Static membership: a restarted replica takes its old place in the
		// group at once, instead of a rebalance that waits for its dead self.
		kgo.InstanceID(GroupInstanceID(g.Instance)),
		kgo.BlockRebalanceOnPoll(),
		// Cooperative-sticky stays listed so that a group whose members
		// do not all speak the standby protocol yet still balances.
		kgo.Balancers(StandbyBalancer(g.Warm), kgo.CooperativeStickyBalancer()),
	}
	if g.Logger != nil {
		opts = append(opts, kgo.WithLogger(g.Logger))
	}
	if g.OnAssigned != nil {
		opts = append(opts, kgo.OnPartitionsAssigned(g.OnAssigned))
	}
	if g.OnRevoked != nil {
		opts = append(opts, kgo.OnPartitionsRevoked(g.OnRevoked), kgo.OnPartitionsLost(g.OnRevoked))
	}
	secure, err := g.Security.Opts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, secure...)
	return append(opts, g.Extra...), nil
}

// Transactional joins the group in a franz-go GroupTransactSession: outputs,
// dead letters and input offsets of a batch commit in one transaction.
func Transactional(g Group) (Session, error) {
	t := &txnSession{}
	if onRevoked := g.OnRevoked; onRevoked != nil {
		g.OnRevoked = func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			if len(revoked) > 0 {
				t.revoked.Store(true)
				if wake := t.wake.Load(); wake != nil {
					(*wake)()
				}
			}
			onRevoked(ctx, cl, revoked)
		}
	}
	opts, err := g.opts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.TransactionalID(TransactionalID(g.Product, g.Instance)), kgo.RequireStableFetchOffsets())
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka session: %w", err)
	}
	t.GroupTransactSession = s
	return t, nil
}

// AtLeastOnce joins the group with a plain client: a batch's records are
// produced and acknowledged, then its offsets committed; a crash in between
// publishes the batch again.
func AtLeastOnce(g Group) (Session, error) {
	opts, err := g.opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	return plainSession{cl}, nil
}

// GroupInstanceID is a replica's static group membership id (KIP-345).
func GroupInstanceID(instance string) string { return "meshlet-" + instance }

// TransactionalID is stable per product and instance, so a restarted
// instance fences the zombie it replaces.
func TransactionalID(productID, instance string) string {
	return "meshlet." + strings.ReplaceAll(productID, ":", ".") + "." + instance
}

// txnSession is exactly-once: a franz-go GroupTransactSession.
//
// The session passes a revocation on to OnRevoked only when none has been
// seen since the last End: later ones in the same window are swallowed (it
// only needs to know that the open transaction must abort). A replica that
// stays idle across two cooperative rebalances would then never hear that
// it lost the second set of partitions, and keep their logs open as if it
// owned them. So a revocation wakes a poll in progress, and Settle ends the
// empty window at once, before the next rebalance can be let through.
type txnSession struct {
	*kgo.GroupTransactSession
	revoked atomic.Bool                        // a revocation since the last End
	wake    atomic.Pointer[context.CancelFunc] // ends the poll in progress
}

func (s *txnSession) PollFetches(ctx context.Context) kgo.Fetches {
	return s.poll(ctx, func(ctx context.Context) kgo.Fetches { return s.GroupTransactSession.PollFetches(ctx) })
}

func (s *txnSession) PollRecords(ctx context.Context, n int) kgo.Fetches {
	return s.poll(ctx, func(ctx context.Context) kgo.Fetches { return s.GroupTransactSession.PollRecords(ctx, n) })
}

func (s *txnSession) poll(ctx context.Context, poll func(context.Context) kgo.Fetches) kgo.Fetches {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.wake.Store(&cancel)
	defer s.wake.Store(nil)
	f := poll(pctx)
	if pctx.Err() != nil && ctx.Err() == nil {
		// Woken by a revocation: what came is still good, the
		// cancellation error is not.
		var kept kgo.Fetches
		f.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) > 0 {
				p.Err = nil
				kept = append(kept, kgo.Fetch{Topics: []kgo.FetchTopic{{Topic: p.Topic, Partitions: []kgo.FetchPartition{p.FetchPartition}}}})
			}
		})
		return kept
	}
	return f
}

func (s *txnSession) End(ctx context.Context, commit bool) (bool, error) {
	s.revoked.Store(false)
	return s.GroupTransactSession.End(ctx, kgo.TransactionEndTry(commit))
}

// Settle ends the empty transaction window after a revocation, so that
// the next one is passed on. It does nothing otherwise.
func (s *txnSession) Settle(ctx context.Context) {
	if s.revoked.Load() {
		s.End(ctx, false) // nothing begun: no request, offsets stay where they are
	}
}

// Close leaves the group; rebalances are blocked while polling, so the
// revoke that leaving causes must be let through.
func (s *txnSession) Close() { s.CloseAllowingRebalance() }

func (s *txnSession) Flush(ctx context.Context) error { return s.Client().Flush(ctx) }

// plainSession is at-least-once: produce, flush, then commit offsets.
type plainSession struct{ cl *kgo.Client }

func (s plainSession) PollFetches(ctx context.Context) kgo.Fetches { return s.cl.PollFetches(ctx) }
func (s plainSession) AllowRebalance()                             { s.cl.AllowRebalance() }
func (s plainSession) PollRecords(ctx context.Context, n int) kgo.Fetches {
	return s.cl.PollRecords(ctx, n)
}
func (s plainSession) Begin() error           { return nil }
func (s plainSession) Settle(context.Context) {}
func (s plainSession) Client() *kgo.Client    { return s.cl }
func (s plainSession) Close()                 { s.cl.CloseAllowingRebalance() }
func (s plainSession) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	s.cl.Produce(ctx, r, promise)
}

func (s plainSession) Flush(ctx context.Context) error { return s.cl.Flush(ctx) }

func (s plainSession) End(ctx context.Context, commit bool) (bool, error) {
	if err := s.cl.Flush(ctx); err != nil {
		return false, err
	}
	if !commit {
		// As a transaction's abort does: consume the batch again from the
		// last commit (a partition never committed is set to offset 0,
		// which the reset policy takes to its start).
		s.cl.SetOffsets(s.cl.CommittedOffsets())
		return false, nil
	}
	if err := s.cl.CommitUncommittedOffsets(ctx); err != nil {
		return false, err
	}
	return true, nil
}
