package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestChatFlow(t *testing.T) {
	s := start(t)
	alice, bob := s.register("alice"), s.register("bob")
	room := s.createRoom(alice, map[string]any{"preset": "private_chat", "name": "Flow", "invite": []string{bob.ID}})

	// Bob sees the invite in an initial sync, joins, and alice's messages
	// arrive through an incremental long-poll.
	r := s.must(200, "GET", "/_matrix/client/v3/sync", bob.Token, nil)
	invites, _ := r.Body["rooms"].(map[string]any)["invite"].(map[string]any)
	if _, ok := invites[room]; !ok {
		t.Fatalf("invite missing from sync: %s", r.Raw)
	}
	since := r.str("next_batch")
	s.must(200, "POST", "/_matrix/client/v3/join/"+esc(room), bob.Token, map[string]any{})
	r = s.must(200, "GET", "/_matrix/client/v3/sync?since="+since, bob.Token, nil)
	since = r.str("next_batch")

	got := make(chan response, 1)
	go func() { got <- s.do("GET", "/_matrix/client/v3/sync?timeout=10000&since="+since, bob.Token, nil) }()
	time.Sleep(100 * time.Millisecond)
	s.must(200, "PUT", "/_matrix/client/v3/rooms/"+esc(room)+"/send/m.room.message/t1", alice.Token,
		map[string]any{"msgtype": "m.text", "body": "hello bob"})
	select {
	case r = <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("long-poll did not wake")
	}
	join := r.Body["rooms"].(map[string]any)["join"].(map[string]any)[room].(map[string]any)
	evs := join["timeline"].(map[string]any)["events"].([]any)
	last := evs[len(evs)-1].(map[string]any)
	if last["content"].(map[string]any)["body"] != "hello bob" || last["sender"] != alice.ID {
		t.Fatalf("unexpected timeline: %s", r.Raw)
	}

	// Pagination returns history newest first, with an end token.
	for i := 0; i < 15; i++ {
		s.must(200, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/p%d", esc(room), i), alice.Token,
			map[string]any{"msgtype": "m.text", "body": fmt.Sprint("p", i)})
	}
	m := s.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/messages?dir=b&limit=5", bob.Token, nil)
	chunk := m.Body["chunk"].([]any)
	if len(chunk) != 5 || chunk[0].(map[string]any)["content"].(map[string]any)["body"] != "p14" || m.str("end") == "" {
		t.Fatalf("messages: %s", m.Raw)
	}
	m2 := s.must(200, "GET", "/_matrix/client/v3/rooms/"+esc(room)+"/messages?dir=b&limit=5&from="+m.str("end"), bob.Token, nil)
	if b := m2.Body["chunk"].([]any)[0].(map[string]any)["content"].(map[string]any)["body"]; b != "p9" {
		t.Fatalf("second page starts with %v", b)
	}
}

// TestCrashDurability kills the server with SIGKILL while 8 clients send;
// every message that was answered 200 must be there, in order, after restart.
func TestCrashDurability(t *testing.T) {
	s := start(t)
	alice := s.register("crash")
	room := s.createRoom(alice, nil)
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("w%d-%d", w, i)
				r, err := tryDo(s, "PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/%s", esc(room), body), alice.Token,
					map[string]any{"msgtype": "m.text", "body": body})
				if err != nil {
					return
				}
				if r.Status == 200 {
					mu.Lock()
					acked[body] = true
					mu.Unlock()
				}
			}
		}(w)
	}
	time.Sleep(1500 * time.Millisecond)
	s.kill()
	close(stop)
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no message was acknowledged before the kill")
	}
	s.launch()
	found := map[string]bool{}
	lastIdx := map[string]int{}
	from := ""
	for {
		path := "/_matrix/client/v3/rooms/" + esc(room) + "/messages?dir=f&limit=1000"
		if from != "" {
			path += "&from=" + from
		}
		m := s.must(200, "GET", path, alice.Token, nil)
		for _, e := range m.Body["chunk"].([]any) {
			c, _ := e.(map[string]any)["content"].(map[string]any)
			b, _ := c["body"].(string)
			if b == "" {
				continue
			}
			found[b] = true
			var w, i int
			fmt.Sscanf(b, "w%d-%d", &w, &i)
			key := fmt.Sprint(w)
			if prev, ok := lastIdx[key]; ok && i <= prev {
				t.Fatalf("writer %d out of order: %d after %d", w, i, prev)
			}
			lastIdx[key] = i
		}
		from = m.str("end")
		if from == "" {
			break
		}
	}
	for b := range acked {
		if !found[b] {
			t.Errorf("acknowledged message %s lost", b)
		}
	}
	t.Logf("%d acknowledged messages, all present after SIGKILL", len(acked))
}
