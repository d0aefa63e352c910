// Command lichen-bench is the load tool behind `make bench`: it measures a
// lichen binary against the budgets in DESIGN.md ("Budgets") and prints
// each figure beside its budget. Figures are reported, not asserted; the
// exit status is non-zero only when the server cannot be run, a phase
// cannot complete or gets a wrong answer, or the server does not exit 0
// on SIGTERM (all listed under "problems").
//
// Usage:
//
//	go run ./cmd/lichen-bench -bin /abs/path/to/bin/lichen [-quick] [-json] [-dir D] [-keep] [-media=false]
//
// The tool starts the server itself, always on 127.0.0.1 with a free port
// and a fresh data directory under a temporary directory (-dir chooses
// its parent, so the disk under test; default $TMPDIR), with
// LICHEN_REGISTRATION=open and LICHEN_RATE_LIMIT=off and no other
// LICHEN_* variables. Progress goes to standard error; the table (or,
// with -json, one JSON object) to standard output. Every loop is bounded
// in count and in time.
//
// What it measures, in order:
//
//   - Cold start: exec to the first 200 from GET /_matrix/client/versions
//     (polled every 0.2 ms), median of 5 starts on fresh data directories,
//     each stopped with SIGTERM.
//   - Idle RSS: VmRSS of the main server right after it first serves.
//   - Registrations/s: 100 users (60 with -quick) by 4 concurrent
//     registrars, each through POST /register → 401 {session} → POST
//     /register with m.login.dummy. Password hashing dominates.
//   - Ingest: 8 users in one public room, each in a closed loop of PUT
//     /rooms/{roomId}/send/m.room.message/{txnId} with ~100 bytes of
//     content, for 10 s (3 s with -quick) after 5 warm-up messages each:
//     msgs/s, p50/p99 request latency, server CPU per 1,000 messages
//     (utime+stime from /proc/<pid>/stat), peak RSS (VmHWM, reset through
//     /proc/<pid>/clear_refs just before the load; the max of 10 ms VmRSS
//     samples if the reset is refused) and VmRSS after.
//   - Disk per message: the server is stopped before and after the ingest
//     and the database opened read-only with bbolt (boltstore.
//     MeasureDiskUsage): the growth of the pages in use per accepted
//     message (the budgeted figure), of the bytes in use in those pages,
//     and of the file itself (an upper bound: bbolt grows the file in big
//     steps). The restart after the ingest is timed too.
//   - Raw bbolt group commit (boltstore.MeasureRawCommit), while the server
//     is stopped right after the ingest: 8 closed-loop writers through the
//     store's committer on a fresh file in the same temporary directory,
//     records the size of the pages in use per message (600 B if unknown),
//     for as long as the ingest ran. Ingest is printed as a share of it.
//   - Sync delivery latency: 50 receivers in one room, each long-polling
//     GET /sync?since=…&timeout=30000 and re-polling at once; one sender
//     posts 200 messages (50 with -quick), each after every receiver has
//     seen the previous one (or 5 s passed) and a 10 ms pause. Latency is
//     from the start of the send request to the arrival of the sync
//     response holding the message's text; p50/p99 over receiver×message.
//   - Initial sync: one user in 50 rooms × 100 messages; GET /sync with
//     filter {"room":{"timeline":{"limit":20}}}, median of 5.
//   - RSS after the runs (after 1 s idle), then SIGTERM: the exit code
//     must be 0.
//   - Media (media.go; -media=false skips it), each part on a fresh
//     server and data directory so that its peak is its own, with VmHWM
//     reset just before the measured requests: a 4000×3000 JPEG (made in
//     the tool, quality 85, ~2.6 MB) uploaded, then thumbnailed at 800×600
//     scale and 320×240 crop (peak RSS over both, its rise over VmRSS
//     before, and each request's latency); and a 5-minute 48 kHz mono
//     Ogg Opus voice message (speech-like tones and pauses, encoded at
//     32 kb/s in the tool) sent to POST /voice/upload, then POST
//     /voice/optimize towards 500 KiB with silence removal and loudness
//     normalisation (latency and peak RSS of each). With -quick only the
//     thumbnail part runs. DESIGN.md budgets neither: the figures have
//     no budget and are to be read beside the 48 MB ingest peak.
//
// Other processes on the machine move these figures: run it on a quiet
// one. The client runs on the same machine and shares its cores with the
// server, and Go's client asks for gzip as real clients do. MB in
// DESIGN.md is read as MiB.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/lichen-hs/lichen/boltstore"
)

