package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/meshlet/meshlet/ports/kafka"
	"github.com/meshlet/meshlet/schemas"
)

// TestInitDemoRunsAsAUserWould is what a new user does, in a fresh
// directory, with nothing between the steps: meshlet init demo; go test
// ./...; go run . lint; go run . dev --once; then meshlet stack in another
// process and go run . run against it, as against a real cluster, with the
// recording fed into its input topic. The output topic must then hold every
// record the recording makes, decoded through the stack's registry.
func TestInitDemoRunsAsAUserWould(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("go is not on PATH; this test runs a real go subprocess")
	}
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	out, errOut, code := runIn(t, work, []string{"GOFLAGS=-mod=mod"}, "init", "demo")
	if code != 0 {
		t.Fatalf("meshlet init: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("meshlet init demo:\n%s", out)
	for _, want := range []string{"created " + filepath.Join(work, "demo"), "main.go", "handler.go", "item_gen.go", "testdata/items.jsonl",
		"the checkout this meshlet was built from: " + repo, "ran go mod tidy"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	demo := filepath.Join(work, "demo")
	gomod, err := os.ReadFile(filepath.Join(demo, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(gomod), "replace github.com/meshlet/meshlet => "+repo) {
		t.Errorf("go.mod does not replace meshlet with the checkout:\n%s", gomod)
	}
	goIn := func(args ...string) (string, error) {
		cmd := exec.Command("go", args...)
		cmd.Dir = demo
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		b, err := cmd.CombinedOutput()
		return string(b), err
	}
	if got, err := goIn("test", "./..."); err != nil || !strings.Contains(got, "ok  \tdemo") {
		t.Fatalf("go test ./... in the new product: %v\n%s", err, got)
	}
	if got, err := goIn("run", ".", "lint"); err != nil || !strings.Contains(got, "compat items") {
		t.Fatalf("go run . lint: %v\n%s", err, got)
	}
	got, err := goIn("run", ".", "dev", "--once")
	if err != nil {
		t.Fatalf("go run . dev --once: %v\n%s", err, got)
	}
	for _, want := range []string{"fed 5 recorded events from testdata/items.jsonl into dbserver1.demo.items",
		"events in          5", "records out        5 on demo.items.v1", "chain              verified"} {
		if !strings.Contains(got, want) {
			t.Errorf("dev --once summary lacks %q:\n%s", want, got)
		}
	}

	// meshlet stack in another process; the product's run against it.
	stack := exec.Command(meshletBin, "stack", "--redis", "off")
	stackOut, err := stack.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := stack.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stack.Process.Signal(os.Interrupt); stack.Wait() }()
	env := map[string]string{}
	sc := bufio.NewScanner(stackOut)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(strings.TrimPrefix(line, "export "), "="); ok && strings.HasPrefix(line, "export ") {
			env[k] = v
		}
		if strings.HasPrefix(line, "serving") {
			break
		}
	}
	go io.Copy(io.Discard, stackOut)
	if env["MESHLET_BROKERS"] == "" || env["MESHLET_REGISTRY"] == "" {
		t.Fatalf("meshlet stack printed no MESHLET_BROKERS/MESHLET_REGISTRY: %v", env)
	}
	brokers := strings.Split(env["MESHLET_BROKERS"], ",")

	// The test plays the CDC connector: the recording into the input topic.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cl, map[string]int32{"dbserver1.demo.items": 3}); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(demo, "testdata", "items.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := kafka.RecordedCDC(bytes.NewReader(data), "items.jsonl", "dbserver1.demo.items", []string{"id"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	run := exec.Command("go", "run", ".", "run", "--data", filepath.Join(work, "run-data"))
	run.Dir = demo
	run.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "MESHLET_BROKERS="+env["MESHLET_BROKERS"], "MESHLET_REGISTRY="+env["MESHLET_REGISTRY"])
	var runOut bytes.Buffer
	run.Stdout, run.Stderr = &runOut, &runOut
	run.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so a failed test kills go run and the product together
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			syscall.Kill(-run.Process.Pid, syscall.SIGKILL)
			run.Wait()
		}
	}()

	// Every record of the recording, committed on the output topic.
	reg, err := schemas.NewRegistry([]string{env["MESHLET_REGISTRY"]})
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("demo.items.v1"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	type version struct {
		key     string
		name    string
		deleted bool
	}
	var versions []version
	for len(versions) < len(recs) {
		fetches := consumer.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("output topic holds %d of %d records: %v\nrun:\n%s", len(versions), len(recs), ctx.Err(), runOut.String())
		}
		fetches.EachRecord(func(r *kgo.Record) {
			_, fields, err := reg.DecodeMap(ctx, r.Value)
			if err != nil {
				t.Fatalf("decode %s/%d@%d: %v", r.Topic, r.Partition, r.Offset, err)
			}
			versions = append(versions, version{string(r.Key), fields["name"].(string), fields["_deleted"].(bool)})
		})
	}
	slices.SortStableFunc(versions, func(a, b version) int { return strings.Compare(a.key, b.key) })
	want := []version{{"1", "anvil", false}, {"1", "anvil", false}, {"2", "hammer", false}, {"3", "rope", false}, {"3", "rope", true}}
	if !slices.Equal(versions, want) {
		t.Errorf("output topic: %+v, want %+v", versions, want)
	}
	// SIGTERM to the product, as a supervisor would stop it; go run (its
	// parent) then exits with the product's status.
	pid := childOf(t, run.Process.Pid)
	syscall.Kill(pid, syscall.SIGTERM)
	err = run.Wait()
	stopped = true
	if err != nil || !strings.Contains(runOut.String(), "5 events in, 5 records out, 0 dead letters") {
		t.Errorf("run after SIGTERM: %v\n%s", err, runOut.String())
	}
}

// TestInitFindsTheCheckout: MESHLET_SRC stands in for --meshlet-dir; with
// neither, and nothing above the working directory or the binary, init
// says what to do.
func TestInitFindsTheCheckout(t *testing.T) {
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	// GOFLAGS=-mod=mod lets tidy fill go.sum; PATH without go skips it, as
	// on a machine without Go, and init says so.
	out, errOut, code := runIn(t, work, []string{"MESHLET_SRC=" + repo, "PATH=" + t.TempDir()}, "init", "github.com/acme/order-events", "--dir", "orders")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "package orderevents") || !strings.Contains(out, "go is not on PATH: run `go mod tidy`") {
		t.Errorf("output:\n%s", out)
	}
	for _, f := range []string{"handler.go", "main.go", "handler_test.go", "testdata/README.md"} {
		if _, err := os.Stat(filepath.Join(work, "orders", f)); err != nil {
			t.Error(err)
		}
	}

	// With neither, from a directory nowhere near a checkout, init uses the
	// checkout the meshlet binary was built from, and says so.
	out, errOut, code = runIn(t, work, []string{"MESHLET_SRC=", "PATH=" + t.TempDir()}, "init", "demo")
	if code != 0 || !strings.Contains(out, "replaces github.com/meshlet/meshlet with the checkout this meshlet was built from: "+repo) {
		t.Errorf("no checkout given: exit %d\n%s%s", code, out, errOut)
	}
}

// childOf is the one child process of pid (any of its threads may have
// started it).
func childOf(t *testing.T, pid int) int {
	t.Helper()
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		if fields := strings.Fields(string(b)); len(fields) > 0 {
			child, err := strconv.Atoi(fields[0])
			if err == nil {
				return child
			}
		}
	}
	t.Fatalf("no child process under pid %d (go run)", pid)
	return 0
}
