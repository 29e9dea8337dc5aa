package cdc

import (
	"context"
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the decoders see, per format: records decoded and
// records that failed, as meshlet_cdc_decoded_records_total and
// meshlet_cdc_decode_errors_total{reason="malformed"|"other"}. Register its
// collectors in the product's registry; Counted attaches it to a decoder.
type Metrics struct {
	decoded *prometheus.CounterVec
	errors  *prometheus.CounterVec
}

// NewMetrics returns counters with the given constant labels (the product,
// for instance).
func NewMetrics(constLabels prometheus.Labels) *Metrics {
	return &Metrics{
		decoded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_cdc_decoded_records_total", Help: "Input records a CDC decoder read, by format and topic.", ConstLabels: constLabels,
		}, []string{"format", "topic"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_cdc_decode_errors_total", ConstLabels: constLabels,
			Help: "Input records a CDC decoder could not read, by format, topic and reason: malformed (the record's fault, dead-lettered) or other (retried).",
		}, []string{"format", "topic", "reason"}),
	}
}

// Collectors are the series to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.decoded, m.errors}
}

// Counted wraps d so every record it decodes for topic is counted in m.
// Records are counted as they are decoded, not when a batch commits: a
// batch consumed again is decoded, and counted, again.
func Counted(d Decoder, format, topic string, m *Metrics) MultiDecoder {
	return counted{d: d, decoded: m.decoded.WithLabelValues(format, topic),
		malformed: m.errors.WithLabelValues(format, topic, "malformed"), other: m.errors.WithLabelValues(format, topic, "other")}
}

type counted struct {
	d                         Decoder
	decoded, malformed, other prometheus.Counter
}

func (c counted) count(err error) {
	switch {
	case err == nil:
		c.decoded.Inc()
	case errors.Is(err, ErrMalformed):
		c.malformed.Inc()
	default:
		c.other.Inc()
	}
}

func (c counted) Decode(key, value []byte, ch *Change) error {
	err := c.d.Decode(key, value, ch)
	if !errors.Is(err, ErrMultiRow) {
		c.count(err)
	}
	return err
}

func (c counted) DecodeAll(ctx context.Context, key, value []byte, dst []Change) ([]Change, error) {
	out, err := DecodeAll(ctx, c.d, key, value, dst)
	c.count(err)
	return out, err
}
