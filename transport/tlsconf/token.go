package tlsconf

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Status messages of rejected RPCs.
const (
	MsgMissingToken = "missing bearer token"
	MsgInvalidToken = "invalid bearer token"
)

// ParseTokens reads a tokens file: one token per line; blank lines and
// lines starting with # are skipped, spaces around a token are dropped.
// A token is printable ASCII without spaces. Errors never quote a token.
func ParseTokens(data []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := CheckToken(line); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// CheckToken reports whether tok can be sent as a bearer token. The error
// does not quote it.
func CheckToken(tok string) error {
	if tok == "" {
		return errors.New("empty token")
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return errors.New("a token must be printable ASCII without spaces")
		}
	}
	return nil
}

// readToken reads a file holding one token (surrounding space dropped).
func readToken(file string) (string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(data))
	if tok == "" {
		return "", fmt.Errorf("no token in %s", file)
	}
	if err := CheckToken(tok); err != nil {
		return "", fmt.Errorf("%s: %w", file, err)
	}
	return tok, nil
}

// Bearer is the agent's grpc.PerRPCCredentials: it sends
// "authorization: Bearer <token>" with every RPC.
type Bearer struct {
	token    string
	file     *watched[string] // nil for a fixed token
	insecure bool
}

// NewBearer returns credentials sending token, or the token held by file
// (read again when it changes). Exactly one of them must be set.
func NewBearer(token, file string, o Options) (*Bearer, error) {
	b := &Bearer{token: token, insecure: o.AllowTokenWithoutTLS}
	switch {
	case (token == "") == (file == ""):
		return nil, errors.New("tlsconf: set either a bearer token or a token file")
	case file != "":
		var err error
		if b.file, err = newWatched("bearer token", []string{file}, o, func() (string, error) { return readToken(file) }, nil); err != nil {
			return nil, fmt.Errorf("bearer token file: %w", err)
		}
	default:
		if err := CheckToken(token); err != nil {
			return nil, fmt.Errorf("bearer token: %w", err)
		}
	}
	return b, nil
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b *Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	tok := b.token
	if b.file != nil {
		tok = b.file.get()
	}
	return map[string]string{"authorization": "Bearer " + tok}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials: true
// unless Options.AllowTokenWithoutTLS.
func (b *Bearer) RequireTransportSecurity() bool { return !b.insecure }

// Tokens is the aggregator's set of accepted bearer tokens: fixed ones and
// those of a file, read again when it changes.
type Tokens struct {
	fixed [][sha256.Size]byte
	file  *watched[[][sha256.Size]byte] // nil without a file
	guard *guard                        // nil without a file
	log   *slog.Logger
	lim   *limiter
}

// NewTokens accepts tokens and those of file (see ParseTokens); at least one
// token must result. A file without tokens is an error, at start and at
// reload (where the previous tokens stay).
func NewTokens(tokens []string, file string, o Options) (*Tokens, error) {
	t := &Tokens{log: o.logger(), lim: newLimiter(o.logInterval())}
	for i, tok := range tokens {
		if err := CheckToken(tok); err != nil {
			return nil, fmt.Errorf("bearer token %d: %w", i, err)
		}
		t.fixed = append(t.fixed, sha256.Sum256([]byte(tok)))
	}
	if file != "" {
		load := func() ([][sha256.Size]byte, error) {
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, err
			}
			toks, err := ParseTokens(data)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if len(toks) == 0 {
				return nil, fmt.Errorf("no token in %s", file)
			}
			sums := make([][sha256.Size]byte, len(toks))
			for i, tok := range toks {
				sums[i] = sha256.Sum256([]byte(tok))
			}
			return sums, nil
		}
		describe := func(s [][sha256.Size]byte) []any { return []any{"tokens", len(s)} }
		var err error
		if t.file, err = newWatched("bearer tokens", []string{file}, o, load, describe); err != nil {
			return nil, fmt.Errorf("bearer tokens file: %w", err)
		}
		t.guard = newGuard("bearer token", []string{file}, o, t.file.look)
	}
	if t.file == nil && len(t.fixed) == 0 {
		return nil, errors.New("tlsconf: no bearer token to accept")
	}
	return t, nil
}

// check returns nil if ctx carries an accepted token, else an
// Unauthenticated status.
func (t *Tokens) check(ctx context.Context, method string) error {
	_, err := t.token(ctx, method)
	return err
}

// token returns the digest of the accepted token ctx carries, or an
// Unauthenticated status.
func (t *Tokens) token(ctx context.Context, method string) ([sha256.Size]byte, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return [sha256.Size]byte{}, t.reject(ctx, method, MsgMissingToken)
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return [sha256.Size]byte{}, t.reject(ctx, method, MsgMissingToken)
	}
	// Digests have one length: the comparison time says nothing about the
	// token's length or content, and every accepted token is compared.
	sum := sha256.Sum256([]byte(tok))
	if !t.accepts(sum) {
		return [sha256.Size]byte{}, t.reject(ctx, method, MsgInvalidToken)
	}
	return sum, nil
}

func (t *Tokens) reject(ctx context.Context, method, msg string) error {
	addr := "unknown"
	if p, ok := peer.FromContext(ctx); ok {
		addr = addrString(p.Addr)
	}
	if ok, n := t.lim.note(hostOf(addr)); ok {
		t.log.Warn("rejected an RPC: "+msg, "peer", addr, "method", method, "failures", n)
	}
	return status.Error(codes.Unauthenticated, msg)
}

// UnaryInterceptor rejects unary RPCs without an accepted token.
func (t *Tokens) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		if err := t.check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor rejects streams without an accepted token. With a
// tokens file, it also ends open streams whose token the file no longer
// holds, within a look at the file (fsnotify, else Options.CheckInterval)
// of its change: the stream's context is cancelled with an Unauthenticated
// status (MsgRevokedToken) as the cause, which the handler returns (see
// transport.Server), and the aggregator logs the peer (never the token).
func (t *Tokens) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		sum, err := t.token(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		if t.guard == nil {
			return handler(srv, ss)
		}
		check := func(time.Time) error {
			if !t.accepts(sum) {
				return status.Error(codes.Unauthenticated, MsgRevokedToken)
			}
			return nil
		}
		return t.guard.serve(srv, ss, info, handler, check, time.Time{})
	}
}