type options struct {
	bin         string
	quick, json bool
	dir         string
	keep        bool
	media       bool
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "", "absolute path of the lichen binary to measure (required)")
	flag.BoolVar(&o.quick, "quick", false, "a short run: 3 s ingest, fewer users and sync messages")
	flag.BoolVar(&o.json, "json", false, "print the figures as one JSON object instead of a table")
	flag.StringVar(&o.dir, "dir", "", "parent of the temporary directory (the disk under test); default $TMPDIR")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (data and server log)")
	flag.BoolVar(&o.media, "media", true, "run the media phase (thumbnails; with the voice message unless -quick)")
	flag.Parse()
	if o.bin == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: lichen-bench -bin /abs/path/to/lichen [-quick] [-json] [-dir D] [-keep] [-media=false]")
		os.Exit(2)
	}
	if !filepath.IsAbs(o.bin) {
		abs, err := filepath.Abs(o.bin)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lichen-bench:", err)
			os.Exit(2)
		}
		o.bin = abs
	}
	os.Exit(run(o))
}

// plan is the size of each phase.
type plan struct {
	users          int
	ingest         time.Duration
	syncMessages   int
	syncPause      time.Duration
	receivers      int
	rooms, perRoom int
}

func planFor(quick bool) plan {
	p := plan{users: 100, ingest: 10 * time.Second, syncMessages: 200, syncPause: 10 * time.Millisecond,
		receivers: 50, rooms: 50, perRoom: 100}
	if quick {
		p.users, p.ingest, p.syncMessages = 60, 3*time.Second, 50
	}
	return p
}

// User roles, as indexes into the registered users.
const (
	ingestSenders = 8 // users[0:8] ingest; users[0] also sends in the sync test
	receiversFrom = 8 // users[8:8+receivers] receive in the sync test
)

// bench carries one run's state.
type bench struct {
	o        options
	p        plan
	tmp      string
	dataDir  string
	logPath  string
	errs     endpointErrors
	problems []string
	r        results
}

// results are the raw measurements; report turns them into figures.
type results struct {
	coldStart     []time.Duration
	idleRSS       int64
	regRate       float64
	regN          int
	ingest        *ingestResult
	usage0, usage *boltstore.DiskUsage // before and after the ingest
	file0, file1  int64
	restart       time.Duration // restart with the ingested data
	syncLat       *syncLatencyResult
	initSync      *initialSyncResult
	rssAfterRuns  int64
	exitCode      *int
	shutdown      time.Duration
	raw           float64
	rawRec        int
	thumb         *thumbResult // media phase
	voice         *voiceResult
}

func (b *bench) progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lichen-bench: "+format+"\n", args...)
}

func (b *bench) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.problems = append(b.problems, msg)
	b.progress("PROBLEM: %s", msg)
}

