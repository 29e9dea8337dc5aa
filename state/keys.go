package state

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The store's key space (see doc.go):
//
//	version key = 'v' || esc(table) || 0x00 0x01 || esc(key) || 0x00 0x01 || be64(^ord(validFrom))
//	mark key    = 'm'
//
// esc doubles every 0x00 as 0x00 0xFF, so the terminator 0x00 0x01 sorts
// below any continuation and the encoding keeps the order of keys: a key's
// versions are contiguous, keys of one table sort as their strings do, and
// a prefix of a key is a prefix of its encoding. ord flips the sign bit of
// the valid time so unix microseconds sort as unsigned; inverting it puts
// the newest version first, so "the version valid at t" is one seek to
// the first version key at or after enc(t).

const (
	prefixVersion = 'v'
	markKey       = "m"
)

var errBadKey = errors.New("state: malformed key in store")

func appendEscaped(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		dst = append(dst, s[i])
		if s[i] == 0 {
			dst = append(dst, 0xFF)
		}
	}
	return dst
}

// appendEntity appends the prefix every version of (table, key) shares.
func appendEntity(dst []byte, table, key string) []byte {
	dst = append(dst, prefixVersion)
	dst = appendEscaped(dst, table)
	dst = append(dst, 0, 1)
	dst = appendEscaped(dst, key)
	return append(dst, 0, 1)
}

// appendTablePrefix appends the prefix of the keys of table that start with
// keyPrefix (no terminator: any continuation matches).
func appendTablePrefix(dst []byte, table, keyPrefix string) []byte {
	dst = append(dst, prefixVersion)
	dst = appendEscaped(dst, table)
	dst = append(dst, 0, 1)
	return appendEscaped(dst, keyPrefix)
}

func appendValidTime(dst []byte, validFrom int64) []byte {
	return binary.BigEndian.AppendUint64(dst, ^(uint64(validFrom) ^ (1 << 63)))
}

func decodeValidTime(b []byte) int64 {
	return int64(^binary.BigEndian.Uint64(b) ^ (1 << 63))
}

// upperBound is the smallest key above every key that starts with prefix.
func upperBound(prefix []byte) []byte {
	up := append([]byte(nil), prefix...)
	for i := len(up) - 1; i >= 0; i-- {
		if up[i] < 0xFF {
			up[i]++
			return up[:i+1]
		}
	}
	return nil // all 0xFF: no bound
}

// splitVersionKey reads (table, key, validFrom) back from a version key.
func splitVersionKey(k []byte) (table, key string, validFrom int64, err error) {
	if len(k) < 1+2+2+8 || k[0] != prefixVersion {
		return "", "", 0, fmt.Errorf("%w: %q", errBadKey, k)
	}
	rest := k[1 : len(k)-8]
	var t, e []byte
	if t, rest, err = unescape(rest); err != nil {
		return "", "", 0, err
	}
	if e, rest, err = unescape(rest); err != nil || len(rest) != 0 {
		return "", "", 0, fmt.Errorf("%w: %q", errBadKey, k)
	}
	return string(t), string(e), decodeValidTime(k[len(k)-8:]), nil
}

// unescape reads one escaped, terminated field.
func unescape(b []byte) (field, rest []byte, err error) {
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			field = append(field, b[i])
			continue
		}
		if i+1 >= len(b) {
			break
		}
		switch b[i+1] {
		case 0xFF:
			field = append(field, 0)
			i++
		case 1:
			return field, b[i+2:], nil
		default:
			return nil, nil, fmt.Errorf("%w: bad escape", errBadKey)
		}
	}
	return nil, nil, fmt.Errorf("%w: unterminated field", errBadKey)
}

// A stored version's value: flags || uvarint(system time ord) || value.
const flagDeleted = 1

func appendStoredValue(dst []byte, v *version) []byte {
	var f byte
	if v.deleted {
		f |= flagDeleted
	}
	dst = append(dst, f)
	dst = binary.AppendVarint(dst, v.systemTime)
	return append(dst, v.value...)
}

func parseStoredValue(b []byte, validFrom int64) (version, error) {
	if len(b) < 2 {
		return version{}, fmt.Errorf("%w: stored value of %d bytes", errBadKey, len(b))
	}
	st, n := binary.Varint(b[1:])
	if n <= 0 {
		return version{}, fmt.Errorf("%w: stored value's system time", errBadKey)
	}
	return version{
		validFrom: validFrom, systemTime: st, deleted: b[0]&flagDeleted != 0,
		value: append([]byte(nil), b[1+n:]...),
	}, nil
}
