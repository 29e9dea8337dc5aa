package kafka

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports"
)

func TestDeadLetterKeepsRecordAndNamesOrigin(t *testing.T) {
	in := &kgo.Record{Topic: "in", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("{bad"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}
	d := DeadLetter("dlq", "urn:dataproduct:x:y", in, ports.ClassMalformed, errors.New(`field "op": missing`))
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
