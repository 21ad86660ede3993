package enrich

import (
	"context"
	"fmt"
	"regexp"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Environment sets service.environment, and so the data stream namespace,
// by the first of these rules that gives a non-empty value:
//  1. the namespace's label NamespaceLabel;
//  2. the first capture group of NamespaceRegex on the namespace name;
//  3. Namespaces, a fixed namespace → environment map;
//  4. Default.
//
// Rules 2 to 4 need only the namespace name, so they apply to the events of
// a pod the agent sent no metadata for.
type Environment struct {
	NamespaceLabel string            // empty: rule 1 off
	NamespaceRegex *regexp.Regexp    // nil: rule 2 off; has a capture group
	Namespaces     map[string]string // rule 3
	Default        string            // rule 4; empty: no environment (data stream namespace "default")
}

// NewEnvironment returns the rules, compiling regex (empty: rule off), which
// must have a capture group.
func NewEnvironment(label, regex string, namespaces map[string]string, def string) (*Environment, error) {
	s := &Environment{NamespaceLabel: label, Namespaces: namespaces, Default: def}
	if regex != "" {
		re, err := CompileNamespaceRegex(regex)
		if err != nil {
			return nil, err
		}
		s.NamespaceRegex = re
	}
	return s, nil
}

// CompileNamespaceRegex compiles the namespace_regex rule: a valid regular
// expression (RE2 syntax) with at least one capture group.
func CompileNamespaceRegex(expr string) (*regexp.Regexp, error) {
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, err
	}
	if re.NumSubexp() == 0 {
		return nil, fmt.Errorf("%q has no capture group: the environment is its first group", expr)
	}
	return re, nil
}

// Enrich implements Stage.
func (s *Environment) Enrich(_ context.Context, p *ferryv1.Pod, m *event.Meta) {
	m.Environment = s.Of(p)
}

// Of returns the environment of pod p.
func (s *Environment) Of(p *ferryv1.Pod) string {
	if s.NamespaceLabel != "" {
		if v := p.GetNamespaceLabels()[s.NamespaceLabel]; v != "" {
			return v
		}
	}
	ns := p.GetNamespace()
	if s.NamespaceRegex != nil {
		if g := s.NamespaceRegex.FindStringSubmatchIndex(ns); g != nil && g[2] >= 0 && g[3] > g[2] {
			return ns[g[2]:g[3]]
		}
	}
	if v := s.Namespaces[ns]; v != "" {
		return v
	}
	return s.Default
}
