// Command meshlet runs and audits Meshlet data products.
//
//	meshlet dev [--once]           run the example product on an embedded Kafka and registry
//	meshlet run --brokers ...      run the example product against a real cluster
//	meshlet audit verify DIR       check every change log under DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

const usage = `meshlet runs data products on Kafka and lets auditors check them.

Usage:
  meshlet dev [flags]          run the example product on an embedded stack (in-process Kafka and
                               schema registry), feed it recorded Debezium CDC, print a summary
  meshlet run [flags]          run the example product against a real Kafka cluster and registry
  meshlet audit verify DIR     walk the hash chain of every change log under DIR

Run 'meshlet COMMAND -h' for a command's flags.
`

// errUsage marks a command line that could not be understood; main exits 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "meshlet:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "dev":
		return cmdDev(ctx, args[1:], stdout, stderr)
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "meshlet: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}

// newFlags returns a flag set whose -h prints a one-line synopsis and the flags.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: meshlet %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
