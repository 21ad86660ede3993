package enrich

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/oschwald/geoip2-golang/v2"
	"github.com/oschwald/maxminddb-golang/v2"

	"github.com/ferrylogs/ferry/pipeline/event"
	ferryv1 "github.com/ferrylogs/ferry/proto/ferry/v1"
)

// GeoIPConfig is what GeoIP looks up, and in which databases.
type GeoIPConfig struct {
	// CityDB is a MaxMind City (or Country) database, ASNDB an ASN one
	// (GeoLite2 or GeoIP2, .mmdb). Empty: not used; at least one is set.
	CityDB, ASNDB string
	// Fields are the typed fields holding the addresses to look up, such
	// as "source.ip"; see GeoIPTarget for where the results go.
	Fields []string
	// CacheSize bounds the cache of results (least recently used ones
	// go first); 0: no cache.
	CacheSize int
	// CheckInterval is how often the database files are looked at besides
	// the directory watch; default a minute.
	CheckInterval time.Duration

	noWatch bool // tests: periodic looks only, as where fsnotify fails
}

// GeoIP is the event stage that locates client addresses: for each
// configured field X.ip that an event has (a string holding an address),
// it adds X.geo (location as a geo_point, country_iso_code, country_name,
// region_name, city_name, continent_name; names in English) from the City
// database and X.as (number, organization.name) from the ASN database.
//
// Addresses that cannot be located are skipped without an error and
// without any X.geo or X.as field: private, loopback, link-local,
// unspecified and multicast ones, and a value that is not an address. A
// part a database does not know is not written (no X.as for an address the
// ASN database lacks). A value listing several addresses, as an
// X-Forwarded-For header does ("client, proxy1, proxy2"), is looked up by
// its first; "address:port" and "[v6]:port" are taken as the address.
//
// Results, including "nothing known", are kept in a least-recently-used
// cache of CacheSize entries per database generation.
//
// A database file replaced on disk (renamed over, as geoipupdate does) is
// reopened without a restart: GeoIP watches the directories (fsnotify) and
// looks at the files every CheckInterval. The new database is opened and
// verified first and then swapped in atomically with a fresh cache; batches
// being enriched finish with the database they started with, which is
// closed after the last of them. A file that cannot be opened keeps the
// loaded database in use (logged, counted in ReloadErrors). The databases
// are memory-mapped: replace them by renaming, never by rewriting the file
// in place.
type GeoIP struct {
	cfg     GeoIPConfig
	targets []target
	log     *slog.Logger

	cur atomic.Pointer[geoState]

	reload            sync.Mutex // one check at a time
	cityFile, asnFile fileState
	stop              context.CancelFunc
	done              chan struct{}

	// Hits and Misses count lookups answered by the cache and by the
	// databases; Skipped counts values not looked up (not a public
	// address); Errors counts lookups a database failed (the event is
	// written without that part). Reloads counts databases swapped in,
	// ReloadErrors replaced files that could not be opened.
	Hits, Misses, Skipped, Errors atomic.Uint64
	Reloads, ReloadErrors         atomic.Uint64
}

// target is one configured field and where its results go.
type target struct {
	field         string
	geo, as       string   // `,"<prefix>.geo":` and `,"<prefix>.as":`
	geoObj, asObj []string // the objects of an addition with geo, as or both
	bothObj       []string
}

// GeoIPTarget returns the object a looked-up field's results go under: the
// object holding the field ("source.ip" → source.geo and source.as,
// "client.address" → client.geo and client.as). It is an error for a name
// without a dot, and for one whose results would clash with a field the
// document writes itself.
func GeoIPTarget(field string) (string, error) {
	i := strings.LastIndexByte(field, '.')
	if i <= 0 || i == len(field)-1 {
		return "", fmt.Errorf("%q is not a dotted field name like source.ip: the results go beside it, under <object>.geo and <object>.as", field)
	}
	prefix := field[:i]
	for _, o := range []string{prefix + ".geo", prefix + ".as"} {
		if event.FixedField(o) {
			return "", fmt.Errorf("%q would put its results in %s, which clashes with a field every document has", field, o)
		}
	}
	return prefix, nil
}

