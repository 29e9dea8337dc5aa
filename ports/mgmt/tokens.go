package mgmt

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Role is what a principal may do; see the package comment for which
// routes each role opens.
type Role string

// The roles, least to most trusted for data: a consumer reads current
// state; an auditor also reads the past and the access log; an owner runs
// the product; governance sets policy and forgets subjects.
const (
	RoleConsumer   Role = "consumer"
	RoleAuditor    Role = "auditor"
	RoleOwner      Role = "owner"
	RoleGovernance Role = "governance"
)

// Roles lists every role, in the order error messages give them.
var Roles = []Role{RoleConsumer, RoleAuditor, RoleOwner, RoleGovernance}

// ParseRole reads a role name; the error lists the valid ones.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles, r) {
		return r, nil
	}
	return "", fmt.Errorf("%q is not a role; want %s", s, roleList(Roles))
}

// roleList spells roles as "a, b or c".
func roleList(rs []Role) string {
	names := make([]string, len(rs))
	for i, r := range rs {
		names[i] = string(r)
	}
	switch len(names) {
	case 0:
		return "none"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}

// Principal is who presented a token.
type Principal struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// Tokens maps bearer tokens to principals. Only the SHA-256 of each token
// is kept: a presented token is hashed and looked up by its hash, so the
// time a lookup takes depends on the hash, which tells a guesser nothing
// about any real token, and no comparison ever runs over secret bytes.
//
// The zero value holds no tokens; a nil *Tokens refuses every token.
type Tokens struct {
	byHash map[[sha256.Size]byte]tokenEntry
	plain  []string
}

type tokenEntry struct {
	p     Principal
	index int // position in its source, for duplicate errors
}

// Lookup returns the principal token belongs to.
func (t *Tokens) Lookup(token string) (Principal, bool) {
	if t == nil || token == "" {
		return Principal{}, false
	}
	e, ok := t.byHash[sha256.Sum256([]byte(token))]
	return e.p, ok
}

// Len is the number of tokens.
func (t *Tokens) Len() int {
	if t == nil {
		return 0
	}
	return len(t.byHash)
}

// PlainText names the principals whose token was given in plain text, so
// the runtime can warn that a secret sits at rest.
func (t *Tokens) PlainText() []string {
	if t == nil {
		return nil
	}
	return slices.Clone(t.plain)
}

// Add grants token to a principal; the runtime uses it for a token it
// generates (meshlet dev). The token is hashed at once.
func (t *Tokens) Add(name string, role Role, token string) error {
	if name == "" {
		return fmt.Errorf("mgmt: token with no name")
	}
	if _, err := ParseRole(string(role)); err != nil {
		return fmt.Errorf("mgmt: token %s: role %w", name, err)
	}
	if token == "" {
		return fmt.Errorf("mgmt: token %s: empty token", name)
	}
	return t.add(Principal{Name: name, Role: role}, sha256.Sum256([]byte(token)), t.Len())
}

func (t *Tokens) add(p Principal, h [sha256.Size]byte, index int) error {
	if t.byHash == nil {
		t.byHash = map[[sha256.Size]byte]tokenEntry{}
	}
	if prev, ok := t.byHash[h]; ok {
		return fmt.Errorf("same token as entry %d (%s); every principal needs its own token", prev.index, prev.p.Name)
	}
	t.byHash[h] = tokenEntry{p: p, index: index}
	return nil
}

// LoadTokens reads a token file:
//
//	tokens:
//	  - name: alice
//	    role: owner
//	    sha256: 9f86d081...   # hex SHA-256 of the token: no secret at rest
//	  - name: ci
//	    role: consumer
//	    token: dev-only-secret # plain text: anyone who reads the file holds it
//
// Each entry has a name, a role and exactly one of sha256 and token.
// Prefer sha256 (`printf %s "$TOKEN" | sha256sum`); a plain token is for
// development, and PlainText names the entries that use one. Errors name
// the file, line, entry and field.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mgmt: tokens: %w", err)
	}
	return ParseTokens(path, data)
}

// TokenError is one problem in a token file.
type TokenError struct {
	File  string
	Line  int    // 0 when unknown
	Entry int    // index in tokens; -1 for the file as a whole
	Field string // "" for the entry as a whole
	Msg   string
}

func (e *TokenError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += fmt.Sprintf(":%d", e.Line)
	}
	what := "tokens"
	if e.Entry >= 0 {
		what = fmt.Sprintf("tokens[%d]", e.Entry)
	}
	if e.Field != "" {
		what += "." + e.Field
	}
	return fmt.Sprintf("%s: %s: %s", loc, what, e.Msg)
}

