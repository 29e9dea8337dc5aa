// Package cli is Meshlet's command line as a library. Every data product's
// binary is this package with the product in it, and cmd/meshlet, the
// generic tool, is this package without one:
//
//	func main() { cli.Main(products.New, cli.Recorded("products-cdc", "capture.txt", capture, "id")) }
//
// gives the product's binary `dev` (the product on an embedded Kafka,
// registry and Redis, with its recorded CDC), `run` (against a real
// cluster) and every command of the generic tool: the auditor's (audit,
// asof, history, corrections, replay), the mesh's, control, lint, schema,
// contract, gen, init and stack, with the same flags.
//
// Each command lives in a file of its own and registers itself from init;
// commands that need the product say so (command.product) and are offered
// only by a product's binary.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/meshlet/meshlet/runtime"
)

// command is one `meshlet NAME ...` command.
type command struct {
	name     string // as typed; "audit verify" for a two-word command
	synopsis string // one line for the command list
	run      func(ctx context.Context, e *env, args []string) error
	// product: the command runs the product, so only a product's binary
	// has it (dev, run).
	product bool
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("meshlet: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// plain adapts a command that needs no product.
func plain(f func(ctx context.Context, args []string, stdout, stderr io.Writer) error) func(context.Context, *env, []string) error {
	return func(ctx context.Context, e *env, args []string) error { return f(ctx, args, e.stdout, e.stderr) }
}

// env is what a command runs with.
type env struct {
	stdout, stderr io.Writer
	app            *app // nil in the generic tool
}

// app is a product's binary: how to load the product, and what dev feeds it.
type app struct {
	load   func() (*runtime.Product, error)
	feeds  []feed
	routes map[string]string // input port -> the column dev routes its records by
}

// feed is recorded CDC for one input port (see Recorded).
type feed struct {
	port      string
	name      string
	data      []byte
	keyFields []string
}

// Option configures a product's binary.
type Option func(*app)

// Recorded gives `dev` a recording to feed into an input port: one JSON
// message a line, as captured from the source (name is how messages refer
// to it). Recordings keep only values, so each record's key is rebuilt from
// keyFields of the row image, as Debezium's key would be. Several
// recordings are fed in the order given, each once the product has
// processed the ones before: a recording of one table that reaches Kafka
// after another's (a lagging connector) is fed after it.
func Recorded(port, name string, data []byte, keyFields ...string) Option {
	return func(a *app) { a.feeds = append(a.feeds, feed{port, name, data, keyFields}) }
}

// Route has dev put each recorded record of an input port on the
// partition its row's column picks, as Debezium's PartitionRouting
// transform does (partition.payload.fields; see kafka.RouteByField), instead
// of by its key. Ports routed by the columns a join uses are co-partitioned.
func Route(port, column string) Option {
	return func(a *app) {
		if a.routes == nil {
			a.routes = map[string]string{}
		}
		a.routes[port] = column
	}
}

// errUsage marks a command line that could not be understood; the
// process exits 2.
var errUsage = errors.New("usage")

// prog is the binary's name in usage lines: meshlet, or the product's.
var prog = "meshlet"

// Main runs the command line of a product's binary and exits: 0 on
// success, 2 for a command line that could not be understood, 1 for any
// other failure.
func Main(load func() (*runtime.Product, error), opts ...Option) {
	a := &app{load: load}
	for _, o := range opts {
		o(a)
	}
	prog = filepath.Base(os.Args[0])
	exit(a)
}

// Tool runs the generic meshlet command line and exits.
func Tool() { exit(nil) }

func exit(a *app) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := Run(ctx, a, os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		if !errors.Is(err, flag.ErrHelp) && err != errUsage {
			fmt.Fprintf(os.Stderr, "%s: %s\n", prog, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		}
		stop()
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "%s: %v\n", prog, err)
		stop()
		os.Exit(1)
	}
}

// Run runs one command line. a is the product's binary, nil for the
// generic tool.
func Run(ctx context.Context, a *app, args []string, stdout, stderr io.Writer) error {
	e := &env{stdout: stdout, stderr: stderr, app: a}
	if len(args) == 0 {
		printUsage(stderr, a)
		return errUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printUsage(stdout, a)
		return nil
	}
	c, rest, ok := lookup(args)
	if ok {
		if c.product && a == nil {
			fmt.Fprintf(stderr, "%s: %q runs a data product, so it is a command of the product's own binary, not of meshlet:\n"+
				"  in the product's module:    go run . %s\n"+
				"  the example product:        go run ./examples/inventory %s\n"+
				"  a new product:              meshlet init NAME\n", prog, c.name, c.name, c.name)
			return errUsage
		}
		return c.run(ctx, e, rest)
	}
	if group := subcommands(args[0], a); len(group) > 0 {
		fmt.Fprintf(stderr, "Usage: %s %s\n", prog, strings.Join(group, "\n       "+prog+" "))
		return errUsage
	}
	fmt.Fprintf(stderr, "%s: unknown command %q", prog, args[0])
	if near := closest(args[0], names(a)); near != "" {
		fmt.Fprintf(stderr, "; did you mean %q?", near)
	}
	fmt.Fprint(stderr, "\n\n")
	printUsage(stderr, a)
	return errUsage
}

// lookup finds the command args name: two-word commands ("audit verify")
// first, then one-word ones.
func lookup(args []string) (command, []string, bool) {
	if len(args) > 1 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c, args[2:], true
		}
	}
	c, ok := commands[args[0]]
	return c, args[1:], ok
}

