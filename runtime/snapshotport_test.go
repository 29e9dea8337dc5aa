package runtime

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

// snapshotManifest is goodManifest with a snapshot port after its stream
// port (lines 14-19).
const snapshotManifest = goodManifest + `  - name: products-daily
    kind: snapshot
    of: products
    every: 1d
    retain: 30
    url: s3://lake?region=eu-west-1&prefix=inventory/
`

func TestSnapshotPortParses(t *testing.T) {
	m, err := ParseManifest("product.yaml", []byte(snapshotManifest))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.OutputPorts) != 1 || m.OutputPorts[0].Name != "products" || len(m.SnapshotPorts) != 1 {
		t.Fatalf("stream ports %+v, snapshot ports %+v", m.OutputPorts, m.SnapshotPorts)
	}
	sp := m.SnapshotPorts[0]
	if every, err := sp.SnapshotEvery(); err != nil || every != 24*time.Hour || sp.Retain != 30 || !slices.Equal(sp.Files, []string{"table", "history"}) {
		t.Fatalf("snapshot port %+v (every %v, %v)", sp, every, err)
	}
	if sp.Subject != "" || sp.Compatibility != "" || m.DeadLetter.Topic != "inventory.products.v1.dlq" {
		t.Fatalf("stream defaults reached the snapshot port: %+v, dead letters %s", sp, m.DeadLetter.Topic)
	}
	// The contract of the stream port names where the snapshots are.
	c := m.OutputPorts[0].Contract
	if c == nil || len(c.Servers) != 1 || c.Servers[0].Type != "s3" || c.Servers[0].Location != "s3://lake/inventory/" || c.Servers[0].Format != "parquet" {
		t.Fatalf("contract servers: %+v", c)
	}
	// Discovery's JSON lists it among the output ports, as the YAML does.
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		OutputPorts []OutputPort `json:"outputPorts"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.OutputPorts) != 2 || back.OutputPorts[1].Kind != PortSnapshot || back.OutputPorts[1].URL != sp.URL {
		t.Fatalf("JSON output ports: %s", b)
	}
}

func TestSnapshotPortErrorsNameLineFieldAndFix(t *testing.T) {
	tests := []struct {
		name     string
		from, to string // replace in snapshotManifest
		want     string // one line of the error
	}{
		{"unknown kind", "kind: snapshot", "kind: table",
			`product.yaml:15: outputPorts[1].kind: is "table"; want stream (a Kafka topic, the default) or snapshot (Parquet files on a schedule)`},
		{"of no stream port", "of: products", "of: orders",
			`product.yaml:16: outputPorts[1].of: is "orders"; want the name of a stream port of this product: products`},
		{"of missing", "    of: products\n", "",
			`product.yaml:14: outputPorts[1].of: is missing; name the stream port whose records the snapshots hold: products`},
		{"every not a duration", "every: 1d", "every: daily",
			`product.yaml:17: outputPorts[1].every: is "daily"; want a duration such as 30m, 1h or 1d`},
		{"every too often", "every: 1d", "every: 10s",
			"product.yaml:17: outputPorts[1].every: is 10s; snapshots are scheduled at most every 1m0s (the control command `snapshot` takes one at any time)"},
		{"no retain", "    retain: 30\n", "",
			`product.yaml:14: outputPorts[1].retain: is 0; say how many snapshots to keep, e.g. retain: 30 (older ones are deleted)`},
		{"unknown scheme", "url: s3://lake?region=eu-west-1&prefix=inventory/", "url: ftp://lake/x",
			`product.yaml:19: outputPorts[1].url: is "ftp://lake/x"; this binary writes snapshots to file, s3 URLs (another store needs its gocloud.dev/blob driver linked in)`},
		{"relative file URL", "url: s3://lake?region=eu-west-1&prefix=inventory/", "url: file://snapshots",
			`product.yaml:19: outputPorts[1].url: is "file://snapshots"; a file URL names an absolute directory, with three slashes: file:///var/lib/meshlet/snapshots`},
		{"path in a bucket URL", "url: s3://lake?region=eu-west-1&prefix=inventory/", "url: s3://lake/inventory",
			`product.yaml:19: outputPorts[1].url: is "s3://lake/inventory"; a bucket URL names the bucket only: put the folder in the prefix parameter, s3://lake?prefix=inventory/`},
		{"prefix without slash", "prefix=inventory/", "prefix=inventory",
			`product.yaml:19: outputPorts[1].url: is "s3://lake?region=eu-west-1&prefix=inventory"; end the prefix with a slash (prefix=inventory/), or snapshots are written beside it`},
		{"unknown file", "    retain: 30\n", "    retain: 30\n    files: [table, rows]\n",
			`product.yaml:19: outputPorts[1].files[1]: is "rows"; want table (the table as of the snapshot) or history (every version, both periods)`},
		{"stream field on a snapshot port", "    retain: 30\n", "    retain: 30\n    topic: x\n",
			`product.yaml:19: outputPorts[1].topic: is set on a snapshot port; the files follow port products's schema, contract and policy: set it there`},
		{"snapshot field on a stream port", "    schema: schemas/product.avsc\n", "    schema: schemas/product.avsc\n    every: 1h\n",
			`product.yaml:14: outputPorts[0].every: is set on a stream port; only a port of kind: snapshot takes it`},
		{"same name", "name: products-daily", "name: products",
			`product.yaml:14: outputPorts[1].name: "products" is also the name of outputPorts[0]; port names are unique`},
		{"snapshot port first", "outputPorts:\n", "outputPorts:\n  - name: first\n    kind: snapshot\n    of: products\n    every: 1h\n    retain: 1\n    url: file:///x\n",
			`product.yaml:12: outputPorts[0].kind: is snapshot on the first port; list the stream port first and its snapshot ports after it`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := strings.Replace(snapshotManifest, tt.from, tt.to, 1)
			if text == snapshotManifest {
				t.Fatal("test case does not change the manifest")
			}
			_, err := ParseManifest("product.yaml", []byte(text))
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("err = %v, want a *ManifestError", err)
			}
			if !slices.Contains(strings.Split(err.Error(), "\n"), tt.want) {
				t.Fatalf("error\n got: %s\nwant a line: %s", err, tt.want)
			}
		})
	}
}

func TestBucketURLDefaults(t *testing.T) {
	for in, want := range map[string]string{
		"file:///srv/snap":                 "file:///srv/snap?create_dir=true&metadata=skip",
		"file:///srv/snap?metadata=":       "file:///srv/snap?create_dir=true&metadata=",
		"s3://lake?prefix=a/&region=x":     "s3://lake?prefix=a/&region=x",
		"file:///srv/snap?create_dir=&x=1": "file:///srv/snap?create_dir=&metadata=skip&x=1",
	} {
		if got := bucketURL(in); got != want {
			t.Errorf("bucketURL(%q) = %q, want %q", in, got, want)
		}
	}
}