func run(o options) int {
	tmp, err := os.MkdirTemp(o.dir, "lichen-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "lichen-bench:", err)
		return 1
	}
	b := &bench{o: o, p: planFor(o.quick), tmp: tmp, dataDir: filepath.Join(tmp, "data"), logPath: filepath.Join(tmp, "server.log")}
	if o.keep {
		b.progress("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	fatal := b.measure()
	if !fatal && o.media {
		b.mediaPhase()
	}
	b.report(os.Stdout)
	if fatal || len(b.problems) > 0 {
		return 1
	}
	return 0
}

// measure runs every phase; it returns true if the server could not be
// run at all.
func (b *bench) measure() (fatal bool) {
	b.progress("cold start: 5 starts on fresh data directories")
	for i := range 5 {
		dir := filepath.Join(b.tmp, fmt.Sprintf("cold%d", i))
		s, err := startServer(b.o.bin, dir, filepath.Join(b.tmp, fmt.Sprintf("cold%d.log", i)))
		if err != nil {
			b.problem("cold start: %v", err)
			return true
		}
		b.r.coldStart = append(b.r.coldStart, s.startup)
		if _, _, err := s.stop(); err != nil {
			b.problem("cold start %d: %v", i, err)
		}
		os.RemoveAll(dir)
	}

	srv, err := startServer(b.o.bin, b.dataDir, b.logPath)
	if err != nil {
		b.problem("start: %v", err)
		return true
	}
	defer func() { srv.kill() }() // a no-op after a clean stop
	b.r.idleRSS, _ = procStatus(srv.pid(), "VmRSS")
	c := newClient(srv.base, &b.errs)

	b.progress("registration: %d users, 4 registrars", b.p.users)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	users, rate, err := runRegistrations(ctx, c, b.p.users, 4)
	cancel()
	b.r.regRate, b.r.regN = rate, b.p.users
	if err != nil {
		b.problem("registration: %v (every later phase needs the users)", err)
		b.finish(srv)
		return false
	}

	srv, c = b.ingestPhase(srv, c, users)
	if srv == nil {
		return true
	}

	b.progress("sync delivery: %d receivers, %d messages", b.p.receivers, b.p.syncMessages)
	ctx, cancel = context.WithTimeout(context.Background(), 3*time.Minute)
	sl, err := runSyncLatency(ctx, c, users[0], users[receiversFrom:receiversFrom+b.p.receivers], b.p.syncMessages, b.p.syncPause)
	cancel()
	if err != nil {
		b.problem("sync delivery: %v", err)
	}
	if sl.Pairs > 0 {
		b.r.syncLat = &sl
	}

	b.progress("initial sync: %d rooms × %d messages", b.p.rooms, b.p.perRoom)
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Minute)
	is, err := runInitialSync(ctx, c, users[receiversFrom+b.p.receivers], b.p.rooms, b.p.perRoom)
	cancel()
	if err != nil {
		b.problem("initial sync: %v", err)
	} else {
		b.r.initSync = &is
		if is.GotRooms != b.p.rooms || is.MinEvents != 20 || is.MaxEvents != 20 {
			b.problem("initial sync: response has %d joined rooms with %d–%d timeline events each; want %d rooms with 20",
				is.GotRooms, is.MinEvents, is.MaxEvents, b.p.rooms)
		}
	}

	b.finish(srv)
	return false
}

// ingestPhase sets up the ingest room, measures the database before and
// after the ingest (stopping and restarting the server around it), and
// returns the server and client to use next (nil if it could not restart).
func (b *bench) ingestPhase(srv *server, c *client, users []user) (*server, *client) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	senders := users[:ingestSenders]
	room, err := c.createRoom(ctx, senders[0], map[string]any{"preset": "public_chat"})
	if err == nil {
		err = joinAll(ctx, c, senders[1:], room)
	}
	if err != nil {
		b.problem("ingest setup: %v", err)
		return srv, c
	}

	dbPath := filepath.Join(b.dataDir, "lichen.db")
	srv, c, u0, _ := b.cycle(srv, dbPath, nil)
	if srv == nil {
		return nil, nil
	}
	b.r.usage0 = u0
	b.r.file0, _ = fileSize(dbPath)

	b.progress("ingest: %d senders for %v", len(senders), b.p.ingest)
	ictx, icancel := context.WithTimeout(context.Background(), b.p.ingest+time.Minute)
	ir, err := runIngest(ictx, c, srv.pid(), senders, room, b.p.ingest)
	icancel()
	if err != nil {
		b.problem("ingest: %v", err)
		return srv, c
	}
	b.r.ingest = &ir
	b.r.file1, _ = fileSize(dbPath)

	// The raw group commit runs while the server is stopped, right after
	// the ingest, so both see the disk in the same state.
	srv, c, _, took := b.cycle(srv, dbPath, func(u1 *boltstore.DiskUsage) {
		if b.r.usage0 != nil {
			b.r.usage = u1
		}
		b.rawPhase()
	})
	if srv == nil {
		return nil, nil
	}
	b.r.restart = took
	return srv, c
}

