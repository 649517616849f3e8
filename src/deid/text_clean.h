// Cleaning free text (descriptors, structured content, graphics annotations) by a whitelist:
// what is kept is known not to identify anyone, everything else goes. A description such as
// "CT CHEST W CONTRAST 1.25MM AXIAL" survives; names, IDs, dates, places and any word not in
// the vocabulary of acquisition, anatomy and reporting terms are dropped.
#pragma once

#include <string>
#include <string_view>

namespace medlens::deid {

/// True for a word of the safe vocabulary (case-insensitive), a short number (at most 3
/// digits) or a number with a unit ("5MM", "120KV", "B1000").
bool is_safe_word(std::string_view word);

/// Keeps the safe words of `text` with the punctuation between them; drops every other word
/// and any whitespace-separated chunk that looks like a date, time or long number.
/// Multiple spaces collapse; the result is trimmed (and may be empty).
std::string clean_text(const std::string& text);

}  // namespace medlens::deid
