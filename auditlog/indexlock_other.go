//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auditlog

import "os"

// lockIndex has no portable advisory lock here; a single process per index
// directory is assumed.
func lockIndex(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
}
