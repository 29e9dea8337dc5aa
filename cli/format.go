package cli

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// sortedRowFields lists the row's own fields (not the _meta ones) by name.
func sortedRowFields(fields map[string]any) []string {
	var names []string
	for name := range fields {
		if !strings.HasPrefix(name, "_") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func formatTime(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format("2006-01-02T15:04:05.000000Z")
	case int64:
		return time.UnixMicro(t).UTC().Format("2006-01-02T15:04:05.000000Z")
	case nil:
		return "-"
	default:
		return fmt.Sprint(v)
	}
}

func formatValue(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", t)
	case map[string]any: // an Avro union as hamba decodes it into a map: {"string": "..."}
		for _, inner := range t {
			return formatValue(inner)
		}
		return "null"
	default:
		return fmt.Sprint(v)
	}
}
