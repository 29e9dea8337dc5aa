package auditlog

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

const crashDirEnv = "AUDITLOG_CRASH_DIR"

// crashSegmentSize is a few batches, so kills also land on segment rolls.
const crashSegmentSize = 1 << 20

// TestHelperProcess is the child of TestCrash: it appends batches until it is
// killed, printing each batch's last seq once Append has returned (and so has
// fsynced).
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("child process of TestCrash")
	}
	l, err := Open(dir, SegmentSize(crashSegmentSize), SyncEachAppend(true))
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(time.Now().UnixNano())))
	for {
		seq, _, _ := l.Tail()
		// Big batches span many pages, so a kill can land inside the write.
		n := 1 + rng.IntN(60)
		if rng.IntN(4) == 0 {
			n = 1 + rng.IntN(2000)
		}
		b := entriesFor(seq+1, n)
		if err := l.Append(b); err != nil {
			fmt.Fprintln(os.Stderr, "append:", err)
			os.Exit(3)
		}
		fmt.Fprintf(os.Stdout, "%d\n", b[len(b)-1].Seq)
	}
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 3))
	var durable uint64
	recovered := 0
	for round := range 8 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(out)
		readSeq := func() bool {
			line, err := r.ReadString('\n')
			if err != nil {
				return false // EOF, or a line the kill cut short: not a report
			}
			seq, perr := strconv.ParseUint(strings.TrimSpace(line), 10, 64)
			if perr != nil {
				t.Fatalf("child printed %q", line)
			}
			durable = max(durable, seq)
			return true
		}
		// Let it make some progress, then kill it wherever it happens to be.
		for range 1 + rng.IntN(15) {
			if !readSeq() {
				cmd.Wait()
				t.Fatalf("round %d: child stopped early: %s", round, stderr.String())
			}
		}
		if d := rng.IntN(3000); d > 0 {
			time.Sleep(time.Duration(d) * time.Microsecond)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		for readSeq() {
		}
		io.Copy(io.Discard, out)
		cmd.Wait()

		l, err := Open(dir, SegmentSize(crashSegmentSize))
		if err != nil {
			t.Fatalf("round %d: Open after kill: %v", round, err)
		}
		if r := l.Recovery(); r.TruncatedBytes > 0 {
			recovered++
			t.Logf("round %d: cut %d torn bytes from %s", round, r.TruncatedBytes, r.Segment)
		}
		seq, _, _ := l.Tail()
		if seq < durable {
			t.Fatalf("round %d: tail %d, but the child reported %d durable", round, seq, durable)
		}
		next := uint64(1)
		err = l.Scan(1, func(e *Entry) error {
			want := entryFor(next)
			if !sameEntry(e, &want) {
				return fmt.Errorf("entry %d differs", next)
			}
			next++
			return nil
		})
		if err != nil || next != seq+1 {
			t.Fatalf("round %d: scan: %v (read up to %d, tail %d)", round, err, next-1, seq)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(dir)
		if err != nil || rep.TornTail || rep.LastSeq != seq {
			t.Fatalf("round %d: Verify %+v %v", round, rep, err)
		}
		t.Logf("round %d: %d entries in %d segments (child reported %d)", round, seq, rep.Segments, durable)
	}
	t.Logf("%d of 8 kills left a torn tail", recovered)
}
