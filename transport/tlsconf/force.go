package tlsconf

import "time"

// reload loads the material again now, whatever the interval and the
// files' states say (an operator asked for it: SIGHUP), and returns what
// is current afterwards. It goes through get, so a failed load keeps the
// previous material and is logged as any failed reload.
func (w *watched[T]) reload() T {
	w.mu.Lock()
	w.next, w.good, w.bad = time.Time{}, nil, nil
	w.mu.Unlock()
	return w.get()
}

// Reload reads the CA and client certificate files again now, instead of at
// the next handshake after the check interval. Connections already open
// keep what they negotiated.
func (c *Client) Reload() {
	if c.cas != nil {
		c.cas.reload()
	}
	if c.cert != nil {
		c.cert.reload()
	}
}

// Reload reads the server certificate and client CA files again now.
// Connections already open keep what they negotiated.
func (s *Server) Reload() {
	s.cert.reload()
	if s.cas != nil {
		s.cas.reload()
	}
}

// Reload reads the token file again now; a fixed token stays.
func (b *Bearer) Reload() {
	if b.file != nil {
		b.file.reload()
	}
}

// Reload reads the tokens file again now; fixed tokens stay.
func (t *Tokens) Reload() {
	if t.file != nil {
		t.file.reload()
	}
}
