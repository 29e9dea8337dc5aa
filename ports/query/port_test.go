package query

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/internal/localredis/redistest"
)

// TestEntityOfEachPort: one key on two output ports is two entities; the
// query port answers each by ?port=, from the index and from Redis.
func TestEntityOfEachPort(t *testing.T) {
	e := func(sys string, port string) auditlog.Entry {
		return auditlog.Entry{SystemTime: us(sys), ValidFrom: us(sys), Op: auditlog.OpAssert, Key: []byte("101"), Port: port}
	}
	root := productLog(t, []auditlog.Entry{e("2026-01-01T00:00:00Z", ""), e("2026-01-02T00:00:00Z", "names"), e("2026-01-03T00:00:00Z", "")},
		[]map[string]any{{"id": 101, "name": "first v1"}, {"id": 101, "name": "names v1"}, {"id": 101, "name": "first v2"}})
	st, err := auditlog.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	dec, err := NewDecoder(SchemaDir(root), "")
	if err != nil {
		t.Fatal(err)
	}
	rs := NewRedisStore(redistest.Client(t), "inventory")
	var facts []auditlog.Fact
	st.Replay(0, auditlog.Latest, func(f *auditlog.Fact) error {
		facts = append(facts, f.Clone())
		return nil
	})
	if err := rs.Apply(context.Background(), facts...); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	srv := httptest.NewServer(&Handler{Store: st, Current: rs, Decoder: dec, Ports: []string{"products", "names"}, Now: func() time.Time { return now }})
	defer srv.Close()
	for _, c := range []struct{ query, want string }{
		{"", "first v2"}, {"?port=products", "first v2"}, {"?port=names", "names v1"},
		{"?port=names&validAt=2026-03-01T00:00:00Z", "names v1"}, {"?port=products&validAt=2026-01-02T12:00:00Z", "first v1"},
	} {
		resp, err := http.Get(srv.URL + "/v1/entities/101" + c.query)
		if err != nil {
			t.Fatal(err)
		}
		var ans entityAnswer
		err = json.NewDecoder(resp.Body).Decode(&ans)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || ans.Entry == nil || ans.Entry.Fields["name"] != c.want {
			t.Errorf("GET 101%s: %d %+v, %v; want %q", c.query, resp.StatusCode, ans.Entry, err, c.want)
		}
	}
	resp, err := http.Get(srv.URL + "/v1/entities/101/history?port=names")
	if err != nil {
		t.Fatal(err)
	}
	var h historyAnswer
	json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if h.Total != 1 {
		t.Errorf("history of 101 on port names: %d versions, want its one", h.Total)
	}
	resp, err = http.Get(srv.URL + "/v1/entities/101?port=nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown port answers %d, want 400", resp.StatusCode)
	}
}
