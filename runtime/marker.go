package runtime

import (
	"context"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A commit marker ties a partition's committed input offset to its change
// log: every offset commit of a batch carries, as the offset's metadata,
// the log's last sequence number at that commit (and, while the partition
// is being reprocessed, where the reprocessing ends). The metadata commits
// in the same Kafka transaction as the outputs, so after a crash the
// entries past the marker's seq are exactly those of batches that never
// committed: reconciliation needs no inference from input offsets, which
// reprocessing and whole-transaction mode move back. Offsets committed
// without a marker (by an older Meshlet, or reset by an operator) fall back
// to the offset rule; see reconcile.
type commitMarker struct {
	seq   uint64
	until int64 // > 0 while the partition is reprocessed up to this offset
}

const markerPrefix = "meshlet/v1"

func (m commitMarker) String() string {
	s := markerPrefix + " seq=" + strconv.FormatUint(m.seq, 10)
	if m.until > 0 {
		s += " until=" + strconv.FormatInt(m.until, 10)
	}
	return s
}

// parseMarker reads a marker from offset metadata; ok is false for
// metadata Meshlet did not write.
func parseMarker(meta string) (m commitMarker, ok bool) {
	fields := strings.Fields(meta)
	if len(fields) < 2 || fields[0] != markerPrefix {
		return m, false
	}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		var err error
		switch k {
		case "seq":
			m.seq, err = strconv.ParseUint(v, 10, 64)
			ok = err == nil
		case "until":
			m.until, err = strconv.ParseInt(v, 10, 64)
		}
		if err != nil {
			return commitMarker{}, false
		}
	}
	return m, ok
}

// commitStamp is how a batch's offset commit is amended: each partition's
// marker, and the offsets of partitions put back (whole transactions).
type commitStamp struct {
	markers map[partitionKey]string
	stops   map[partitionKey]int64
}

// stamp records the markers of every open change log, after the batch
// appended and before the transaction ends.
func (r *Runner) stamp(stops map[partitionKey]int64) commitStamp {
	s := commitStamp{markers: map[partitionKey]string{}, stops: stops}
	r.parts.each(func(p *partition) {
		seq, _, _ := p.log.Tail()
		m := commitMarker{seq: seq}
		if p.reprocess != nil {
			m.until = p.reprocess.Until
		}
		s.markers[p.key] = m.String()
	})
	return s
}

// context returns ctx with the amendment attached, for both kinds of
// commit: the transactional one and the plain one of at-least-once.
func (s commitStamp) context(ctx context.Context) context.Context {
	amend := func(topic string, partition int32, offset *int64, meta **string) {
		k := partitionKey{topic, partition}
		if stop, ok := s.stops[k]; ok && stop < *offset {
			*offset = stop
		}
		if m, ok := s.markers[k]; ok {
			*meta = &m
		}
	}
	ctx = kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				p := &t.Partitions[j]
				amend(t.Topic, p.Partition, &p.Offset, &p.Metadata)
			}
		}
		return nil
	})
	return kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				p := &t.Partitions[j]
				amend(t.Topic, p.Partition, &p.Offset, &p.Metadata)
			}
		}
		return nil
	})
}
