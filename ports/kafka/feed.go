package kafka

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"

	"github.com/twmb/franz-go/pkg/kgo"
)

// maxRecordedLine bounds one line of a recorded CDC file.
const maxRecordedLine = 8 << 20

// RecordedCDC reads a recorded CDC file, one JSON message a line (empty lines
// skipped), into records for topic. Recordings keep only values, so each key
// is rebuilt from keyFields of the row image (after, else before), as a
// Debezium JSON key would be; a message with neither gets no key.
func RecordedCDC(r io.Reader, name, topic string, keyFields []string) ([]*kgo.Record, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxRecordedLine)
	var recs []*kgo.Record
	for line := 1; sc.Scan(); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		value := bytes.Clone(raw)
		key, err := rowKey(value, keyFields)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		recs = append(recs, &kgo.Record{Topic: topic, Key: key, Value: value})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return recs, nil
}

// RouteByField sets each record's partition from one column of its row
// (after, else before), as Debezium's PartitionRouting transform does
// (partition.payload.fields): a value always picks the same partition
// number, whatever the topic, so two tables routed by the columns a join
// uses (customers by id, orders by purchaser) are co-partitioned. Produce
// the records with kgo.ManualPartitioner.
func RouteByField(recs []*kgo.Record, field string, partitions int32) error {
	for i, rec := range recs {
		p, err := RoutedPartition(rec.Value, field, partitions)
		if err != nil {
			return fmt.Errorf("record %d of %s: %w", i+1, rec.Topic, err)
		}
		rec.Partition = p
	}
	return nil
}

// RoutedPartition is the partition RouteByField gives a message: FNV-1a of
// the column's JSON text, modulo partitions.
func RoutedPartition(value []byte, field string, partitions int32) (int32, error) {
	if partitions <= 0 {
		return 0, fmt.Errorf("route by %s: %d partitions", field, partitions)
	}
	v, err := rowKey(value, []string{field})
	if err != nil {
		return 0, fmt.Errorf("route by %s: %w", field, err)
	}
	var cols map[string]json.RawMessage
	if v == nil || json.Unmarshal(v, &cols) != nil {
		return 0, fmt.Errorf("route by %s: the message has no row", field)
	}
	h := fnv.New32a()
	h.Write(cols[field])
	return int32(h.Sum32() % uint32(partitions)), nil
}

func rowKey(value []byte, fields []string) ([]byte, error) {
	var msg struct {
		Payload *struct {
			Before map[string]json.RawMessage `json:"before"`
			After  map[string]json.RawMessage `json:"after"`
		} `json:"payload"`
		Before map[string]json.RawMessage `json:"before"`
		After  map[string]json.RawMessage `json:"after"`
	}
	if err := json.Unmarshal(value, &msg); err != nil {
		return nil, fmt.Errorf("not a JSON message: %w", err)
	}
	before, after := msg.Before, msg.After
	if msg.Payload != nil {
		before, after = msg.Payload.Before, msg.Payload.After
	}
	row := after
	if row == nil {
		row = before
	}
	if row == nil {
		return nil, nil
	}
	key := make(map[string]json.RawMessage, len(fields))
	for _, f := range fields {
		v, ok := row[f]
		if !ok {
			return nil, fmt.Errorf("key field %q is not in the row", f)
		}
		key[f] = v
	}
	return json.Marshal(key)
}
