package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// profile runs Meshlet exactly-once once more with pprof on: a CPU profile
// over ProfileTime of the measured window and the allocation profile at its
// end, summarised with `go tool pprof -top`.
func (h *harness) profile(ctx context.Context, cr *ContenderResult) (*ProfileResult, error) {
	c, _ := contenderByID(cr.ID)
	s := h.newSpec(c, "profile", h.input)
	s.pprof = pprofAddr
	dir := filepath.Join(h.opts.WorkDir, "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cpuFile, allocFile := filepath.Join(dir, "meshlet-eos.cpu.pprof"), filepath.Join(dir, "meshlet-eos.allocs.pprof")
	// Long enough that the window outlasts the CPU profile.
	n := int(math.Min(cr.EventsPerSec*(h.opts.ProfileTime.Seconds()+3), float64(h.opts.Backlog)))
	h.logf("%s: profiling (%s of CPU, then allocations) over %d events", c.ID, h.opts.ProfileTime, n)

	cpuDone := make(chan error, 1)
	var allocErr error
	hk := &hooks{
		opened: func() {
			go func() {
				url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, int(h.opts.ProfileTime.Seconds()))
				cpuDone <- fetch(ctx, url, cpuFile)
			}()
		},
		beforeStop: func() {
			// The CPU profile must end before the product does.
			if allocErr = <-cpuDone; allocErr == nil {
				allocErr = fetch(ctx, "http://"+pprofAddr+"/debug/pprof/allocs", allocFile)
			}
		},
	}
	r, err := h.measure(ctx, s, n, 0, hk)
	if err != nil {
		return nil, err
	}
	if allocErr != nil {
		return nil, allocErr
	}
	bin := filepath.Join(h.opts.BinDir, "bench-product")
	pr := &ProfileResult{Run: r, CPUFile: cpuFile, AllocFile: allocFile}
	if pr.CPUTop, err = pprofTop(ctx, bin, cpuFile, "-top", "-nodecount=25"); err != nil {
		return nil, err
	}
	if pr.CPUCum, err = pprofTop(ctx, bin, cpuFile, "-top", "-cum", "-nodecount=40"); err != nil {
		return nil, err
	}
	if pr.AllocTop, err = pprofTop(ctx, bin, allocFile, "-top", "-nodecount=20", "-sample_index=alloc_space"); err != nil {
		return nil, err
	}
	h.logf("%s: profiles in %s", c.ID, dir)
	return pr, nil
}

func fetch(ctx context.Context, url, file string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pprofTop is `go tool pprof` text output without its header lines about
// files and build ids.
func pprofTop(ctx context.Context, bin, file string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", append(append([]string{"tool", "pprof"}, args...), bin, file)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w: %s", strings.Join(args, " "), err, errb.String())
	}
	var keep []string
	for line := range strings.SplitSeq(out.String(), "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		keep = append(keep, line)
	}
	return strings.TrimSpace(strings.Join(keep, "\n")), nil
}
