package kafka

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
)

func TestDeadLetterKeepsRecordAndNamesOrigin(t *testing.T) {
	in := &kgo.Record{Topic: "in", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("{bad"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}
	d := DeadLetter("dlq", "urn:dataproduct:x:y", in, ports.ClassMalformed, errors.New(`field "op": missing`), 1<<20)
	if d.Topic != "dlq" || string(d.Key) != "k" || string(d.Value) != "{bad" {
		t.Fatalf("dead letter %+v does not keep the original record", d)
	}
	for key, want := range map[string]string{
		"trace": "abc", ports.HeaderErrorClass: "malformed", ports.HeaderErrorMessage: `field "op": missing`,
		ports.HeaderOriginTopic: "in", ports.HeaderOriginPartition: "2", ports.HeaderOriginOffset: "41", ports.HeaderProduct: "urn:dataproduct:x:y",
	} {
		if got := Header(d, key); got != want {
			t.Errorf("header %s = %q, want %q", key, got, want)
		}
	}
	if len(in.Headers) != 1 {
		t.Fatal("DeadLetter changed the input record's headers")
	}
}

// A dead letter too large for its topic is reduced to what fits: Meshlet's
// headers and the digests of what was cut, never dropped.
func TestDeadLetterTooLargeKeepsHeadersAndDigest(t *testing.T) {
	value := bytes.Repeat([]byte("v"), 5000)
	in := &kgo.Record{Topic: "in", Partition: 1, Offset: 7, Key: []byte("small key"), Value: value,
		Headers: []kgo.RecordHeader{{Key: "trace", Value: bytes.Repeat([]byte("t"), 3000)}}}
	sum := sha256.Sum256(value)
	for _, tc := range []struct {
		name    string
		limit   int
		keyKept bool
	}{
		{"value cut", 2000, true},
		{"value and key cut", 2000, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := *in
			if !tc.keyKept {
				in.Key = bytes.Repeat([]byte("k"), 3000)
			}
			d := DeadLetter("dlq", "p", &in, ports.ClassTooLarge, errors.New("record too large"), tc.limit)
			if n := RecordBatchBytes(d); n > tc.limit {
				t.Fatalf("reduced dead letter takes %d bytes, limit %d", n, tc.limit)
			}
			if len(d.Value) != 0 || Header(d, "trace") != "" {
				t.Errorf("value (%d bytes) or the input's headers kept", len(d.Value))
			}
			for key, want := range map[string]string{
				ports.HeaderErrorClass: "too-large", ports.HeaderErrorMessage: "record too large", ports.HeaderOriginTopic: "in",
				ports.HeaderOriginPartition: "1", ports.HeaderOriginOffset: "7",
				ports.HeaderValueDigest: hex.EncodeToString(sum[:]), ports.HeaderValueBytes: "5000",
			} {
				if got := Header(d, key); got != want {
					t.Errorf("header %s = %q, want %q", key, got, want)
				}
			}
			keySum := sha256.Sum256(in.Key)
			switch {
			case tc.keyKept && (string(d.Key) != string(in.Key) || Header(d, ports.HeaderKeyDigest) != ""):
				t.Errorf("key %q (digest %q), want the original", d.Key, Header(d, ports.HeaderKeyDigest))
			case !tc.keyKept && (d.Key != nil || Header(d, ports.HeaderKeyDigest) != hex.EncodeToString(keySum[:])):
				t.Errorf("key of %d bytes kept (digest %q), want its digest", len(d.Key), Header(d, ports.HeaderKeyDigest))
			}
		})
	}
	if d := DeadLetter("dlq", "p", in, ports.ClassMalformed, errors.New("x"), 1<<20); !bytes.Equal(d.Value, value) {
		t.Fatal("a dead letter that fits was reduced")
	}
}

// RecordBatchBytes never undercounts what a broker measures: a record it
// admits under a topic limit is one kfake's broker takes.
func TestRecordBatchBytesIsWhatABrokerTakes(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const limit = 4096
	if err := c.CreateTopic("small", 1, map[string]string{"max.message.bytes": strconv.Itoa(limit)}); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerBatchCompression(kgo.NoCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, n := range []int{100, 3900, 3950, 4000, 4100} {
		r := &kgo.Record{Topic: "small", Key: []byte("key"), Value: bytes.Repeat([]byte("x"), n),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
		fits := RecordBatchBytes(r) <= limit
		err := cl.ProduceSync(context.Background(), r).FirstErr()
		if fits && err != nil {
			t.Errorf("value of %d bytes: RecordBatchBytes %d fits %d, but the broker says %v", n, RecordBatchBytes(r), limit, err)
		}
		if !fits && err == nil && RecordBatchBytes(r)-limit > 64 {
			t.Errorf("value of %d bytes: RecordBatchBytes %d overcounts by more than the varints' slack", n, RecordBatchBytes(r))
		}
	}
}