var tokenFields = []string{"name", "role", "sha256", "token"}

// ParseTokens reads token file text; file names it in errors. It stops at
// the first problem: a token file is short, and a half-read one must not
// be used.
func ParseTokens(file string, data []byte) (*Tokens, error) {
	fail := func(line, entry int, field, format string, args ...any) (*Tokens, error) {
		return nil, &TokenError{File: file, Line: line, Entry: entry, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %w", file, err)
	}
	if len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return fail(0, -1, "", "want a mapping with a tokens list")
	}
	doc := root.Content[0]
	var list *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if k.Value != "tokens" {
			return fail(k.Line, -1, "", "unknown key %q at the top level; want tokens", k.Value)
		}
		list = v
	}
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return fail(doc.Line, -1, "", "want a non-empty list of {name, role, sha256 or token}")
	}
	t := &Tokens{}
	for i, entry := range list.Content {
		if entry.Kind != yaml.MappingNode {
			return fail(entry.Line, i, "", "want a mapping of %s", strings.Join(tokenFields, ", "))
		}
		got := map[string]*yaml.Node{}
		for j := 0; j+1 < len(entry.Content); j += 2 {
			k, v := entry.Content[j], entry.Content[j+1]
			if !slices.Contains(tokenFields, k.Value) {
				return fail(k.Line, i, k.Value, "unknown field; want %s", strings.Join(tokenFields, ", "))
			}
			if _, dup := got[k.Value]; dup {
				return fail(k.Line, i, k.Value, "given twice")
			}
			if v.Kind != yaml.ScalarNode {
				return fail(v.Line, i, k.Value, "want a string")
			}
			got[k.Value] = v
		}
		name, ok := got["name"]
		if !ok || strings.TrimSpace(name.Value) == "" {
			return fail(entry.Line, i, "name", "missing; every token needs a principal name for the access log")
		}
		roleNode, ok := got["role"]
		if !ok {
			return fail(entry.Line, i, "role", "missing; want %s", roleList(Roles))
		}
		role, err := ParseRole(roleNode.Value)
		if err != nil {
			return fail(roleNode.Line, i, "role", "%v", err)
		}
		hashNode, hasHash := got["sha256"]
		plainNode, hasPlain := got["token"]
		var h [sha256.Size]byte
		switch {
		case hasHash && hasPlain:
			return fail(plainNode.Line, i, "token", "give sha256 or token, not both")
		case hasHash:
			b, err := hex.DecodeString(strings.TrimSpace(hashNode.Value))
			if err != nil || len(b) != sha256.Size {
				return fail(hashNode.Line, i, "sha256", "want 64 hex digits, the SHA-256 of the token (printf %%s \"$TOKEN\" | sha256sum)")
			}
			copy(h[:], b)
		case hasPlain:
			if plainNode.Value == "" {
				return fail(plainNode.Line, i, "token", "empty")
			}
			h = sha256.Sum256([]byte(plainNode.Value))
			t.plain = append(t.plain, name.Value)
		default:
			return fail(entry.Line, i, "sha256", "missing; give sha256 (preferred) or token")
		}
		if err := t.add(Principal{Name: name.Value, Role: role}, h, i); err != nil {
			return fail(entry.Line, i, "", "%v", err)
		}
	}
	return t, nil
}

// ParseTokenList reads "name:role:token,name:role:token", the compact form
// `meshlet dev` takes from a flag or an environment variable. A token may
// hold ':' but not ','. Errors name the entry, never the token.
func ParseTokenList(spec string) (*Tokens, error) {
	t := &Tokens{}
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		parts := strings.SplitN(item, ":", 3)
		if len(parts) != 3 || parts[0] == "" || parts[2] == "" {
			return nil, fmt.Errorf("mgmt: tokens entry %d: want name:role:token", i)
		}
		role, err := ParseRole(parts[1])
		if err != nil {
			return nil, fmt.Errorf("mgmt: tokens entry %d (%s): role %w", i, parts[0], err)
		}
		if err := t.add(Principal{Name: parts[0], Role: role}, sha256.Sum256([]byte(parts[2])), i); err != nil {
			return nil, fmt.Errorf("mgmt: tokens entry %d (%s): %w", i, parts[0], err)
		}
		t.plain = append(t.plain, parts[0])
	}
	if t.Len() == 0 {
		return nil, fmt.Errorf("mgmt: tokens: no entries; want name:role:token[,...]")
	}
	return t, nil
}
