package jsontext

import (
	"encoding/json"
	"testing"
)

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " backslash \`, "tab\tnl\ncr\r", "\x00\x1f\x7f", "é €😀", "bad \xff utf8 \xc3", "\u2028"} {
		var back string
		got := AppendString(nil, s)
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q rendered as invalid JSON %s: %v", s, got, err)
		}
		want := string([]rune(s)) // each invalid byte becomes U+FFFD, as in encoding/json
		if back != want {
			t.Errorf("%q reads back as %q, want %q", s, back, want)
		}
	}
}

func TestAppendJSONStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uo\te`, "tab\tnl\ncr\r\x00\x1f\x7f", "héllo ☃ 𝄞", "bad \xff\xfe utf8 \xe2\x82", "\u2028\u2029<>&"} {
		checkJSONString(t, s)
	}
}

// FuzzAppendJSONString checks the hand-written string encoder against
// encoding/json: both must read back as the same string.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "a", `"\`, "\x00\x1f\x7f", "\xff", "héllo ☃", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s string) {
	var got, want string
	b := AppendString(nil, s)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%q encodes to invalid JSON %s: %v", s, b, err)
	}
	std, _ := json.Marshal(s)
	json.Unmarshal(std, &want)
	if got != want {
		t.Fatalf("%q reads back as %q; encoding/json gives %q", s, got, want)
	}
}
