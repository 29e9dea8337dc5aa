package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// contender is one program doing the job.
type contender struct {
	ID   string
	Name string
	What string // what it does, for BENCHMARKS.md
	// Txn contenders commit input offsets in the transaction that makes
	// their outputs visible, so committed offsets count visible events.
	// The others are counted by the output topic's high watermark.
	Txn bool
	// Avro contenders publish through the registry; the pipes copy bytes.
	Avro bool
}

var contenders = []contender{
	{
		ID: "pipe-plain", Name: "raw pipe, at-least-once",
		What: "bench-pipe: franz-go consume -> produce of each poll batch as it is (no decode, no encode), then flush and commit offsets; the runtime's client options",
	},
	{
		ID: "pipe-txn", Name: "raw pipe, transactional", Txn: true,
		What: "bench-pipe -txn: the same pipe in a GroupTransactSession, one transaction per poll batch (outputs + offsets), read_committed",
	},
	{
		ID: "meshlet-alo", Name: "Meshlet at-least-once", Avro: true,
		What: "bench-product -delivery at-least-once: the example product on runtime.Start; decode, handler, change log append (fsync), Avro encode, produce, flush, commit offsets",
	},
	{
		ID: "meshlet-eos", Name: "Meshlet exactly-once", Txn: true, Avro: true,
		What: "bench-product (default exactly-once): the same, one Kafka transaction per poll batch with the change log appended and fsynced before commit",
	},
	{
		ID: "rpconnect", Name: "Redpanda Connect " + ConnectVersion, Avro: true,
		What: "rpconnect: kafka_franz input -> Bloblang mapping (same fields and meta fields) -> schema_registry_encode (raw JSON to Avro, registry id) -> kafka_franz output; at-least-once",
	},
}

func contenderByID(id string) (*contender, error) {
	for i := range contenders {
		if contenders[i].ID == id {
			return &contenders[i], nil
		}
	}
	var ids []string
	for _, c := range contenders {
		ids = append(ids, c.ID)
	}
	return nil, fmt.Errorf("no contender %q; known: %s", id, strings.Join(ids, ", "))
}

// runSpec is one start of a contender: its own group, topics and folder.
type runSpec struct {
	c        *contender
	label    string
	in, out  string
	group    string
	instance string
	dir      string
	pprof    string // pprof listen address, Meshlet only
}

// command is the contender's command line for spec.
func (h *harness) command(s runSpec) (*exec.Cmd, error) {
	brokers := strings.Join(h.brokers, ",")
	var args []string
	switch s.c.ID {
	case "pipe-plain", "pipe-txn":
		args = []string{filepath.Join(h.opts.BinDir, "bench-pipe"), "-brokers", brokers, "-in", s.in, "-out", s.out, "-group", s.group}
		if s.c.Txn {
			args = append(args, "-txn")
		}
	case "meshlet-alo", "meshlet-eos":
		delivery := "exactly-once"
		if !s.c.Txn {
			delivery = "at-least-once"
		}
		args = []string{filepath.Join(h.opts.BinDir, "bench-product"), "-brokers", brokers, "-registry", h.registry,
			"-data", filepath.Join(s.dir, "data"), "-delivery", delivery, "-group", s.group, "-instance", s.instance,
			"-in", s.in, "-out", s.out}
		if s.pprof != "" {
			args = append(args, "-pprof", s.pprof)
		}
	case "rpconnect":
		cfg := rpcConfig{
			Brokers: h.brokers, Registry: h.registry, In: s.in, Out: s.out, Group: s.group, Subject: s.out + "-value",
			BatchCount: h.opts.RPCBatch, BatchPeriod: h.opts.RPCBatchPeriod, MaxInFlight: h.opts.RPCMaxInFlight,
			CheckpointLimit: h.opts.RPCCheckpoint,
		}
		text, err := cfg.yaml()
		if err != nil {
			return nil, err
		}
		file := filepath.Join(s.dir, "rpconnect.yaml")
		if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
			return nil, err
		}
		h.rpcYAML = text
		args = []string{h.opts.RPConnect, "run", file}
	default:
		return nil, fmt.Errorf("no command for contender %s", s.c.ID)
	}
	return exec.Command(args[0], args[1:]...), nil
}
