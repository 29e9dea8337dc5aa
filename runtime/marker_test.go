package runtime

import "testing"

func TestCommitMarker(t *testing.T) {
	for _, m := range []commitMarker{{seq: 0}, {seq: 42}, {seq: 1 << 40, until: 977}} {
		got, ok := parseMarker(m.String())
		if !ok || got != m {
			t.Errorf("parseMarker(%q) = %+v, %v; want %+v", m.String(), got, ok, m)
		}
	}
	// Metadata Meshlet did not write (franz-go's default is the member id)
	// must not be read as a marker: reconciliation then uses the offset rule.
	for _, meta := range []string{"", "meshlet-0-1f2e", "meshlet/v1", "meshlet/v1 seq=x", "meshlet/v1 until=5", "meshlet/v2 seq=3", "meshlet/v1 seq=3 until=y"} {
		if m, ok := parseMarker(meta); ok {
			t.Errorf("parseMarker(%q) = %+v, want no marker", meta, m)
		}
	}
}
