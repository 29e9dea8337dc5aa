// Command meshlet runs and audits Meshlet data products. Run it without
// arguments for the list of commands.
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
	"slices"
	"strings"
	"syscall"
)

// command is one `meshlet NAME ...` command. Each lives in its own file and
// registers itself from init, so commands are added without touching main.
type command struct {
	name     string // as typed; "audit verify" for a two-word command
	synopsis string // one line for the command list
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("meshlet: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

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
		printUsage(stderr)
		return errUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		printUsage(stdout)
		return nil
	}
	// Two-word commands ("audit verify") first, then one-word ones.
	if len(args) > 1 {
		if c, ok := commands[args[0]+" "+args[1]]; ok {
			return c.run(ctx, args[2:], stdout, stderr)
		}
	}
	if c, ok := commands[args[0]]; ok {
		return c.run(ctx, args[1:], stdout, stderr)
	}
	if group := subcommands(args[0]); len(group) > 0 {
		fmt.Fprintf(stderr, "Usage: meshlet %s\n", strings.Join(group, "\n       meshlet "))
		return errUsage
	}
	fmt.Fprintf(stderr, "meshlet: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return errUsage
}

// subcommands lists the commands that start with word ("audit" -> "audit verify").
func subcommands(word string) []string {
	var names []string
	for name, c := range commands {
		if strings.HasPrefix(name, word+" ") {
			names = append(names, name+" "+c.synopsis)
		}
	}
	slices.Sort(names)
	return names
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "meshlet runs data products on Kafka and lets auditors check them.\n\nUsage: meshlet COMMAND [flags]\n\nCommands:\n")
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(w, "  %-16s %s\n", name, commands[name].synopsis)
	}
	fmt.Fprint(w, "\nRun 'meshlet COMMAND -h' for a command's flags.\n")
}

// newFlags returns a flag set whose -h prints the usage line, what the
// command does, and its flags.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: meshlet %s\n\n", usage)
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
