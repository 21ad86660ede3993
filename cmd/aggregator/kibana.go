package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ferrylogs/ferry/deploy/kibana"
)

func kibanaUsage(w io.Writer) {
	fmt.Fprint(w, `usage: aggregator kibana import --url URL [--username U --password-file F | --api-key-file F]
                                [--space S] [--ca-file F] [--timeout D]
       aggregator kibana ndjson       print Ferry's saved objects as NDJSON

import sends Ferry's data views, searches, visualizations, map and dashboards to
Kibana's saved-objects import API with overwrite=true, and fails unless every
object was imported.
`)
}

// kibanaCommand runs `aggregator kibana ...` and returns the exit code.
func kibanaCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		kibanaUsage(stderr)
		return 2
	}
	switch args[0] {
	case "ndjson":
		b, err := kibana.NDJSON()
		if err != nil {
			fmt.Fprintln(stderr, "aggregator kibana:", err)
			return 1
		}
		_, _ = stdout.Write(b)
		return 0
	case "import":
	default:
		kibanaUsage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("aggregator kibana import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { kibanaUsage(stderr) }
	var o kibanaImport
	fs.StringVar(&o.url, "url", "", "Kibana's base URL, e.g. https://kibana:5601 (with its base path, if any)")
	fs.StringVar(&o.username, "username", "", "user for basic authentication (with --password-file)")
	fs.StringVar(&o.passwordFile, "password-file", "", "file holding the password")
	fs.StringVar(&o.apiKeyFile, "api-key-file", "", "file holding an API key (the encoded id:key), sent as Authorization: ApiKey")
	fs.StringVar(&o.space, "space", "", "Kibana space id (default: the default space)")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM file of the CA that signed Kibana's certificate")
	fs.DurationVar(&o.timeout, "timeout", time.Minute, "give up after this long")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "aggregator kibana import: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	n, err := o.run(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "aggregator kibana import:", err)
		return 1
	}
	fmt.Fprintf(stdout, "imported %d saved objects into %s\n", n, o.target())
	return 0
}

// kibanaImport is one `aggregator kibana import`.
type kibanaImport struct {
	url, username, passwordFile, apiKeyFile, space, caFile string
	timeout                                                time.Duration
}

func (o *kibanaImport) target() string {
	if o.space == "" {
		return o.url
	}
	return o.url + " (space " + o.space + ")"
}

// endpoint is the import URL: <url>[/s/<space>]/api/saved_objects/_import?overwrite=true.
func (o *kibanaImport) endpoint() (string, error) {
	u, err := url.Parse(o.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("--url %q: want http(s)://host[:port][/base-path]", o.url)
	}
	p := strings.TrimSuffix(u.Path, "/")
	if o.space != "" && o.space != "default" {
		p += "/s/" + url.PathEscape(o.space)
	}
	u.Path = p + "/api/saved_objects/_import"
	u.RawPath = ""
	u.RawQuery = "overwrite=true"
	return u.String(), nil
}

// readSecret reads a secret file, without its trailing newline.
func readSecret(flagName, file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flagName, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s: %s is empty", flagName, file)
	}
	return s, nil
}

// request builds the import request: the NDJSON as the multipart part
// "file", kbn-xsrf, and the credentials.
func (o *kibanaImport) request(ctx context.Context, ndjson []byte) (*http.Request, error) {
	endpoint, err := o.endpoint()
	if err != nil {
		return nil, err
	}
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="ferry.ndjson"`)
	h.Set("Content-Type", "application/ndjson")
	part, err := mw.CreatePart(h)
	if err == nil {
		_, err = part.Write(ndjson)
	}
	if err == nil {
		err = mw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("build the import request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, &body)
	if err != nil {
		return nil, fmt.Errorf("build the import request: %w", err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("kbn-xsrf", "true")
	switch {
	case o.apiKeyFile != "" && (o.username != "" || o.passwordFile != ""):
		return nil, errors.New("give either --api-key-file or --username with --password-file, not both")
	case o.apiKeyFile != "":
		key, err := readSecret("--api-key-file", o.apiKeyFile)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "ApiKey "+key)
	case o.username != "" || o.passwordFile != "":
		if o.username == "" || o.passwordFile == "" {
			return nil, errors.New("--username and --password-file go together")
		}
		pw, err := readSecret("--password-file", o.passwordFile)
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(o.username, pw)
	}
	return req, nil
}

func (o *kibanaImport) client() (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-file %s: no PEM certificate in it", o.caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr}, nil
}

// importResponse is the body of POST /api/saved_objects/_import.
type importResponse struct {
	Success        bool `json:"success"`
	SuccessCount   int  `json:"successCount"`
	SuccessResults []struct {
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"successResults"`
	Errors []struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Title string `json:"title"`
		Meta  struct {
			Title string `json:"title"`
		} `json:"meta"`
		Error struct {
			Type       string `json:"type"`
			Message    string `json:"message"`
			StatusCode int    `json:"statusCode"`
			References []struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			} `json:"references"`
		} `json:"error"`
	} `json:"errors"`
}

// run imports the objects and returns how many Kibana imported. Kibana
// answers a partial failure with HTTP 200: success is decided by the
// body's success, errors and successCount, object by object.
func (o *kibanaImport) run(ctx context.Context) (int, error) {
	if o.url == "" {
		return 0, errors.New("--url is required")
	}
	objs, err := kibana.Objects()
	if err != nil {
		return 0, err
	}
	ndjson, err := kibana.NDJSON()
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := o.request(ctx, ndjson)
	if err != nil {
		return 0, err
	}
	c, err := o.client()
	if err != nil {
		return 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err // *url.Error names the method and URL
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("read Kibana's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("%s: HTTP %d: %s", req.URL.Redacted(), resp.StatusCode, kibanaMessage(body))
	}
	var r importResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("%s: answer is not an import result: %w: %.200s", req.URL.Redacted(), err, body)
	}
	if len(r.Errors) > 0 || !r.Success {
		var lines []string
		for _, e := range r.Errors {
			title := e.Meta.Title
			if title == "" {
				title = e.Title
			}
			what := e.Error.Type
			if e.Error.Message != "" {
				what += ": " + e.Error.Message
			}
			for _, ref := range e.Error.References {
				what += fmt.Sprintf(" [%s %s]", ref.Type, ref.ID)
			}
			lines = append(lines, fmt.Sprintf("  %s %s (%q): %s", e.Type, e.ID, title, what))
		}
		return r.SuccessCount, fmt.Errorf("%d of %d objects not imported (%d imported):\n%s",
			len(objs)-r.SuccessCount, len(objs), r.SuccessCount, strings.Join(lines, "\n"))
	}
	if r.SuccessCount != len(objs) {
		return r.SuccessCount, fmt.Errorf("Kibana reports success but imported %d of %d objects", r.SuccessCount, len(objs))
	}
	return r.SuccessCount, nil
}

// kibanaMessage returns the message of a Kibana error body
// ({"statusCode":..,"error":..,"message":..}), else the start of the body.
func kibanaMessage(body []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && (e.Message != "" || e.Error != "") {
		return strings.TrimPrefix(e.Error+": "+e.Message, ": ")
	}
	if len(body) > 300 {
		body = body[:300]
	}
	return strings.TrimSpace(string(body))
}
