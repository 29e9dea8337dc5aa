package cdc

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// scanner walks one JSON text in place. Everything it passes over is
// validated, including values it skips, so a message it accepts is valid
// JSON; values are handed back as offsets into the input so that reading a
// message costs no allocation until the decoder copies what it keeps.
type scanner struct {
	b []byte
	i int
}

// maxDepth bounds nesting the way encoding/json does, so a hostile message
// cannot make the skipper's work or memory exceed its size.
const maxDepth = 10000

// plain marks the bytes that can appear in a string without a closer look:
// everything but the quote, the backslash and control characters.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// unexpected reports the byte at the cursor; want says what would have fit.
func (s *scanner) unexpected(want string) *DecodeError {
	if s.i >= len(s.b) {
		return &DecodeError{Reason: "unexpected end of JSON input"}
	}
	return &DecodeError{Reason: fmt.Sprintf("invalid character %q at byte %d, want %s", s.b[s.i], s.i, want)}
}

// str reads the string at the cursor and returns the span of its contents
// (quotes excluded) and whether it holds escapes that need unescaping.
func (s *scanner) str() (start, end int, escaped bool, err error) {
	s.i++
	start = s.i
	for {
		s.i = skipPlain(s.b, s.i)
		if s.i >= len(s.b) {
			return 0, 0, false, s.unexpected("")
		}
		switch s.b[s.i] {
		case '"':
			s.i++
			return start, s.i - 1, escaped, nil
		case '\\':
			escaped = true
			if s.i+1 >= len(s.b) {
				s.i++
				return 0, 0, false, s.unexpected("")
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				s.i += 2
				for k := 0; k < 4; k++ {
					if s.i >= len(s.b) || unhex(s.b[s.i]) < 0 {
						return 0, 0, false, s.unexpected("a hex digit")
					}
					s.i++
				}
			default:
				s.i++
				return 0, 0, false, s.unexpected("an escape character")
			}
		default:
			return 0, 0, false, s.unexpected("a printable character")
		}
	}
}

// skipPlain returns the index of the first byte at or after i that ends a
// run of plain string bytes. It tests eight bytes at a time: (v-ones)&^v
// flags the zero bytes of v, exactly for the lowest one (a borrow only
// runs upwards), and v is the word less 0x20 (control characters), xor
// '"' and xor '\\'.
func skipPlain(b []byte, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		q, bs := x^(ones*'"'), x^(ones*'\\')
		m := ((x-ones*0x20)&^x | (q-ones)&^q | (bs-ones)&^bs) & highs
		if m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// appendUnescaped appends the decoded form of string contents that str has
// already validated. Broken surrogates become U+FFFD, as in encoding/json.
func appendUnescaped(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		c := src[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		switch e := src[i+1]; e {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(src[i+2:])
			i += 6
			if utf16.IsSurrogate(r) {
				if i+6 <= len(src) && src[i] == '\\' && src[i+1] == 'u' {
					if pair := utf16.DecodeRune(r, hex4(src[i+2:])); pair != utf8.RuneError {
						r = pair
						i += 6
					} else {
						r = utf8.RuneError
					}
				} else {
					r = utf8.RuneError
				}
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default: // '"', '\\', '/'
			dst = append(dst, e)
		}
		i += 2
	}
	return dst
}

func hex4(b []byte) rune {
	return rune(unhex(b[0])<<12 | unhex(b[1])<<8 | unhex(b[2])<<4 | unhex(b[3]))
}

// num reads the number at the cursor; integer is false when it has a
// fraction or an exponent.
func (s *scanner) num() (start, end int, integer bool, err error) {
	start = s.i
	integer = true
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return 0, 0, false, s.unexpected("a digit")
	}
	if s.peek() == '.' {
		integer = false
		s.i++
		if n := s.digits(); n == 0 {
			return 0, 0, false, s.unexpected("a digit")
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		integer = false
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if n := s.digits(); n == 0 {
			return 0, 0, false, s.unexpected("a digit")
		}
	}
	return start, s.i, integer, nil
}

func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if s.i >= len(s.b) || s.b[s.i] != word[k] {
			return s.unexpected(fmt.Sprintf("%q", word))
		}
		s.i++
	}
	return nil
}

