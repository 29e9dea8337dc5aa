// Package interop proves that a client which is not Meshlet's code can read
// Meshlet's output ports.
//
// Meshlet publishes Avro events in the Confluent wire format (magic byte 0, a
// 4-byte big-endian schema id, then the Avro body) with UTF-8 string keys,
// registers the writer schemas in a Confluent-compatible schema registry and
// produces transactionally. ConsumeKafkaJS reads such a topic with KafkaJS and
// @kafkajs/confluent-schema-registry (node/consume.mjs), the way a JavaScript
// consumer of a data product would: fresh consumer group, from the beginning,
// read_committed, every value decoded through the registry.
//
// The Node dependencies are pinned in node/package-lock.json and installed by
// `make interop-deps` (npm ci --prefix internal/interop/node). The package
// is a non-test file so that tests of other packages can call it.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

// NodeDirEnv overrides where the Node project (package.json, consume.mjs,
// node_modules) lives. By default it is found next to this source file, or
// under internal/interop/node of the enclosing module.
const NodeDirEnv = "MESHLET_INTEROP_NODE_DIR"

// fixHint is appended to every error that a dependency install resolves.
const fixHint = "run make interop-deps (npm ci --prefix internal/interop/node --no-audit --no-fund)"

// defaultTimeout bounds a consume whose context has no deadline.
const defaultTimeout = 30 * time.Second

// minNodeMajor is the oldest Node release consume.mjs supports
// (node:util parseArgs, Buffer BigInt readers).
const minNodeMajor = 18

// requiredModules are the packages consume.mjs imports.
var requiredModules = []string{"kafkajs", "@kafkajs/confluent-schema-registry", "avsc"}

// Event is one record as the third-party consumer decoded it.
//
// Value holds the Avro value as JSON types with exact numbers:
//   - int and long (including timestamp-millis/-micros, printed as the raw
//     integer, no logical-type conversion) are int64, exact over the whole
//     64-bit range (the script decodes longs as BigInt);
//   - float and double are float64; NaN and ±Inf are the strings "NaN",
//     "Infinity" and "-Infinity";
//   - boolean is bool, string and enum are string, bytes and fixed are
//     base64 strings, array is []any, map and record are map[string]any;
//   - a union is nil for its null branch; a [null, T] union is the T value
//     itself; any other union is map[string]any{branchName: value}.
type Event struct {
	Partition int32
	Offset    int64
	Key       string // UTF-8 record key; empty when the record had no key
	SchemaID  int    // schema id from the Confluent wire-format header
	Value     map[string]any
}