// NewGeoIP opens and verifies the databases and starts watching their
// files until ctx ends or Close. Errors name the configuration key (city_db,
// asn_db, fields) and the file.
func NewGeoIP(ctx context.Context, cfg GeoIPConfig, log *slog.Logger) (*GeoIP, error) {
	if cfg.CityDB == "" && cfg.ASNDB == "" {
		return nil, errors.New("city_db, asn_db: at least one database is required")
	}
	if len(cfg.Fields) == 0 {
		return nil, errors.New("fields: at least one field is required")
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = time.Minute
	}
	g := &GeoIP{cfg: cfg, log: log, done: make(chan struct{})}
	seen := map[string]string{}
	for _, f := range cfg.Fields {
		p, err := GeoIPTarget(f)
		if err != nil {
			return nil, fmt.Errorf("fields: %w", err)
		}
		if other, dup := seen[p]; dup {
			return nil, fmt.Errorf("fields: %s and %s would both write %s.geo", other, f, p)
		}
		seen[p] = f
		g.targets = append(g.targets, target{
			field: f, geo: string(event.AppendString([]byte(","), p+".geo")) + ":", as: string(event.AppendString([]byte(","), p+".as")) + ":",
			geoObj: []string{p + ".geo"}, asObj: []string{p + ".as"}, bothObj: []string{p + ".geo", p + ".as"},
		})
	}
	if len(g.targets) > 255 {
		return nil, errors.New("fields: at most 255")
	}
	st := &geoState{cache: newLRU(cfg.CacheSize)}
	var err error
	if cfg.CityDB != "" {
		if st.city, err = openDB(cfg.CityDB, kindCity); err != nil {
			return nil, fmt.Errorf("city_db: %w", err)
		}
	}
	if cfg.ASNDB != "" {
		if st.asn, err = openDB(cfg.ASNDB, kindASN); err != nil {
			st.city.close()
			return nil, fmt.Errorf("asn_db: %w", err)
		}
	}
	st.retainDBs()
	st.refs.Store(1)
	g.cur.Store(st)
	ctx, g.stop = context.WithCancel(ctx)
	g.startWatch(ctx)
	return g, nil
}

// Close stops watching and closes the databases once no batch is being
// enriched with them; events enriched afterwards get no GeoIP fields.
func (g *GeoIP) Close() {
	g.stop()
	<-g.done
	if st := g.cur.Swap(nil); st != nil {
		st.release()
	}
}

// AddTo implements EventStage.
func (g *GeoIP) AddTo(_ context.Context, events []*ferryv1.Event, out []*event.Addition) {
	var (
		st                           *geoState
		hits, misses, skipped, fails uint64
	)
	for i, ev := range events {
		var add *event.Addition
		for ti := range g.targets {
			v, ok := event.LookupString(ev, g.targets[ti].field)
			if !ok {
				continue
			}
			addr, ok := publicAddr(v)
			if !ok {
				skipped++
				continue
			}
			if st == nil {
				if st = g.acquire(); st == nil {
					return // closed
				}
			}
			a, hit, err := g.lookup(st, ti, addr)
			switch {
			case err != nil:
				fails++
			case hit:
				hits++
			default:
				misses++
			}
			add = add.Join(a)
		}
		if add != nil {
			out[i] = out[i].Join(add)
		}
	}
	if st != nil {
		st.release()
	}
	add(&g.Hits, hits)
	add(&g.Misses, misses)
	add(&g.Skipped, skipped)
	add(&g.Errors, fails)
}

// add adds v to c, if not 0 (a counter shared by every batch is written
// only when there is something to count).
func add(c *atomic.Uint64, v uint64) {
	if v > 0 {
		c.Add(v)
	}
}

// publicAddr returns the address s holds, if it is one that can be
// located.
func publicAddr(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if i := strings.IndexByte(s, ','); i >= 0 {
		s = s[:i] // X-Forwarded-For: the client is first
	}
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return netip.Addr{}, false
	}
	return a, true
}

// lookup returns the addition for addr in target ti, from the cache when
// it has it.
func (g *GeoIP) lookup(st *geoState, ti int, addr netip.Addr) (a *event.Addition, hit bool, err error) {
	k := cacheKey{addr: addr, target: uint8(ti)}
	if a, ok := st.cache.get(k); ok {
		return a, true, nil
	}
	a, err = st.resolve(&g.targets[ti], addr)
	if err != nil {
		return nil, false, err
	}
	st.cache.put(k, a)
	return a, false, nil
}

