// Command bench-product runs the example product (examples/inventory) the
// way `meshlet run` does, with the extra knobs the peer benchmark needs: the
// delivery guarantee, the consumer group and the topics of one run, and a
// pprof listener. It exists until `meshlet run` grows those flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only with -pprof
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/meshlet/meshlet/examples/inventory/products"
	"github.com/meshlet/meshlet/runtime"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench-product:", err)
		os.Exit(1)
	}
}

func run() error {
	brokers := flag.String("brokers", "127.0.0.1:39092", "comma-separated Kafka bootstrap brokers")
	registry := flag.String("registry", "http://127.0.0.1:39081", "schema registry URL")
	dataDir := flag.String("data", "data", "directory for the change logs")
	delivery := flag.String("delivery", "exactly-once", "exactly-once or at-least-once")
	group := flag.String("group", "", "consumer group (default: the product id)")
	instance := flag.String("instance", "0", "replica id, part of the transactional id")
	inTopic := flag.String("in", "", "input topic (default: the manifest's)")
	outTopic := flag.String("out", "", "output topic (default: the manifest's); the subject follows it")
	pprofAddr := flag.String("pprof", "", "serve net/http/pprof on this address")
	flag.Parse()

	opts := []runtime.Option{
		runtime.SeedBrokers(strings.Split(*brokers, ",")...), runtime.SchemaRegistry(*registry), runtime.DataDir(*dataDir),
		runtime.ConsumerGroup(*group), runtime.Instance(*instance),
		runtime.Logger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	}
	switch *delivery {
	case "exactly-once":
	case "at-least-once":
		opts = append(opts, runtime.WithDelivery(runtime.AtLeastOnce))
	default:
		return fmt.Errorf("-delivery %q: want exactly-once or at-least-once", *delivery)
	}
	if *pprofAddr != "" {
		ln, err := net.Listen("tcp", *pprofAddr)
		if err != nil {
			return fmt.Errorf("-pprof: %w", err)
		}
		go http.Serve(ln, nil) //nolint:errcheck // dies with the process
	}

	p, err := products.New()
	if err != nil {
		return err
	}
	m := p.Manifest
	if *inTopic != "" {
		m.InputPorts[0].Topic = *inTopic
	}
	if *outTopic != "" {
		m.OutputPorts[0].Topic = *outTopic
		m.OutputPorts[0].Subject = *outTopic + "-value"
		m.DeadLetter.Topic = *outTopic + ".dlq"
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, err := runtime.Start(ctx, p, opts...)
	if err != nil {
		return err
	}
	if err := r.Run(ctx); err != nil {
		return err
	}
	st := r.Stats()
	fmt.Fprintf(os.Stderr, "bench-product: stopped after %d events, %d records, %d dead letters, %d batches\n",
		st.EventsIn.Load(), st.Records.Load(), st.DeadLetters.Load(), st.Batches.Load())
	return nil
}
