package kafka

import (
	"context"
	"fmt"
	"strings"

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
	// End publishes the batch: commit true makes outputs and offsets
	// visible together; false abandons it. It reports whether it committed.
	End(ctx context.Context, commit bool) (bool, error)
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
	opts, err := g.opts()
	if err != nil {
		return nil, err
	}
	opts = append(opts, kgo.TransactionalID(TransactionalID(g.Product, g.Instance)), kgo.RequireStableFetchOffsets())
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka session: %w", err)
	}
	return txnSession{s}, nil
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
