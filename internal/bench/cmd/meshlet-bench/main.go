// Command meshlet-bench runs Meshlet's peer benchmark (issue 7) and writes
// BENCHMARKS.md, BENCHMARKS.json and the chart. internal/bench/run.sh builds
// what it needs and calls it; see package bench for what is measured.
//
//	meshlet-bench run [flags]           the whole comparison
//	meshlet-bench build-rpconnect DIR   only build Redpanda Connect into DIR
//	meshlet-bench report FILE.json      re-render BENCHMARKS.md and the chart
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/meshlet/meshlet/internal/bench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "meshlet-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: meshlet-bench run|build-rpconnect|report ...")
	}
	switch args[0] {
	case "build-rpconnect":
		if len(args) != 2 {
			return fmt.Errorf("usage: meshlet-bench build-rpconnect DIR")
		}
		bin, err := bench.BuildRPConnect(ctx, args[1], os.Stderr)
		if err == nil {
			fmt.Println(bin)
		}
		return err
	case "report":
		if len(args) != 2 {
			return fmt.Errorf("usage: meshlet-bench report BENCHMARKS.json")
		}
		b, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		var res bench.Results
		if err := json.Unmarshal(b, &res); err != nil {
			return err
		}
		return bench.WriteReport(&res, filepath.Dir(args[1]))
	case "run":
		return runBench(ctx, args[1:])
	}
	return fmt.Errorf("unknown command %q", args[0])
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o bench.Options
	out := fs.String("out", ".", "directory for BENCHMARKS.md, BENCHMARKS.json and BENCHMARKS.png")
	fs.StringVar(&o.BinDir, "bin", "", "directory holding bench-broker, bench-pipe and bench-product")
	fs.StringVar(&o.RPConnect, "rpconnect", "", "Redpanda Connect binary (empty: leave it out)")
	fs.StringVar(&o.WorkDir, "work", filepath.Join(os.TempDir(), "meshlet-bench"), "directory for run logs, change logs and profiles")
	contenders := fs.String("contenders", "", "comma-separated contender ids (default: all)")
	backlogRuns := fs.String("backlog-runs", "meshlet-alo,meshlet-eos", "contenders that drain the whole backlog once (for RSS)")
	fs.IntVar(&o.Runs, "runs", 5, "measured runs per contender")
	fs.DurationVar(&o.RunTime, "run-time", 5*time.Second, "how long one measured run should last")
	fs.DurationVar(&o.WarmupTime, "warmup", 2*time.Second, "warm-up run that picks N")
	fs.IntVar(&o.Backlog, "backlog", 3_000_000, "events pre-loaded on the input topic")
	fs.DurationVar(&o.LatencyTime, "latency-time", 10*time.Second, "paced load per contender")
	fs.DurationVar(&o.ProfileTime, "profile-time", 8*time.Second, "CPU profile of Meshlet exactly-once (negative: none)")
	fs.BoolVar(&o.CommonLatency, "common-latency", true, "also measure the faster contenders' latency at Meshlet exactly-once's half load")
	fs.IntVar(&o.RPCBatch, "rpc-batch", 1024, "Redpanda Connect input batch size (negative: no batching)")
	fs.StringVar(&o.RPCBatchPeriod, "rpc-batch-period", "1ms", "Redpanda Connect input batch period")
	fs.IntVar(&o.RPCMaxInFlight, "rpc-max-in-flight", 64, "Redpanda Connect output max_in_flight")
	fs.IntVar(&o.RPCCheckpoint, "rpc-checkpoint-limit", 0, "Redpanda Connect input checkpoint_limit (default: batch*(max in flight+16))")
	fs.DurationVar(&o.QuietWait, "quiet-wait", 2*time.Minute, "all the waiting for other processes to go quiet, at most 20s before a run (negative: none)")
	fs.IntVar(&o.Retries, "retries", 8, "runs repeated because other processes loaded the machine, in all (negative: none)")
	revision := fs.String("revision", "", "the measured tree's revision, for the report")
	rates := fs.String("latency-rates", "", "comma-separated events/s: only measure latency at these rates (a curve), no comparison")
	buildSeconds := fs.Float64("build-seconds", 0, "time the caller spent building, added to the reported total")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.BinDir == "" {
		return fmt.Errorf("-bin is required")
	}
	if *contenders != "" {
		o.Contenders = strings.Split(*contenders, ",")
	}
	for _, f := range strings.Split(*rates, ",") {
		if f == "" {
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return fmt.Errorf("-latency-rates: %w", err)
		}
		o.LatencyRates = append(o.LatencyRates, v)
	}
	o.BacklogRuns = []string{}
	if *backlogRuns != "" {
		o.BacklogRuns = strings.Split(*backlogRuns, ",")
	}
	if b := os.Getenv("KAFKA_BROKERS"); b != "" {
		o.Brokers = strings.Split(b, ",")
		o.Registry = os.Getenv("SCHEMA_REGISTRY_URL")
	}
	o.Log = os.Stderr
	res, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	if len(o.LatencyRates) > 0 {
		// A curve for exploring, not the comparison: printed, not written.
		for _, c := range res.Contenders {
			for _, l := range c.LatencyCurve {
				fmt.Printf("%-12s %8.0f/s  p50 %8.1f ms  p99 %8.1f ms  max %8.1f ms  contender %.2f cores\n",
					c.ID, l.AchievedRate, l.P50Ms, l.P99Ms, l.MaxMs, l.CPUCores)
			}
		}
		return nil
	}
	res.BuildSeconds = *buildSeconds
	res.Revision = *revision
	res.TotalSeconds += *buildSeconds
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "BENCHMARKS.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return bench.WriteReport(res, *out)
}
