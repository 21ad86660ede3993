package tail

import (
	"context"
	"time"

	"github.com/ferrylogs/ferry/pipeline/multiline"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// Multiline joining sits between parsing (after partial lines are joined)
// and the chunk: each finished line goes through put, which hands it to
// its stream's multiline.Joiner when the input has a rule. A group open in
// a joiner holds the file's safe end at its first line (safeEnd), so its
// offset is committed only once the whole group is sent and acknowledged.

// initRule sets the rule of the file: the input's, and asks for the pod's
// if the input can tell it.
func (fl *follower) initRule() {
	fl.ml = fl.in.Multiline
	fl.mlWait = fl.in.RuleFor != nil && fl.file != nil && fl.file.Kube != nil
	fl.pickPodRule()
}

// pickPodRule asks Input.RuleFor for the pod's rule; it is taken once
// known. A rule that is not built in is warned about and ignored.
func (fl *follower) pickPodRule() (changed bool) {
	if !fl.mlWait {
		return false
	}
	name, ok := fl.in.RuleFor(fl.file.Kube)
	if !ok {
		return false
	}
	fl.mlWait = false
	if name == "" {
		return false
	}
	spec, err := fl.in.Multiline.WithRule(name, fl.in.MaxLineBytes)
	if err != nil {
		if !fl.mlWarned {
			fl.mlWarned = true
			fl.log.Warn("pod annotation names no multiline rule: the input's rule applies", "path", fl.path, "err", err)
		}
		return false
	}
	if spec == nil && fl.ml == nil || spec != nil && fl.ml != nil && spec.Rule() == fl.ml.Rule() && fl.ml.Rule() != multiline.RuleCustom {
		return false
	}
	fl.ml = spec
	return true
}

// resolveRule takes the pod's rule once its metadata is known, sending
// the groups open under the rule before.
func (fl *follower) resolveRule(ctx context.Context) error {
	if !fl.mlWait {
		return nil
	}
	old := fl.ml
	if !fl.pickPodRule() {
		return nil
	}
	next := fl.ml
	fl.ml = old
	if err := fl.flushGroups(ctx, true); err != nil {
		fl.mlWait = true // ask again
		return err
	}
	fl.ml, fl.mls = next, [3]*multiline.Joiner{}
	fl.log.Debug("multiline rule from the pod", "path", fl.path, "rule", next.Rule())
	return nil
}

// joiner returns the joiner of stream s, nil without a rule.
func (fl *follower) joiner(s ferryv1.StreamName) *multiline.Joiner {
	if fl.ml == nil {
		return nil
	}
	i := int(s) % len(fl.mls)
	if fl.mls[i] == nil {
		fl.mls[i] = multiline.NewJoiner(fl.ml)
	}
	return fl.mls[i]
}

// put adds the event of one finished line, whose message ends the
// chunk's arena, to the chunk, or hands it to its stream's joiner. end is
// the offset just past the line.
func (fl *follower) put(r Rec, end int64) {
	c := fl.chunk
	if fl.ml == nil {
		c.Recs = append(c.Recs, r)
		return
	}
	j := fl.joiner(r.Stream)
	if j.Alone(c.Arena[r.MsgStart:r.MsgEnd]) {
		c.Recs = append(c.Recs, r)
		return
	}
	l := multiline.Line{Off: r.Off, End: end, Time: r.Time, Flags: r.Flags, OrigTime: r.OrigTime}
	alone := j.Push(l, c.Arena[r.MsgStart:r.MsgEnd], fl.now)
	if !alone {
		c.Arena = c.Arena[:r.MsgStart] // the joiner has a copy
	}
	fl.putReady(j, r.Stream)
	if alone {
		c.Recs = append(c.Recs, r)
	}
}

// putReady adds the events the joiner finished to the chunk.
func (fl *follower) putReady(j *multiline.Joiner, s ferryv1.StreamName) {
	c := fl.chunk
	evs := j.Ready()
	if len(evs) == 0 {
		return
	}
	for i := range evs {
		e := &evs[i]
		start := len(c.Arena)
		c.Arena = append(c.Arena, e.Msg...)
		r := Rec{Off: e.Off, MsgStart: uint32(start), MsgEnd: uint32(len(c.Arena)), Time: e.Time, Stream: s, Flags: e.Flags, OrigTime: e.OrigTime}
		if e.Lines > 1 {
			r.End, r.Lines = e.End, uint32(e.Lines)
		}
		c.Recs = append(c.Recs, r)
	}
	c.count()
}

// flushGroups sends the open groups that took no line for flush_after, or
// all of them.
func (fl *follower) flushGroups(ctx context.Context, all bool) error {
	if fl.ml == nil {
		return nil
	}
	now := time.Now().UnixNano()
	for s, j := range fl.mls {
		if j == nil {
			continue
		}
		if _, open := j.Open(); !open || !all && !j.Stale(now) {
			continue
		}
		if err := fl.ensureRoom(ctx); err != nil {
			return err
		}
		j.Flush()
		fl.putReady(j, ferryv1.StreamName(s))
	}
	return nil
}
