package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshlet/meshlet/ports/kafka"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/cdc/samples"
	"github.com/meshlet/meshlet/examples/inventory"
	"github.com/meshlet/meshlet/internal/localredis"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
)

// devOptions are the flags of `meshlet dev`.
type devOptions struct {
	once         bool
	kafkaPort    int
	registryPort int
	dataDir      string
	feed         string
	httpPort     int
	redis        string
	verbose      bool
	timeout      time.Duration
}

func init() {
	register(command{name: "dev", synopsis: "run the example product on an embedded Kafka and registry, with recorded CDC", run: cmdDev})
}

func cmdDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o devOptions
	fs := newFlags("dev", "dev [flags]\n\nRuns the example product on an embedded Kafka broker (kfake) and schema registry,\nfeeds it recorded Debezium CDC, prints what happened, and serves until Ctrl-C.", stderr)
	fs.BoolVar(&o.once, "once", false, "exit after the summary instead of serving")
	fs.IntVar(&o.kafkaPort, "kafka-port", 0, "TCP port of the embedded Kafka broker (0: any free port)")
	fs.IntVar(&o.registryPort, "registry-port", 0, "HTTP port of the embedded schema registry (0: any free port)")
	fs.StringVar(&o.dataDir, "data", "", "directory for the change logs (default: a temporary directory, removed on exit)")
	fs.StringVar(&o.feed, "feed", "", "recorded CDC file to feed instead of the example's (one JSON message a line)")
	fs.IntVar(&o.httpPort, "http-port", 0, "port of the management port with the query endpoints (0: any free port)")
	fs.StringVar(&o.redis, "redis", "auto", "Redis for the current state: auto (start redis-server if installed), off, or an address")
	fs.BoolVar(&o.verbose, "v", false, "log each step, not only warnings")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "give up if the fed events are not all processed within this time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	return dev(ctx, o, stdout, stderr)
}

func dev(ctx context.Context, o devOptions, stdout, stderr io.Writer) error {
	if o.dataDir == "" {
		tmp, err := os.MkdirTemp("", "meshlet-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		o.dataDir = tmp
	}
	if err := os.MkdirAll(o.dataDir, 0o750); err != nil {
		return err
	}
	logger := newLogger(stderr, o.verbose)

	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(o.kafkaPort))
	if err != nil {
		return fmt.Errorf("start embedded kafka on port %d: %w", o.kafkaPort, err)
	}
	defer broker.Close()
	registry, err := schemas.StartEmbedded(fmt.Sprintf("127.0.0.1:%d", o.registryPort))
	if err != nil {
		return fmt.Errorf("start embedded schema registry on port %d: %w", o.registryPort, err)
	}
	defer registry.Close()
	brokers := broker.ListenAddrs()
	fmt.Fprintf(stdout, "kafka     %s  (embedded kfake broker)\n", strings.Join(brokers, ","))
	fmt.Fprintf(stdout, "registry  %s  (embedded schema registry)\n", registry.URL())
	redisAddr, stopRedis, err := devRedis(o.redis, o.dataDir)
	if err != nil {
		return err
	}
	defer stopRedis()
	if redisAddr != "" {
		fmt.Fprintf(stdout, "redis     %s  (current state for the query port)\n", redisAddr)
	}
	fmt.Fprintf(stdout, "data      %s\n\n", o.dataDir)

	product, err := inventory.New()
	if err != nil {
		return err
	}
	m := product.Manifest
	admin, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return err
	}
	defer admin.Close()
	in, out := m.InputPorts[0], m.OutputPorts[0]
	if err := kafka.EnsureTopics(ctx, admin, map[string]int32{in.Topic: 3, out.Topic: 3, m.DeadLetter.Topic: 1}); err != nil {
		return err
	}

	fed, err := feedRecorded(ctx, admin, o.feed, in.Topic)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fed %d recorded Debezium events into %s\n", fed, in.Topic)

	tokens, listed, err := devTokens()
	if err != nil {
		return err
	}
	runner, err := runtime.Start(ctx, product,
		runtime.SeedBrokers(brokers...), runtime.SchemaRegistry(registry.URL()), runtime.DataDir(o.dataDir), runtime.Logger(logger),
		runtime.Redis(redisAddr), runtime.ManagementAddr(fmt.Sprintf("127.0.0.1:%d", o.httpPort)), runtime.Tokens(tokens),
	)
	if err != nil {
		return err
	}
	base := "http://" + runner.HTTPAddr().String()
	fmt.Fprintf(stdout, "manage    %s  (open: /v1/product /v1/docs /v1/status /metrics /v1/lineage)\n", base)
	fmt.Fprintf(stdout, "query     %s/v1/entities/{key}  (current, ?asOf=&validAt=, /history; needs a token)\n", base)
	fmt.Fprintf(stdout, "tokens    %s\n", listed)
	fmt.Fprintf(stdout, "          e.g. curl -H 'Authorization: Bearer dev-auditor' %s/v1/entities/106/history\n", base)
	runCtx, stopRunner := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- runner.Run(runCtx) }()
	stopAndWait := func() error { stopRunner(); return <-runDone }

	if err := waitProcessed(ctx, runner, int64(fed), o.timeout, runDone); err != nil {
		stopAndWait()
		return err
	}
	if err := printSummary(ctx, stdout, runner, brokers, registry.URL(), o.dataDir, out.Topic); err != nil {
		stopAndWait()
		return err
	}
	if o.once {
		return stopAndWait()
	}
	fmt.Fprintf(stdout, "\nserving: the product keeps consuming %s; Ctrl-C to stop\n", in.Topic)
	select {
	case <-ctx.Done():
		return stopAndWait()
	case err := <-runDone:
		return err
	}
}

