package ids

import (
	"net/netip"
	"strings"
)

// ValidServerName reports whether s matches the server name grammar of the
// spec (appendices, "Server Name"):
//
//	server_name = hostname [ ":" port ]
//	port        = 1*5DIGIT
//	hostname    = IPv4address / "[" IPv6address "]" / dns-name
//
// An IPv4 literal must have four decimal numbers in 0–255; a dotted quad out
// of that range is rejected rather than read as a DNS name. An IPv6 literal
// must be a valid RFC 3513 address. A DNS name is 1–255 characters of
// [A-Za-z0-9.-]; the spec's conventional label rules are a SHOULD and are not
// enforced, so that IDs minted by other servers are not refused over them.
// Server names are case-sensitive; upper case is allowed.
func ValidServerName(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '[' {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' || !validPort(rest[1:]) {
				return false
			}
		}
		return validIPv6(s[1:end])
	}
	host := s
	if i := strings.IndexByte(s, ':'); i >= 0 {
		// Only one ':' may appear outside brackets: an unbracketed IPv6
		// literal fails here because its remainder is not a port.
		host = s[:i]
		if !validPort(s[i+1:]) {
			return false
		}
	}
	if isDottedQuad(host) {
		return validIPv4(host)
	}
	return validDNSName(host)
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validPort: port = 1*5DIGIT. The grammar does not bound the value to 65535,
// and neither does this.
func validPort(p string) bool {
	if len(p) < 1 || len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if !isDigit(p[i]) {
			return false
		}
	}
	return true
}

// isDottedQuad reports whether h has the shape of the grammar's IPv4address:
// 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT.
func isDottedQuad(h string) bool {
	groups, run := 0, 0
	for i := 0; i < len(h); i++ {
		switch c := h[i]; {
		case isDigit(c):
			run++
			if run > 3 {
				return false
			}
		case c == '.':
			if run == 0 {
				return false
			}
			groups++
			run = 0
		default:
			return false
		}
	}
	return groups == 3 && run > 0
}

// validIPv4 checks the range of an isDottedQuad string: "IPv4 literals must
// be a sequence of four decimal numbers in the range 0 to 255".
func validIPv4(h string) bool {
	for _, part := range strings.Split(h, ".") {
		n := 0
		for i := 0; i < len(part); i++ {
			n = n*10 + int(part[i]-'0')
		}
		if n > 255 {
			return false
		}
	}
	return true
}

// validIPv6: IPv6address = 2*45IPv6char (0-9 A-F a-f : .), and a valid
// address per RFC 3513 section 2.2. The character set excludes zones ('%').
func validIPv6(h string) bool {
	if len(h) < 2 || len(h) > 45 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isDigit(c) && !('a' <= c && c <= 'f') && !('A' <= c && c <= 'F') && c != ':' && c != '.' {
			return false
		}
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.Is6()
}

// validDNSName: dns-name = 1*255dns-char; dns-char = DIGIT / ALPHA / "-" / ".".
func validDNSName(h string) bool {
	if len(h) < 1 || len(h) > 255 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !isDigit(c) && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && c != '-' && c != '.' {
			return false
		}
	}
	return true
}
