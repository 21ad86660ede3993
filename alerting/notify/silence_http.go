package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// SilenceAPI serves the silences over HTTP on the aggregator's http address:
//
//	GET    /api/silences        every silence, newest first, with "active"
//	POST   /api/silences        {"matchers": ["severity=\"warning\""], "duration": "2h", "created_by": "", "comment": ""}
//	                            (or "ends_at" in RFC 3339 instead of duration): 201 and the silence
//	DELETE /api/silences/{id}   expires it now: 200 and the silence, 404 if unknown
//
// Changed is called after a silence was added or expired (the dispatcher's
// ReloadSilences), so it applies at once.
type SilenceAPI struct {
	Store   SilenceStore
	Now     func() time.Time
	Changed func()
}

// SilenceView is a silence as the API and `aggregator silence list` show it.
type SilenceView struct {
	Silence
	Active bool `json:"active"`
}

type silenceRequest struct {
	Matchers  []string  `json:"matchers"`
	Duration  string    `json:"duration"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
}

func (a *SilenceAPI) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *SilenceAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.Trim(strings.TrimPrefix(r.URL.Path, "/api/silences"), "/")
	switch {
	case r.Method == http.MethodGet && id == "":
		all, err := a.Store.List(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		now := a.now()
		out := make([]SilenceView, 0, len(all))
		for _, s := range all {
			out = append(out, SilenceView{s, s.Active(now)})
		}
		writeJSON(w, http.StatusOK, out)
	case r.Method == http.MethodPost && id == "":
		var req silenceRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			http.Error(w, "body: "+err.Error(), http.StatusBadRequest)
			return
		}
		now := a.now()
		d := req.EndsAt.Sub(now)
		if req.Duration != "" {
			var err error
			if d, err = time.ParseDuration(req.Duration); err != nil {
				http.Error(w, "duration: "+err.Error(), http.StatusBadRequest)
				return
			}
		} else if req.EndsAt.IsZero() {
			http.Error(w, "duration or ends_at is required", http.StatusBadRequest)
			return
		}
		s, err := NewSilence(req.Matchers, now, d, req.CreatedBy, req.Comment)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := a.Store.Put(r.Context(), s); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		a.changed()
		writeJSON(w, http.StatusCreated, SilenceView{s, s.Active(now)})
	case r.Method == http.MethodDelete && id != "":
		now := a.now()
		s, err := Expire(r.Context(), a.Store, id, now)
		if errors.Is(err, ErrNoSilence) {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		a.changed()
		writeJSON(w, http.StatusOK, SilenceView{s, s.Active(now)})
	default:
		w.Header().Set("Allow", "GET, POST, DELETE")
		http.Error(w, fmt.Sprintf("%s %s: not supported", r.Method, r.URL.Path), http.StatusMethodNotAllowed)
	}
}

func (a *SilenceAPI) changed() {
	if a.Changed != nil {
		a.Changed()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
