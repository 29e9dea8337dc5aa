//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package auditlog

import (
	"errors"
	"os"
	"syscall"
)

// lockDir keeps a second writer (another replica, a stale process) out of a
// log: two writers would fork the chain. The kernel drops the lock when the
// process dies, so a crash never leaves it held.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, err
	}
	return f, nil
}
