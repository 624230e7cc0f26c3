// UTF-8 helpers for the tokenizer: validation, lossy decoding as Rust does it, character classes, NFC.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace troupe::engine::unicode {

/// Length of the valid UTF-8 character at s[i], or 0 when the bytes there are not one.
std::size_t valid_char_len(std::string_view s, std::size_t i);

/// Offset of the first byte that does not start a valid UTF-8 sequence, or npos when s is valid.
std::size_t find_invalid_utf8(std::string_view s);

/// Decodes the (valid) character at s[i]; advances i past it.
char32_t next_char(std::string_view s, std::size_t& i);

/// Appends the UTF-8 encoding of cp to out.
void append_utf8(std::string& out, char32_t cp);

/// Like Rust's String::from_utf8_lossy: each maximal invalid subpart becomes one U+FFFD.
std::string from_utf8_lossy(std::string_view bytes);

/// Appends from_utf8_lossy(bytes) to out.
void append_utf8_lossy(std::string& out, std::string_view bytes);

/// True when bytes form complete, valid UTF-8.
inline bool is_valid_utf8(std::string_view s) { return find_invalid_utf8(s) == std::string_view::npos; }

/// Rust's char::is_whitespace (the Unicode White_Space property).
bool is_whitespace(char32_t c);

/// A word character as Rust's regex `\w` (Alphabetic, marks, decimal digits, connector punctuation,
/// joiners), from utf8proc's categories plus the Other_Alphabetic symbols (circled and squared letters).
bool is_word_char(char32_t c);

/// Rust's char::is_numeric (general categories Nd, Nl, No).
bool is_numeric(char32_t c);

/// Unicode normalisation form C of valid UTF-8 text (utf8proc); returns the text itself when it
/// cannot change (no byte at or above U+0300's lead byte).
std::string nfc(std::string_view s);

}  // namespace troupe::engine::unicode
