package transport

import "testing"

func TestRouterMatch(t *testing.T) {
	var r router
	h := func(*Request) (any, error) { return nil, nil }
	r.client("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey...}", authRequired, h)
	r.client("GET", "/rooms/{roomId}/messages", authRequired, h)
	r.add("GET", "/_matrix/client/versions", authNone, h)
	tests := []struct {
		method, path  string
		found, exists bool
		params        map[string]string
	}{
		{"GET", "/_matrix/client/v3/rooms/%21a%3Ab/messages", true, true, map[string]string{"roomId": "!a:b"}},
		{"GET", "/_matrix/client/r0/rooms/!a:b/messages", true, true, map[string]string{"roomId": "!a:b"}},
		{"GET", "/_matrix/client/api/v1/rooms/!a:b/messages", true, true, nil},
		{"POST", "/_matrix/client/v3/rooms/!a:b/messages", false, true, nil},
		{"GET", "/_matrix/client/v3/rooms/!a:b/nothing", false, false, nil},
		{"PUT", "/_matrix/client/v3/rooms/!a:b/state/m.x/a%2Fb/c", true, true, map[string]string{"eventType": "m.x", "stateKey": "a/b/c"}},
		{"GET", "/_matrix/client/versions", true, true, nil},
		{"GET", "/_matrix/client/versions/extra", false, false, nil},
	}
	for _, tt := range tests {
		rt, params, exists := r.match(tt.method, tt.path)
		if (rt != nil) != tt.found || exists != tt.exists {
			t.Errorf("%s %s: found %v exists %v", tt.method, tt.path, rt != nil, exists)
			continue
		}
		for k, v := range tt.params {
			if params[k] != v {
				t.Errorf("%s %s: param %s = %q, want %q", tt.method, tt.path, k, params[k], v)
			}
		}
	}
}