// devRedis gives the dev stack a real Redis when one is installed: a
// redis-server on a free loopback port, in memory only, stopped on exit.
func devRedis(mode, dataDir string) (addr string, stop func(), err error) {
	switch mode {
	case "off":
		return "", func() {}, nil
	case "auto":
	default:
		return mode, func() {}, nil
	}
	srv, err := localredis.Start(dataDir)
	if errors.Is(err, localredis.ErrNotInstalled) {
		return "", func() {}, nil // current state is then served from the change-log index
	}
	if err != nil {
		return "", nil, fmt.Errorf("%w (use --redis off to do without)", err)
	}
	return srv.Addr, srv.Stop, nil
}

// feedRecorded produces a recorded CDC file (the example's own by default)
// into topic and returns how many events it fed.
func feedRecorded(ctx context.Context, cl *kgo.Client, file, topic string) (int, error) {
	data, name := inventory.RecordedCDC(), "cdc/samples/"+samples.DebeziumPostgres
	if file != "" {
		var err error
		if data, err = os.ReadFile(file); err != nil {
			return 0, err
		}
		name = file
	}
	recs, err := kafka.RecordedCDC(bytes.NewReader(data), name, topic, inventory.KeyFields)
	if err != nil {
		return 0, err
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("feed %s into %s: %w", name, topic, err)
	}
	return len(recs), nil
}

// waitProcessed waits until the runner has committed n input events.
func waitProcessed(ctx context.Context, r *runtime.Runner, n int64, timeout time.Duration, runDone <-chan error) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for r.Stats().EventsIn.Load() < n {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-runDone:
			if err == nil {
				err = errors.New("stopped before processing the fed events")
			}
			return fmt.Errorf("product: %w", err)
		case <-deadline.C:
			return fmt.Errorf("only %d of %d fed events processed after %s", r.Stats().EventsIn.Load(), n, timeout)
		case <-tick.C:
		}
	}
	return nil
}