// Lookup returns the JSON members GeoIP adds for addr found in field (one of
// the configured fields): nil when it adds none. It goes through the cache.
func (g *GeoIP) Lookup(field, addr string) ([]byte, error) {
	ti := -1
	for i := range g.targets {
		if g.targets[i].field == field {
			ti = i
		}
	}
	if ti < 0 {
		return nil, fmt.Errorf("field %s is not looked up", field)
	}
	a, ok := publicAddr(addr)
	if !ok {
		return nil, nil
	}
	st := g.acquire()
	if st == nil {
		return nil, errors.New("geoip: closed")
	}
	defer st.release()
	add, hit, err := g.lookup(st, ti, a)
	switch {
	case err != nil:
		g.Errors.Add(1)
	case hit:
		g.Hits.Add(1)
	default:
		g.Misses.Add(1)
	}
	return add.Members(), err
}

// acquire returns the current state with a reference held, or nil once
// closed.
func (g *GeoIP) acquire() *geoState {
	for {
		st := g.cur.Load()
		if st == nil {
			return nil
		}
		n := st.refs.Load()
		if n > 0 && st.refs.CompareAndSwap(n, n+1) {
			return st
		}
		// st was retired since the Load: g.cur holds its successor.
	}
}

// geoState is one generation of the databases, with its cache. Its
// reference count is one for being current plus one per AddTo using it;
// when it drops to zero, the state releases its databases.
type geoState struct {
	city, asn *mmdb
	cache     *lru
	refs      atomic.Int64
}

func (st *geoState) retainDBs() {
	for _, d := range []*mmdb{st.city, st.asn} {
		if d != nil {
			d.refs.Add(1)
		}
	}
}

func (st *geoState) release() {
	if st.refs.Add(-1) == 0 {
		st.city.release()
		st.asn.release()
	}
}

// resolve looks addr up in the databases.
func (st *geoState) resolve(t *target, addr netip.Addr) (*event.Addition, error) {
	var geo, as []byte
	if st.city != nil {
		c, err := st.city.r.City(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.city.path, err)
		}
		geo = appendGeo(nil, c)
	}
	if st.asn != nil {
		r, err := st.asn.r.ASN(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.asn.path, err)
		}
		as = appendAS(nil, r)
	}
	switch {
	case len(geo) > 0 && len(as) > 0:
		return event.NewAddition(t.bothObj, append(append(append([]byte(t.geo), geo...), t.as...), as...)), nil
	case len(geo) > 0:
		return event.NewAddition(t.geoObj, append([]byte(t.geo), geo...)), nil
	case len(as) > 0:
		return event.NewAddition(t.asObj, append([]byte(t.as), as...)), nil
	}
	return nil, nil
}

// appendGeo appends the geo object of c, or nothing when c says nothing.
func appendGeo(dst []byte, c *geoip2.City) []byte {
	at := len(dst)
	dst = append(dst, '{')
	sep := func() {
		if len(dst) > at+1 {
			dst = append(dst, ',')
		}
	}
	if l := c.Location; l.Latitude != nil && l.Longitude != nil {
		dst = append(dst, `"location":{"lat":`...)
		dst = strconv.AppendFloat(dst, *l.Latitude, 'f', -1, 64)
		dst = append(dst, `,"lon":`...)
		dst = strconv.AppendFloat(dst, *l.Longitude, 'f', -1, 64)
		dst = append(dst, '}')
	}
	region := ""
	if len(c.Subdivisions) > 0 {
		region = c.Subdivisions[0].Names.English
	}
	for _, kv := range [...][2]string{
		{"country_iso_code", c.Country.ISOCode}, {"country_name", c.Country.Names.English},
		{"region_name", region}, {"city_name", c.City.Names.English},
		{"continent_name", c.Continent.Names.English},
	} {
		if kv[1] == "" {
			continue
		}
		sep()
		dst = append(dst, '"')
		dst = append(dst, kv[0]...)
		dst = append(dst, `":`...)
		dst = event.AppendString(dst, kv[1])
	}
	if len(dst) == at+1 {
		return dst[:at]
	}
	return append(dst, '}')
}

