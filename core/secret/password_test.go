package secret

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestHashPasswordRoundTrip(t *testing.T) {
	for _, pw := range []string{"correct horse battery staple", "", "pässwörd 🔑", strings.Repeat("x", 1000)} {
		enc, err := HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Fatalf("HashPassword = %q, want the current parameters in PHC form", enc)
		}
		p, salt, key, err := parseArgon2id(enc)
		if err != nil || p != currentParams || len(salt) != 16 || len(key) != 32 {
			t.Fatalf("parseArgon2id(%q) = %+v, %d-byte salt, %d-byte key, %v", enc, p, len(salt), len(key), err)
		}
		ok, rehash, err := VerifyPassword(enc, pw)
		if !ok || rehash || err != nil {
			t.Fatalf("VerifyPassword(own hash, right pw %q) = %v, %v, %v; want true, false, nil", pw, ok, rehash, err)
		}
		ok, rehash, err = VerifyPassword(enc, pw+"x")
		if ok || rehash || err != nil {
			t.Fatalf("VerifyPassword(own hash, wrong pw) = %v, %v, %v; want false, false, nil", ok, rehash, err)
		}
	}
}

func TestHashPasswordSalted(t *testing.T) {
	a, _ := HashPassword("same")
	b, _ := HashPassword("same")
	if a == b {
		t.Fatal("two hashes of the same password are equal: salt is not random")
	}
}

// TestVerifyArgon2idReference checks interoperability with the reference
// implementation (phc-winner-argon2's test vector for argon2id v19,
// password "password", salt "somesalt", m=64 MiB, t=2, p=1).
func TestVerifyArgon2idReference(t *testing.T) {
	const enc = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	ok, rehash, err := VerifyPassword(enc, "password")
	if !ok || !rehash || err != nil {
		t.Fatalf("VerifyPassword(reference) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	if ok, _, _ := VerifyPassword(enc, "Password"); ok {
		t.Fatal("reference hash matched the wrong password")
	}
}

func TestVerifyPasswordNeedsRehash(t *testing.T) {
	variants := []argonParams{
		{memory: 8192, time: 2, threads: 1, saltLen: 16, keyLen: 32},  // less memory
		{memory: 19456, time: 1, threads: 1, saltLen: 16, keyLen: 32}, // fewer passes
		{memory: 19456, time: 2, threads: 2, saltLen: 16, keyLen: 32}, // more lanes
		{memory: 19456, time: 2, threads: 1, saltLen: 8, keyLen: 32},  // shorter salt
		{memory: 19456, time: 2, threads: 1, saltLen: 16, keyLen: 16}, // shorter key
	}
	for _, p := range variants {
		salt := make([]byte, p.saltLen)
		enc := fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", p.memory, p.time, p.threads,
			b64.EncodeToString(salt), b64.EncodeToString(argon2IDKey("pw", salt, p)))
		ok, rehash, err := VerifyPassword(enc, "pw")
		if !ok || !rehash || err != nil {
			t.Errorf("VerifyPassword(%+v) = %v, %v, %v; want true, true, nil", p, ok, rehash, err)
		}
		if ok, rehash, err := VerifyPassword(enc, "wrong"); ok || rehash || err != nil {
			t.Errorf("VerifyPassword(%+v, wrong) = %v, %v, %v; want false, false, nil", p, ok, rehash, err)
		}
	}
}

