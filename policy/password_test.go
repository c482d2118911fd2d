package policy

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

// refHash was made by the reference C implementation (libargon2's
// argon2id_hash_encoded, t=3, m=4096, p=1, salt "saltsaltsaltsalt") from
// the password "correct horse": VerifyPassword must accept other
// implementations' PHC strings.
const refHash = "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA$rxk9Q9nGM19FnwhTrfspDC1V1bWPBFSg5XTk/f/MGoM"

var phcRE = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func TestHashVerifyRoundTrip(t *testing.T) {
	for _, pw := range []string{"demo", "", "correct horse battery staple", "päßwörd ✓", strings.Repeat("x", 1000), "a\x00b"} {
		h, err := HashPassword(pw)
		if err != nil {
			t.Fatal(err)
		}
		if !phcRE.MatchString(h) {
			t.Errorf("HashPassword(%q) = %q: not the expected PHC form", pw, h)
		}
		if ok, err := VerifyPassword(h, pw); !ok || err != nil {
			t.Errorf("VerifyPassword(HashPassword(%q)) = %v, %v", pw, ok, err)
		}
		if ok, err := VerifyPassword(h, pw+"x"); ok || err != nil {
			t.Errorf("wrong password: %v, %v", ok, err)
		}
		if err := CheckPasswordHash(h); err != nil {
			t.Errorf("CheckPasswordHash: %v", err)
		}
	}
	a, _ := HashPassword("same")
	b, _ := HashPassword("same")
	if a == b {
		t.Error("two hashes of one password are equal: salt not random")
	}
}

func TestVerifyReferenceHash(t *testing.T) {
	if ok, err := VerifyPassword(refHash, "correct horse"); !ok || err != nil {
		t.Errorf("reference hash: %v, %v", ok, err)
	}
	if ok, err := VerifyPassword(refHash, "correct horse "); ok || err != nil {
		t.Errorf("reference hash, wrong password: %v, %v", ok, err)
	}
	if ok, err := VerifyPassword(demoHash0, "demo"); !ok || err != nil {
		t.Errorf("demo hash: %v, %v", ok, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	const salt, key = "c2FsdHNhbHRzYWx0c2FsdA", "rxk9Q9nGM19FnwhTrfspDC1V1bWPBFSg5XTk/f/MGoM"
	good := "$argon2id$v=19$m=4096,t=3,p=1$" + salt + "$" + key
	if err := CheckPasswordHash(good); err != nil {
		t.Fatalf("good: %v", err)
	}
	cases := map[string]string{
		"empty":            "",
		"plain":            "hunter2",
		"bcrypt":           "$2y$10$abcdefghijklmnopqrstuu5J5Rf5Ww3h5G4dSxD0dKZ6xFhQ9S6Cm",
		"argon2i":          strings.Replace(good, "argon2id", "argon2i", 1),
		"argon2d":          strings.Replace(good, "argon2id", "argon2d", 1),
		"no version":       "$argon2id$m=4096,t=3,p=1$" + salt + "$" + key,
		"version 16":       strings.Replace(good, "v=19", "v=16", 1),
		"param order":      strings.Replace(good, "m=4096,t=3,p=1", "t=3,m=4096,p=1", 1),
		"extra param":      strings.Replace(good, "p=1", "p=1,keyid=x", 1),
		"missing param":    strings.Replace(good, ",p=1", "", 1),
		"leading zero":     strings.Replace(good, "m=4096", "m=04096", 1),
		"signed":           strings.Replace(good, "t=3", "t=+3", 1),
		"not number":       strings.Replace(good, "t=3", "t=x", 1),
		"overflow":         strings.Replace(good, "m=4096", "m=99999999999999999999", 1),
		"m 100 GiB":        strings.Replace(good, "m=4096", "m=104857600", 1),
		"m too small":      strings.Replace(good, "m=4096", "m=7", 1),
		"m below 8p":       strings.Replace(strings.Replace(good, "m=4096", "m=15", 1), "p=1", "p=2", 1),
		"t 0":              strings.Replace(good, "t=3", "t=0", 1),
		"t huge":           strings.Replace(good, "t=3", "t=4294967295", 1),
		"p 0":              strings.Replace(good, "p=1", "p=0", 1),
		"p 255":            strings.Replace(good, "p=1", "p=255", 1),
		"p 256":            strings.Replace(good, "p=1", "p=256", 1),
		"padded salt":      strings.Replace(good, salt, salt+"==", 1),
		"bad salt b64":     strings.Replace(good, salt, "!!!!", 1),
		"non-canon salt":   strings.Replace(good, salt, "c2FsdHNhbHRzYWx0c2FsdB", 1),
		"short salt":       strings.Replace(good, salt, "c2FsdA", 1),
		"long salt":        strings.Replace(good, salt, strings.Repeat("A", 88), 1),
		"empty key":        strings.TrimSuffix(good, key),
		"short key":        strings.Replace(good, key, "rxk9Q9nGM19Fnw", 1),
		"long key":         strings.Replace(good, key, strings.Repeat("A", 88), 1),
		"url b64":          strings.Replace(good, "/f/", "_f_", 1),
		"trailing dollar":  good + "$",
		"no leading":       strings.TrimPrefix(good, "$"),
		"too long":         good + strings.Repeat("A", 600),
		"whitespace":       good + " ",
		"uppercase algo":   strings.Replace(good, "argon2id", "ARGON2ID", 1),
		"empty params":     strings.Replace(good, "m=4096,t=3,p=1", "", 1),
		"params with sp":   strings.Replace(good, "m=4096,t=3,p=1", "m=4096, t=3, p=1", 1),
		"double separator": strings.Replace(good, "$"+salt, "$$"+salt, 1),
	}
	for name, phc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, err := VerifyPassword(phc, "correct horse")
			if ok || !errors.Is(err, ErrMalformedHash) {
				t.Errorf("VerifyPassword(%q) = %v, %v; want false, ErrMalformedHash", phc, ok, err)
			}
			if err := CheckPasswordHash(phc); !errors.Is(err, ErrMalformedHash) {
				t.Errorf("CheckPasswordHash = %v", err)
			}
		})
	}
}

func TestWeakHash(t *testing.T) {
	if weakHash(demoHash0) {
		t.Error("OWASP parameters reported weak")
	}
	if !weakHash(refHash) {
		t.Error("m=4096 not reported weak")
	}
	if weakHash("garbage") {
		t.Error("malformed reported weak")
	}
}
