package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tourLine is one command of the README, with what its comment promises.
type tourLine struct {
	section string
	cmd     string
	serve   bool   // "# keeps serving": started in the background until the test ends
	exit    int    // "# exit N → ...": the status it must end with
	want    string // "# → TEXT": what its output must contain
}

// readmeTour extracts the commands of the README's tour and of "Your own
// product": every line of their ```sh blocks. Other blocks (```console,
// ```go) are shown, not run.
func readmeTour(t *testing.T) []tourLine {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []tourLine
	section, inBlock, run := "", false, false
	for _, line := range strings.Split(string(b), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			section = strings.TrimPrefix(line, "## ")
		case strings.HasPrefix(line, "```") && !inBlock:
			inBlock = true
			run = strings.TrimPrefix(line, "```") == "sh" && (section == "A tour" || section == "Your own product")
		case strings.HasPrefix(line, "```"):
			inBlock = false
		case inBlock && run && strings.TrimSpace(line) != "" && !strings.HasPrefix(strings.TrimSpace(line), "#"):
			out = append(out, parseTourLine(t, section, line))
		}
	}
	return out
}

var tourComment = regexp.MustCompile(`\s+# ((?:→|exit \d+ →) .*|keeps serving)$`)

func parseTourLine(t *testing.T, section, line string) tourLine {
	l := tourLine{section: section, cmd: strings.TrimSpace(line)}
	m := tourComment.FindStringSubmatchIndex(line)
	if m == nil {
		return l
	}
	l.cmd = strings.TrimSpace(line[:m[0]])
	comment := line[m[2]:m[3]]
	switch {
	case comment == "keeps serving":
		l.serve = true
	case strings.HasPrefix(comment, "→ "):
		l.want = strings.TrimPrefix(comment, "→ ")
	case strings.HasPrefix(comment, "exit "):
		code, want, ok := strings.Cut(strings.TrimPrefix(comment, "exit "), " → ")
		n, err := strconv.Atoi(code)
		if !ok || err != nil {
			t.Fatalf("README: %q: want '# exit N → TEXT'", line)
		}
		l.exit, l.want = n, want
	}
	return l
}

// TestReadmeTour runs the README's tour and "Your own product" command by
// command, as a reader would paste them, and fails when one does not do
// what its comment says. The tour's fixed ports and /tmp paths become free
// ports and the test's own directory; `go run` of the generic tool and of
// the examples runs the binaries built from the same source for this
// package's tests (the product's own `go run .` stays as written).
func TestReadmeTour(t *testing.T) {
	lines := readmeTour(t)
	if len(lines) < 20 {
		t.Fatalf("found %d tour commands in README.md; the tour's ```sh blocks were not found", len(lines))
	}
	customersBin := filepath.Join(filepath.Dir(inventoryBin), "customers")
	if out, err := exec.Command("go", "build", "-o", customersBin, "../examples/customers").CombinedOutput(); err != nil {
		t.Fatalf("build examples/customers: %v\n%s", err, out)
	}
	tmp := t.TempDir()
	subst := strings.NewReplacer(
		"go run ./cmd/meshlet ", meshletBin+" ",
		"go run ./examples/inventory ", inventoryBin+" ",
		"go run ./examples/customers ", customersBin+" ",
		"/tmp/", tmp+"/",
	)
	ports := map[string]string{}
	for _, p := range []string{"8080", "8081", "6390", "9094"} {
		ports[p] = strconv.Itoa(freePort(t))
	}
	portRE := regexp.MustCompile(`\b(8080|8081|6390|9094)\b`)
	repo, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		cmd := portRE.ReplaceAllStringFunc(subst.Replace(l.cmd), func(p string) string { return ports[p] })
		if l.serve {
			serve(t, repo, cmd)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		c := exec.CommandContext(ctx, "bash", "-c", cmd)
		c.Dir = repo
		c.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
		out, err := c.CombinedOutput()
		cancel()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %s: %v", l.section, l.cmd, err)
		}
		if code != l.exit || !bytes.Contains(out, []byte(l.want)) {
			t.Fatalf("README (%s):\n  %s\nexit %d (want %d), output lacks %q:\n%s", l.section, l.cmd, code, l.exit, l.want, out)
		}
	}
}

// serve starts a tour command that keeps serving, waits until it serves
// (it prints "serving:"), and stops it with SIGINT when the test ends.
func serve(t *testing.T, dir, cmd string) {
	t.Helper()
	c := exec.Command("bash", "-c", "exec "+cmd)
	c.Dir = dir
	stdout, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	c.Stderr = &logs
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			c.Process.Kill()
			<-done
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		io.Copy(io.Discard, stdout)
	}()
	var seen []string
	deadline := time.After(3 * time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("%s exited before serving:\n%s\n%s", cmd, strings.Join(seen, "\n"), logs.String())
			}
			seen = append(seen, line)
			if strings.HasPrefix(line, "serving:") {
				go func() {
					for range lines {
					}
				}()
				return
			}
		case <-deadline:
			t.Fatalf("%s did not serve within 3 minutes:\n%s\n%s", cmd, strings.Join(seen, "\n"), logs.String())
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestReadmeTourParses(t *testing.T) {
	l := parseTourLine(t, "s", "meshlet x --y 1   # exit 1 → needs the role owner")
	if l.cmd != "meshlet x --y 1" || l.exit != 1 || l.want != "needs the role owner" {
		t.Fatalf("%+v", l)
	}
	l = parseTourLine(t, "s", "curl -s 'a#b'   # → \"healthy\": true")
	if l.cmd != "curl -s 'a#b'" || l.want != `"healthy": true` {
		t.Fatalf("%+v", l)
	}
	if l := parseTourLine(t, "s", "dev   # keeps serving"); !l.serve {
		t.Fatalf("%+v", l)
	}
}
