package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Send-to-device messaging (client-server-api "Send-to-Device
// messaging"): PUT /sendToDevice queues, /sync delivers in order of
// arrival until the device syncs from a later token.

// sendToDevice PUTs a sendToDevice request; body may be a string (sent
// verbatim) or a value (sent as JSON).
func sendToDevice(s *server, from user, typ, txn string, body any) response {
	s.t.Helper()
	return s.do("PUT", cs+"/sendToDevice/"+url.PathEscape(typ)+"/"+url.PathEscape(txn), from.Token, body)
}

// toDeviceMsgs is a sendToDevice body: {"messages": {user: {device: content}}}.
func toDeviceMsgs(kv ...any) map[string]any {
	byUser := map[string]any{}
	for i := 0; i+2 < len(kv); i += 3 {
		u := kv[i].(string)
		if byUser[u] == nil {
			byUser[u] = map[string]any{}
		}
		byUser[u].(map[string]any)[kv[i+1].(string)] = kv[i+2]
	}
	return map[string]any{"messages": byUser}
}

// toDeviceSync syncs the device from since ("" = initial) with the given
// long-poll timeout and returns next_batch and its to-device events, each
// rendered as "sender type n" (n from the content; "-" when absent).
func toDeviceSync(s *server, u user, since string, timeout time.Duration) (string, []string) {
	s.t.Helper()
	q := fmt.Sprintf("?timeout=%d", timeout.Milliseconds())
	if since != "" {
		q += "&since=" + url.QueryEscape(since)
	}
	r := s.must(200, "GET", cs+"/sync"+q, u.Token, nil)
	var out []string
	for _, ev := range objList(r.Body, "to_device", "events") {
		n := "-"
		if v, ok := obj(ev, "content", "n").(float64); ok {
			n = fmt.Sprint(v)
		}
		out = append(out, objStr(ev, "sender")+" "+objStr(ev, "type")+" "+n)
	}
	return r.str("next_batch"), out
}

func localpart(id string) string { return strings.TrimPrefix(strings.SplitN(id, ":", 2)[0], "@") }

// msgsFrom renders the expected to-device events from sender, of type typ,
// with contents n = ns.
func msgsFrom(sender user, typ string, ns ...int) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s %s %d", sender.ID, typ, n))
	}
	return out
}

// wantToDevice checks a device's to-device events.
func wantToDevice(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: to-device events\n  %q\nwant\n  %q", what, got, want)
	}
}

// Messages arrive in order of arrival, and again on every sync from the
// same since (the client may never have got the response); a sync from
// the next_batch acknowledges and deletes them, so even the old since no
// longer brings them back. Other devices get nothing.
func TestToDeviceDelivery(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	bob2 := loginDevice(s, localpart(bob.ID))
	tok0, evs := toDeviceSync(s, bob, "", 0)
	wantToDevice(t, "initial sync before any message", evs, nil)
	tok2, _ := toDeviceSync(s, bob2, "", 0)

	for i := 1; i <= 3; i++ {
		s.must(200, "PUT", cs+"/sendToDevice/m.test/t"+fmt.Sprint(i), alice.Token, toDeviceMsgs(bob.ID, bob.Device, map[string]any{"n": i}))
	}
	want := msgsFrom(alice, "m.test", 1, 2, 3)
	tok1, evs := toDeviceSync(s, bob, tok0, 0)
	wantToDevice(t, "first delivery", evs, want)
	_, evs = toDeviceSync(s, bob, tok0, 0)
	wantToDevice(t, "sync again from the same since", evs, want)
	_, evs = toDeviceSync(s, bob, "", 0)
	wantToDevice(t, "an initial sync before acknowledging", evs, want)

	_, evs = toDeviceSync(s, bob, tok1, 0)
	wantToDevice(t, "sync from next_batch", evs, nil)
	_, evs = toDeviceSync(s, bob, tok0, 0)
	wantToDevice(t, "the old since after acknowledging", evs, nil)

	_, evs = toDeviceSync(s, bob2, tok2, 0)
	wantToDevice(t, "bob's other device", evs, nil)
	_, evs = toDeviceSync(s, alice, "", 0)
	wantToDevice(t, "the sender", evs, nil)
}

// A long-polling sync returns as soon as a message for its device commits.
func TestToDeviceWakesLongPoll(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	tok, _ := toDeviceSync(s, bob, "", 0)
	tok, _ = toDeviceSync(s, bob, tok, 0) // settle presence and the like
	type result struct {
		evs []string
		d   time.Duration
	}
	done := make(chan result, 1)
	go func() {
		t0 := time.Now()
		_, evs := toDeviceSync(s, bob, tok, 30*time.Second)
		done <- result{evs, time.Since(t0)}
	}()
	time.Sleep(300 * time.Millisecond) // let the sync park
	s.must(200, "PUT", cs+"/sendToDevice/m.test/wake", alice.Token, toDeviceMsgs(bob.ID, bob.Device, map[string]any{"n": 1}))
	r := <-done
	wantToDevice(t, "long-poll", r.evs, msgsFrom(alice, "m.test", 1))
	if r.d > 20*time.Second {
		t.Errorf("the long-poll was not woken by the message: returned after %v", r.d)
	}
}

