package hygiene

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The repository itself tracks nothing compiled and nothing large without a
// reason. This is the check `make test` runs.
func TestRepositoryIsClean(t *testing.T) {
	findings, err := CheckRepo(".")
	if err != nil {
		t.Fatalf("cannot list tracked files (the check needs a git checkout): %v", err)
	}
	for _, f := range findings {
		t.Error(f)
	}
}

// elfHead is the start of this test's own binary: a real compiled file.
func elfHead(t *testing.T) []byte {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	return b[:8192]
}

func TestCheckFindsBinariesAndUnexplainedLargeFiles(t *testing.T) {
	root := t.TempDir()
	big := bytes.Repeat([]byte("constructed filler line\n"), MaxSize/24+100)
	files := map[string][]byte{
		"cmd/tool/tool":       elfHead(t),
		"lib.a":               []byte("!<arch>\nmore"),
		"data/big.json":       big,
		"data/kept.json":      big,
		"data/kept.json.why":  []byte("the reference schema, vendored with its NOTICE\n"),
		"data/empty.json":     big,
		"data/empty.json.why": []byte("  \n"),
		"README.md":           []byte("# fine\n"),
		"small.txt":           []byte("MZ but not a PE file"),
	}
	var paths []string
	for p, b := range files {
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	if err := os.Symlink(filepath.Join(root, "README.md"), filepath.Join(root, "node_modules")); err != nil {
		t.Fatal(err)
	}
	paths = append(paths, "node_modules")
	slices.Sort(paths)
	findings, err := Check(root, paths)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range findings {
		got = append(got, f.Path)
	}
	want := []string{"cmd/tool/tool", "data/big.json", "data/empty.json", "lib.a", "node_modules"}
	if !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v", findings, want)
	}
	if !strings.Contains(findings[0].Reason, "git rm --cached cmd/tool/tool") {
		t.Errorf("a binary's finding should say how to fix it: %s", findings[0])
	}
	if !strings.Contains(findings[1].Reason, "data/big.json.why") {
		t.Errorf("a large file's finding should name the reason file: %s", findings[1])
	}
}

// The check as `make test` runs it fails once a binary is committed.
func TestCheckRepoFailsWhenABinaryIsAdded(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatal("git is needed: apt-get install -y git")
	}
	dir := t.TempDir()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	run("init", "-q")
	os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n"), 0o644)
	run("add", ".")
	if f, err := CheckRepo(dir); err != nil || len(f) != 0 {
		t.Fatalf("clean repo: findings %v, err %v", f, err)
	}
	os.WriteFile(filepath.Join(dir, "app"), elfHead(t), 0o755)
	run("add", "app")
	f, err := CheckRepo(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f) != 1 || f[0].Path != "app" {
		t.Fatalf("after adding a binary: findings %v, want one for app", f)
	}
}