// NodeDir returns the directory of the Node project.
func NodeDir() (string, error) {
	if d := os.Getenv(NodeDirEnv); d != "" {
		return d, nil
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		d := filepath.Join(filepath.Dir(file), "node")
		if fileExists(filepath.Join(d, "consume.mjs")) {
			return d, nil
		}
	}
	// Built with -trimpath or moved: look for the module root upwards.
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("interop: locate node project: %w", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		d := filepath.Join(dir, "internal", "interop", "node")
		if fileExists(filepath.Join(dir, "go.mod")) && fileExists(filepath.Join(d, "consume.mjs")) {
			return d, nil
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return "", fmt.Errorf("interop: cannot find internal/interop/node/consume.mjs from %s; set %s", wd, NodeDirEnv)
}

// NodeAvailable reports whether a usable node is on PATH and the pinned
// dependencies are installed. The error says how to fix it.
func NodeAvailable() error {
	nodePath, err := exec.LookPath("node")
	if err != nil {
		return fmt.Errorf("interop: node (>= %d) is not on PATH: install Node.js, then %s", minNodeMajor, fixHint)
	}
	out, err := exec.Command(nodePath, "--version").Output()
	if err != nil {
		return fmt.Errorf("interop: %s --version: %w", nodePath, err)
	}
	ver := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	major, err := strconv.Atoi(strings.SplitN(ver, ".", 2)[0])
	if err != nil || major < minNodeMajor {
		return fmt.Errorf("interop: node %q at %s is too old, need >= %d", strings.TrimSpace(string(out)), nodePath, minNodeMajor)
	}
	dir, err := NodeDir()
	if err != nil {
		return err
	}
	for _, m := range requiredModules {
		if !fileExists(filepath.Join(dir, "node_modules", filepath.FromSlash(m), "package.json")) {
			return fmt.Errorf("interop: node module %s is not installed in %s: %s", m, dir, fixHint)
		}
	}
	return nil
}

// ConsumeKafkaJS reads count events from topic with KafkaJS, decoding every
// value through the schema registry at registryURL, and returns them in the
// order they were received (per-partition offset order). It fails when
// fewer than count events arrive before ctx's deadline (30s when ctx has
// none), or when any value cannot be decoded.
func ConsumeKafkaJS(ctx context.Context, brokers, topic, registryURL string, count int) ([]Event, error) {
	if count < 0 {
		return nil, fmt.Errorf("interop: negative count %d", count)
	}
	if err := NodeAvailable(); err != nil {
		return nil, err
	}
	dir, err := NodeDir()
	if err != nil {
		return nil, err
	}

	timeout := defaultTimeout
	if dl, ok := ctx.Deadline(); ok {
		// Leave the script time to report its own timeout before ctx kills
		// it: its clock starts only once Node has loaded it, which takes
		// seconds on a loaded machine.
		left := time.Until(dl)
		timeout = left - max(time.Second, left/3)
		if timeout < time.Second {
			return nil, fmt.Errorf("interop: context deadline too close to consume %d events", count)
		}
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultTimeout+5*time.Second)
		defer cancel()
	}

	cmd := exec.CommandContext(ctx, "node", filepath.Join(dir, "consume.mjs"),
		"--brokers", brokers,
		"--topic", topic,
		"--registry", registryURL,
		"--count", strconv.Itoa(count),
		"--timeout-ms", strconv.FormatInt(timeout.Milliseconds(), 10),
	)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	stderr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("interop: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("interop: start node: %w", err)
	}

	events := make([]Event, 0, count)
	var parseErr error
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		ev, err := parseEvent(line)
		if err != nil && parseErr == nil {
			parseErr = fmt.Errorf("interop: event line %d: %w: %s", len(events)+1, err, truncate(line, 512))
		}
		if err == nil {
			events = append(events, ev)
		}
	}
	scanErr := sc.Err()
	waitErr := cmd.Wait()

	switch {
	case waitErr != nil:
		if ctx.Err() != nil {
			waitErr = fmt.Errorf("%w (%w)", waitErr, ctx.Err())
		}
		return events, fmt.Errorf("interop: kafkajs consumer failed after %d of %d events: %w\n%s", len(events), count, waitErr, stderr.String())
	case scanErr != nil:
		return events, fmt.Errorf("interop: read kafkajs output: %w", scanErr)
	case parseErr != nil:
		return events, parseErr
	case len(events) != count:
		return events, fmt.Errorf("interop: kafkajs consumer exited cleanly with %d events, want %d\n%s", len(events), count, stderr.String())
	}
	return events, nil
}

// wireEvent is one line printed by consume.mjs.
type wireEvent struct {
	Partition *int32          `json:"partition"`
	Offset    *string         `json:"offset"`
	Key       *string         `json:"key"`
	SchemaID  *int            `json:"schemaId"`
	Value     json.RawMessage `json:"value"`
}

func parseEvent(line []byte) (Event, error) {
	var w wireEvent
	if err := json.Unmarshal(line, &w); err != nil {
		return Event{}, err
	}
	if w.Partition == nil || w.Offset == nil || w.SchemaID == nil || w.Value == nil {
		return Event{}, errors.New("missing partition, offset, schemaId or value")
	}
	off, err := strconv.ParseInt(*w.Offset, 10, 64)
	if err != nil {
		return Event{}, fmt.Errorf("offset: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(w.Value))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return Event{}, fmt.Errorf("value: %w", err)
	}
	val, err := exactNumbers(raw)
	if err != nil {
		return Event{}, fmt.Errorf("value: %w", err)
	}
	m, ok := val.(map[string]any)
	if !ok {
		return Event{}, fmt.Errorf("value is %T, want a record", val)
	}
	ev := Event{Partition: *w.Partition, Offset: off, SchemaID: *w.SchemaID, Value: m}
	if w.Key != nil {
		ev.Key = *w.Key
	}
	return ev, nil
}

// exactNumbers turns json.Number into int64 (no fraction or exponent: Avro
// int and long) or float64 (consume.mjs always prints float and double with a
// '.' or an exponent), recursively.
func exactNumbers(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s := x.String()
		if strings.ContainsAny(s, ".eE") {
			return strconv.ParseFloat(s, 64)
		}
		return strconv.ParseInt(s, 10, 64)
	case map[string]any:
		for k, e := range x {
			c, err := exactNumbers(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			x[k] = c
		}
		return x, nil
	case []any:
		for i, e := range x {
			c, err := exactNumbers(e)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			x[i] = c
		}
		return x, nil
	default:
		return v, nil
	}
}

// tailBuffer keeps the last max bytes written to it (the script's stderr).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(string(b.buf))
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
