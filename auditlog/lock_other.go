//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auditlog

import "os"

// lockDir has no portable advisory lock to use here; the file still marks the
// directory as a live log.
func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
