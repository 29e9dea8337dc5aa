package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/meshlet/meshlet/runtime"
)

func init() {
	register(command{name: "run", synopsis: "run the product against a Kafka cluster and schema registry (a real one, or meshlet stack)", run: cmdRun, product: true})
}

const runUsage = `run [flags]

Runs the product against a Kafka cluster and schema registry (the stack in
docker-compose.yml, a managed cluster, or meshlet stack) until Ctrl-C or
SIGTERM, which finish and commit the batch in flight, close the change logs
and exit 0. --brokers, --registry and --redis default to MESHLET_BROKERS,
MESHLET_REGISTRY and MESHLET_REDIS when those are set (meshlet stack prints
them). The input, output and dead-letter topics must exist.`

func cmdRun(ctx context.Context, e *env, args []string) error {
	stdout, stderr := e.stdout, e.stderr
	fs := newFlags("run", runUsage, stderr)
	brokers := fs.String("brokers", envOr(envBrokers, "localhost:9092"), "comma-separated Kafka bootstrap brokers ($"+envBrokers+")")
	registry := fs.String("registry", envOr(envRegistry, "http://localhost:8081"), "schema registry URL ($"+envRegistry+")")
	dataDir := fs.String("data", "data", "directory for the change logs (shared by the replicas of a product)")
	instance := fs.String("instance", "0", "stable id of this replica, part of its transactional id: a restart with the same id fences its zombie")
	delivery := fs.String("delivery", "exactly-once", "exactly-once or at-least-once")
	maxBatch := fs.Int("max-batch", 0, "most input records in one batch/transaction (0: the runtime default)")
	sessionTimeout := fs.Duration("session-timeout", 0, "consumer group session timeout (0: franz-go's 45s)")
	txnTimeout := fs.Duration("txn-timeout", 0, "transaction timeout (0: franz-go's 40s)")
	redisAddr := fs.String("redis", envOr(envRedis, ""), "Redis address for the current state of entities, the mesh, control bus and pii keys (empty: none; current state from the change-log index) ($"+envRedis+")")
	httpAddr := fs.String("http", "", "listen address of the management port (discovery, metrics, status, control, query), e.g. :8080 (empty: off)")
	verbose := fs.Bool("v", false, "log each step, not only warnings")
	create := fs.Bool("create-topics", true, "create the output and dead-letter topics if they do not exist (false: they must)")
	var access accessFlags
	access.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("run takes no arguments, got %q", fs.Args())
	}
	opts := []runtime.Option{
		runtime.SeedBrokers(strings.Split(*brokers, ",")...), runtime.SchemaRegistry(*registry), runtime.DataDir(*dataDir),
		runtime.Redis(*redisAddr), runtime.ManagementAddr(*httpAddr), runtime.Instance(*instance),
		runtime.SessionTimeout(*sessionTimeout), runtime.TransactionTimeout(*txnTimeout),
		runtime.Logger(newLogger(stderr, *verbose)),
	}
	if *create {
		opts = append(opts, runtime.CreateTopics())
	}
	if *maxBatch > 0 {
		opts = append(opts, runtime.MaxBatch(*maxBatch))
	}
	more, err := access.options()
	if err != nil {
		return err
	}
	opts = append(opts, more...)
	var d runtime.Delivery
	switch *delivery {
	case "exactly-once":
		d = runtime.ExactlyOnce
	case "at-least-once":
		d = runtime.AtLeastOnce
	default:
		return usageError("--delivery %q: want exactly-once or at-least-once", *delivery)
	}
	opts = append(opts, runtime.WithDelivery(d))
	product, err := e.app.load()
	if err != nil {
		return err
	}
	r, err := runtime.Start(ctx, product, opts...)
	if err != nil {
		return err
	}
	m := product.Manifest
	if a := r.HTTPAddr(); a != nil {
		fmt.Fprintf(stdout, "management port http://%s (discovery /v1/product, /metrics, /v1/status; query /v1/entities/{key} and control /v1/control/* need a token)\n", a)
	}
	var ins, outs []string
	for _, p := range m.InputPorts {
		ins = append(ins, p.Topic)
	}
	for _, p := range m.OutputPorts {
		outs = append(outs, p.Topic)
	}
	fmt.Fprintf(stdout, "running %s (%s, instance %s): %s -> %s (dead letters: %s); Ctrl-C to stop\n",
		m.ID, d, *instance, strings.Join(ins, ", "), strings.Join(outs, ", "), m.DeadLetter.Topic)
	start := time.Now()
	err = r.Run(ctx)
	st := r.Stats()
	fmt.Fprintf(stdout, "stopped after %s: %d events in, %d records out, %d dead letters, %d duplicates dropped, %d batches committed, %d aborted\n",
		time.Since(start).Round(time.Millisecond), st.EventsIn.Load(), st.Records.Load(), st.DeadLetters.Load(),
		st.Duplicates.Load(), st.Batches.Load(), st.Aborted.Load())
	return err
}
