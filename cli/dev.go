package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/meshlet/meshlet/ports"
	"github.com/meshlet/meshlet/ports/kafka"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/mgmt"
	"github.com/meshlet/meshlet/runtime"
	"github.com/meshlet/meshlet/schemas"
)

// devOptions are the flags of dev.
type devOptions struct {
	stackOptions
	once     bool
	dataDir  string
	feeds    []string // PORT=FILE or FILE (the first input port)
	httpPort int
	verbose  bool
	json     bool
	timeout  time.Duration
}

func init() {
	register(command{name: "dev", synopsis: "run the product on an embedded Kafka, registry and Redis, with its recorded CDC", run: cmdDev, product: true})
}

const devUsage = `dev [flags]

Runs the product on an embedded Kafka broker (kfake), schema registry and
Redis (when redis-server is installed), feeds it the recorded CDC the
product's binary carries (or --feed files), prints what happened: events in,
records out, every dead letter with its class and origin, the change-log
chain, and every output event decoded back through the registry. Then it
serves the management port until Ctrl-C (--once: exit after the summary).`

func cmdDev(ctx context.Context, e *env, args []string) error {
	var o devOptions
	fs := newFlags("dev", devUsage, e.stderr)
	o.stackOptions.register(fs)
	fs.BoolVar(&o.once, "once", false, "exit after the summary instead of serving")
	fs.StringVar(&o.dataDir, "data", "", "directory for the change logs (default: a temporary directory, removed on exit)")
	fs.Func("feed", "recorded CDC to feed instead of the product's, one JSON message a line: FILE for the first input port, or PORT=FILE (repeatable)", func(v string) error {
		o.feeds = append(o.feeds, v)
		return nil
	})
	fs.IntVar(&o.httpPort, "http-port", 0, "port of the management port with the query endpoints (0: any free port)")
	fs.BoolVar(&o.verbose, "v", false, "log each step, not only warnings")
	fs.BoolVar(&o.json, "json", false, "print the summary as JSON on stdout (the rest goes to stderr)")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "give up if the fed events are not all processed within this time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("dev takes no arguments, got %q (feed files go with --feed)", fs.Args())
	}
	product, err := e.app.load()
	if err != nil {
		return err
	}
	feeds, err := devFeeds(product, e.app.feeds, o.feeds)
	if err != nil {
		return err
	}
	return dev(ctx, product, feeds, e.app.routes, o, e.stdout, e.stderr)
}

// devFeeds are the recordings dev feeds: the product's own, those of a
// port replaced by a --feed for it (in the place of its first).
func devFeeds(p *runtime.Product, own []feed, flags []string) ([]feed, error) {
	m := p.Manifest
	ports := map[string]string{} // input port -> topic
	for _, in := range m.InputPorts {
		ports[in.Name] = in.Topic
	}
	out := slices.Clone(own)
	for _, f := range out {
		if _, ok := ports[f.port]; !ok {
			return nil, fmt.Errorf("recorded CDC %s is for input port %q, which %s does not have (its input ports: %s)", f.name, f.port, m.File(), strings.Join(slices.Sorted(maps.Keys(ports)), ", "))
		}
	}
	for _, v := range flags {
		port, file, ok := strings.Cut(v, "=")
		if !ok {
			port, file = m.InputPorts[0].Name, v
		}
		if _, known := ports[port]; !known {
			return nil, usageError("--feed %s: no input port %q (the product's input ports: %s)", v, port, strings.Join(slices.Sorted(maps.Keys(ports)), ", "))
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("--feed %s: %w", v, err)
		}
		var keys []string
		at := len(out)
		if i := slices.IndexFunc(out, func(f feed) bool { return f.port == port }); i >= 0 {
			keys, at = out[i].keyFields, i
			out = slices.DeleteFunc(out, func(f feed) bool { return f.port == port })
		}
		out = slices.Insert(out, min(at, len(out)), feed{port: port, name: file, data: data, keyFields: keys})
	}
	return out, nil
}

