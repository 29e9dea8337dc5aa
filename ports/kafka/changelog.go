package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The changelog topic is where a product's change logs live durably:
// chunks of consecutive entries (auditlog.AppendChunk), keyed by the log's name
// (topic-partition of the input), in the partition of the input partition
// the log belongs to, produced in the same transaction as the outputs and
// the input offsets. Its configuration keeps every record: deletion by age
// or size, and compaction, are both off. The checkpoints topic beside it
// carries each log's signed checkpoints (the note text, keyed by log), so
// an auditor with Kafka access alone can verify.

// Header names of changelog and checkpoint records.
const (
	HeaderChangelogFormat = "meshlet.changelog" // "1": the record value is an auditlog record
	HeaderCheckpointSize  = "meshlet.checkpoint.size"
)

// ChangelogTopic is the changelog topic of a product: its id without the
// urn:dataproduct: prefix, ':' made '.', between "meshlet." and ".changelog".
func ChangelogTopic(productID string) string { return topicFor(productID, "changelog") }

// CheckpointTopic is the topic of a product's signed checkpoints.
func CheckpointTopic(productID string) string { return topicFor(productID, "checkpoints") }

func topicFor(productID, what string) string {
	id := strings.TrimPrefix(productID, "urn:dataproduct:")
	id = strings.TrimPrefix(id, "urn:")
	return "meshlet." + strings.NewReplacer(":", ".", "/", ".").Replace(id) + "." + what
}

// ChangelogConfigs are the configs a changelog or checkpoint topic must
// have: every record kept, none compacted, records up to maxBytes.
func ChangelogConfigs(maxBytes int) map[string]string {
	return map[string]string{
		"cleanup.policy":    "delete",
		"retention.ms":      "-1",
		"retention.bytes":   "-1",
		"max.message.bytes": strconv.Itoa(maxBytes),
	}
}

// EnsureChangelog creates topic with partitions partitions and the
// changelog configs when it does not exist, and otherwise checks that it
// has enough partitions and keeps every record, saying what to change when
// it does not.
func EnsureChangelog(ctx context.Context, adm *kadm.Client, topic string, partitions int32, maxBytes int) error {
	want := ChangelogConfigs(maxBytes)
	configs := map[string]*string{}
	for k, v := range want {
		configs[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, partitions, -1, configs, topic)
	if err == nil {
		err = resp.Err
	}
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, kerr.TopicAlreadyExists):
		return fmt.Errorf("create changelog topic %s (%d partitions, %v): %w (create it yourself with those configs, or give the product's principal CREATE on it)",
			topic, partitions, want, err)
	}
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return fmt.Errorf("changelog topic %s: %w", topic, err)
	}
	if d := details[topic]; int32(len(d.Partitions)) < partitions {
		return fmt.Errorf("changelog topic %s has %d partitions but the input has %d: each input partition's log lives in the changelog partition of the same number; add partitions (kafka-topics --alter --topic %s --partitions %d)",
			topic, len(d.Partitions), partitions, topic, partitions)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return fmt.Errorf("changelog topic %s: describe configs: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		return fmt.Errorf("changelog topic %s: describe configs: %w", topic, err)
	}
	if rc.Err != nil {
		return fmt.Errorf("changelog topic %s: describe configs: %w", topic, rc.Err)
	}
	have := map[string]string{}
	for _, c := range rc.Configs {
		have[c.Key] = c.MaybeValue()
	}
	var wrong []string
	if p := have["cleanup.policy"]; p != "" && p != "delete" {
		wrong = append(wrong, "cleanup.policy="+p+" (want delete: compaction would drop entries of the audit trail)")
	}
	for _, k := range []string{"retention.ms", "retention.bytes"} {
		if v, ok := have[k]; ok && v != "" && v != "-1" {
			wrong = append(wrong, k+"="+v+" (want -1: the log must keep every entry)")
		}
	}
	if v, ok := have["max.message.bytes"]; ok && v != "" {
		if n, err := strconv.Atoi(v); err == nil && n < maxBytes {
			wrong = append(wrong, fmt.Sprintf("max.message.bytes=%d (want at least %d, the largest entry the product accepts)", n, maxBytes))
		}
	}
	if len(wrong) > 0 {
		var fix []string
		for k, v := range want {
			fix = append(fix, k+"="+v)
		}
		return fmt.Errorf("changelog topic %s is configured to lose entries: %s; fix it with kafka-configs --alter --entity-type topics --entity-name %s --add-config %s",
			topic, strings.Join(wrong, "; "), topic, strings.Join(fix, ","))
	}
	return nil
}

// ChangelogRecord is a chunk of a log's entries for partition p of the
// changelog topic; value is built with auditlog.AppendChunk.
func ChangelogRecord(topic string, p int32, log string, value []byte) *kgo.Record {
	return &kgo.Record{Topic: topic, Partition: p, Key: []byte(log), Value: value,
		Headers: []kgo.RecordHeader{{Key: HeaderChangelogFormat, Value: []byte("1")}}}
}

// ChangelogRecordBytes bounds from above the record batch of a changelog
// record alone (see RecordBatchBytes): its key names the log in logBytes,
// its value is a chunk of chunkBytes.
func ChangelogRecordBytes(logBytes, chunkBytes int) int {
	return recordBatchBytes(logBytes, chunkBytes, changelogHeaders)
}

var changelogHeaders = []kgo.RecordHeader{{Key: HeaderChangelogFormat, Value: []byte("1")}}

// Partitioner sends records of the manual topics to the partition they
// name, and every other record where franz-go's default would.
func Partitioner(manual ...string) kgo.Partitioner {
	return partitioner{manual: manual, def: kgo.UniformBytesPartitioner(64<<10, true, true, nil), man: kgo.ManualPartitioner()}
}

type partitioner struct {
	manual   []string
	def, man kgo.Partitioner
}

func (p partitioner) ForTopic(topic string) kgo.TopicPartitioner {
	for _, m := range p.manual {
		if m == topic {
			return p.man.ForTopic(topic)
		}
	}
	return p.def.ForTopic(topic)
}

// ReadPartition reads partition p of topic, read_committed, from offset
// from up to the end it has when the read starts (its last stable
// offset), calling fn with each record. It returns the offset after the
// last record read. opts reach the cluster (seed brokers, security).
func ReadPartition(ctx context.Context, opts []kgo.Opt, topic string, p int32, from int64, fn func(*kgo.Record) error) (int64, error) {
	// Control records (transaction markers) are kept so every offset below
	// the end is seen: a partition's last stable offset is often a marker.
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...), kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return from, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return from, fmt.Errorf("%s/%d: end offset: %w", topic, p, err)
	}
	end, ok := ends.Lookup(topic, p)
	if !ok || end.Err != nil {
		return from, fmt.Errorf("%s/%d: end offset: %v", topic, p, end.Err)
	}
	if from >= end.Offset {
		return from, nil
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}})
	next := from
	for next < end.Offset {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return next, err
		}
		var ferr error
		fetches.EachError(func(t string, part int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("%s/%d: %w", t, part, err)
			}
		})
		if ferr != nil && !kerr.IsRetriable(ferr) {
			return next, ferr
		}
		var rerr error
		fetches.EachRecord(func(r *kgo.Record) {
			if rerr != nil || r.Offset < next {
				return
			}
			next = r.Offset + 1
			if !r.Attrs.IsControl() {
				rerr = fn(r)
			}
		})
		if rerr != nil {
			return next, rerr
		}
	}
	return next, nil
}
