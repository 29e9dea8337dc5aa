// Command bench-pipe is the ceiling of the peer benchmark: a franz-go
// consume->produce pipe that moves each poll batch from the input topic to
// the output topic as it is, with no decode, no encode and no change log.
// It uses the client options and batch cycle of Meshlet's runtime, so the
// difference to Meshlet is the work Meshlet does per event.
//
// With -txn it is exactly-once (a GroupTransactSession, one transaction per
// poll batch); without, at-least-once (produce, flush, commit offsets).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/twmb/franz-go/pkg/kgo"
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:39092", "comma-separated Kafka bootstrap brokers")
	in := flag.String("in", "", "input topic")
	out := flag.String("out", "", "output topic")
	group := flag.String("group", "", "consumer group")
	txn := flag.Bool("txn", false, "exactly-once: one Kafka transaction per poll batch")
	flag.Parse()
	if *in == "" || *out == "" || *group == "" {
		fmt.Fprintln(os.Stderr, "bench-pipe: -in, -out and -group are required")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, strings.Split(*brokers, ","), *in, *out, *group, *txn); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "bench-pipe:", err)
		os.Exit(1)
	}
}

// pipe is the part of a client the loop uses, as in the runtime.
type pipe interface {
	PollFetches(ctx context.Context) kgo.Fetches
	Begin() error
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	End(ctx context.Context, commit bool) (bool, error)
	Close()
}

func run(ctx context.Context, brokers []string, in, out, group string, txn bool) error {
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(in),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	}
	var p pipe
	if txn {
		s, err := kgo.NewGroupTransactSession(append(opts,
			kgo.TransactionalID("bench-pipe."+group), kgo.RequireStableFetchOffsets())...)
		if err != nil {
			return err
		}
		p = txnPipe{s}
	} else {
		cl, err := kgo.NewClient(append(opts, kgo.DisableAutoCommit())...)
		if err != nil {
			return err
		}
		p = plainPipe{cl}
	}
	defer p.Close()

	batch := make([]*kgo.Record, 0, 4096)
	for {
		fetches := p.PollFetches(ctx)
		if ctx.Err() != nil || fetches.IsClientClosed() {
			return nil
		}
		if fetches.NumRecords() == 0 {
			continue
		}
		if err := p.Begin(); err != nil {
			return err
		}
		batch = batch[:0]
		fetches.EachRecord(func(r *kgo.Record) {
			batch = append(batch, &kgo.Record{Topic: out, Key: r.Key, Value: r.Value})
		})
		var failed atomic.Bool
		for _, r := range batch {
			p.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Store(true)
				}
			})
		}
		committed, err := p.End(ctx, !failed.Load())
		if err != nil {
			return err
		}
		if !committed && failed.Load() {
			return errors.New("produce failed")
		}
	}
}

type txnPipe struct{ *kgo.GroupTransactSession }

func (s txnPipe) End(ctx context.Context, commit bool) (bool, error) {
	return s.GroupTransactSession.End(ctx, kgo.TransactionEndTry(commit))
}

type plainPipe struct{ cl *kgo.Client }

func (s plainPipe) PollFetches(ctx context.Context) kgo.Fetches { return s.cl.PollFetches(ctx) }
func (s plainPipe) Begin() error                                { return nil }
func (s plainPipe) Close()                                      { s.cl.Close() }

func (s plainPipe) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	s.cl.Produce(ctx, r, promise)
}

func (s plainPipe) End(ctx context.Context, commit bool) (bool, error) {
	if err := s.cl.Flush(ctx); err != nil {
		return false, err
	}
	if !commit {
		return false, nil
	}
	return true, s.cl.CommitUncommittedOffsets(ctx)
}
