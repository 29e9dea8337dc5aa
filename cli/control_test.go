package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestControlCommands drives a serving `meshlet dev` through its management
// port the way an operator would: pause and resume as the owner, a forget
// refused for the owner's role, and one refused by the product, which has no
// pii fields.
func TestControlCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dev := exec.CommandContext(ctx, inventoryBin, "dev", "--data", t.TempDir())
	stdout, err := dev.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	dev.Stderr = io.Discard
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		dev.Process.Signal(syscall.SIGTERM)
		dev.Wait()
	}()
	manage := regexp.MustCompile(`^manage\s+(http://\S+)`)
	var base string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if m := manage.FindStringSubmatch(sc.Text()); m != nil {
			base = m[1]
		}
		if strings.HasPrefix(sc.Text(), "serving:") {
			break
		}
	}
	if base == "" {
		t.Fatal("meshlet dev never printed its management port and served")
	}
	go io.Copy(io.Discard, stdout)

	// The recorded capture is years old; the product is caught up on it, so
	// dev is healthy: every SLO met, latency measured from arrival.
	var status struct {
		Healthy bool `json:"healthy"`
		Ports   []struct {
			SLOs []struct {
				Name     string `json:"name"`
				OK       bool   `json:"ok"`
				Measured string `json:"measured"`
				Reason   string `json:"reason"`
			} `json:"slos"`
		} `json:"ports"`
	}
	resp, err := http.Get(base + "/v1/status")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&status)
	resp.Body.Close()
	if err != nil || !status.Healthy || len(status.Ports) == 0 || len(status.Ports[0].SLOs) == 0 {
		t.Errorf("dev /v1/status: healthy %v, %+v (%v)", status.Healthy, status, err)
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"control", "pause", "--url", base, "--token", "dev-owner"}, 0, `replica 0: applied`},
		{[]string{"control", "resume", "--url", base, "--token", "dev-owner"}, 0, `replica 0: applied`},
		{[]string{"control", "pause", "--url", base}, 1, `refused: no valid token`},
		{[]string{"forget", "106", "--url", base, "--token", "dev-owner"}, 1, `needs the role governance; the token has owner`},
		{[]string{"forget", "106", "--url", base, "--token", "dev-governance"}, 1, `has no pii fields`},
		{[]string{"control", "reprocess", "dbserver1.inventory.products", "0", "0", "--url", base, "--token", "dev-owner"}, 0, `replica 0: applied`},
	} {
		out, errOut, code := meshlet(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("meshlet %s: exit %d, want %d with %q\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.code, c.want, out, errOut)
		}
	}
}