// "*" reaches every device of the user; a device named as well gets its
// own message instead, not both.
func TestToDeviceAllDevices(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	bob2 := loginDevice(s, localpart(bob.ID))
	tok1, _ := toDeviceSync(s, bob, "", 0)
	tok2, _ := toDeviceSync(s, bob2, "", 0)

	s.must(200, "PUT", cs+"/sendToDevice/m.test/all", alice.Token, toDeviceMsgs(bob.ID, "*", map[string]any{"n": 1}))
	s.must(200, "PUT", cs+"/sendToDevice/m.test/named", alice.Token, toDeviceMsgs(
		bob.ID, "*", map[string]any{"n": 2},
		bob.ID, bob2.Device, map[string]any{"n": 3}))
	_, evs := toDeviceSync(s, bob, tok1, 0)
	wantToDevice(t, "first device", evs, msgsFrom(alice, "m.test", 1, 2))
	_, evs = toDeviceSync(s, bob2, tok2, 0)
	wantToDevice(t, "second device", evs, msgsFrom(alice, "m.test", 1, 3))
}

// A retried transaction answers 200 and delivers nothing new, also after a
// power cut; the same transaction ID from another device is a new message.
func TestToDeviceTransactionRetry(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	alice2 := loginDevice(s, localpart(alice.ID))
	tok, _ := toDeviceSync(s, bob, "", 0)
	body := toDeviceMsgs(bob.ID, bob.Device, map[string]any{"n": 1})

	s.must(200, "PUT", cs+"/sendToDevice/m.test/same", alice.Token, body)
	if r := s.must(200, "PUT", cs+"/sendToDevice/m.test/same", alice.Token, body); string(r.Raw) != "{}" {
		t.Errorf("retry answered %s, want {}", r.Raw)
	}
	s.kill()
	s.launch()
	s.must(200, "PUT", cs+"/sendToDevice/m.test/same", alice.Token, body)
	s.must(200, "PUT", cs+"/sendToDevice/m.test/same", alice2.Token, toDeviceMsgs(bob.ID, bob.Device, map[string]any{"n": 2}))
	_, evs := toDeviceSync(s, bob, tok, 0)
	wantToDevice(t, "after retries", evs, append(msgsFrom(alice, "m.test", 1), msgsFrom(alice, "m.test", 2)...))
}

// Messages for devices or users that do not exist, and for other servers
// (no federation yet), are dropped without an error.
func TestToDeviceUnknownTargets(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	tok, _ := toDeviceSync(s, bob, "", 0)
	s.must(200, "PUT", cs+"/sendToDevice/m.test/x", alice.Token, toDeviceMsgs(
		bob.ID, "NOSUCHDEVICE", map[string]any{"n": 1},
		"@nobody:localhost", "*", map[string]any{"n": 2},
		"@nobody:localhost", "DEV", map[string]any{"n": 3},
		"@someone:elsewhere.example", "DEV", map[string]any{"n": 4},
		bob.ID, bob.Device, map[string]any{"n": 5}))
	_, evs := toDeviceSync(s, bob, tok, 0)
	wantToDevice(t, "bob", evs, msgsFrom(alice, "m.test", 5))
}

