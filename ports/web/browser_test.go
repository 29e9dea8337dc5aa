package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPageInChromium opens the page of a `dev` product (the example
// product's binary, built from ../../examples/inventory, on kfake over TCP, the embedded registry
// and a real redis-server) in Debian's Chromium, driven by
// browsertest/ui.mjs with playwright-core: the auditor signs in, finds
// entity 106, the chart must draw one rectangle per version `meshlet
// history` lists, every position of the as-of sliders must show the row
// `meshlet asof` gives, and the consumer must see no chart. axe-core and a
// keyboard walk check the page's own controls. One malformed CDC event is
// fed so the product card has a dead letter to show.
//
// Screenshots go to $MESHLET_ARTIFACTS/ui when that is set (make test sets
// it to artifacts/, which git ignores), else to the test's artifact
// directory; the test logs where.
func TestPageInChromium(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("the browser test needs Chromium at %s: apt-get install -y chromium (.ci/run installs it)", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("the browser test needs Node.js: apt-get install -y nodejs npm")
	}
	if _, err := os.Stat("browsertest/node_modules/playwright-core"); err != nil {
		t.Fatal("the browser test needs its npm packages: make ui-deps (npm ci --prefix ports/web/browsertest)")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("the browser test needs redis-server: apt-get install -y redis-server")
	}
	shots := t.ArtifactDir()
	if dir := os.Getenv("MESHLET_ARTIFACTS"); dir != "" {
		shots = filepath.Join(dir, "ui")
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := filepath.Join(t.TempDir(), "inventory")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../examples/inventory").CombinedOutput(); err != nil {
		t.Fatalf("build the example product: %v\n%s", err, out)
	}
	data := t.TempDir()
	dev := startDev(t, ctx, bin, data)

	// A record no decoder can read: the runtime dead-letters it, and the
	// product card must show it with its class and origin.
	cl, err := kgo.NewClient(kgo.SeedBrokers(dev.kafka))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "dbserver1.inventory.products", Key: []byte(`{"id":999}`), Value: []byte("{not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, ctx, "the dead letter to be committed", func() (bool, error) {
		var a struct {
			DeadLetters []struct{ Class string } `json:"dead_letters"`
		}
		err := getJSON(ctx, dev.url+"/v1/deadletters", "dev-auditor", &a)
		return len(a.DeadLetters) > 0, err
	})

	out, err := exec.CommandContext(ctx, bin, "history", data, "106", "--json").Output()
	if err != nil {
		t.Fatalf("meshlet history: %v", err)
	}
	var hist struct{ Versions []json.RawMessage }
	if err := json.Unmarshal(out, &hist); err != nil || len(hist.Versions) == 0 {
		t.Fatalf("meshlet history 106: %v\n%s", err, out)
	}

	script := exec.CommandContext(ctx, node, "ui.mjs")
	script.Dir = "browsertest"
	script.Env = append(os.Environ(),
		"MESHLET_URL="+dev.url, "MESHLET_SCREENSHOTS="+shots, "MESHLET_ENTITY=106",
		fmt.Sprintf("MESHLET_HISTORY_VERSIONS=%d", len(hist.Versions)),
		"MESHLET_AUDITOR_TOKEN=dev-auditor", "MESHLET_CONSUMER_TOKEN=dev-consumer",
		"MESHLET_BIN="+bin, "MESHLET_DATA="+data, "CHROMIUM="+chromium)
	var stderr strings.Builder
	script.Stderr = &stderr
	res, err := script.Output()
	var r struct {
		OK          bool
		Error       string
		Screenshots []string
		Checks      []string
		Asof        struct{ Compared, Absent int }
		TabStops    int
	}
	if jerr := json.Unmarshal(lastLine(res), &r); jerr != nil {
		t.Fatalf("ui.mjs: %v (%v)\nstdout: %s\nstderr: %s", err, jerr, res, stderr.String())
	}
	if err != nil || !r.OK {
		t.Fatalf("ui.mjs: %s\n(after %d checks passed; screenshots so far: %v)\nstderr: %s", r.Error, len(r.Checks)-1, r.Screenshots, stderr.String())
	}
	t.Logf("%d checks passed; %d as-of positions matched meshlet asof (%d with nothing believed); %d tab stops", len(r.Checks), r.Asof.Compared+r.Asof.Absent, r.Asof.Absent, r.TabStops)
	for _, s := range r.Screenshots {
		t.Logf("screenshot %s", s)
	}
}

type devProduct struct{ url, kafka string }

// startDev runs `meshlet dev` until the test ends and returns its
// addresses once it has processed the recorded CDC and serves.
func startDev(t *testing.T, ctx context.Context, bin, data string) devProduct {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--data", data, "--http-port", "0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
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
	var d devProduct
	var seen []string
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("meshlet dev did not start serving: %v\n%s\n%s", ctx.Err(), strings.Join(seen, "\n"), logs.String())
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("meshlet dev exited before serving:\n%s\n%s", strings.Join(seen, "\n"), logs.String())
			}
			seen = append(seen, line)
			f := strings.Fields(line)
			switch {
			case len(f) >= 2 && f[0] == "kafka":
				d.kafka = f[1]
			case len(f) >= 2 && f[0] == "manage":
				d.url = f[1]
			case strings.HasPrefix(line, "serving:"):
				if d.url == "" || d.kafka == "" {
					t.Fatalf("meshlet dev printed no kafka or manage address:\n%s", strings.Join(seen, "\n"))
				}
				go func() {
					for range lines {
					}
				}()
				return d
			}
		}
	}
}

func getJSON(ctx context.Context, url, token string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitFor retries cond every 100ms until it holds or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %v)", what, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func lastLine(b []byte) []byte {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return []byte(lines[len(lines)-1])
}
