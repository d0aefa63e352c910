package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file holds the measurements: /proc readings of the server process,
// percentiles, and one function per load phase.

// --- the server process, from /proc ---

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat,
// read from the auxiliary vector (AT_CLKTCK) with the usual 100 as fallback.
var clockTicks = readClockTicks()

func readClockTicks() float64 {
	const atNull, atClkTck = 0, 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	w := strconv.IntSize / 8
	for i := 0; i+2*w <= len(b); i += 2 * w {
		var k, v uint64
		if w == 8 {
			k, v = binary.NativeEndian.Uint64(b[i:]), binary.NativeEndian.Uint64(b[i+8:])
		} else {
			k, v = uint64(binary.NativeEndian.Uint32(b[i:])), uint64(binary.NativeEndian.Uint32(b[i+4:]))
		}
		if k == atNull {
			break
		}
		if k == atClkTck && v > 0 {
			return float64(v)
		}
	}
	return 100
}

// procCPU is the CPU time (user + system, all threads) pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'. utime and stime are fields 14 and 15 of stat(5),
	// so 12th and 13th after the name.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(float64(ut+st) / clockTicks * float64(time.Second)), nil
}

// procStatus reads one "kB" field of /proc/<pid>/status (VmRSS, VmHWM)
// in bytes.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// resetPeakRSS resets VmHWM to the current RSS (proc(5), clear_refs "5").
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// rssSampler polls VmRSS every 10 ms and keeps the maximum: a fallback
// for the peak when clear_refs is not allowed.
type rssSampler struct {
	stopc chan struct{}
	done  chan struct{}
	max   int64
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if v, err := procStatus(pid, "VmRSS"); err == nil && v > s.max {
				s.max = v
			}
			select {
			case <-s.stopc:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() int64 {
	close(s.stopc)
	<-s.done
	return s.max
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// --- statistics ---

// percentile is the nearest-rank q-quantile (0 < q <= 1) of ds, which it
// sorts.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(q*float64(len(ds)))) - 1
	return ds[max(0, min(i, len(ds)-1))]
}

// nonce makes transaction IDs and message texts unique to this run.
var nonce = time.Now().UnixNano() & 0xffffff

// --- phases ---

// runRegistrations registers n users with workers concurrent registrars
// and returns them (in index order) and the rate of completed
// registrations.
func runRegistrations(ctx context.Context, c *client, n, workers int) ([]user, float64, error) {
	users := make([]user, n)
	idx := make(chan int, n)
	for i := range n {
		idx <- i
	}
	close(idx)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				if ctx.Err() != nil {
					failed.Add(1)
					continue
				}
				u, err := c.register(ctx, fmt.Sprintf("bench%03d", i), fmt.Sprintf("bench-password-%d-%d", nonce, i))
				if err != nil {
					failed.Add(1)
					continue
				}
				users[i] = u
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	ok := int64(n) - failed.Load()
	rate := float64(ok) / elapsed.Seconds()
	if failed.Load() > 0 {
		return nil, rate, fmt.Errorf("%d of %d registrations failed", failed.Load(), n)
	}
	return users, rate, nil
}

// joinAll joins every user to roomID, 8 at a time.
func joinAll(ctx context.Context, c *client, users []user, roomID string) error {
	var wg sync.WaitGroup
	var failed atomic.Int64
	sem := make(chan struct{}, 8)
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if c.join(ctx, u, roomID) != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d of %d joins failed", n, len(users))
	}
	return nil
}

// ingestText is a message body that makes a content of about 100 bytes
// of JSON.
func ingestText(sender, n int) string {
	return fmt.Sprintf("bench s%d n%06d: the quick brown fox jumps over the lazy dog, again and again", sender, n)
}

type ingestResult struct {
	Warm, Sent, Errors int
	Elapsed            time.Duration
	P50, P99           time.Duration
	CPU                time.Duration // server CPU over the measured part
	CPUErr             error
	ClientCPU          time.Duration // this tool's CPU over the same time
	PeakRSS            int64         // VmHWM after a reset just before the load
	PeakFromSamples    bool          // the reset failed: PeakRSS is the max of 10 ms samples
	RSSAfter           int64
}

// runIngest has each sender post messages to roomID in a closed loop
// (the next request starts when the previous one is answered) for dur,
// after 5 warm-up messages each.
func runIngest(ctx context.Context, c *client, pid int, senders []user, roomID string, dur time.Duration) (ingestResult, error) {
	var r ingestResult
	var warm atomic.Int64
	var wg sync.WaitGroup
	for i, u := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range 5 {
				if c.send(ctx, u, roomID, fmt.Sprintf("w%x-%d-%d", nonce, i, n), ingestText(i, n)) == nil {
					warm.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	r.Warm = int(warm.Load())
	if r.Warm == 0 {
		return r, errors.New("no warm-up message was accepted")
	}

	hwmErr := resetPeakRSS(pid)
	sampler := sampleRSS(pid)
	cpu0, cpuErr0 := procCPU(pid)
	self0, _ := procCPU(os.Getpid())
	const maxPerSender = 1_000_000
	lat := make([][]time.Duration, len(senders))
	var errs atomic.Int64
	start := time.Now()
	deadline := start.Add(dur)
	for i, u := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat[i] = make([]time.Duration, 0, 1<<14)
			failedInARow := 0
			for n := 5; n < maxPerSender && time.Now().Before(deadline); n++ {
				t := time.Now()
				err := c.send(ctx, u, roomID, fmt.Sprintf("m%x-%d-%d", nonce, i, n), ingestText(i, n))
				d := time.Since(t)
				if err != nil {
					errs.Add(1)
					if failedInARow++; failedInARow >= 50 || ctx.Err() != nil {
						return
					}
					time.Sleep(time.Millisecond)
					continue
				}
				failedInARow = 0
				lat[i] = append(lat[i], d)
			}
		}()
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	cpu1, cpuErr1 := procCPU(pid)
	self1, _ := procCPU(os.Getpid())
	r.ClientCPU = self1 - self0
	sampled := sampler.stop()
	r.CPU, r.CPUErr = cpu1-cpu0, errors.Join(cpuErr0, cpuErr1)
	if hwm, err := procStatus(pid, "VmHWM"); hwmErr == nil && err == nil {
		r.PeakRSS = hwm
	} else {
		r.PeakRSS, r.PeakFromSamples = sampled, true
	}
	r.RSSAfter, _ = procStatus(pid, "VmRSS")
	all := slices.Concat(lat...)
	r.Sent, r.Errors = len(all), int(errs.Load())
	r.P50, r.P99 = percentile(all, 0.50), percentile(all, 0.99)
	if r.Sent == 0 {
		return r, errors.New("no message was accepted")
	}
	return r, nil
}

type syncLatencyResult struct {
	Messages, Receivers int
	Pairs, Missed       int
	P50, P99, Max       time.Duration
	SendP50             time.Duration
}

// runSyncLatency joins receivers to a new room, gives each a next_batch
// from an initial sync, and keeps each in a long-poll loop (re-polling at
// once with the new next_batch). sender then posts n messages one at a
// time: it waits (at most 5 s) until every receiver has seen the message,
// pauses, and sends the next. A pair's latency runs from the start of the
// send request to the arrival of the sync response whose timeline holds
// that message's text.
func runSyncLatency(ctx context.Context, c *client, sender user, receivers []user, n int, pause time.Duration) (syncLatencyResult, error) {
	res := syncLatencyResult{Messages: n, Receivers: len(receivers)}
	roomID, err := c.createRoom(ctx, sender, map[string]any{"preset": "public_chat"})
	if err != nil {
		return res, err
	}
	if err := joinAll(ctx, c, receivers, roomID); err != nil {
		return res, err
	}
	const filter = `{"room":{"timeline":{"limit":50}}}`
	const route = "GET /sync"
	since := make([]string, len(receivers))
	for i, u := range receivers {
		var sr syncResponse
		if err := c.do(ctx, route+" (initial)", "GET", syncPath("", filter, 0), u.Token, nil, &sr); err != nil {
			return res, err
		}
		if sr.NextBatch == "" {
			return res, errors.New("initial sync without next_batch")
		}
		since[i] = sr.NextBatch
	}

	prefix := fmt.Sprintf("lat-%x-", nonce)
	recv := make([][]time.Time, len(receivers))
	delivered := make([]atomic.Int32, n)
	notify := make(chan struct{}, 1)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for r, u := range receivers {
		recv[r] = make([]time.Time, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			nb, failedInARow := since[r], 0
			for rctx.Err() == nil {
				status, b, err := c.raw(rctx, "GET", syncPath(nb, filter, 30000), u.Token, nil)
				t := time.Now()
				if rctx.Err() != nil {
					return
				}
				var sr syncResponse
				if err == nil && status != 200 {
					err = decodeAPIError(route+" (long-poll)", status, b)
				}
				if err == nil {
					err = json.Unmarshal(b, &sr)
				}
				if err != nil {
					c.errs.add(route+" (long-poll)", err)
					if failedInARow++; failedInARow >= 20 {
						return
					}
					time.Sleep(50 * time.Millisecond)
					continue
				}
				failedInARow = 0
				if sr.NextBatch != "" {
					nb = sr.NextBatch
				}
				for _, ev := range sr.Rooms.Join[roomID].Timeline.Events {
					i, err := strconv.Atoi(strings.TrimPrefix(ev.Content.Body, prefix))
					if err != nil || !strings.HasPrefix(ev.Content.Body, prefix) || i < 0 || i >= n || !recv[r][i].IsZero() {
						continue
					}
					recv[r][i] = t
					delivered[i].Add(1)
					select {
					case notify <- struct{}{}:
					default:
					}
				}
			}
		}()
	}

	sendStart := make([]time.Time, n)
	var sendDur []time.Duration
	sendFailures := 0
	want := int32(len(receivers))
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t := time.Now()
		if err := c.send(ctx, sender, roomID, fmt.Sprintf("lat%x-%d", nonce, i), prefix+strconv.Itoa(i)); err != nil {
			if sendFailures++; sendFailures >= 20 {
				break
			}
			continue
		}
		sendStart[i] = t
		sendDur = append(sendDur, time.Since(t))
		timeout := time.NewTimer(5 * time.Second)
	wait:
		for delivered[i].Load() < want {
			select {
			case <-notify:
			case <-timeout.C:
				break wait
			case <-ctx.Done():
				break wait
			}
		}
		timeout.Stop()
		time.Sleep(pause)
	}
	cancel()
	wg.Wait()

	var lats []time.Duration
	for i := range n {
		if sendStart[i].IsZero() {
			continue
		}
		for r := range receivers {
			if recv[r][i].IsZero() {
				res.Missed++
				continue
			}
			lats = append(lats, recv[r][i].Sub(sendStart[i]))
		}
	}
	res.Pairs = len(lats)
	res.P50, res.P99, res.Max = percentile(lats, 0.50), percentile(lats, 0.99), percentile(lats, 1)
	res.SendP50 = percentile(sendDur, 0.50)
	if res.Pairs == 0 {
		return res, errors.New("no message reached any receiver")
	}
	return res, nil
}

type initialSyncResult struct {
	Rooms, PerRoom       int // asked for
	Sent                 int // messages the setup got accepted
	Setup                time.Duration
	Median, First, Worst time.Duration
	Bytes                int // decoded size of the response
	GotRooms             int // joined rooms in the response
	MinEvents, MaxEvents int // timeline events per room in the response
}

// runInitialSync fills rooms rooms with perRoom messages each, all by u,
// then times 5 initial syncs with a timeline limit of 20.
func runInitialSync(ctx context.Context, c *client, u user, rooms, perRoom int) (initialSyncResult, error) {
	res := initialSyncResult{Rooms: rooms, PerRoom: perRoom}
	t0 := time.Now()
	ids := make([]string, 0, rooms)
	for i := range rooms {
		id, err := c.createRoom(ctx, u, map[string]any{"name": fmt.Sprintf("bench room %d", i)})
		if err != nil {
			return res, err
		}
		ids = append(ids, id)
	}
	work := make(chan int, rooms)
	for i := range ids {
		work <- i
	}
	close(work)
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ri := range work {
				for m := 0; m < perRoom && ctx.Err() == nil && failed.Load() < 100; m++ {
					if c.send(ctx, u, ids[ri], fmt.Sprintf("is%x-%d-%d", nonce, ri, m), ingestText(ri, m)) == nil {
						sent.Add(1)
					} else {
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	res.Sent, res.Setup = int(sent.Load()), time.Since(t0)
	if f := failed.Load(); f > 0 {
		return res, fmt.Errorf("setup: %d of %d messages failed", f, rooms*perRoom)
	}

	const filter = `{"room":{"timeline":{"limit":20}}}`
	var ds []time.Duration
	for run := range 5 {
		t := time.Now()
		status, b, err := c.raw(ctx, "GET", syncPath("", filter, -1), u.Token, nil)
		d := time.Since(t)
		if err == nil && status != 200 {
			err = decodeAPIError("GET /sync (initial, 50 rooms)", status, b)
		}
		if err != nil {
			c.errs.add("GET /sync (initial, 50 rooms)", err)
			return res, err
		}
		ds = append(ds, d)
		if run == 0 {
			res.First, res.Bytes = d, len(b)
			var sr syncResponse
			if err := json.NewDecoder(bytes.NewReader(b)).Decode(&sr); err != nil {
				return res, fmt.Errorf("decode initial sync: %w", err)
			}
			res.GotRooms, res.MinEvents = len(sr.Rooms.Join), math.MaxInt
			for _, jr := range sr.Rooms.Join {
				k := len(jr.Timeline.Events)
				res.MinEvents, res.MaxEvents = min(res.MinEvents, k), max(res.MaxEvents, k)
			}
			if res.GotRooms == 0 {
				res.MinEvents = 0
			}
		}
	}
	res.Median, res.Worst = percentile(ds, 0.5), percentile(ds, 1)
	return res, nil
}
