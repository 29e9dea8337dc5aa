package runtime

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// checkKeys walks a manifest's YAML against the fields Manifest declares and
// reports every key it does not know, with its line and the nearest known
// key, as a user would write them (never the Go type's name).
func checkKeys(v *validator, n *yaml.Node, t reflect.Type, path string) {
	if n == nil {
		return
	}
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			checkKeys(v, c, t, path)
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		return // its anchor was checked where it is defined
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // a type mismatch; the decoder reports it
		}
		fields := yamlFields(t)
		known := make([]string, 0, len(fields))
		for name := range fields {
			known = append(known, name)
		}
		slices.Sort(known)
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			at := joinKey(path, key.Value)
			ft, ok := fields[key.Value]
			if !ok {
				msg := "unknown field"
				if near := nearestKey(key.Value, known); near != "" {
					msg += fmt.Sprintf("; did you mean %s?", near)
				} else {
					msg += "; known here: " + strings.Join(known, ", ")
				}
				v.errs = append(v.errs, &ManifestError{File: v.file, Line: key.Line, Field: at, Msg: msg})
				continue
			}
			checkKeys(v, val, ft, at)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			checkKeys(v, n.Content[i+1], t.Elem(), joinKey(path, n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			checkKeys(v, c, t.Elem(), path+"["+strconv.Itoa(i)+"]")
		}
	}
}

// yamlFields maps each key a struct reads to the field's type, with
// inlined structs' keys in place.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			maps := yamlFields(f.Type)
			for k, v := range maps {
				out[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// nearestKey is the known key closest to key: the same but for case, or
// within a small edit distance.
func nearestKey(key string, known []string) string {
	best, bestD := "", max(2, len(key)/3)+1
	for _, k := range known {
		if strings.EqualFold(k, key) {
			return k
		}
		if d := editDistance(strings.ToLower(key), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// typeErrLine matches one of yaml.v3's type errors, which name Go types.
var typeErrLine = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+)(?: `([^`]*)`)? into (.+)$")

// typeErrors rewrites the decoder's type errors in the manifest's terms:
// what was written and what the field wants.
func typeErrors(file string, root *yaml.Node, te *yaml.TypeError) []error {
	var out []error
	for _, e := range te.Errors {
		m := typeErrLine.FindStringSubmatch(e)
		if m == nil {
			out = append(out, fmt.Errorf("%s: %s", file, e))
			continue
		}
		line, _ := strconv.Atoi(m[1])
		got := map[string]string{"str": "text", "int": "a whole number", "float": "a number", "bool": "true or false",
			"seq": "a list", "map": "a mapping (key: value)", "null": "empty"}[m[2]]
		if got == "" {
			got = m[2]
		}
		if m[3] != "" {
			got += fmt.Sprintf(" (%s)", m[3])
		}
		field := pathAtLine(root, "", line)
		if field == "" {
			field = "value"
		}
		out = append(out, &ManifestError{File: file, Line: line, Field: field, Msg: fmt.Sprintf("is %s; want %s", got, wantOf(m[4]))})
	}
	return out
}

// wantOf says in words what a Go type holds.
func wantOf(goType string) string {
	switch {
	case goType == "string":
		return "text"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"):
		return "a whole number"
	case strings.HasPrefix(goType, "float"):
		return "a number"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "a mapping (key: value)"
	}
	return "another kind of value"
}

// pathAtLine is the dotted path of the value that starts on line, "" if
// none does.
func pathAtLine(n *yaml.Node, path string, line int) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if p := pathAtLine(c, path, line); p != "" {
				return p
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			at := joinKey(path, n.Content[i].Value)
			if v := n.Content[i+1]; v.Line == line && (v.Kind == yaml.ScalarNode || v.Style&yaml.FlowStyle != 0) {
				return at
			}
			if p := pathAtLine(n.Content[i+1], at, line); p != "" {
				return p
			}
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			at := path + "[" + strconv.Itoa(i) + "]"
			if c.Line == line && (c.Kind == yaml.ScalarNode || c.Style&yaml.FlowStyle != 0) {
				return at
			}
			if p := pathAtLine(c, at, line); p != "" {
				return p
			}
		}
	}
	return ""
}