func dev(ctx context.Context, product *runtime.Product, feeds []feed, routes map[string]string, o devOptions, stdout, stderr io.Writer) error {
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
	jsonStdout := stdout
	if o.json { // the addresses and the human summary go to stderr, the JSON alone to stdout
		stdout = stderr
	}
	st, err := startStack(o.stackOptions, o.dataDir, false)
	if err != nil {
		return err
	}
	defer st.close()
	st.print(stdout)
	fmt.Fprintf(stdout, "data      %s\n\n", o.dataDir)

	m := product.Manifest
	admin, err := kgo.NewClient(kgo.SeedBrokers(st.brokers...))
	if err != nil {
		return err
	}
	defer admin.Close()
	topics := map[string]int32{m.DeadLetter.Topic: 1}
	for _, in := range m.InputPorts {
		topics[in.Topic] = 3
	}
	for _, out := range m.OutputPorts {
		topics[out.Topic] = 3
	}
	if err := kafka.EnsureTopics(ctx, admin, topics); err != nil {
		return err
	}
	if len(feeds) == 0 {
		fmt.Fprintf(stdout, "no recorded CDC to feed (give the binary cli.Recorded, or use --feed FILE)\n")
	}

	tokens, listed, err := devTokens()
	if err != nil {
		return err
	}
	runner, err := runtime.Start(ctx, product,
		runtime.SeedBrokers(st.brokers...), runtime.SchemaRegistry(st.registry.URL()), runtime.DataDir(o.dataDir), runtime.Logger(logger),
		runtime.Redis(st.redisAddr), runtime.ManagementAddr(fmt.Sprintf("127.0.0.1:%d", o.httpPort)), runtime.Tokens(tokens),
	)
	if err != nil {
		return err
	}
	base := "http://" + runner.HTTPAddr().String()
	fmt.Fprintf(stdout, "manage    %s  (open: /v1/product /v1/docs /v1/status /metrics /v1/lineage)\n", base)
	fmt.Fprintf(stdout, "query     %s/v1/entities/{key}  (current, ?asOf=&validAt=, /history; needs a token)\n", base)
	fmt.Fprintf(stdout, "tokens    %s\n", listed)
	fmt.Fprintf(stdout, "          e.g. curl -H 'Authorization: Bearer dev-auditor' %s/v1/entities/{key}/history\n", base)
	if st.redisAddr != "" {
		fmt.Fprintf(stdout, "mesh      meshlet mesh list --redis %s\n", st.redisAddr)
	}
	runCtx, stopRunner := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- runner.Run(runCtx) }()
	stopAndWait := func() error { stopRunner(); return <-runDone }

	// Each recording once the ones before it are processed, so one that
	// reaches Kafka late (a lagging connector) is processed late.
	fed := 0
	for _, f := range feeds {
		topic := ""
		for _, in := range m.InputPorts {
			if in.Name == f.port {
				topic = in.Topic
			}
		}
		n, err := feedRecorded(ctx, st.brokers, f, topic, routes[f.port], topics[topic])
		if err != nil {
			stopAndWait()
			return err
		}
		fmt.Fprintf(stdout, "fed %d recorded events from %s into %s\n", n, f.name, topic)
		fed += n
		if err := waitProcessed(ctx, runner, int64(fed), o.timeout, runDone); err != nil {
			stopAndWait()
			return err
		}
	}
	var jsonOut io.Writer
	if o.json {
		jsonOut = jsonStdout
	}
	if err := printSummary(ctx, stdout, jsonOut, runner, m, st.brokers, st.registry.URL(), o.dataDir); err != nil {
		stopAndWait()
		return err
	}
	if o.once {
		return stopAndWait()
	}
	var in []string
	for _, p := range m.InputPorts {
		in = append(in, p.Topic)
	}
	fmt.Fprintf(stdout, "\nserving: the product keeps consuming %s; Ctrl-C to stop\n", strings.Join(in, ", "))
	select {
	case <-ctx.Done():
		return stopAndWait()
	case err := <-runDone:
		return err
	}
}

