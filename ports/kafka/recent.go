package kafka

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/meshlet/meshlet/ports"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Bounds of RecentDeadLetters, in one place.
const (
	recentTextBytes      = 1024            // a message or key is cut past this
	recentWait           = 5 * time.Second // default bound on reading the tail
	recentFetchBytes     = 4 << 20         // per fetch, so a tail of huge records cannot exhaust memory
	recentPartitionBytes = 1 << 20         // per partition per fetch
	recentRounds         = 4               // windows tried, each 4x as wide as the last
)

// RecentDeadLetters reads the newest n committed records of the
// dead-letter topic (n at most ports.MaxRecentDeadLetters), newest first by
// record time. opts are the client options that reach the cluster (seed
// brokers, TLS, SASL). It reads the tail of each partition up to its last
// stable offset, so only committed dead letters are listed, and gives up
// with an error after ctx's deadline or 5s when it has none. A topic that
// does not exist yet has no dead letters.
func RecentDeadLetters(ctx context.Context, opts []kgo.Opt, topic string, n int) ([]ports.Dead, error) {
	n = min(max(n, 0), ports.MaxRecentDeadLetters)
	if n == 0 {
		return []ports.Dead{}, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, recentWait)
		defer cancel()
	}
	cl, err := kgo.NewClient(append(slices.Clip(opts),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records are what a transaction ends with: keeping them
		// lets the read see the last offset before the stable end.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(recentFetchBytes),
		kgo.FetchMaxPartitionBytes(recentPartitionBytes),
	)...)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: %w", topic, err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: start offsets: %w", topic, err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s: stable offsets: %w", topic, err)
	}
	type tail struct{ start, end int64 } // [start, end): what the partition holds, committed
	tails := map[int32]tail{}
	var listErr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			if o.Partition >= 0 {
				listErr = cmp.Or(listErr, fmt.Errorf("dead letters of %s partition %d: %w", topic, o.Partition, o.Err))
			}
			return // -1: the topic does not exist yet
		}
		start := int64(0)
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Err == nil {
			start = s.Offset
		}
		if o.Offset > start {
			tails[o.Partition] = tail{start, o.Offset}
		}
	})
	if listErr != nil {
		return nil, listErr
	}
	// Transaction markers and aborted records take offsets too, so the
	// last n offsets may hold fewer than n dead letters: a partition that
	// came up short is read again over a window four times as wide.
	found := map[int32][]ports.Dead{}
	window := 2*int64(n) + 2
	for round := 0; round < recentRounds && len(tails) > 0; round++ {
		from := map[int32]int64{}
		for p, t := range tails {
			from[p] = max(t.start, t.end-window)
		}
		got, err := readTails(ctx, cl, topic, from, func(p int32) int64 { return tails[p].end - 1 })
		if err != nil {
			return nil, err
		}
		for p, t := range tails {
			found[p] = got[p]
			if len(got[p]) >= n || from[p] == t.start {
				delete(tails, p)
			}
		}
		window *= 4
	}
	var out []ports.Dead
	for _, ds := range found {
		out = append(out, ds...)
	}
	slices.SortFunc(out, func(a, b ports.Dead) int {
		return cmp.Or(b.Time.Compare(a.Time), cmp.Compare(b.Partition, a.Partition), cmp.Compare(b.Offset, a.Offset))
	})
	return out[:min(n, len(out))], nil
}

// readTails reads each partition of topic from from[p] through last(p), a
// committed offset (a record or a transaction marker, so it is delivered),
// and returns the data records by partition.
func readTails(ctx context.Context, cl *kgo.Client, topic string, from map[int32]int64, last func(int32) int64) (map[int32][]ports.Dead, error) {
	offsets := map[int32]kgo.Offset{}
	left := map[int32]int64{}
	for p, o := range from {
		offsets[p] = kgo.NewOffset().At(o)
		left[p] = last(p)
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets})
	defer cl.PurgeTopicsFromConsuming(topic)
	out := map[int32][]ports.Dead{}
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("dead letters of %s: %d of %d partitions' tails not read: %w", topic, len(left), len(from), err)
		}
		var fetchErr error
		fs.EachError(func(_ string, p int32, err error) {
			fetchErr = cmp.Or(fetchErr, fmt.Errorf("dead letters of %s partition %d: %w", topic, p, err))
		})
		if fetchErr != nil {
			return nil, fetchErr
		}
		fs.EachRecord(func(r *kgo.Record) {
			end, ok := left[r.Partition]
			if !ok || r.Offset > end {
				return
			}
			if r.Offset == end {
				delete(left, r.Partition)
			}
			if !r.Attrs.IsControl() {
				out[r.Partition] = append(out[r.Partition], dead(r))
			}
		})
	}
	return out, nil
}

func dead(r *kgo.Record) ports.Dead {
	d := ports.Dead{
		Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp.UTC(),
		Class: clip(Header(r, ports.HeaderErrorClass)), Message: clip(Header(r, ports.HeaderErrorMessage)),
		OriginTopic: clip(Header(r, ports.HeaderOriginTopic)), OriginPartition: -1, OriginOffset: -1,
		Key: clip(string(r.Key)), ValueBytes: len(r.Value),
	}
	if p, err := strconv.ParseInt(Header(r, ports.HeaderOriginPartition), 10, 32); err == nil {
		d.OriginPartition = int32(p)
	}
	if o, err := strconv.ParseInt(Header(r, ports.HeaderOriginOffset), 10, 64); err == nil {
		d.OriginOffset = o
	}
	return d
}

// clip bounds a text taken from a record, cutting at a rune boundary and
// replacing invalid UTF-8, so a JSON answer stays small and valid.
func clip(s string) string {
	if len(s) > recentTextBytes {
		cut := recentTextBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