// cycle stops srv, measures the database file with bbolt while no server
// holds it, calls stopped (if not nil) with that usage, and starts a new
// server on the same data directory. It returns the new server (nil if it
// would not start), a client for it, the usage (nil if it could not be
// measured) and the restart time.
func (b *bench) cycle(srv *server, dbPath string, stopped func(*boltstore.DiskUsage)) (*server, *client, *boltstore.DiskUsage, time.Duration) {
	if _, _, err := srv.stop(); err != nil {
		b.problem("stop for disk measurement: %v", err)
	}
	var usage *boltstore.DiskUsage
	if u, err := boltstore.MeasureDiskUsage(dbPath); err != nil {
		b.problem("bbolt disk usage: %v", err)
	} else {
		usage = &u
	}
	if stopped != nil {
		stopped(usage)
	}
	ns, err := startServer(b.o.bin, b.dataDir, b.logPath)
	if err != nil {
		b.problem("restart: %v", err)
		return nil, nil, usage, 0
	}
	return ns, newClient(ns.base, &b.errs), usage, ns.startup
}

// finish records RSS after the runs and stops the server.
func (b *bench) finish(srv *server) {
	time.Sleep(time.Second)
	b.r.rssAfterRuns, _ = procStatus(srv.pid(), "VmRSS")
	b.progress("stopping the server with SIGTERM")
	code, took, err := srv.stop()
	b.r.exitCode, b.r.shutdown = &code, took
	if err != nil {
		b.problem("shutdown: %v", err)
	}
}

// rawPhase measures bbolt's group commit on the same disk, with records
// of the measured size per message.
func (b *bench) rawPhase() {
	rec := 600
	if pp := b.perMessage(); pp.ok && pp.pages > 0 {
		rec = int(math.Round(pp.pages))
	} else if pp.ok && pp.file > 0 {
		rec = int(math.Round(pp.file))
	}
	rec = max(16, min(rec, 64<<10))
	b.r.rawRec = rec
	b.progress("raw bbolt group commit: 8 writers, %d-byte records, %v", rec, b.p.ingest)
	dir := filepath.Join(b.tmp, "raw")
	w, err := boltstore.MeasureRawCommit(filepath.Join(dir, "raw.db"), 8, rec, b.p.ingest)
	os.RemoveAll(dir) // it can reach hundreds of MB
	if err != nil {
		b.problem("raw bbolt: %v", err)
		return
	}
	b.r.raw = w
}

type perMessage struct {
	ok                 bool
	msgs               int
	pages, bytes, file float64 // bytes per message
	haveUsage          bool
}

// perMessage is the database growth over the ingest per accepted message
// (warm-up included: it ran between the two measurements).
func (b *bench) perMessage() perMessage {
	ir := b.r.ingest
	if ir == nil || ir.Sent == 0 {
		return perMessage{}
	}
	n := ir.Sent + ir.Warm
	pm := perMessage{ok: true, msgs: n, file: float64(b.r.file1-b.r.file0) / float64(n)}
	if u0, u1 := b.r.usage0, b.r.usage; u0 != nil && u1 != nil {
		pm.haveUsage = true
		pm.pages = float64((u1.PagesInUse-u0.PagesInUse)*int64(u1.PageSize)) / float64(n)
		pm.bytes = float64(u1.BytesInUse-u0.BytesInUse) / float64(n)
	}
	return pm
}

