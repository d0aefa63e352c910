package transport

import (
	"net/url"
	"strings"
)

// router matches Matrix paths segment by segment. Segments are matched on
// the raw (still percent-encoded) path and decoded afterwards, because IDs
// and state keys may contain an encoded '/'.
type router struct {
	routes []route
}

type route struct {
	method   string
	segments []string // literal, or "{name}" for a parameter, or "{name...}" for the rest
	h        Handler
	auth     authMode
	rawBody  bool // the handler reads the body stream itself (media uploads)
}

type authMode int

const (
	authNone     authMode = iota // no token needed
	authRequired                 // a valid token is needed
	authOptional                 // a token is used when given
)

// clientPrefixes are the versioned prefixes a client endpoint is served
// under: v3, and r0 as older clients (and the seed's reference) use.
var clientPrefixes = []string{"/_matrix/client/v3", "/_matrix/client/r0"}

func (r *router) add(method, path string, auth authMode, h Handler) {
	r.routes = append(r.routes, route{method: method, segments: split(path), h: h, auth: auth})
}

// legacyV1 are the path prefixes of endpoints that existed in the
// pre-r0 API (/_matrix/client/api/v1), which some old clients and bots
// still call; they are served there too.
var legacyV1 = []string{"/register", "/login", "/logout", "/createRoom", "/join/", "/rooms/",
	"/profile/", "/presence/", "/publicRooms", "/directory/room/", "/pushrules/"}

// client registers path under every client prefix.
func (r *router) client(method, path string, auth authMode, h Handler) {
	for _, p := range clientPrefixes {
		r.add(method, p+path, auth, h)
	}
	for _, l := range legacyV1 {
		if strings.HasPrefix(path, l) || path == strings.TrimSuffix(l, "/") {
			r.add(method, "/_matrix/client/api/v1"+path, auth, h)
			return
		}
	}
}

func split(p string) []string { return strings.Split(strings.Trim(p, "/"), "/") }

// match returns the route for method and raw path, its parameters, and
// whether the path exists under another method (405 rather than 404).
func (r *router) match(method, rawPath string) (*route, map[string]string, bool) {
	segs := split(rawPath)
	pathExists := false
	for i := range r.routes {
		rt := &r.routes[i]
		params, ok := matchSegments(rt.segments, segs)
		if !ok {
			continue
		}
		if rt.method != method {
			pathExists = true
			continue
		}
		return rt, params, true
	}
	return nil, nil, pathExists
}

func matchSegments(pattern, segs []string) (map[string]string, bool) {
	var params map[string]string
	for i, p := range pattern {
		if strings.HasSuffix(p, "...}") {
			if i >= len(segs) {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			rest := make([]string, 0, len(segs)-i)
			for _, s := range segs[i:] {
				d, err := url.PathUnescape(s)
				if err != nil {
					return nil, false
				}
				rest = append(rest, d)
			}
			params[p[1:len(p)-4]] = strings.Join(rest, "/")
			return params, true
		}
		if i >= len(segs) {
			return nil, false
		}
		if len(p) > 1 && p[0] == '{' {
			d, err := url.PathUnescape(segs[i])
			if err != nil {
				return nil, false
			}
			if params == nil {
				params = map[string]string{}
			}
			params[p[1:len(p)-1]] = d
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	if len(segs) != len(pattern) {
		return nil, false
	}
	return params, true
}
