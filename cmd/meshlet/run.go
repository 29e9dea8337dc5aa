package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/meshlet/meshlet/examples/inventory"
	"github.com/meshlet/meshlet/runtime"
)

func init() {
	register(command{name: "run", synopsis: "run the example product against a real Kafka cluster and registry", run: cmdRun})
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "run [flags]\n\nRuns the example product against a real Kafka cluster and schema registry\n(for instance the stack in docker-compose.yml) until Ctrl-C.", stderr)
	brokers := fs.String("brokers", "localhost:9092", "comma-separated Kafka bootstrap brokers")
	registry := fs.String("registry", "http://localhost:8081", "schema registry URL")
	dataDir := fs.String("data", "data", "directory for the change logs")
	instance := fs.String("instance", "0", "stable id of this replica (part of its transactional id)")
	verbose := fs.Bool("v", false, "log each step, not only warnings")
	if err := fs.Parse(args); err != nil {
		return err
	}
	product, err := inventory.New()
	if err != nil {
		return err
	}
	r, err := runtime.Start(ctx, product, runtime.Config{
		Brokers: strings.Split(*brokers, ","), RegistryURL: *registry, DataDir: *dataDir,
		Instance: *instance, Logger: newLogger(stderr, *verbose),
	})
	if err != nil {
		return err
	}
	m := product.Manifest
	fmt.Fprintf(stdout, "running %s: %s -> %s (dead letters: %s); Ctrl-C to stop\n",
		m.ID, m.InputPorts[0].Topic, m.OutputPorts[0].Topic, m.DeadLetter.Topic)
	err = r.Run(ctx)
	st := r.Stats()
	fmt.Fprintf(stdout, "stopped: %d events in, %d records out, %d dead letters\n", st.EventsIn.Load(), st.Records.Load(), st.DeadLetters.Load())
	return err
}