// feedRecorded produces a recording into topic, on the partitions its
// rows' column route picks when it is set (topic has partitions), and
// returns how many events it fed.
func feedRecorded(ctx context.Context, brokers []string, f feed, topic, route string, partitions int32) (int, error) {
	recs, err := kafka.RecordedCDC(bytes.NewReader(f.data), f.name, topic, f.keyFields)
	if err != nil {
		return 0, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	if route != "" {
		if err := kafka.RouteByField(recs, route, partitions); err != nil {
			return 0, fmt.Errorf("%s: %w", f.name, err)
		}
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("feed %s into %s: %w", f.name, topic, err)
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

// devSummary is dev's summary as --json prints it. OutputTopic, SchemaID
// and Events are the first output port's; Ports has every port's.
type devSummary struct {
	EventsIn    int64             `json:"events_in"`
	Skipped     int64             `json:"skipped"`
	Duplicates  int64             `json:"duplicates"`
	RecordsOut  int64             `json:"records_out"`
	OutputTopic string            `json:"output_topic"`
	SchemaID    int               `json:"schema_id"`
	DeadLetters []devDeadLetter   `json:"dead_letters"`
	Entries     uint64            `json:"changelog_entries"`
	Logs        int               `json:"changelog_logs"`
	Chain       string            `json:"chain"`
	Events      []json.RawMessage `json:"events"`
	Ports       []devPort         `json:"ports"`
}

// devPort is what one output port published.
type devPort struct {
	Name       string            `json:"name"`
	Topic      string            `json:"topic"`
	SchemaID   int               `json:"schema_id"`
	RecordsOut int64             `json:"records_out"`
	Events     []json.RawMessage `json:"events"`
}

type devDeadLetter struct {
	Class           string `json:"class"`
	OriginTopic     string `json:"origin_topic"`
	OriginPartition string `json:"origin_partition"`
	OriginOffset    string `json:"origin_offset"`
	Reason          string `json:"reason"`
}

func printSummary(ctx context.Context, w, jsonOut io.Writer, r *runtime.Runner, m *runtime.Manifest, brokers []string, registryURL, dataDir string) error {
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
	outs := r.Ports()
	fmt.Fprintf(w, "\nsummary\n")
	fmt.Fprintf(w, "  events in          %d (%d tombstones/heartbeats skipped, %d re-sent by the source and dropped)\n", st.EventsIn.Load(), st.Skipped.Load(), st.Duplicates.Load())
	if len(outs) == 1 {
		fmt.Fprintf(w, "  records out        %d on %s (schema id %d)\n", outs[0].Records, outs[0].Topic, outs[0].SchemaID)
	} else {
		fmt.Fprintf(w, "  records out        %d on %d output ports\n", st.Records.Load(), len(outs))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range outs {
			fmt.Fprintf(tw, "    %s\t%d on %s (schema id %d)\n", p.Name, p.Records, p.Topic, p.SchemaID)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "  dead letters       %d on %s\n", st.DeadLetters.Load(), m.DeadLetter.Topic)
	fmt.Fprintf(w, "  change-log entries %d in %d log(s)\n", entries, len(reports))
	fmt.Fprintf(w, "  chain              %s\n", chain)

	sum := devSummary{EventsIn: st.EventsIn.Load(), Skipped: st.Skipped.Load(), Duplicates: st.Duplicates.Load(), RecordsOut: st.Records.Load(),
		OutputTopic: outs[0].Topic, SchemaID: outs[0].SchemaID, DeadLetters: []devDeadLetter{}, Entries: entries, Logs: len(reports), Chain: chain,
		Events: []json.RawMessage{}, Ports: []devPort{}}
	if n := int(st.DeadLetters.Load()); n > 0 {
		dls, err := readDeadLetters(ctx, brokers, m.DeadLetter.Topic, n)
		if err != nil {
			return err
		}
		for _, d := range dls {
			sum.DeadLetters = append(sum.DeadLetters, devDeadLetter{kafka.Header(d, ports.HeaderErrorClass), kafka.Header(d, ports.HeaderOriginTopic),
				kafka.Header(d, ports.HeaderOriginPartition), kafka.Header(d, ports.HeaderOriginOffset), kafka.Header(d, ports.HeaderErrorMessage)})
		}
		fmt.Fprintf(w, "\n%d dead letter(s) on %s:\n", len(dls), m.DeadLetter.Topic)
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CLASS\tORIGIN\tREASON")
		for _, d := range dls {
			fmt.Fprintf(tw, "  %s\t%s/%s@%s\t%s\n", kafka.Header(d, ports.HeaderErrorClass), kafka.Header(d, ports.HeaderOriginTopic),
				kafka.Header(d, ports.HeaderOriginPartition), kafka.Header(d, ports.HeaderOriginOffset), oneLine(kafka.Header(d, ports.HeaderErrorMessage), 120))
		}
		tw.Flush()
	}

	published := 0
	for i, p := range outs {
		events, err := readOutput(ctx, brokers, registryURL, p.Topic, int(p.Records))
		if err != nil {
			return err
		}
		published += len(events)
		port := ""
		if len(outs) > 1 {
			port = " (port " + p.Name + ")"
		}
		fmt.Fprintf(w, "\n%d events on %s%s, decoded back through the registry:\n", len(events), p.Topic, port)
		printEvents(w, events)
		dp := devPort{Name: p.Name, Topic: p.Topic, SchemaID: p.SchemaID, RecordsOut: p.Records, Events: []json.RawMessage{}}
		for _, e := range events {
			b, err := json.Marshal(map[string]any{"partition": e.partition, "offset": e.offset, "key": e.key, "fields": e.fields})
			if err != nil {
				return err
			}
			dp.Events = append(dp.Events, b)
		}
		if i == 0 {
			sum.Events = dp.Events
		}
		sum.Ports = append(sum.Ports, dp)
	}
	if jsonOut != nil {
		enc := json.NewEncoder(jsonOut)
		enc.SetIndent("", "  ")
		if err := enc.Encode(sum); err != nil {
			return err
		}
	}
	if verifyErr != nil {
		return verifyErr
	}
	if uint64(published) != entries {
		return fmt.Errorf("the output topics hold %d events but the change logs hold %d entries", published, entries)
	}
	return nil
}

// readDeadLetters reads n committed records from the dead-letter topic.
func readDeadLetters(ctx context.Context, brokers []string, topic string, n int) ([]*kgo.Record, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: got %d of %d dead letters: %w", topic, len(out), n, err)
		}
		fetches.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out, nil
}

// oneLine shortens s to at most n runes on one line, for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
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
