package contracts

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"
)

//go:embed odcs-json-schema-v3.1.0.json
var odcsSchema []byte

var (
	compileOnce sync.Once
	compiled    *jsonschema.Schema
	compileErr  error
)

func odcs() (*jsonschema.Schema, error) {
	compileOnce.Do(func() {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(odcsSchema))
		if err != nil {
			compileErr = err
			return
		}
		c := jsonschema.NewCompiler()
		const url = "https://bitol.io/odcs-json-schema-v3.1.0.json"
		if err := c.AddResource(url, doc); err != nil {
			compileErr = err
			return
		}
		compiled, compileErr = c.Compile(url)
	})
	if compileErr != nil {
		return nil, fmt.Errorf("contracts: compiling the embedded ODCS schema: %w", compileErr)
	}
	return compiled, nil
}

// ErrInvalid classes a contract the ODCS JSON Schema refuses.
var ErrInvalid = errors.New("invalid data contract")

// Problem is one place where a contract breaks the ODCS JSON Schema.
type Problem struct {
	Path string // JSON path, e.g. schema[0].properties[2].logicalType; "" for the document
	Line int    // line in the YAML, 0 when unknown
	Msg  string
}

func (p Problem) String() string {
	at := p.Path
	if at == "" {
		at = "(document)"
	}
	if p.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", p.Line, at, p.Msg)
	}
	return at + ": " + p.Msg
}

// ValidationError lists every problem found; it matches ErrInvalid.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.String()
	}
	return "not a valid ODCS " + APIVersion + " contract: " + strings.Join(parts, "; ")
}

func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Validate checks a YAML (or JSON) contract against the official ODCS
// v3.1.0 JSON Schema. A failure is a *ValidationError naming the JSON path
// and YAML line of each problem.
func Validate(data []byte) error {
	sch, err := odcs()
	if err != nil {
		return err
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return fmt.Errorf("%w: not valid YAML: %w", ErrInvalid, err)
	}
	if root.Kind == 0 {
		return &ValidationError{Problems: []Problem{{Msg: "empty document"}}}
	}
	inst, err := plain(&root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	err = sch.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fmt.Errorf("contracts: validating: %w", err)
	}
	return &ValidationError{Problems: problems(ve, &root)}
}

// problems flattens the validator's tree to its leaves: the combinators
// above them (allOf, if/then, $ref) only repeat "a cause failed".
func problems(ve *jsonschema.ValidationError, root *yaml.Node) []Problem {
	var out []Problem
	seen := map[string]bool{}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		msg := "invalid"
		if u := e.BasicOutput(); u.Error != nil {
			msg = u.Error.String() // in English, the validator's default printer
		}
		p := Problem{Path: jsonPath(e.InstanceLocation), Line: lineAt(root, e.InstanceLocation), Msg: msg}
		if strings.HasPrefix(msg, "'oneOf' failed") && strings.Contains(p.Path, "quality[") {
			p.Msg += " (a quality rule takes exactly one operator: " + strings.Join(operators, ", ") + ")"
		}
		if key := p.Path + "\x00" + p.Msg; !seen[key] {
			seen[key] = true
			out = append(out, p)
		}
	}
	walk(ve)
	out = dropUnevaluated(out)
	slices.SortStableFunc(out, func(a, b Problem) int { return a.Line - b.Line })
	return out
}

// falseSchema is how the validator reports a property that
// unevaluatedProperties rejects.
const falseSchema = "false schema"

// dropUnevaluated removes "false schema" problems that only echo another
// problem in the same object: once a subschema fails, the properties it
// would have accepted count as unevaluated too. One that stands alone is a
// property ODCS does not define, and says so.
func dropUnevaluated(ps []Problem) []Problem {
	var real []Problem
	for _, p := range ps {
		if p.Msg != falseSchema {
			real = append(real, p)
		}
	}
	out := real[:len(real):len(real)]
	for _, p := range ps {
		if p.Msg != falseSchema {
			continue
		}
		parent := p.Path[:max(strings.LastIndexAny(p.Path, ".["), 0)]
		echo := false
		for _, r := range real {
			if strings.HasPrefix(r.Path, parent) {
				echo = true
				break
			}
		}
		if !echo {
			p.Msg = "is not a property ODCS " + APIVersion + " defines here"
			out = append(out, p)
		}
	}
	return out
}

// jsonPath spells an instance location as a reader writes it:
// schema[0].properties[2].name.
func jsonPath(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t)
	}
	return b.String()
}

// lineAt finds the line of the value at tokens, or of its nearest parent.
func lineAt(root *yaml.Node, tokens []string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, t := range tokens {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == t {
					next = n.Content[i+1]
					line = n.Content[i].Line
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(t); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

// plain turns a YAML tree into the values encoding/json would produce, which
// is what the JSON Schema validator expects: string keys only, timestamps
// as the text written.
func plain(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return plain(n.Content[0])
	case yaml.AliasNode:
		return plain(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a mapping key must be a plain value", k.Line)
			}
			v, err := plain(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := plain(c)
			if err != nil {
				return nil, err
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		if _, isTime := v.(time.Time); isTime {
			return n.Value, nil
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node", n.Line)
}