// names lists the commands this binary offers, sorted.
func names(a *app) []string {
	var out []string
	for name, c := range commands {
		if c.product && a == nil {
			continue
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// subcommands lists the commands that start with word ("audit" -> "audit verify").
func subcommands(word string, a *app) []string {
	var out []string
	for _, name := range names(a) {
		if strings.HasPrefix(name, word+" ") {
			out = append(out, name+" "+commands[name].synopsis)
		}
	}
	return out
}

func printUsage(w io.Writer, a *app) {
	if a == nil {
		fmt.Fprint(w, "meshlet runs data products on Kafka and lets auditors check them.\n\n")
	} else {
		fmt.Fprintf(w, "%s is a Meshlet data product.\n\n", prog)
	}
	fmt.Fprintf(w, "Usage: %s COMMAND [flags]\n\nCommands:\n", prog)
	for _, name := range names(a) {
		fmt.Fprintf(w, "  %-18s %s\n", name, commands[name].synopsis)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND -h' for a command's flags.\n", prog)
	if a == nil {
		fmt.Fprint(w, "dev and run are commands of a product's own binary: go run ./examples/inventory dev, or meshlet init NAME.\n")
	}
}

// closest is the candidate nearest to word by edit distance, "" when none
// is near enough to be a likely typo.
func closest(word string, candidates []string) string {
	best, bestD := "", len(word)/2+2
	for _, c := range candidates {
		for _, form := range []string{c, strings.ReplaceAll(c, " ", "")} {
			if d := editDistance(word, form); d < bestD {
				best, bestD = c, d
			}
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// newFlags returns a flag set whose -h prints the usage line, what the
// command does, and its flags.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s %s\n\n", prog, usage)
		fs.PrintDefaults()
	}
	return fs
}

// wantArgs checks a command's positional arguments against names, in
// order ("KEY?" is optional). When they do not fit, it prints the usage and
// returns what is wrong: the first missing one, or how many were given.
func wantArgs(fs *flag.FlagSet, cmd string, got []string, names ...string) error {
	required := 0
	for _, n := range names {
		if !strings.HasSuffix(n, "?") {
			required++
		}
	}
	if len(got) >= required && len(got) <= len(names) {
		return nil
	}
	fs.Usage()
	if len(got) < required {
		return usageError("%s: missing %s", cmd, strings.TrimSuffix(names[len(got)], "?"))
	}
	spelled := make([]string, len(names))
	for i, n := range names {
		spelled[i] = strings.TrimSuffix(n, "?")
		if n != spelled[i] {
			spelled[i] = "[" + spelled[i] + "]"
		}
	}
	return usageError("%s takes %s, got %d arguments: %q", cmd, strings.Join(spelled, " "), len(got), got)
}

// usageError reports what is wrong with a command line; main exits 2.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, args...)...)
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
