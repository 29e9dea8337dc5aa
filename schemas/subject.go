package schemas

import (
	"errors"
	"fmt"
)

// SubjectNaming is how an output port's subject is named, after Confluent's
// subject name strategies.
type SubjectNaming string

const (
	// TopicName: "<topic>-value". One schema lineage per topic; the default,
	// and the only strategy Confluent's registry UI and most tools assume.
	TopicName SubjectNaming = "TopicName"
	// RecordName: "<record full name>". One lineage per record type, shared
	// by every topic that carries it.
	RecordName SubjectNaming = "RecordName"
	// TopicRecordName: "<topic>-<record full name>". One lineage per record
	// type per topic, for topics that carry several record types.
	TopicRecordName SubjectNaming = "TopicRecordName"
)

// confluentStrategies maps the Java class names Confluent's serializer
// configuration uses, so a value copied from a Kafka client config works.
var confluentStrategies = map[string]SubjectNaming{
	"io.confluent.kafka.serializers.subject.TopicNameStrategy":       TopicName,
	"io.confluent.kafka.serializers.subject.RecordNameStrategy":      RecordName,
	"io.confluent.kafka.serializers.subject.TopicRecordNameStrategy": TopicRecordName,
}

// ParseSubjectNaming accepts the three names above, Confluent's Java class
// names for them, and "" for TopicName.
func ParseSubjectNaming(s string) (SubjectNaming, error) {
	switch n := SubjectNaming(s); n {
	case "":
		return TopicName, nil
	case TopicName, RecordName, TopicRecordName:
		return n, nil
	}
	if n, ok := confluentStrategies[s]; ok {
		return n, nil
	}
	return "", fmt.Errorf("subject naming %q is not one of TopicName, RecordName, TopicRecordName", s)
}

// SubjectFor returns the value subject for records of s on topic.
func SubjectFor(strategy SubjectNaming, topic string, s *Schema) (string, error) {
	n, err := ParseSubjectNaming(string(strategy))
	if err != nil {
		return "", fmt.Errorf("schemas: %w", err)
	}
	if n != RecordName && topic == "" {
		return "", errors.New("schemas: SubjectFor: empty topic")
	}
	if n != TopicName && s == nil {
		return "", fmt.Errorf("schemas: SubjectFor: %s needs the schema", n)
	}
	switch n {
	case RecordName:
		return s.RowName(), nil
	case TopicRecordName:
		return topic + "-" + s.RowName(), nil
	}
	return topic + "-value", nil
}
