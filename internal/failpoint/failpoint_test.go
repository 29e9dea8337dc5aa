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

// TestArmFile runs the child with a point at probability 1 that must not
// fire until the arming file exists, and then must.
func TestArmFile(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "arm" {
		for range 100 {
			if Fire("test/point") {
				os.Exit(3) // fired while the file is missing
			}
		}
		if err := os.WriteFile(os.Getenv(ArmEnvVar), nil, 0o600); err != nil {
			os.Exit(4)
		}
		Hit("test/point")
		os.Exit(0) // reached only if Hit did not kill
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestArmFile$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=arm", EnvVar+"=test/point=1", ArmEnvVar+"="+t.TempDir()+"/arm")
	err := cmd.Run()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.String() != "signal: killed" {
		t.Fatalf("child ended with %v, want killed by SIGKILL once armed (exit 3: fired before; 0: never fired)", err)
	}
}