// null consumes a null literal if one is at the cursor.
func (s *scanner) null() (bool, error) {
	if s.peek() != 'n' {
		return false, nil
	}
	return true, s.literal("null")
}

// scalar skips a string, number or literal.
func (s *scanner) scalar() error {
	var err error
	switch c := s.peek(); {
	case c == '"':
		_, _, _, err = s.str()
	case c == '-' || '0' <= c && c <= '9':
		_, _, _, err = s.num()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	default:
		err = s.unexpected("a JSON value")
	}
	return err
}

// skip passes over any one value, checking it as it goes.
func (s *scanner) skip() error {
	if c := s.peek(); c == '{' || c == '[' {
		return s.skipNested()
	}
	return s.scalar()
}

// skipNested passes over an object or array without recursion: one bit per
// open level says whether it is an array. The first 64 levels live in a
// register; deeper ones, which real rows never reach, in a slice that grows
// with the input and stops at maxDepth.
func (s *scanner) skipNested() error {
	var shallow uint64
	var deep []uint64
	depth := 0 // levels open
	inArray := false
	opens := true
	for {
		if opens {
			if depth == maxDepth {
				return &DecodeError{Reason: fmt.Sprintf("JSON nested deeper than %d levels", maxDepth)}
			}
			if depth > 0 {
				// Save the enclosing level's kind before entering a new one.
				if depth <= 64 {
					shallow = shallow<<1 | b2u(inArray)
				} else {
					deep = append(deep, b2u(inArray))
				}
			}
			inArray = s.b[s.i] == '['
			depth++
			s.i++
			s.ws()
			if c := s.peek(); c == ']' && inArray || c == '}' && !inArray {
				s.i++
				opens = false
				depth--
				if depth == 0 {
					return nil
				}
				inArray = s.pop(&shallow, &deep, depth)
			} else {
				var err error
				if opens, err = s.element(!inArray); err != nil {
					return err
				}
				if opens {
					continue
				}
			}
		}
		s.ws()
		switch c := s.peek(); {
		case c == ',':
			s.i++
			s.ws()
			var err error
			if opens, err = s.element(!inArray); err != nil {
				return err
			}
		case c == ']' && inArray || c == '}' && !inArray:
			s.i++
			depth--
			if depth == 0 {
				return nil
			}
			inArray = s.pop(&shallow, &deep, depth)
		case inArray:
			return s.unexpected("',' or ']'")
		default:
			return s.unexpected("',' or '}'")
		}
	}
}

