package event

// Addition is what a per-event enrichment stage (pipeline/enrich's GeoIP)
// adds to one event's document, from the event's own fields: JSON members,
// written after the event's typed fields, and the objects they fill (such
// as "source.geo" and "source.as"). A typed field of the event equal to one
// of the objects, above one or inside one is left out of the document: the
// enrichment's value wins and no key is written twice.
//
// An Addition is immutable once made, so one can be shared by every event
// that gets the same values (a cache of them makes writing allocate
// nothing).
type Addition struct {
	objects []string
	members []byte
}

// NewAddition returns the addition of members, which must be a sequence of
// JSON object members each preceded by a comma (`,"source.geo":{...}`), one
// per name in objects, in that order. No object may be a fixed field of the
// document (see FixedField): the caller checks when it is configured.
func NewAddition(objects []string, members []byte) *Addition {
	return &Addition{objects: objects, members: members}
}

// Join returns an addition with a's members and then b's. Either may be
// nil.
func (a *Addition) Join(b *Addition) *Addition {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	return &Addition{
		objects: append(append(make([]string, 0, len(a.objects)+len(b.objects)), a.objects...), b.objects...),
		members: append(append(make([]byte, 0, len(a.members)+len(b.members)), a.members...), b.members...),
	}
}

// Members returns the JSON members of a (nil for a nil a); they must not be
// modified.
func (a *Addition) Members() []byte {
	if a == nil {
		return nil
	}
	return a.members
}

// has reports whether a typed field k clashes with an object of a.
func (a *Addition) has(k string) bool {
	return a != nil && clashes(k, a.objects)
}

// FixedField reports whether a field named name would clash with a field
// every document, or an enriched one, writes itself (message, event.id,
// host.name, service.name, ...): equal to one, an object above one, or a
// field below one. An Addition's objects must not.
func FixedField(name string) bool {
	return fixedField(name, true)
}

// AppendString appends s as a JSON string, as documents write strings:
// invalid UTF-8 becomes U+FFFD.
func AppendString(dst []byte, s string) []byte {
	return appendString(dst, s)
}
