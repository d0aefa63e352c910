package boltstore

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/lichen-hs/lichen/core/accounts"
	"github.com/lichen-hs/lichen/core/notify"
	"github.com/lichen-hs/lichen/core/todevice"
)

// Store tests for send-to-device queues over a real bbolt file.

const (
	tdAlice = "@alice:td.local"
	tdBob   = "@bob:td.local"
)

type tdEnv struct {
	t    *testing.T
	path string
	st   *Store
	hub  *notify.Hub
	svc  *todevice.Service
	tok  byte // distinguishes access token hashes
}

// newTDEnv opens a store with alice (device A1) and bob (devices B1, B10,
// B2: B1 and B10 check that one device's prefix never covers another's).
func newTDEnv(t *testing.T) *tdEnv {
	t.Helper()
	e := &tdEnv{t: t, path: filepath.Join(t.TempDir(), "lichen.db")}
	e.open()
	t.Cleanup(func() { e.st.Close() })
	for _, u := range []string{tdAlice, tdBob} {
		if _, err := e.st.CreateAccount(accounts.NewAccount{Account: accounts.Account{UserID: u}}); err != nil {
			t.Fatal(err)
		}
	}
	e.login(tdAlice, "A1")
	for _, d := range []string{"B1", "B10", "B2"} {
		e.login(tdBob, d)
	}
	return e
}

func (e *tdEnv) open() {
	st, err := Open(e.path)
	if err != nil {
		e.t.Fatal(err)
	}
	e.st, e.hub = st, notify.New()
	e.svc = todevice.New(st, e.hub, "td.local", func(user string) ([]string, error) {
		ds, err := st.AccountDevices(user)
		var out []string
		for _, d := range ds {
			out = append(out, d.DeviceID)
		}
		return out, err
	})
}