func TestVerifyBcrypt(t *testing.T) {
	h, err := bcrypt.GenerateFromPassword([]byte("synapse password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	enc := string(h) // $2a$04$...
	if ok, rehash, err := VerifyPassword(enc, "synapse password"); !ok || !rehash || err != nil {
		t.Fatalf("VerifyPassword(bcrypt, right) = %v, %v, %v; want true, true, nil", ok, rehash, err)
	}
	if ok, rehash, err := VerifyPassword(enc, "synapse passwore"); ok || rehash || err != nil {
		t.Fatalf("VerifyPassword(bcrypt, wrong) = %v, %v, %v; want false, false, nil", ok, rehash, err)
	}
	// Python's bcrypt (behind Synapse) writes $2b$; the algorithm is the same.
	b := "$2b$" + enc[4:]
	if ok, _, err := VerifyPassword(b, "synapse password"); !ok || err != nil {
		t.Fatalf("VerifyPassword($2b$) = %v, %v", ok, err)
	}
	// A known-answer vector from OpenBSD/openwall crypt_blowfish.
	if ok, _, err := VerifyPassword("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "U*U"); !ok || err != nil {
		t.Fatalf("VerifyPassword(openwall vector) = %v, %v", ok, err)
	}
	// Passwords longer than 72 bytes: bcrypt implementations use the first
	// 72, so a long password hashed elsewhere must still verify.
	long := strings.Repeat("0123456789", 8)
	h, err = bcrypt.GenerateFromPassword([]byte(long[:72]), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _, err := VerifyPassword(string(h), long); !ok || err != nil {
		t.Fatalf("VerifyPassword(bcrypt, 80-byte pw) = %v, %v", ok, err)
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"
	tests := []string{
		"",
		"plaintext",
		"$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + key, // argon2i is not supported
		"$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + key,
		"$scrypt$ln=15,r=8,p=1$" + salt + "$" + key,
		"$argon2id$",
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt, // no hash
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "$", // extra field
		"$argon2id$m=19456,t=2,p=1$" + salt + "$" + key,            // no version
		"$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + key,       // version 0x10
		"$argon2id$v=19$m=19456,t=2$" + salt + "$" + key,
		"$argon2id$v=19$t=2,m=19456,p=1$" + salt + "$" + key, // wrong order
		"$argon2id$v=19$m=19456,t=2,p=1,x=1$" + salt + "$" + key,
		"$argon2id$v=19$m=abc,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=-1,t=2,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=65,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=19456,t=2,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=7,t=2,p=1$" + salt + "$" + key,         // m < 8p
		"$argon2id$v=19$m=4194304,t=2,p=1$" + salt + "$" + key,   // 4 GiB
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + key,   // padding
		"$argon2id$v=19$m=19456,t=2,p=1$c29tZQ$" + key,           // 4-byte salt
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$AAAAAAAAAA", // 7-byte hash
		"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key + "!",
		"$2a$",
		"$2a$04$short",
		"$2a$17$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", // cost too high
		"$2c$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
	}
	for _, enc := range tests {
		ok, rehash, err := VerifyPassword(enc, "password")
		if ok || rehash || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("VerifyPassword(%q) = %v, %v, %v; want false, false, ErrMalformedHash", enc, ok, rehash, err)
		}
	}
}

// TestHashGateBoundsConcurrency checks that no more than the configured
// number of hashes run at once, and that a raised limit admits waiters.
func TestHashGateBoundsConcurrency(t *testing.T) {
	g := newGate(2)
	var running, peak atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g.acquire()
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
			running.Add(-1)
			g.release()
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 2 {
		t.Fatalf("peak concurrency %d, want 2", p)
	}

	// Fill the gate, then raise the limit: a waiter must get through
	// without any release.
	g.setLimit(1)
	g.acquire()
	done := make(chan struct{})
	go func() { g.acquire(); close(done) }()
	select {
	case <-done:
		t.Fatal("second acquire passed a gate of 1")
	case <-time.After(20 * time.Millisecond):
	}
	g.setLimit(2)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("raising the limit did not admit the waiter")
	}
	g.setLimit(0) // clamps to 1
	if g.limit != 1 {
		t.Fatalf("setLimit(0) gave limit %d, want 1", g.limit)
	}
}

func TestSetConcurrencyParallelHashes(t *testing.T) {
	SetConcurrency(1)
	defer SetConcurrency(2)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			enc, err := HashPassword("pw")
			if err != nil {
				t.Error(err)
				return
			}
			if ok, _, err := VerifyPassword(enc, "pw"); !ok || err != nil {
				t.Errorf("VerifyPassword = %v, %v", ok, err)
			}
		}()
	}
	wg.Wait()
	if hashGate.active != 0 {
		t.Fatalf("%d slots still held", hashGate.active)
	}
}

func BenchmarkHashPassword(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := HashPassword("correct horse battery staple"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyPassword(b *testing.B) {
	enc, _ := HashPassword("correct horse battery staple")
	b.ReportAllocs()
	for b.Loop() {
		if ok, _, _ := VerifyPassword(enc, "correct horse battery staple"); !ok {
			b.Fatal("no match")
		}
	}
}
