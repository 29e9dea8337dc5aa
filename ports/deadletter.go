package ports

import (
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter header names. A dead letter keeps the original key and value
// untouched; these headers say why it is there and where it came from.
const (
	HeaderErrorClass      = "meshlet.error.class"
	HeaderErrorMessage    = "meshlet.error.message"
	HeaderOriginTopic     = "meshlet.origin.topic"
	HeaderOriginPartition = "meshlet.origin.partition"
	HeaderOriginOffset    = "meshlet.origin.offset"
	HeaderProduct         = "meshlet.product"
)

// DeadLetter builds the dead-letter record for an input record that could not
// be processed. class is a short machine-readable reason ("malformed",
// "handler", "panic", "schema"); err says the rest for a human.
func DeadLetter(topic, product string, in *kgo.Record, class string, err error) *kgo.Record {
	return &kgo.Record{
		Topic: topic,
		Key:   in.Key,
		Value: in.Value,
		Headers: append(in.Headers[:len(in.Headers):len(in.Headers)],
			kgo.RecordHeader{Key: HeaderErrorClass, Value: []byte(class)},
			kgo.RecordHeader{Key: HeaderErrorMessage, Value: []byte(err.Error())},
			kgo.RecordHeader{Key: HeaderOriginTopic, Value: []byte(in.Topic)},
			kgo.RecordHeader{Key: HeaderOriginPartition, Value: strconv.AppendInt(nil, int64(in.Partition), 10)},
			kgo.RecordHeader{Key: HeaderOriginOffset, Value: strconv.AppendInt(nil, in.Offset, 10)},
			kgo.RecordHeader{Key: HeaderProduct, Value: []byte(product)},
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
