package kafka

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
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
