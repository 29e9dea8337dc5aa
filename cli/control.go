package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func init() {
	register(command{name: "forget", synopsis: "SUBJECT --url URL  erase a data subject's pii from a running product (governance)", run: plain(cmdForget)})
	register(command{name: "control pause", synopsis: "--url URL  stop a running product consuming (owner)", run: plain(controlCmd("control pause", "pause", ""))})
	register(command{name: "control resume", synopsis: "--url URL  let a paused product consume again (owner)", run: plain(controlCmd("control resume", "resume", ""))})
	register(command{name: "control reprocess", synopsis: "TOPIC PARTITION OFFSET --url URL  consume a partition again from an offset (owner)", run: plain(controlCmd("control reprocess", "reprocess", "TOPIC PARTITION OFFSET"))})
	register(command{name: "control policy", synopsis: "TARGET=ACTION... --url URL  set what the output port does with classified fields (governance)", run: plain(controlCmd("control policy", "policies", "TARGET=ACTION..."))})
}

// controlFlags are the flags every control command takes.
type controlFlags struct {
	url, token, reason string
	wait               time.Duration
	json               bool
}

func (c *controlFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "the product's management port, e.g. http://127.0.0.1:8080 (required)")
	fs.StringVar(&c.token, "token", "", "bearer token (default: $MESHLET_TOKEN)")
	fs.StringVar(&c.reason, "reason", "", "why, for the audit trail")
	fs.DurationVar(&c.wait, "wait", 30*time.Second, "how long to wait for the replicas to apply it (0: do not wait)")
	fs.BoolVar(&c.json, "json", false, "print the command and each replica's outcome as JSON")
}

func cmdForget(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("forget", "forget SUBJECT --url URL [--token T]\n\nDestroys the key that seals the data subject's pii fields in the product's change log:\nqueries and replays show those fields erased from then on, and the log still verifies.\nNeeds a governance token.", stderr)
	var c controlFlags
	c.register(fs)
	rest, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if err := wantArgs(fs, "forget", rest, "SUBJECT"); err != nil {
		return err
	}
	if c.url == "" {
		fs.Usage()
		return usageError("forget: missing --url, the product's management port")
	}
	return c.issue(ctx, "forget", map[string]any{"subject": rest[0]}, stdout)
}

// controlCmd runs the command name, which sends kind (the control port's
// route) with the operands its usage line names.
func controlCmd(name, kind, operands string) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlags(name, name+" "+operands+" --url URL [--token T]\n\nSends a control command to every replica of a running product and waits until they applied it.", stderr)
		var c controlFlags
		c.register(fs)
		rest, err := parseInterleaved(fs, args)
		if err != nil {
			return err
		}
		body := map[string]any{}
		switch kind {
		case "reprocess":
			if len(rest) != 3 {
				break
			}
			p, perr := strconv.ParseInt(rest[1], 10, 32)
			o, oerr := strconv.ParseInt(rest[2], 10, 64)
			if perr != nil || oerr != nil {
				return usageError("%s: PARTITION and OFFSET must be integers, got %q %q", name, rest[1], rest[2])
			}
			body = map[string]any{"topic": rest[0], "partition": p, "offset": o}
		case "policies":
			actions := map[string]string{}
			for _, r := range rest {
				target, action, ok := strings.Cut(r, "=")
				if !ok {
					return usageError("%s: %q: want TARGET=ACTION, e.g. pii=mask", name, r)
				}
				actions[target] = action
			}
			if len(actions) > 0 {
				body = map[string]any{"actions": actions}
			}
		}
		switch {
		case c.url == "":
			fs.Usage()
			return usageError("%s: missing --url, the product's management port", name)
		case operands == "" && len(rest) > 0:
			fs.Usage()
			return usageError("%s takes no arguments, got %q", name, rest)
		case operands != "" && len(body) == 0:
			fs.Usage()
			return usageError("%s: missing %s", name, operands)
		}
		return c.issue(ctx, kind, body, stdout)
	}
}

// issue sends one command to the control port and reports what each
// replica did with it.
func (c *controlFlags) issue(ctx context.Context, kind string, body map[string]any, stdout io.Writer) error {
	token := c.token
	if token == "" {
		token = os.Getenv("MESHLET_TOKEN")
	}
	if c.reason != "" {
		body["reason"] = c.reason
	}
	data, _ := json.Marshal(body)
	method := http.MethodPost
	if kind == "policies" {
		method = http.MethodPut
	}
	base := strings.TrimSuffix(c.url, "/")
	var issued struct {
		ID    string `json:"command_id"`
		Error string `json:"error"`
	}
	code, err := controlCall(ctx, method, base+"/v1/control/"+kind, token, data, &issued)
	if err != nil {
		return err
	}
	if code != http.StatusAccepted {
		return fmt.Errorf("%s %s: %d: %s", method, base+"/v1/control/"+kind, code, issued.Error)
	}
	type outcome struct {
		Replica string `json:"replica"`
		State   string `json:"state"`
		Detail  string `json:"detail,omitempty"`
	}
	report := struct {
		Command  string    `json:"command"`
		ID       string    `json:"command_id"`
		Outcomes []outcome `json:"outcomes"`
	}{Command: kind, ID: issued.ID, Outcomes: []outcome{}}
	printJSON := func() error {
		if !c.json {
			return nil
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	if !c.json {
		fmt.Fprintf(stdout, "%s: command %s accepted\n", kind, issued.ID)
	}
	if c.wait <= 0 {
		return printJSON()
	}
	deadline := time.Now().Add(c.wait)
	for {
		var res struct {
			Outcomes []struct {
				Replica, State, Detail string
			} `json:"outcomes"`
		}
		if _, err := controlCall(ctx, http.MethodGet, base+"/v1/control/commands/"+issued.ID, token, nil, &res); err != nil {
			return err
		}
		if len(res.Outcomes) > 0 {
			failed := 0
			for _, o := range res.Outcomes {
				report.Outcomes = append(report.Outcomes, outcome{o.Replica, o.State, o.Detail})
				if !c.json {
					fmt.Fprintf(stdout, "  replica %s: %s %s\n", o.Replica, o.State, o.Detail)
				}
				if o.State != "applied" {
					failed++
				}
			}
			if err := printJSON(); err != nil {
				return err
			}
			if failed > 0 {
				return fmt.Errorf("%s: %d replica(s) did not apply command %s", kind, failed, issued.ID)
			}
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no replica reported command %s within %s; it may still be applied (GET %s/v1/control/commands/%s)",
				kind, issued.ID, c.wait, base, issued.ID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func controlCall(ctx context.Context, method, url, token string, body []byte, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("management port unreachable: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return resp.StatusCode, errors.New("refused: no valid token (give --token or set MESHLET_TOKEN)")
	case http.StatusForbidden:
		var e struct {
			Need []string `json:"need"`
			Have string   `json:"have"`
		}
		json.Unmarshal(data, &e)
		return resp.StatusCode, fmt.Errorf("refused: this needs the role %s; the token has %s", strings.Join(e.Need, " or "), e.Have)
	}
	if len(data) > 0 && v != nil {
		if err := json.Unmarshal(data, v); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: %d: %s", method, url, resp.StatusCode, bytes.TrimSpace(data))
		}
	}
	return resp.StatusCode, nil
}
