package ports

import (
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRecordedCDCKeys(t *testing.T) {
	in := strings.Join([]string{
		`{"before":null,"after":{"id":101,"name":"scooter"},"op":"c"}`,
		``, // empty lines are skipped
		`{"schema":{"type":"struct"},"payload":{"before":{"id":102,"name":"x"},"after":null,"op":"d"}}`,
		`{"before":null,"after":null,"op":"d"}`,
	}, "\n")
	recs, err := RecordedCDC(strings.NewReader(in), "rec.txt", "t", []string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"id":101}`, `{"id":102}`, ``}
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d", len(recs), len(want))
	}
	for i, r := range recs {
		if string(r.Key) != want[i] || r.Topic != "t" {
			t.Errorf("record %d: topic %s key %s, want t %s", i, r.Topic, r.Key, want[i])
		}
	}
}

func TestRecordedCDCErrorsNameFileAndLine(t *testing.T) {
	in := "{\"after\":{\"id\":1}}\n\n{\"after\":{\"sku\":1}}\n"
	_, err := RecordedCDC(strings.NewReader(in), "rec.txt", "t", []string{"id"})
	if err == nil || !strings.HasPrefix(err.Error(), `rec.txt:3: key field "id" is not in the row`) {
		t.Fatalf("err = %v", err)
	}
	_, err = RecordedCDC(strings.NewReader("{oops"), "rec.txt", "t", []string{"id"})
	if err == nil || !strings.HasPrefix(err.Error(), "rec.txt:1: not a JSON message") {
		t.Fatalf("err = %v", err)
	}
}

func TestDeadLetterKeepsRecordAndNamesOrigin(t *testing.T) {
	in := &kgo.Record{Topic: "in", Partition: 2, Offset: 41, Key: []byte("k"), Value: []byte("{bad"),
		Headers: []kgo.RecordHeader{{Key: "trace", Value: []byte("abc")}}}
	d := DeadLetter("dlq", "urn:dataproduct:x:y", in, "malformed", errors.New(`field "op": missing`))
	if d.Topic != "dlq" || string(d.Key) != "k" || string(d.Value) != "{bad" {
		t.Fatalf("dead letter %+v does not keep the original record", d)
	}
	for key, want := range map[string]string{
		"trace": "abc", HeaderErrorClass: "malformed", HeaderErrorMessage: `field "op": missing`,
		HeaderOriginTopic: "in", HeaderOriginPartition: "2", HeaderOriginOffset: "41", HeaderProduct: "urn:dataproduct:x:y",
	} {
		if got := Header(d, key); got != want {
			t.Errorf("header %s = %q, want %q", key, got, want)
		}
	}
	if len(in.Headers) != 1 {
		t.Fatal("DeadLetter changed the input record's headers")
	}
}
