package mgmt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func hashOf(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

func TestLoadTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	data := "tokens:\n" +
		"  - name: alice\n    role: owner\n    sha256: " + strings.ToUpper(hashOf("alice-secret")) + "\n" +
		"  - name: ci\n    role: consumer\n    token: ci-plain-secret\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := LoadTokens(path)
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]Principal{
		"alice-secret":    {"alice", RoleOwner},
		"ci-plain-secret": {"ci", RoleConsumer},
	} {
		if p, ok := tokens.Lookup(tok); !ok || p != want {
			t.Errorf("Lookup(%s) = %v %v, want %v", tok, p, ok, want)
		}
	}
	for _, tok := range []string{"", "alice-secret ", "ALICE-SECRET", hashOf("alice-secret")} {
		if p, ok := tokens.Lookup(tok); ok {
			t.Errorf("Lookup(%q) = %v, want no principal", tok, p)
		}
	}
	if got := tokens.PlainText(); !slices.Equal(got, []string{"ci"}) {
		t.Errorf("PlainText = %v, want [ci]", got)
	}
	if tokens.Len() != 2 {
		t.Errorf("Len = %d", tokens.Len())
	}
}

func TestLoadTokensErrors(t *testing.T) {
	good := "  - name: alice\n    role: owner\n    token: alice-secret-value\n"
	cases := []struct {
		name, yaml string
		entry      int
		field      string
		msg        string // a part of the message
	}{
		{"unknown role", "tokens:\n" + good + "  - name: bob\n    role: admin\n    token: bob-secret-value\n",
			1, "role", `"admin" is not a role; want consumer, auditor, owner or governance`},
		{"no role", "tokens:\n  - name: bob\n    token: bob-secret-value\n", 0, "role", "missing"},
		{"no name", "tokens:\n" + good + "  - role: owner\n    token: bob-secret-value\n", 1, "name", "missing"},
		{"both secrets", "tokens:\n  - name: bob\n    role: owner\n    token: bob-secret-value\n    sha256: " + hashOf("x") + "\n",
			0, "token", "not both"},
		{"neither secret", "tokens:\n  - name: bob\n    role: owner\n", 0, "sha256", "missing"},
		{"short hash", "tokens:\n  - name: bob\n    role: owner\n    sha256: abc123\n", 0, "sha256", "64 hex digits"},
		{"not hex", "tokens:\n  - name: bob\n    role: owner\n    sha256: " + strings.Repeat("zz", 32) + "\n", 0, "sha256", "64 hex digits"},
		{"misspelt field", "tokens:\n" + good + strings.ReplaceAll(good, "alice", "carol") + "  - name: bob\n    role: owner\n    tokn: bob-secret-value\n", 2, "tokn", "unknown field"},
		{"twice", "tokens:\n  - name: bob\n    role: owner\n    role: auditor\n    token: bob-secret-value\n", 0, "role", "given twice"},
		{"same token", "tokens:\n" + good + "  - name: eve\n    role: governance\n    sha256: " + hashOf("alice-secret-value") + "\n",
			1, "", "same token as entry 0 (alice)"},
		{"nested value", "tokens:\n  - name: [a, b]\n    role: owner\n    token: bob-secret-value\n", 0, "name", "want a string"},
		{"entry not a map", "tokens:\n  - alice\n", 0, "", "want a mapping"},
		{"top-level key", "tokenz:\n" + good, -1, "", `unknown key "tokenz"`},
		{"empty list", "tokens: []\n", -1, "", "non-empty list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTokens("tokens.yaml", []byte(c.yaml))
			var te *TokenError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a *TokenError", err)
			}
			if te.File != "tokens.yaml" || te.Entry != c.entry || te.Field != c.field || te.Line == 0 {
				t.Errorf("err at file %s line %d entry %d field %q, want entry %d field %q", te.File, te.Line, te.Entry, te.Field, c.entry, c.field)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.msg) || !strings.HasPrefix(msg, "tokens.yaml:") {
				t.Errorf("message %q lacks %q", msg, c.msg)
			}
			if c.entry >= 0 && !strings.Contains(msg, "tokens["+string(rune('0'+c.entry))+"]") {
				t.Errorf("message %q does not name entry %d", msg, c.entry)
			}
			for _, secret := range []string{"bob-secret-value", "alice-secret-value"} {
				if strings.Contains(msg, secret) {
					t.Errorf("message %q repeats a token", msg)
				}
			}
		})
	}
	if _, err := ParseTokens("t.yaml", []byte("tokens: [")); err == nil || !strings.Contains(err.Error(), "t.yaml") {
		t.Errorf("broken YAML: %v", err)
	}
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "absent.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseTokenList(t *testing.T) {
	tokens, err := ParseTokenList(" dev:owner:a:b:c , ci:consumer:xyz,")
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := tokens.Lookup("a:b:c"); !ok || p != (Principal{"dev", RoleOwner}) {
		t.Errorf("a token may hold colons: %v %v", p, ok)
	}
	if p, ok := tokens.Lookup("xyz"); !ok || p.Role != RoleConsumer {
		t.Errorf("ci: %v %v", p, ok)
	}
	for spec, want := range map[string]string{
		"dev:owner:s3cret,ci:root:hunter2": "entry 1 (ci): role \"root\" is not a role",
		"dev:owner":                        "entry 0: want name:role:token",
		":owner:s3cret":                    "entry 0: want name:role:token",
		"a:owner:s3cret,b:auditor:s3cret":  "entry 1 (b): same token as entry 0 (a)",
		"":                                 "no entries",
	} {
		_, err := ParseTokenList(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", spec, err, want)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%q: message %q repeats a token", spec, err)
		}
	}
}

func TestTokensAdd(t *testing.T) {
	var tokens Tokens
	if err := tokens.Add("dev", RoleGovernance, "generated-token"); err != nil {
		t.Fatal(err)
	}
	if p, ok := tokens.Lookup("generated-token"); !ok || p.Role != RoleGovernance {
		t.Errorf("Lookup: %v %v", p, ok)
	}
	if err := tokens.Add("dev2", RoleOwner, "generated-token"); err == nil {
		t.Error("a second principal got the same token")
	}
	if err := tokens.Add("x", "root", "t"); err == nil {
		t.Error("role root accepted")
	}
	var none *Tokens
	if _, ok := none.Lookup("anything"); ok {
		t.Error("nil Tokens let a token in")
	}
}