// figure is one reported number.
type figure struct {
	Section string  `json:"section"`
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	// Budget is the limit as DESIGN.md states it; Limit and AtLeast make
	// it machine-readable and Within compares (nil without a budget).
	Budget  string   `json:"budget,omitempty"`
	Limit   *float64 `json:"limit,omitempty"`
	AtLeast bool     `json:"at_least,omitempty"`
	Within  *bool    `json:"within_budget,omitempty"`
	Note    string   `json:"note,omitempty"`
}

const mib = 1 << 20

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// figures turns the results into the report's rows.
func (b *bench) figures() []figure {
	var fs []figure
	section := ""
	add := func(name string, v float64, unit, note string) *figure {
		fs = append(fs, figure{Section: section, Name: name, Value: v, Unit: unit, Note: note})
		return &fs[len(fs)-1]
	}
	budget := func(f *figure, text string, limit float64, atLeast bool) {
		f.Budget, f.Limit, f.AtLeast = text, &limit, atLeast
		ok := f.Value <= limit
		if atLeast {
			ok = f.Value >= limit
		}
		f.Within = &ok
	}
	r := &b.r

	section = "start"
	if len(r.coldStart) > 0 {
		budget(add("cold start to /versions, median of 5", ms(percentile(r.coldStart, 0.5)), "ms",
			fmt.Sprintf("min %.1f, max %.1f", ms(percentile(r.coldStart, 0)), ms(percentile(r.coldStart, 1)))), "≤ 20 ms", 20, false)
	}
	if r.idleRSS > 0 {
		budget(add("RSS idle right after start", float64(r.idleRSS)/mib, "MiB", "VmRSS"), "≤ 16 MB", 16, false)
	}

	section = "registration"
	if r.regRate > 0 {
		add(fmt.Sprintf("registrations/s, %d users, 4 registrars", r.regN), r.regRate, "/s", "argon2id dominates")
	}

	section = "ingest"
	if ir := r.ingest; ir != nil {
		rate := float64(ir.Sent) / ir.Elapsed.Seconds()
		budget(add("messages/s, 8 senders, one room", rate, "msgs/s",
			fmt.Sprintf("%d in %.1f s, %d errors", ir.Sent, ir.Elapsed.Seconds(), ir.Errors)), "≥ 3,000", 3000, true)
		add("send latency p50", ms(ir.P50), "ms", "")
		add("send latency p99", ms(ir.P99), "ms", "")
		if ir.CPUErr == nil {
			budget(add("server CPU per 1,000 messages", ir.CPU.Seconds()/float64(ir.Sent)*1000, "s",
				fmt.Sprintf("%.2f s CPU in %.1f s", ir.CPU.Seconds(), ir.Elapsed.Seconds())), "≤ 0.5 s", 0.5, false)
		}
		add("this tool's own CPU during the ingest", ir.ClientCPU.Seconds(), "s",
			fmt.Sprintf("of %.0f CPU-s on %d CPUs: client and server share them", ir.Elapsed.Seconds()*float64(runtime.NumCPU()), runtime.NumCPU()))
		note := "VmHWM, reset before the load"
		if ir.PeakFromSamples {
			note = "max of 10 ms VmRSS samples (clear_refs refused)"
		}
		budget(add("RSS peak during ingest", float64(ir.PeakRSS)/mib, "MiB", note), "≤ 48 MB", 48, false)
		add("RSS right after ingest", float64(ir.RSSAfter)/mib, "MiB", "VmRSS")
	}
	if r.raw > 0 {
		add(fmt.Sprintf("raw bbolt group commit, 8 writers, %d B records", r.rawRec), r.raw, "writes/s", "same disk, server stopped, right after ingest")
		if ir := r.ingest; ir != nil {
			rate := float64(ir.Sent) / ir.Elapsed.Seconds()
			budget(add("ingest as a share of raw group commit", 100*rate/r.raw, "%", ""), "≥ 50 %", 50, true)
		}
	}

	section = "disk"
	if pm := b.perMessage(); pm.ok {
		if pm.haveUsage {
			budget(add("per message: bbolt pages in use", pm.pages, "B",
				fmt.Sprintf("over %d messages, stopped server", pm.msgs)), "≤ 600 B", 600, false)
			add("per message: bbolt bytes in use in those pages", pm.bytes, "B", "keys, values and page headers")
		}
		add("per message: file growth (upper bound)", pm.file, "B", "bbolt grows the file in big steps")
		if r.usage != nil {
			add("database file after ingest", float64(r.usage.FileBytes)/mib, "MiB",
				fmt.Sprintf("%.1f MiB in pages in use", float64(r.usage.PagesInUse*int64(r.usage.PageSize))/mib))
		}
		if r.restart > 0 {
			add("restart with that data to /versions", ms(r.restart), "ms", "")
		}
	}

	section = "sync"
	if sl := r.syncLat; sl != nil {
		note := fmt.Sprintf("%d pairs, %d missed", sl.Pairs, sl.Missed)
		add(fmt.Sprintf("delivery latency p50, %d long-polls", sl.Receivers), ms(sl.P50), "ms", note)
		budget(add(fmt.Sprintf("delivery latency p99, %d long-polls", sl.Receivers), ms(sl.P99), "ms", ""), "≤ 25 ms", 25, false)
		add("delivery latency max", ms(sl.Max), "ms", fmt.Sprintf("send request p50 %.1f ms", ms(sl.SendP50)))
	}
	if is := r.initSync; is != nil {
		budget(add(fmt.Sprintf("initial sync, %d rooms × %d msgs, limit 20, median of 5", is.Rooms, is.PerRoom), ms(is.Median), "ms",
			fmt.Sprintf("first %.1f, worst %.1f", ms(is.First), ms(is.Worst))), "≤ 30 ms", 30, false)
		add("initial sync response size", float64(is.Bytes)/1024, "KiB", fmt.Sprintf("%d rooms, %d–%d events each", is.GotRooms, is.MinEvents, is.MaxEvents))
	}

	section = "end"
	if r.rssAfterRuns > 0 {
		add("RSS after the runs, 1 s idle", float64(r.rssAfterRuns)/mib, "MiB", "VmRSS")
	}
	if r.exitCode != nil {
		f := add("exit code after SIGTERM", float64(*r.exitCode), "", fmt.Sprintf("exited in %.0f ms", ms(r.shutdown)))
		f.Budget, f.Limit = "= 0", new(float64)
		ok := *r.exitCode == 0
		f.Within = &ok
	}

	section = "media"
	const mediaNote = "no budget (ingest peak: ≤ 48 MB)"
	if t := r.thumb; t != nil {
		add(fmt.Sprintf("RSS peak thumbnailing a %d×%d JPEG", photoW, photoH), float64(t.RSS.Peak)/mib, "MiB",
			fmt.Sprintf("%s; %s", t.RSS.note(), mediaNote))
		add("RSS rise over the pre-thumbnail baseline", float64(t.RSS.Peak-t.RSS.Base)/mib, "MiB",
			fmt.Sprintf("from %.1f MiB; %.1f MiB right after", float64(t.RSS.Base)/mib, float64(t.RSSAfter)/mib))
		add("thumbnail latency, 800×600 scale", ms(t.Scale), "ms", "first request: "+t.ScaleSize)
		add("thumbnail latency, 320×240 crop", ms(t.Crop), "ms", "first request: "+t.CropSize)
		add("upload of that JPEG", ms(t.Upload), "ms", fmt.Sprintf("%.2f MiB, quality %d", float64(t.JPEGBytes)/mib, photoQuality))
	}
	if v := r.voice; v != nil {
		add(fmt.Sprintf("voice upload, %d min Ogg Opus 48 kHz mono", voiceSeconds/60), ms(v.Upload), "ms",
			fmt.Sprintf("%.2f MiB at %d kb/s, base64 JSON", float64(v.OggBytes)/mib, voiceBitrate/1000))
		add("RSS peak during the voice upload", float64(v.UploadRSS.Peak)/mib, "MiB",
			fmt.Sprintf("+%.1f MiB over %.1f; %s", float64(v.UploadRSS.Peak-v.UploadRSS.Base)/mib, float64(v.UploadRSS.Base)/mib, v.UploadRSS.note()))
		add("voice optimize, 500 KiB target, silence, loudness", ms(v.Optimize), "ms",
			fmt.Sprintf("%.0f→%.0f s, %d KiB %s at %d kb/s, %+.1f dB", float64(v.Out.OriginalDuration)/1000,
				float64(v.Out.DurationMs)/1000, (v.Out.Size+1023)/1024, v.Out.ContentType, v.Out.Bitrate/1000, v.Out.GainDB))
		add(fmt.Sprintf("RSS peak optimising a %d-minute voice message", voiceSeconds/60), float64(v.OptimizeRSS.Peak)/mib, "MiB",
			fmt.Sprintf("%s; %s", v.OptimizeRSS.note(), mediaNote))
		add("RSS rise over the pre-optimize baseline", float64(v.OptimizeRSS.Peak-v.OptimizeRSS.Base)/mib, "MiB",
			fmt.Sprintf("from %.1f MiB; %.1f MiB right after", float64(v.OptimizeRSS.Base)/mib, float64(v.RSSAfter)/mib))
	}
	return fs
}

