package lineage

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

const (
	childEnv    = "MESHLET_LINEAGE_CHILD"
	childStates = "MESHLET_LINEAGE_STATE_DIR"
	childEvents = "MESHLET_LINEAGE_EVENTS"
	childReady  = "lineage-child-run="
)

// TestLineageChild is the product process of TestKilledProcessRunIsFailed.
// It starts a run, says which, and waits to be killed.
func TestLineageChild(t *testing.T) {
	if os.Getenv(childEnv) != "1" {
		t.Skip("runs only as the child of TestKilledProcessRunIsFailed")
	}
	r, err := Start(context.Background(), &FileTransport{Path: os.Getenv(childEvents)}, testJob(),
		WithStateDir(os.Getenv(childStates)))
	if err != nil {
		fmt.Println("start failed:", err)
		os.Exit(2)
	}
	fmt.Println(childReady + r.ID().String())
	select {} // until SIGKILL
}

// TestKilledProcessRunIsFailed kills a real process with SIGKILL while its
// run is open; the next Start fails that run, by its id, before its own START.
func TestKilledProcessRunIsFailed(t *testing.T) {
	if os.Getenv(childEnv) == "1" {
		t.Skip("child")
	}
	v := loadSpec(t)
	dir := t.TempDir()
	events := filepath.Join(dir, "child-events.jsonl")
	stateDir := filepath.Join(dir, "state")

	// The timeout only keeps a broken child from hanging the suite.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestLineageChild$")
	cmd.Env = append(os.Environ(), childEnv+"=1", childStates+"="+stateDir, childEvents+"="+events)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var childRun string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if id, ok := strings.CutPrefix(sc.Text(), childReady); ok {
			childRun = id
			break
		}
	}
	if childRun == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the child never started its run; stderr:\n%s", stderr.String())
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no deferred call, no Stop
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if st := readStateFile(t, stateDir); st.RunID != childRun {
		t.Fatalf("state names %s, the child ran %s", st.RunID, childRun)
	}

	tr := &recorder{}
	next := startTestRun(t, tr, WithStateDir(stateDir))
	evs := tr.events(t)
	if len(evs) != 2 || evs[0].EventType != EventFail || evs[1].EventType != EventStart {
		t.Fatalf("events %v, want FAIL then START", tr.types(t))
	}
	assertLeftoverFail(t, evs[0], uuid.MustParse(childRun))
	if evs[1].Run.RunID != next.ID().String() || next.ID().String() == childRun {
		t.Errorf("START of %s; new run %s; killed run %s", evs[1].Run.RunID, next.ID(), childRun)
	}
	for i := range evs {
		if err := v.validate(tr.raw(i)); err != nil {
			t.Errorf("event %d: %v", i, err)
		}
	}
	// The killed run had sent its START: the backend saw it open, now closed.
	childEvs, err := os.ReadFile(events)
	if err != nil || !strings.Contains(string(childEvs), `"eventType":"START"`) || !strings.Contains(string(childEvs), childRun) {
		t.Errorf("the child's START is missing from %s: %v", events, err)
	}
}
