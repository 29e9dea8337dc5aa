package cdc

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
)

// ComparePositions orders two positions of the same connector and returns
// -1, 0 or +1. Connectors whose positions it cannot order are an error, so
// that a caller dropping duplicates never drops on a guess.
func ComparePositions(connector string, a, b Position) (int, error) {
	switch connector {
	case "postgresql":
		if c := cmp.Compare(a.LSN, b.LSN); c != 0 {
			return c, nil
		}
		return cmp.Compare(a.TxID, b.TxID), nil
	case "mysql":
		c, err := compareBinlogFiles(a.File, b.File)
		if err != nil || c != 0 {
			return c, err
		}
		if c := cmp.Compare(a.Pos, b.Pos); c != 0 {
			return c, nil
		}
		return cmp.Compare(a.Row, b.Row), nil
	case "sqlserver":
		for _, pair := range [2][2]string{{a.CommitLSN, b.CommitLSN}, {a.ChangeLSN, b.ChangeLSN}} {
			x, err := normalLSN(pair[0])
			if err != nil {
				return 0, err
			}
			y, err := normalLSN(pair[1])
			if err != nil {
				return 0, err
			}
			if c := strings.Compare(string(x[:]), string(y[:])); c != 0 {
				return c, nil
			}
		}
		return cmp.Compare(a.EventSerialNo, b.EventSerialNo), nil
	case "ogg":
		x, err := trailDigits(a.Trail)
		if err != nil {
			return 0, err
		}
		y, err := trailDigits(b.Trail)
		if err != nil {
			return 0, err
		}
		if c := cmp.Compare(len(x), len(y)); c != 0 {
			return c, nil
		}
		return strings.Compare(x, y), nil
	}
	return 0, fmt.Errorf("cdc: cannot compare positions of connector %q (known: mysql, ogg, postgresql, sqlserver)", connector)
}

// trailDigits checks a GoldenGate trail position and drops its leading
// zeros, so that digit strings of any width compare by length, then bytes.
func trailDigits(pos string) (string, error) {
	if pos == "" {
		return "", fmt.Errorf("cdc: empty GoldenGate trail position")
	}
	for i := 0; i < len(pos); i++ {
		if pos[i] < '0' || pos[i] > '9' {
			return "", fmt.Errorf("cdc: GoldenGate trail position %q is not a digit string", pos)
		}
	}
	return strings.TrimLeft(pos, "0"), nil
}

// compareBinlogFiles orders binlog names by their numeric suffix, which
// MySQL increments on rollover (mysql-bin.000009 < mysql-bin.000010 even
// when the suffix widens). Equal suffixes fall back to the whole name so
// that different files never compare equal.
func compareBinlogFiles(a, b string) (int, error) {
	if a == b {
		return 0, nil
	}
	x, err := binlogSeq(a)
	if err != nil {
		return 0, err
	}
	y, err := binlogSeq(b)
	if err != nil {
		return 0, err
	}
	// Compare digit strings without parsing them, so no length overflows.
	if c := cmp.Compare(len(x), len(y)); c != 0 {
		return c, nil
	}
	if c := strings.Compare(x, y); c != 0 {
		return c, nil
	}
	return strings.Compare(a, b), nil
}

// binlogSeq returns the digits after a binlog file name's last dot, leading
// zeros removed.
func binlogSeq(file string) (string, error) {
	dot := strings.LastIndexByte(file, '.')
	digits := file[dot+1:]
	if dot < 0 || digits == "" {
		return "", fmt.Errorf("cdc: binlog file %q has no numeric suffix", file)
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return "", fmt.Errorf("cdc: binlog file %q has no numeric suffix", file)
		}
	}
	return strings.TrimLeft(digits, "0"), nil
}

// normalLSN brings a SQL Server LSN to 20 lower-case hex digits, so that
// byte order is numeric order. It accepts Debezium's "vlf:block:slot" form
// (8:8:4 digits, shorter parts zero-padded) and a bare hex string with an
// optional 0x. The empty LSN (sent as null) sorts first, as Debezium's own
// NULL LSN does.
func normalLSN(lsn string) ([20]byte, error) {
	var out [20]byte
	for i := range out {
		out[i] = '0'
	}
	if lsn == "" {
		return out, nil
	}
	bad := func() ([20]byte, error) {
		return out, fmt.Errorf("cdc: malformed SQL Server LSN %q", lsn)
	}
	// fill right-aligns the hex digits h into out[lo:hi].
	fill := func(h string, lo, hi int) bool {
		if h == "" || len(h) > hi-lo {
			return false
		}
		for i := 0; i < len(h); i++ {
			c := h[i]
			if unhex(c) < 0 {
				return false
			}
			if 'A' <= c && c <= 'F' {
				c += 'a' - 'A'
			}
			out[hi-len(h)+i] = c
		}
		return true
	}
	if parts := strings.Split(lsn, ":"); len(parts) == 3 {
		if !fill(parts[0], 0, 8) || !fill(parts[1], 8, 16) || !fill(parts[2], 16, 20) {
			return bad()
		}
		return out, nil
	} else if len(parts) != 1 {
		return bad()
	}
	h := strings.TrimPrefix(strings.TrimPrefix(lsn, "0x"), "0X")
	if !fill(h, 0, 20) {
		return bad()
	}
	return out, nil
}

// String renders the fields of the connector that set them, in a fixed
// order, e.g. "lsn=34078720,txId=601", "file=mysql-bin.000003,pos=154,row=0"
// or "trail=00000000000000000000143".
// It is what change-log provenance and dead-letter headers record, so its
// format is stable. The zero Position renders as "".
func (p Position) String() string {
	var arr [128]byte
	b, _ := p.AppendText(arr[:0])
	return string(b)
}

// AppendText appends the String form to b: a caller that keeps one buffer
// per batch renders every change's position without allocating
// (encoding.TextAppender). It never fails.
func (p Position) AppendText(b []byte) ([]byte, error) {
	n := len(b)
	sep := func() {
		if len(b) > n {
			b = append(b, ',')
		}
	}
	if p.LSN != 0 || p.TxID != 0 {
		b = append(b, "lsn="...)
		b = strconv.AppendInt(b, p.LSN, 10)
		b = append(b, ",txId="...)
		b = strconv.AppendInt(b, p.TxID, 10)
	}
	if p.File != "" || p.Pos != 0 || p.Row != 0 {
		sep()
		b = append(b, "file="...)
		b = append(b, p.File...)
		b = append(b, ",pos="...)
		b = strconv.AppendInt(b, p.Pos, 10)
		b = append(b, ",row="...)
		b = strconv.AppendInt(b, p.Row, 10)
	}
	if p.GTID != "" {
		sep()
		b = append(b, "gtid="...)
		b = append(b, p.GTID...)
	}
	if p.CommitLSN != "" || p.ChangeLSN != "" || p.EventSerialNo != 0 {
		sep()
		b = append(b, "commitLsn="...)
		b = append(b, p.CommitLSN...)
		b = append(b, ",changeLsn="...)
		b = append(b, p.ChangeLSN...)
		b = append(b, ",eventSerialNo="...)
		b = strconv.AppendInt(b, p.EventSerialNo, 10)
	}
	if p.Trail != "" {
		sep()
		b = append(b, "trail="...)
		b = append(b, p.Trail...)
	}
	return b, nil
}

// IsZero reports whether p is the zero Position, the one String renders
// as "": the change has no position to recognise a duplicate by.
func (p Position) IsZero() bool { return p == Position{} }
