package kafka

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
)

// DeadLetter builds the dead-letter record for an input record that could
// not be processed: the original key, value and headers, plus headers with
// the class, the message and the origin topic/partition/offset.
func DeadLetter(topic, product string, in *kgo.Record, class ports.Class, err error) *kgo.Record {
	return &kgo.Record{
		Topic: topic,
		Key:   in.Key,
		Value: in.Value,
		Headers: append(in.Headers[:len(in.Headers):len(in.Headers)],
			kgo.RecordHeader{Key: ports.HeaderErrorClass, Value: []byte(class.String())},
			kgo.RecordHeader{Key: ports.HeaderErrorMessage, Value: []byte(err.Error())},
			kgo.RecordHeader{Key: ports.HeaderOriginTopic, Value: []byte(in.Topic)},
			kgo.RecordHeader{Key: ports.HeaderOriginPartition, Value: strconv.AppendInt(nil, int64(in.Partition), 10)},
			kgo.RecordHeader{Key: ports.HeaderOriginOffset, Value: strconv.AppendInt(nil, in.Offset, 10)},
			kgo.RecordHeader{Key: ports.HeaderProduct, Value: []byte(product)},
		),
	}
}

// Header returns the value of the last header named key, or "".
func Header(r *kgo.Record, key string) string {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value)
		}
	}
	return ""
}
