package kafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// DefaultMaxMessageBytes is Kafka's default message.max.bytes: what a
// topic accepts when neither it nor its broker says otherwise.
const DefaultMaxMessageBytes = 1048588

// RecordBatchBytes bounds from above what a record batch holding r alone
// takes before compression: what a broker holds against a topic's
// max.message.bytes, and franz-go against ProducerBatchMaxBytes. Every
// variable-length field is counted at its widest.
func RecordBatchBytes(r *kgo.Record) int {
	return recordBatchBytes(len(r.Key), len(r.Value), r.Headers)
}

func recordBatchBytes(key, value int, headers []kgo.RecordHeader) int {
	// The v2 batch header: base offset, length, leader epoch, magic, crc,
	// attributes, last offset delta, first and max timestamps, producer
	// id and epoch, base sequence, record count.
	const batchHeader = 61
	// The record: length, attributes, timestamp delta, offset delta, key
	// length, value length, header count, each a varint or varlong.
	const record = 5 + 1 + 10 + 5 + 5 + 5 + 5
	n := batchHeader + record + key + value
	for _, h := range headers {
		n += 5 + len(h.Key) + 5 + len(h.Value)
	}
	return n
}

// MaxMessageBytes reads the largest record batch each topic accepts: its
// max.message.bytes, or, for a topic that does not exist yet, its broker's
// message.max.bytes. A topic whose limit cannot be read (the principal
// may not describe configs) gets DefaultMaxMessageBytes, and the error
// says why.
func MaxMessageBytes(ctx context.Context, adm *kadm.Client, topics ...string) (map[string]int, error) {
	out := make(map[string]int, len(topics))
	var errs []error
	rcs, err := adm.DescribeTopicConfigs(ctx, topics...)
	if err != nil {
		errs = append(errs, fmt.Errorf("describe configs of %v: %w", topics, err))
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			continue
		}
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" {
				if n, err := strconv.Atoi(c.MaybeValue()); err == nil && n > 0 {
					out[rc.Name] = n
				}
			}
		}
	}
	broker := 0
	for _, t := range topics {
		if _, ok := out[t]; ok {
			continue
		}
		if broker == 0 {
			broker = DefaultMaxMessageBytes
			bcs, err := adm.DescribeBrokerConfigs(ctx)
			if err != nil {
				errs = append(errs, fmt.Errorf("describe broker configs: %w", err))
			}
			for _, rc := range bcs {
				for _, c := range rc.Configs {
					if c.Key == "message.max.bytes" {
						if n, err := strconv.Atoi(c.MaybeValue()); err == nil && n > 0 {
							broker = n
						}
					}
				}
			}
		}
		out[t] = broker
	}
	return out, errors.Join(errs...)
}
