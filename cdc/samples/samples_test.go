package samples

import (
	"encoding/json"
	"testing"
)

// Every sample is what its README says: the listed number of messages, each
// one complete JSON value.
func TestSamplesAreWhatTheReadmeSays(t *testing.T) {
	want := map[string]int{
		DebeziumPostgres: 16, DebeziumPostgresPlain: 16, DebeziumPostgresReplicaIdentity: 16,
		DebeziumMySQL: 16, Canal: 11, Maxwell: 20, OGG: 16,
	}
	if got := Names(); len(got) != len(want) {
		t.Fatalf("Names() = %v, want the %d files the README lists", got, len(want))
	}
	for name, n := range want {
		lines, err := Lines(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(lines) != n {
			t.Errorf("%s: %d messages, want %d", name, len(lines), n)
		}
		for i, l := range lines {
			if !json.Valid(l) {
				t.Errorf("%s line %d is not JSON", name, i+1)
			}
		}
	}
	if _, err := Read("nope.txt"); err == nil {
		t.Fatal("Read of a missing sample succeeded")
	}
}