func printSummary(ctx context.Context, w io.Writer, r *runtime.Runner, brokers []string, registryURL, dataDir, topic string) error {
	st := r.Stats()
	reports, verifyErr := auditlog.VerifyTree(filepath.Join(dataDir, "changelog"))
	var entries uint64
	for _, rep := range reports {
		entries += rep.Entries
	}
	chain := "verified"
	if verifyErr != nil {
		chain = "FAILED: " + verifyErr.Error()
	}
	fmt.Fprintf(w, "\nsummary\n")
	fmt.Fprintf(w, "  events in          %d (%d tombstones/heartbeats skipped)\n", st.EventsIn.Load(), st.Skipped.Load())
	fmt.Fprintf(w, "  records out        %d (schema id %d)\n", st.Records.Load(), r.SchemaID())
	fmt.Fprintf(w, "  dead letters       %d\n", st.DeadLetters.Load())
	fmt.Fprintf(w, "  change-log entries %d in %d log(s)\n", entries, len(reports))
	fmt.Fprintf(w, "  chain              %s\n", chain)

	events, err := readOutput(ctx, brokers, registryURL, topic, int(st.Records.Load()))
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d events on %s, decoded back through the registry:\n", len(events), topic)
	printEvents(w, events)
	if verifyErr != nil {
		return verifyErr
	}
	if uint64(len(events)) != entries {
		return fmt.Errorf("output topic holds %d events but the change logs hold %d entries", len(events), entries)
	}
	return nil
}

type decodedEvent struct {
	partition int32
	offset    int64
	key       string
	fields    map[string]any
}

// readOutput reads n committed events from topic and decodes each through
// the registry, as any consumer would.
func readOutput(ctx context.Context, brokers []string, registryURL, topic string, n int) ([]decodedEvent, error) {
	reg, err := schemas.NewRegistry([]string{registryURL})
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
	)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var events []decodedEvent
	for len(events) < n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: got %d of %d events: %w", topic, len(events), n, err)
		}
		var decodeErr error
		fetches.EachRecord(func(rec *kgo.Record) {
			_, fields, err := reg.DecodeMap(ctx, rec.Value)
			if err != nil && decodeErr == nil {
				decodeErr = fmt.Errorf("decode %s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err)
			}
			events = append(events, decodedEvent{rec.Partition, rec.Offset, string(rec.Key), fields})
		})
		if decodeErr != nil {
			return nil, decodeErr
		}
	}
	return events, nil
}

func printEvents(w io.Writer, events []decodedEvent) {
	slices.SortFunc(events, func(a, b decodedEvent) int {
		return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.offset, b.offset))
	})
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  P@OFFSET\tKEY\tDELETED\tVALID FROM\tSYSTEM FROM\tROW")
	for _, e := range events {
		row := make([]string, 0, len(e.fields))
		for _, name := range sortedRowFields(e.fields) {
			row = append(row, fmt.Sprintf("%s=%s", name, formatValue(e.fields[name])))
		}
		fmt.Fprintf(tw, "  %d@%d\t%s\t%v\t%s\t%s\t%s\n", e.partition, e.offset, e.key, e.fields["_deleted"],
			formatTime(e.fields["_valid_from"]), formatTime(e.fields["_system_from"]), strings.Join(row, " "))
	}
	tw.Flush()
}

// devTokens are the dev stack's bearer tokens, one per role, named after
// it: MESHLET_TOKENS replaces them.
func devTokens() (*mgmt.Tokens, string, error) {
	spec := os.Getenv("MESHLET_TOKENS")
	if spec == "" {
		spec = "consumer:consumer:dev-consumer,auditor:auditor:dev-auditor,owner:owner:dev-owner,governance:governance:dev-governance"
	}
	tokens, err := mgmt.ParseTokenList(spec)
	if err != nil {
		return nil, "", fmt.Errorf("MESHLET_TOKENS: %w", err)
	}
	if os.Getenv("MESHLET_TOKENS") != "" {
		return tokens, "from MESHLET_TOKENS", nil
	}
	return tokens, "dev-consumer, dev-auditor, dev-owner, dev-governance (one per role; set MESHLET_TOKENS to change)", nil
}
