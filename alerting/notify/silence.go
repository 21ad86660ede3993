package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Silence mutes the alerts whose labels satisfy all its matchers between
// StartsAt and EndsAt. Expiring a silence sets EndsAt to now; silences are
// never deleted, so the list shows what was muted when.
type Silence struct {
	ID        string    `json:"id"`
	Matchers  []string  `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by,omitempty"`
	Comment   string    `json:"comment,omitempty"`
}

// Active reports whether s mutes alerts at now.
func (s *Silence) Active(now time.Time) bool { return !now.Before(s.StartsAt) && now.Before(s.EndsAt) }

// SilenceStore keeps silences durably, shared by the aggregator and the
// `aggregator silence` command.
type SilenceStore interface {
	// List returns every silence, expired ones included.
	List(ctx context.Context) ([]Silence, error)
	// Put stores s, replacing the silence with its ID.
	Put(ctx context.Context, s Silence) error
	// Where names the store for messages, e.g. the file or index.
	Where() string
}

// NewSilence validates matchers and returns a silence from now for d with
// a new ID.
func NewSilence(matchers []string, now time.Time, d time.Duration, by, comment string) (Silence, error) {
	if len(matchers) == 0 {
		return Silence{}, errors.New("a silence needs at least one matcher")
	}
	if _, err := ParseMatchers(matchers); err != nil {
		return Silence{}, err
	}
	if d <= 0 {
		return Silence{}, fmt.Errorf("duration %s: must be positive", d)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return Silence{ID: hex.EncodeToString(b[:]), Matchers: matchers, StartsAt: now.UTC(), EndsAt: now.Add(d).UTC(), CreatedBy: by, Comment: comment}, nil
}

// Expire ends the silence id in store at now. Expiring an expired silence
// is not an error.
func Expire(ctx context.Context, store SilenceStore, id string, now time.Time) (Silence, error) {
	all, err := store.List(ctx)
	if err != nil {
		return Silence{}, err
	}
	for _, s := range all {
		if s.ID != id {
			continue
		}
		if s.EndsAt.After(now) {
			s.EndsAt = now.UTC()
			if s.StartsAt.After(s.EndsAt) {
				s.StartsAt = s.EndsAt
			}
			if err := store.Put(ctx, s); err != nil {
				return Silence{}, err
			}
		}
		return s, nil
	}
	return Silence{}, fmt.Errorf("silence %s: %w", id, ErrNoSilence)
}

// ErrNoSilence: no silence has that ID.
var ErrNoSilence = errors.New("no such silence")

// silenced reports whether an active silence of ss mutes labels.
func silenced(ss []parsedSilence, labels map[string]string, now time.Time) bool {
	for _, s := range ss {
		if s.Active(now) && matchAll(s.m, labels) {
			return true
		}
	}
	return false
}

type parsedSilence struct {
	Silence
	m []Matcher
}

func parseSilences(all []Silence) []parsedSilence {
	out := make([]parsedSilence, 0, len(all))
	for _, s := range all {
		m, err := ParseMatchers(s.Matchers)
		if err != nil {
			continue // validated when added; a bad one mutes nothing
		}
		out = append(out, parsedSilence{s, m})
	}
	return out
}