// appendAS appends the as object of r, or nothing when r says nothing.
func appendAS(dst []byte, r *geoip2.ASN) []byte {
	if r.AutonomousSystemNumber == 0 && r.AutonomousSystemOrganization == "" {
		return dst
	}
	dst = append(dst, '{')
	if r.AutonomousSystemNumber != 0 {
		dst = append(dst, `"number":`...)
		dst = strconv.AppendUint(dst, uint64(r.AutonomousSystemNumber), 10)
	}
	if r.AutonomousSystemOrganization != "" {
		if r.AutonomousSystemNumber != 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"organization":{"name":`...)
		dst = event.AppendString(dst, r.AutonomousSystemOrganization)
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// dbKind is what a database must answer.
type dbKind int

const (
	kindCity dbKind = iota
	kindASN
)

// mmdb is one open database file, shared by the states that use it and
// closed when the last of them is released.
type mmdb struct {
	r    *geoip2.Reader
	path string
	info os.FileInfo // of the file opened
	refs atomic.Int64
}

// openDB opens path, verifies the whole database and checks that it
// answers kind's lookups.
func openDB(path string, kind dbKind) (*mmdb, error) {
	before, err := os.Stat(path)
	if err != nil {
		return nil, err // names the path
	}
	// Verify walks the whole search tree and data section: a truncated or
	// corrupt file is refused here, not at its first lookups.
	v, err := maxminddb.Open(path)
	if err != nil {
		return nil, dbError(path, err)
	}
	err = v.Verify()
	_ = v.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid MaxMind database: %w", path, err)
	}
	r, err := geoip2.Open(path)
	if err != nil {
		return nil, dbError(path, err)
	}
	probe := netip.AddrFrom4([4]byte{1, 1, 1, 1})
	switch kind {
	case kindCity:
		_, err = r.City(probe)
	case kindASN:
		_, err = r.ASN(probe)
	}
	if err != nil {
		_ = r.Close()
		want := map[dbKind]string{kindCity: "City or Country", kindASN: "ASN"}[kind]
		return nil, fmt.Errorf("%s: a %s database, not a %s one: %w", path, r.Metadata().DatabaseType, want, err)
	}
	after, err := os.Stat(path)
	if err != nil || !sameFile(before, after) {
		_ = r.Close()
		return nil, fmt.Errorf("%s: replaced while being opened", path)
	}
	return &mmdb{r: r, path: path, info: after}, nil
}

func dbError(path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return err
	}
	return fmt.Errorf("%s: not a MaxMind database: %w", path, err)
}

func (d *mmdb) release() {
	if d != nil && d.refs.Add(-1) == 0 {
		d.close()
	}
}

func (d *mmdb) close() {
	if d != nil {
		_ = d.r.Close()
	}
}

// sameFile reports whether a and b are the same file with the same size
// and modification time.
func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// startWatch watches the directories of the databases (unless fsnotify
// fails: then the periodic looks alone find a new file) and starts the
// goroutine that checks them, until ctx ends. Changes from its return on
// are seen.
func (g *GeoIP) startWatch(ctx context.Context) {
	var w *fsnotify.Watcher
	if !g.cfg.noWatch {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			g.log.Warn("geoip: cannot watch the database directories; looking at the files periodically", "every", g.cfg.CheckInterval, "err", err)
		}
	}
	if w != nil {
		for _, p := range []string{g.cfg.CityDB, g.cfg.ASNDB} {
			if p == "" {
				continue
			}
			if err := w.Add(filepath.Dir(p)); err != nil {
				g.log.Warn("geoip: cannot watch a database directory; looking at the file periodically", "dir", filepath.Dir(p), "every", g.cfg.CheckInterval, "err", err)
			}
		}
	}
	go g.watch(ctx, w)
	g.Check() // a file replaced between opening and watching
}

// watch checks the files on every change in their directories (w, may be
// nil) and every CheckInterval, until ctx ends.
func (g *GeoIP) watch(ctx context.Context, w *fsnotify.Watcher) {
	defer close(g.done)
	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if w != nil {
		defer w.Close()
		events, errs = w.Events, w.Errors
	}
	tick := time.NewTicker(g.cfg.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-events:
			g.Check()
		case err := <-errs:
			g.log.Warn("geoip: watching the database directories", "err", err)
		case <-tick.C:
			g.Check()
		}
	}
}

// Check reopens the databases whose files changed since they were opened
// and swaps them in. GeoIP calls it on its own; it is exported for tests
// and for a reload on demand.
func (g *GeoIP) Check() {
	g.reload.Lock()
	defer g.reload.Unlock()
	cur := g.cur.Load()
	if cur == nil {
		return
	}
	city, cityNew := g.reopen(cur.city, g.cfg.CityDB, kindCity, &g.cityFile)
	asn, asnNew := g.reopen(cur.asn, g.cfg.ASNDB, kindASN, &g.asnFile)
	if !cityNew && !asnNew {
		return
	}
	next := &geoState{city: city, asn: asn, cache: newLRU(g.cfg.CacheSize)}
	next.retainDBs()
	next.refs.Store(1)
	if !g.cur.CompareAndSwap(cur, next) { // closed meanwhile
		next.release()
		return
	}
	cur.release()
	for _, d := range []*mmdb{city, asn} {
		if d == nil || (d == city && !cityNew) || (d == asn && !asnNew) {
			continue
		}
		g.Reloads.Add(1)
		md := d.r.Metadata()
		g.log.Info("geoip: database reloaded", "file", d.path, "type", md.DatabaseType, "built", md.BuildTime().UTC())
	}
}

// fileState is what Check learned of a database file that it could not
// use, so that it neither retries the same file nor logs the same problem
// again.
type fileState struct {
	failed  os.FileInfo // the file that could not be opened
	lastErr string      // the problem logged last
}

// reopen returns the database at path, reopened if the file is not the
// one old was opened from (and not the one that failed last).
func (g *GeoIP) reopen(old *mmdb, path string, kind dbKind, fs *fileState) (*mmdb, bool) {
	if old == nil {
		return nil, false
	}
	fi, err := os.Stat(path)
	if err != nil {
		if err.Error() != fs.lastErr {
			fs.lastErr = err.Error()
			g.log.Warn("geoip: cannot look at the database file; keeping the one loaded", "file", path, "err", err)
		}
		return old, false
	}
	if sameFile(old.info, fi) || (fs.failed != nil && sameFile(fs.failed, fi)) {
		return old, false
	}
	d, err := openDB(path, kind)
	if err != nil {
		fs.failed, fs.lastErr = fi, err.Error()
		g.ReloadErrors.Add(1)
		g.log.Warn("geoip: cannot open the replaced database; keeping the one loaded", "file", path, "err", err)
		return old, false
	}
	*fs = fileState{}
	return d, true
}

// cacheKey is one address looked up for one target.
type cacheKey struct {
	addr   netip.Addr
	target uint8
}

// lru is a bounded cache of lookups, least recently used first out. A nil
// value is a cached "nothing known".
type lru struct {
	mu   sync.Mutex
	max  int
	m    map[cacheKey]*lruNode
	ring lruNode // ring.next is the most recently used, ring.prev the least
}

type lruNode struct {
	k          cacheKey
	v          *event.Addition
	prev, next *lruNode
}

func newLRU(max int) *lru {
	c := &lru{max: max, m: make(map[cacheKey]*lruNode, min(max, 4096))}
	c.ring.prev, c.ring.next = &c.ring, &c.ring
	return c
}

func (c *lru) get(k cacheKey) (*event.Addition, bool) {
	if c.max == 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.m[k]
	if !ok {
		return nil, false
	}
	c.unlink(n)
	c.front(n)
	return n.v, true
}

func (c *lru) put(k cacheKey, v *event.Addition) {
	if c.max == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.m[k]; ok { // looked up twice at once
		n.v = v
		return
	}
	var n *lruNode
	if len(c.m) >= c.max {
		n = c.ring.prev // reuse the least recently used node
		c.unlink(n)
		delete(c.m, n.k)
	} else {
		n = new(lruNode)
	}
	n.k, n.v = k, v
	c.m[k] = n
	c.front(n)
}

// len returns the number of entries.
func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func (c *lru) unlink(n *lruNode) {
	n.prev.next, n.next.prev = n.next, n.prev
}

func (c *lru) front(n *lruNode) {
	n.prev, n.next = &c.ring, c.ring.next
	c.ring.next.prev = n
	c.ring.next = n
}
