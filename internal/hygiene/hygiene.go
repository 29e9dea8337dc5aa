// Package hygiene checks what the repository tracks: no compiled binary, no symbolic link,
// and no file over MaxSize unless a reason for it is recorded next to it
// (a file of the same name with ".why" appended, saying why it must be
// there). `make test` runs the check on `git ls-files`, so a build output
// committed by accident fails the build instead of living in the history.
package hygiene

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// MaxSize is the largest file tracked without a recorded reason.
const MaxSize = 2 << 20

// ReasonSuffix names the file beside a large one that says why it is tracked.
const ReasonSuffix = ".why"

// Finding is one tracked file that should not be.
type Finding struct {
	Path   string // relative to the repository root
	Reason string // what is wrong and what to do
}

func (f Finding) String() string { return f.Path + ": " + f.Reason }

// magics are the first bytes of compiled objects and executables.
var magics = []struct {
	prefix []byte
	kind   string
}{
	{[]byte("\x7fELF"), "an ELF executable or object"},
	{[]byte{0xfe, 0xed, 0xfa, 0xce}, "a Mach-O binary"},
	{[]byte{0xfe, 0xed, 0xfa, 0xcf}, "a Mach-O binary"},
	{[]byte{0xce, 0xfa, 0xed, 0xfe}, "a Mach-O binary"},
	{[]byte{0xcf, 0xfa, 0xed, 0xfe}, "a Mach-O binary"},
	{[]byte{0xca, 0xfe, 0xba, 0xbe}, "a Mach-O universal binary or Java class"},
	{[]byte("\x00asm"), "a WebAssembly module"},
	{[]byte("!<arch>\n"), "an ar archive (a compiled Go or C library)"},
}

// compiledKind says what compiled format head starts with, or "".
func compiledKind(head []byte) string {
	for _, m := range magics {
		if bytes.HasPrefix(head, m.prefix) {
			return m.kind
		}
	}
	// A PE (Windows) executable starts with "MZ" and points at "PE\0\0".
	if len(head) >= 0x40 && head[0] == 'M' && head[1] == 'Z' {
		off := int(head[0x3c]) | int(head[0x3d])<<8 | int(head[0x3e])<<16 | int(head[0x3f])<<24
		if off >= 0 && off+4 <= len(head) && bytes.Equal(head[off:off+4], []byte("PE\x00\x00")) {
			return "a Windows PE executable"
		}
	}
	return ""
}

// Check looks at each path (relative to root) and returns what is wrong.
func Check(root string, paths []string) ([]Finding, error) {
	tracked := make(map[string]bool, len(paths))
	for _, p := range paths {
		tracked[p] = true
	}
	var out []Finding
	head := make([]byte, 4096)
	for _, p := range paths {
		if lst, err := os.Lstat(filepath.Join(root, p)); err == nil && lst.Mode()&os.ModeSymlink != 0 {
			to, _ := os.Readlink(filepath.Join(root, p))
			out = append(out, Finding{p, fmt.Sprintf("is a symbolic link (to %s): a link into one machine's files (node_modules, say) does not belong in the repository (git rm --cached %s)", to, p)})
			continue
		}
		f, err := os.Open(filepath.Join(root, p))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the work tree, not yet committed
		}
		if err != nil {
			return nil, err
		}
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			f.Close()
			if err != nil {
				return nil, err
			}
			continue
		}
		n, err := io.ReadFull(f, head)
		f.Close()
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("hygiene: read %s: %w", p, err)
		}
		if kind := compiledKind(head[:n]); kind != "" {
			out = append(out, Finding{p, fmt.Sprintf("is %s: build outputs are never tracked (git rm --cached %s, and ignore it in .gitignore)", kind, p)})
			continue
		}
		if st.Size() > MaxSize && !hasReason(root, p, tracked) {
			out = append(out, Finding{p, fmt.Sprintf("is %d bytes, over %d: record why it must be tracked in %s%s, or remove it", st.Size(), MaxSize, p, ReasonSuffix)})
		}
	}
	return out, nil
}

func hasReason(root, p string, tracked map[string]bool) bool {
	why := p + ReasonSuffix
	if !tracked[why] {
		return false
	}
	b, err := os.ReadFile(filepath.Join(root, why))
	return err == nil && len(bytes.TrimSpace(b)) > 0
}

// CheckRepo checks every file git tracks in the work tree at dir.
func CheckRepo(dir string) ([]Finding, error) {
	top, err := git(dir, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, err
	}
	root := strings.TrimSpace(string(top))
	list, err := git(root, "ls-files", "-z")
	if err != nil {
		return nil, err
	}
	var paths []string
	for p := range strings.SplitSeq(strings.TrimRight(string(list), "\x00"), "\x00") {
		if p != "" {
			paths = append(paths, p)
		}
	}
	return Check(root, paths)
}

func git(dir string, args ...string) ([]byte, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("hygiene: git %s in %s: %w: %s", strings.Join(args, " "), dir, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