// A bad request is refused whole: none of its messages is delivered, not
// even those addressed correctly.
func TestToDeviceBadInput(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	tok, _ := toDeviceSync(s, bob, "", 0)
	good := fmt.Sprintf(`%q:{%q:{"n":1}}`, bob.ID, bob.Device)
	huge := `{"k":"` + strings.Repeat("x", 70000) + `"}`
	tests := []struct {
		name, typ, body string
		status          int
		code            string
	}{
		{"not JSON", "m.test", `{"messages":`, 400, "M_NOT_JSON"},
		{"no body", "m.test", ``, 400, "M_NOT_JSON"},
		{"body an array", "m.test", `[]`, 400, "M_BAD_JSON"},
		{"messages missing", "m.test", `{}`, 400, "M_MISSING_PARAM"},
		{"messages an array", "m.test", `{"messages":[]}`, 400, "M_BAD_JSON"},
		{"messages null", "m.test", `{"messages":null}`, 400, "M_BAD_JSON"},
		{"user value not an object", "m.test", `{"messages":{` + good + `,"@x:localhost":[]}}`, 400, "M_BAD_JSON"},
		{"content not an object", "m.test", fmt.Sprintf(`{"messages":{%q:{%q:{"n":1},"OTHER":"text"}}}`, bob.ID, bob.Device), 400, "M_BAD_JSON"},
		{"content null", "m.test", fmt.Sprintf(`{"messages":{%q:{%q:null}}}`, bob.ID, bob.Device), 400, "M_BAD_JSON"},
		{"key not a user ID", "m.test", `{"messages":{` + good + `,"bob":{"D":{}}}}`, 400, "M_INVALID_PARAM"},
		{"type over 255 bytes", strings.Repeat("t", 256), `{"messages":{` + good + `}}`, 400, "M_INVALID_PARAM"},
		{"message over 64 KiB", "m.test", fmt.Sprintf(`{"messages":{%s,"@x:localhost":{"D":%s}}}`, good, huge), 413, "M_TOO_LARGE"},
	}
	for i, tc := range tests {
		r := sendToDevice(s, alice, tc.typ, fmt.Sprint("bad", i), tc.body)
		t.Run(tc.name, func(t *testing.T) { wantErr(t, r, tc.status, tc.code) })
	}
	r := s.do("PUT", cs+"/sendToDevice/m.test/noauth", "", toDeviceMsgs(bob.ID, bob.Device, map[string]any{"n": 1}))
	wantErr(t, r, 401, "M_MISSING_TOKEN")
	_, evs := toDeviceSync(s, bob, tok, 0)
	wantToDevice(t, "after refused requests", evs, nil)
}

// A backlog larger than one response (the spec recommends 100 per sync)
// arrives over several syncs, in order, none lost or repeated.
func TestToDeviceBacklog(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	tok, _ := toDeviceSync(s, bob, "", 0)
	const n = 150
	for i := 1; i <= n; i++ {
		s.must(200, "PUT", cs+"/sendToDevice/m.test/b"+fmt.Sprint(i), alice.Token, toDeviceMsgs(bob.ID, bob.Device, map[string]any{"n": i}))
	}
	var got []string
	for round := 0; round < 10; round++ {
		next, evs := toDeviceSync(s, bob, tok, 0)
		if len(evs) > 100 {
			t.Errorf("one sync carried %d to-device messages", len(evs))
		}
		got = append(got, evs...)
		if len(evs) == 0 {
			break
		}
		tok = next
	}
	want := make([]int, n)
	for i := range want {
		want[i] = i + 1
	}
	wantToDevice(t, "backlog", got, msgsFrom(alice, "m.test", want...))
}

// A deleted device's queue goes with it: a device logged in later under
// the same ID does not receive what was meant for the old one.
func TestToDeviceDeletedDevice(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	bob2 := loginDevice(s, localpart(bob.ID))
	s.must(200, "PUT", cs+"/sendToDevice/m.test/old", alice.Token, toDeviceMsgs(bob.ID, bob2.Device, map[string]any{"n": 1}))
	if _, r := uiaPassword(s, "DELETE", cs+"/devices/"+url.PathEscape(bob2.Device), bob.Token, nil, localpart(bob.ID), accountPassword); r.Status != 200 {
		t.Fatalf("delete device: %d %s", r.Status, r.Raw)
	}
	r := s.must(200, "POST", cs+"/login", "", map[string]any{
		"type":       "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": localpart(bob.ID)},
		"password":   accountPassword,
		"device_id":  bob2.Device,
	})
	again := userFrom(r)
	if again.Device != bob2.Device {
		t.Fatalf("login with device_id %s got %s", bob2.Device, again.Device)
	}
	_, evs := toDeviceSync(s, again, "", 0)
	wantToDevice(t, "the device logged in again", evs, nil)
}

// The event as delivered has exactly the fields of the spec's Event
// (send_to_device.md, "Extensions to /sync"), with the content as sent.
func TestToDeviceEventShape(t *testing.T) {
	s := start(t)
	alice, bob := s.register(""), s.register("")
	tok, _ := toDeviceSync(s, bob, "", 0)
	content := map[string]any{"device_id": "XYZ", "rooms": []any{"!a:localhost"}, "nested": map[string]any{"k": true}}
	s.must(200, "PUT", cs+"/sendToDevice/m.new_device/shape", alice.Token, toDeviceMsgs(bob.ID, bob.Device, content))
	r := s.must(200, "GET", cs+"/sync?timeout=0&since="+url.QueryEscape(tok), bob.Token, nil)
	evs := objList(r.Body, "to_device", "events")
	if len(evs) != 1 {
		t.Fatalf("to_device: %v", r.Body["to_device"])
	}
	got, _ := json.Marshal(evs[0])
	want, _ := json.Marshal(map[string]any{"content": content, "sender": alice.ID, "type": "m.new_device"})
	if string(got) != string(want) {
		t.Errorf("event %s, want %s", got, want)
	}
}
