package cdc

import (
	"bytes"
	"encoding/json"
	"strconv"
	"testing"
)

// TestUnescape holds the decoder's string unescaping to encoding/json's.
func TestUnescape(t *testing.T) {
	for _, lit := range []string{
		`""`,
		`"plain"`,
		`"\" \\ \/ \b \f \n \r \t"`,
		`"caf\u00e9 \u20AC"`,
		`"\ud83d\ude00 pair"`,
		`"\ud800 lone high"`,
		`"\udc00 lone low"`,
		`"\ud800\u0041 high then letter"`,
		`"\ud800\ud800\udc00 high then pair"`,
		`"end \ud800"`,
		`"é raw UTF-8"`,
	} {
		var want string
		if err := json.Unmarshal([]byte(lit), &want); err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		s := scanner{b: []byte(lit)}
		a, b, _, err := s.str()
		if err != nil {
			t.Fatalf("%s: %v", lit, err)
		}
		if got := string(appendUnescaped(nil, s.b[a:b])); got != want {
			t.Errorf("%s: got %q, want %q", lit, got, want)
		}
	}
}

func TestScannerInt(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"-0", 0, true},
		{"null", 0, true},
		{"9223372036854775807", 1<<63 - 1, true},
		{"-9223372036854775808", -1 << 63, true},
		{"9223372036854775808", 0, false},
		{"-9223372036854775809", 0, false},
		{"99999999999999999999", 0, false},
		{"1e3", 0, false},
		{"1.0", 0, false},
		{"01", 1, false}, // only the 0 is read; the caller then trips on the 1
		{"-", 0, false},
		{`"1"`, 0, false},
		{"true", 0, false},
	}
	for _, tt := range tests {
		s := scanner{b: []byte(tt.in)}
		got, err := s.int()
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("int(%s) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && err == nil && s.i == len(s.b) {
			t.Errorf("int(%s) = %d, nil; want an error", tt.in, got)
		}
	}
}

// skipPlain must stop exactly where the byte-by-byte loop does, for every
// byte value at every place within and around its eight-byte words.
func TestSkipPlain(t *testing.T) {
	naive := func(b []byte, i int) int {
		for i < len(b) && plain[b[i]] {
			i++
		}
		return i
	}
	for n := 0; n <= 19; n++ {
		for at := 0; at < n; at++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{0xe9}, n) // plain, and above 0x7f
				b[at] = byte(c)
				for start := 0; start <= at; start++ {
					if got, want := skipPlain(b, start), naive(b, start); got != want {
						t.Fatalf("byte %#x at %d of %d from %d: skipPlain = %d, want %d", c, at, n, start, got, want)
					}
				}
			}
		}
	}
}

// int reads what strconv.ParseInt reads from a JSON integer, stops where
// the number ends, and refuses fractions, exponents and overflow, on the
// one-pass path for short integers and the careful one alike.
func TestScannerIntOnePass(t *testing.T) {
	lits := []string{"0", "-0", "7", "-7", "1596010889629", "-1596010889629", "123456789012345678", "-123456789012345678",
		"1234567890123456789", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "-9223372036854775809",
		"99999999999999999999", "1.5", "1e3", "1E3", "-", "null", "\"1\"", "true"}
	for _, lit := range lits {
		for _, after := range []string{"", ",", "}", " ", "x"} {
			s := scanner{b: []byte(lit + after)}
			got, err := s.int()
			want, perr := strconv.ParseInt(lit, 10, 64)
			switch {
			case lit == "null":
				if err != nil || got != 0 || s.i != 4 {
					t.Errorf("%q: %d, %v at %d", lit+after, got, err, s.i)
				}
			case perr != nil:
				if err == nil {
					t.Errorf("%q: %d, want an error", lit+after, got)
				}
			default:
				if err != nil || got != want || s.i != len(lit) {
					t.Errorf("%q: %d, %v at %d; want %d at %d", lit+after, got, err, s.i, want, len(lit))
				}
			}
		}
	}
	// JSON has no leading zeros: only the 0 is read, and the caller then
	// finds the next digit unexpected.
	for _, lit := range []string{"01", "-01", "00", "0123456789"} {
		s := scanner{b: []byte(lit)}
		if got, err := s.int(); err != nil || got != 0 || s.b[s.i-1] != '0' || s.i == len(lit) {
			t.Errorf("%q: %d, %v, stopped at %d", lit, got, err, s.i)
		}
	}
}
