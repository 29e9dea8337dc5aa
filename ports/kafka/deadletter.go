package kafka

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
)

// DeadLetter builds the dead-letter record for an input record that could
// not be processed: the original key, value and headers, plus headers with
// the class, the message and the origin topic/partition/offset.
//
// limit is the largest record the dead-letter topic accepts (see
// RecordBatchBytes; 0: no limit). A dead letter that does not fit is
// reduced, never dropped: it keeps Meshlet's headers and, in place of the
// value, the value's SHA-256 digest and length (HeaderValueDigest,
// HeaderValueBytes); the input's own headers go, then the key (for its
// digest, HeaderKeyDigest), then the message is cut, as far as it takes.
// The origin headers still say where the whole event is.
func DeadLetter(topic, product string, in *kgo.Record, class ports.Class, err error, limit int) *kgo.Record {
	own := []kgo.RecordHeader{
		{Key: ports.HeaderErrorClass, Value: []byte(class.String())},
		{Key: ports.HeaderErrorMessage, Value: []byte(err.Error())},
		{Key: ports.HeaderOriginTopic, Value: []byte(in.Topic)},
		{Key: ports.HeaderOriginPartition, Value: strconv.AppendInt(nil, int64(in.Partition), 10)},
		{Key: ports.HeaderOriginOffset, Value: strconv.AppendInt(nil, in.Offset, 10)},
		{Key: ports.HeaderProduct, Value: []byte(product)},
	}
	rec := &kgo.Record{
		Topic:   topic,
		Key:     in.Key,
		Value:   in.Value,
		Headers: append(in.Headers[:len(in.Headers):len(in.Headers)], own...),
	}
	if limit <= 0 || RecordBatchBytes(rec) <= limit {
		return rec
	}
	sum := sha256.Sum256(in.Value)
	rec.Value = nil
	rec.Headers = append(own,
		kgo.RecordHeader{Key: ports.HeaderValueDigest, Value: []byte(hex.EncodeToString(sum[:]))},
		kgo.RecordHeader{Key: ports.HeaderValueBytes, Value: strconv.AppendInt(nil, int64(len(in.Value)), 10)})
	if RecordBatchBytes(rec) > limit {
		sum := sha256.Sum256(in.Key)
		rec.Key = nil
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: ports.HeaderKeyDigest, Value: []byte(hex.EncodeToString(sum[:]))})
	}
	if over := RecordBatchBytes(rec) - limit; over > 0 {
		msg := &rec.Headers[1].Value
		*msg = (*msg)[:max(0, len(*msg)-over)]
	}
	return rec
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
