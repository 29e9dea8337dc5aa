package kafka

import (
	"strings"
	"testing"
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
