package cdc

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/meshlet/meshlet/cdc/samples"
)

func TestCountedDecoderCountsByFormatAndReason(t *testing.T) {
	m := NewMetrics(prometheus.Labels{"data_product": "p"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collectors()...)
	inner, err := NewDecoder(formatCanalJSON)
	if err != nil {
		t.Fatal(err)
	}
	d := Counted(inner, formatCanalJSON, "t", m)
	lines, err := samples.Lines(samples.Canal)
	if err != nil {
		t.Fatal(err)
	}
	good := 0
	for _, l := range lines {
		if _, err := d.DecodeAll(context.Background(), nil, l, nil); err == nil {
			good++
		}
	}
	if _, err := d.DecodeAll(context.Background(), nil, []byte(`{"data":`), nil); err == nil {
		t.Fatal("truncated JSON decoded")
	}
	if got := testutil.ToFloat64(m.decoded.WithLabelValues(formatCanalJSON, "t")); got != float64(good) || good == 0 {
		t.Errorf("decoded = %v, want %d", got, good)
	}
	if got := testutil.ToFloat64(m.errors.WithLabelValues(formatCanalJSON, "t", "malformed")); got != float64(len(lines)-good+1) {
		t.Errorf("malformed = %v, want %d", got, len(lines)-good+1)
	}
}
