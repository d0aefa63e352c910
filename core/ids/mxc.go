package ids

import "strings"

// ValidMXC checks mxc://<server-name>/<media-id> (spec: "Matrix Content
// (mxc://) URIs"): a valid server name and a non-empty media ID of
// [A-Za-z0-9_-].
func ValidMXC(u string) bool {
	rest, ok := strings.CutPrefix(u, "mxc://")
	if !ok {
		return false
	}
	server, media, ok := strings.Cut(rest, "/")
	if !ok || media == "" || !ValidServerName(server) {
		return false
	}
	for i := 0; i < len(media); i++ {
		c := media[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