// pop returns whether the level left open after a close (depth levels
// remain) is an array.
func (s *scanner) pop(shallow *uint64, deep *[]uint64, depth int) bool {
	if depth > 64 {
		d := *deep
		v := d[len(d)-1]
		*deep = d[:len(d)-1]
		return v == 1
	}
	v := *shallow&1 == 1
	*shallow >>= 1
	return v
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// element reads an object member's key and colon (when inObject), then a
// scalar value; opens is true, with nothing consumed, if the value is a
// container.
func (s *scanner) element(inObject bool) (opens bool, err error) {
	if inObject {
		if s.peek() != '"' {
			return false, s.unexpected("a string key")
		}
		if _, _, _, err := s.str(); err != nil {
			return false, err
		}
		s.ws()
		if s.peek() != ':' {
			return false, s.unexpected("':'")
		}
		s.i++
		s.ws()
	}
	if c := s.peek(); c == '{' || c == '[' {
		return true, nil
	}
	return false, s.scalar()
}

// member moves to the next member of the object being read (n counts the
// members seen so far) and returns its key, positioned at the value; ok is
// false once the closing brace has been consumed. Escaped keys are decoded
// into a fresh slice; Debezium never escapes its keys, so that path is cold.
func (s *scanner) member(n *int) (key []byte, ok bool, err error) {
	s.ws()
	if s.peek() == '}' {
		s.i++
		return nil, false, nil
	}
	if *n > 0 {
		if s.peek() != ',' {
			return nil, false, s.unexpected("',' or '}'")
		}
		s.i++
		s.ws()
	}
	*n++
	if s.peek() != '"' {
		return nil, false, s.unexpected("a string key")
	}
	a, b, esc, err := s.str()
	if err != nil {
		return nil, false, err
	}
	key = s.b[a:b]
	if esc {
		key = appendUnescaped(nil, key)
	}
	s.ws()
	if s.peek() != ':' {
		return nil, false, s.unexpected("':'")
	}
	s.i++
	s.ws()
	return key, true, nil
}

// open consumes the '{' of an object the caller will read with member.
func (s *scanner) open() error {
	if s.peek() != '{' {
		return s.unexpected("'{'")
	}
	s.i++
	return nil
}

// int reads an integer or null (as 0) that fits an int64.
func (s *scanner) int() (int64, error) {
	if v, ok := s.shortInt(); ok {
		return v, nil
	}
	switch c := s.peek(); {
	case c == 'n':
		return 0, s.literal("null")
	case c != '-' && (c < '0' || c > '9'):
		return 0, wrongType("an integer", c)
	}
	a, b, integer, err := s.num()
	if err != nil {
		return 0, err
	}
	if !integer {
		return 0, &DecodeError{Reason: fmt.Sprintf("want an integer, got %s", clip(s.b[a:b]))}
	}
	neg := s.b[a] == '-'
	if neg {
		a++
	}
	// Accumulate negatively so that the most negative int64 fits.
	var v int64
	for _, d := range s.b[a:b] {
		if v < (-1<<63)/10 {
			return 0, &DecodeError{Reason: fmt.Sprintf("integer %s out of range", clip(s.b[a:b]))}
		}
		v = v*10 - int64(d-'0')
		if v > 0 {
			return 0, &DecodeError{Reason: fmt.Sprintf("integer %s out of range", clip(s.b[a:b]))}
		}
	}
	if !neg {
		if v == -1<<63 {
			return 0, &DecodeError{Reason: fmt.Sprintf("integer %s out of range", clip(s.b[a:b]))}
		}
		v = -v
	}
	return v, nil
}

// shortInt reads, in one pass, an integer of at most 18 digits, which
// cannot overflow, followed by neither a fraction, an exponent nor a digit:
// the timestamps, LSNs and ids of real messages. It leaves the cursor
// alone and reports false for anything else, which int reads slowly.
func (s *scanner) shortInt() (int64, bool) {
	i := s.i
	neg := i < len(s.b) && s.b[i] == '-'
	if neg {
		i++
	}
	start := i
	var v int64
	for i < len(s.b) && i-start < 19 {
		c := s.b[i]
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
		i++
	}
	n := i - start
	if n == 0 || n > 18 || n > 1 && s.b[start] == '0' {
		return 0, false
	}
	if i < len(s.b) {
		switch s.b[i] {
		case '.', 'e', 'E', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			return 0, false
		}
	}
	s.i = i
	if neg {
		v = -v
	}
	return v, true
}

func wrongType(want string, c byte) *DecodeError {
	return &DecodeError{Reason: fmt.Sprintf("want %s, got %s", want, typeName(c))}
}

// typeName names the JSON type a value starting with c would have.
func typeName(c byte) string {
	switch {
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	case c == '-' || '0' <= c && c <= '9':
		return "a number"
	case c == 0:
		return "end of input"
	}
	return fmt.Sprintf("invalid character %q", c)
}

// clip keeps error messages short whatever the input: they end up in logs
// and dead-letter headers.
func clip(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max])) + "..."
	}
	return strconv.Quote(string(b))
}