func (b *bench) report(w io.Writer) {
	fs := b.figures()
	errs := b.errs.list()
	if b.o.json {
		out := map[string]any{
			"bin": b.o.bin, "quick": b.o.quick, "figures": fs, "endpoint_errors": errs,
			"problems": b.problems, "disk": fsType(b.tmp), "cpus": runtime.NumCPU(),
			"time": time.Now().UTC().Format(time.RFC3339),
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(out)
		return
	}
	fmt.Fprintf(w, "\nlichen-bench  %s  (%d CPUs, data on %s%s)\n\n", b.o.bin, runtime.NumCPU(), fsType(b.tmp), map[bool]string{true: ", -quick"}[b.o.quick])
	fmt.Fprintf(w, "%s %16s  %s %-7s %s\n", pad("figure", 58), "value", pad("budget", 10), "", "note")
	section := ""
	for _, f := range fs {
		if f.Section != section {
			section = f.Section
			fmt.Fprintf(w, "%s\n", strings.ToUpper(section))
		}
		status := ""
		if f.Within != nil {
			status = "ok"
			if !*f.Within {
				status = "MISSED"
			}
		}
		fmt.Fprintf(w, "  %s %16s  %s %-7s %s\n", pad(f.Name, 56), formatValue(f.Value, f.Unit), pad(f.Budget, 10), status, f.Note)
	}
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nendpoint errors (count, first message):\n")
		for _, e := range errs {
			fmt.Fprintf(w, "  %6d  %s\n          %s\n", e.Count, e.Key, e.First)
		}
	}
	if len(b.problems) > 0 {
		fmt.Fprintf(w, "\nproblems:\n")
		for _, p := range b.problems {
			fmt.Fprintf(w, "  - %s\n", strings.ReplaceAll(p, "\n", "\n    "))
		}
	}
}

// pad fills s with spaces to n runes (fmt pads by bytes, and names hold
// "×", "≤" and "≥").
func pad(s string, n int) string {
	return s + strings.Repeat(" ", max(0, n-utf8.RuneCountInString(s)))
}

func formatValue(v float64, unit string) string {
	var s string
	switch {
	case unit == "":
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1000:
		s = addCommas(fmt.Sprintf("%.0f", v))
	case math.Abs(v) >= 100:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

func addCommas(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// fsType names the filesystem holding dir, since fsync cost depends on it.
func fsType(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown filesystem"
	}
	names := map[uint32]string{0xEF53: "ext4", 0x01021994: "tmpfs", 0x794c7630: "overlayfs",
		0x58465342: "xfs", 0x9123683E: "btrfs", 0xF2F52010: "f2fs", 0x4d44: "vfat"}
	if n, ok := names[uint32(st.Type)]; ok {
		return n
	}
	return fmt.Sprintf("filesystem 0x%x", st.Type)
}