func (e *tdEnv) reopen() {
	e.t.Helper()
	if err := e.st.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

func (e *tdEnv) login(user, device string) {
	e.t.Helper()
	e.tok++
	if _, err := e.st.CommitLogin(accounts.NewLogin{UserID: user, DeviceID: device,
		Access: accounts.AccessToken{Hash: accounts.TokenHash{e.tok}}}); err != nil {
		e.t.Fatal(err)
	}
}

// send sends {"n": n} of type m.test from alice's A1 to one device.
func (e *tdEnv) send(txn, user, device string, n int) {
	e.t.Helper()
	msgs := todevice.Messages{user: {device: json.RawMessage(fmt.Sprintf(`{"n":%d}`, n))}}
	if err := e.svc.Send(todevice.Sender{User: tdAlice, Device: "A1"}, "m.test", txn, msgs); err != nil {
		e.t.Fatal(err)
	}
}

// inbox reads the device's queue and renders it as the n of each message.
func (e *tdEnv) inbox(user, device string, since, upto uint64, limit int) (ns []int, last uint64, more bool) {
	e.t.Helper()
	evs, last, more, err := e.st.ToDevice(user, device, since, upto, limit)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, raw := range evs {
		var ev struct {
			Content struct{ N int } `json:"content"`
			Sender  string          `json:"sender"`
			Type    string          `json:"type"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil || ev.Sender != tdAlice || ev.Type != "m.test" {
			e.t.Fatalf("delivered %s (%v)", raw, err)
		}
		ns = append(ns, ev.Content.N)
	}
	return ns, last, more
}

// stored counts the keys of a bucket under a device's prefix.
func (e *tdEnv) stored(bucket []byte, user, device string) int {
	n := 0
	p := tdPrefix(user, device)
	_ = e.st.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucket).Cursor()
		for k, _ := c.Seek(p); k != nil && strings.HasPrefix(string(k), string(p)); k, _ = c.Next() {
			n++
		}
		return nil
	})
	return n
}

// txID is the ID of the last committed write transaction.
func (e *tdEnv) txID() int {
	var id int
	_ = e.st.view(func(tx *bolt.Tx) error { id = tx.ID(); return nil })
	return id
}

// The queue is delivered oldest first, bounded by upto and limit, again and
// again until a sync from a later since acknowledges it; acknowledged
// messages are deleted with a durable write, and a sync with nothing to
// acknowledge writes nothing.
func TestToDeviceQueue(t *testing.T) {
	e := newTDEnv(t)
	for i := 1; i <= 3; i++ {
		e.send(fmt.Sprint("t", i), tdBob, "B1", i)
	}
	e.send("t4", tdBob, "B2", 4)
	upto := e.st.Pos()

	type step struct {
		name        string
		since, upto uint64 // 0 upto means the current position
		limit       int
		want        []int
		more        bool
		left        int // B1's queue length afterwards
	}
	var pos [4]uint64 // positions of B1's messages 1..3, learned as they are read
	ns, last, more := e.inbox(tdBob, "B1", 0, upto, 100)
	if !slices.Equal(ns, []int{1, 2, 3}) || more {
		t.Fatalf("initial: %v more %v", ns, more)
	}
	pos[3] = last
	_, pos[1], _ = e.inbox(tdBob, "B1", 0, upto, 1)
	_, pos[2], _ = e.inbox(tdBob, "B1", 0, upto, 2)
	if !(0 < pos[1] && pos[1] < pos[2] && pos[2] < pos[3] && pos[3] < upto) {
		t.Fatalf("positions %v, upto %d", pos, upto)
	}
	for _, s := range []step{
		{"redelivered while since stays", 0, upto, 100, []int{1, 2, 3}, false, 3},
		{"limit", 0, upto, 2, []int{1, 2}, true, 3},
		{"limit 0", 0, upto, 0, nil, true, 3},
		{"upto bounds the window", 0, pos[2], 100, []int{1, 2}, false, 3},
		{"upto bounds more", 0, pos[2], 1, []int{1}, true, 3},
		{"since acknowledges the first", pos[1], upto, 100, []int{2, 3}, false, 2},
		{"an older since gets no deleted message back", 0, upto, 100, []int{2, 3}, false, 2},
		{"acknowledge all", pos[3], upto, 100, nil, false, 0},
	} {
		ns, last, more := e.inbox(tdBob, "B1", s.since, s.upto, s.limit)
		wantLast := s.since
		if len(s.want) > 0 {
			wantLast = pos[s.want[len(s.want)-1]]
		}
		if !slices.Equal(ns, s.want) || more != s.more || last != wantLast {
			t.Errorf("%s: got %v last %d more %v, want %v last %d more %v", s.name, ns, last, more, s.want, wantLast, s.more)
		}
		if n := e.stored(bucketToDevice, tdBob, "B1"); n != s.left {
			t.Errorf("%s: %d stored, want %d", s.name, n, s.left)
		}
	}
	// Other devices' queues are their own: B2 still has its message, and
	// B10 (whose key extends B1's) has none.
	if ns, _, _ := e.inbox(tdBob, "B2", pos[3], upto, 100); !slices.Equal(ns, []int{4}) {
		t.Errorf("B2 after B1 acknowledged: %v", ns)
	}
	if ns, _, _ := e.inbox(tdBob, "B10", 0, upto, 100); ns != nil {
		t.Errorf("B10: %v", ns)
	}

	// Nothing to acknowledge: no write transaction at all.
	before := e.txID()
	e.inbox(tdBob, "B1", pos[3], upto, 100)
	e.inbox(tdBob, "B2", 0, upto, 100)
	e.inbox(tdAlice, "A1", upto, upto, 100)
	if after := e.txID(); after != before {
		t.Errorf("syncs with nothing to delete committed %d transactions", after-before)
	}
	e.inbox(tdBob, "B2", upto, upto, 100)
	if e.txID() == before || e.stored(bucketToDevice, tdBob, "B2") != 0 {
		t.Error("acknowledging B2's message did not delete it")
	}
}

// To-device messages take their positions from the counter every
// persistent stream shares, interleaved with the others, and the store's
// Pos covers them once committed.
func TestToDeviceSharedPositions(t *testing.T) {
	e := newTDEnv(t)
	e.send("t1", tdBob, "B1", 1)
	_, p1, _ := e.inbox(tdBob, "B1", 0, e.st.Pos(), 100)
	if p1 != e.st.Pos() {
		t.Fatalf("to-device position %d, store position %d", p1, e.st.Pos())
	}
	p2, err := e.st.UpdateAccountData(tdBob, "", "m.test", func([]byte) ([]byte, error) { return []byte(`{}`), nil })
	if err != nil {
		t.Fatal(err)
	}
	e.send("t2", tdBob, "B1", 2)
	_, p3, _ := e.inbox(tdBob, "B1", p1, e.st.Pos(), 100)
	if !(p1 < p2 && p2 < p3) || p3 != e.st.Pos() {
		t.Errorf("positions: to-device %d, account data %d, to-device %d; store %d", p1, p2, p3, e.st.Pos())
	}
	// A window ending at the account data change holds no to-device message.
	if ns, last, more := e.inbox(tdBob, "B1", p1, p2, 100); ns != nil || more || last != p1 {
		t.Errorf("(p1, p2]: %v last %d more %v", ns, last, more)
	}
	// Fan-out: one position per device, in device order.
	if err := e.svc.Send(todevice.Sender{User: tdAlice, Device: "A1"}, "m.test", "t3",
		todevice.Messages{tdBob: {"*": json.RawMessage(`{"n":3}`)}}); err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, d := range []string{"B1", "B10", "B2"} {
		ns, last, _ := e.inbox(tdBob, d, p3, e.st.Pos(), 100)
		if !slices.Equal(ns, []int{3}) {
			t.Errorf("%s after *: %v", d, ns)
		}
		got = append(got, last)
	}
	if !slices.IsSorted(got) || got[0] != p3+1 || got[2] != e.st.Pos() {
		t.Errorf("fan-out positions %v after %d, store %d", got, p3, e.st.Pos())
	}
}

// A transaction is applied once, durably; its ID is scoped to the sending
// device; messages to devices that do not exist are not stored.
func TestToDeviceTransactions(t *testing.T) {
	e := newTDEnv(t)
	ev := json.RawMessage(`{"content":{},"sender":"@alice:td.local","type":"m.test"}`)
	put := func(txn todevice.Txn, msgs ...todevice.Message) (bool, []string) {
		t.Helper()
		dup, users, err := e.st.PutToDevice(txn, msgs)
		if err != nil {
			t.Fatal(err)
		}
		return dup, users
	}
	a1 := todevice.Txn{User: tdAlice, Device: "A1", ID: "x"}
	toB1 := todevice.Message{User: tdBob, Device: "B1", Event: ev}
	toA1 := todevice.Message{User: tdAlice, Device: "A1", Event: ev}
	gone := todevice.Message{User: tdBob, Device: "GONE", Event: ev}
	nobody := todevice.Message{User: "@nobody:td.local", Device: "N1", Event: ev}

	if dup, users := put(a1, toB1, gone, nobody, toA1); dup || !slices.Equal(users, []string{tdAlice, tdBob}) {
		t.Errorf("first: dup %v users %v", dup, users)
	}
	if n := e.stored(bucketToDevice, tdBob, "GONE") + e.stored(bucketToDevice, "@nobody:td.local", "N1"); n != 0 {
		t.Errorf("stored %d messages for devices that do not exist", n)
	}
	e.reopen()
	if dup, users := put(a1, toB1); !dup || users != nil {
		t.Errorf("retry after a restart: dup %v users %v", dup, users)
	}
	if n := e.stored(bucketToDevice, tdBob, "B1"); n != 1 {
		t.Errorf("B1 holds %d after the retry, want 1", n)
	}
	if dup, _ := put(todevice.Txn{User: tdAlice, Device: "A2", ID: "x"}, toB1); dup {
		t.Error("the same ID from another device was taken for a retry")
	}
	if dup, _ := put(todevice.Txn{User: tdAlice, Device: "A1", ID: "y"}, gone); dup {
		t.Error("a new ID was taken for a retry")
	}
	if dup, _ := put(todevice.Txn{User: tdAlice, Device: "A1", ID: "y"}, toB1); !dup {
		t.Error("a transaction that stored nothing was not remembered")
	}
	if n := e.stored(bucketToDevice, tdBob, "B1"); n != 2 {
		t.Errorf("B1 holds %d, want 2", n)
	}

	// Concurrent retries of one transaction store it once; concurrent
	// distinct ones all land, each at its own position.
	var wg sync.WaitGroup
	dups := make([]bool, 16)
	for i := range dups {
		wg.Add(2)
		go func() {
			defer wg.Done()
			dups[i], _, _ = e.st.PutToDevice(todevice.Txn{User: tdAlice, Device: "A1", ID: "same"}, []todevice.Message{toB1})
		}()
		go func() {
			defer wg.Done()
			if _, _, err := e.st.PutToDevice(todevice.Txn{User: tdAlice, Device: "A1", ID: fmt.Sprint("c", i)}, []todevice.Message{toA1}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(dups) - countTrue(dups); n != 1 {
		t.Errorf("concurrent retries: %d applied, want 1", n)
	}
	if n := e.stored(bucketToDevice, tdBob, "B1"); n != 3 {
		t.Errorf("B1 holds %d, want 3", n)
	}
	if n := e.stored(bucketToDevice, tdAlice, "A1"); n != 1+len(dups) {
		t.Errorf("A1 holds %d, want %d", n, 1+len(dups))
	}
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// Deleting a device drops its queue and the transactions it sent, and
// nothing else; a device deleted before a send commits gets no queue.
func TestDeleteDeviceInbox(t *testing.T) {
	e := newTDEnv(t)
	e.send("t1", tdBob, "B1", 1)
	e.send("t2", tdBob, "B10", 2)
	e.send("t3", tdAlice, "A1", 3)
	if err := e.svc.Send(todevice.Sender{User: tdBob, Device: "B1"}, "m.test", "b", todevice.Messages{tdAlice: {"A1": json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.DeleteDeviceInbox(tdBob, "B1"); err != nil {
		t.Fatal(err)
	}
	e.reopen()
	if n := e.stored(bucketToDevice, tdBob, "B1") + e.stored(bucketToDeviceTxn, tdBob, "B1"); n != 0 {
		t.Errorf("%d keys of the deleted device remain", n)
	}
	if e.stored(bucketToDevice, tdBob, "B10") != 1 || e.stored(bucketToDevice, tdAlice, "A1") != 2 || e.stored(bucketToDeviceTxn, tdAlice, "A1") != 3 {
		t.Error("deleting B1 touched another device's queue or transactions")
	}
	// Its transactions went with it: the same ID from a device created
	// again under that ID is a new send.
	if dup, _, err := e.st.PutToDevice(todevice.Txn{User: tdBob, Device: "B1", ID: "b"}, nil); err != nil || dup {
		t.Errorf("transaction of the deleted device: dup %v err %v", dup, err)
	}

	// B2 is deleted (as accounts does) before a send to it commits.
	if _, err := e.st.DeleteAccountDevices(tdBob, []string{"B2"}); err != nil {
		t.Fatal(err)
	}
	e.send("t4", tdBob, "B2", 4)
	if n := e.stored(bucketToDevice, tdBob, "B2"); n != 0 {
		t.Errorf("a deleted device got %d messages", n)
	}
}
