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

func TestRouteByFieldCoPartitions(t *testing.T) {
	customers, err := RecordedCDC(strings.NewReader(strings.Join([]string{
		`{"before":null,"after":{"id":1001,"email":"a"},"op":"r"}`,
		`{"before":null,"after":{"id":1002,"email":"b"},"op":"r"}`,
	}, "\n")), "customers.txt", "customers", []string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	orders, err := RecordedCDC(strings.NewReader(strings.Join([]string{
		`{"before":null,"after":{"order_number":10001,"purchaser":1001},"op":"c"}`,
		`{"before":{"order_number":10002,"purchaser":1002},"after":null,"op":"d"}`,
		`{"before":null,"after":{"order_number":10003,"purchaser":1001},"op":"c"}`,
	}, "\n")), "orders.txt", "orders", []string{"order_number"})
	if err != nil {
		t.Fatal(err)
	}
	if err := RouteByField(customers, "id", 7); err != nil {
		t.Fatal(err)
	}
	if err := RouteByField(orders, "purchaser", 7); err != nil {
		t.Fatal(err)
	}
	if customers[0].Partition == customers[1].Partition {
		t.Fatalf("customers 1001 and 1002 both on partition %d: the test wants values that part", customers[0].Partition)
	}
	for i, c := range []int{0, 1, 0} {
		if orders[i].Partition != customers[c].Partition {
			t.Errorf("order %d is on partition %d, its customer on %d", i, orders[i].Partition, customers[c].Partition)
		}
	}
	if _, err := RoutedPartition([]byte(`{"after":{"id":1}}`), "purchaser", 3); err == nil {
		t.Error("a message without the column was routed")
	}
}
