package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
)

// The Redpanda Connect release the benchmark compares against, and the
// benthos engine that release builds with.
const (
	ConnectModule  = "github.com/redpanda-data/connect/v4"
	ConnectVersion = "v4.105.0"
	BenthosModule  = "github.com/redpanda-data/benthos/v4"
	BenthosVersion = "v4.77.0"
)

// rpconnectMain is the slim distribution: the kafka, confluent, pure and io
// component packages only. The full one pulls cloud SDKs and cgo drivers
// that the module proxy here cannot all serve.
const rpconnectMain = `// Command rpconnect is a slim Redpanda Connect ` + ConnectVersion + ` for Meshlet's
// peer benchmark: kafka, confluent, pure and io components only. Generated
// by github.com/meshlet/meshlet/internal/bench; not part of Meshlet.
package main

import (
	"context"

	"` + BenthosModule + `/public/service"

	_ "` + ConnectModule + `/public/components/confluent"
	_ "` + ConnectModule + `/public/components/io"
	_ "` + ConnectModule + `/public/components/kafka"
	_ "` + ConnectModule + `/public/components/pure"
)

func main() {
	service.RunCLI(context.Background())
}
`

const rpconnectGoMod = `module meshlet.bench/rpconnect

go 1.26

require (
	` + BenthosModule + ` ` + BenthosVersion + `
	` + ConnectModule + ` ` + ConnectVersion + `
)
`

// BuildRPConnect builds the slim Redpanda Connect into dir/rpconnect, as its
// own module resolved through the Go module proxy, unless a build of the
// pinned versions is already there. It returns the binary's path.
func BuildRPConnect(ctx context.Context, dir string, log io.Writer) (string, error) {
	bin := filepath.Join(dir, "rpconnect")
	stamp := filepath.Join(dir, "BUILT")
	want := ConnectModule + "@" + ConnectVersion + " " + BenthosModule + "@" + BenthosVersion + "\n"
	if got, err := os.ReadFile(stamp); err == nil && string(got) == want {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	_ = os.Remove(stamp)
	for name, text := range map[string]string{"main.go": rpconnectMain, "go.mod": rpconnectGoMod} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	_ = os.Remove(filepath.Join(dir, "go.sum"))
	fmt.Fprintf(log, "building Redpanda Connect %s (benthos %s) in %s\n", ConnectVersion, BenthosVersion, dir)
	for _, args := range [][]string{
		{"mod", "tidy"},
		{"build", "-trimpath", "-o", "rpconnect", "."},
		{"list", "-m", ConnectModule, BenthosModule},
	} {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = dir
		// The build is a module of its own: nothing of the caller's module
		// or workspace may leak into it.
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), dir, err, out.String())
		}
		if args[0] == "list" {
			// MVS could raise a pinned version if some dependency asked
			// for more; the comparison would then not be of the release
			// it names.
			listed := out.String()
			for _, mv := range []string{ConnectModule + " " + ConnectVersion, BenthosModule + " " + BenthosVersion} {
				if !strings.Contains(listed, mv+"\n") {
					return "", fmt.Errorf("rpconnect build resolved %q, want %s", listed, mv)
				}
			}
		}
	}
	if err := os.WriteFile(stamp, []byte(want), 0o644); err != nil {
		return "", err
	}
	return bin, nil
}

// rpcConfig is what one Redpanda Connect run needs to know.
type rpcConfig struct {
	Brokers  []string
	Registry string
	In, Out  string
	Group    string
	Subject  string

	// Tuning, the same for every run; see defaultRPCTuning.
	BatchCount  int    // kafka_franz input batching per partition; 0 = none
	BatchPeriod string // flush a partial batch after this long
	// CheckpointLimit bounds the unacknowledged messages per partition.
	// Once every partition reaches it, the input stops polling for a whole
	// second, so it must stay well above BatchCount.
	CheckpointLimit int
	MaxInFlight     int // kafka_franz output batches in flight
}

// rpcMapping is the example product's handler in Bloblang: the row is the
// after image (the before image for a delete), the name trimmed, weight
// renamed, and the meta fields Meshlet appends. Valid time is the source
// commit time in microseconds, the finest timestamp the source sent;
// system time is the processing time.
const rpcMapping = `let row = if this.after != null { this.after } else { this.before }
root.id = $row.id
root.name = $row.name.trim()
root.description = $row.description
root.weight_kg = $row.weight
root._valid_from = this.source.ts_us.or(this.source.ts_ms * 1000)
root._valid_to = null
root._system_from = now().ts_unix_micro()
root._deleted = this.op == "d"
meta kafka_key = $row.id.string()
`

var rpcTemplate = template.Must(template.New("rpconnect").Funcs(template.FuncMap{
	"indent": func(n int, s string) string {
		pad := strings.Repeat(" ", n)
		return pad + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+pad)
	},
	"list": func(xs []string) string { return "[" + strings.Join(quoteAll(xs), ", ") + "]" },
	"q":    func(s string) string { return fmt.Sprintf("%q", s) },
}).Parse(`# Generated by Meshlet's peer benchmark (internal/bench) for one run.
http:
  enabled: false
logger:
  level: WARN
metrics:
  none: {}
shutdown_timeout: 5s
input:
  kafka_franz:
    seed_brokers: {{list .Brokers}}
    topics: [{{q .In}}]
    consumer_group: {{q .Group}}
    start_offset: earliest
    checkpoint_limit: {{.CheckpointLimit}}
{{- if .BatchCount}}
    batching:
      count: {{.BatchCount}}
      period: {{q .BatchPeriod}}
{{- end}}
pipeline:
  threads: -1
  processors:
    - mapping: |
{{indent 8 .Mapping}}
    - schema_registry_encode:
        url: {{q .Registry}}
        subject: {{q .Subject}}
        refresh_period: 10m
        avro:
          raw_json: true
output:
  kafka_franz:
    seed_brokers: {{list .Brokers}}
    topic: {{q .Out}}
    key: '${! @kafka_key }'
    max_in_flight: {{.MaxInFlight}}
`))

func quoteAll(xs []string) []string {
	q := make([]string, len(xs))
	for i, x := range xs {
		q[i] = fmt.Sprintf("%q", x)
	}
	return q
}

// yaml renders the configuration.
func (c rpcConfig) yaml() (string, error) {
	var b strings.Builder
	err := rpcTemplate.Execute(&b, struct {
		rpcConfig
		Mapping string
	}{c, rpcMapping})
	return b.String(), err
}
