package voip

import (
	"errors"
	"testing"
	"time"
)

func TestCredentials(t *testing.T) {
	now := time.Unix(1700000000, 0)
	secret := []byte("s3cret")
	for _, tc := range []struct {
		name    string
		user    string
		ttl     time.Duration
		wantU   string
		wantTTL int
	}{
		{"day", "@alice:example.org", 24 * time.Hour, "1700086400:@alice:example.org", 86400},
		{"sub-second ttl rounds up to 1", "@b:x", 10 * time.Millisecond, "1700000001:@b:x", 1},
		{"fractional seconds truncate", "@b:x", 1500 * time.Millisecond, "1700000001:@b:x", 1},
		{"guest", "guest", time.Hour, "1700003600:guest", 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, p, ttl := Credentials(secret, tc.user, tc.ttl, now)
			if u != tc.wantU || ttl != tc.wantTTL {
				t.Fatalf("got %q ttl %d, want %q ttl %d", u, ttl, tc.wantU, tc.wantTTL)
			}
			if p != Password(secret, u) {
				t.Fatal("password is not Password(secret, username)")
			}
			if got, err := Verify(secret, u, p, now); err != nil || got != tc.user {
				t.Fatalf("Verify = %q, %v", got, err)
			}
		})
	}
}

// TestPasswordVector pins the scheme against an independently computed
// value: printf %s 1700086400:@alice:example.org | openssl dgst -sha1
// -hmac s3cret -binary | base64.
func TestPasswordVector(t *testing.T) {
	if got, want := Password([]byte("s3cret"), "1700086400:@alice:example.org"), vector; got != want {
		t.Fatalf("Password = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1700000000, 0)
	secret := []byte("s3cret")
	u, p, _ := Credentials(secret, "@alice:example.org", time.Hour, now)
	for _, tc := range []struct {
		name             string
		secret           []byte
		username, passwd string
		at               time.Time
		want             error
	}{
		{"valid", secret, u, p, now, nil},
		{"valid just before expiry", secret, u, p, now.Add(time.Hour - time.Second), nil},
		{"expired at expiry", secret, u, p, now.Add(time.Hour), ErrExpired},
		{"expired later", secret, u, p, now.Add(48 * time.Hour), ErrExpired},
		{"wrong password", secret, u, "AAAA", now, ErrForged},
		{"other secret", []byte("other"), u, p, now, ErrForged},
		{"forged expiry", secret, "1900000000:@alice:example.org", p, now, ErrForged},
		{"forged user", secret, "1700003600:@mallory:example.org", p, now, ErrForged},
		{"no colon", secret, "1700003600", p, now, ErrMalformed},
		{"empty user", secret, "1700003600:", p, now, ErrMalformed},
		{"not a number", secret, "soon:@alice:example.org", p, now, ErrMalformed},
		{"negative", secret, "-5:@alice:example.org", p, now, ErrMalformed},
		{"empty secret", nil, u, p, now, ErrNoSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Verify(tc.secret, tc.username, tc.passwd, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		username string
		want     error
		user     string
	}{
		{"1700000001:@a:b", nil, "@a:b"},
		{"1700000000:@a:b", ErrExpired, ""},
		{"x:@a:b", ErrMalformed, ""},
		{"", ErrMalformed, ""},
	} {
		u, err := Check(tc.username, now)
		if !errors.Is(err, tc.want) || u != tc.user {
			t.Errorf("Check(%q) = %q, %v; want %q, %v", tc.username, u, err, tc.user, tc.want)
		}
	}
}

const vector = "UD7jjEzq2I7HtUre54NaXWzW4Y0="
