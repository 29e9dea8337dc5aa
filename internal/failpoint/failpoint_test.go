package failpoint

import (
	"os"
	"os/exec"
	"testing"
)

func TestDisabledNeverFires(t *testing.T) {
	if enabled {
		t.Skip("MESHLET_FAILPOINTS is set in this environment")
	}
	for range 1000 {
		if Fire("runtime/after-append") {
			t.Fatal("fired while disabled")
		}
	}
}

// TestHitKillsTheProcess re-runs this test binary with a point armed at
// probability 1 and checks the child died by SIGKILL at that point.
func TestHitKillsTheProcess(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		Hit("test/point")
		os.Exit(0) // reached only if Hit did not kill
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHitKillsTheProcess$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", EnvVar+"=test/point=1")
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != -1 || ee.String() != "signal: killed" {
		t.Fatalf("child ended with %v, want killed by SIGKILL", err)
	}
}
