package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/meshlet/meshlet/cdc"
	"github.com/meshlet/meshlet/schemas"
)

// avroSource lets the debezium-avro decoder read through the registry with
// the hardened decoder of package schemas. What the registry cannot know
// (an unknown schema id) or cannot decode is the event's fault: malformed.
// Anything else (the registry is down) is transient and retried.
type avroSource struct{ reg *schemas.Registry }

func (s avroSource) DecodeMap(ctx context.Context, wire []byte) (int, map[string]any, error) {
	id, m, err := s.reg.DecodeMap(ctx, wire)
	if errors.Is(err, schemas.ErrMalformed) || schemaNotFound(err) {
		err = fmt.Errorf("%w: %w", cdc.ErrMalformed, err)
	}
	return id, m, err
}

func (s avroSource) SchemaText(ctx context.Context, id int) (string, error) {
	got, err := s.reg.Client().SchemaByID(ctx, id)
	if err != nil {
		if schemaNotFound(err) {
			err = fmt.Errorf("%w: schema id %d: %w", cdc.ErrMalformed, id, err)
		}
		return "", err
	}
	return got.Schema, nil
}

func schemaNotFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && (re.ErrorCode == sr.ErrSchemaNotFound.Code || re.StatusCode == http.StatusNotFound)
}
