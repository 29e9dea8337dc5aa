package cli

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/mod/sumdb/note"

	"github.com/meshlet/meshlet/auditlog"
	"github.com/meshlet/meshlet/ports/kafka"
)

// verifyKafka is audit verify --kafka: every log of product, checked from
// its changelog topic.
func verifyKafka(ctx context.Context, stdout io.Writer, brokers, product, key string, asJSON bool) error {
	var v note.Verifier
	if key != "" {
		var err error
		if v, err = auditlog.ReadVerifier(key); err != nil {
			return err
		}
	}
	reports, err := kafka.VerifyChangelog(ctx, []kgo.Opt{kgo.SeedBrokers(strings.Split(brokers, ",")...)}, product, v)
	if len(reports) == 0 && err == nil {
		return fmt.Errorf("the changelog topic %s holds no change log", kafka.ChangelogTopic(product))
	}
	if asJSON {
		type logJSON struct {
			Log        string `json:"log"`
			Partition  int32  `json:"partition"`
			Entries    uint64 `json:"entries"`
			Head       string `json:"head"`
			Checkpoint uint64 `json:"checkpoint"`
			OK         bool   `json:"ok"`
			Error      string `json:"error,omitempty"`
		}
		out := struct {
			Topic string    `json:"topic"`
			OK    bool      `json:"ok"`
			Logs  []logJSON `json:"logs"`
		}{Topic: kafka.ChangelogTopic(product), OK: err == nil}
		for _, r := range reports {
			j := logJSON{Log: r.Log, Partition: r.Partition, Entries: r.Entries, Head: hex.EncodeToString(r.Head[:]), Checkpoint: r.Checkpoint, OK: r.Err == nil}
			if r.Err != nil {
				j.Error = r.Err.Error()
			}
			out.Logs = append(out.Logs, j)
		}
		if jerr := writeJSON(stdout, out); jerr != nil {
			return jerr
		}
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "LOG\tPARTITION\tENTRIES\tHEAD\tCHECKPOINT\tRESULT")
	for _, r := range reports {
		result, cp := "ok", "-"
		if r.Err != nil {
			result = "FAILED"
		}
		if r.Checkpoint > 0 {
			cp = fmt.Sprint(r.Checkpoint)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\n", r.Log, r.Partition, r.Entries, hex.EncodeToString(r.Head[:8]), cp, result)
	}
	tw.Flush()
	if key == "" {
		fmt.Fprintln(stdout, "checkpoints checked with the verifier key published in the checkpoints topic: pass --key with a key you obtained independently to rule out a replaced key")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified %d change log(s) from %s: every entry checks out\n", len(reports), kafka.ChangelogTopic(product))
	return nil
}
