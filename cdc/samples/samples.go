// Package samples holds the repository's one copy of the recorded CDC
// samples: change events that Debezium, Canal, Maxwell and Oracle
// GoldenGate captured from real databases, one JSON message a line. They
// are Apache-2.0 test resources of the Apache Flink project; README.md says
// where each file comes from and keeps Flink's notice.
//
// Every package that needs recorded CDC reads it from here: the decoders'
// tests, the change log's as-of tests, the example product's handler test
// and the input `meshlet dev` feeds. A product's own tests can use them too.
package samples

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"slices"
)

// The recorded captures, by file name.
const (
	DebeziumPostgres                = "debezium-postgres-data-schema-include.txt"   // Postgres, with the Kafka Connect schema wrapper
	DebeziumPostgresPlain           = "debezium-postgres-data-schema-exclude.txt"   // Postgres, plain envelope
	DebeziumPostgresReplicaIdentity = "debezium-postgres-data-replica-identity.txt" // Postgres, no old-row images
	DebeziumMySQL                   = "debezium-data-schema-include.txt"            // MySQL, with the schema wrapper
	Canal                           = "canal-data.txt"
	Maxwell                         = "maxwell-data.txt"
	OGG                             = "ogg-data.txt"
)

//go:embed *.txt README.md
var files embed.FS

// Read returns a sample file's bytes, exactly as recorded.
func Read(name string) ([]byte, error) {
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("cdc samples: no file %q; have %v", name, Names())
	}
	return b, nil
}

// MustRead is Read for tests and examples, where a missing sample is a bug.
func MustRead(name string) []byte {
	b, err := Read(name)
	if err != nil {
		panic(err)
	}
	return b
}

// Lines returns a sample's messages, one a line, skipping empty lines (the
// Debezium files have no newline after their last message).
func Lines(name string) ([][]byte, error) {
	b, err := Read(name)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) > 0 {
			out = append(out, line)
		}
	}
	return out, nil
}

// Names lists the sample files.
func Names() []string {
	entries, _ := fs.Glob(files, "*.txt")
	slices.Sort(entries)
	return entries
}
