package notify

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RouteConfig is one node of the route tree as configured. Zero timings and
// an empty receiver or group_by are inherited from the parent; GroupWait is a
// pointer because 0s is a valid (send at once) value.
type RouteConfig struct {
	Receiver       string
	GroupBy        []string
	GroupWait      *time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
	Matchers       []string
	Continue       bool
	Routes         []RouteConfig
}

// Defaults of the root route, as in Alertmanager.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
)

// Route is a node of the built route tree with everything inherited.
type Route struct {
	ID             string // position in the tree, e.g. "0.1.0"; part of group keys
	Receiver       string
	GroupBy        []string // "..." alone: every label
	GroupWait      time.Duration
	GroupInterval  time.Duration
	RepeatInterval time.Duration
	Matchers       []Matcher
	Continue       bool
	Routes         []*Route
}

// BuildRoute builds the tree of c, the root, inheriting receiver, group_by
// and timings down the tree. receivers are the configured receiver names; a
// route naming another is an error.
func BuildRoute(c RouteConfig, receivers []string) (*Route, error) {
	root := &Route{GroupWait: DefaultGroupWait, GroupInterval: DefaultGroupInterval, RepeatInterval: DefaultRepeatInterval}
	return build(c, root, "0", receivers)
}

func build(c RouteConfig, parent *Route, id string, receivers []string) (*Route, error) {
	r := &Route{ID: id, Receiver: parent.Receiver, GroupBy: parent.GroupBy, GroupWait: parent.GroupWait,
		GroupInterval: parent.GroupInterval, RepeatInterval: parent.RepeatInterval, Continue: c.Continue}
	if c.Receiver != "" {
		r.Receiver = c.Receiver
	}
	if c.GroupBy != nil {
		r.GroupBy = c.GroupBy
	}
	if c.GroupWait != nil {
		r.GroupWait = *c.GroupWait
	}
	if c.GroupInterval > 0 {
		r.GroupInterval = c.GroupInterval
	}
	if c.RepeatInterval > 0 {
		r.RepeatInterval = c.RepeatInterval
	}
	if r.Receiver == "" {
		return nil, fmt.Errorf("route %s: no receiver", id)
	}
	if !slices.Contains(receivers, r.Receiver) {
		return nil, fmt.Errorf("route %s: receiver %q is not configured", id, r.Receiver)
	}
	ms, err := ParseMatchers(c.Matchers)
	if err != nil {
		return nil, fmt.Errorf("route %s: %w", id, err)
	}
	r.Matchers = ms
	for i, sub := range c.Routes {
		s, err := build(sub, r, id+"."+strconv.Itoa(i), receivers)
		if err != nil {
			return nil, err
		}
		r.Routes = append(r.Routes, s)
	}
	return r, nil
}

// Match returns the routes an alert with labels goes to, as Alertmanager
// does: depth first, a node's children in order; the first child that
// matches takes the alert unless it has continue: true, in which case the
// next children are tried too; a node none of whose children matched takes
// the alert itself. The root matches every alert.
func (r *Route) Match(labels map[string]string) []*Route {
	if !matchAll(r.Matchers, labels) {
		return nil
	}
	var out []*Route
	for _, c := range r.Routes {
		m := c.Match(labels)
		out = append(out, m...)
		if len(m) > 0 && !c.Continue {
			break
		}
	}
	if len(out) == 0 {
		out = []*Route{r}
	}
	return out
}

// groupLabels returns the labels of an alert that r groups by.
func (r *Route) groupLabels(labels map[string]string) map[string]string {
	if len(r.GroupBy) == 1 && r.GroupBy[0] == "..." {
		return clone(labels)
	}
	g := make(map[string]string, len(r.GroupBy))
	for _, k := range r.GroupBy {
		if v, ok := labels[k]; ok {
			g[k] = v
		}
	}
	return g
}

// groupKey names the group of a route and its group labels, stable across
// restarts: the route's position, receiver and the sorted group labels.
func groupKey(r *Route, gl map[string]string) string {
	keys := sortedKeys(gl)
	var b strings.Builder
	b.WriteString(r.ID + ":" + r.Receiver + ":{")
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Quote(gl[k]))
	}
	b.WriteByte('}')
	return b.String()
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
