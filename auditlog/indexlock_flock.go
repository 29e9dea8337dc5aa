//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package auditlog

import (
	"os"
	"syscall"
)

// lockIndex takes the index directory's lock, waiting for another process
// that is refreshing the same index to finish. Readers never take it: index
// files are immutable once named in the manifest.
func lockIndex(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
